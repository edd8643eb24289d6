"""The simulated asynchronous MemberData (MDA): a GenAsync mailbox at the memberData address.

* ``post`` goes through the platform's security checks (signature, token, certificate, licence:
  the simulator's ``SecurityCheck``, as for every GenAsync post), then the GenAsync schema; the
  blob must be ``MessageName=MDA``, ``text/xml``, ``ContentEncoding=none`` and hold an
  ``AttributeQueryList`` of ``samlp:AttributeQuery`` with distinct IDs, else a failure TAck.  The
  caller needs an encryption certificate at the key depot (``SIM-SEC-25``, as for the sync
  service).  Each post is counted per InputReference (``memberdata_async.posts.<ref>``) and its
  queries in ``memberdata_async.queries``.
* Each query is answered exactly as the sync service answers it (``MemberDataService.answer``:
  same checks, same population, MemberData's own fault codes, assertions encrypted for the
  caller), one ``MsgResponse`` per query (MessageName ``MDA``, ``text/xml``, not deflated) with
  ``InResponseTo`` = the query's ID, due ``delay`` seconds after the post.
* ``get`` and ``confirm`` are the eFact mailbox's (``simulator.genasync``, whose class this one
  extends): throttled within ``min_get_interval``, unconfirmed items delivered again, XAdES-T on
  every item, counted as ``memberdata_async.*``.  The mailbox is this address's own, per care
  provider, and the eFact rule on invoicing qualities does not apply to it.
* Fault injection: the ``[simulator] fault_memberdata`` modes apply to this address as well.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from datetime import datetime, timedelta
from typing import Callable

from cryptography import x509
from lxml import etree

from unified_messaging.mycarenet.keystore import KeyEntry
from unified_messaging.mycarenet.memberdata_async import CONTENT_TYPE, MESSAGE_NAME, QUERY_LIST
from unified_messaging.mycarenet.memberdata_saml import SAMLP_NS
from unified_messaging.mycarenet.wsse import utc_now
from unified_messaging.simulator.genasync import (
    CONFIRM, GENASYNC_WSDL, GET, POST, GenAsyncService, _c, _care_provider_nihii, _g, _Message, _post_response,
)
from unified_messaging.simulator.memberdata import MemberDataService, Question
from unified_messaging.simulator.soap import SoapRequest
from unified_messaging.xmlsafe import UnsafeXml, parse_xml

log = logging.getLogger(__name__)

MEMBERDATA_ASYNC_PATH = "/GenericAsync/memberData"
MAX_QUERIES = 10000  # the official AttributeQueryList's maxOccurs
MAX_POST_BYTES = 32 * 1024 * 1024


class MemberDataAsyncService(GenAsyncService):
    """The MDA mailbox for the simulator's registry (``register(simulator)``): its own post, and the
    eFact mailbox's get and confirm (counters ``memberdata_async.*``)."""

    counter_prefix = "memberdata_async"

    def __init__(self, memberdata: MemberDataService, *, now: Callable[[], datetime] = utc_now,
                 delay: float = 5.0, min_get_interval: float = 10.0, signing_entry: KeyEntry | None = None,
                 trusted_ca: x509.Certificate | None = None) -> None:
        super().__init__(now=now, min_get_interval=min_get_interval, signing_entry=signing_entry,
                         trusted_ca=trusted_ca)
        self.memberdata = memberdata
        self.delay = delay

    def register(self, simulator) -> None:
        self.counters = simulator.counters
        endpoint = simulator.add_endpoint(MEMBERDATA_ASYNC_PATH, "memberdata_async", GENASYNC_WSDL,
                                          max_request_bytes=MAX_POST_BYTES)
        simulator.add_operation(endpoint, POST, "post", self.post)
        simulator.add_operation(endpoint, GET, "get", self.get)
        simulator.add_operation(endpoint, CONFIRM, "confirm", self.confirm)
        simulator.faults.route(MEMBERDATA_ASYNC_PATH, "memberdata")

    def post(self, request: SoapRequest) -> etree._Element:
        self._schema.check(request.payload)
        payload = request.payload
        nihii = _care_provider_nihii(payload)
        encryption = self.memberdata.encryption_for(request)
        input_reference = (payload.findtext(f"{_g('CommonInput')}/{_c('InputReference')}") or "").strip()
        self.counters.increment(f"memberdata_async.posts.{input_reference or '-'}")
        queries, refusal = _queries(payload.find(_g("Detail")), input_reference)
        tack = self._new_tack(request, input_reference, refusal)
        reference = tack.reference
        answers = []
        due = self._now() + timedelta(seconds=self.delay)
        for query in queries:
            saml = self.memberdata.answer(Question(query.get("ID", ""), input_reference, nihii, query), encryption,
                                          reference)
            content = etree.tostring(saml, xml_declaration=True, encoding="UTF-8")
            own = self._references.next()
            answers.append(_Message(MESSAGE_NAME, due, input_reference, reference, own, content,
                                    hashlib.sha256(content).digest(),
                                    self._xades.sign(content, f"blob-{own}", deflated=False),
                                    content_type=CONTENT_TYPE, encoding="none"))
        self.counters.increment("memberdata_async.queries", len(queries))
        with self._lock:
            mailbox = self._mailbox(payload)
            mailbox.tacks.append(tack)
            mailbox.messages.extend(answers)
        log.info("MDA post %s: %s, %d queries, reference %s", input_reference, refusal or "accepted", len(queries),
                 reference)
        return _post_response(tack)

    def pending(self) -> int:
        """Answers not confirmed yet, over all mailboxes (for tests)."""
        return self.pending_messages()

    def _check_access(self, request: SoapRequest, payload: etree._Element) -> None:
        """MemberData is not eFact: the invoicing qualities rule of the eFact mailbox does not apply."""

    def _produce_due(self, mailbox, now: datetime) -> None:
        """The answers are made at the post (each due ``delay`` after it): nothing to produce later."""


def _queries(detail: etree._Element, input_reference: str) -> tuple[list[etree._Element], str | None]:
    """The AttributeQuery elements of an MDA blob, or why the post is refused."""
    if detail.get("MessageName") != MESSAGE_NAME:
        return [], f"The message name {detail.get('MessageName')!r} is not accepted here ({MESSAGE_NAME})."
    if detail.get("ContentType") != CONTENT_TYPE or detail.get("ContentEncoding", "none") != "none":
        return [], "The Detail of an MDA post is text/xml with ContentEncoding none."
    if not input_reference:
        return [], "The CommonInput has no InputReference."
    try:
        document = parse_xml(base64.b64decode("".join((detail.text or "").split()), validate=True))
    except (binascii.Error, ValueError, UnsafeXml):
        return [], "The Detail is not a base64 XML document."
    queries = list(document)
    if document.tag != QUERY_LIST or not queries or len(queries) > MAX_QUERIES:
        return [], f"The Detail must hold an AttributeQueryList of 1 to {MAX_QUERIES} AttributeQuery."
    identifiers = [q.get("ID") for q in queries]
    if any(q.tag != f"{{{SAMLP_NS}}}AttributeQuery" or q.get("Version") != "2.0" for q in queries) \
            or not all(identifiers) or len(set(identifiers)) != len(identifiers):
        return [], "Each element of the AttributeQueryList is a SAML 2.0 AttributeQuery with its own ID."
    return queries, None

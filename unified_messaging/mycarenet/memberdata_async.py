"""The asynchronous MemberData (MDA): many SAML attribute queries in one GenAsync post, answered later.

For a batch of many lines the synchronous MemberData is asked once per line; MDA asks them all at
once (MYCARENET.md §4): a GenAsync ``post`` whose blob has ``MessageName=MDA``,
``ContentType=text/xml`` and ``ContentEncoding=none``, holding an ``AttributeQueryList``
(``urn:be:cin:nippin:memberdata:saml:extension``) of the same ``samlp:AttributeQuery`` the sync
client sends (``memberdata_saml.attribute_query``), without XAdES.  It goes through the same
GenAsync client (and signing, token renewal, transport) as invoicing, at ``memberdata_async_url``.

The answers come with ``get`` (``MessageNames`` ``MDA``): each message holds a SAML ``Response``
(or a ``ResponseList`` of them), encrypted for the caller like the sync answer; each is matched to
its query by ``InResponseTo`` = the query's ``ID`` and read with the sync client's mapping
(``memberdata.read_answer``) onto the same ``InsurabilityAnswer``.  The caller names the query IDs
(the batch makes them from the post's InputReference and the line number, so that a restarted
batch knows which answer is whose without having stored the queries).  ``confirm`` comes last,
once the caller has written the answers durably: until then the platform delivers them again.
"""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Mapping, Protocol, Sequence

from lxml import etree

from unified_messaging.domain.errors import UpstreamFault
from unified_messaging.domain.insurability import CareProvider, InsurabilityAnswer, InsurabilityQuery
from unified_messaging.mycarenet.genasync import MailboxContent, PostResult, ReceivedMessage, ReceivedTAck
from unified_messaging.mycarenet.keystore import KeyEntry
from unified_messaging.mycarenet.memberdata import read_answer
from unified_messaging.mycarenet.memberdata_saml import EXT_NS, SAML_NS, SAMLP_NS, attribute_query
from unified_messaging.mycarenet.throttling import MailboxThrottled
from unified_messaging.mycarenet.wsse import utc_now
from unified_messaging.mycarenet.xmlenc import XENC_NS, DecryptionError, decrypt_element
from unified_messaging.xmlsafe import UnsafeXml, parse_xml

log = logging.getLogger(__name__)

MESSAGE_NAME = "MDA"
CONTENT_TYPE = "text/xml"
QUERY_LIST = f"{{{EXT_NS}}}AttributeQueryList"
RESPONSE_LIST = f"{{{EXT_NS}}}ResponseList"
RESPONSE = f"{{{SAMLP_NS}}}Response"


class Mailbox(Protocol):
    """What MDA needs of a GenAsync client (``GenAsyncClient`` or the seam's ``RenewingGenAsync``)."""

    care_provider: CareProvider

    def post(self, stream: io.BytesIO, **options: object) -> PostResult: ...

    def get(self, **options: object) -> MailboxContent: ...

    def confirm(self, **options: object) -> None: ...


def attribute_query_list(questions: Mapping[str, InsurabilityQuery], issued: datetime) -> etree._Element:
    """The ``AttributeQueryList`` of the queries, each with its ID (the keys), in the given order."""
    root = etree.Element(QUERY_LIST, nsmap={"ext": EXT_NS, "samlp": SAMLP_NS, "saml": SAML_NS})
    for identifier, query in questions.items():
        root.append(attribute_query(query, identifier, issued))
    return root


@dataclass
class Collected:
    """What one ``get`` brought for a post: the answers by query ID (or why one could not be read),
    and the messages and TAcks to confirm once the answers are written."""

    answers: dict[str, InsurabilityAnswer | UpstreamFault] = field(default_factory=dict)
    messages: list[ReceivedMessage] = field(default_factory=list)
    tacks: list[ReceivedTAck] = field(default_factory=list)
    retry_after: float | None = None
    """Set when the platform refused the get as too soon: the seconds to wait before the next one."""

    def missing(self, identifiers: Sequence[str]) -> list[str]:
        return [i for i in identifiers if i not in self.answers]

    def merge(self, other: "Collected") -> None:
        """Add what a later get brought (a message or TAck delivered again counts once)."""
        self.answers.update(other.answers)
        keys = {m.key for m in self.messages}
        self.messages += [m for m in other.messages if m.key not in keys]
        contents = {t.tack.content for t in self.tacks}
        self.tacks += [t for t in other.tacks if t.tack.content not in contents]


class MemberDataAsync:
    """MDA over one care provider's GenAsync mailbox (the memberData address)."""

    def __init__(self, mailbox: Mailbox, decryption_keys: Callable[[], Sequence[KeyEntry]], *,
                 is_test: bool = True, now: Callable[[], datetime] = utc_now) -> None:
        self.mailbox = mailbox
        self._keys = decryption_keys
        self._is_test = is_test
        self._now = now

    @property
    def care_provider(self) -> CareProvider:
        return self.mailbox.care_provider

    def message(self, questions: Mapping[str, InsurabilityQuery]) -> bytes:
        """The blob of a post: the ``AttributeQueryList`` as sent."""
        for query in questions.values():
            if query.care_provider.nihii != self.care_provider.nihii:
                raise ValueError("every query of an MDA post is for the mailbox's care provider (the Issuer)")
        return etree.tostring(attribute_query_list(questions, self._now()), xml_declaration=True, encoding="UTF-8")

    def post(self, questions: Mapping[str, InsurabilityQuery], input_reference: str) -> PostResult:
        """Post the queries; a refused post comes back as a failure TAck (``result.tack.success``)."""
        blob = self.message(questions)
        result = self.mailbox.post(io.BytesIO(blob), input_reference=input_reference, destination=None,
                                   is_test=self._is_test, message_name=MESSAGE_NAME, content_type=CONTENT_TYPE,
                                   deflate=False, xades=False)
        log.info("MDA post %s: %d queries, %s (reference %s)", input_reference, len(questions),
                 "accepted" if result.tack.success else "refused", result.tack.reference)
        return result

    def collect(self, questions: Mapping[str, InsurabilityQuery], input_reference: str, *,
                max_messages: int = 1000) -> Collected:
        """One ``get``: the answers to ``questions`` (of the post ``input_reference``) there are now.

        A get refused as too soon gives nothing but ``retry_after``; otherwise raises like
        ``GenAsyncClient.get``.  Messages of other posts are left in the mailbox, unconfirmed, for
        their own batch."""
        try:
            content = self.mailbox.get(max_messages=max_messages, max_tacks=max_messages,
                                       message_names=(MESSAGE_NAME,))
        except MailboxThrottled as throttled:
            return Collected(retry_after=throttled.wait_seconds)
        collected = Collected(tacks=[t for t in content.tacks if t.tack.input_reference == input_reference])
        keys = list(self._keys())
        for message in content.messages:
            responses = _responses(message, keys)
            if message.input_reference != input_reference and not any(
                    r.get("InResponseTo") in questions for r in responses):
                continue
            collected.messages.append(message)
            audit_reference = message.nip_reference or message.reference
            for response in responses:
                identifier = response.get("InResponseTo", "")
                query = questions.get(identifier)
                if query is None:
                    log.warning("MDA %s: an answer to no query of this post (%s); it is confirmed with the rest",
                                input_reference, identifier or "no InResponseTo")
                    continue
                data = etree.tostring(response)
                try:
                    collected.answers[identifier] = read_answer(query, lambda: data, audit_reference, keys)
                except UpstreamFault as fault:
                    collected.answers[identifier] = fault
        return collected

    @staticmethod
    def empty() -> Collected:
        return Collected()

    def confirm(self, collected: Collected) -> None:
        """Tell the platform the answers are stored: it will not deliver them again."""
        hashes = [m.hash_value for m in collected.messages if m.hash_value]
        references = [m.reference for m in collected.messages if not m.hash_value and m.reference]
        self.mailbox.confirm(message_hashes=hashes, message_references=references,
                             tack_contents=[t.tack.content for t in collected.tacks])


def _responses(message: ReceivedMessage, keys: Sequence[KeyEntry]) -> list[etree._Element]:
    """The SAML Responses a message holds (one, or a ``ResponseList``, encrypted whole or not); none
    when it cannot be read."""
    try:
        document = parse_xml(message.content)
        if document.tag == f"{{{XENC_NS}}}EncryptedData":
            document = decrypt_element(document, keys)
    except (UnsafeXml, DecryptionError) as exc:
        log.warning("MDA message %s cannot be read (%s); left unconfirmed", message.reference, exc)
        return []
    if document.tag == RESPONSE_LIST:
        return list(document.iterfind(RESPONSE))
    return [document]

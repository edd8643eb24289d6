"""The simulated GenAsync mailbox (post, get, confirm) with the insurers' eFact answers over time.

What is simulated, and how:

* ``post`` checks the request against our XSD and its XAdES-BES (``simulator.xades_t``: faults
  ``SOA-03007``, ``SIM-SEC-23``, ``SIM-SEC-24``), refuses (failure TAck) a Detail that is not a
  deflated 920000 sending, and otherwise accepts it with a success TAck whose ``Reference`` is a
  fresh 14-digit NIP reference.  The TAck is also queued in the mailbox (``get``'s TAckResponse)
  until confirmed, as the platform does.  Every post is counted per InputReference
  (``genasync.posts.<ref>``): the proof that a file was sent exactly once.
* The insurers' answers are decided by the content, once, when the first one falls due:

  ========================================================  ====================================
  what the sending holds                                    answers (delays are the timings)
  ========================================================  ====================================
  errors in segment 200/300 or the summaries 95/96, an      920999 (refused at reception)
  invoicing month after the creation date, or a zone 204
  already posted to this mailbox (duplicate: zone 301 40)
  a blocking error (an impossible date of service, a        931000, then 920099 type 01
  nomenclature code in ``blocking_codes``)
  more erroneous records than ``max_error_percentage``      931000, then 920099 type 02
  (check digits, control numbers, ``refused_codes``...)
  anything else                                             931000, 920098 (errors listed),
                                                            920900 (amounts, refused lines)
  ========================================================  ====================================

* ``get`` is refused with a GenAsync fault "Not enough time..." when it follows the previous
  accepted ``get`` of the same mailbox within ``min_get_interval``; otherwise it returns the due,
  unconfirmed messages (every time until confirmed) and the unconfirmed TAcks, at most ``Max`` of
  each (0: none) and none of a query whose ``Include`` is false.  The rule holds for every
  ``get``, one asking for nothing too (the configuration check's probe): the platform's throttling
  is not documented to spare it.  The security checks (signature, token, licence) run before it,
  so a "Not enough time" answer proves they passed.
* Access (``simulator.access``): a call in the caller's own name needs a quality that may
  invoice, else the fault ``SOA-01002``.
* ``confirm`` removes messages (by hash or reference) and TAcks (by content or reference).
* Probative values: each message and TAck comes with a XAdES-T signed with the platform's key
  (``simulator.xades_t``; its time-stamp is the simulator's own token, not RFC 3161).
* The message names of the feedback (931000/920999 as HCPAFD, 920098/920099 as HCPVWR, 920900 as
  HCPFAC) are the simulator's assumption; the gateway reads the message code from the content.

Mailboxes are kept per care provider (``Origin/CareProvider/Nihii/Value``), in memory.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import threading
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Callable

from cryptography import x509
from lxml import etree

from unified_messaging.simulator import feedback_writer as writer
from unified_messaging.efact.layout import HEADER_LENGTH, NOMENCLATURE, RECORD_LENGTH, SENDING_CODE
from unified_messaging.efact.report import ValidationReport
from unified_messaging.efact.validator import validate_bytes
from unified_messaging.mycarenet.genasync import (
    APPLIES_TO_PREFIX,
    COMMON_NS,
    DESTINATION_PREFIX,
    DESTINATIONS,
    GENASYNC_NS,
    TACK_FAILURE,
    TACK_SUCCESS,
    TYPES_NS,
    inflate,
)
from unified_messaging.mycarenet.keystore import KeyEntry
from unified_messaging.mycarenet.wsse import utc_now
from unified_messaging.simulator.counters import Counters
from unified_messaging.simulator.genasync_queries import (
    addressed_to, check_mailbox_address, included, max_items, throttled,
)
from unified_messaging.simulator.genins import SCHEMA_DIR, SchemaGate
from unified_messaging.simulator.references import NipReferences
from unified_messaging.simulator.access import refuse_without_access
from unified_messaging.simulator.soap import SoapRequest
from unified_messaging.simulator.xades_t import SimulatedXades

log = logging.getLogger(__name__)

GENASYNC_PATH = "/GenericAsync/v1"
GENASYNC_WSDL = "genasync-v1.wsdl"
GENASYNC_XSD = SCHEMA_DIR / "genasync-v1.xsd"
POST = etree.QName(GENASYNC_NS, "post")
GET = etree.QName(GENASYNC_NS, "get")
CONFIRM = etree.QName(GENASYNC_NS, "confirm")
MAX_POST_BYTES = 64 * 1024 * 1024
MAX_INFLATED_BYTES = 256 * 1024 * 1024
ISSUER = "urn:nip:issuer:mycarenet"
MESSAGE_NAMES = {"931000": "HCPAFD", "920999": "HCPAFD", "920098": "HCPVWR", "920099": "HCPVWR",
                 "920900": "HCPFAC"}
_HEADER_RECORDS = frozenset({"200", "300", "95", "96"})


def _g(name: str) -> str:
    return f"{{{GENASYNC_NS}}}{name}"


def _c(name: str) -> str:
    return f"{{{COMMON_NS}}}{name}"


def _t(name: str) -> str:
    return f"{{{TYPES_NS}}}{name}"


@dataclass(frozen=True)
class FeedbackTimings:
    """Seconds after the post at which each answer falls due.

    The defaults are the demo's: a good file goes from OK to DONE within a minute when the
    gateway polls every 15 s or so.  Tests use fractions of a second.
    """

    acknowledgement: float = 5.0
    detailed: float = 15.0
    settlement: float = 30.0


@dataclass(frozen=True)
class ContentRules:
    """The insurers' checks the simulator plays (see the module docstring)."""

    max_error_percentage: Decimal = Decimal("5.00")
    refused_codes: frozenset[str] = frozenset({"9999990"})
    blocking_codes: frozenset[str] = frozenset({"9999991"})


@dataclass
class _Message:
    code: str
    due: datetime
    input_reference: str
    nip_reference: str
    reference: str
    deflated: bytes
    hash_value: bytes
    xades: bytes
    deliveries: int = 0
    content_type: str = "text/plain"
    encoding: str = "deflate"  # "none" (MDA): ``deflated`` holds the content as it is

    @property
    def name(self) -> str:
        return MESSAGE_NAMES.get(self.code, self.code)


@dataclass
class _Tack:
    attributes: dict[str, str]
    content: bytes
    xades: bytes
    deliveries: int = 0

    @property
    def reference(self) -> str:
        return self.attributes.get("Reference", "")


@dataclass
class _Posted:
    """One accepted post whose answers are not all produced yet."""

    input_reference: str
    nip_reference: str
    content: bytes
    is_test: bool
    posted_at: datetime
    duplicate: bool
    produced: int = 0
    plan: list[tuple[float, str, Callable[[], bytes]]] | None = None


@dataclass
class _Mailbox:
    messages: list[_Message] = field(default_factory=list)
    tacks: list[_Tack] = field(default_factory=list)
    pending: list[_Posted] = field(default_factory=list)
    zone_204s: set[str] = field(default_factory=set)
    last_get: datetime | None = None


class GenAsyncService:
    """The GenAsync operations for the simulator's registry (``register(simulator)``); the MDA
    mailbox (``simulator.memberdata_async``) shares its get and confirm, with its own counters."""

    counter_prefix = "genasync"

    def __init__(self, *, now: Callable[[], datetime] = utc_now, timings: FeedbackTimings = FeedbackTimings(),
                 min_get_interval: float = 10.0, rules: ContentRules = ContentRules(),
                 counters: Counters | None = None, signing_entry: KeyEntry | None = None,
                 trusted_ca: x509.Certificate | None = None) -> None:
        self._now = now
        self.timings = timings
        self.min_get_interval = min_get_interval
        self.rules = rules
        self.counters = counters if counters is not None else Counters()
        self._xades = SimulatedXades(trusted_ca=trusted_ca, signing_entry=signing_entry, now=now)
        self._schema = SchemaGate(GENASYNC_XSD)
        self._references = NipReferences(today=lambda: self._now().date())
        self._lock = threading.Lock()
        self._mailboxes: dict[str, _Mailbox] = {}

    def register(self, simulator) -> None:
        """Add the GenAsync endpoint and its three operations to a ``Simulator``."""
        self.counters = simulator.counters
        endpoint = simulator.add_endpoint(GENASYNC_PATH, "genasync", GENASYNC_WSDL, max_request_bytes=MAX_POST_BYTES)
        simulator.add_operation(endpoint, POST, "post", self.post)
        simulator.add_operation(endpoint, GET, "get", self.get)
        simulator.add_operation(endpoint, CONFIRM, "confirm", self.confirm)

    # -- post --

    def post(self, request: SoapRequest) -> etree._Element:
        self._schema.check(request.payload)
        payload = request.payload
        self._check_access(request, payload)
        common = payload.find(_g("CommonInput"))
        input_reference = (common.findtext(_c("InputReference")) or "").strip()
        is_test = (common.findtext(f"{_c('Request')}/{_c('IsTest')}") or "").strip() in ("true", "1")
        detail = payload.find(_g("Detail"))
        blob, unreadable = _blob_file(detail)
        self._xades.check_post(payload.findtext(_g("Xades-t")), blob, detail.get("Id"), request.context.get("caller"))
        self.counters.increment(f"genasync.posts.{input_reference or '-'}")
        refusal, content = self._read_detail(detail, input_reference, addressed_to(request), blob, unreadable)
        tack = self._new_tack(request, input_reference, refusal)
        reference = tack.reference
        with self._lock:
            mailbox = self._mailbox(payload)
            mailbox.tacks.append(tack)
            if not refusal:
                duplicate = content[20:34].decode("latin-1") in mailbox.zone_204s
                mailbox.zone_204s.add(content[20:34].decode("latin-1"))
                mailbox.pending.append(_Posted(input_reference, reference, content, is_test, self._now(), duplicate))
        log.info("genasync post %s: %s, reference %s", input_reference, "refused" if refusal else "accepted",
                 reference)
        return _post_response(tack)

    def _new_tack(self, request: SoapRequest, input_reference: str, refusal: str | None) -> _Tack:
        """The TAck of a post (success, or failure with ``refusal``), with a fresh reference and its XAdES-T."""
        reference = self._references.next()
        major = TACK_FAILURE if refusal else TACK_SUCCESS
        attributes = {"Issuer": ISSUER, "AppliesTo": APPLIES_TO_PREFIX + input_reference, "ResultMajor": major,
                      "Reference": reference}
        if refusal:
            attributes["ResultMinor"] = "urn:nip:tack:result:minor:invalid:content"
            attributes["ResultMessage"] = refusal
        content = hmac.new(major.encode("utf-8"), request.raw, hashlib.sha256).digest()
        return _Tack(attributes, content, self._xades.sign(content, f"tack-{reference}", deflated=False))

    def _read_detail(self, detail: etree._Element, input_reference: str, to: str | None, content: bytes,
                     unreadable: str | None) -> tuple[str | None, bytes]:
        if to is not None and (not to.startswith(DESTINATION_PREFIX) or to[len(DESTINATION_PREFIX):] not in DESTINATIONS):
            return f"The destination {to!r} is not an insurers' federation.", b""
        if detail.get("MessageName") != "HCPFAC":
            return f"The message name {detail.get('MessageName')!r} is not accepted here (HCPFAC).", b""
        if not input_reference:
            return "The CommonInput has no InputReference.", b""
        if unreadable:
            return f"The Detail cannot be read: {unreadable}.", b""
        if not content.startswith(SENDING_CODE.encode()) or len(content) < HEADER_LENGTH + RECORD_LENGTH:
            return "The Detail is not an eFact 920000 sending.", b""
        if content[20:34].decode("latin-1") != input_reference:
            return "The InputReference is not the zone 204 of the sending.", b""
        return None, content

    # -- get --

    def get(self, request: SoapRequest) -> etree._Element:
        self._schema.check(request.payload)
        check_mailbox_address(request, "get")
        payload = request.payload
        self._check_access(request, payload)
        now = self._now()
        message_query = payload.find(_g("MsgQuery"))
        tack_query = payload.find(_g("TAckQuery"))
        names = set((message_query.findtext(_g("MessageNames")) or "").split())
        with self._lock:
            mailbox = self._mailbox(payload)
            if mailbox.last_get is not None and (now - mailbox.last_get).total_seconds() < self.min_get_interval:
                self.counters.increment(f"{self.counter_prefix}.throttled")
                wait = self.min_get_interval - (now - mailbox.last_get).total_seconds()
                raise throttled(wait)
            mailbox.last_get = now
            self.counters.increment(f"{self.counter_prefix}.answered")
            self._produce_due(mailbox, now)
            messages = [m for m in mailbox.messages if m.due <= now and (not names or m.name in names)]
            messages = messages[:max_items(message_query)] if included(message_query) else []
            tacks = mailbox.tacks[:max_items(tack_query)] if included(tack_query) else []
            for item in (*messages, *tacks):
                item.deliveries += 1
                again = "redelivered" if item.deliveries > 1 else "delivered"
                self.counters.increment(f"{self.counter_prefix}.{again}")
        response = etree.Element(_g("getResponse"), nsmap={"ga": GENASYNC_NS, "c": COMMON_NS})
        result = etree.SubElement(response, _g("return"), MsgCount=str(len(messages)), TAckCount=str(len(tacks)))
        for message in messages:
            node = etree.SubElement(result, _g("MsgResponse"))
            output = etree.SubElement(node, _g("CommonOutput"))
            etree.SubElement(output, _c("InputReference")).text = message.input_reference
            etree.SubElement(output, _c("NIPReference")).text = message.nip_reference
            etree.SubElement(output, _c("OutputReference")).text = message.reference
            blob = etree.SubElement(node, _g("Detail"), ContentType=message.content_type,
                                    ContentEncoding=message.encoding, MessageName=message.name,
                                    Id=f"blob-{message.reference}",
                                    HashValue=base64.b64encode(message.hash_value).decode("ascii"),
                                    Reference=message.reference)
            blob.text = base64.b64encode(message.deflated).decode("ascii")
            etree.SubElement(node, _g("Xades-t")).text = base64.b64encode(message.xades).decode("ascii")
        for tack in tacks:
            node = etree.SubElement(result, _g("TAckResponse"))
            node.append(_tack_element(_g("TAck"), tack.attributes, tack.content))
            etree.SubElement(node, _g("Xades-t")).text = base64.b64encode(tack.xades).decode("ascii")
        return response

    def _produce_due(self, mailbox: _Mailbox, now: datetime) -> None:
        """Turn the answers that fell due into mailbox messages (the plan is decided on first need)."""
        for posted in list(mailbox.pending):
            elapsed = (now - posted.posted_at).total_seconds()
            if posted.plan is None and elapsed >= self.timings.acknowledgement:
                posted.plan = self._plan(posted)
            for delay, code, build in (posted.plan or [])[posted.produced:]:
                if elapsed < delay:
                    break
                content = build()
                deflated = _deflate(content)
                reference = self._references.next()
                mailbox.messages.append(_Message(
                    code=code, due=posted.posted_at + timedelta(seconds=delay),
                    input_reference=posted.input_reference, nip_reference=posted.nip_reference,
                    reference=reference, deflated=deflated, hash_value=hashlib.sha256(deflated).digest(),
                    xades=self._xades.sign(content, f"blob-{reference}", deflated=True)))
                posted.produced += 1
                self.counters.increment(f"genasync.feedback.{code}")
            if posted.plan is not None and posted.produced >= len(posted.plan):
                mailbox.pending.remove(posted)

    def _plan(self, posted: _Posted) -> list[tuple[float, str, Callable[[], bytes]]]:
        """The answers for one sending, decided by its content (see the module docstring)."""
        content, timings = posted.content, self.timings
        report = validate_bytes(content, expect_test=posted.is_test)
        header_errors = self._header_errors(report, content, posted.duplicate)
        if header_errors:
            return [(timings.acknowledgement, "920999", lambda: _build_920999(content, header_errors))]
        errors, blocking = self._record_errors(report, content)
        acknowledgement = (timings.acknowledgement, "931000", lambda: writer.build_931000(content))
        if blocking:
            return [acknowledgement,
                    (timings.detailed, "920099", lambda: writer.build_920099(content, errors, refusal_type="01"))]
        records = max(1, (len(content) - HEADER_LENGTH) // RECORD_LENGTH)
        percentage = (Decimal(len(errors)) * 100 / records).quantize(Decimal("0.01"))
        if percentage > self.rules.max_error_percentage:
            return [acknowledgement, (timings.detailed, "920099",
                                      lambda: writer.build_920099(content, errors, refusal_type="02",
                                                                  error_percentage=percentage))]
        return [acknowledgement,
                (timings.detailed, "920098", lambda: writer.build_920098(content, errors)),
                (timings.settlement, "920900", lambda: writer.build_920900(content, errors))]

    @staticmethod
    def _header_errors(report: ValidationReport, content: bytes, duplicate: bool) -> list[writer.HeaderError]:
        found = []
        for issue in report.errors:
            if issue.record_type in _HEADER_RECORDS and issue.zone and issue.zone.isdigit() and len(issue.zone) == 3:
                found.append(writer.HeaderError(issue.zone, "20"))
        summary = report.summary
        if summary.invoicing_month and summary.creation_date and summary.invoicing_month > summary.creation_date[:6]:
            found.append(writer.HeaderError("300", "30"))
        if duplicate:
            found.append(writer.HeaderError("301", "40"))
        if not found and any(i.record_type in _HEADER_RECORDS for i in report.errors):
            found.append(writer.HeaderError("300", "20"))
        return found

    def _record_errors(self, report: ValidationReport, content: bytes) -> tuple[dict[int, list[str]], bool]:
        errors: dict[int, list[str]] = {}
        blocking = False
        for issue in report.errors:
            if issue.record_index is None or issue.record_type in _HEADER_RECORDS:
                continue
            zone = int(issue.zone) if issue.zone and issue.zone.isdigit() and int(issue.zone) < 100 else 1
            letter = "B" if (issue.record_type == "50" and zone == 5) else "R"
            blocking |= letter == "B"
            errors.setdefault(issue.record_index, []).append(writer.slot(letter, issue.record_type, zone, 1))
        for index in range((len(content) - HEADER_LENGTH) // RECORD_LENGTH):
            start = HEADER_LENGTH + index * RECORD_LENGTH
            record = content[start:start + RECORD_LENGTH].decode("latin-1")
            if record[:2] not in ("50", "51", "52"):
                continue
            code = record[NOMENCLATURE]
            if code in self.rules.blocking_codes:
                errors.setdefault(index, []).append(writer.slot("B", record[:2], 4, 1))
                blocking = True
            elif code in self.rules.refused_codes:
                errors.setdefault(index, []).append(writer.slot("R", record[:2], 4, 1))
        return {index: codes[:3] for index, codes in errors.items()}, blocking

    # -- confirm --

    def confirm(self, request: SoapRequest) -> etree._Element:
        self._schema.check(request.payload)
        check_mailbox_address(request, "confirm")
        payload = request.payload
        self._check_access(request, payload)
        hashes = {base64.b64decode(v) for v in (payload.findtext(_g("MsgHashValues")) or "").split()}
        message_refs = set((payload.findtext(_g("MsgRefValues")) or "").split())
        tack_contents = {base64.b64decode(v) for v in (payload.findtext(_g("TAckContents")) or "").split()}
        tack_refs = set((payload.findtext(_g("TAckReferences")) or "").split())
        with self._lock:
            mailbox = self._mailbox(payload)
            kept = [m for m in mailbox.messages if m.hash_value not in hashes and m.reference not in message_refs]
            confirmed = len(mailbox.messages) - len(kept)
            mailbox.messages = kept
            tacks = [t for t in mailbox.tacks if t.content not in tack_contents and t.reference not in tack_refs]
            confirmed_tacks = len(mailbox.tacks) - len(tacks)
            mailbox.tacks = tacks
        self.counters.increment(f"{self.counter_prefix}.confirmed.messages", confirmed)
        self.counters.increment(f"{self.counter_prefix}.confirmed.tacks", confirmed_tacks)
        return etree.Element(_g("confirmResponse"), nsmap={"ga": GENASYNC_NS})

    # -- helpers --

    def _check_access(self, request: SoapRequest, payload: etree._Element) -> None:
        refuse_without_access(request.context.get("caller"), _care_provider_nihii(payload))

    def pending_messages(self) -> int:
        """Messages produced and not confirmed, over all mailboxes (for tests)."""
        with self._lock:
            return sum(len(m.messages) for m in self._mailboxes.values())

    def _mailbox(self, payload: etree._Element) -> _Mailbox:
        return self._mailboxes.setdefault(_care_provider_nihii(payload), _Mailbox())


def _care_provider_nihii(payload: etree._Element) -> str:
    """The mailbox's owner: the request's ``Origin/CareProvider/Nihii/Value``."""
    return next((node.text.strip() for node in payload.iter(_c("Value"))
                 if node.getparent() is not None and node.getparent().tag == _c("Nihii") and node.text), "")


def _build_920999(content: bytes, header_errors: list[writer.HeaderError]) -> bytes:
    usable = []
    for error in header_errors:
        try:
            writer.build_920999(content, [error])
        except ValueError:
            continue
        usable.append(error)
    return writer.build_920999(content, usable or [writer.HeaderError("301", "40")])


def _blob_file(detail: etree._Element) -> tuple[bytes, str | None]:
    """The file a blob holds (what the XAdES transforms yield) and why it cannot be inflated, if so."""
    try:
        raw = base64.b64decode("".join((detail.text or "").split()))
    except ValueError as exc:
        return b"", str(exc)
    try:
        return inflate(raw, limit=MAX_INFLATED_BYTES), None
    except ValueError as exc:
        return raw, str(exc)


def _deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def _post_response(tack: _Tack) -> etree._Element:
    response = etree.Element(_g("postResponse"), nsmap={"ga": GENASYNC_NS})
    response.append(_tack_element(_g("return"), tack.attributes, tack.content))
    return response


def _tack_element(tag: str, attributes: dict[str, str], content: bytes) -> etree._Element:
    node = etree.Element(tag, attrib=attributes)
    node.text = base64.b64encode(content).decode("ascii")
    return node

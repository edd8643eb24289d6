"""The upstream client for MyCareNet GenAsync (``urn:be:cin:nip:async:generic``): post, get, confirm.

eFact sendings travel through this mailbox (MYCARENET.md §2): ``post`` hands a file over and is
answered at once with a technical acknowledgement (TAck); the insurers' answers arrive later and
are fetched with ``get``; ``confirm`` tells the platform they are stored, after which it never
delivers them again.

As for GenericInsurability, zeep builds each request from our own WSDL, the WsseSigningPlugin
signs it (Body + Timestamp with the SAML holder-of-key token), and answers are read with the
hardened parser and plain lxml.  WS-Addressing headers (MessageID, To =
``urn:nip:destination:io:<federation>`` on a post and ``...:MULTICAST`` on get and confirm, Action,
anonymous ReplyTo/FaultTo) are added before signing; the signature covers the Body and the
Timestamp only, as the platform asks.

Outcomes:

* a TAck (success or failure) -> ``TAck``; a failure TAck is an answer, not an exception;
* the platform's throttling fault ("Not enough time" between two ``get``) -> ``MailboxThrottled``
  (``throttling.py``), which says how long to wait;
* any other SOAP fault -> ``UpstreamFault``; no SOAP answer at all -> ``UpstreamUnavailable``.

XAdES (``xades.py``): every post carries, in ``Xades-t``, the XAdES-BES of its blob signed with the
``signer``'s key (returned in ``PostResult.xades`` for the probative-values folder); with a
platform CA (``answer_ca``, as for the answers' signatures) the XAdES-T of each TAck and message a
``get`` brings is verified, else the answer is refused as untrustworthy (``UM-ANSWER-XADES``).

Nothing here logs the licence password, the file's content or a patient's identifier.
"""
from __future__ import annotations

import base64
import hashlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Sequence

import requests
import zeep
from cryptography import x509
from lxml import etree
from zeep import plugins as zeep_plugins

from unified_messaging.domain.errors import UpstreamFault, UpstreamUnavailable
from unified_messaging.mycarenet.throttling import DEFAULT_THROTTLE_WAIT, THROTTLE_TEXT, MailboxThrottled, named_wait
from unified_messaging.mycarenet.faults import answer_trust_advice, soap_fault
from unified_messaging.mycarenet.genasync_blobs import DESTINATIONS, deflate_stream, inflate
from unified_messaging.domain.insurability import CareProvider
from unified_messaging.mycarenet.qualities import care_provider_values
from unified_messaging.mycarenet.trace import ExchangeTracer
from unified_messaging.mycarenet.transport import GatewayTransport, network_reason
from unified_messaging.mycarenet.wsse import DS_NS, WSSE_NS, Clock, SecurityRefusal, utc_now, verify_envelope
from unified_messaging.mycarenet.xades import XadesCredential, sign_digest, verify as verify_xades
from unified_messaging.xmlsafe import UnsafeXml

log = logging.getLogger(__name__)

SCHEMA_DIR = Path(__file__).resolve().with_name("schemas")
WSDL_PATH = SCHEMA_DIR / "genasync-v1.wsdl"

SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
GENASYNC_NS = "urn:be:cin:nip:async:generic"
COMMON_NS = "urn:be:cin:mycarenet:esb:common:v2"
TYPES_NS = "urn:be:cin:types:v1"
WSA_NS = "http://www.w3.org/2005/08/addressing"
WSA_ANONYMOUS = f"{WSA_NS}/anonymous"
BINDING = f"{{{GENASYNC_NS}}}GenericAsyncSOAP"

TACK_SUCCESS = "urn:nip:tack:result:major:success"
TACK_FAILURE = "urn:nip:tack:result:major:failure"
APPLIES_TO_PREFIX = "urn:nip:reference:input:"
DESTINATION_PREFIX = "urn:nip:destination:io:"
MULTICAST = DESTINATION_PREFIX + "MULTICAST"
"""WS-Addressing ``To`` of ``get`` and ``confirm``, which concern the caller's whole mailbox rather than one
federation: what the official eHealth connector sends (MYCARENET.md), never the endpoint's URL."""
EFACT_MESSAGE_NAME = "HCPFAC"
EFACT_FEEDBACK_NAMES = ("HCPFAC", "HCPAFD", "HCPVWR")
MAX_INPUT_REFERENCE = 14

_PREFIXES = {"soapenv": SOAP11_ENV, "ga": GENASYNC_NS, "common": COMMON_NS, "wsa": WSA_NS}
_NS = {"ga": GENASYNC_NS, "c": COMMON_NS, "t": TYPES_NS, "soapenv": SOAP11_ENV}


@dataclass(frozen=True)
class TAck:
    """A technical acknowledgement: did the platform accept a post (or a message)?"""

    result_major: str
    result_minor: str | None
    result_message: str | None
    issuer: str
    applies_to: str
    reference: str | None
    content: bytes = field(repr=False)

    @property
    def success(self) -> bool:
        return self.result_major == TACK_SUCCESS

    @property
    def input_reference(self) -> str | None:
        """The InputReference the TAck applies to (from ``urn:nip:reference:input:<ref>``)."""
        if self.applies_to.startswith(APPLIES_TO_PREFIX):
            return self.applies_to[len(APPLIES_TO_PREFIX):]
        return None

    def describe(self) -> str:
        outcome = "accepted" if self.success else "refused"
        text = f"MyCareNet {outcome} the file (reference {self.reference or 'none'})"
        details = [part for part in (self.result_minor, self.result_message) if part]
        return text + (": " + "; ".join(details) if details else "")


@dataclass(frozen=True)
class ReceivedTAck:
    """A TAck delivered by ``get`` with its probative value."""

    tack: TAck
    xades: bytes = field(repr=False)


@dataclass(frozen=True)
class ReceivedMessage:
    """One message of the mailbox: the inflated content and what identifies it."""

    input_reference: str | None
    nip_reference: str | None
    output_reference: str | None
    message_name: str
    reference: str | None
    hash_value: bytes | None
    content: bytes = field(repr=False)
    xades: bytes = field(repr=False)

    @property
    def key(self) -> str:
        """A stable identifier for de-duplication (the hash, else the reference)."""
        if self.hash_value:
            return base64.b64encode(self.hash_value).decode("ascii")
        if self.reference:
            return f"ref:{self.reference}"
        return "sha256:" + hashlib.sha256(self.content).hexdigest()


@dataclass(frozen=True)
class MailboxContent:
    messages: list[ReceivedMessage]
    tacks: list[ReceivedTAck]


@dataclass(frozen=True)
class PostResult:
    tack: TAck
    message_id: str
    xades: bytes = field(default=b"", repr=False)
    """The XAdES-BES sent with the post (its probative value)."""


class GenAsyncClient:
    """Calls the GenAsync mailbox for one software licence; thread-safe like GenericInsurabilityClient."""

    def __init__(
        self,
        endpoint: str,
        *,
        licence_username: str = "",
        licence_password: str = "",
        care_provider: CareProvider,
        package_name: str = "unified-messaging",
        timeout: float = 60.0,
        plugins: list | None = None,
        tracer: ExchangeTracer | None = None,
        answer_ca: x509.Certificate | None = None,
        now: Clock = utc_now,
        throttle_wait: float = DEFAULT_THROTTLE_WAIT,
        licence_source: Callable[[], tuple[str, str]] | None = None,
        signer: XadesCredential | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._signer = signer
        self.timeout = timeout
        self.care_provider = care_provider
        self._licence = licence_source or (lambda: (licence_username, licence_password))  # asked per call
        self._package_name = package_name
        self._answer_ca = answer_ca
        self._now = now
        self._throttle_wait = throttle_wait
        self._transport = GatewayTransport(timeout=timeout, tracer=tracer)
        settings = zeep.Settings(strict=True, forbid_dtd=True, forbid_entities=True, forbid_external=True,
                                 xml_huge_tree=True)
        self._zeep = zeep.Client(str(WSDL_PATH), transport=self._transport, plugins=list(plugins or []),
                                 settings=settings)
        self._binding = self._zeep.wsdl.bindings[BINDING]
        self._binding_options = {"address": endpoint}

    # -- the three operations --

    def post(self, stream: BinaryIO, *, input_reference: str, destination: str | None, is_test: bool,
             message_name: str = EFACT_MESSAGE_NAME, content_type: str = "text/plain", deflate: bool = True,
             xades: bool = True) -> PostResult:
        """Post a file (read in chunks and deflated) for ``destination`` (100..900, 690), with its XAdES-BES.

        The asynchronous MemberData (``MessageName=MDA``) posts ``text/xml`` as it is (``deflate=False``:
        ``ContentEncoding=none``), without XAdES (``xades=False``), to no single federation
        (``destination=None``: addressed to ``MULTICAST``, the simulator's assumption as for get and confirm).
        """
        if xades and self._signer is None:
            raise ValueError("a post carries a XAdES: the client needs a signer (key and certificate)")
        if not input_reference or len(input_reference) > MAX_INPUT_REFERENCE:
            raise ValueError("the InputReference has 1 to 14 characters")
        if destination is not None and destination not in DESTINATIONS:
            raise ValueError(f"{destination!r} is not a GenAsync destination")
        started = time.perf_counter()
        file_digest = hashlib.sha256()
        content = deflate_stream(stream, on_chunk=file_digest.update) if deflate else stream.read()
        if not deflate:
            file_digest.update(content)
        signature = sign_digest(file_digest.digest(), "blob", self._signer, self._now()) if xades else b""
        values = {
            "CommonInput": {
                "Request": {"IsTest": is_test},
                "Origin": self._origin(),
                "InputReference": input_reference,
            },
            "Detail": {"_value_1": content, "ContentType": content_type,
                       "ContentEncoding": "deflate" if deflate else "none", "MessageName": message_name, "Id": "blob"},
        }
        if xades:
            values["Xades-t"] = signature
        message_id = f"urn:uuid:{uuid.uuid4()}"
        to = MULTICAST if destination is None else DESTINATION_PREFIX + destination
        answer = self._call("post", values, to=to, message_id=message_id)
        node = answer.find("ga:postResponse/ga:return", _NS)
        if node is None:
            raise _unexpected("MyCareNet answered the post without a TAck")
        tack = read_tack(node)
        log.info("genasync post %s %s to %s: %s, reference %s (%d bytes%s, %.0f ms)", message_name, input_reference,
                 destination or "MULTICAST", "accepted" if tack.success else "refused", tack.reference, len(content),
                 " deflated" if deflate else "", _ms(started))
        return PostResult(tack, message_id, signature)

    def get(self, *, max_messages: int = 100, max_tacks: int = 100,
            message_names: Sequence[str] = EFACT_FEEDBACK_NAMES, include: bool = True) -> MailboxContent:
        """What waits in the mailbox; raises ``MailboxThrottled`` when asked too soon.

        ``include=False`` asks for neither messages nor TAcks (``Include="false"``).
        """
        values = {
            "Origin": self._origin(),
            "MsgQuery": {"Max": max_messages, "MessageNames": list(message_names), "Include": include},
            "TAckQuery": {"Max": max_tacks, "Include": include},
        }
        answer = self._call("get", values)
        node = answer.find("ga:getResponse/ga:return", _NS)
        if node is None:
            raise _unexpected("MyCareNet answered the get without a return element")
        messages = [read_message(item) for item in node.iterfind("ga:MsgResponse", _NS)]
        tacks = [ReceivedTAck(read_tack(item.find("ga:TAck", _NS)), _base64(item.findtext("ga:Xades-t", "", _NS)))
                 for item in node.iterfind("ga:TAckResponse", _NS)]
        for item in (*messages, *tacks):
            self._check_xades(item.xades, item.content if isinstance(item, ReceivedMessage) else item.tack.content)
        log.info("genasync get: %d message(s), %d TAck(s)", len(messages), len(tacks))
        return MailboxContent(messages, tacks)

    def probe(self) -> None:
        """The mailbox's lightest signed call, for the configuration check: a ``get`` asking for
        nothing (``Max`` 0 and ``Include="false"`` for messages and TAcks; 0 is a valid ``xsd:int``
        in the official schema).  It receives nothing and confirms nothing, so the mailbox keeps
        every message.  Raises like ``get`` (``MailboxThrottled`` when asked too soon)."""
        self.get(max_messages=0, max_tacks=0, message_names=(), include=False)

    def confirm(self, *, message_hashes: Iterable[bytes] = (), message_references: Iterable[str] = (),
                tack_contents: Iterable[bytes] = (), tack_references: Iterable[str] = ()) -> None:
        """Tell the platform these messages and TAcks are stored: it will not deliver them again."""
        lists = {"MsgHashValues": [_b64(v) for v in message_hashes], "MsgRefValues": list(message_references),
                 "TAckContents": [_b64(v) for v in tack_contents], "TAckReferences": list(tack_references)}
        if not any(lists.values()):
            return
        self._call("confirm", {"Origin": self._origin()}, lists={k: v for k, v in lists.items() if v})
        values = lists
        log.info("genasync confirm: %s", ", ".join(f"{len(v)} {k}" for k, v in values.items() if v))

    def create_message(self, operation_name: str, values: dict, *, to: str | None = None,
                       message_id: str | None = None,
                       lists: dict[str, list[str]] | None = None) -> tuple[bytes, dict[str, str]]:
        """Build a request as sent: the envelope from the WSDL, WS-Addressing, then the plugins.

        ``lists`` are list-typed elements appended to the request element in the given order, as
        text (zeep 4.3 cannot serialise a list of base64Binary items).
        """
        operation = self._binding.get(operation_name)
        envelope = operation.create(**values).content
        request = envelope.find(f"{{{SOAP11_ENV}}}Body")[0]
        for name, items in (lists or {}).items():
            etree.SubElement(request, f"{{{GENASYNC_NS}}}{name}").text = " ".join(items)
        etree.cleanup_namespaces(envelope, top_nsmap=_PREFIXES)
        _add_addressing(envelope, action=operation.soapaction, to=to or MULTICAST,
                        message_id=message_id or f"urn:uuid:{uuid.uuid4()}")
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{operation.soapaction}"'}
        envelope, headers = zeep_plugins.apply_egress(self._zeep, envelope, headers, operation,
                                                      self._binding_options)
        return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"), headers

    def close(self) -> None:
        self._transport.close()

    # -- plumbing --

    def _origin(self) -> dict:
        username, password = self._licence()
        return {
            "Package": {"Name": {"_value_1": self._package_name},
                        "License": {"Username": username, "Password": password}},
            "CareProvider": care_provider_values(self.care_provider.nihii, self.care_provider.quality),
        }

    def _call(self, operation_name: str, values: dict, **options) -> etree._Element:
        payload, headers = self.create_message(operation_name, values, **options)
        try:
            response = self._transport.post(self.endpoint, payload, headers)
        except requests.RequestException as exc:
            raise UpstreamUnavailable(self.endpoint, network_reason(exc, self.timeout)) from None
        envelope = self._soap_envelope(response)
        self._check_answer_signature(envelope, response.content)
        fault = envelope.find(f"{{{SOAP11_ENV}}}Body/{{{SOAP11_ENV}}}Fault")
        if fault is not None:
            raise self._fault(fault)
        if response.status_code != 200:
            raise UpstreamUnavailable(self.endpoint, f"HTTP {response.status_code} without a SOAP fault")
        return envelope.find(f"{{{SOAP11_ENV}}}Body")

    def _fault(self, fault: etree._Element) -> UpstreamFault:
        text = (fault.findtext("faultstring") or "").strip()
        detail = fault.find(f"detail/{{{GENASYNC_NS}}}fault")
        message = (detail.findtext("t:Message", "", _NS).strip() if detail is not None else "") or text
        if THROTTLE_TEXT.lower() in f"{text} {message}".lower():
            wait = named_wait(f"{message} {text}")
            if wait is None:
                return MailboxThrottled(message or text, self._throttle_wait)
            return MailboxThrottled(message or text, wait, named=True)
        if detail is not None:
            code = detail.findtext("t:FaultCode", "", _NS).strip() or "Server"
            details = tuple(f"{d.findtext('t:DetailCode', '', _NS)}: {d.findtext('t:Message', '', _NS)}".strip()
                            for d in detail.iterfind("t:Details/t:Detail", _NS))
            return UpstreamFault(code, message or "no reason given",
                                 "MyCareNet refused the message: report it to the gateway's administrator.", details)
        return soap_fault(fault)

    def _check_answer_signature(self, envelope: etree._Element, raw: bytes) -> None:
        signature = envelope.find(f"{{{SOAP11_ENV}}}Header/{{{WSSE_NS}}}Security/{{{DS_NS}}}Signature")
        if signature is None or self._answer_ca is None:
            return
        try:
            verify_envelope(raw, trusted_ca=self._answer_ca, now=self._now)
        except SecurityRefusal as refusal:
            raise UpstreamFault(
                "UM-ANSWER-SIGNATURE", f"The answer's signature cannot be trusted: {refusal.message}",
                answer_trust_advice(refusal.code,
                                    "The answer did not come unchanged from MyCareNet: check that no proxy rewrites "
                                    "messages and that [upstream] platform_ca is the certificate authority of the "
                                    "platform; tell the administrator."),
            ) from None

    def _check_xades(self, xades: bytes, content: bytes) -> None:
        """The XAdES-T of a TAck or message, when the platform's CA is known (as for the answers)."""
        if self._answer_ca is None:
            return
        try:
            verify_xades(xades, content, trusted_ca=self._answer_ca, now=self._now, require_timestamp=True)
        except SecurityRefusal as refusal:
            raise UpstreamFault(
                "UM-ANSWER-XADES", f"The probative value (XAdES-T) of an answer cannot be trusted: {refusal.message}",
                answer_trust_advice(refusal.code, "The mailbox's answer is not the platform's signed proof: check "
                                                  "[upstream] platform_ca and tell the administrator."),
            ) from None

    def _soap_envelope(self, response: requests.Response) -> etree._Element:
        what = f"HTTP {response.status_code}"
        if not response.content.strip():
            raise UpstreamUnavailable(self.endpoint, f"{what} with an empty answer")
        try:
            envelope = parse_answer(response.content)
        except UnsafeXml as exc:
            raise UpstreamUnavailable(self.endpoint, f"{what}, the answer is not acceptable XML: {exc}") from None
        if envelope.tag != f"{{{SOAP11_ENV}}}Envelope":
            raise UpstreamUnavailable(self.endpoint, f"{what}, the answer is not a SOAP message")
        return envelope


def parse_answer(data: bytes) -> etree._Element:
    """The hardened parse, allowing large text nodes: a mailbox answer may carry big blobs."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)
    try:
        root = etree.fromstring(data, parser=parser)
    except etree.XMLSyntaxError as exc:
        raise UnsafeXml(f"The XML is not well-formed: {exc}") from None
    if root.getroottree().docinfo.doctype:
        raise UnsafeXml("The XML declares a DOCTYPE; document type declarations are not accepted.")
    return root


def read_tack(node: etree._Element) -> TAck:
    return TAck(
        result_major=node.get("ResultMajor", ""),
        result_minor=node.get("ResultMinor"),
        result_message=node.get("ResultMessage"),
        issuer=node.get("Issuer", ""),
        applies_to=node.get("AppliesTo", ""),
        reference=node.get("Reference"),
        content=_base64(node.text),
    )


def tack_xml(tack: TAck) -> bytes:
    """A TAck written back as XML (for the probative-values folder)."""
    node = etree.Element(f"{{{GENASYNC_NS}}}TAck", nsmap={"ga": GENASYNC_NS})
    for name, value in (("ResultMajor", tack.result_major), ("ResultMinor", tack.result_minor),
                        ("ResultMessage", tack.result_message), ("Issuer", tack.issuer),
                        ("AppliesTo", tack.applies_to), ("Reference", tack.reference)):
        if value is not None:
            node.set(name, value)
    node.text = base64.b64encode(tack.content).decode("ascii")
    return etree.tostring(node, xml_declaration=True, encoding="UTF-8")


def read_message(node: etree._Element) -> ReceivedMessage:
    detail = node.find("ga:Detail", _NS)
    if detail is None:
        raise _unexpected("a MsgResponse without Detail")
    blob = _base64(detail.text)
    content = inflate(blob) if (detail.get("ContentEncoding") or "deflate") == "deflate" else blob
    hash_value = detail.get("HashValue")
    return ReceivedMessage(
        input_reference=_text(node, "ga:CommonOutput/c:InputReference"),
        nip_reference=_text(node, "ga:CommonOutput/c:NIPReference"),
        output_reference=_text(node, "ga:CommonOutput/c:OutputReference"),
        message_name=detail.get("MessageName", ""),
        reference=detail.get("Reference"),
        hash_value=_base64(hash_value) if hash_value else None,
        content=content,
        xades=_base64(node.findtext("ga:Xades-t", "", _NS)),
    )


def _add_addressing(envelope: etree._Element, *, action: str, to: str, message_id: str) -> None:
    header = envelope.find(f"{{{SOAP11_ENV}}}Header")
    if header is None:
        header = etree.Element(f"{{{SOAP11_ENV}}}Header")
        envelope.insert(0, header)
    for name, value in (("Action", action), ("MessageID", message_id), ("To", to)):
        etree.SubElement(header, f"{{{WSA_NS}}}{name}", nsmap={"wsa": WSA_NS}).text = value
    for name in ("ReplyTo", "FaultTo"):
        reply = etree.SubElement(header, f"{{{WSA_NS}}}{name}", nsmap={"wsa": WSA_NS})
        etree.SubElement(reply, f"{{{WSA_NS}}}Address").text = WSA_ANONYMOUS


def _unexpected(what: str) -> UpstreamFault:
    return UpstreamFault("UM-UNEXPECTED-ANSWER", what,
                         "Check that the GenAsync address points at the MyCareNet GenericAsync service.")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _base64(text: str | None) -> bytes:
    return base64.b64decode("".join((text or "").split()))


def _text(node: etree._Element, path: str) -> str | None:
    found = node.find(path, _NS)
    return found.text.strip() if found is not None and found.text else None


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000

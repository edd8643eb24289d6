"""The POST side of ConsultMyCareNet, served by Spyne.

Operations take the body as ``AnyXml`` (bare): the whole wrapper element is validated against the
contract XSD with lxml and the answer is built with lxml, so the wire format cannot drift from
``wsdl/``.  Spyne supplies the SOAP 1.1 / 1.2 envelopes, dispatch by Body element and faults.

The usual GetInsurability call (an envelope with no Header, a valid request, an answer) is answered
by ``SoapEndpoint`` without Spyne: the same parsing, checks and service call, and the answer written
as text into the envelope Spyne would write, byte for byte (``tests/test_soap_fast_path.py``). Spyne's
per-call machinery (contexts, events, its envelope reading and writing) cost about as much CPU as the
rest of the front (``tests/benchmarks/README.md``, "Third pass"). Anything else (another operation, a
Header, a body that is not valid, a fault) goes to Spyne, as before.
"""
from __future__ import annotations

import io
import logging
import math
import re
import threading
from typing import Callable, Iterable

from spyne import AnyXml, Application, ServiceBase, const, rpc
from spyne.error import Fault
from spyne.protocol.soap import Soap11, Soap12
from spyne.server.wsgi import WsgiApplication

from unified_messaging.identifiers import mask_ssins_in_text
from unified_messaging.insurability.contract_xml import E, NotPlainText, answer_to_text, answer_to_xml, query_from_xml
from unified_messaging.insurability.service import InsurabilityService
from unified_messaging.domain.errors import UpstreamUnavailable
from unified_messaging.soap.contract import TNS, Contract
from unified_messaging.soap.legacy_clients import accept_legacy_habits
from unified_messaging.xmlsafe import UnsafeXml, parse_xml

log = logging.getLogger(__name__)

# Spyne logs every client fault (with its text) and every unparsable body on these loggers; our
# answers already say what was wrong, and a body may hold patient data. Keep them quiet.
for _noisy in ("spyne.application.client", "spyne.protocol.soap.soap11.invalid", "spyne.protocol.xml.invalid"):
    logging.getLogger(_noisy).setLevel(logging.CRITICAL)
# Spyne says "Initializing application" once per Application, that is once per SOAP version: we say it
# once ourselves (build_soap_apps).
logging.getLogger("spyne.application").setLevel(logging.WARNING)
# Spyne runs a full gc.collect() at the end of a call when the last one is more than a second old,
# "to return file descriptors in a timely manner" (its file attachments; we have none). With the
# gateway's heap (zeep and XSD schemas, lxml trees) each collection holds the GIL for tens of ms:
# about a quarter of the front's CPU under load (py-spy, tests/benchmarks/README.md). Python's own
# generational collector still runs as usual.
const.MIN_GC_INTERVAL = math.inf


class _DeliberateFaults(logging.Filter):
    """Spyne logs every Fault a service raises with its traceback; ours are deliberate answers (MyCareNet
    unavailable...), logged once in a line by the service.  Anything else Spyne logs is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], Fault))


logging.getLogger("spyne.application").addFilter(_DeliberateFaults())

INTERFACE = "soap"


_DECLARED_ENCODING = re.compile(r"""^(\s*<\?xml[^>]*?)\s+encoding\s*=\s*(["'])[^"']*\2""")


def _reencoded(data: bytes, charset: str) -> bytes:
    """A body in the Content-Type's charset (UTF-16, ISO-8859-1...) as UTF-8 for the parser; its XML
    declaration loses its encoding, which no longer says how the bytes are written.  UTF-16 without a
    byte order mark is read in the order its first character shows (``<`` is 00 3C big-endian)."""
    codec = charset.lower()
    if codec in ("utf-16", "utf16") and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        codec = "utf-16-be" if data[:1] == b"\x00" else "utf-16-le"
    text = data.decode(codec, errors="replace").lstrip("\ufeff")
    return _DECLARED_ENCODING.sub(r"\1", text, count=1).encode("utf-8")


_ENVELOPES = ("http://schemas.xmlsoap.org/soap/envelope/", "http://www.w3.org/2003/05/soap-envelope")


def _refuse_headers_not_understood(root: object) -> None:
    """The gateway processes no SOAP header block: one marked ``mustUnderstand`` (1 or true) gets the
    MustUnderstand fault, as SOAP 1.1 (4.2.3) and 1.2 (5.2.3) require, instead of being ignored."""
    for envelope in _ENVELOPES:
        header = root.find(f"{{{envelope}}}Header")  # type: ignore[attr-defined]
        if header is None:
            continue
        for block in header:
            if not isinstance(block.tag, str):
                continue
            if block.get(f"{{{envelope}}}mustUnderstand", "").strip() in ("1", "true"):
                name = block.tag.split("}", 1)[-1]
                namespace = block.tag[1:].split("}", 1)[0] if block.tag.startswith("{") else ""
                raise Fault("MustUnderstand", f"The header {name} ({namespace or 'no namespace'}) is marked "
                                              "mustUnderstand, but this service processes no SOAP header: "
                                              "send the request without it, or without mustUnderstand.")


class _HardenedParsing:
    """Parse every incoming document with our hardened parser instead of Spyne's, then accept what
    legacy clients send (``legacy_clients``) for the contract's ``operations``."""

    def __init__(self, *args, operations: frozenset[str] = frozenset(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.operations = operations

    def create_in_document(self, ctx, charset=None):  # noqa: ANN001 - Spyne's signature
        data = b"".join(ctx.in_string)
        if charset and not data.lstrip(b"\xef\xbb\xbf").startswith(b"<?xml"):
            try:
                data = _reencoded(data, charset)
            except LookupError:
                raise Fault("Client.UnknownCharset", f"The charset {charset!r} of the Content-Type is not known; "
                                                     "send UTF-8 or ISO-8859-1.") from None
        try:
            root = parse_xml(data)
        except UnsafeXml as exc:
            raise Fault("Client.XMLSyntaxError", str(exc)) from None
        _refuse_headers_not_understood(root)
        if accept_legacy_habits(root, self.operations):
            log.debug("request from a legacy client: unqualified elements or xsi:type on values accepted")
        ctx.in_document = (root, {})


class HardenedSoap11(_HardenedParsing, Soap11):
    pass


class HardenedSoap12(_HardenedParsing, Soap12):
    def gen_fault_codes(self, faultstring):  # noqa: ANN001, ANN201 - Spyne's signature
        """Spyne 1.2 knows only Client (Sender) and Server (Receiver); MustUnderstand is a code of its own."""
        if faultstring.split(".", 1)[0] == "MustUnderstand":
            return f"{self.soap_env}:MustUnderstand", faultstring.split(".")[1:]
        return super().gen_fault_codes(faultstring)


def _make_service(service: InsurabilityService, contract: Contract) -> type[ServiceBase]:
    class ConsultMyCareNet(ServiceBase):
        @rpc(AnyXml, _body_style="bare", _returns=AnyXml,
             _in_message_name=f"{{{TNS}}}Echo", _out_message_name=f"{{{TNS}}}EchoResponse")
        def Echo(ctx, message):  # noqa: N802, N805 - names fixed by the contract
            _validate(ctx, contract)
            text = message.text if message is not None else None
            return E.EchoResult(text or "")

        @rpc(AnyXml, _body_style="bare", _returns=AnyXml,
             _in_message_name=f"{{{TNS}}}GetInsurability",
             _out_message_name=f"{{{TNS}}}GetInsurabilityResponse")
        def GetInsurability(ctx, request):  # noqa: N802, N805
            _validate(ctx, contract)
            query = query_from_xml(request)
            try:
                answer = _consult(service, query, _client_address(ctx))
            except UpstreamUnavailable as exc:
                log.warning("consultation answered with a Server fault: %s", exc)
                raise Fault("Server.UpstreamUnavailable", str(exc)) from None
            return answer_to_xml(answer)

    return ConsultMyCareNet


class _Outcome(threading.local):
    """A consultation ``SoapEndpoint`` already made on this thread, for Spyne to answer with (a fault, or
    an answer it could not write itself) instead of asking the service a second time."""

    pending: object = None


_outcome = _Outcome()


def _consult(service: InsurabilityService, query: object, client: str | None) -> object:
    pending, _outcome.pending = _outcome.pending, None
    if pending is None:
        return service.consult(query, interface=INTERFACE, client=client)  # type: ignore[arg-type]
    if isinstance(pending, Exception):
        raise pending
    return pending


def _validate(ctx, contract: Contract) -> None:  # noqa: ANN001
    problem = contract.validation_error(ctx.in_body_doc)
    if problem:
        # lxml quotes the offending value, which may be a patient's number typed in the wrong field
        raise Fault("Client.SchemaValidation", mask_ssins_in_text(problem))


def _client_address(ctx: object) -> str | None:
    """The caller's address as waitress gives it: the peer, or the real client behind a trusted proxy."""
    environ = getattr(getattr(ctx, "transport", None), "req_env", None) or {}
    return environ.get("REMOTE_ADDR") or None


_SOAP_ENVELOPES = {"1.1": ("http://schemas.xmlsoap.org/soap/envelope/", "soap11env"),
                   "1.2": ("http://www.w3.org/2003/05/soap-envelope", "soap12env")}

StartResponse = Callable[..., object]


class SoapEndpoint:
    """One SOAP version's WSGI application: the usual GetInsurability call answered here (see the module's
    docstring), every other request by ``spyne``, the Spyne application of that version."""

    def __init__(self, spyne: WsgiApplication, version: str, service: InsurabilityService, contract: Contract,
                 operations: frozenset[str]) -> None:
        namespace, prefix = _SOAP_ENVELOPES[version]
        self.spyne = spyne
        self.service = service
        self.contract = contract
        self.operations = operations
        self._envelope = f"{{{namespace}}}Envelope"
        self._header = f"{{{namespace}}}Header"
        self._body = f"{{{namespace}}}Body"
        self._operation = f"{{{TNS}}}GetInsurability"
        self._content_type = spyne.app.out_protocol.mime_type
        self._max_content_length = spyne.max_content_length
        self._head = (f"<?xml version='1.0' encoding='UTF-8'?>\n<{prefix}:Envelope xmlns:{prefix}=\"{namespace}\" "
                      f'xmlns:tns="{TNS}"><{prefix}:Body><tns:GetInsurabilityResponse>')
        self._tail = f"</tns:GetInsurabilityResponse></{prefix}:Body></{prefix}:Envelope>"

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        stream = environ["wsgi.input"]
        declared = environ.get("CONTENT_LENGTH") or ""
        data = stream.read(int(declared)) if declared.isdigit() else stream.read()
        environ["wsgi.input"] = io.BytesIO(data)
        request = self._usual_request(data)
        if request is False:
            return self.spyne(environ, start_response)
        try:
            query = query_from_xml(request)
            answer = self.service.consult(query, interface=INTERFACE, client=environ.get("REMOTE_ADDR") or None)
        except Exception as exc:  # Spyne answers it as it answers the same failure in the operation
            return self._by_spyne(environ, start_response, data, exc)
        try:
            text = answer_to_text(answer)
        except NotPlainText:
            return self._by_spyne(environ, start_response, data, answer)
        payload = (self._head + text + self._tail).encode("utf-8")
        start_response("200 OK", [("Content-Type", self._content_type), ("Content-Length", str(len(payload)))])
        return [payload]

    def _usual_request(self, data: bytes) -> object:
        """The operation's argument (as Spyne gives it) when the request is the usual valid GetInsurability;
        False when Spyne must handle the request (it then reads it again and answers as before)."""
        if len(data) > self._max_content_length or not data.lstrip(b"\xef\xbb\xbf").startswith(b"<?xml"):
            return False  # Spyne's limit, or a body that may need the Content-Type's charset
        try:
            root = parse_xml(data)
        except UnsafeXml:
            return False
        if root.tag != self._envelope or root.find(self._header) is not None:
            return False
        body = root.find(self._body)
        if body is None or len(body) == 0 or body[0].tag != self._operation:
            return False
        if accept_legacy_habits(root, self.operations):
            log.debug("request from a legacy client: unqualified elements or xsi:type on values accepted")
        operation = body[0]
        if self.contract.validation_error(operation):
            return False
        children = operation.getchildren()
        return children[0] if children else None

    def _by_spyne(self, environ: dict, start_response: StartResponse, data: bytes, outcome: object) -> Iterable[bytes]:
        environ["wsgi.input"] = io.BytesIO(data)
        _outcome.pending = outcome
        try:
            return self.spyne(environ, start_response)
        finally:
            _outcome.pending = None


def build_soap_apps(
    service: InsurabilityService, contract: Contract, *, max_content_length: int
) -> dict[str, SoapEndpoint]:
    """One WSGI application per SOAP version, keyed "1.1" and "1.2" (``SoapEndpoint`` over Spyne's)."""
    service_class = _make_service(service, contract)
    operations = frozenset(contract.operations(contract.port_type_of(contract.endpoints[0])))
    apps = {}
    for version, protocol in (("1.1", HardenedSoap11), ("1.2", HardenedSoap12)):
        application = Application(
            [service_class], tns=TNS, name=contract.service_name,
            in_protocol=protocol(validator=None, operations=operations), out_protocol=protocol(),
        )
        apps[version] = SoapEndpoint(WsgiApplication(application, max_content_length=max_content_length),
                                     version, service, contract, operations)
    log.info("SOAP service %s ready: %s", contract.service_name,
             ", ".join(f"{e.name} (SOAP {e.soap_version})" for e in contract.endpoints))
    return apps


def fault_envelope(version: str, code: str, text: str) -> bytes:
    """A SOAP fault built without Spyne, for requests refused before they reach it."""
    if version == "1.2":
        env = "http://www.w3.org/2003/05/soap-envelope"
        soap_code = "Sender" if code == "Client" else "Receiver"
        doc = (f'<soap:Envelope xmlns:soap="{env}"><soap:Body><soap:Fault><soap:Code><soap:Value>'
               f'soap:{soap_code}</soap:Value></soap:Code><soap:Reason><soap:Text xml:lang="en">{{text}}'
               f'</soap:Text></soap:Reason></soap:Fault></soap:Body></soap:Envelope>')
    else:
        env = "http://schemas.xmlsoap.org/soap/envelope/"
        doc = (f'<soap:Envelope xmlns:soap="{env}"><soap:Body><soap:Fault><faultcode>soap:{code}</faultcode>'
               f'<faultstring>{{text}}</faultstring></soap:Fault></soap:Body></soap:Envelope>')
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return ("<?xml version='1.0' encoding='UTF-8'?>\n" + doc.replace("{text}", escaped)).encode("utf-8")


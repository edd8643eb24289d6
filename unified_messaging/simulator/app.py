"""The simulator as one WSGI application: routing, contract files, SOAP dispatch, counters.

Every SOAP call follows the same path: read the bytes, parse the envelope once
(``soap.parse_request``), run the ``interceptors`` (the place for a later WS-Security, SAML or
licence check: each may raise ``SoapFault``), then dispatch on the Body element's qualified name
through the endpoint's operation registry.  Any ``SoapFault`` becomes the platform-style fault.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Callable, Iterable
from urllib.parse import parse_qsl, quote
from wsgiref.util import request_uri

from lxml import etree

from unified_messaging.identifiers import mask_ssins_in_text
from unified_messaging.simulator.chaos import FaultInjection
from unified_messaging.simulator.counters import Counters
from unified_messaging.simulator.genins import REQUEST_ELEMENT, SCHEMA_DIR, GenericInsurabilityService
from unified_messaging.simulator.soap import (
    CONTENT_TYPE,
    MALFORMED_CONTENT,
    NOT_WSDL,
    UNDEFINED,
    SoapFault,
    SoapRequest,
    fault_envelope,
    parse_request,
    response_tree,
    serialize,
)
from unified_messaging.xmlsafe import safe_parser

log = logging.getLogger(__name__)

GENERICINSURABILITY_PATH = "/GenericInsurability/v1"
MAX_REQUEST_BYTES = 1024 * 1024

Interceptor = Callable[[SoapRequest], None]
Handler = Callable[[SoapRequest], etree._Element]
AnswerSigner = Callable[[etree._Element], None]  # signs an answer's envelope in place

_XSD_NS = "http://www.w3.org/2001/XMLSchema"
_WSDL_SOAP_NS = "http://schemas.xmlsoap.org/wsdl/soap/"


@dataclass(frozen=True)
class Operation:
    counter: str
    handler: Handler


@dataclass
class Endpoint:
    """One simulated service address: its contract (WSDL in our schemas folder) and operations."""

    name: str
    wsdl: str
    max_request_bytes: int = MAX_REQUEST_BYTES
    operations: dict[etree.QName, Operation] = field(default_factory=dict)

    @property
    def fault_counter(self) -> str:
        return f"{self.name}.soapFault"


class ContractFiles:
    """Serves our WSDL and XSDs with addresses rewritten to the URL the caller used."""

    def __init__(self) -> None:
        self._files = {p.name: p for p in SCHEMA_DIR.iterdir() if p.suffix in (".wsdl", ".xsd")}

    def render(self, name: str, base_url: str) -> bytes | None:
        path = self._files.get(name)
        if path is None:
            return None
        root = etree.parse(str(path), safe_parser()).getroot()
        for node in root.iter(f"{{{_XSD_NS}}}import", f"{{{_XSD_NS}}}include"):
            location = node.get("schemaLocation")
            if location in self._files:
                node.set("schemaLocation", f"{base_url}?xsd={quote(location)}")
        for node in root.iter(f"{{{_WSDL_SOAP_NS}}}address"):
            node.set("location", base_url)
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


class Simulator:
    """The built-in MyCareNet: a WSGI application speaking the platform's protocols.

    ``latency_ms`` is the least time a SOAP answer takes (the simulator sleeps for what its own
    work did not use), so benchmarks see an upstream of known latency.  ``today`` fixes the date
    the simulated platform believes it is.  ``interceptors`` run on every parsed SOAP request
    before dispatch; raising ``SoapFault`` there refuses the call.
    """

    GENERICINSURABILITY_PATH = GENERICINSURABILITY_PATH

    def __init__(self, *, latency_ms: int = 0, today: Callable[[], date] | None = None) -> None:
        self.latency_ms = latency_ms
        self.counters = Counters()
        self.interceptors: list[Interceptor] = []
        self.answer_signer: AnswerSigner | None = None
        self.faults = FaultInjection()  # upstream chaos on demand (see simulator/chaos.py)
        self.faults.route(GENERICINSURABILITY_PATH, "genins")
        self.genericinsurability = GenericInsurabilityService(today=today or date.today)
        self._contracts = ContractFiles()
        self._endpoints: dict[str, Endpoint] = {}
        self._mounts: dict[str, Callable[..., Any]] = {}
        genins = self.add_endpoint(GENERICINSURABILITY_PATH, "genericinsurability", "GenericInsurability-v1.wsdl")
        self.add_operation(genins, REQUEST_ELEMENT, "getInsurability", self.genericinsurability.get_insurability)

    def add_endpoint(self, path: str, name: str, wsdl: str, *,
                     max_request_bytes: int = MAX_REQUEST_BYTES) -> Endpoint:
        endpoint = Endpoint(name, wsdl, max_request_bytes)
        self._endpoints[path] = endpoint
        self.counters.register(endpoint.fault_counter)
        return endpoint

    def add_operation(self, endpoint: Endpoint, element: etree.QName, name: str, handler: Handler) -> None:
        operation = Operation(f"{endpoint.name}.{name}", handler)
        endpoint.operations[element] = operation
        self.counters.register(operation.counter)

    def mount(self, path: str, app: Callable[..., Any]) -> None:
        """Serve another WSGI application (the STS) at ``path``, beside the SOAP registry."""
        self._mounts[path] = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        return self.faults(environ, start_response, self._route)

    def _route(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        mounted = self._mounts.get(environ.get("PATH_INFO") or "/")
        if mounted is not None:
            return mounted(environ, start_response)
        endpoint = self._endpoints.get(environ.get("PATH_INFO") or "/")
        method = environ.get("REQUEST_METHOD", "GET")
        if endpoint is None:
            return _plain(start_response, "404 Not Found", "No simulated service at this address.")
        if method == "POST":
            status, body = self._soap(endpoint, environ)
            return _send(start_response, status, CONTENT_TYPE, body)
        if method == "GET":
            return self._contract(endpoint, environ, start_response)
        return _plain(start_response, "405 Method Not Allowed", "Use POST for SOAP calls, GET ?wsdl for the contract.",
                      [("Allow", "GET, POST")])

    def _soap(self, endpoint: Endpoint, environ: dict[str, Any]) -> tuple[str, bytes]:
        started = time.perf_counter()
        try:
            request = parse_request(_read_body(environ, endpoint.max_request_bytes), environ)
            for interceptor in self.interceptors:
                interceptor(request)
            operation = endpoint.operations.get(request.operation)
            if operation is None:
                raise SoapFault.client(NOT_WSDL, f"The operation {request.operation.text} is not offered at this "
                                                 "address.")
            self.counters.increment(operation.counter)
            envelope = response_tree(operation.handler(request))
            if self.answer_signer is not None:  # the tree just built, not its bytes parsed again
                self.answer_signer(envelope)
            status, body = "200 OK", serialize(envelope)
        except SoapFault as fault:
            self.counters.increment(endpoint.fault_counter)
            log.warning("%s: SOAP fault %s: %s", endpoint.name, fault.code, mask_ssins_in_text(fault.message))
            status, body = "500 Internal Server Error", fault_envelope(fault)
        except Exception:
            self.counters.increment(endpoint.fault_counter)
            log.exception("%s: unexpected error while answering", endpoint.name)
            fault = SoapFault.server(UNDEFINED, "The simulator could not answer this request; see its log.")
            status, body = "500 Internal Server Error", fault_envelope(fault)
        self._simulate_latency(started)
        return status, body

    def _simulate_latency(self, started: float) -> None:
        remaining = self.latency_ms / 1000 - (time.perf_counter() - started)
        if remaining > 0:
            time.sleep(remaining)

    def _contract(self, endpoint: Endpoint, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        pairs = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        query = {key.lower(): value for key, value in pairs}
        base_url = request_uri(environ, include_query=False)
        if "wsdl" in query:
            name = endpoint.wsdl
        elif query.get("xsd", "").endswith(".xsd"):
            name = query["xsd"]
        else:
            return _plain(start_response, "404 Not Found", "Ask ?wsdl for this service's contract.")
        document = self._contracts.render(name, base_url)
        if document is None:
            return _plain(start_response, "404 Not Found", f"No contract file named {name}.")
        return _send(start_response, "200 OK", CONTENT_TYPE, document)


def _read_body(environ: dict[str, Any], limit: int = MAX_REQUEST_BYTES) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or -1)
    except ValueError:
        length = -1
    if length > limit:
        raise SoapFault.client(MALFORMED_CONTENT, f"The message is larger than {limit} bytes.")
    stream = environ["wsgi.input"]
    raw = stream.read(length) if length >= 0 else stream.read(limit + 1)
    if len(raw) > limit:
        raise SoapFault.client(MALFORMED_CONTENT, f"The message is larger than {limit} bytes.")
    return raw


def _send(start_response: Callable[..., Any], status: str, content_type: str, body: bytes,
          extra: list[tuple[str, str]] | None = None) -> list[bytes]:
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))] + (extra or [])
    start_response(status, headers)
    return [body]


def _plain(start_response: Callable[..., Any], status: str, text: str,
           extra: list[tuple[str, str]] | None = None) -> list[bytes]:
    return _send(start_response, status, "text/plain; charset=utf-8", (text + "\n").encode("utf-8"), extra)

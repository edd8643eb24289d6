"""SOAP 1.1 envelopes and platform-style faults for the simulator.

The eHealth platform answers every technical refusal the same way: a SOAP 1.1 fault whose
``detail`` holds an ``err:SystemError`` (namespace ``urn:be:fgov:ehealth:errors:soa:v1``) with the
side at fault (``Origin``), a ``SOA-xxxxx`` code and a readable message.  This module parses a
request envelope once (with the hardened parser) and builds those answers, so that every
simulated service (and a later security layer) shares one representation of "the request".
"""
from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from unified_messaging.xmlsafe import UnsafeXml, parse_xml

SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOA_ERRORS = "urn:be:fgov:ehealth:errors:soa:v1"
XML_NS = "http://www.w3.org/XML/1998/namespace"
ENVIRONMENT = "Simulation"

CONTENT_TYPE = "text/xml; charset=utf-8"


class SoapFault(Exception):
    """A technical refusal, answered as a SOAP fault (HTTP 500) like the platform does.

    ``side`` is ``Client`` (the caller sent something wrong) or ``Server``; ``code`` is the
    platform's ``SOA-xxxxx`` code; ``message`` says what was wrong in plain English.
    """

    def __init__(self, side: str, code: str, message: str, *, retry: bool | None = None,
                 detail: etree._Element | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.side = side
        self.code = code
        self.message = message
        self.retry = retry
        self.detail = detail

    @classmethod
    def client(cls, code: str, message: str) -> "SoapFault":
        return cls("Client", code, message)

    @classmethod
    def server(cls, code: str, message: str, *, retry: bool | None = None) -> "SoapFault":
        return cls("Server", code, message, retry=retry)


# Platform codes the simulator uses (texts are ours; the codes are the platform's).
MALFORMED_CONTENT = "SOA-03001"
NOT_SOAP = "SOA-03002"
EMPTY_BODY = "SOA-03003"
NOT_WS_I = "SOA-03004"
NOT_WSDL = "SOA-03005"
NOT_XSD = "SOA-03006"
UNDEFINED = "SOA-00001"


@dataclass
class SoapRequest:
    """One incoming SOAP call, parsed once; interceptors may add facts to ``context``."""

    raw: bytes
    envelope: etree._Element
    header: etree._Element | None
    payload: etree._Element
    environ: dict[str, Any]
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def operation(self) -> etree.QName:
        """The qualified name of the Body's first element: what dispatch is keyed on."""
        return etree.QName(self.payload)


def parse_request(raw: bytes, environ: dict[str, Any]) -> SoapRequest:
    """Parse the bytes of a request into a ``SoapRequest`` or raise the fault the platform would."""
    if not raw.strip():
        raise SoapFault.client(NOT_SOAP, "The request has no content; send a SOAP 1.1 envelope.")
    try:
        envelope = parse_xml(raw)
    except UnsafeXml as exc:
        if "DOCTYPE" in str(exc):
            raise SoapFault.client(
                NOT_WS_I, "The message declares a DOCTYPE; SOAP messages may not contain document type "
                          "declarations or entities (WS-I Basic Profile)."
            ) from None
        raise SoapFault.client(NOT_SOAP, str(exc)) from None
    if envelope.tag != f"{{{SOAP11_ENV}}}Envelope":
        root = etree.QName(envelope).text
        raise SoapFault.client(NOT_SOAP, f"The root element is {root}, not a SOAP 1.1 Envelope.")
    header = envelope.find(f"{{{SOAP11_ENV}}}Header")
    body = envelope.find(f"{{{SOAP11_ENV}}}Body")
    if body is None:
        raise SoapFault.client(NOT_SOAP, "The SOAP envelope has no Body.")
    children = [child for child in body if isinstance(child.tag, str)]
    if not children:
        raise SoapFault.client(EMPTY_BODY, "The SOAP Body is empty; it must hold the request element.")
    if len(children) > 1:
        raise SoapFault.client(NOT_WS_I, "The SOAP Body holds more than one element (WS-I Basic Profile allows one).")
    return SoapRequest(raw=raw, envelope=envelope, header=header, payload=children[0], environ=environ)


def _envelope() -> tuple[etree._Element, etree._Element]:
    envelope = etree.Element(f"{{{SOAP11_ENV}}}Envelope", nsmap={"soapenv": SOAP11_ENV})
    body = etree.SubElement(envelope, f"{{{SOAP11_ENV}}}Body")
    return envelope, body


def serialize(envelope: etree._Element) -> bytes:
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


def response_tree(payload: etree._Element) -> etree._Element:
    """The answer's envelope around ``payload``, as a tree (to be signed before it is serialised)."""
    envelope, body = _envelope()
    body.append(payload)
    return envelope


def response_envelope(payload: etree._Element) -> bytes:
    return serialize(response_tree(payload))


_ticket = itertools.count(1)
_ticket_lock = threading.Lock()


def _next_ticket() -> str:
    with _ticket_lock:
        return f"SIM-{next(_ticket):08d}"


def fault_envelope(fault: SoapFault) -> bytes:
    """The SOAP fault for ``fault``: faultcode ``soapenv:Client|Server``, a readable faultstring,
    and the platform's ``SystemError`` detail (whose ``Id`` is a ticket for the helpdesk), or the
    service's own detail element when the fault carries one (GenAsync's ``FaultType``)."""
    envelope, body = _envelope()
    node = etree.SubElement(body, f"{{{SOAP11_ENV}}}Fault")
    etree.SubElement(node, "faultcode").text = f"soapenv:{fault.side}"
    etree.SubElement(node, "faultstring").text = f"{fault.code}: {fault.message}"
    detail = etree.SubElement(node, "detail")
    if fault.detail is not None:
        detail.append(fault.detail)
        return serialize(envelope)
    error = etree.SubElement(detail, f"{{{SOA_ERRORS}}}SystemError", nsmap={"err": SOA_ERRORS})
    error.set("Id", _next_ticket())
    etree.SubElement(error, "Origin").text = fault.side
    etree.SubElement(error, "Code").text = fault.code
    message = etree.SubElement(error, "Message")
    message.set(f"{{{XML_NS}}}lang", "en")
    message.text = fault.message
    if fault.retry is not None:
        etree.SubElement(error, "Retry").text = "true" if fault.retry else "false"
    etree.SubElement(error, f"{{{SOA_ERRORS}}}Environment").text = ENVIRONMENT
    return serialize(envelope)

"""The upstream client for MyCareNet MemberData v1 (``MemberDataConsultation``, synchronous).

The request is the MyCareNet commons v3 ``SendRequestType``: ``CommonInput`` (the package and its
licence, the care provider, the sender), and a ``Detail`` blob holding the SAML 2.0
``AttributeQuery`` (``memberdata_saml``), whose ``ID`` is the request's ``Id`` and whose ``Issuer``
is the care provider's NIHII (the platform cross-checks both).  The envelope is built with lxml
(the official WSDL stays in ``../shared``; tests validate every message against it) and signed by
the same zeep plugin as the GenericInsurability calls.

The answer's ``Return/Detail`` holds the SAML ``Response``; the platform encrypts its assertions
(``EncryptedAssertion``) for the caller's encryption certificate, so they are decrypted with the
keystore's encryption keys (``xmlenc``) and then read onto the same ``InsurabilityAnswer`` as
GenericInsurability's.  Outcomes are those of ``GenericInsurabilityClient``: an answer (a business
refusal in ``answer.fault``), ``UpstreamFault`` for a SOAP fault, ``UpstreamUnavailable``.
"""
from __future__ import annotations

import base64
import logging
import uuid
from typing import Any, Callable, Sequence

import requests
from cryptography import x509
from lxml import etree

from unified_messaging.domain.errors import UpstreamFault, UpstreamUnavailable
from unified_messaging.domain.insurability import InsurabilityAnswer, InsurabilityQuery
from unified_messaging.mycarenet.faults import soap_fault
from unified_messaging.mycarenet.insurability import (
    SOAP11_ENV,
    InputReferences,
    check_answer_signature,
    logged_consultation,
    soap_envelope,
)
from unified_messaging.mycarenet.keystore import KeyEntry
from unified_messaging.mycarenet.memberdata_saml import SAML_NS, SAMLP_NS, ResponseReader, attribute_query
from unified_messaging.mycarenet.qualities import active, care_provider_values
from unified_messaging.mycarenet.trace import ExchangeTracer
from unified_messaging.mycarenet.transport import GatewayTransport
from unified_messaging.mycarenet.wsse import Clock, utc_now
from unified_messaging.mycarenet.xmlenc import XENC_NS, DecryptionError, decrypt_element
from unified_messaging.xmlsafe import UnsafeXml, parse_xml

log = logging.getLogger(__name__)

PROTOCOL_NS = "urn:be:fgov:ehealth:mycarenet:memberdata:protocol:v1"
COMMONS_PROTOCOL_NS = "urn:be:fgov:ehealth:mycarenet:commons:protocol:v3"
COMMONS_CORE_NS = "urn:be:fgov:ehealth:mycarenet:commons:core:v3"
SOAP_ACTION = "urn:be:fgov:ehealth:mycarenet:memberdata:protocol:v1:MemberDataConsultation"
SERVICE_NAME = "memberdata"

_NS = {"soapenv": SOAP11_ENV, "md": PROTOCOL_NS, "mcp": COMMONS_PROTOCOL_NS, "mc": COMMONS_CORE_NS,
       "samlp": SAMLP_NS, "saml": SAML_NS, "xenc": XENC_NS}

DecryptionKeys = Callable[[], Sequence[KeyEntry]]
"""The encryption keys the answer may be encrypted for (the acting keystore's encryption entries)."""


def request_id() -> str:
    """An XML ID (``_`` + a UUID), used for the request and its AttributeQuery alike."""
    return f"_{uuid.uuid4()}"


def append_values(parent: etree._Element, values: dict[str, Any], namespace: str = COMMONS_CORE_NS) -> None:
    """Zeep-style values (``{"Nihii": {"Quality": ..., "Value": {"_value_1": ...}}}``) as elements."""
    for name, value in values.items():
        child = etree.SubElement(parent, f"{{{namespace}}}{name}")
        if isinstance(value, dict):
            if "_value_1" in value:
                child.text = str(value["_value_1"])
            append_values(child, {k: v for k, v in value.items() if k != "_value_1"}, namespace)
        else:
            child.text = str(value).lower() if isinstance(value, bool) else str(value)


def sender_values(nihii: str, quality: str) -> dict[str, Any]:
    """``Origin/Sender``: the care provider as a person or an organisation, as its quality is held."""
    row = active().get(quality)
    holder = "PhysicalPerson" if row is None or row.holder == "person" else "Organization"
    return {holder: {"Nihii": {"Quality": quality, "Value": {"_value_1": nihii}}}}


class MemberDataClient:
    """Calls MemberData for the gateway; one instance serves all server threads."""

    def __init__(
        self,
        endpoint: str,
        *,
        decryption_keys: DecryptionKeys,
        licence_source: Callable[[], tuple[str, str]],
        package_name: str = "unified-messaging",
        is_test: bool = True,
        timeout: float = 20.0,
        plugins: list | None = None,
        tracer: ExchangeTracer | None = None,
        answer_ca: x509.Certificate | None = None,
        answer_signer_cbe: str | None = None,
        now: Clock = utc_now,
    ) -> None:
        """``plugins`` are zeep plugins (``WsseSigningPlugin``), applied to each envelope in order."""
        self.endpoint = endpoint
        self.timeout = timeout
        self._decryption_keys = decryption_keys
        self._licence = licence_source
        self._package_name = package_name
        self._is_test = is_test
        self._plugins = list(plugins or [])
        self._answer_ca = answer_ca
        self._answer_signer_cbe = answer_signer_cbe
        self._now = now
        self._transport = GatewayTransport(timeout=timeout, tracer=tracer)
        self._references = InputReferences()

    def get_insurability(self, query: InsurabilityQuery) -> InsurabilityAnswer:
        """Ask MyCareNet; business refusals come back in ``answer.fault``."""
        reference = self._references.next()
        payload, headers = self.create_message(query, reference)
        return logged_consultation(SERVICE_NAME, query, reference, lambda: self._read_reply(
            query, self._transport.exchange(self.endpoint, payload, headers), reference))

    def create_message(self, query: InsurabilityQuery, input_reference: int) -> tuple[bytes, dict[str, str]]:
        """The signed request, as sent."""
        envelope = self.envelope(query, input_reference, request_id())
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{SOAP_ACTION}"'}
        for plugin in self._plugins:
            envelope, headers = plugin.egress(envelope, headers, None, {"address": self.endpoint})
        return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"), headers

    def envelope(self, query: InsurabilityQuery, input_reference: int, identifier: str) -> etree._Element:
        """The unsigned SOAP envelope of a consultation."""
        issued = self._now()
        envelope = etree.Element(f"{{{SOAP11_ENV}}}Envelope", nsmap={"soapenv": SOAP11_ENV})
        etree.SubElement(envelope, f"{{{SOAP11_ENV}}}Header")
        body = etree.SubElement(envelope, f"{{{SOAP11_ENV}}}Body")
        request = etree.SubElement(body, f"{{{PROTOCOL_NS}}}MemberDataConsultationRequest",
                                   nsmap={"md": PROTOCOL_NS, "mcp": COMMONS_PROTOCOL_NS, "mc": COMMONS_CORE_NS},
                                   Id=identifier, IssueInstant=issued.strftime("%Y-%m-%dT%H:%M:%S"))
        common = etree.SubElement(request, f"{{{COMMONS_PROTOCOL_NS}}}CommonInput")
        username, password = self._licence()
        nihii, quality = query.care_provider.nihii, query.care_provider.quality
        append_values(common, {
            "Request": {"IsTest": self._is_test},
            "Origin": {
                "Package": {"Name": {"_value_1": self._package_name},
                            "License": {"Username": username, "Password": password}},
                "CareProvider": care_provider_values(nihii, quality),
                "Sender": sender_values(nihii, quality),
            },
            "InputReference": str(input_reference),
        })
        question = etree.tostring(attribute_query(query, identifier, issued), encoding="UTF-8")
        detail = etree.SubElement(request, f"{{{COMMONS_PROTOCOL_NS}}}Detail", ContentType="text/xml",
                                  ContentEncoding="none")
        detail.text = base64.b64encode(question).decode("ascii")
        return envelope

    def close(self) -> None:
        """Close the pooled connections of every thread."""
        self._transport.close()

    def _read_reply(self, query: InsurabilityQuery, response: requests.Response, reference: int) -> InsurabilityAnswer:
        envelope = soap_envelope(response, self.endpoint)
        fault = envelope.find("soapenv:Body/soapenv:Fault", _NS)
        check_answer_signature(envelope, response.content, is_fault=fault is not None, answer_ca=self._answer_ca,
                               answer_signer_cbe=self._answer_signer_cbe, now=self._now)
        if fault is not None:
            raise soap_fault(fault)
        if response.status_code != 200:
            raise UpstreamUnavailable(self.endpoint, f"HTTP {response.status_code} without a SOAP fault")
        payload = envelope.find("soapenv:Body/md:MemberDataConsultationResponse", _NS)
        if payload is None:
            raise UpstreamFault("UM-UNEXPECTED-ANSWER", "MyCareNet answered without a MemberDataConsultationResponse",
                                "Check that [upstream] memberdata_url points at the MemberData v1 service.")
        echoed = payload.findtext("mcp:Return/mcp:CommonOutput/mc:InputReference", None, _NS)
        if echoed is not None and echoed.strip() != str(reference):
            raise UpstreamFault("UM-ANSWER-MISMATCH", "MyCareNet's answer is not the answer to this request "
                                "(another reference)", "Try again; if it happens again, tell the administrator.")
        audit_reference = payload.findtext("mcp:Return/mcp:CommonOutput/mc:NIPReference", None, _NS)
        blob = payload.findtext("mcp:Return/mcp:Detail", "", _NS)
        return read_answer(query, lambda: base64.b64decode("".join(blob.split()), validate=True),
                           audit_reference.strip() if audit_reference else None, list(self._decryption_keys()))

    def decrypted_response(self, blob: str) -> etree._Element:
        """The SAML Response of a ``Detail`` blob, its encrypted assertions (or itself) decrypted."""
        document = parse_xml(base64.b64decode("".join(blob.split()), validate=True))
        return decrypt_response(document, list(self._decryption_keys()))


def read_answer(query: InsurabilityQuery, raw: Callable[[], bytes], audit_reference: str | None,
                keys: Sequence[KeyEntry]) -> InsurabilityAnswer:
    """A SAML ``Response`` (the bytes ``raw()`` gives, encrypted or not) read onto the answer to ``query``:
    the one mapping of the sync and the asynchronous (MDA) MemberData.  What cannot be decrypted or read,
    or an answer about another patient, raises ``UpstreamFault``."""
    try:
        saml = decrypt_response(parse_xml(raw()), keys)
        answer = ResponseReader(query).read(saml, audit_reference)
    except DecryptionError as exc:
        raise UpstreamFault("UM-ANSWER-ENCRYPTION", f"The MemberData answer cannot be decrypted: {exc}",
                            "Check that [identity] keystore holds the encryption key registered at eHealth "
                            "for this care provider.") from None
    except (AttributeError, ValueError, UnsafeXml) as exc:
        raise UpstreamFault("UM-UNEXPECTED-ANSWER", f"The MemberData answer could not be read ({exc})",
                            "Report this to the gateway's administrator with the time of the call.") from None
    if query.ssin and answer.patient and answer.patient.ssin and answer.patient.ssin != query.ssin:
        raise UpstreamFault("UM-ANSWER-MISMATCH", "MyCareNet's answer is about another patient",
                            "Try again; if it happens again, tell the administrator.")
    return answer


def decrypt_response(document: etree._Element, keys: Sequence[KeyEntry]) -> etree._Element:
    """A SAML Response (or the ``EncryptedData`` holding one) with its encrypted assertions decrypted."""
    if document.tag == f"{{{XENC_NS}}}EncryptedData":
        document = decrypt_element(document, keys)
    return decrypt_assertions(document, keys)


def decrypt_assertions(response: etree._Element, keys: Sequence[KeyEntry]) -> etree._Element:
    """``response`` with each ``saml:EncryptedAssertion`` replaced by the assertion it holds."""
    for wrapper in list(response.iterfind("saml:EncryptedAssertion", _NS)):
        data = wrapper.find("xenc:EncryptedData", _NS)
        if data is None:
            raise DecryptionError("an EncryptedAssertion holds no EncryptedData")
        assertion = decrypt_element(data, keys, wrapper.iterfind("xenc:EncryptedKey", _NS))
        if assertion.tag != f"{{{SAML_NS}}}Assertion":
            raise DecryptionError("an EncryptedAssertion does not hold an Assertion")
        response.replace(wrapper, assertion)
    return response

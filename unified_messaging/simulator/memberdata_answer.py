"""The simulated MemberData answers: the SOAP response and the SAML ``Response`` in its ``Detail``.

An answer has one assertion per topic, as the platform's (see ``reference/samples/mda``):
patient data, one period assertion per insurer coverage (with CT1/CT2 as ``cb1``/``cb2``), payment,
and when they apply the general situation, the hospitalisation and the medical house (attribute
names as ``mycarenet.memberdata_saml`` reads them).  A refusal is a ``Requester`` status with the
second-level code and a ``FaultElement`` (``urn:be:cin:types:v1``) in ``StatusDetail``.
"""
from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Callable

from lxml import etree

from unified_messaging.mycarenet.memberdata import COMMONS_CORE_NS, COMMONS_PROTOCOL_NS, PROTOCOL_NS
from unified_messaging.mycarenet.memberdata_saml import (
    CIN_TYPES_NS,
    CONFIRMATION_METHOD,
    EXT_NS,
    GENERAL_SITUATION,
    HOSPITALISATION,
    INSURABILITY_FACET,
    MEDICAL_HOUSE,
    NIPPIN,
    PATIENT_DATA,
    PAYMENT,
    PERIOD,
    SAML_NS,
    SAMLP_NS,
    SSIN_FORMAT,
    SUCCESS,
    XSI_NS,
)
from unified_messaging.simulator.genins import Insurability

REQUESTER = "urn:oasis:names:tc:SAML:2.0:status:Requester"
SUB_CODES = "urn:be:cin:nippin:SAML:status:"
ISSUER = "urn:be:cin:io:100"
_TIME = "%Y-%m-%dT%H:%M:%S"


@dataclass(frozen=True)
class SamlFault:
    """One MemberData refusal: its second-level status, fault code, detail code and location."""

    sub_code: str  # AttributeQueryError, RequestError, InputError...
    fault_code: str  # INPUT_ERROR, VALIDATION_ERROR...
    detail_code: str
    location: str
    message: str


class AnswerWriter:
    def __init__(self, today: Callable[[], date], now: Callable[[], datetime]) -> None:
        self._today, self._now = today, now

    def envelope_payload(self, question, nip_reference: str, saml: etree._Element) -> etree._Element:
        """``MemberDataConsultationResponse`` with ``saml`` as the ``Return/Detail`` blob."""
        root = etree.Element(f"{{{PROTOCOL_NS}}}MemberDataConsultationResponse",
                             nsmap={"md": PROTOCOL_NS, "mcp": COMMONS_PROTOCOL_NS, "mc": COMMONS_CORE_NS},
                             Id=f"_{uuid.uuid4()}", InResponseTo=question.request_id,
                             IssueInstant=self._now().strftime(_TIME))
        returned = etree.SubElement(root, f"{{{COMMONS_PROTOCOL_NS}}}Return")
        common = etree.SubElement(returned, f"{{{COMMONS_PROTOCOL_NS}}}CommonOutput")
        if question.input_reference:
            etree.SubElement(common, f"{{{COMMONS_CORE_NS}}}InputReference").text = question.input_reference
        etree.SubElement(common, f"{{{COMMONS_CORE_NS}}}NIPReference").text = nip_reference
        detail = etree.SubElement(returned, f"{{{COMMONS_PROTOCOL_NS}}}Detail", ContentType="text/xml",
                                  ContentEncoding="none")
        detail.text = base64.b64encode(etree.tostring(saml, encoding="UTF-8")).decode("ascii")
        return root

    def _response(self, query: etree._Element, status: str, sub_code: str | None = None) -> etree._Element:
        response = etree.Element(f"{{{SAMLP_NS}}}Response", nsmap={"samlp": SAMLP_NS, "saml": SAML_NS, "ext": EXT_NS},
                                 ID=f"_{uuid.uuid4()}", InResponseTo=query.get("ID", ""), Version="2.0",
                                 IssueInstant=self._now().strftime(_TIME))
        etree.SubElement(response, f"{{{SAML_NS}}}Issuer").text = ISSUER
        status_node = etree.SubElement(response, f"{{{SAMLP_NS}}}Status")
        code = etree.SubElement(status_node, f"{{{SAMLP_NS}}}StatusCode", Value=status)
        if sub_code:
            etree.SubElement(code, f"{{{SAMLP_NS}}}StatusCode", Value=SUB_CODES + sub_code)
        return response

    def fault(self, query: etree._Element, fault: SamlFault) -> etree._Element:
        response = self._response(query, REQUESTER, fault.sub_code)
        status = response.find(f"{{{SAMLP_NS}}}Status")
        etree.SubElement(status, f"{{{SAMLP_NS}}}StatusMessage").text = fault.message
        element = etree.SubElement(etree.SubElement(status, f"{{{SAMLP_NS}}}StatusDetail"),
                                   f"{{{CIN_TYPES_NS}}}FaultElement", nsmap={"cin": CIN_TYPES_NS})
        etree.SubElement(element, f"{{{CIN_TYPES_NS}}}FaultCode").text = fault.fault_code
        etree.SubElement(element, f"{{{CIN_TYPES_NS}}}FaultSource").text = "MYCARENET"
        etree.SubElement(element, f"{{{CIN_TYPES_NS}}}Message").text = fault.message
        detail = etree.SubElement(etree.SubElement(element, f"{{{CIN_TYPES_NS}}}Details"), f"{{{CIN_TYPES_NS}}}Detail")
        etree.SubElement(detail, f"{{{CIN_TYPES_NS}}}DetailCode").text = fault.detail_code
        etree.SubElement(detail, f"{{{CIN_TYPES_NS}}}DetailSource").text = "MYCARENET"
        etree.SubElement(detail, f"{{{CIN_TYPES_NS}}}Location").text = fault.location
        etree.SubElement(detail, f"{{{CIN_TYPES_NS}}}Message").text = fault.message
        return response

    def insurability(self, query: etree._Element, subject, answer: Insurability) -> etree._Element:
        response = self._response(query, SUCCESS)
        person = answer.beneficiary
        dimensions = (subject.request_type, subject.contact_type)
        patient = {"urn:be:fgov:person:ssin": [person.ssin], NIPPIN + "careReceiver:name": [person.last_name],
                   NIPPIN + "careReceiver:firstName": [person.first_name],
                   NIPPIN + "careReceiver:birthDate": [person.birth_date.isoformat()],
                   NIPPIN + "careReceiver:gender": [person.sex]}
        if person.deceased and answer.start <= person.deceased <= answer.end:
            patient[NIPPIN + "careReceiver:deceasedDate"] = [person.deceased.isoformat()]
        self._assertion(response, person.ssin, answer.start, answer.end, PATIENT_DATA, dimensions, patient)
        for coverage in answer.items:
            end = answer.end if coverage.end is None else min(answer.end, coverage.end)
            self._assertion(response, person.ssin, max(answer.start, coverage.start), end, PERIOD, dimensions, {
                NIPPIN + "careReceiver:registrationNumber": [coverage.registration_number],
                NIPPIN + "careReceiver:mutuality": [coverage.mutuality],
                NIPPIN + "cb1": [coverage.ct1], NIPPIN + "cb2": [coverage.ct2],
                NIPPIN + "communicationDate": [self._today().isoformat()]})
        self._assertion(response, person.ssin, answer.start, answer.end, PAYMENT, dimensions,
                        {NIPPIN + "payment:byIO": ["true" if person.payment_by_io else "false"]})
        if answer.event:
            self._assertion(response, person.ssin, answer.start, answer.end, GENERAL_SITUATION, dimensions,
                            {NIPPIN + "generalSituation:event": [answer.event]})
        if answer.hospitalized and person.hospital_stay:
            stay = person.hospital_stay
            self._assertion(response, person.ssin, answer.start, answer.end, HOSPITALISATION, dimensions, {
                NIPPIN + "hospitalisation:hospital": [stay.hospital],
                NIPPIN + "hospitalisation:admissionDate": [stay.admission.isoformat()],
                NIPPIN + "hospitalisation:admissionService": [stay.service]})
        house = person.medical_house
        if house and house.start <= answer.end and (house.end is None or house.end >= answer.start):
            values = {NIPPIN + "medicalHouse:startDate": [house.start.isoformat()],
                      NIPPIN + "medicalHouse:nurse": [_bool(house.nurse)],
                      NIPPIN + "medicalHouse:medical": [_bool(house.medical)],
                      NIPPIN + "medicalHouse:kine": [_bool(house.kine)]}
            if house.end:
                values[NIPPIN + "medicalHouse:endDate"] = [house.end.isoformat()]
            self._assertion(response, person.ssin, answer.start, answer.end, MEDICAL_HOUSE, dimensions, values)
        return response

    def _assertion(self, response: etree._Element, ssin: str, start: date, end: date, kind: str,
                   dimensions: tuple[str, str], attributes: dict[str, list[str]]) -> None:
        assertion = etree.SubElement(response, f"{{{SAML_NS}}}Assertion", ID=f"_{uuid.uuid4()}",
                                     IssueInstant=self._now().strftime(_TIME), Version="2.0",
                                     nsmap={"saml": SAML_NS, "ext": EXT_NS, "xsi": XSI_NS})
        etree.SubElement(assertion, f"{{{SAML_NS}}}Issuer").text = ISSUER
        subject = etree.SubElement(assertion, f"{{{SAML_NS}}}Subject")
        etree.SubElement(subject, f"{{{SAML_NS}}}NameID", Format=SSIN_FORMAT).text = ssin
        confirmation = etree.SubElement(subject, f"{{{SAML_NS}}}SubjectConfirmation", Method=CONFIRMATION_METHOD)
        etree.SubElement(confirmation, f"{{{SAML_NS}}}SubjectConfirmationData",
                         NotBefore=f"{start.isoformat()}T00:00:00",
                         NotOnOrAfter=f"{date.fromordinal(end.toordinal() + 1).isoformat()}T00:00:00")
        advice = etree.SubElement(assertion, f"{{{SAML_NS}}}Advice")
        advice.set(f"{{{XSI_NS}}}type", "ext:AdviceType")
        etree.SubElement(advice, f"{{{EXT_NS}}}AssertionType").text = kind
        facet = etree.SubElement(advice, f"{{{EXT_NS}}}Facet", id=INSURABILITY_FACET)
        etree.SubElement(facet, "Dimension", id="requestType").text = dimensions[0]
        etree.SubElement(facet, "Dimension", id="contactType").text = dimensions[1]
        statement = etree.SubElement(assertion, f"{{{SAML_NS}}}AttributeStatement")
        for name, values in attributes.items():
            attribute = etree.SubElement(statement, f"{{{SAML_NS}}}Attribute", Name=name)
            for value in values:
                etree.SubElement(attribute, f"{{{SAML_NS}}}AttributeValue").text = value


def _bool(value: bool) -> str:
    return "true" if value else "false"

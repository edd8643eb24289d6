"""MemberData's SAML 2.0 content: the ``AttributeQuery`` asked and the ``Response`` read back.

The question (``attribute_query``): the care provider as ``Issuer`` (its NIHII on 11 positions),
the patient as ``Subject/NameID`` (an SSIN, or a registration number at a mutuality), the period as
the ``SubjectConfirmationData`` bounds (``NotOnOrAfter`` is exclusive: the day after the last day
asked) and the insurability facet with its ``requestType`` and ``contactType`` dimensions.

The answer (``ResponseReader``), decrypted already: one assertion per topic, named by its
``Advice/AssertionType``, mapped onto the same ``InsurabilityAnswer`` GenericInsurability gives, so
the SOAP, folder and batch callers see no difference.  A ``Requester``/``Responder`` status becomes
a ``BusinessFault`` with MemberData's own codes (``INPUT_ERROR`` + ``INVALID_INSS_FORMAT``...);
a ``PartialAnswer`` keeps the data and lists its warnings in ``extra["warnings"]``.

The sample answer in ``reference/samples/mda`` shows the patient, period, payment, global medical
file and technical assertions; the attribute names of the hospitalisation, medical-house and
general-situation assertions are not shown there and follow the same pattern (``HOSPITALISATION``,
``MEDICAL_HOUSE`` and ``GENERAL_SITUATION`` below): an assumption the simulator shares.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Iterable

from lxml import etree

from unified_messaging.domain.insurability import (
    BusinessFault,
    ContactType,
    FaultDetail,
    GeneralSituation,
    Hospitalized,
    InsurabilityAnswer,
    InsurabilityPeriod,
    InsurabilityQuery,
    MedicalHouse,
    Patient,
)

SAMLP_NS = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML_NS = "urn:oasis:names:tc:SAML:2.0:assertion"
EXT_NS = "urn:be:cin:nippin:memberdata:saml:extension"
CIN_TYPES_NS = "urn:be:cin:types:v1"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"

ISSUER_FORMAT = "urn:be:cin:nippin:nihii11"
SSIN_FORMAT = "urn:be:fgov:person:ssin"
REGISTRATION_FORMAT = "urn:be:cin:nippin:careReceiver:registrationNumber@mut"
CONFIRMATION_METHOD = "urn:be:cin:nippin:memberIdentification"
INSURABILITY_FACET = "urn:be:cin:nippin:insurability"
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
PARTIAL_ANSWER = "urn:be:cin:nippin:SAML:status:PartialAnswer"

NIPPIN = "urn:be:cin:nippin:"
PATIENT_DATA = NIPPIN + "insurability:patientData"
PERIOD = NIPPIN + "insurability:period"
PAYMENT = NIPPIN + "insurability:payment"
GENERAL_SITUATION = NIPPIN + "insurability:generalSituation"
HOSPITALISATION = NIPPIN + "hospitalisation"
MEDICAL_HOUSE = NIPPIN + "medicalHouse"
GLOBAL_MEDICAL_FILE = NIPPIN + "globalMedicalFile"

_NS = {"samlp": SAMLP_NS, "saml": SAML_NS, "ext": EXT_NS, "cin": CIN_TYPES_NS}
_TIME = "%Y-%m-%dT%H:%M:%S"


def contact_dimension(contact_type: ContactType) -> str:
    """MemberData knows two contact types: a hospital stay, or any other contact."""
    hospital = (ContactType.HOSPITALIZED_FOR_DAY, ContactType.HOSPITALIZED_ELSEWHERE)
    return "hospitalized" if contact_type in hospital else "other"


def attribute_query(query: InsurabilityQuery, query_id: str, issued: datetime) -> etree._Element:
    """The ``samlp:AttributeQuery`` for ``query`` (``query_id`` must be an XML ID: not a digit first)."""
    root = etree.Element(f"{{{SAMLP_NS}}}AttributeQuery", nsmap={"samlp": SAMLP_NS, "saml": SAML_NS, "ext": EXT_NS},
                         ID=query_id, Version="2.0", IssueInstant=issued.strftime(_TIME))
    issuer = etree.SubElement(root, f"{{{SAML_NS}}}Issuer", Format=ISSUER_FORMAT)
    issuer.text = query.care_provider.nihii.zfill(11)
    extensions = etree.SubElement(root, f"{{{SAMLP_NS}}}Extensions")
    facet = etree.SubElement(extensions, f"{{{EXT_NS}}}Facet", id=INSURABILITY_FACET)
    etree.SubElement(facet, "Dimension", id="requestType").text = query.request_type.value
    etree.SubElement(facet, "Dimension", id="contactType").text = contact_dimension(query.contact_type)
    subject = etree.SubElement(root, f"{{{SAML_NS}}}Subject")
    if query.ssin:
        etree.SubElement(subject, f"{{{SAML_NS}}}NameID", Format=SSIN_FORMAT).text = query.ssin
    else:
        etree.SubElement(subject, f"{{{SAML_NS}}}NameID", Format=REGISTRATION_FORMAT).text = (
            f"{query.registration_number}@{query.mutuality}")
    confirmation = etree.SubElement(subject, f"{{{SAML_NS}}}SubjectConfirmation", Method=CONFIRMATION_METHOD)
    etree.SubElement(confirmation, f"{{{SAML_NS}}}SubjectConfirmationData",
                     NotBefore=f"{query.period_start.isoformat()}T00:00:00",
                     NotOnOrAfter=f"{(query.period_end + timedelta(days=1)).isoformat()}T00:00:00")
    return root


class ResponseReader:
    """Maps a decrypted SAML 2.0 ``samlp:Response`` onto ``InsurabilityAnswer``."""

    def __init__(self, query: InsurabilityQuery) -> None:
        self.query = query

    def read(self, response: etree._Element, audit_reference: str | None) -> InsurabilityAnswer:
        if response.tag != f"{{{SAMLP_NS}}}Response":
            raise ValueError(f"not a SAML Response but {etree.QName(response).localname}")
        codes = [c.get("Value", "") for c in response.iterfind(".//samlp:StatusCode", _NS)]
        if not codes:
            raise ValueError("no StatusCode")
        extra = {"memberdata_response": response.get("ID", "")}
        fault = _status_fault(response)
        if codes[0] != SUCCESS and PARTIAL_ANSWER not in codes:
            patient = Patient(ssin=self.query.ssin) if self.query.ssin else None  # echoed, as GenIns does
            return InsurabilityAnswer(query=self.query, audit_reference=audit_reference, patient=patient,
                                      fault=fault or BusinessFault(
                code=codes[-1].rsplit(":", 1)[-1], source="MyCareNet",
                message=response.findtext("samlp:Status/samlp:StatusMessage", "", _NS)), extra=extra)
        if fault is not None:
            extra["warnings"] = " ".join(d.code for d in fault.details) or fault.code
        topics: dict[str, list[etree._Element]] = {}
        for assertion in response.iterfind("saml:Assertion", _NS):
            kind = (assertion.findtext("saml:Advice/ext:AssertionType", "", _NS) or "").strip()
            topics.setdefault(kind, []).append(assertion)
        payment = _first(topics, PAYMENT)
        payment_by_io = _boolean(_attribute(payment, "payment:byIO")) if payment is not None else None
        gmf = _first(topics, GLOBAL_MEDICAL_FILE)
        if gmf is not None and _attribute(gmf, "globalMedicalFile:hcp:nihii11"):
            extra["global_medical_file"] = _attribute(gmf, "globalMedicalFile:hcp:nihii11") or ""
        return InsurabilityAnswer(
            query=self.query, audit_reference=audit_reference,
            patient=self._patient(_first(topics, PATIENT_DATA), response),
            insurabilities=tuple(self._period(a, payment_by_io) for a in topics.get(PERIOD, [])),
            general_situation=_situation(_first(topics, GENERAL_SITUATION)),
            payment_by_io=payment_by_io,
            medical_house=_medical_house(_first(topics, MEDICAL_HOUSE)),
            hospitalized=_hospitalized(_first(topics, HOSPITALISATION)),
            extra=extra,
        )

    def _patient(self, assertion: etree._Element | None, response: etree._Element) -> Patient | None:
        name_id = response.find("saml:Assertion/saml:Subject/saml:NameID", _NS)
        ssin = name_id.text.strip() if name_id is not None and name_id.get("Format") == SSIN_FORMAT else None
        if assertion is None:
            return Patient(ssin=ssin) if ssin else None
        stated = _values(assertion, SSIN_FORMAT, full=True)
        return Patient(
            ssin=stated[0] if stated and stated[0] else ssin,
            last_name=_attribute(assertion, "careReceiver:name"),
            first_name=_attribute(assertion, "careReceiver:firstName"),
            birth_date=_date(_attribute(assertion, "careReceiver:birthDate")),
            sex=_attribute(assertion, "careReceiver:gender"),
            deceased_date=_date(_attribute(assertion, "careReceiver:deceasedDate")),
        )

    def _period(self, assertion: etree._Element, payment_by_io: bool | None) -> InsurabilityPeriod:
        data = assertion.find("saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData", _NS)
        start = _date(data.get("NotBefore")) if data is not None else None
        end = _exclusive_end(data.get("NotOnOrAfter")) if data is not None else None
        return InsurabilityPeriod(
            mutuality=_attribute(assertion, "careReceiver:mutuality") or "",
            registration_number=_attribute(assertion, "careReceiver:registrationNumber") or "",
            period_start=start or self.query.period_start,
            period_end=end,
            ct1=_attribute(assertion, "cb1") or "",
            ct2=_attribute(assertion, "cb2") or "",
            payment_by_io=payment_by_io,
            insurability_date=_date(_attribute(assertion, "communicationDate")),
        )


def _status_fault(response: etree._Element) -> BusinessFault | None:
    """The ``FaultElement`` of ``StatusDetail``: MemberData's fault code, source and detail codes."""
    node = response.find("samlp:Status/samlp:StatusDetail/cin:FaultElement", _NS)
    if node is None:
        return None
    return BusinessFault(
        code=node.findtext("cin:FaultCode", "", _NS).strip(),
        source=node.findtext("cin:FaultSource", "", _NS).strip(),
        message=node.findtext("cin:Message", "", _NS).strip(),
        details=tuple(FaultDetail(d.findtext("cin:DetailCode", "", _NS).strip(), d.findtext("cin:Location", None, _NS),
                                  d.findtext("cin:Message", None, _NS))
                      for d in node.iterfind("cin:Details/cin:Detail", _NS)),
    )


def _first(topics: dict[str, list[etree._Element]], kind: str) -> etree._Element | None:
    found = topics.get(kind)
    return found[0] if found else None


def _values(assertion: etree._Element, name: str, *, full: bool = False) -> list[str]:
    uri = name if full else NIPPIN + name
    return [(v.text or "").strip() for attribute in assertion.iterfind("saml:AttributeStatement/saml:Attribute", _NS)
            if attribute.get("Name") == uri for v in attribute.iterfind("saml:AttributeValue", _NS)]


def _attribute(assertion: etree._Element, name: str) -> str | None:
    values = _values(assertion, name)
    return values[0] if values and values[0] else None


def _situation(assertion: etree._Element | None) -> GeneralSituation | None:
    event = _attribute(assertion, "generalSituation:event") if assertion is not None else None
    return GeneralSituation(event=event) if event else None


def _medical_house(assertion: etree._Element | None) -> MedicalHouse | None:
    if assertion is None:
        return None
    start = _date(_attribute(assertion, "medicalHouse:startDate"))
    if start is None:
        return None
    return MedicalHouse(start, _date(_attribute(assertion, "medicalHouse:endDate")),
                        nurse=bool(_boolean(_attribute(assertion, "medicalHouse:nurse"))),
                        medical=bool(_boolean(_attribute(assertion, "medicalHouse:medical"))),
                        kine=bool(_boolean(_attribute(assertion, "medicalHouse:kine"))))


def _hospitalized(assertion: etree._Element | None) -> Hospitalized | None:
    hospital = _attribute(assertion, "hospitalisation:hospital") if assertion is not None else None
    if assertion is None or not hospital:
        return None
    return Hospitalized(hospital, _date(_attribute(assertion, "hospitalisation:admissionDate")),
                        _attribute(assertion, "hospitalisation:admissionService"))


def _date(text: str | None) -> date | None:
    return date.fromisoformat(text.strip()[:10]) if text and text.strip() else None


def _exclusive_end(text: str | None) -> date | None:
    """``NotOnOrAfter`` at midnight is the day after the last day covered."""
    day = _date(text)
    if day is None or text is None:
        return None
    return day - timedelta(days=1) if text.strip()[11:19] in ("", "00:00:00") else day


def _boolean(text: str | None) -> bool | None:
    return None if text is None else text.strip() in ("true", "1")


def assertion_kinds(response: etree._Element) -> Iterable[str]:
    """The ``AssertionType`` of each assertion of a response, in order (for logs and tests)."""
    return [(a.findtext("saml:Advice/ext:AssertionType", "", _NS) or "").strip()
            for a in response.iterfind("saml:Assertion", _NS)]

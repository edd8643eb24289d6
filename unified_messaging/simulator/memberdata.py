"""The simulated MemberData v1 service (``MemberDataConsultation``, synchronous).

A request goes through the gates the platform has, in this order:

1. the platform's security checks (``SecurityCheck``, run by the simulator on every call: the
   signature, the STS token, the certificate, the licence);
2. the shape of the commons v3 request and of its ``AttributeQuery`` (what the official XSDs
   require; a request that does not have it is a SOAP fault ``SOA-03006``);
3. MemberData's own checks, answered as a SAML ``Response`` with a ``Requester`` status and a
   ``FaultElement`` whose codes are those of ``reference/errors/MemberDataErrors.json``: the
   issuer and ID cross-checks against the request, the NameID, the facet and its dimensions, the
   period; then the lookup in the same population as GenericInsurability (``UNKNOWN_IO``,
   ``MULTIPLE_IO``);
4. the answer's assertions, encrypted (``EncryptedAssertion``) for the caller's encryption
   certificate, which the simulated key depot (``EncryptionDirectory``) knows from the PKI.
"""
from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Callable, Mapping

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from lxml import etree

from unified_messaging.identifiers import mask_ssin, ssin_problem
from unified_messaging.mycarenet.memberdata import COMMONS_CORE_NS, COMMONS_PROTOCOL_NS, PROTOCOL_NS
from unified_messaging.mycarenet.memberdata_saml import (
    CONFIRMATION_METHOD,
    EXT_NS,
    INSURABILITY_FACET,
    ISSUER_FORMAT,
    REGISTRATION_FORMAT,
    SAML_NS,
    SAMLP_NS,
    SSIN_FORMAT,
)
from unified_messaging.mycarenet.xmlenc import encrypt_element
from unified_messaging.simulator.genins import Insurability
from unified_messaging.simulator.memberdata_answer import AnswerWriter, SamlFault
from unified_messaging.simulator.population import KNOWN_MUTUALITIES, POPULATION, Beneficiary, Population
from unified_messaging.simulator.references import NipReferences
from unified_messaging.simulator import soap
from unified_messaging.simulator.soap import SoapFault, SoapRequest
from unified_messaging.xmlsafe import UnsafeXml, parse_xml

log = logging.getLogger(__name__)

MEMBERDATA_PATH = "/MyCareNet/MemberData/v1"
REQUEST_ELEMENT = etree.QName(PROTOCOL_NS, "MemberDataConsultationRequest")
NO_ENCRYPTION_KEY = "SIM-SEC-25"  # documented in simulator/security.py
_NS = {"md": PROTOCOL_NS, "mcp": COMMONS_PROTOCOL_NS, "mc": COMMONS_CORE_NS, "samlp": SAMLP_NS,
       "saml": SAML_NS, "ext": EXT_NS}
REQUEST_TYPES = ("information", "invoicing")
CONTACT_TYPES = ("hospitalized", "other")
KNOWN_FACETS = (INSURABILITY_FACET, "urn:be:cin:nippin:chronicCondition", "urn:be:cin:nippin:carePath",
                "urn:be:cin:nippin:referencePharmacy", "urn:be:cin:nippin:globalMedicalFile",
                "urn:be:cin:nippin:palliativeStatus")


class EncryptionDirectory:
    """The simulated key depot (ETK): each caller's encryption certificate, by its authentication one."""

    def __init__(self, pairs: Mapping[x509.Certificate, x509.Certificate] | None = None) -> None:
        self._by_fingerprint = {c.fingerprint(hashes.SHA256()): e for c, e in (pairs or {}).items()}

    def register(self, authentication: x509.Certificate, encryption: x509.Certificate) -> None:
        self._by_fingerprint[authentication.fingerprint(hashes.SHA256())] = encryption

    def find(self, authentication: x509.Certificate) -> x509.Certificate | None:
        return self._by_fingerprint.get(authentication.fingerprint(hashes.SHA256()))


@dataclass(frozen=True)
class Question:
    """What one consultation asks, read from the request and its AttributeQuery."""

    request_id: str
    input_reference: str | None
    care_provider_nihii: str
    query: etree._Element

    @classmethod
    def read(cls, payload: etree._Element) -> "Question":
        """The request's parts, or the SOAP fault for a request without the required shape."""
        for path in ("mcp:CommonInput/mc:Request/mc:IsTest", "mcp:CommonInput/mc:Origin/mc:Package/mc:License",
                     "mcp:CommonInput/mc:Origin/mc:CareProvider/mc:Nihii/mc:Value", "mcp:Detail"):
            if payload.find(path, _NS) is None:
                raise SoapFault.client(soap.NOT_XSD, f"The request does not follow the MemberData schema: "
                                                f"{path.split(':')[-1]} is missing.")
        if not payload.get("Id") or not payload.get("IssueInstant"):
            raise SoapFault.client(soap.NOT_XSD, "The request does not follow the MemberData schema: Id and "
                                            "IssueInstant are required.")
        detail = payload.find("mcp:Detail", _NS)
        if detail.get("ContentType") != "text/xml" or detail.get("ContentEncoding", "deflate") != "none":
            raise SoapFault.client(soap.MALFORMED_CONTENT, "The Detail must be text/xml with ContentEncoding none.")
        try:
            query = parse_xml(base64.b64decode("".join((detail.text or "").split()), validate=True))
        except (binascii.Error, ValueError, UnsafeXml):
            raise SoapFault.client(soap.MALFORMED_CONTENT, "The Detail is not a base64 XML document.") from None
        if query.tag != f"{{{SAMLP_NS}}}AttributeQuery" or query.get("Version") != "2.0" or not query.get("ID"):
            raise SoapFault.client(soap.NOT_XSD, "The Detail must hold a SAML 2.0 AttributeQuery with an ID.")
        return cls(payload.get("Id", ""), payload.findtext("mcp:CommonInput/mc:InputReference", None, _NS),
                   payload.findtext("mcp:CommonInput/mc:Origin/mc:CareProvider/mc:Nihii/mc:Value", "", _NS).strip(),
                   query)


@dataclass(frozen=True)
class Subject:
    ssin: str | None
    mutuality: str | None
    registration_number: str | None
    start: date
    end: date
    request_type: str
    contact_type: str


def _fault(sub_code: str, fault_code: str, detail_code: str, location: str, message: str) -> SamlFault:
    return SamlFault(sub_code, fault_code, detail_code, location, message)


def _input(detail_code: str, location: str, message: str) -> SamlFault:
    return _fault("AttributeQueryError", "INPUT_ERROR", detail_code, location, message)


def read_subject(question: Question, today: date) -> Subject | SamlFault:
    """The checked question, or the first problem MemberData reports for it."""
    query = question.query
    issuer = query.find("saml:Issuer", _NS)
    if issuer is None:
        return _input("MISSING_ISSUER_TAG", "/AttributeQuery", "Missing Issuer tag")
    if issuer.get("Format") is None:
        return _input("MISSING_ISSUER_FORMAT", "/AttributeQuery/Issuer", "Missing issuer format")
    if issuer.get("Format") != ISSUER_FORMAT:
        return _input("INVALID_ISSUER_FORMAT", "/AttributeQuery/Issuer/@Format",
                      "Invalid Format attribute value for Issuer")
    if (issuer.text or "").strip() != question.care_provider_nihii.zfill(11):
        return _fault("RequestError", "VALIDATION_ERROR", "CROSSCHECK_ISSUER", "/AttributeQuery/Issuer/text()",
                      "crosscheck attributeQuery/Issuer vs. gen(A)Sync:NIHII")
    if query.get("ID") != question.request_id:
        return _fault("RequestError", "VALIDATION_ERROR", "CROSSCHECK_ID", "/AttributeQuery/@ID",
                      "crosscheck attributeQuery/ID vs. gen(A)Sync:ID")
    if query.find("saml:Attribute", _NS) is not None:
        return _input("FORBIDDEN_ATTRIBUTES", "/AttributeQuery/Attribute", "Attributes are not allowed in request")
    dimensions = _insurability_dimensions(query)
    if isinstance(dimensions, SamlFault):
        return dimensions
    patient = _patient(query)
    if isinstance(patient, SamlFault):
        return patient
    period = _period(query, today)
    if isinstance(period, SamlFault):
        return period
    return Subject(*patient, *period, dimensions["requestType"], dimensions["contactType"])


def _insurability_dimensions(query: etree._Element) -> dict[str, str] | SamlFault:
    extensions = query.find("samlp:Extensions", _NS)
    if extensions is None:
        return _input("MISSING_EXTENSIONS_TAG", "/AttributeQuery", "Missing Extensions tag")
    facets = [f.get("id", "") for f in extensions.iterfind("ext:Facet", _NS)]
    if len(set(facets)) != len(facets):
        return _input("DUPLICATED_FACET", "/AttributeQuery/Extensions/Facet", "A facet is asked more than once")
    if any(f not in KNOWN_FACETS for f in facets):
        return _input("UNKNOWN_FACET", "/AttributeQuery/Extensions/Facet", "A requested facet does not exist")
    facet = extensions.find(f"ext:Facet[@id='{INSURABILITY_FACET}']", _NS)
    if facet is None:
        return _input("INVALID_FACET_COMBINATION", "/AttributeQuery/Extensions",
                      "The combination of requested facets is not allowed")
    found: dict[str, str] = {}
    for dimension in facet.iterfind("Dimension"):
        name = dimension.get("id", "")
        if name not in ("requestType", "contactType"):
            return _input("INVALID_DIMENSION_ID", "/AttributeQuery/Extensions/Facet/Dimension",
                          "A dimension is invalid in a facet")
        if name in found:
            return _input("DUPLICATED_DIMENSION", "/AttributeQuery/Extensions/Facet/Dimension",
                          "A unique dimension is repeated")
        found[name] = (dimension.text or "").strip()
    if set(found) != {"requestType", "contactType"}:
        return _input("MISSING_DIMENSION", "/AttributeQuery/Extensions/Facet/Dimension",
                      "A mandatory dimension is missing in a facet")
    if found["requestType"] not in REQUEST_TYPES or found["contactType"] not in CONTACT_TYPES:
        return _input("INCONSISTENT_DIMENSIONS", "/AttributeQuery/Extensions/Facet/Dimension",
                      "The values of the dimensions are inconsistent")
    return found


def _patient(query: etree._Element) -> tuple[str | None, str | None, str | None] | SamlFault:
    name_id = query.find("saml:Subject/saml:NameID", _NS)
    where = "/AttributeQuery/Subject/NameID"
    if name_id is None:
        return _input("MISSING_NAMEID", "/AttributeQuery/Subject", "Missing NameId")
    value = (name_id.text or "").strip()
    if name_id.get("Format") is None:
        return _input("MISSING_NAMEID_FORMAT", where, "Missing Format attribute for NameId")
    if name_id.get("Format") == SSIN_FORMAT:
        if not value:
            return _input("EMPTY_INSS", where, "INSS not present")
        if not (len(value) == 11 and value.isdigit()):
            return _input("INVALID_INSS_FORMAT", where, "The inss has an invalid format (not 11 digits)")
        if ssin_problem(value):
            return _input("INVALID_INSS_VALUE", where, "The inss is incorrect (incorrect check digit)")
        return value, None, None
    if name_id.get("Format") != REGISTRATION_FORMAT:
        return _input("INVALID_NAMEID_FORMAT", where + "/@Format", "Invalid Format attribute value for NameId")
    registration, _, mutuality = value.rpartition("@")
    if not registration:
        return _input("EMPTY_REG_NUM", where, "regNrWithMut not present")
    if not mutuality:
        return _input("EMPTY_IO", where, "IO not present")
    if not (len(mutuality) == 3 and mutuality.isdigit()):
        return _input("INVALID_IO_FORMAT", where + "/@Format", "The IO has an invalid format")
    if mutuality not in KNOWN_MUTUALITIES:
        return _input("INVALID_IO_VALUE", where, "The IO is not valid")
    return None, mutuality, registration


def _period(query: etree._Element, today: date) -> tuple[date, date] | SamlFault:
    confirmation = query.find("saml:Subject/saml:SubjectConfirmation", _NS)
    base = "/AttributeQuery/Subject/SubjectConfirmation"
    if confirmation is None:
        return _input("MISSING_SUBJECT_CONFIRMATION_TAG", "/AttributeQuery/Subject", "Missing subject confirmation tag")
    if confirmation.get("Method") != CONFIRMATION_METHOD:
        return _input("INVALID_SUBJECT_CONFIRMATION_METHOD_VALUE", base + "/@Method",
                      "Invalid subject confirmation method value")
    data = confirmation.find("saml:SubjectConfirmationData", _NS)
    if data is None:
        return _input("MISSING_SUBJECT_CONFIRMATION_DATA_TAG", base, "Missing subject confirmation Data tag")
    start, after = _day(data.get("NotBefore")), _day(data.get("NotOnOrAfter"))
    if start is None:
        return _input("EMPTY_STARTDATE", base + "/SubjectConfirmationData/@NotBefore", "The Start Date is missing")
    if after is None:
        return _input("EMPTY_ENDDATE", base + "/SubjectConfirmationData/@NotOnOrAfter", "The End Date is missing")
    if after <= start:
        return _input("INVALID_PERIOD", base + "/SubjectConfirmationData/@NotOnOrAfter",
                      "The End Date is before start Date")
    if start > today:
        return _fault("InputError", "INPUT_ERROR", "START_DATE_IN_FUTURE", base + "/SubjectConfirmationData/@NotBefore",
                      "The Start Date is in the future")
    if start < today - timedelta(days=5 * 365 + 1):
        return _fault("InputError", "INPUT_ERROR", "PERIOD_TOO_FAR_IN_PAST", base + "/SubjectConfirmationData",
                      "Request more than 5 years in the past")
    return start, after - timedelta(days=1)


def _day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text.strip()[:10]) if text else None
    except ValueError:
        return None


class MemberDataService:
    """Answers ``MemberDataConsultation`` like the platform, from the simulated population."""

    def __init__(self, directory: EncryptionDirectory, *, population: Population = POPULATION,
                 today: Callable[[], date] = date.today, references: NipReferences | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.directory = directory
        self._population = population
        self._today = today
        self._references = references or NipReferences(today)
        self._writer = AnswerWriter(today, now)

    def register(self, simulator) -> None:
        """Add the MemberData endpoint to a ``Simulator`` (and its address to the fault injection)."""
        endpoint = simulator.add_endpoint(MEMBERDATA_PATH, "memberdata", "MyCareNetMemberData_v1.wsdl")
        simulator.add_operation(endpoint, REQUEST_ELEMENT, "consult", self.consult)
        simulator.faults.route(MEMBERDATA_PATH, "memberdata")

    def consult(self, request: SoapRequest) -> etree._Element:
        question = Question.read(request.payload)
        encryption = self.encryption_for(request)
        reference = self._references.next()
        return self._writer.envelope_payload(question, reference, self.answer(question, encryption, reference))

    def encryption_for(self, request: SoapRequest) -> x509.Certificate:
        """The caller's encryption certificate at the key depot, or the fault ``SIM-SEC-25``."""
        caller = request.context.get("caller")
        encryption = self.directory.find(caller.certificate) if caller is not None else None
        if encryption is None:
            raise SoapFault.client(NO_ENCRYPTION_KEY, "The caller has no encryption certificate at the eHealth key "
                                                      "depot: MemberData answers are encrypted for it.")
        return encryption

    def answer(self, question: Question, encryption: x509.Certificate, reference: str) -> etree._Element:
        """The SAML ``Response`` to one question: a refusal, or the assertions encrypted for ``encryption``
        (the sync service and the asynchronous MDA answer alike)."""
        subject = read_subject(question, self._today())
        outcome = subject if isinstance(subject, SamlFault) else self._decide(subject)
        if isinstance(outcome, SamlFault):
            log.info("memberdata %s: %s (%s)", reference, outcome.fault_code, outcome.detail_code)
            return self._writer.fault(question.query, outcome)
        saml = self._writer.insurability(question.query, subject, outcome)
        for assertion in list(saml.iterfind("saml:Assertion", _NS)):
            wrapper = etree.Element(f"{{{SAML_NS}}}EncryptedAssertion")
            wrapper.append(encrypt_element(assertion, encryption))
            saml.replace(assertion, wrapper)
        log.info("memberdata %s: %s insured, %d period(s)", reference, mask_ssin(outcome.beneficiary.ssin),
                 len(outcome.items))
        return saml

    def _decide(self, subject: Subject) -> SamlFault | Insurability:
        if subject.ssin:
            person: Beneficiary | None = self._population.by_ssin(subject.ssin)
        else:
            person = self._population.by_registration(subject.mutuality or "", subject.registration_number or "")
        where = "/AttributeQuery/Subject/NameID"
        if person is not None and person.insurers:
            return _fault("InputError", "INPUT_ERROR", "MULTIPLE_IO", where, "Multi IO Found")
        if person is None or not any(c.overlaps(subject.start, subject.end) for c in person.coverages):
            return _fault("InputError", "INPUT_ERROR", "UNKNOWN_IO", where, "No IO Found")
        contact = "hospitalized_elsewhere" if subject.contact_type == "hospitalized" else "other"
        return Insurability.assess(person, subject.start, subject.end, contact)

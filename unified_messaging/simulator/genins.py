"""The simulated GenericInsurability v1 service (``getInsurability``, XML variant).

A request goes through three gates, as on the platform:

1. the XSD (our own, same structure as the official one): a request that does not conform is a
   SOAP fault ``SOA-03006``, not a business answer;
2. the input checks of the insurability protocol: problems come back as a ``MessageFault``
   ``INPUT_ERROR`` whose ``Details`` carry the platform's detail codes and locations;
3. the lookup in the population: ``NO_IO_ERROR``, ``MULTIIO_ERROR`` or the insurability.

Detail locations are XPaths relative to the ``Location`` element itself, so that
``../../../../`` is the ``Response`` element, which echoes the question's ``CareReceiverId`` and
``InsurabilityRequestDetail`` (the form public integrations report receiving).
"""
from __future__ import annotations

import copy
import logging
import threading
from dataclasses import dataclass
from datetime import date
from itertools import pairwise
from pathlib import Path
from typing import Callable

from lxml import etree

from unified_messaging.identifiers import mask_ssin, ssin_problem
from unified_messaging.simulator.population import (
    KNOWN_MUTUALITIES,
    POPULATION,
    Beneficiary,
    Coverage,
    Population,
)
from unified_messaging.simulator.references import NipReferences
from unified_messaging.simulator.soap import MALFORMED_CONTENT, NOT_XSD, XML_NS, SoapFault, SoapRequest

log = logging.getLogger(__name__)

PROTOCOL_NS = "urn:be:fgov:ehealth:genericinsurability:protocol:v1"
CORE_NS = "urn:be:fgov:ehealth:genericinsurability:core:v1"
SCHEMA_DIR = Path(__file__).resolve().parents[1] / "mycarenet" / "schemas"
PROTOCOL_XSD = SCHEMA_DIR / "genins-protocol-v1.xsd"
REQUEST_ELEMENT = etree.QName(PROTOCOL_NS, "GetInsurabilityRequest")
MAX_ITEMS = 5
FAULT_SOURCE = "MyCareNet"

_RESPONSE = "../../../../"  # from a Detail's Location element up to the Response element
LOC_INSS = _RESPONSE + "CareReceiverId/Inss/text()"
LOC_MUTUALITY = _RESPONSE + "CareReceiverId/Mutuality/text()"
LOC_REGNR = _RESPONSE + "CareReceiverId/RegNrWithMut/text()"
LOC_PERIOD_START = _RESPONSE + "InsurabilityRequestDetail/Period/PeriodStart/text()"
LOC_PERIOD_END = _RESPONSE + "InsurabilityRequestDetail/Period/PeriodEnd/text()"
LOC_CONTACT_TYPE = _RESPONSE + "InsurabilityRequestDetail/InsurabilityContactType/text()"


def _c(name: str) -> str:
    return f"{{{CORE_NS}}}{name}"


def _p(name: str) -> str:
    return f"{{{PROTOCOL_NS}}}{name}"


class SchemaGate:
    """Validates request elements against our XSD; one compiled schema per thread.

    lxml keeps the last validation's error log on the schema object, so sharing one between
    server threads would mix up their error messages.
    """

    def __init__(self, xsd: Path = PROTOCOL_XSD) -> None:
        self._xsd = xsd
        self._local = threading.local()
        self._schema()  # fail at start-up, not on the first call, if the XSD is broken

    def _schema(self) -> etree.XMLSchema:
        schema = getattr(self._local, "schema", None)
        if schema is None:
            parser = etree.XMLParser(no_network=True, resolve_entities=False)
            schema = etree.XMLSchema(etree.parse(str(self._xsd), parser))
            self._local.schema = schema
        return schema

    def check(self, element: etree._Element) -> None:
        schema = self._schema()
        if schema.validate(element):
            return
        problems = "; ".join(f"line {e.line}: {e.message}" for e in list(schema.error_log)[:3])
        raise SoapFault.client(NOT_XSD, f"The message does not conform to the XSD: {problems}")


@dataclass(frozen=True)
class Question:
    """What a schema-valid GetInsurabilityRequest asks."""

    ssin: str | None
    mutuality: str | None
    registration_number: str | None
    request_type: str
    period_start: date | None
    period_end: date | None
    contact_type: str
    input_reference: str | None
    record_input_reference: str | None
    care_receiver_id: etree._Element
    request_detail: etree._Element

    @classmethod
    def read(cls, payload: etree._Element) -> "Question":
        request = payload.find(_p("Request"))
        receiver = request.find(_c("CareReceiverId"))
        detail = request.find(_c("InsurabilityRequestDetail"))
        period = detail.find(_c("Period"))

        def day(name: str) -> date | None:
            text = (period.findtext(_c(name)) or "").strip()
            try:
                return date.fromisoformat(text[:10]) if text else None
            except ValueError:  # valid xs:date values such as negative years
                raise SoapFault.client(MALFORMED_CONTENT, f"{name} {text} is not a usable date.") from None

        return cls(
            ssin=receiver.findtext(_c("Inss")),
            mutuality=receiver.findtext(_c("Mutuality")),
            registration_number=receiver.findtext(_c("RegNrWithMut")),
            request_type=detail.findtext(_c("InsurabilityRequestType")).strip(),
            period_start=day("PeriodStart"),
            period_end=day("PeriodEnd"),
            contact_type=detail.findtext(_c("InsurabilityContactType")).strip(),
            input_reference=payload.findtext(f"{_p('CommonInput')}/{_c('InputReference')}"),
            record_input_reference=payload.findtext(f"{_p('RecordCommonInput')}/{_c('InputReference')}"),
            care_receiver_id=receiver,
            request_detail=detail,
        )

    def describe(self) -> str:
        who = mask_ssin(self.ssin) if self.ssin else f"{self.mutuality}/{(self.registration_number or '')[:3]}***"
        return f"{who} {self.period_start}..{self.period_end} {self.contact_type}"


@dataclass(frozen=True)
class Detail:
    code: str
    location: str
    message: str


@dataclass(frozen=True)
class MessageFault:
    code: str  # INPUT_ERROR | NO_IO_ERROR | MULTIIO_ERROR
    message: str
    details: tuple[Detail, ...]
    multi_io: tuple[str, ...] = ()


def _ssin_detail(ssin: str) -> Detail | None:
    if ssin_problem(ssin) is None:
        return None
    check = int(ssin[9:])
    if check not in (97 - int(ssin[:9]) % 97, 97 - int("2" + ssin[:9]) % 97):
        return Detail("12", LOC_INSS, "The SSIN's check digits do not match the first nine digits.")
    return Detail("11", LOC_INSS, "The SSIN's first six digits are not a possible birth date.")


def input_problems(question: Question, today: date) -> list[Detail]:
    """The protocol's input checks, in the order of the request's fields."""
    problems: list[Detail] = []
    if question.ssin:
        problem = _ssin_detail(question.ssin)
        if problem:
            problems.append(problem)
    elif not question.mutuality and not question.registration_number:
        problems.append(Detail("10", LOC_INSS, "Identify the patient: give the SSIN, or the mutuality and the "
                                               "registration number."))
    else:
        if not question.registration_number:
            problems.append(Detail("10", LOC_REGNR, "The registration number is missing; it goes with the mutuality."))
        if not question.mutuality:
            problems.append(Detail("10", LOC_MUTUALITY,
                                   "The mutuality is missing; it goes with the registration number."))
        elif question.mutuality not in KNOWN_MUTUALITIES:
            problems.append(Detail("21", LOC_MUTUALITY, f"Mutuality {question.mutuality} does not exist."))
    start, end = question.period_start, question.period_end
    if start is None:
        problems.append(Detail("10", LOC_PERIOD_START, "The start of the period is missing."))
    elif start > today:
        problems.append(Detail("30", LOC_PERIOD_START, "The period starts in the future; ask about today or the past."))
    if end is None:
        problems.append(Detail("10", LOC_PERIOD_END, "The end of the period is missing."))
    elif start is not None and end < start:
        problems.append(Detail("31", LOC_PERIOD_END, "The period ends before it starts."))
    return problems


def input_error(details: list[Detail]) -> MessageFault:
    return MessageFault("INPUT_ERROR", "The request contains errors; see the details.", tuple(details))


@dataclass(frozen=True)
class Transfer:
    direction: str
    union: str
    on: date


@dataclass(frozen=True)
class Insurability:
    """The positive answer for one beneficiary over the requested period."""

    beneficiary: Beneficiary
    items: tuple[Coverage, ...]
    start: date
    end: date
    event: str | None
    transfers: tuple[Transfer, ...]
    hospitalized: bool

    @classmethod
    def assess(cls, beneficiary: Beneficiary, start: date, end: date, contact_type: str) -> "Insurability":
        items = tuple(sorted((c for c in beneficiary.coverages if c.overlaps(start, end)), key=lambda c: c.start))
        events: list[str] = []
        transfers: list[Transfer] = []
        if items[0].start > start:
            events.append("startLater")
        if items[-1].end is not None and items[-1].end < end:
            events.append("closedBefore")
        for before, after in pairwise(items):
            events.append("changeDuring")
            if before.union != after.union:
                transfers.append(Transfer("toOtherIo", after.union, after.start))
                transfers.append(Transfer("fromOtherIo", before.union, after.start))
        event = None if not events else events[0] if len(events) == 1 else "multiple"
        stay = beneficiary.hospital_stay
        hospitalized = contact_type == "hospitalized_elsewhere" and stay is not None and stay.overlaps(start, end)
        return cls(beneficiary, items, start, end, event, tuple(transfers[:2]), hospitalized)


class ResponseWriter:
    """Builds GetInsurabilityResponse elements (valid against the official schema)."""

    def __init__(self, today: Callable[[], date]) -> None:
        self._today = today

    def envelope_payload(self, question: Question, nip_reference: str) -> tuple[etree._Element, etree._Element]:
        root = etree.Element(_p("GetInsurabilityResponse"), nsmap={"genins": PROTOCOL_NS, "gc": CORE_NS})
        status = etree.SubElement(root, "Status")
        etree.SubElement(status, "Code").text = "200"
        etree.SubElement(status, "Message", Lang="EN").text = "Success"
        common = etree.SubElement(root, _p("CommonOutput"))
        if question.input_reference:
            etree.SubElement(common, _c("InputReference")).text = question.input_reference
        etree.SubElement(common, _c("NIPReference")).text = nip_reference
        record = etree.SubElement(root, _p("RecordCommonOutput"))
        if question.record_input_reference:
            etree.SubElement(record, _c("InputReference")).text = question.record_input_reference
        etree.SubElement(record, _c("OutputReference")).text = nip_reference
        return root, etree.SubElement(root, _p("Response"))

    def fault(self, response: etree._Element, question: Question, fault: MessageFault) -> None:
        response.append(copy.deepcopy(question.care_receiver_id))
        node = etree.SubElement(response, _c("MessageFault"))
        etree.SubElement(node, _c("FaultCode")).text = fault.code
        etree.SubElement(node, _c("FaultSource")).text = FAULT_SOURCE
        if fault.multi_io:
            multi = etree.SubElement(node, _c("MultiIO"))
            for io in fault.multi_io:
                etree.SubElement(multi, _c("IO")).text = io
        self._message(node, fault.message)
        details = etree.SubElement(node, _c("Details"))
        for detail in fault.details:
            item = etree.SubElement(details, _c("Detail"))
            etree.SubElement(item, _c("DetailCode")).text = detail.code
            etree.SubElement(item, _c("Location")).text = detail.location
            self._message(item, detail.message)
        response.append(copy.deepcopy(question.request_detail))

    def insurability(self, response: etree._Element, question: Question, answer: Insurability) -> None:
        person = answer.beneficiary
        detail = etree.SubElement(response, _c("CareReceiverDetail"))
        etree.SubElement(detail, _c("Inss")).text = person.ssin
        etree.SubElement(detail, _c("FirstName")).text = person.first_name
        etree.SubElement(detail, _c("LastName")).text = person.last_name
        etree.SubElement(detail, _c("Birthday")).text = person.birth_date.isoformat()
        if person.deceased and answer.start <= person.deceased <= answer.end:
            etree.SubElement(detail, _c("Deceased")).text = person.deceased.isoformat()
        etree.SubElement(detail, _c("Sex")).text = person.sex

        body = etree.SubElement(response, _c("InsurabilityResponseDetail"))
        if answer.event:
            situation = etree.SubElement(body, _c("GeneralSituation"), Event=answer.event)
            for transfer in answer.transfers:
                node = etree.SubElement(situation, _c("Transfer"), Direction=transfer.direction)
                etree.SubElement(node, _c("InsuranceOrg")).text = transfer.union
                etree.SubElement(node, _c("TransferDate")).text = transfer.on.isoformat()
        payment = etree.SubElement(body, _c("Payment"))
        etree.SubElement(payment, _c("PaymentByIo")).text = "true" if person.payment_by_io else "false"
        for year in [y for y in person.max_invoiced if y <= answer.end.year][-3:]:
            etree.SubElement(payment, _c("MaxInvoiced")).text = str(year)
        if answer.hospitalized:
            stay = person.hospital_stay
            hospital = etree.SubElement(body, _c("Hospitalized"))
            etree.SubElement(hospital, _c("Hospital")).text = stay.hospital
            etree.SubElement(hospital, _c("AdmissionDate")).text = stay.admission.isoformat()
            etree.SubElement(hospital, _c("AdmissionService")).text = stay.service
        house = person.medical_house
        if house and house.start <= answer.end and (house.end is None or house.end >= answer.start):
            node = etree.SubElement(body, _c("MedicalHouse"), Nurse=_bool(house.nurse),
                                    Medical=_bool(house.medical), Kine=_bool(house.kine))
            etree.SubElement(node, _c("PeriodStart")).text = house.start.isoformat()
            if house.end:
                etree.SubElement(node, _c("PeriodEnd")).text = house.end.isoformat()
        listing = etree.SubElement(body, _c("InsurabilityList"))
        if len(answer.items) > MAX_ITEMS:
            listing.set("Truncated", "true")
        for coverage in answer.items[:MAX_ITEMS]:
            self._item(listing, coverage, answer.start, answer.end)
        response.append(copy.deepcopy(question.request_detail))

    def _item(self, listing: etree._Element, coverage: Coverage, start: date, end: date) -> None:
        item = etree.SubElement(listing, _c("InsurabilityItem"))
        etree.SubElement(item, _c("RegNrWithMut")).text = coverage.registration_number
        etree.SubElement(item, _c("Mutuality")).text = coverage.mutuality
        period = etree.SubElement(item, _c("Period"))
        etree.SubElement(period, _c("PeriodStart")).text = max(start, coverage.start).isoformat()
        item_end = end if coverage.end is None else min(end, coverage.end)
        etree.SubElement(period, _c("PeriodEnd")).text = item_end.isoformat()
        etree.SubElement(item, _c("CT1")).text = coverage.ct1
        etree.SubElement(item, _c("CT2")).text = coverage.ct2
        etree.SubElement(item, _c("InsurabilityDate")).text = self._today().isoformat()

    @staticmethod
    def _message(parent: etree._Element, text: str) -> None:
        message = etree.SubElement(parent, _c("Message"))
        message.set(f"{{{XML_NS}}}lang", "en")
        message.text = text


def _bool(value: bool) -> str:
    return "true" if value else "false"


class GenericInsurabilityService:
    """Answers ``getInsurability`` like the platform, from the simulated population."""

    def __init__(
        self,
        *,
        population: Population = POPULATION,
        today: Callable[[], date] = date.today,
        references: NipReferences | None = None,
    ) -> None:
        self._population = population
        self._today = today
        self._references = references or NipReferences(today)
        self._gate = SchemaGate()
        self._writer = ResponseWriter(today)

    def get_insurability(self, request: SoapRequest) -> etree._Element:
        self._gate.check(request.payload)
        question = Question.read(request.payload)
        reference = self._references.next()
        root, response = self._writer.envelope_payload(question, reference)
        outcome = self._decide(question)
        logged = log.isEnabledFor(logging.INFO)  # describing the question masks its SSIN: only when logged
        if isinstance(outcome, MessageFault):
            self._writer.fault(response, question, outcome)
            if logged:
                log.info("genins %s: %s %s (%s)", reference, question.describe(), outcome.code,
                         ",".join(d.code for d in outcome.details))
        else:
            self._writer.insurability(response, question, outcome)
            if logged:
                log.info("genins %s: %s insured, %d item(s)", reference, question.describe(), len(outcome.items))
        return root

    def _decide(self, question: Question) -> MessageFault | Insurability:
        problems = input_problems(question, self._today())
        if problems:
            return input_error(problems)
        start, end = question.period_start, question.period_end
        if question.ssin:
            person = self._population.by_ssin(question.ssin)
            if person is None:
                return MessageFault("NO_IO_ERROR", "No insurance organisation knows this patient.", (
                    Detail("23", LOC_INSS, "No insurer was found for this SSIN."),))
        else:
            person = self._population.by_registration(question.mutuality, question.registration_number)
            if person is None:
                return _no_insurer_in_period()
        if person.insurers:
            return MessageFault(
                "MULTIIO_ERROR", "Several insurance organisations were found for this patient.",
                (Detail("44", LOC_PERIOD_START, "Several insurers cover the patient on these dates; ask with the "
                                                "mutuality and the registration number."),),
                multi_io=person.insurers,
            )
        if not any(c.overlaps(start, end) for c in person.coverages):
            return _no_insurer_in_period()
        answer = Insurability.assess(person, start, end, question.contact_type)
        if question.contact_type == "hospitalized_elsewhere" and not answer.hospitalized:
            return input_error([Detail("42", LOC_CONTACT_TYPE, "The patient is not in hospital during the "
                                                                "requested period.")])
        return answer


def _no_insurer_in_period() -> MessageFault:
    return MessageFault("NO_IO_ERROR", "No insurance organisation covers this patient in the requested period.", (
        Detail("43", LOC_PERIOD_START, "No insurer was found for the patient on these dates."),))

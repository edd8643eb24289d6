"""The legacy ConsultMyCareNet XML shape (``InsurabilityRequest`` / ``InsurabilityResponse``).

Shared by the interfaces that speak it (the SOAP front and the toQuery folders): they validate
against ``wsdl/ConsultMyCareNet.xsd`` first, then use these mappings to and from the core models.
"""
from __future__ import annotations

from datetime import date
from typing import Iterable

from lxml import etree
from lxml.builder import ElementMaker

from unified_messaging.mycarenet.models import (
    CareProvider,
    ContactType,
    InsurabilityAnswer,
    InsurabilityQuery,
    RequestType,
)

TNS = "http://unified-messaging.be/ConsultMyCareNet/"
E = ElementMaker(namespace=TNS, nsmap={None: TNS})

CONTACT_TYPES = {
    "Ambulatory": ContactType.AMBULATORY,
    "HospitalizedForDay": ContactType.HOSPITALIZED_FOR_DAY,
    "HospitalizedElsewhere": ContactType.HOSPITALIZED_ELSEWHERE,
    "Other": ContactType.OTHER,
}
REQUEST_TYPES = {"Information": RequestType.INFORMATION, "Invoicing": RequestType.INVOICING}


def _text(parent: etree._Element, path: str) -> str | None:
    found = parent.find(path, namespaces={"t": TNS})
    if found is None or found.text is None or not found.text.strip():
        return None
    return found.text.strip()


def query_from_xml(request: etree._Element) -> InsurabilityQuery:
    """Read an ``InsurabilityRequest`` element that is already valid against the contract XSD."""
    start = date.fromisoformat(_text(request, "t:PeriodStart")[:10])
    end_text = _text(request, "t:PeriodEnd")
    return InsurabilityQuery(
        care_provider=CareProvider(
            nihii=_text(request, "t:CareProvider/t:Nihii") or "",
            quality=(_text(request, "t:CareProvider/t:Quality") or "").lower(),
        ),
        period_start=start,
        period_end=date.fromisoformat(end_text[:10]) if end_text else start,
        ssin=_text(request, "t:Ssin"),
        mutuality=_text(request, "t:Mutuality"),
        registration_number=_text(request, "t:RegistrationNumber"),
        contact_type=CONTACT_TYPES[_text(request, "t:ContactType") or "Ambulatory"],
        request_type=REQUEST_TYPES[_text(request, "t:RequestType") or "Information"],
        reference=_text(request, "t:Reference"),
    )


def _opt(name: str, value: object) -> list[etree._Element]:
    """An element only when there is a value (everything after Status is optional)."""
    if value is None or value == "":
        return []
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, date):
        value = value.isoformat()
    return [getattr(E, name)(str(value))]


def _group(name: str, children: Iterable[etree._Element]) -> list[etree._Element]:
    children = list(children)
    return [getattr(E, name)(*children)] if children else []


def answer_to_xml(answer: InsurabilityAnswer, element_name: str = "GetInsurabilityResult") -> etree._Element:
    """Build the contract's ``InsurabilityResponse`` (under ``element_name``) for an answer."""
    body: list[etree._Element] = [E.Status("OK" if answer.ok else "ERROR")]
    body += _opt("Reference", answer.query.reference)
    body += _opt("AuditReference", answer.audit_reference)
    if answer.patient:
        p = answer.patient
        body += _group("Patient", [
            *_opt("Ssin", p.ssin), *_opt("LastName", p.last_name), *_opt("FirstName", p.first_name),
            *_opt("BirthDate", p.birth_date), *_opt("Sex", p.sex), *_opt("DeceasedDate", p.deceased_date),
        ])
    body += _group("Insurabilities", [
        E.Insurability(
            *_opt("Mutuality", i.mutuality), *_opt("RegistrationNumber", i.registration_number),
            *_opt("PeriodStart", i.period_start), *_opt("PeriodEnd", i.period_end),
            *_opt("CT1", i.ct1), *_opt("CT2", i.ct2),
            *_opt("PaymentByIo", i.payment_by_io if i.payment_by_io is not None else answer.payment_by_io),
            *_opt("InsurabilityDate", i.insurability_date),
        )
        for i in answer.insurabilities
    ])
    if answer.general_situation:
        g = answer.general_situation
        body.append(E.GeneralSituation(
            *_opt("Event", g.event),
            *_group("Transfers", [
                E.Transfer(*_opt("Direction", t.direction), *_opt("Mutuality", t.insurance_org),
                           *_opt("TransferDate", t.transfer_date))
                for t in g.transfers
            ]),
        ))
    if answer.medical_house:
        m = answer.medical_house
        body.append(E.MedicalHouse(
            *_opt("PeriodStart", m.period_start), *_opt("PeriodEnd", m.period_end),
            *_opt("Nurse", m.nurse), *_opt("Medical", m.medical), *_opt("Kine", m.kine),
        ))
    if answer.hospitalized:
        h = answer.hospitalized
        body.append(E.Hospitalized(
            *_opt("Hospital", h.hospital), *_opt("AdmissionDate", h.admission_date),
            *_opt("AdmissionService", h.admission_service),
        ))
    body += _group("MaxInvoicedYears", [E.Year(str(y)) for y in answer.max_invoiced_years])
    if answer.fault:
        f = answer.fault
        messages = [E.Message(E.Code(f.code), E.Severity("Error"), E.Text(f.message), *_opt("Location", f.source))]
        if f.multi_io:
            messages.append(E.Message(
                E.Code(f.code), E.Severity("Information"),
                E.Text("Insurers that know this patient: " + ", ".join(f.multi_io)), E.Location("MultiIO"),
            ))
        messages += [
            E.Message(E.Code(d.code), E.Severity("Error"), *_opt("Text", d.message), *_opt("Location", d.location))
            for d in f.details
        ]
        body.append(E.Messages(*messages))
    return getattr(E, element_name)(*body)

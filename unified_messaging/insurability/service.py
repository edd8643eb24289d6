"""The core insurability service: the one place every interface (SOAP, folders, batch) goes through.

It checks what can be checked locally (identifiers, dates) so a typo costs no network round trip,
calls MyCareNet through the upstream client, and writes one journal line per consultation.
"""
from __future__ import annotations

import logging
import time
from functools import partial
from dataclasses import dataclass
from typing import Callable, Protocol

from unified_messaging.identifiers import mask_ssin, mask_ssins_in_text, nihii_problem, ssin_problem
from unified_messaging.journal import Consultation, Journal
from unified_messaging.securespace.catalogue import Refusal
from unified_messaging.domain.errors import UpstreamFault, UpstreamUnavailable
from unified_messaging.domain.insurability import (
    ActingCertificate,
    BusinessFault,
    FaultDetail,
    InsurabilityAnswer,
    InsurabilityQuery,
)

log = logging.getLogger(__name__)

KNOWN_QUALITIES = (
    "labo", "nurse", "groupofnurses", "hospital", "doctor", "physiotherapist", "dentist",
    "midwife", "pharmacy", "medicalhouse", "retirement", "ambulance", "psychologist",
)

LOCAL_SOURCE = "unified-messaging"


class UpstreamInsurability(Protocol):
    def get_insurability(self, query: InsurabilityQuery, *, acting: ActingCertificate | None = None) -> InsurabilityAnswer:
        """Ask MyCareNet, signing with ``acting`` (or the gateway's own certificate when None)."""


@dataclass(frozen=True)
class ServiceChoice:
    """Which MyCareNet service answers a consultation: ``default`` ("genins" or "memberdata"),
    except for the qualities in ``memberdata_qualities``, always answered over MemberData."""

    default: str = "genins"
    memberdata_qualities: frozenset[str] = frozenset()

    def service_for(self, quality: str) -> str:
        return "memberdata" if quality.lower() in self.memberdata_qualities else self.default


class CertificateChooser(Protocol):
    def select(self, interface: str, care_provider_nihii: str, service: str) -> ActingCertificate:
        """The certificate that may act for this care provider, or raise a catalogue ``Refusal``."""


@dataclass(frozen=True)
class LocalCheck:
    """A problem found before any upstream call; ``code`` is from the catalogue below."""

    code: str
    location: str
    message: str


# Local refusal catalogue: code -> (location, what to do).  README lists it.
LOCAL_CODES = {
    "UM-SSIN": "Ssin",
    "UM-MUTUALITY": "Mutuality",
    "UM-REGNR": "RegistrationNumber",
    "UM-PATIENT": "Ssin",
    "UM-NIHII": "CareProvider/Nihii",
    "UM-QUALITY": "CareProvider/Quality",
    "UM-PERIOD": "PeriodEnd",
}


def local_checks(query: InsurabilityQuery) -> list[LocalCheck]:
    """Everything wrong with the query that the gateway can see without asking MyCareNet."""
    problems: list[LocalCheck] = []

    def add(code: str, message: str) -> None:
        problems.append(LocalCheck(code, LOCAL_CODES[code], message))

    nihii = nihii_problem(query.care_provider.nihii)
    if nihii:
        add("UM-NIHII", nihii)
    if query.care_provider.quality.lower() not in KNOWN_QUALITIES:
        add("UM-QUALITY", f"The care provider quality '{mask_ssins_in_text(query.care_provider.quality)}' is not "
                          "known; use one of "
                          + ", ".join(KNOWN_QUALITIES) + ".")
    if query.ssin and (query.mutuality or query.registration_number):
        add("UM-PATIENT", "Identify the patient by SSIN, or by mutuality and registration number, not both.")
    elif query.ssin:
        problem = ssin_problem(query.ssin)
        if problem:
            add("UM-SSIN", problem)
    elif query.mutuality or query.registration_number:
        if not (query.mutuality and len(query.mutuality) == 3 and query.mutuality.isdigit()):
            add("UM-MUTUALITY", "The mutuality code has 3 digits (for example 131 or 319).")
        if not query.registration_number or len(query.registration_number) > 13:
            add("UM-REGNR", "The registration number at the mutuality is required and has at most 13 characters.")
    else:
        add("UM-PATIENT", "Identify the patient by SSIN, or by mutuality and registration number.")
    if query.period_end < query.period_start:
        add("UM-PERIOD", "The period ends before it starts; PeriodEnd must be on or after PeriodStart.")
    return problems


class InsurabilityService:
    """Consult insurability for any interface; never raises for business errors."""

    def __init__(
        self,
        upstream: UpstreamInsurability,
        journal: Journal,
        *,
        certificates: CertificateChooser | None = None,
        monotonic: Callable[[], float] = time.perf_counter,
        observer: Callable[[str, str], None] | None = None,
        memberdata: UpstreamInsurability | None = None,
        choice: ServiceChoice = ServiceChoice(),
    ) -> None:
        """``memberdata`` answers the consultations ``choice`` sends to MemberData; ``upstream``
        (GenericInsurability) the others."""
        if memberdata is None and (choice.default == "memberdata" or choice.memberdata_qualities):
            raise ValueError("MemberData is chosen for some consultations but no MemberData client is given")
        self.memberdata = memberdata
        self.choice = choice
        self.upstream = upstream
        self.journal = journal
        self.certificates = certificates
        self.monotonic = monotonic
        self.observer = observer  # told (interface, outcome) of every journaled consultation: the metrics

    def consult(self, query: InsurabilityQuery, *, interface: str, client: str | None = None) -> InsurabilityAnswer:
        """Answer the query.  Raises only ``UpstreamUnavailable`` (nothing could be asked).  ``client`` is the
        caller's address, for the journal."""
        started = self.monotonic()
        record = partial(self._record, client=client)
        problems = local_checks(query)
        if problems:
            answer = InsurabilityAnswer(
                query=query,
                fault=BusinessFault(  # the first problem's own code first, in every interface (UM-SSIN...)
                    code=problems[0].code,
                    source=problems[0].location or LOCAL_SOURCE,
                    message="The request was not sent to MyCareNet: " + problems[0].message,
                    details=tuple(FaultDetail(p.code, p.location, p.message) for p in problems[1:]),
                ),
            )
            record(query, interface, started, "REJECTED", problems[0].code, None)
            return answer
        acting = None
        if self.certificates is not None:
            try:
                acting = self.certificates.select(interface, query.care_provider.nihii, "INSURABILITY")
            except Refusal as refusal:
                record(query, interface, started, "REJECTED", refusal.code, None)
                return InsurabilityAnswer(query=query, fault=BusinessFault(
                    code=refusal.code, source=LOCAL_SOURCE, message=f"{refusal.cause} {refusal.remedy}",
                    details=(FaultDetail(refusal.code, "CareProvider/Nihii", mask_ssins_in_text(refusal.detail)),),
                ))
        service = self.choice.service_for(query.care_provider.quality)
        record = partial(self._record, client=client, service=service)
        upstream = self.memberdata if service == "memberdata" and self.memberdata is not None else self.upstream
        try:
            answer = upstream.get_insurability(query, acting=acting)
        except UpstreamUnavailable:
            record(query, interface, started, "UNAVAILABLE", None, None)
            raise
        except UpstreamFault as fault:
            return self._answered(query, fault, record, interface, started)
        return self._answered(query, answer, record, interface, started)

    def asks_memberdata(self, query: InsurabilityQuery) -> bool:
        """Whether ``consult`` would send ``query`` to MemberData (it passes the local checks and its
        quality goes over MemberData): the batch may then ask it with the asynchronous MemberData."""
        return (self.memberdata is not None and self.choice.service_for(query.care_provider.quality) == "memberdata"
                and not local_checks(query))

    def record_answer(self, query: InsurabilityQuery, outcome: InsurabilityAnswer | UpstreamFault, *,
                      interface: str, started: float) -> InsurabilityAnswer:
        """An answer MemberData gave outside ``consult`` (the batch's asynchronous MemberData, whose
        ``started`` is the post's ``monotonic`` time), journaled and returned as ``consult`` would."""
        record = partial(self._record, service="memberdata")
        return self._answered(query, outcome, record, interface, started)

    def _answered(self, query: InsurabilityQuery, outcome: InsurabilityAnswer | UpstreamFault, record: Callable,
                  interface: str, started: float) -> InsurabilityAnswer:
        if isinstance(outcome, UpstreamFault):
            record(query, interface, started, "FAULT", outcome.code, None)
            return InsurabilityAnswer(
                query=query,
                fault=BusinessFault(
                    code=outcome.code,
                    source="MyCareNet",
                    message=f"{outcome.message} {outcome.advice}".strip(),
                    details=tuple(FaultDetail(outcome.code, None, d) for d in outcome.details),
                ),
            )
        if outcome.fault:
            record(query, interface, started, "ERROR", outcome.fault.code, outcome.audit_reference)
        else:
            record(query, interface, started, "OK", None, outcome.audit_reference)
        return outcome

    def _record(
        self, query: InsurabilityQuery, interface: str, started: float, outcome: str,
        code: str | None, audit_reference: str | None, *, client: str | None = None, service: str | None = None,
    ) -> None:
        duration_ms = (self.monotonic() - started) * 1000
        # Everything the caller typed is masked: an SSIN can land in any field by mistake.
        patient = (mask_ssin(query.ssin) if query.ssin else
                   mask_ssins_in_text(f"{query.mutuality or ''}/{(query.registration_number or '')[:3]}***"))
        nihii = query.care_provider.nihii
        care_provider = nihii if nihii_problem(nihii) is None else mask_ssins_in_text(nihii)
        quality = mask_ssins_in_text(query.care_provider.quality)
        reference = mask_ssins_in_text(query.reference) if query.reference else None
        self.journal.record_consultation(
            Consultation(
                at=self.journal.clock().isoformat(timespec="milliseconds"),
                interface=interface,
                care_provider=care_provider,
                quality=quality,
                patient=patient,
                period_start=query.period_start.isoformat(),
                period_end=query.period_end.isoformat(),
                outcome=outcome,
                code=code,
                audit_reference=audit_reference,
                reference=reference,
                duration_ms=round(duration_ms, 2),
                client=client,
                upstream_service=service,
            )
        )
        if self.observer is not None:
            self.observer(interface, outcome)
        if log.isEnabledFor(logging.INFO):  # the line's pieces are only put together when it is written
            log.info(
                "insurability %s via %s%s for %s patient %s: %s%s%s (%.0f ms)",
                query.request_type.value, interface, f" from {client}" if client else "", care_provider, patient,
                outcome, f" {code}" if code else "", f" by {service}" if service else "", duration_ms,
            )

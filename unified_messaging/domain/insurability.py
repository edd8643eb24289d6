"""Plain insurability values: the question a caller asks and the answer MyCareNet gives.

These are the gateway's insurability vocabulary: the upstream client turns them into protocol
messages, the simulator answers with them, and the interfaces (SOAP front, folders, batch) map
their own legacy shapes onto them through the core service in ``unified_messaging.insurability``.
Values use the upstream protocol's spelling (``ambulatory_care``, ``information``...).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import Enum
from typing import Protocol

from cryptography import x509


class ContactType(str, Enum):
    AMBULATORY = "ambulatory_care"
    HOSPITALIZED_FOR_DAY = "hospitalized_for_day"
    HOSPITALIZED_ELSEWHERE = "hospitalized_elsewhere"
    OTHER = "other"


class RequestType(str, Enum):
    INFORMATION = "information"
    INVOICING = "invoicing"


@dataclass(frozen=True)
class CareProvider:
    """The provider the request is made for (the mandant): NIHII on 11 digits and its quality."""

    nihii: str
    quality: str


@dataclass(frozen=True)
class InsurabilityQuery:
    care_provider: CareProvider
    period_start: date
    period_end: date
    ssin: str | None = None
    mutuality: str | None = None
    registration_number: str | None = None
    contact_type: ContactType = ContactType.AMBULATORY
    request_type: RequestType = RequestType.INFORMATION
    reference: str | None = None


@dataclass(frozen=True)
class Patient:
    ssin: str | None = None
    last_name: str | None = None
    first_name: str | None = None
    birth_date: date | None = None
    sex: str | None = None  # "male" | "female"
    deceased_date: date | None = None


@dataclass(frozen=True)
class InsurabilityPeriod:
    """One ``InsurabilityItem``: who insures the patient on which dates, with which codes."""

    mutuality: str
    registration_number: str
    period_start: date
    period_end: date | None
    ct1: str
    ct2: str
    payment_by_io: bool | None = None
    insurability_date: date | None = None

    @property
    def preferential_rate(self) -> bool:
        """BIM/VIPO: both CT1 and CT2 odd (as public integrations report)."""
        return int(self.ct1[-1]) % 2 == 1 and int(self.ct2[-1]) % 2 == 1


@dataclass(frozen=True)
class Transfer:
    direction: str  # "toOtherIo" | "fromOtherIo"
    insurance_org: str | None = None
    transfer_date: date | None = None


@dataclass(frozen=True)
class GeneralSituation:
    event: str  # "changeDuring" | "multiple" | "closedBefore" | "startLater"
    transfers: tuple[Transfer, ...] = ()


@dataclass(frozen=True)
class MedicalHouse:
    period_start: date
    period_end: date | None = None
    nurse: bool = False
    medical: bool = False
    kine: bool = False


@dataclass(frozen=True)
class Hospitalized:
    hospital: str  # 12 digits
    admission_date: date | None = None
    admission_service: str | None = None


@dataclass(frozen=True)
class FaultDetail:
    code: str
    location: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class BusinessFault:
    """A ``MessageFault`` answered by MyCareNet: INPUT_ERROR, NO_IO_ERROR or MULTIIO_ERROR."""

    code: str
    source: str
    message: str
    details: tuple[FaultDetail, ...] = ()
    multi_io: tuple[str, ...] = ()


@dataclass(frozen=True)
class InsurabilityAnswer:
    """What GenericInsurability answered, with the platform's reference for the call."""

    query: InsurabilityQuery
    audit_reference: str | None = None
    patient: Patient | None = None
    insurabilities: tuple[InsurabilityPeriod, ...] = ()
    general_situation: GeneralSituation | None = None
    payment_by_io: bool | None = None
    max_invoiced_years: tuple[int, ...] = ()
    medical_house: MedicalHouse | None = None
    hospitalized: Hospitalized | None = None
    fault: BusinessFault | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.fault is None


class ActingCertificate(Protocol):
    """The certificate an upstream call acts with (a keystore's authentication entry).

    Opaque to the core: the secure space chooses it, the upstream seam signs with it.
    """

    @property
    def certificate(self) -> x509.Certificate: ...

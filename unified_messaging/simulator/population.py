"""The simulator's fictitious beneficiaries: one or more per insurability scenario.

Everything here is deterministic: SSINs are built with ``make_ssin`` from fixed birth dates and
sequence numbers, names are invented, and periods use fixed calendar dates chosen so that a
question about "today" works for years (the ordinary patients are insured from 2020 to 2030).
``TEST_PATIENTS`` is the short list the README and the tests use; ``POPULATION`` answers lookups.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from unified_messaging.identifiers import make_ssin

INSURED_FROM = date(2020, 1, 1)
INSURED_UNTIL = date(2030, 12, 31)

# Mutualities the simulated platform knows (3-digit codes; the first digit is the national union).
KNOWN_MUTUALITIES = frozenset({
    "101", "116", "131", "134", "203", "216", "226", "306", "319", "325",
    "407", "409", "417", "501", "509", "526", "600", "900",
})


@dataclass(frozen=True)
class Coverage:
    """One insurer over one period, with the holder codes used for invoicing."""

    mutuality: str
    registration_number: str
    start: date
    end: date | None
    ct1: str
    ct2: str

    @property
    def union(self) -> str:
        """The national union (federation) code: 100, 200 ... 900."""
        return self.mutuality[0] + "00"

    def overlaps(self, start: date, end: date) -> bool:
        return self.start <= end and (self.end is None or self.end >= start)


@dataclass(frozen=True)
class MedicalHouseContract:
    start: date
    end: date | None = None
    nurse: bool = False
    medical: bool = False
    kine: bool = False


@dataclass(frozen=True)
class HospitalStay:
    hospital: str  # 12 digits: the hospital's NIHII number with a leading zero
    admission: date
    service: str  # 3 digits
    discharge: date | None = None

    def overlaps(self, start: date, end: date) -> bool:
        return self.admission <= end and (self.discharge is None or self.discharge >= start)


@dataclass(frozen=True)
class Beneficiary:
    """What the simulated insurers know about one person."""

    ssin: str
    last_name: str
    first_name: str
    birth_date: date
    scenario: str
    description: str
    coverages: tuple[Coverage, ...] = ()
    payment_by_io: bool = False
    max_invoiced: tuple[int, ...] = ()
    medical_house: MedicalHouseContract | None = None
    hospital_stay: HospitalStay | None = None
    deceased: date | None = None
    insurers: tuple[str, ...] = ()  # one-character union codes when several insurers claim the person

    @property
    def sex(self) -> str:
        return "male" if int(self.ssin[6:9]) % 2 else "female"


@dataclass(frozen=True)
class TestPatient:
    """One line of the README's test-patient table."""

    __test__ = False  # not a pytest test class, despite the name

    ssin: str
    mutuality: str | None
    registration_number: str | None
    last_name: str | None
    first_name: str | None
    scenario: str
    description: str


def _hospital_number(base: int, qualification: str = "000") -> str:
    """A well-formed 12-digit hospital number (fictitious): 0 + 6-digit base + check + qualification."""
    return f"0{base:06d}{97 - base % 97:02d}{qualification}"


def _regnr(mutuality: str, serial: int) -> str:
    return f"{mutuality}{serial:08d}"


def _insured(mutuality: str, serial: int, ct1: str = "110", ct2: str = "110",
             start: date = INSURED_FROM, end: date | None = INSURED_UNTIL) -> tuple[Coverage, ...]:
    return (Coverage(mutuality, _regnr(mutuality, serial), start, end, ct1, ct2),)


_CHANGE_DATE = date(2024, 7, 1)
_LAST_DAY_BEFORE_CHANGE = date(2024, 6, 30)
_DEATH_DATE = date(2025, 3, 15)
_ADMISSION_DATE = date(2025, 9, 15)

BENEFICIARIES: tuple[Beneficiary, ...] = (
    Beneficiary(
        make_ssin(date(1985, 7, 30), 33), "Voorbeeld", "Lucas", date(1985, 7, 30), "insured",
        "Insured at mutuality 131 from 2020 to 2030 with ordinary codes 110/110, no third-party payment.",
        coverages=_insured("131", 1001),
    ),
    Beneficiary(
        make_ssin(date(2004, 2, 29), 2), "Exemple", "Amélie", date(2004, 2, 29), "insured",
        "Born after 2000 (check digits over 2 + the first 9 digits), insured at mutuality 319 with codes 110/110.",
        coverages=_insured("319", 1002),
    ),
    Beneficiary(
        make_ssin(date(1948, 11, 5), 41), "Proef", "Marcel", date(1948, 11, 5), "preferential_rate",
        "Pensioner with the preferential rate (BIM/VIPO): codes 131/131 at mutuality 226.",
        coverages=_insured("226", 1003, "131", "131"),
    ),
    Beneficiary(
        make_ssin(date(1952, 4, 18), 88), "Essai", "Jeanne", date(1952, 4, 18), "preferential_rate",
        "Widow with the preferential rate (BIM/VIPO): codes 121/121 at mutuality 409.",
        coverages=_insured("409", 1004, "121", "121"),
    ),
    Beneficiary(
        make_ssin(date(1960, 9, 12), 117), "Specimen", "Victor", date(1960, 9, 12), "third_party_payment",
        "Third-party payment allowed (PaymentByIo true), maximum billing reached in 2024 and 2025; "
        "codes 130/130 at mutuality 509.",
        coverages=_insured("509", 1005, "130", "130"), payment_by_io=True, max_invoiced=(2024, 2025),
    ),
    Beneficiary(
        make_ssin(date(1991, 1, 23), 64), "Muster", "Sofie", date(1991, 1, 23), "medical_house",
        "Registered with a medical house since 1 March 2021 for medical and physiotherapy care (not nursing), "
        "mutuality 306.",
        coverages=_insured("306", 1006),
        medical_house=MedicalHouseContract(date(2021, 3, 1), None, nurse=False, medical=True, kine=True),
    ),
    Beneficiary(
        make_ssin(date(1939, 6, 2), 155), "Staal", "Hubert", date(1939, 6, 2), "hospitalized",
        "In hospital since 15 September 2025 (service 200); a hospitalized_elsewhere question answers the "
        "hospital, mutuality 116.",
        coverages=_insured("116", 1007, "121", "121"),
        hospital_stay=HospitalStay(_hospital_number(710012), _ADMISSION_DATE, "200"),
    ),
    Beneficiary(
        make_ssin(date(1944, 12, 24), 22), "Monster", "Irène", date(1944, 12, 24), "deceased",
        "Died on 15 March 2025; insured at mutuality 216 until that day (ask a period around it to see the date).",
        coverages=_insured("216", 1008, "131", "131", end=_DEATH_DATE), deceased=_DEATH_DATE,
    ),
    Beneficiary(
        make_ssin(date(1978, 3, 9), 97), "Wissel", "Tom", date(1978, 3, 9), "change_of_mutuality",
        "Moved from mutuality 131 to 226 on 1 July 2024; a period spanning that date answers changeDuring "
        "with two items.",
        coverages=(
            Coverage("131", _regnr("131", 1009), INSURED_FROM, _LAST_DAY_BEFORE_CHANGE, "110", "110"),
            Coverage("226", _regnr("226", 1009), _CHANGE_DATE, INSURED_UNTIL, "110", "110"),
        ),
    ),
    Beneficiary(
        make_ssin(date(1999, 8, 14), 203), "Dubbel", "Nora", date(1999, 8, 14), "several_insurers",
        "Claimed by two national unions (1 and 3): the platform answers MULTIIO_ERROR.",
        insurers=("1", "3"),
    ),
    Beneficiary(
        make_ssin(date(1970, 5, 27), 5), "Drievoud", "Paul", date(1970, 5, 27), "several_insurers",
        "Claimed by three national unions (2, 5 and 9): the platform answers MULTIIO_ERROR.",
        insurers=("2", "5", "9"),
    ),
)


def _with_wrong_check_digits(ssin: str) -> str:
    return ssin[:9] + f"{(int(ssin[9:]) + 1) % 100:02d}"


def _impossible_birth_date_ssin() -> str:
    """Eleven digits with matching check digits whose first six cannot be a date (month 13)."""
    first9 = "851330001"
    return f"{first9}{97 - int(first9) % 97:02d}"


_UNKNOWN_SSIN = make_ssin(date(1982, 10, 1), 77)

TEST_PATIENTS: list[TestPatient] = [
    TestPatient(
        b.ssin,
        b.coverages[-1].mutuality if b.coverages else None,
        b.coverages[-1].registration_number if b.coverages else None,
        b.last_name, b.first_name, b.scenario, b.description,
    )
    for b in BENEFICIARIES
] + [
    TestPatient(_UNKNOWN_SSIN, None, None, None, None, "unknown",
                "A valid SSIN that no insurer knows: the platform answers NO_IO_ERROR."),
    TestPatient(_with_wrong_check_digits(BENEFICIARIES[0].ssin), None, None, None, None, "bad_check_digit",
                "Lucas Voorbeeld's SSIN with wrong check digits: INPUT_ERROR, detail 12 on Inss."),
    TestPatient(_impossible_birth_date_ssin(), None, None, None, None, "bad_ssin_format",
                "Eleven digits that cannot be an SSIN (month 13): INPUT_ERROR, detail 11 on Inss."),
    TestPatient("", "199", "19900001001", None, None, "unknown_mutuality",
                "Asked without SSIN, by registration number at mutuality 199, which does not exist: "
                "INPUT_ERROR, detail 21 on Mutuality."),
]


class Population:
    """Lookups over the beneficiaries, by SSIN or by mutuality and registration number."""

    def __init__(self, beneficiaries: tuple[Beneficiary, ...]) -> None:
        self._by_ssin = {b.ssin: b for b in beneficiaries}
        self._by_registration = {
            (c.mutuality, c.registration_number): b for b in beneficiaries for c in b.coverages
        }

    def by_ssin(self, ssin: str) -> Beneficiary | None:
        return self._by_ssin.get(ssin)

    def by_registration(self, mutuality: str, registration_number: str) -> Beneficiary | None:
        return self._by_registration.get((mutuality, registration_number))


POPULATION = Population(BENEFICIARIES)

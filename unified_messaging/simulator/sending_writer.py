"""Writer of eFact 920000 sendings for tests, demos and benchmarks.

Everything written here is read back identically by :mod:`unified_messaging.efact.validator`,
and has the lengths and zone offsets of the real files.  Zones the gateway never reads are filled
with zeros (numeric zones) or spaces (reserves), which the real files also use.  The feedback the
platform answers with is written by :mod:`.feedback_writer`.
"""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import Enum
from typing import BinaryIO, Iterable, Iterator

from unified_messaging.efact.layout import (
    HEADER_LENGTH,
    PRODUCTION_MARKER,
    RECORD_LENGTH,
    SEGMENT_300_LENGTH,
    SENDING_CODE,
    TEST_MARKER,
)
from unified_messaging.efact.values import (
    control_number,
    format_amount,
    mod97_digits,
    record_check_digits,
)
from unified_messaging.identifiers import make_ssin
from unified_messaging.simulator.devpki import LAB_NIHII as DEMO_SENDER_NIHII

logger = logging.getLogger(__name__)


class Defect(str, Enum):
    """Faults a test sending can carry on purpose."""

    ZONE_99 = "zone_99"                # wrong check digits on the first service line 50
    CONTROL_NUMBER = "control_number"  # wrong control number (zone 98) on the first invoice 80
    HEADER = "header"                  # impossible invoicing month in segment 300 (zone 300)
    BLOCKING = "blocking"              # impossible date of service on the first service line 50


@dataclass(frozen=True)
class SendingSpec:
    """What a generated sending holds.  Amounts are in cents."""

    zone_204: str = "20240223000001"
    is_test: bool = True
    mutualities: tuple[str, ...] = ("131",)
    invoices_per_mutuality: int = 1
    lines_per_invoice: int = 1
    eid_records: bool = False
    nomenclature: str = "0567011"
    line_amount: int = 2375
    sending_number: int = 1
    invoicing_month: str = "202402"
    creation_date: str = "20240223"
    federation: str = "199"
    version: str = "01"
    defects: frozenset[Defect] = field(default_factory=frozenset)
    # Record 10: the sender's NIHII (zone 14, the third-party payer number) and CBE (zone 27);
    # "" writes zeros (a file that names no sender).
    sender_nihii: str = DEMO_SENDER_NIHII
    sender_cbe: str = ""

    def __post_init__(self) -> None:
        if len(self.zone_204) != 14 or not self.zone_204.isdigit():
            raise ValueError("zone 204 is the sender's reference: exactly 14 digits")
        if len(self.nomenclature) != 7 or not self.nomenclature.isdigit():
            raise ValueError("a nomenclature code has 7 digits")
        if any(len(m) != 3 or not m.isdigit() for m in self.mutualities):
            raise ValueError("mutuality numbers have 3 digits")
        if len(set(self.mutualities)) != len(self.mutualities):
            raise ValueError("each mutuality is listed once")
        if self.sender_nihii and (len(self.sender_nihii) != 11 or not self.sender_nihii.isdigit()):
            raise ValueError("the sender's NIHII has 11 digits")
        if self.sender_cbe and (len(self.sender_cbe) != 10 or not self.sender_cbe.isdigit()):
            raise ValueError("the sender's CBE number has 10 digits")

    @property
    def records_per_invoice(self) -> int:
        return 2 + self.lines_per_invoice * (2 if self.eid_records else 1)

    @property
    def size(self) -> int:
        """The size in bytes of the sending this spec produces."""
        invoices = len(self.mutualities) * self.invoices_per_mutuality
        records = 2 + invoices * self.records_per_invoice + len(self.mutualities) + 1
        return HEADER_LENGTH + records * RECORD_LENGTH


def spec_for_size(target_bytes: int, **options: object) -> SendingSpec:
    """A spec whose sending is at least ``target_bytes`` long (for load and memory tests)."""
    spec = SendingSpec(**options)  # type: ignore[arg-type]
    per_round = len(spec.mutualities) * spec.records_per_invoice * RECORD_LENGTH
    fixed = HEADER_LENGTH + (3 + len(spec.mutualities)) * RECORD_LENGTH
    invoices = max(1, -(-(target_bytes - fixed) // per_round))
    return SendingSpec(**{**options, "invoices_per_mutuality": invoices})  # type: ignore[arg-type]


def _fill(parts: Iterable[tuple[int, str]], length: int = RECORD_LENGTH, filler: str = "0") -> str:
    """A fixed-width text: ``filler`` everywhere except the (offset, text) parts given."""
    chars = list(filler * length)
    for offset, text in parts:
        chars[offset:offset + len(text)] = text
    return "".join(chars)


def _with_check_digits(record: str, wrong: bool = False) -> str:
    digits = record_check_digits(record)
    if wrong:
        digits = mod97_digits(int(digits) + 1)
    return record[:348] + digits


def _segment_200(spec: SendingSpec) -> str:
    marker = TEST_MARKER if spec.is_test else PRODUCTION_MARKER
    return (f"{SENDING_CODE}00{spec.version}00{marker}000000{spec.zone_204}00"
            f"{'0' * 14}00{'0' * 15}")


def _segment_300(spec: SendingSpec) -> str:
    month = spec.invoicing_month
    if Defect.HEADER in spec.defects:
        month = month[:4] + "13"
    instructions = "9991999" if spec.is_test else "0001999"
    return _fill([
        (0, month), (6, "00"), (8, f"{spec.sending_number:03d}"), (11, "00"),
        (13, spec.creation_date), (21, "00"), (23, " " * 13), (36, "00"), (38, instructions),
        (45, "00"), (47, "UNIFIED MESSAGING".ljust(45)), (92, "00"), (94, "TEST".ljust(24)),
        (118, "00"), (120, "0" * 10), (130, "00"), (132, "03"), (134, "00"), (136, "01"),
        (138, "00"),
    ], SEGMENT_300_LENGTH)


@dataclass
class _Counters:
    sequence: int = 0
    nomenclature_total: int = 0
    amount_a: int = 0
    records: int = 0

    def next_sequence(self) -> str:
        self.sequence += 1
        return f"{self.sequence:06d}"


def _beneficiary(number: int) -> str:
    """A synthetic beneficiary identification (zone 8: 13 digits holding an 11-digit SSIN)."""
    birth = date(1940, 1, 1) + timedelta(days=number % 25000)
    return "00" + make_ssin(birth, 1 + (number // 25000) % 997)


class _SendingWriter:
    def __init__(self, spec: SendingSpec) -> None:
        self.spec = spec
        self.counters = _Counters()
        self._first_line_written = False
        self._first_footer_written = False

    def units(self) -> Iterator[str]:
        spec = self.spec
        yield _segment_200(spec)
        yield _segment_300(spec)
        yield self._record_10()
        per_mutuality: dict[str, tuple[_Counters, int]] = {}
        invoice_number = 0
        for mutuality in spec.mutualities:
            totals = _Counters()
            for _ in range(spec.invoices_per_mutuality):
                invoice_number += 1
                yield from self._invoice(mutuality, invoice_number, totals)
            per_mutuality[mutuality] = (totals, spec.invoices_per_mutuality)
        yield self._record_90()
        for number, (mutuality, (totals, _)) in enumerate(per_mutuality.items(), start=1):
            yield self._summary("95", mutuality, number, totals.amount_a, totals.records + 1,
                                totals.nomenclature_total)
        total_records = self.counters.records + len(per_mutuality) + 1
        yield self._summary("96", spec.federation, 0, self.counters.amount_a, total_records,
                            self.counters.nomenclature_total)

    def _record(self, parts: list[tuple[int, str]], wrong_check: bool = False) -> str:
        self.counters.records += 1
        return _with_check_digits(_fill(parts), wrong_check)

    def _record_10(self) -> str:
        instructions = "9991999" if self.spec.is_test else "0001999"
        parts = [(0, "10"), (2, self.counters.next_sequence()), (9, instructions),
                 (32, f"{self.spec.sending_number:03d}")]
        if self.spec.sender_nihii:
            parts.append((55, "0" + self.spec.sender_nihii))
        if self.spec.sender_cbe:
            parts.append((127, self.spec.sender_cbe))
        return self._record(parts)

    def _invoice(self, mutuality: str, invoice_number: int, totals: _Counters) -> Iterator[str]:
        spec = self.spec
        beneficiary = _beneficiary(invoice_number)
        yield self._record([(0, "20"), (2, self.counters.next_sequence()), (32, mutuality),
                            (35, beneficiary)])
        codes = 0
        amount = 0
        for _ in range(spec.lines_per_invoice):
            yield self._line(mutuality, beneficiary)
            codes += int(spec.nomenclature)
            amount += spec.line_amount
            if spec.eid_records:
                yield self._record([(0, "52"), (2, self.counters.next_sequence()),
                                    (9, spec.nomenclature), (16, self._service_date())])
                codes += int(spec.nomenclature)
        yield self._footer_80(mutuality, beneficiary, codes, amount)
        totals.nomenclature_total += codes
        totals.amount_a += amount
        totals.records += spec.records_per_invoice
        self.counters.nomenclature_total += codes
        self.counters.amount_a += amount

    def _service_date(self) -> str:
        return f"{self.spec.invoicing_month}01"

    def _line(self, mutuality: str, beneficiary: str) -> str:
        spec = self.spec
        first = not self._first_line_written
        self._first_line_written = True
        service_date = self._service_date()
        if first and Defect.BLOCKING in spec.defects:
            service_date = f"{spec.invoicing_month}32"
        return self._record([
            (0, "50"), (2, self.counters.next_sequence()), (9, spec.nomenclature),
            (16, service_date), (24, service_date), (32, mutuality), (35, beneficiary),
            (87, format_amount(spec.line_amount)),
        ], wrong_check=first and Defect.ZONE_99 in spec.defects)

    def _footer_80(self, mutuality: str, beneficiary: str, codes: int, amount: int) -> str:
        control = control_number(codes)
        if not self._first_footer_written and Defect.CONTROL_NUMBER in self.spec.defects:
            control = mod97_digits(int(control) + 1)
        self._first_footer_written = True
        return self._record([
            (0, "80"), (2, self.counters.next_sequence()), (32, mutuality), (35, beneficiary),
            (67, format_amount(0)), (84, mutuality), (87, format_amount(amount)),
            (346, control),
        ])

    def _record_90(self) -> str:
        return self._record([
            (0, "90"), (2, self.counters.next_sequence()),
            (32, f"{self.spec.sending_number:03d}"), (67, format_amount(0)),
            (87, format_amount(self.counters.amount_a)),
            (346, control_number(self.counters.nomenclature_total)),
        ])

    @staticmethod
    def _summary(record_type: str, mutuality: str, invoice_number: int, amount_a: int,
                 records: int, codes: int) -> str:
        body = (f"{record_type}00{mutuality}00{invoice_number:012d}00{format_amount(amount_a)}00"
                f"{format_amount(0)}00{format_amount(amount_a)}00{records:08d}00"
                f"{control_number(codes)}00")
        return body.ljust(RECORD_LENGTH)


def iter_sending(spec: SendingSpec) -> Iterator[str]:
    """The units of a generated 920000, one at a time (segments 200 and 300, then records)."""
    return _SendingWriter(spec).units()


def write_sending(stream: BinaryIO, spec: SendingSpec, buffer_units: int = 2048) -> int:
    """Write a generated 920000 to a binary stream in batches; returns the number of bytes."""
    written = 0
    batch: list[str] = []
    for unit in iter_sending(spec):
        batch.append(unit)
        if len(batch) >= buffer_units:
            written += stream.write("".join(batch).encode("latin-1"))
            batch.clear()
    if batch:
        written += stream.write("".join(batch).encode("latin-1"))
    return written


def build_sending(spec: SendingSpec | None = None, **options: object) -> bytes:
    """A generated 920000 in memory: ``build_sending(mutualities=("131", "216"))``."""
    spec = spec or SendingSpec(**options)  # type: ignore[arg-type]
    stream = io.BytesIO()
    write_sending(stream, spec)
    return stream.getvalue()


"""Writers of eFact files: 920000 sendings for tests, and the five feedback messages the
MyCareNet simulator answers with.

Everything written here is read back identically by :mod:`.efact` and :mod:`.feedback`, and has
the lengths and zone offsets of the real files.  Zones the gateway never reads are filled with
zeros (numeric zones) or spaces (reserves), which the real files also use.
"""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import Enum
from typing import BinaryIO, Iterable, Iterator, Mapping, Sequence

from unified_messaging.identifiers import make_ssin
from unified_messaging.efact.sending import (
    AMOUNT_A,
    DESTINATION_MUTUALITY,
    EXTENDED_300_LENGTH,
    HEADER_LENGTH,
    PRODUCTION_MARKER,
    RECORD_LENGTH,
    SEGMENT_200_LENGTH,
    SEGMENT_200_ZONES,
    SEGMENT_300_LENGTH,
    SEGMENT_300_ZONES,
    SENDING_CODE,
    TEST_MARKER,
    RawUnit,
    Zone,
    control_number,
    format_amount,
    mod97_digits,
    parse_amount,
    read_sending,
    record_check_digits,
    summary_zones,
)
from unified_messaging.efact.feedback import (
    ACCEPTED,
    ACKNOWLEDGEMENT,
    FEEDBACK_RECORD_LENGTH,
    REFUSED,
    REFUSED_AT_RECEPTION,
    SETTLEMENT,
    SLOT_LETTERS,
    SLOT_OFFSETS,
)

logger = logging.getLogger(__name__)

DEFAULT_ZONE_205 = "00000000000001"


# --- 920000 ------------------------------------------------------------------------------------


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

    def __post_init__(self) -> None:
        if len(self.zone_204) != 14 or not self.zone_204.isdigit():
            raise ValueError("zone 204 is the sender's reference: exactly 14 digits")
        if len(self.nomenclature) != 7 or not self.nomenclature.isdigit():
            raise ValueError("a nomenclature code has 7 digits")
        if any(len(m) != 3 or not m.isdigit() for m in self.mutualities):
            raise ValueError("mutuality numbers have 3 digits")
        if len(set(self.mutualities)) != len(self.mutualities):
            raise ValueError("each mutuality is listed once")

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
        return self._record([(0, "10"), (2, self.counters.next_sequence()), (9, instructions),
                             (32, f"{self.spec.sending_number:03d}")])

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


# --- feedback messages -------------------------------------------------------------------------


def slot(letter: str, record_type: str, zone: int | str, error: int | str) -> str:
    """An error slot code: ``slot("R", "50", 24, 5)`` -> ``"R502405"``."""
    code = f"{letter}{record_type}{int(zone):02d}" + (
        f"{error:02d}" if isinstance(error, int) else error)
    _check_slot(code)
    return code


def _check_slot(code: str) -> None:
    if len(code) != 7 or code[0] not in SLOT_LETTERS or not code[1:5].isdigit():
        raise ValueError(f"{code!r} is not an error slot (a letter of {sorted(SLOT_LETTERS)} "
                         "then record type, zone and error number on 2 characters each)")


@dataclass(frozen=True)
class HeaderError:
    """An error code for a 920999: zone 200-205, 300-309, 400-410 (a 95: give the mutuality)
    or 500-510 (the 96)."""

    zone: str
    code: str
    mutuality: str | None = None


@dataclass
class _Sending:
    """A parsed sending, as the feedback builders need it."""

    segment_200: str
    segment_300: str
    records: list[RawUnit]

    @classmethod
    def parse(cls, data: bytes | str) -> "_Sending":
        units = read_sending(data)
        if units[0].text[:6] != SENDING_CODE:
            raise ValueError("feedback can only be built for a 920000 sending")
        return cls(units[0].text, units[1].text, units[2:])

    @property
    def zone_204(self) -> str:
        return self.segment_200[20:34]

    @property
    def type_marker(self) -> str:
        return self.segment_200[12:14]

    @property
    def numbered(self) -> list[RawUnit]:
        """Records 10..90 (the ones feedback records echo)."""
        return [r for r in self.records if r.record_type not in ("95", "96")]

    def invoices(self) -> list[list[int]]:
        """Record indexes of each invoice, from its 20 to its 80."""
        invoices: list[list[int]] = []
        for record in self.records:
            kind, index = record.record_type, record.index or 0
            if kind == "20":
                invoices.append([index])
            elif invoices and kind in ("50", "51", "52", "80"):
                invoices[-1].append(index)
        return invoices


def _feedback_200(code: str, sending: _Sending, zone_205: str, version: str,
                  status: str = "00", reserve: str = " ") -> str:
    if len(zone_205) != 14 or not zone_205.isdigit():
        raise ValueError("zone 205 (the insurer's reference) has 14 digits")
    return (f"{code}00{version}00{sending.type_marker}00{status}00{sending.zone_204}00"
            f"{zone_205}00{reserve * 15}")


def _percentage_text(value: Decimal | float | str | None, default: Decimal) -> str:
    percent = Decimal(str(value)) if value is not None else default
    hundredths = int((percent * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if not 0 <= hundredths <= 10000:
        raise ValueError("an error percentage lies between 0 and 100")
    return f"{hundredths:05d}"


def _extended_300(sending: _Sending, percentage: str, refusal_type: str) -> str:
    return (sending.segment_300[:140] + percentage + "00" + refusal_type + "00").ljust(
        EXTENDED_300_LENGTH)


def _normalise_errors(sending: _Sending, errors: Mapping[int, Sequence[str]] | None
                      ) -> dict[int, list[str]]:
    result: dict[int, list[str]] = {}
    by_index = {record.index: record for record in sending.records}
    for index, codes in (errors or {}).items():
        record = by_index.get(index)
        if record is None:
            raise ValueError(f"the sending has no record with index {index}")
        if record.record_type in ("95", "96"):
            raise ValueError("summaries 95/96 are not echoed in 800-character feedback; "
                             "report them with a 920999")
        codes = list(codes)
        if len(codes) > len(SLOT_OFFSETS):
            raise ValueError(f"a feedback record has {len(SLOT_OFFSETS)} error slots, "
                             f"not {len(codes)}")
        for code in codes:
            _check_slot(code)
        if codes:
            result[index] = codes
    return result


def _echoed_indexes(sending: _Sending, errors: Mapping[int, list[str]]) -> list[int]:
    """Records 10 and 90, and for each invoice with an error its 20, faulty records and 80."""
    chosen = {r.index for r in sending.records if r.record_type in ("10", "90")}
    chosen |= set(errors)
    for invoice in sending.invoices():
        if any(index in errors for index in invoice):
            chosen.update((invoice[0], invoice[-1]))
    return sorted(i for i in chosen if i is not None)


def _feedback_record(record: RawUnit, codes: Sequence[str], counter: str) -> str:
    slots = "".join(code.ljust(7) if code else " 000000" for code in
                    list(codes) + [""] * (len(SLOT_OFFSETS) - len(codes)))
    block = "0" * (SLOT_OFFSETS[0] - RECORD_LENGTH) + slots
    block = block.ljust(FEEDBACK_RECORD_LENGTH - RECORD_LENGTH - len(counter)) + counter
    return record.text + block


def _counter(record_type: str, number: int) -> str:
    return {"10": "111111", "90": "999999"}.get(record_type, f"{number:06d}")


def _detailed_records(sending: _Sending, errors: dict[int, list[str]]) -> list[str]:
    by_index = {record.index: record for record in sending.records}
    lines = []
    for number, index in enumerate(_echoed_indexes(sending, errors)):
        record = by_index[index]
        lines.append(_feedback_record(record, errors.get(index, ()),
                                      _counter(record.record_type, number)))
    return lines


def _default_percentage(sending: _Sending, errors: Mapping[int, Sequence[str]]) -> Decimal:
    """Records with an error over records 10..90, in percent (the insurers' own rule is not
    published; pass ``error_percentage`` to choose it)."""
    numbered = len(sending.numbered) or 1
    return Decimal(len(errors)) * 100 / numbered


def _detailed(code: str, data: bytes | str, errors: Mapping[int, Sequence[str]] | None,
              refusal_type: str, error_percentage: Decimal | float | str | None,
              zone_205: str, version: str) -> tuple[_Sending, dict[int, list[str]], str]:
    sending = _Sending.parse(data)
    normalised = _normalise_errors(sending, errors)
    percentage = _percentage_text(error_percentage, _default_percentage(sending, normalised))
    head = (_feedback_200(code, sending, zone_205, version)
            + _extended_300(sending, percentage, refusal_type))
    return sending, normalised, head


def build_931000(sending: bytes | str, *, zone_205: str = DEFAULT_ZONE_205,
                 version: str = "01") -> bytes:
    """The acknowledgement: the insurer received the sending and will process it."""
    parsed = _Sending.parse(sending)
    text = _feedback_200(ACKNOWLEDGEMENT, parsed, zone_205, version) + \
        f"{SENDING_CODE}00".ljust(HEADER_LENGTH - SEGMENT_200_LENGTH)
    return text.encode("latin-1")


def build_920098(sending: bytes | str, errors: Mapping[int, Sequence[str]] | None = None, *,
                 error_percentage: Decimal | float | str | None = None,
                 zone_205: str = DEFAULT_ZONE_205, version: str = "01") -> bytes:
    """Sending accepted after the detailed check; ``errors`` maps a record index of the sending
    to up to three slot codes (``{3: ["R502405"]}``)."""
    parsed, normalised, head = _detailed(ACCEPTED, sending, errors, "00", error_percentage,
                                         zone_205, version)
    return (head + "".join(_detailed_records(parsed, normalised))).encode("latin-1")


def build_920099(sending: bytes | str, errors: Mapping[int, Sequence[str]] | None = None, *,
                 refusal_type: str = "01",
                 error_percentage: Decimal | float | str | None = None,
                 zone_205: str = DEFAULT_ZONE_205, version: str = "01") -> bytes:
    """Sending refused after the detailed check: refusal type 01 (blocking errors) or 02 (too
    many errors)."""
    if refusal_type not in ("01", "02"):
        raise ValueError("a 920099 refusal type is 01 (blocking errors) or 02 (too many errors)")
    parsed, normalised, head = _detailed(REFUSED, sending, errors, refusal_type,
                                         error_percentage, zone_205, version)
    return (head + "".join(_detailed_records(parsed, normalised))).encode("latin-1")


def _set_error(text: str, zone: Zone, code: str) -> str:
    if zone.error_at is None or len(code) != 2:
        raise ValueError(f"zone {zone.number} takes a 2-character error code")
    return text[:zone.error_at] + code + text[zone.error_at + 2:]


def _zone(zones: tuple[Zone, ...], number: str) -> Zone:
    for zone in zones:
        if zone.number == number:
            return zone
    raise ValueError(f"zone {number} has no error code in this segment")


def build_920999(sending: bytes | str, header_errors: Sequence[HeaderError], *,
                 zone_205: str = DEFAULT_ZONE_205, version: str = "02",
                 status: str = "40") -> bytes:
    """The whole sending refused at reception: error codes in segments 200/300 and in the
    summaries; the 96 is always echoed, a 95 when it carries an error."""
    parsed = _Sending.parse(sending)
    if not header_errors:
        raise ValueError("a 920999 names at least one header or summary error")
    segment_200 = _feedback_200(REFUSED_AT_RECEPTION, parsed, zone_205, version, status, "0")
    segment_300 = parsed.segment_300
    summaries = {_summary_key(r): r.text for r in parsed.records
                 if r.record_type in ("95", "96")}
    flagged = {"96"}
    for error in header_errors:
        hundred = error.zone[:1]
        if hundred == "2":
            segment_200 = _set_error(segment_200, _zone(SEGMENT_200_ZONES, error.zone), error.code)
            continue
        if hundred == "3":
            segment_300 = _set_error(segment_300, _zone(SEGMENT_300_ZONES, error.zone), error.code)
            continue
        key = "96" if hundred == "5" else (error.mutuality or _first_mutuality(summaries))
        if key not in summaries:
            raise ValueError(f"the sending has no summary for {key!r}")
        zones = summary_zones(400 if hundred == "4" else 500)
        summaries[key] = _set_error(summaries[key], _zone(zones, error.zone), error.code)
        flagged.add(key)
    body = "".join(text for key, text in summaries.items() if key in flagged)
    return (segment_200 + segment_300 + body).encode("latin-1")


def _summary_key(record: RawUnit) -> str:
    """Summaries by mutuality number; the 96 under its own type."""
    return "96" if record.record_type == "96" else record.text[4:7]


def _first_mutuality(summaries: Mapping[str, str]) -> str:
    return next(key for key in summaries if key != "96")


def _rejected_by_mutuality(sending: _Sending, errors: Mapping[int, list[str]]) -> dict[str, int]:
    """Amounts refused: the whole invoice for an F, the service line for an R or B on a 50."""
    by_index = {record.index: record for record in sending.records}
    rejected: dict[str, int] = {}
    for invoice in sending.invoices():
        footer = by_index[invoice[-1]].text
        mutuality = footer[DESTINATION_MUTUALITY]
        codes = [(index, code) for index in invoice for code in errors.get(index, ())]
        if any(code[0] == "F" for _, code in codes):
            amount = parse_amount(footer[AMOUNT_A]) or 0
        else:
            lines = {index for index, code in codes if code[0] in "RB"
                     and by_index[index].record_type == "50"}
            amount = sum(parse_amount(by_index[i].text[AMOUNT_A]) or 0 for i in lines)
        rejected[mutuality] = rejected.get(mutuality, 0) + amount
    return rejected


def _settlement_amounts(requested: int, rejected: int) -> str:
    accepted = requested - rejected
    return "".join(f"{format_amount(value)}00" for value in
                   (accepted, rejected, 0, 0, accepted, rejected))


def build_920900(sending: bytes | str, errors: Mapping[int, Sequence[str]] | None = None, *,
                 rejected: Mapping[str, int] | None = None,
                 payment_reference: str | None = None,
                 zone_205: str = DEFAULT_ZONE_205, version: str = "03") -> bytes:
    """The settlement: faulty records with their final errors, then a 91 per mutuality and the
    92 with requested, accepted and rejected amounts (cents) and the payment reference.

    ``rejected`` overrides the refused amount per mutuality (by default: the amounts of the
    service lines with an R or B, the whole invoice for an F).
    """
    parsed, normalised, head = _detailed(SETTLEMENT, sending, errors, "00", 0, zone_205, version)
    refused = dict(_rejected_by_mutuality(parsed, normalised))
    refused.update(rejected or {})
    lines = _detailed_records(parsed, normalised)
    month = parsed.segment_300[0:6]
    number = parsed.segment_300[8:11]
    total_requested = total_rejected = 0
    for record in parsed.records:
        if record.record_type != "95":
            continue
        mutuality = record.text[4:7]
        requested = parse_amount(record.text[23:35]) or 0
        refusal = refused.get(mutuality, 0)
        total_requested += requested
        total_rejected += refusal
        reference = (payment_reference or f"{number}/{month}/{mutuality}/")[:22].ljust(22)
        lines.append(("91" + record.text[2:79] + _settlement_amounts(requested, refusal)
                      + f"{reference}00{reference}00").ljust(FEEDBACK_RECORD_LENGTH))
    federation = next((r for r in parsed.records if r.record_type == "96"), None)
    if federation is not None:
        lines.append(("92" + federation.text[2:79]
                      + _settlement_amounts(total_requested, total_rejected)
                      ).ljust(FEEDBACK_RECORD_LENGTH))
    return (head + "".join(lines)).encode("latin-1")


def first_index(data: bytes | str, record_type: str) -> int:
    """The index of the first record of a type in a sending (handy to aim an error)."""
    for record in _Sending.parse(data).records:
        if record.record_type == record_type:
            return record.index or 0
    raise ValueError(f"the sending has no record {record_type}")


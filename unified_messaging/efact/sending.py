"""Reader and validator of the eFact 920000 sending (the monthly invoice file).

The file is one line of fixed-width text: segment 200 (67 characters), segment 300 (160), then
records of 350 characters.  Records 10 to 90 carry a sequence number and check digits (zone 99);
the summaries 95 (one per mutuality) and 96 (the federation) are *segments* 400 and 500 written
in a 350-character slot: they carry error-code zones instead of check digits.

Layout facts verified against the real files in ``shared/reference/efact`` (0-based offsets,
end exclusive, inside a record):

* zone 99 of records 10..90 = [348:350], the sum of the character values of [0:348] mod 97
  (digit = value, space = 10, a-z/A-Z = 11..36, anything else = 37), written 97 when 0;
* the control number (zone 98 of records 80 and 90 = [346:348], zone 410 of a 95 and zone 510
  of the 96 = [75:77]) is the sum of the nomenclature codes (zone 4 = [9:16]) of the records
  50, 51 and 52 concerned, mod 97;
* amounts are a sign and 11 digits in cents: records 80/90 zone 19 (account A) = [87:99] and
  zone 15 (account B) = [67:79]; summaries 95/96: A = [23:35], B = [37:49], A+B = [51:63].

The validator works on a stream of bytes in chunks, so a 50 MB file needs a few megabytes at
most.  It never puts a beneficiary identification in a message.
"""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from datetime import date
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO, Iterator

from unified_messaging.identifiers import mask_ssins_in_text

logger = logging.getLogger(__name__)

SENDING_CODE = "920000"
FEEDBACK_CODES = ("931000", "920098", "920099", "920999", "920900")
SEGMENT_200_LENGTH = 67
SEGMENT_300_LENGTH = 160
HEADER_LENGTH = SEGMENT_200_LENGTH + SEGMENT_300_LENGTH
RECORD_LENGTH = 350
TEST_MARKER = "92"
PRODUCTION_MARKER = "12"

CHECKED_RECORD_TYPES = frozenset({"10", "20", "50", "51", "52", "80", "90"})
LINE_RECORD_TYPES = frozenset({"50", "51", "52"})
SUMMARY_RECORD_TYPES = frozenset({"95", "96"})
RECORD_TYPES = CHECKED_RECORD_TYPES | SUMMARY_RECORD_TYPES

RECORD_NAMES = {
    "10": "sending header",
    "20": "invoice header",
    "50": "service line",
    "51": "tarification record",
    "52": "identity-reading record",
    "80": "invoice footer",
    "90": "sending footer",
    "95": "mutuality summary",
    "96": "federation summary",
}

DEFAULT_CHUNK_SIZE = 1 << 20
DEFAULT_MAX_ISSUES = 200


# --- layout ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Zone:
    """One zone of a segment: its number, slice and the 2-digit error-code zone that follows it."""

    number: str
    start: int
    end: int
    label: str
    error_at: int | None = None

    def value(self, text: str) -> str:
        return text[self.start:self.end]

    def error_code(self, text: str) -> str | None:
        if self.error_at is None:
            return None
        return text[self.error_at:self.error_at + 2]

    @property
    def error_zone(self) -> str:
        """The name of the error-code zone, e.g. ``2041`` after zone 204."""
        return f"{self.number}1"


SEGMENT_200_ZONES = (
    Zone("200", 0, 6, "message name", 6),
    Zone("201", 8, 10, "version", 10),
    Zone("202", 12, 14, "test/production type", 14),
    Zone("203", 16, 18, "status", 18),
    Zone("204", 20, 34, "sender's reference", 34),
    Zone("205", 36, 50, "insurer's reference", 50),
)

SEGMENT_300_ZONES = (
    Zone("300", 0, 6, "invoicing year and month", 6),
    Zone("301", 8, 11, "sending number", 11),
    Zone("302", 13, 21, "creation date", 21),
    Zone("303", 23, 36, "sender's file reference", 36),
    Zone("304", 38, 45, "version of the instructions", 45),
    Zone("305", 47, 92, "contact last name", 92),
    Zone("306", 94, 118, "contact first name", 118),
    Zone("307", 120, 130, "contact phone", 130),
    Zone("308", 132, 134, "invoice type", 134),
    Zone("309", 136, 138, "invoicing type", 138),
)

# The extended segment 300 of 920098/920099/920900 (610 characters) adds zones 310 and 311.
EXTENDED_300_ZONES = SEGMENT_300_ZONES + (
    Zone("310", 140, 145, "error percentage (hundredths)", 145),
    Zone("311", 147, 149, "refusal type", 149),
)
EXTENDED_300_LENGTH = 610


def summary_zones(base: int) -> tuple[Zone, ...]:
    """Zones of a summary segment: 95 and 91 use base 400, 96 and 92 use base 500."""
    return (
        Zone(f"{base}", 0, 2, "record type", 2),
        Zone(f"{base + 1}", 4, 7, "mutuality number", 7),
        Zone(f"{base + 2}", 9, 21, "summary invoice number", 21),
        Zone(f"{base + 4}", 23, 35, "amount requested, account A", 35),
        Zone(f"{base + 6}", 37, 49, "amount requested, account B", 49),
        Zone(f"{base + 8}", 51, 63, "amount requested, A + B", 63),
        Zone(f"{base + 9}", 65, 73, "number of records", 73),
        Zone(f"{base + 10}", 75, 77, "control number", 77),
    )


def settlement_zones(base: int) -> tuple[Zone, ...]:
    """Zones a settlement record (91 = base 400, 92 = base 500) adds after the summary zones."""
    return (
        Zone(f"{base + 12}", 79, 91, "amount accepted, account A", 91),
        Zone(f"{base + 14}", 93, 105, "amount rejected, account A", 105),
        Zone(f"{base + 16}", 107, 119, "amount accepted, account B", 119),
        Zone(f"{base + 18}", 121, 133, "amount rejected, account B", 133),
        Zone(f"{base + 20}", 135, 147, "total accepted, A + B", 147),
        Zone(f"{base + 22}", 149, 161, "total rejected, A + B", 161),
        Zone(f"{base + 23}", 163, 185, "payment reference, account A", 185),
        Zone(f"{base + 24}", 187, 209, "payment reference, account B", 209),
    )


SEGMENT_95_ZONES = summary_zones(400)
SEGMENT_96_ZONES = summary_zones(500)

# Fixed offsets inside the records 10..90 (zone numbers of the official layouts).
SEQUENCE = slice(2, 8)
NOMENCLATURE = slice(9, 16)          # 50/51/52 zone 4
SERVICE_DATE = slice(16, 24)         # 50 zone 5
AFFILIATION_MUTUALITY = slice(32, 35)  # 20/50/80 zone 7
SENDING_NUMBER = slice(32, 35)       # 10/90 zone 7
DESTINATION_MUTUALITY = slice(84, 87)  # 80 zone 18
AMOUNT_B = slice(67, 79)             # 80/90 zone 15
AMOUNT_A = slice(87, 99)             # 80/90 zone 19, 50 zone 19 (line amount)
CONTROL_98 = slice(346, 348)
CHECK_99 = slice(348, 350)
SUMMARY_MUTUALITY = slice(4, 7)
SUMMARY_AMOUNT_A = slice(23, 35)
SUMMARY_AMOUNT_B = slice(37, 49)
SUMMARY_TOTAL = slice(51, 63)
SUMMARY_COUNT = slice(65, 73)
SUMMARY_CONTROL = slice(75, 77)


# --- check digits and amounts ------------------------------------------------------------------


def _value_table() -> bytes:
    table = bytearray([37] * 256)
    for digit in range(10):
        table[ord("0") + digit] = digit
    table[ord(" ")] = 10
    for position in range(26):
        table[ord("a") + position] = 11 + position
        table[ord("A") + position] = 11 + position
    return bytes(table)


_CHARACTER_VALUES = _value_table()


def record_check_sum(record: bytes | str) -> int:
    """The sum of the character values of the first 348 characters of a record."""
    raw = record.encode("latin-1") if isinstance(record, str) else record
    return sum(raw[:348].translate(_CHARACTER_VALUES))


def mod97_digits(total: int) -> str:
    """Two check digits: ``total`` mod 97, written 97 when the remainder is 0."""
    remainder = total % 97
    return f"{remainder or 97:02d}"


def record_check_digits(record: bytes | str) -> str:
    """Zone 99 of a record 10..90, computed from its first 348 characters."""
    return mod97_digits(record_check_sum(record))


def control_number(nomenclature_total: int) -> str:
    """Zone 98 (80/90), 410 (95) or 510 (96): the nomenclature codes' sum mod 97 (0 written 97)."""
    return mod97_digits(nomenclature_total)


def _digits_match(written: str, total: int) -> bool:
    """True when ``written`` is the mod-97 digits of ``total``.

    For a remainder of 0 the documentation says 97; no real file shows that case, so ``00`` is
    accepted too rather than refusing a file the insurers might take.
    """
    if written == mod97_digits(total):
        return True
    return total % 97 == 0 and written == "00"


def parse_amount(text: str) -> int | None:
    """A signed amount zone (sign + digits, in cents) as an int, or None when malformed."""
    if len(text) < 2 or text[0] not in "+-" or not text[1:].isdigit():
        return None
    value = int(text[1:])
    return -value if text[0] == "-" else value


def format_amount(cents: int, digits: int = 11) -> str:
    """The zone text of an amount in cents: sign + ``digits`` digits."""
    sign = "-" if cents < 0 else "+"
    return f"{sign}{abs(cents):0{digits}d}"


def euros(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d} EUR"


@lru_cache(maxsize=4096)
def _valid_date(text: str) -> bool:
    if len(text) != 8 or not text.isdigit():
        return False
    try:
        date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return False
    return True


def _valid_month(text: str) -> bool:
    return len(text) == 6 and text.isdigit() and 1 <= int(text[4:6]) <= 12


# --- issues ------------------------------------------------------------------------------------


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class ValidationIssue:
    """Something wrong in a file, located precisely.

    ``record_type`` is the record type (``"50"``), ``"200"``/``"300"`` for the header segments, or
    None for the file as a whole.  ``record_index`` counts the 350-character records from 0 (None
    for the segments).  ``offset`` is the byte offset in the file where the problem starts.
    """

    record_type: str | None
    record_index: int | None
    zone: str | None
    message: str
    sequence: str | None = None
    offset: int | None = None
    severity: Severity = Severity.ERROR

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def location(self) -> str:
        if self.record_type in ("200", "300"):
            place = f"segment {self.record_type}"
        elif self.record_type is None:
            place = "file"
        else:
            place = f"record {self.record_type}"
            details = []
            if self.sequence and self.sequence.isdigit():
                details.append(f"no. {self.sequence}")
            if self.record_index is not None:
                details.append(f"{_ordinal(self.record_index + 1)} record of the file")
            if details:
                place += f" ({', '.join(details)})"
        if self.offset is not None:
            place += f" at byte {self.offset}"
        if self.zone:
            place += f", zone {self.zone}"
        return place

    def __str__(self) -> str:
        prefix = "" if self.is_error else "warning: "
        return f"{prefix}{self.location()}: {self.message}"


def _ordinal(number: int) -> str:
    if 10 <= number % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


class EfactError(ValueError):
    """An eFact file (sending or feedback) that cannot be accepted; ``issues`` says why.

    ``record_type``, ``record_index``, ``zone`` and ``message`` repeat the first issue.
    """

    def __init__(self, issues: list[ValidationIssue] | ValidationIssue) -> None:
        self.issues = [issues] if isinstance(issues, ValidationIssue) else list(issues)
        if not self.issues:
            raise ValueError("an EfactError needs at least one issue")
        first = self.issues[0]
        self.record_type = first.record_type
        self.record_index = first.record_index
        self.zone = first.zone
        self.message = first.message
        more = len(self.issues) - 1
        text = str(first) + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")
        super().__init__(text)


# --- summary -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MutualitySummary:
    """One record 95 as declared, plus the invoices the file holds for that mutuality."""

    mutuality: str
    invoices: int
    amount_a: int
    amount_b: int
    total: int
    control: str


@dataclass(frozen=True)
class SendingSummary:
    """What a 920000 sending holds; amounts in cents."""

    message_code: str | None = None
    version: str | None = None
    zone_204: str | None = None
    type_marker: str | None = None
    sending_number: str | None = None
    invoicing_month: str | None = None
    creation_date: str | None = None
    invoices: int = 0
    records: int = 0
    service_lines: int = 0
    mutualities: tuple[MutualitySummary, ...] = ()
    federation: str | None = None
    total_a: int | None = None
    total_b: int | None = None
    total: int | None = None
    control: str | None = None

    @property
    def is_test(self) -> bool | None:
        if self.type_marker == TEST_MARKER:
            return True
        if self.type_marker == PRODUCTION_MARKER:
            return False
        return None


@dataclass
class ValidationReport:
    summary: SendingSummary
    issues: list[ValidationIssue]
    omitted_issues: int = 0
    omitted_errors: int = 0
    size: int = 0

    @property
    def errors(self) -> list[ValidationIssue]:
        return [issue for issue in self.issues if issue.is_error]

    @property
    def warnings(self) -> list[ValidationIssue]:
        return [issue for issue in self.issues if not issue.is_error]

    @property
    def ok(self) -> bool:
        return not self.errors and not self.omitted_errors

    def raise_for_errors(self) -> None:
        if not self.ok:
            raise EfactError(self.errors or self.issues)

    def describe(self) -> str:
        """The issues as plain text, one per line, for a reason file next to a refused payload."""
        lines = [str(issue) for issue in self.issues]
        if self.omitted_issues:
            lines.append(f"... and {self.omitted_issues} more problems not listed")
        return "\n".join(lines)


# --- the reader --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RawUnit:
    """One piece of the file: segment 200, segment 300 or a 350-character record.

    ``record_type`` is ``"200"``/``"300"`` for the segments, the first two characters otherwise.
    """

    kind: str  # "200", "300" or "record"
    index: int | None
    offset: int
    record_type: str
    text: str = field(repr=False)
    raw: bytes = field(repr=False)


class _Splitter:
    """Cuts a byte stream into the file's units (67, 160, then 350 each) with a bounded buffer."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.offset = 0
        self.units = 0

    def _next_length(self) -> int:
        if self.units == 0:
            return SEGMENT_200_LENGTH
        if self.units == 1:
            return SEGMENT_300_LENGTH
        return RECORD_LENGTH

    def feed(self, chunk: bytes) -> Iterator[tuple[int, bytes]]:
        self._buffer += chunk
        position = 0
        try:
            while True:
                length = self._next_length()
                if len(self._buffer) - position < length:
                    return
                unit = bytes(self._buffer[position:position + length])
                position += length
                yield self.offset, unit
                self.offset += length
                self.units += 1
        finally:
            del self._buffer[:position]

    @property
    def leftover(self) -> bytes:
        return bytes(self._buffer)


def _unit(splitter_units: int, offset: int, raw: bytes) -> RawUnit:
    text = raw.decode("latin-1")
    if splitter_units == 0:
        return RawUnit("200", None, offset, "200", text, raw)
    if splitter_units == 1:
        return RawUnit("300", None, offset, "300", text, raw)
    return RawUnit("record", splitter_units - 2, offset, text[:2], text, raw)


def iter_units(stream: BinaryIO, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[RawUnit]:
    """Read a 920000 file piece by piece without checking it (use :func:`validate_stream` for that).

    Raises :class:`EfactError` when the file ends inside a unit (a trailing newline is ignored).
    """
    splitter = _Splitter()
    while True:
        chunk = stream.read(chunk_size)
        if not chunk:
            break
        for offset, raw in splitter.feed(chunk):
            yield _unit(splitter.units, offset, raw)
    leftover = splitter.leftover
    if splitter.units < 2 or leftover not in (b"", b"\n", b"\r\n"):
        raise EfactError(_truncation_issue(splitter.units, splitter.offset, leftover))


def _truncation_issue(units: int, offset: int, leftover: bytes) -> ValidationIssue:
    """The issue for bytes left over after the last complete unit."""
    body = leftover.rstrip(b"\r\n")
    end = offset + len(body)
    if units < 2:
        if end == 0:
            return ValidationIssue(None, None, None, "the file is empty", offset=0)
        return ValidationIssue(
            None, None, None,
            f"the file is too short: {end} characters, fewer than the {HEADER_LENGTH} of its "
            "header (segments 200 and 300)",
            offset=end,
        )
    index = units - 2
    record_type = body[:2].decode("latin-1") if len(body) >= 2 else None
    if not body or b"\n" in body or b"\r" in body:
        return ValidationIssue(
            None, None, None,
            "stray line breaks after the last record; an eFact file is one single line",
            offset=offset,
        )
    return ValidationIssue(
        record_type, index, None,
        f"truncated record: the file ends {len(body)} characters into this record, which needs "
        f"{RECORD_LENGTH}",
        offset=offset,
    )


def _sniff(prefix: bytes) -> str | None:
    """Name the kind of file when it plainly is not an eFact flat file."""
    known = (
        (b"%PDF", "a PDF document"),
        (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
        (b"\x1f\x8b", "a gzip-compressed file"),
        (b"<?xml", "an XML document"),
        (b"\xef\xbb\xbf<", "an XML document"),
        (b"<", "an XML or HTML document"),
        (b"{", "a JSON document"),
        (b"[", "a JSON document"),
        (b"\xff\xfe", "a UTF-16 text file"),
        (b"\xfe\xff", "a UTF-16 text file"),
    )
    for magic, name in known:
        if prefix.startswith(magic):
            return name
    if prefix[:1] == b"\x78" and prefix[1:2] in (b"\x01", b"\x5e", b"\x9c", b"\xda"):
        return "a deflate-compressed file (send the plain file, the gateway compresses it)"
    return None


# --- the validator -----------------------------------------------------------------------------

_EXPECTED_NEXT = {
    "start": frozenset({"10"}),
    "after_10": frozenset({"20", "90"}),
    "in_invoice": frozenset({"50", "51", "52", "80"}),
    "after_80": frozenset({"20", "90"}),
    "after_90": frozenset({"95"}),
    "in_95": frozenset({"95", "96"}),
    "end": frozenset(),
}
_STATE_AFTER = {
    "10": "after_10", "20": "in_invoice", "50": "in_invoice", "51": "in_invoice",
    "52": "in_invoice", "80": "after_80", "90": "after_90", "95": "in_95", "96": "end",
}
_EXPECTATION_TEXT = {
    "start": "the sending header 10",
    "after_10": "an invoice header 20 or the sending footer 90",
    "in_invoice": "a service record 50, 51, 52 or the invoice footer 80",
    "after_80": "an invoice header 20 or the sending footer 90",
    "after_90": "a mutuality summary 95",
    "in_95": "another mutuality summary 95 or the federation summary 96",
    "end": "nothing: the federation summary 96 ends the file",
}


@dataclass
class _Invoice:
    header_index: int
    nomenclature_total: int = 0
    service_records: int = 0


@dataclass
class _MutualityTotals:
    invoices: int = 0
    nomenclature_total: int = 0
    amount_a: int = 0
    amount_b: int = 0


@dataclass(frozen=True)
class _Declared96:
    federation: str
    amount_a: int | None
    amount_b: int | None
    total: int | None
    control: str


@dataclass
class _Declared95:
    mutuality: str
    amount_a: int | None
    amount_b: int | None
    total: int | None
    control: str


class SendingValidator:
    """Streaming validator of a 920000 sending: ``feed`` it bytes, then ``finish``.

    ``expect_test`` says whether the destination is the test environment (zone 202 must be 92)
    or production (12).  ``strict_zone99`` turns the "+10 variant" of the record check digits
    (found in the CIN's own test files) from a warning into an error.
    """

    def __init__(
        self,
        *,
        expect_test: bool,
        strict_zone99: bool = False,
        max_issues: int = DEFAULT_MAX_ISSUES,
    ) -> None:
        self.expect_test = expect_test
        self.strict_zone99 = strict_zone99
        self.max_issues = max_issues
        self._splitter = _Splitter()
        self._issues: list[ValidationIssue] = []
        self._omitted = 0
        self._omitted_errors = 0
        self._size = 0
        self._stopped = False
        self._finished: ValidationReport | None = None
        self._header: dict[str, str] = {}
        self._state = "start"
        self._expected_sequence = 1
        self._invoice: _Invoice | None = None
        self._invoices = 0
        self._records = 0
        self._service_lines = 0
        self._nomenclature_total = 0
        self._amount_a = 0
        self._amount_b = 0
        self._by_mutuality: dict[str, _MutualityTotals] = {}
        self._declared: dict[str, _Declared95] = {}
        self._footer_90: tuple[int | None, int | None] | None = None
        self._federation: _Declared96 | None = None
        self._handlers = {
            "10": self._record_10, "20": self._record_20, "50": self._record_50,
            "51": self._record_51, "52": self._record_52, "80": self._record_80,
            "90": self._record_90, "95": self._record_95, "96": self._record_96,
        }

    # -- feeding --

    def feed(self, chunk: bytes) -> None:
        if self._finished is not None:
            raise RuntimeError("the validator has already finished")
        if not chunk:
            return
        self._size += len(chunk)
        if self._stopped:
            return
        for offset, raw in self._splitter.feed(chunk):
            if not self._stopped:
                self._dispatch(self._splitter.units, offset, raw)

    def finish(self) -> ValidationReport:
        if self._finished is not None:
            return self._finished
        if not self._stopped:
            self._check_end()
        report = ValidationReport(self._summary(), self._issues, self._omitted,
                                  self._omitted_errors, self._size)
        self._finished = report
        logger.debug(
            "validated a %d-byte 920000: %d issue(s), %d record(s)",
            self._size, len(self._issues) + self._omitted, self._records,
        )
        return report

    # -- issue helpers --

    def _add(self, issue: ValidationIssue) -> None:
        if len(self._issues) >= self.max_issues:
            self._omitted += 1
            self._omitted_errors += issue.is_error
            return
        self._issues.append(
            ValidationIssue(
                issue.record_type, issue.record_index, issue.zone,
                mask_ssins_in_text(issue.message), issue.sequence, issue.offset, issue.severity,
            )
        )

    def _segment_issue(self, segment: str, zone: Zone | None, offset: int, message: str,
                       severity: Severity = Severity.ERROR) -> None:
        at = offset + (zone.start if zone else 0)
        self._add(ValidationIssue(segment, None, zone.number if zone else None, message,
                                  offset=at, severity=severity))

    def _record_issue(self, unit: RawUnit, zone: str | None, message: str, start: int = 0,
                      severity: Severity = Severity.ERROR) -> None:
        sequence = unit.text[SEQUENCE] if unit.record_type in CHECKED_RECORD_TYPES else None
        self._add(ValidationIssue(unit.record_type, unit.index, zone, message, sequence,
                                  unit.offset + start, severity))

    def _stop(self, issue: ValidationIssue) -> None:
        self._add(issue)
        self._stopped = True

    # -- start and end of file --

    def _not_efact(self, prefix: bytes) -> bool:
        """Stop at once on a file that plainly is something else (PDF, XML, compressed...)."""
        kind = _sniff(prefix)
        if kind:
            self._stop(ValidationIssue(None, None, None,
                                       f"not an eFact file: this is {kind}", offset=0))
        elif prefix.startswith(b"\xef\xbb\xbf"):
            self._stop(ValidationIssue(
                None, None, None,
                "the file starts with a UTF-8 byte-order mark; save it as plain text without BOM",
                offset=0))
        return self._stopped

    def _check_end(self) -> None:
        leftover = self._splitter.leftover
        units = self._splitter.units
        if units == 0 and self._not_efact(leftover[:8]):
            return
        if units < 2 or leftover not in (b"", b"\n", b"\r\n"):
            self._add(_truncation_issue(units, self._splitter.offset, leftover))
        if units < 2:
            return
        if self._state != "end":
            self._add(ValidationIssue(
                None, None, None,
                f"the file ends early: expected {_EXPECTATION_TEXT[self._state]}",
                offset=self._splitter.offset))
        if self._records and not self._invoices:
            self._add(ValidationIssue(None, None, None, "the sending holds no invoice"))
        self._check_mutualities_declared()

    # -- dispatch --

    def _dispatch(self, units: int, offset: int, raw: bytes) -> None:
        unit = _unit(units, offset, raw)
        if unit.kind == "200" and self._not_efact(raw[:8]):
            return
        if b"\n" in raw or b"\r" in raw:
            position = min(p for p in (raw.find(b"\n"), raw.find(b"\r")) if p >= 0)
            self._stop(ValidationIssue(
                unit.record_type if unit.kind == "record" else unit.kind, unit.index, None,
                "line break inside the file: an eFact file is one single line without CR/LF "
                "(records must follow each other directly)",
                offset=offset + position))
            return
        if unit.kind == "200":
            self._check_segment_200(unit)
        elif unit.kind == "300":
            self._check_segment_300(unit)
        else:
            self._check_record(unit)

    # -- segment 200 --

    def _check_segment_200(self, unit: RawUnit) -> None:
        text = unit.text
        name, version, kind, status, ref204, ref205 = SEGMENT_200_ZONES
        code = name.value(text)
        if code != SENDING_CODE:
            self._stop(self._wrong_code_issue(code, unit.offset))
            return
        self._header.update(code=code, version=version.value(text), type=kind.value(text),
                            zone_204=ref204.value(text))
        if not version.value(text).isdigit():
            self._segment_issue("200", version, unit.offset, "the version must be 2 digits")
        self._check_marker(kind.value(text), unit.offset, kind)
        if not status.value(text).isdigit():
            self._segment_issue("200", status, unit.offset, "the status must be 2 digits")
        self._check_zone_204(ref204.value(text), unit.offset, ref204)
        if not ref205.value(text).isdigit():
            self._segment_issue("200", ref205, unit.offset,
                                "the insurer's reference must be 14 digits (zeros in a sending)")
        self._check_error_zones("200", SEGMENT_200_ZONES, text, unit.offset)

    def _wrong_code_issue(self, code: str, offset: int) -> ValidationIssue:
        if code in FEEDBACK_CODES:
            message = (f"this is a feedback message ({code}) from the insurers, not an invoice "
                       f"sending ({SENDING_CODE})")
        elif code.isdigit():
            message = f"the message code is {code}; an invoice sending is {SENDING_CODE}"
        else:
            shown = code.encode("latin-1").decode("ascii", "replace").replace("\ufffd", "?")
            message = (f"not an eFact file: it should start with the message code "
                       f"{SENDING_CODE}, not {shown!r}")
        return ValidationIssue("200", None, "200", message, offset=offset)

    def _check_marker(self, marker: str, offset: int, zone: Zone) -> None:
        if marker not in (TEST_MARKER, PRODUCTION_MARKER):
            self._segment_issue("200", zone, offset,
                                f"the type must be {TEST_MARKER} (test) or {PRODUCTION_MARKER} "
                                f"(production), not {marker!r}")
        elif self.expect_test and marker == PRODUCTION_MARKER:
            self._segment_issue("200", zone, offset,
                                "the file is marked as production (12) but it is being sent to "
                                "the test environment; a test sending must be marked 92")
        elif not self.expect_test and marker == TEST_MARKER:
            self._segment_issue("200", zone, offset,
                                "the file is marked as a test file (92) but it is being sent to "
                                "production; a production sending must be marked 12")

    def _check_zone_204(self, reference: str, offset: int, zone: Zone) -> None:
        if not reference.isdigit():
            self._segment_issue("200", zone, offset,
                                "the sender's reference must be 14 digits")
        elif set(reference) == {"0"}:
            self._segment_issue("200", zone, offset,
                                "the sender's reference is all zeros; feedback cannot be matched "
                                "to this sending", Severity.WARNING)

    def _check_error_zones(self, segment: str, zones: tuple[Zone, ...], text: str,
                           offset: int) -> None:
        for zone in zones:
            code = zone.error_code(text)
            if code is not None and code != "00":
                self._add(ValidationIssue(
                    segment, None, zone.error_zone,
                    f"the error-code zone after zone {zone.number} must be 00 in a sending, "
                    f"not {code!r}", offset=offset + (zone.error_at or 0)))

    # -- segment 300 --

    def _check_segment_300(self, unit: RawUnit) -> None:
        text = unit.text
        zones = {zone.number: zone for zone in SEGMENT_300_ZONES}
        month = zones["300"].value(text)
        self._header.update(month=month, sending_number=zones["301"].value(text),
                            created=zones["302"].value(text))
        if not _valid_month(month):
            self._segment_issue("300", zones["300"], unit.offset,
                                f"the invoicing month {month!r} is not a valid YYYYMM")
        if not zones["301"].value(text).isdigit():
            self._segment_issue("300", zones["301"], unit.offset,
                                "the sending number must be 3 digits")
        if not _valid_date(zones["302"].value(text)):
            self._segment_issue("300", zones["302"], unit.offset,
                                f"the creation date {zones['302'].value(text)!r} is not a valid "
                                "YYYYMMDD date")
        self._check_instructions_version(zones["304"], text, unit.offset)
        for number in ("308", "309"):
            if not zones[number].value(text).isdigit():
                self._segment_issue("300", zones[number], unit.offset,
                                    f"the {zones[number].label} must be 2 digits")
        self._check_error_zones("300", SEGMENT_300_ZONES, text, unit.offset)

    def _check_instructions_version(self, zone: Zone, text: str, offset: int) -> None:
        """Zone 304 starts with 999 on test sendings and 000 in production (public integrations)."""
        version = zone.value(text)
        if not version.isdigit():
            self._segment_issue("300", zone, offset, "the version of the instructions must be 7 digits")
            return
        looks_test = version.startswith("999")
        if looks_test != self.expect_test:
            expected = "9991999-style (test)" if self.expect_test else "0001999-style (production)"
            self._segment_issue("300", zone, offset,
                                f"the version of the instructions {version} does not look "
                                f"{expected}", Severity.WARNING)

    # -- records --

    def _check_record(self, unit: RawUnit) -> None:
        self._records += 1
        record_type = unit.record_type
        if record_type not in RECORD_TYPES:
            self._record_issue(unit, "1", f"unknown record type {record_type!r}; a 920000 holds "
                               "records 10, 20, 50, 51, 52, 80, 90, 95 and 96")
            self._expected_sequence += 1
            return
        self._check_order(unit)
        if record_type in CHECKED_RECORD_TYPES:
            self._check_sequence(unit)
            self._check_zone_99(unit)
        self._handlers[record_type](unit)

    def _check_order(self, unit: RawUnit) -> None:
        record_type = unit.record_type
        if record_type not in _EXPECTED_NEXT[self._state]:
            self._record_issue(unit, "1",
                               f"record {record_type} ({RECORD_NAMES[record_type]}) is out of "
                               f"order: expected {_EXPECTATION_TEXT[self._state]}")
        self._state = _STATE_AFTER[record_type]

    def _check_sequence(self, unit: RawUnit) -> None:
        sequence = unit.text[SEQUENCE]
        expected = f"{self._expected_sequence:06d}"
        if sequence != expected:
            self._record_issue(unit, "2",
                               f"sequence number {sequence!r} where {expected} was expected "
                               "(records 10 to 90 are numbered from 000001 without gaps)", 2)
            if sequence.isdigit():
                self._expected_sequence = int(sequence)
        self._expected_sequence += 1

    def _check_zone_99(self, unit: RawUnit) -> None:
        written = unit.text[CHECK_99]
        total = record_check_sum(unit.raw)
        if _digits_match(written, total):
            return
        expected = mod97_digits(total)
        if not written.isdigit():
            self._record_issue(unit, "99", f"the check digits must be 2 digits ({expected}), "
                               f"not {written!r}", 348)
        elif _digits_match(written, total + 10):
            severity = Severity.ERROR if self.strict_zone99 else Severity.WARNING
            self._record_issue(unit, "99",
                               f"check digits {written} follow the '+10' variant of the CIN test "
                               f"files; the documented rule gives {expected} and several insurers "
                               "refuse the variant with error 02 on zone 99", 348, severity)
        else:
            self._record_issue(unit, "99", f"wrong check digits: {written} is written but the "
                               f"record's first 348 characters give {expected}", 348)

    # record types

    def _record_10(self, unit: RawUnit) -> None:
        self._check_sending_number(unit)

    def _record_20(self, unit: RawUnit) -> None:
        if self._invoice is not None:
            self._record_issue(unit, "1", "a new invoice starts before the previous one was "
                               "closed by its footer 80")
        self._invoice = _Invoice(header_index=unit.index or 0)
        self._invoices += 1
        if not unit.text[AFFILIATION_MUTUALITY].isdigit():
            self._record_issue(unit, "7", "the mutuality of affiliation must be 3 digits", 32)

    def _record_50(self, unit: RawUnit) -> None:
        self._service_lines += 1
        self._line(unit)
        if not _valid_date(unit.text[SERVICE_DATE]):
            self._record_issue(unit, "5", f"the date of the service {unit.text[SERVICE_DATE]!r} "
                               "is not a valid YYYYMMDD date", 16)
        if parse_amount(unit.text[AMOUNT_A]) is None:
            self._record_issue(unit, "19", "the insurance amount must be a sign (+ or -) and 11 "
                               "digits", 87)

    def _record_51(self, unit: RawUnit) -> None:
        self._line(unit)

    def _record_52(self, unit: RawUnit) -> None:
        self._line(unit)

    def _line(self, unit: RawUnit) -> None:
        code = unit.text[NOMENCLATURE]
        if not code.isdigit():
            self._record_issue(unit, "4", "the nomenclature code must be 7 digits", 9)
            return
        self._nomenclature_total += int(code)
        if self._invoice is None:
            return
        if unit.record_type != "50" and not self._invoice.service_records:
            self._record_issue(unit, "1", f"record {unit.record_type} comes before any service "
                               "line 50 of its invoice")
        if unit.record_type == "50":
            self._invoice.service_records += 1
        self._invoice.nomenclature_total += int(code)

    def _record_80(self, unit: RawUnit) -> None:
        invoice = self._invoice or _Invoice(header_index=unit.index or 0, service_records=-1)
        self._invoice = None
        if invoice.service_records == 0:
            self._record_issue(unit, None, "the invoice has no service line (record 50)")
        self._check_control(unit, "98", unit.text[CONTROL_98], invoice.nomenclature_total,
                            "this invoice's records 50, 51 and 52", 346)
        amount_a, amount_b = self._record_amounts(unit)
        mutuality = unit.text[DESTINATION_MUTUALITY]
        if not mutuality.isdigit():
            self._record_issue(unit, "18", "the destination mutuality must be 3 digits", 84)
            return
        totals = self._by_mutuality.setdefault(mutuality, _MutualityTotals())
        totals.invoices += 1
        totals.nomenclature_total += invoice.nomenclature_total
        totals.amount_a += amount_a or 0
        totals.amount_b += amount_b or 0
        self._amount_a += amount_a or 0
        self._amount_b += amount_b or 0

    def _record_90(self, unit: RawUnit) -> None:
        if self._invoice is not None:
            self._record_issue(unit, "1", "the last invoice was not closed by its footer 80")
            self._invoice = None
        self._check_sending_number(unit)
        self._check_control(unit, "98", unit.text[CONTROL_98], self._nomenclature_total,
                            "all records 50, 51 and 52 of the file", 346)
        amount_a, amount_b = self._record_amounts(unit)
        self._footer_90 = (amount_a, amount_b)
        self._compare_amount(unit, "19", amount_a, self._amount_a, "the invoices (records 80)", 87)
        self._compare_amount(unit, "15", amount_b, self._amount_b, "the invoices (records 80)", 67)

    def _record_95(self, unit: RawUnit) -> None:
        text = unit.text
        mutuality = text[SUMMARY_MUTUALITY]
        if not mutuality.isdigit():
            self._record_issue(unit, "401", "the mutuality number must be 3 digits", 4)
            return
        if mutuality in self._declared:
            self._record_issue(unit, "401", f"mutuality {mutuality} has a second summary 95", 4)
            return
        amounts = self._summary_amounts(unit, 400)
        control = text[SUMMARY_CONTROL]
        self._declared[mutuality] = _Declared95(mutuality, *amounts, control)
        computed = self._by_mutuality.get(mutuality)
        if computed is None:
            self._record_issue(unit, "401", f"summary for mutuality {mutuality}, which has no "
                               "invoice in this file", 4)
            return
        what = f"the invoices of mutuality {mutuality}"
        self._check_control(unit, "410", control, computed.nomenclature_total, what, 75)
        self._compare_amount(unit, "404", amounts[0], computed.amount_a, what, 23)
        self._compare_amount(unit, "406", amounts[1], computed.amount_b, what, 37)

    def _record_96(self, unit: RawUnit) -> None:
        text = unit.text
        federation = text[SUMMARY_MUTUALITY]
        if not federation.isdigit():
            self._record_issue(unit, "501", "the federation number must be 3 digits", 4)
        amount_a, amount_b, total = self._summary_amounts(unit, 500)
        control = text[SUMMARY_CONTROL]
        self._federation = _Declared96(federation, amount_a, amount_b, total, control)
        self._check_control(unit, "510", control, self._nomenclature_total,
                            "all records 50, 51 and 52 of the file", 75)
        declared = list(self._declared.values())
        self._compare_amount(unit, "504", amount_a,
                             sum(d.amount_a or 0 for d in declared), "the summaries 95", 23)
        self._compare_amount(unit, "506", amount_b,
                             sum(d.amount_b or 0 for d in declared), "the summaries 95", 37)
        if self._footer_90 is not None:
            self._compare_amount(unit, "504", amount_a, self._footer_90[0] or 0,
                                 "the sending footer 90", 23)

    # record helpers

    def _check_sending_number(self, unit: RawUnit) -> None:
        number = unit.text[SENDING_NUMBER]
        expected = self._header.get("sending_number")
        if expected and number != expected:
            self._record_issue(unit, "7", f"sending number {number!r} differs from {expected!r} "
                               "in segment 300 (zone 301)", 32)

    def _check_control(self, unit: RawUnit, zone: str, written: str, total: int, what: str,
                       start: int) -> None:
        if _digits_match(written, total):
            return
        expected = control_number(total)
        if not written.isdigit():
            self._record_issue(unit, zone, f"the control number must be 2 digits ({expected}), "
                               f"not {written!r}", start)
        else:
            self._record_issue(unit, zone, f"wrong control number: {written} is written but the "
                               f"nomenclature codes of {what} give {expected} (sum mod 97)", start)

    def _record_amounts(self, unit: RawUnit) -> tuple[int | None, int | None]:
        amount_a = parse_amount(unit.text[AMOUNT_A])
        amount_b = parse_amount(unit.text[AMOUNT_B])
        if amount_a is None:
            self._record_issue(unit, "19", "the account A amount must be a sign and 11 digits", 87)
        if amount_b is None:
            self._record_issue(unit, "15", "the account B amount must be a sign and 11 digits", 67)
        return amount_a, amount_b

    def _summary_amounts(self, unit: RawUnit, base: int
                         ) -> tuple[int | None, int | None, int | None]:
        text = unit.text
        values = []
        for zone, part, start in ((base + 4, SUMMARY_AMOUNT_A, 23), (base + 6, SUMMARY_AMOUNT_B, 37),
                                  (base + 8, SUMMARY_TOTAL, 51)):
            amount = parse_amount(text[part])
            if amount is None:
                self._record_issue(unit, str(zone), "the amount must be a sign and 11 digits", start)
            values.append(amount)
        amount_a, amount_b, total = values
        if None not in values and total != amount_a + amount_b:
            self._record_issue(unit, str(base + 8), f"A + B is {euros(total)} but A and B add up "
                               f"to {euros(amount_a + amount_b)}", 51)
        if not text[SUMMARY_COUNT].isdigit():
            self._record_issue(unit, str(base + 9), "the number of records must be 8 digits", 65)
        return amount_a, amount_b, total

    def _compare_amount(self, unit: RawUnit, zone: str, written: int | None, computed: int,
                        what: str, start: int) -> None:
        if written is not None and written != computed:
            self._record_issue(unit, zone, f"{euros(written)} is written but {what} add up to "
                               f"{euros(computed)}", start)

    def _check_mutualities_declared(self) -> None:
        for mutuality in sorted(set(self._by_mutuality) - set(self._declared)):
            self._add(ValidationIssue("95", None, "401",
                                      f"mutuality {mutuality} has invoices but no summary 95"))

    # -- summary --

    def _summary(self) -> SendingSummary:
        mutualities = tuple(
            MutualitySummary(
                mutuality=d.mutuality,
                invoices=self._by_mutuality.get(d.mutuality, _MutualityTotals()).invoices,
                amount_a=d.amount_a or 0, amount_b=d.amount_b or 0, total=d.total or 0,
                control=d.control,
            )
            for d in self._declared.values()
        )
        federation = self._federation or _Declared96("", None, None, None, "")
        return SendingSummary(
            message_code=self._header.get("code"),
            version=self._header.get("version"),
            zone_204=self._header.get("zone_204"),
            type_marker=self._header.get("type"),
            sending_number=self._header.get("sending_number"),
            invoicing_month=self._header.get("month"),
            creation_date=self._header.get("created"),
            invoices=self._invoices,
            records=self._records,
            service_lines=self._service_lines,
            mutualities=mutualities,
            federation=federation.federation or None,
            total_a=federation.amount_a,
            total_b=federation.amount_b,
            total=federation.total,
            control=federation.control or None,
        )


# --- entry points ------------------------------------------------------------------------------


def validate_stream(
    stream: BinaryIO,
    *,
    expect_test: bool,
    strict_zone99: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    max_issues: int = DEFAULT_MAX_ISSUES,
) -> ValidationReport:
    """Validate a 920000 sending read from a binary file object, chunk by chunk."""
    validator = SendingValidator(expect_test=expect_test, strict_zone99=strict_zone99,
                                 max_issues=max_issues)
    while True:
        chunk = stream.read(chunk_size)
        if not chunk:
            break
        validator.feed(chunk)
    return validator.finish()


def validate_bytes(data: bytes | str, *, expect_test: bool, strict_zone99: bool = False,
                   max_issues: int = DEFAULT_MAX_ISSUES) -> ValidationReport:
    raw = data.encode("latin-1") if isinstance(data, str) else data
    return validate_stream(io.BytesIO(raw), expect_test=expect_test,
                           strict_zone99=strict_zone99, max_issues=max_issues)


def validate_file(path: str | Path, *, expect_test: bool, strict_zone99: bool = False,
                  max_issues: int = DEFAULT_MAX_ISSUES) -> ValidationReport:
    with open(path, "rb") as stream:
        return validate_stream(stream, expect_test=expect_test, strict_zone99=strict_zone99,
                               max_issues=max_issues)


def read_sending(data: bytes | str) -> list[RawUnit]:
    """All units of a (small) sending in memory; raises :class:`EfactError` when truncated."""
    raw = data.encode("latin-1") if isinstance(data, str) else data
    return list(iter_units(io.BytesIO(raw)))

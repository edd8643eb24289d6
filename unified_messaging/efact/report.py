"""What validating an eFact file tells: issues located in the file, the error that refuses a file,
and the summary of what a 920000 sending holds.

No message built here ever carries a beneficiary identification (see :mod:`.issue_log`).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from unified_messaging.efact.layout import PRODUCTION_MARKER, TEST_MARKER
from unified_messaging.texts import Text, message, text, verbatim

_SEGMENT = message("segment {segment}")
_FILE = message("file")
_RECORD = message("record {record_type}")
_RECORD_DETAILS = message("record {record_type} ({details})")
_NUMBER = message("no. {sequence}")
_ORDINALS = {"st": message("{number}st record of the file"), "nd": message("{number}nd record of the file"),
             "rd": message("{number}rd record of the file"), "th": message("{number}th record of the file")}
_FIRST = message("1st record of the file")  # its own text: French writes "1er", not "1e"
_BOTH = message("{first}, {second}")
_AT_BYTE = message("{place} at byte {offset}")
_AT_ZONE = message("{place}, zone {zone}")
_ISSUE = message("{location}: {message}")
_WARNING = message("warning: {location}: {message}")
_MORE_PROBLEMS = message("... and {count} more problems not listed")


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
    text: Text | None = None

    @classmethod
    def found(cls, record_type: str | None, record_index: int | None, zone: str | None, finding: Text,
              **where) -> "ValidationIssue":
        """The issue telling ``finding`` (its English text is the message)."""
        return cls(record_type, record_index, zone, str(finding), text=finding, **where)

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def location(self) -> str:
        return str(self.location_text())

    def location_text(self) -> Text:
        if self.record_type in ("200", "300"):
            place = text(_SEGMENT, segment=self.record_type)
        elif self.record_type is None:
            place = text(_FILE)
        else:
            details: list[Text] = []
            if self.sequence and self.sequence.isdigit():
                details.append(text(_NUMBER, sequence=self.sequence))
            if self.record_index is not None:
                details.append(_ordinal(self.record_index + 1))
            if len(details) == 2:
                place = text(_RECORD_DETAILS, record_type=self.record_type,
                             details=text(_BOTH, first=details[0], second=details[1]))
            elif details:
                place = text(_RECORD_DETAILS, record_type=self.record_type, details=details[0])
            else:
                place = text(_RECORD, record_type=self.record_type)
        if self.offset is not None:
            place = text(_AT_BYTE, place=place, offset=self.offset)
        if self.zone:
            place = text(_AT_ZONE, place=place, zone=self.zone)
        return place

    def issue_text(self) -> Text:
        """The whole line as :meth:`__str__` prints it, as a Text (the message verbatim if it has none)."""
        finding = self.text if self.text is not None else verbatim(self.message)
        return text(_ISSUE if self.is_error else _WARNING, location=self.location_text(), message=finding)

    def __str__(self) -> str:
        return str(self.issue_text())


def _ordinal(number: int) -> Text:
    if number == 1:
        return text(_FIRST)
    if 10 <= number % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return text(_ORDINALS[suffix], number=number)


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
    third_party: str | None = None     # record 10 zone 14, as written
    company_number: str | None = None  # record 10 zone 27, as written

    @property
    def sender_nihii(self) -> str | None:
        """The sender's NIHII (11 digits) from the third-party payer number, or None when the zone is zeros
        or not a number (a 0 followed by the 11 digits)."""
        zone = (self.third_party or "").strip()
        if len(zone) != 12 or not zone.isdigit() or int(zone) == 0:
            return None
        return zone[1:]

    @property
    def sender_cbe(self) -> str | None:
        """The sender's CBE number (10 digits) from record 10, or None when it is zeros."""
        zone = (self.company_number or "").strip()
        return zone if len(zone) == 10 and zone.isdigit() and int(zone) != 0 else None

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

    def texts(self) -> list[Text]:
        """The issues as texts, one per line, then how many were not listed."""
        lines = [issue.issue_text() for issue in self.issues]
        if self.omitted_issues:
            lines.append(text(_MORE_PROBLEMS, count=self.omitted_issues))
        return lines

    def describe(self) -> str:
        """The issues as plain text, one per line, for a reason file next to a refused payload."""
        return "\n".join(str(line) for line in self.texts())


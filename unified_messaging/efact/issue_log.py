"""The issues a validation collects: bounded in number, located, and never showing an SSIN."""
from __future__ import annotations

from unified_messaging.efact.layout import CHECKED_RECORD_TYPES, SEQUENCE, Zone
from unified_messaging.efact.report import Severity, ValidationIssue
from unified_messaging.texts import Text
from unified_messaging.efact.units import RawUnit
from unified_messaging.identifiers import mask_ssins_in_text


class IssueLog:
    """Keeps the first ``max_issues`` issues and counts the others (and how many are errors).

    Every message is passed through :func:`mask_ssins_in_text`, as a message may quote a zone.
    """

    def __init__(self, max_issues: int) -> None:
        self.max_issues = max_issues
        self.issues: list[ValidationIssue] = []
        self.omitted = 0
        self.omitted_errors = 0

    def add(self, issue: ValidationIssue) -> None:
        if len(self.issues) >= self.max_issues:
            self.omitted += 1
            self.omitted_errors += issue.is_error
            return
        masked = _masked(issue.text) if issue.text is not None else None
        self.issues.append(
            ValidationIssue(
                issue.record_type, issue.record_index, issue.zone,
                str(masked) if masked is not None else mask_ssins_in_text(issue.message),
                issue.sequence, issue.offset, issue.severity, masked,
            )
        )

    def segment(self, segment: str, zone: Zone | None, offset: int, message: str | Text,
                severity: Severity = Severity.ERROR) -> None:
        """An issue in segment 200 or 300 starting at ``offset``, at ``zone`` when given."""
        at = offset + (zone.start if zone else 0)
        self.add(ValidationIssue(segment, None, zone.number if zone else None, str(message),
                                 offset=at, severity=severity, text=_text(message)))

    def record(self, unit: RawUnit, zone: str | None, message: str | Text, start: int = 0,
               severity: Severity = Severity.ERROR) -> None:
        """An issue in a record, ``start`` characters into it."""
        sequence = unit.text[SEQUENCE] if unit.record_type in CHECKED_RECORD_TYPES else None
        self.add(ValidationIssue(unit.record_type, unit.index, zone, str(message), sequence,
                                 unit.offset + start, severity, _text(message)))


def _text(message: str | Text) -> Text | None:
    return message if isinstance(message, Text) else None


def _masked(finding: Text) -> Text:
    """``finding`` with every string in it (nested texts too) passed through :func:`mask_ssins_in_text`."""
    values = {key: _masked(value) if isinstance(value, Text)
              else mask_ssins_in_text(value) if isinstance(value, str) else value
              for key, value in finding.values.items()}
    return Text(finding.template, values)

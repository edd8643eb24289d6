"""What the records of a sending add up to, and the checks of a written total against them.

The records 10..90 fill :class:`SendingTotals` as they are read; the footers 80/90 and the
summaries 95/96 are checked against it (control numbers and amounts).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from unified_messaging.efact.issue_log import IssueLog
from unified_messaging.texts import Text, message, text
from unified_messaging.efact.units import RawUnit
from unified_messaging.efact.values import control_number, digits_match, euros

_CONTROL_DIGITS = message("the control number must be 2 digits ({expected}), not {written}")
_WRONG_CONTROL = message("wrong control number: {written} is written but the nomenclature codes of {what} give "
                         "{expected} (sum mod 97)")
_AMOUNT = message("{written} is written but {what} add up to {computed}")


@dataclass
class InvoiceTotals:
    """The invoice being read, from its header 20 to its footer 80."""

    header_index: int
    nomenclature_total: int = 0
    service_records: int = 0


@dataclass
class MutualityTotals:
    invoices: int = 0
    nomenclature_total: int = 0
    amount_a: int = 0
    amount_b: int = 0


@dataclass
class SendingTotals:
    """Counts and sums over the whole file; amounts in cents."""

    records: int = 0
    invoices: int = 0
    service_lines: int = 0
    nomenclature_total: int = 0
    amount_a: int = 0
    amount_b: int = 0
    by_mutuality: dict[str, MutualityTotals] = field(default_factory=dict)
    footer_90: tuple[int | None, int | None] | None = None


def check_control(log: IssueLog, unit: RawUnit, zone: str, written: str, total: int, what: Text,
                  start: int) -> None:
    """A control number (zone 98, 410 or 510) against the nomenclature codes of ``what``."""
    if digits_match(written, total):
        return
    expected = control_number(total)
    if not written.isdigit():
        log.record(unit, zone, text(_CONTROL_DIGITS, expected=expected, written=repr(written)), start)
    else:
        log.record(unit, zone, text(_WRONG_CONTROL, written=written, what=what, expected=expected), start)


def compare_amount(log: IssueLog, unit: RawUnit, zone: str, written: int | None, computed: int,
                   what: Text, start: int) -> None:
    """A written amount against what ``what`` add up to (a malformed amount is reported apart)."""
    if written is not None and written != computed:
        log.record(unit, zone, text(_AMOUNT, written=euros(written), what=what, computed=euros(computed)), start)

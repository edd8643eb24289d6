"""Checks of the records 10 to 90 of a 920000: order, sequence numbers, check digits (zone 99),
the zones of each record type, and the totals the footers 80 and 90 declare.

The summaries 95 and 96 are checked by :mod:`.summary_checks`, to which records of those types
are handed.
"""
from __future__ import annotations

from typing import Callable

from unified_messaging.efact.issue_log import IssueLog
from unified_messaging.efact.layout import (
    AFFILIATION_MUTUALITY,
    AMOUNT_A,
    AMOUNT_B,
    CHECK_99,
    CHECKED_RECORD_TYPES,
    CONTROL_98,
    DESTINATION_MUTUALITY,
    COMPANY_NUMBER,
    NOMENCLATURE,
    RECORD_TYPES,
    SENDING_NUMBER,
    SEQUENCE,
    SERVICE_DATE,
    THIRD_PARTY,
)
from unified_messaging.efact.order import RecordOrder
from unified_messaging.efact.report import Severity
from unified_messaging.efact.summary_checks import SummaryChecks
from unified_messaging.texts import message, text
from unified_messaging.efact.totals import (
    InvoiceTotals,
    MutualityTotals,
    SendingTotals,
    check_control,
    compare_amount,
)
from unified_messaging.efact.units import RawUnit
from unified_messaging.efact.values import (
    digits_match,
    mod97_digits,
    parse_amount,
    record_check_sum,
    valid_date,
)

_UNKNOWN_TYPE = message("unknown record type {record_type}; a 920000 holds records 10, 20, 50, 51, 52, 80, 90, "
                        "95 and 96")
_SEQUENCE = message("sequence number {sequence} where {expected} was expected (records 10 to 90 are numbered "
                    "from 000001 without gaps)")
_CHECK_DIGITS = message("the check digits must be 2 digits ({expected}), not {written}")
_PLUS_10 = message("check digits {written} follow the '+10' variant of the CIN test files; the documented rule "
                   "gives {expected} and several insurers refuse the variant with error 02 on zone 99")
_WRONG_CHECK_DIGITS = message("wrong check digits: {written} is written but the record's first 348 characters "
                              "give {expected}")
_NOT_CLOSED = message("a new invoice starts before the previous one was closed by its footer 80")
_AFFILIATION = message("the mutuality of affiliation must be 3 digits")
_SERVICE_DATE = message("the date of the service {date} is not a valid YYYYMMDD date")
_INSURANCE_AMOUNT = message("the insurance amount must be a sign (+ or -) and 11 digits")
_NOMENCLATURE = message("the nomenclature code must be 7 digits")
_BEFORE_SERVICE = message("record {record_type} comes before any service line 50 of its invoice")
_NO_SERVICE = message("the invoice has no service line (record 50)")
_INVOICE_LINES = message("this invoice's records 50, 51 and 52")
_DESTINATION = message("the destination mutuality must be 3 digits")
_LAST_NOT_CLOSED = message("the last invoice was not closed by its footer 80")
_FILE_LINES = message("all records 50, 51 and 52 of the file")
_INVOICES = message("the invoices (records 80)")
_SENDING_NUMBER = message("sending number {number} differs from {expected} in segment 300 (zone 301)")
_AMOUNT_A = message("the account A amount must be a sign and 11 digits")
_AMOUNT_B = message("the account B amount must be a sign and 11 digits")


class RecordChecks:
    """Checks each 350-character record in turn, adding to ``totals`` as it goes.

    ``header`` holds the fields of segment 300 already read (``sending_number``), which the
    records 10 and 90 repeat.  ``strict_zone99`` turns the "+10 variant" of the check digits
    from a warning into an error.
    """

    def __init__(self, log: IssueLog, totals: SendingTotals, summaries: SummaryChecks,
                 header: dict[str, str], *, strict_zone99: bool) -> None:
        self.log = log
        self.totals = totals
        self.header = header
        self.strict_zone99 = strict_zone99
        self.order = RecordOrder()
        self._expected_sequence = 1
        self._invoice: InvoiceTotals | None = None
        self._handlers: dict[str, Callable[[RawUnit], None]] = {
            "10": self._record_10, "20": self._record_20, "50": self._record_50,
            "51": self._line, "52": self._line, "80": self._record_80,
            "90": self._record_90, "95": summaries.check_95, "96": summaries.check_96,
        }

    def check(self, unit: RawUnit) -> None:
        self.totals.records += 1
        record_type = unit.record_type
        if record_type not in RECORD_TYPES:
            self.log.record(unit, "1", text(_UNKNOWN_TYPE, record_type=repr(record_type)))
            self._expected_sequence += 1
            return
        complaint = self.order.advance(record_type)
        if complaint:
            self.log.record(unit, "1", complaint)
        if record_type in CHECKED_RECORD_TYPES:
            self._check_sequence(unit)
            self._check_zone_99(unit)
        self._handlers[record_type](unit)

    def _check_sequence(self, unit: RawUnit) -> None:
        sequence = unit.text[SEQUENCE]
        expected = f"{self._expected_sequence:06d}"
        if sequence != expected:
            self.log.record(unit, "2",
                            text(_SEQUENCE, sequence=repr(sequence), expected=expected), 2)
            if sequence.isdigit():
                self._expected_sequence = int(sequence)
        self._expected_sequence += 1

    def _check_zone_99(self, unit: RawUnit) -> None:
        written = unit.text[CHECK_99]
        total = record_check_sum(unit.raw)
        if digits_match(written, total):
            return
        expected = mod97_digits(total)
        if not written.isdigit():
            self.log.record(unit, "99", text(_CHECK_DIGITS, expected=expected, written=repr(written)), 348)
        elif digits_match(written, total + 10):
            severity = Severity.ERROR if self.strict_zone99 else Severity.WARNING
            self.log.record(unit, "99",
                            text(_PLUS_10, written=written, expected=expected), 348, severity)
        else:
            self.log.record(unit, "99", text(_WRONG_CHECK_DIGITS, written=written, expected=expected), 348)

    # record types

    def _record_10(self, unit: RawUnit) -> None:
        self._check_sending_number(unit)
        self.header.setdefault("third_party", unit.text[THIRD_PARTY])
        self.header.setdefault("company_number", unit.text[COMPANY_NUMBER])

    def _record_20(self, unit: RawUnit) -> None:
        if self._invoice is not None:
            self.log.record(unit, "1", text(_NOT_CLOSED))
        self._invoice = InvoiceTotals(header_index=unit.index or 0)
        self.totals.invoices += 1
        if not unit.text[AFFILIATION_MUTUALITY].isdigit():
            self.log.record(unit, "7", text(_AFFILIATION), 32)

    def _record_50(self, unit: RawUnit) -> None:
        self.totals.service_lines += 1
        self._line(unit)
        if not valid_date(unit.text[SERVICE_DATE]):
            self.log.record(unit, "5", text(_SERVICE_DATE, date=repr(unit.text[SERVICE_DATE])), 16)
        if parse_amount(unit.text[AMOUNT_A]) is None:
            self.log.record(unit, "19", text(_INSURANCE_AMOUNT), 87)

    def _line(self, unit: RawUnit) -> None:
        """What the records 50, 51 and 52 share: a nomenclature code, inside an invoice."""
        code = unit.text[NOMENCLATURE]
        if not code.isdigit():
            self.log.record(unit, "4", text(_NOMENCLATURE), 9)
            return
        self.totals.nomenclature_total += int(code)
        if self._invoice is None:
            return
        if unit.record_type != "50" and not self._invoice.service_records:
            self.log.record(unit, "1", text(_BEFORE_SERVICE, record_type=unit.record_type))
        if unit.record_type == "50":
            self._invoice.service_records += 1
        self._invoice.nomenclature_total += int(code)

    def _record_80(self, unit: RawUnit) -> None:
        invoice = self._invoice or InvoiceTotals(header_index=unit.index or 0, service_records=-1)
        self._invoice = None
        if invoice.service_records == 0:
            self.log.record(unit, None, text(_NO_SERVICE))
        check_control(self.log, unit, "98", unit.text[CONTROL_98], invoice.nomenclature_total,
                      text(_INVOICE_LINES), 346)
        amount_a, amount_b = self._record_amounts(unit)
        mutuality = unit.text[DESTINATION_MUTUALITY]
        if not mutuality.isdigit():
            self.log.record(unit, "18", text(_DESTINATION), 84)
            return
        totals = self.totals.by_mutuality.setdefault(mutuality, MutualityTotals())
        totals.invoices += 1
        totals.nomenclature_total += invoice.nomenclature_total
        totals.amount_a += amount_a or 0
        totals.amount_b += amount_b or 0
        self.totals.amount_a += amount_a or 0
        self.totals.amount_b += amount_b or 0

    def _record_90(self, unit: RawUnit) -> None:
        if self._invoice is not None:
            self.log.record(unit, "1", text(_LAST_NOT_CLOSED))
            self._invoice = None
        self._check_sending_number(unit)
        check_control(self.log, unit, "98", unit.text[CONTROL_98], self.totals.nomenclature_total,
                      text(_FILE_LINES), 346)
        amount_a, amount_b = self._record_amounts(unit)
        self.totals.footer_90 = (amount_a, amount_b)
        compare_amount(self.log, unit, "19", amount_a, self.totals.amount_a,
                       text(_INVOICES), 87)
        compare_amount(self.log, unit, "15", amount_b, self.totals.amount_b,
                       text(_INVOICES), 67)

    # record helpers

    def _check_sending_number(self, unit: RawUnit) -> None:
        number = unit.text[SENDING_NUMBER]
        expected = self.header.get("sending_number")
        if expected and number != expected:
            self.log.record(unit, "7", text(_SENDING_NUMBER, number=repr(number), expected=repr(expected)), 32)

    def _record_amounts(self, unit: RawUnit) -> tuple[int | None, int | None]:
        amount_a = parse_amount(unit.text[AMOUNT_A])
        amount_b = parse_amount(unit.text[AMOUNT_B])
        if amount_a is None:
            self.log.record(unit, "19", text(_AMOUNT_A), 87)
        if amount_b is None:
            self.log.record(unit, "15", text(_AMOUNT_B), 67)
        return amount_a, amount_b

"""Checks of the summaries of a 920000: one record 95 per mutuality and the federation's 96,
against the invoices the file holds; and the :class:`SendingSummary` they describe.
"""
from __future__ import annotations

from dataclasses import dataclass

from unified_messaging import texts
from unified_messaging.efact.issue_log import IssueLog
from unified_messaging.efact.layout import (
    SUMMARY_AMOUNT_A,
    SUMMARY_AMOUNT_B,
    SUMMARY_CONTROL,
    SUMMARY_COUNT,
    SUMMARY_MUTUALITY,
    SUMMARY_TOTAL,
)
from unified_messaging.efact.report import MutualitySummary, SendingSummary, ValidationIssue
from unified_messaging.efact.totals import (
    MutualityTotals,
    SendingTotals,
    check_control,
    compare_amount,
)
from unified_messaging.efact.units import RawUnit
from unified_messaging.texts import message
from unified_messaging.efact.values import euros, parse_amount

_MUTUALITY = message("the mutuality number must be 3 digits")
_SECOND_95 = message("mutuality {mutuality} has a second summary 95")
_NO_INVOICE = message("summary for mutuality {mutuality}, which has no invoice in this file")
_OF_MUTUALITY = message("the invoices of mutuality {mutuality}")
_FEDERATION = message("the federation number must be 3 digits")
_FILE_LINES = message("all records 50, 51 and 52 of the file")
_SUMMARIES = message("the summaries 95")
_FOOTER_90 = message("the sending footer 90")
_NO_95 = message("mutuality {mutuality} has invoices but no summary 95")
_AMOUNT = message("the amount must be a sign and 11 digits")
_A_PLUS_B = message("A + B is {total} but A and B add up to {sum}")
_COUNT = message("the number of records must be 8 digits")


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


class SummaryChecks:
    """Checks the records 95 and 96 against ``totals`` (filled by the records before them)."""

    def __init__(self, log: IssueLog, totals: SendingTotals) -> None:
        self.log = log
        self.totals = totals
        self._declared: dict[str, _Declared95] = {}
        self._federation: _Declared96 | None = None

    def check_95(self, unit: RawUnit) -> None:
        text = unit.text
        mutuality = text[SUMMARY_MUTUALITY]
        if not mutuality.isdigit():
            self.log.record(unit, "401", texts.text(_MUTUALITY), 4)
            return
        if mutuality in self._declared:
            self.log.record(unit, "401", texts.text(_SECOND_95, mutuality=mutuality), 4)
            return
        amounts = self._summary_amounts(unit, 400)
        control = text[SUMMARY_CONTROL]
        self._declared[mutuality] = _Declared95(mutuality, *amounts, control)
        computed = self.totals.by_mutuality.get(mutuality)
        if computed is None:
            self.log.record(unit, "401", texts.text(_NO_INVOICE, mutuality=mutuality), 4)
            return
        what = texts.text(_OF_MUTUALITY, mutuality=mutuality)
        check_control(self.log, unit, "410", control, computed.nomenclature_total, what, 75)
        compare_amount(self.log, unit, "404", amounts[0], computed.amount_a, what, 23)
        compare_amount(self.log, unit, "406", amounts[1], computed.amount_b, what, 37)

    def check_96(self, unit: RawUnit) -> None:
        text = unit.text
        federation = text[SUMMARY_MUTUALITY]
        if not federation.isdigit():
            self.log.record(unit, "501", texts.text(_FEDERATION), 4)
        amount_a, amount_b, total = self._summary_amounts(unit, 500)
        control = text[SUMMARY_CONTROL]
        self._federation = _Declared96(federation, amount_a, amount_b, total, control)
        check_control(self.log, unit, "510", control, self.totals.nomenclature_total,
                      texts.text(_FILE_LINES), 75)
        declared = list(self._declared.values())
        compare_amount(self.log, unit, "504", amount_a,
                       sum(d.amount_a or 0 for d in declared), texts.text(_SUMMARIES), 23)
        compare_amount(self.log, unit, "506", amount_b,
                       sum(d.amount_b or 0 for d in declared), texts.text(_SUMMARIES), 37)
        if self.totals.footer_90 is not None:
            compare_amount(self.log, unit, "504", amount_a, self.totals.footer_90[0] or 0,
                           texts.text(_FOOTER_90), 23)

    def check_mutualities_declared(self) -> None:
        """At the end of the file: every mutuality with invoices has its summary 95."""
        for mutuality in sorted(set(self.totals.by_mutuality) - set(self._declared)):
            finding = texts.text(_NO_95, mutuality=mutuality)
            self.log.add(ValidationIssue("95", None, "401", str(finding), text=finding))

    def _summary_amounts(self, unit: RawUnit, base: int
                         ) -> tuple[int | None, int | None, int | None]:
        text = unit.text
        values = []
        for zone, part, start in ((base + 4, SUMMARY_AMOUNT_A, 23), (base + 6, SUMMARY_AMOUNT_B, 37),
                                  (base + 8, SUMMARY_TOTAL, 51)):
            amount = parse_amount(text[part])
            if amount is None:
                self.log.record(unit, str(zone), texts.text(_AMOUNT), start)
            values.append(amount)
        amount_a, amount_b, total = values
        if amount_a is not None and amount_b is not None and total is not None \
                and total != amount_a + amount_b:
            self.log.record(unit, str(base + 8), texts.text(_A_PLUS_B, total=euros(total),
                                                                 sum=euros(amount_a + amount_b)), 51)
        if not text[SUMMARY_COUNT].isdigit():
            self.log.record(unit, str(base + 9), texts.text(_COUNT), 65)
        return amount_a, amount_b, total

    def summary(self, header: dict[str, str]) -> SendingSummary:
        """What the file holds, from the header fields read and the summaries as declared."""
        totals = self.totals
        mutualities = tuple(
            MutualitySummary(
                mutuality=d.mutuality,
                invoices=totals.by_mutuality.get(d.mutuality, MutualityTotals()).invoices,
                amount_a=d.amount_a or 0, amount_b=d.amount_b or 0, total=d.total or 0,
                control=d.control,
            )
            for d in self._declared.values()
        )
        federation = self._federation or _Declared96("", None, None, None, "")
        return SendingSummary(
            message_code=header.get("code"),
            version=header.get("version"),
            zone_204=header.get("zone_204"),
            type_marker=header.get("type"),
            sending_number=header.get("sending_number"),
            invoicing_month=header.get("month"),
            creation_date=header.get("created"),
            invoices=totals.invoices,
            records=totals.records,
            service_lines=totals.service_lines,
            mutualities=mutualities,
            federation=federation.federation or None,
            total_a=federation.amount_a,
            total_b=federation.amount_b,
            total=federation.total,
            control=federation.control or None,
            third_party=header.get("third_party"),
            company_number=header.get("company_number"),
        )

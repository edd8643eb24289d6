"""Validator of the eFact 920000 sending (the monthly invoice file), fed a stream of bytes.

The validator works on a stream of bytes in chunks, so a 50 MB file needs a few megabytes at
most.  It never puts a beneficiary identification in a message.  The checks themselves live in
:mod:`.header_checks` (segments 200 and 300), :mod:`.record_checks` (records 10 to 90) and
:mod:`.summary_checks` (summaries 95 and 96); this module cuts the stream, hands each unit to
them and checks the file as a whole (not an eFact file at all, line breaks, truncation).
"""
from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import BinaryIO

from unified_messaging.efact.header_checks import HeaderChecks
from unified_messaging.efact.issue_log import IssueLog
from unified_messaging.efact.record_checks import RecordChecks
from unified_messaging.efact.report import ValidationIssue, ValidationReport
from unified_messaging.efact.summary_checks import SummaryChecks
from unified_messaging.texts import message, text
from unified_messaging.efact.totals import SendingTotals
from unified_messaging.efact.units import (
    DEFAULT_CHUNK_SIZE,
    Splitter,
    make_unit,
    sniff,
    truncation_issue,
)

logger = logging.getLogger(__name__)

_NOT_EFACT = message("not an eFact file: this is {kind}")
_BOM = message("the file starts with a UTF-8 byte-order mark; save it as plain text without BOM")
_ENDS_EARLY = message("the file ends early: expected {expectation}")
_NO_INVOICE = message("the sending holds no invoice")
_LINE_BREAK = message("line break inside the file: an eFact file is one single line without CR/LF "
                      "(records must follow each other directly)")

DEFAULT_MAX_ISSUES = 200


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
        self._splitter = Splitter()
        self._log = IssueLog(max_issues)
        self._size = 0
        self._stopped = False
        self._finished: ValidationReport | None = None
        self._totals = SendingTotals()
        self._header = HeaderChecks(self._log, expect_test=expect_test)
        self._summaries = SummaryChecks(self._log, self._totals)
        self._records = RecordChecks(self._log, self._totals, self._summaries,
                                     self._header.fields, strict_zone99=strict_zone99)

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
        log = self._log
        report = ValidationReport(self._summaries.summary(self._header.fields), log.issues,
                                  log.omitted, log.omitted_errors, self._size)
        self._finished = report
        logger.debug(
            "validated a %d-byte 920000: %d issue(s), %d record(s)",
            self._size, len(log.issues) + log.omitted, self._totals.records,
        )
        return report

    def _stop(self, issue: ValidationIssue) -> None:
        self._log.add(issue)
        self._stopped = True

    def _not_efact(self, prefix: bytes) -> bool:
        """Stop at once on a file that plainly is something else (PDF, XML, compressed...)."""
        kind = sniff(prefix)
        if kind:
            self._stop(ValidationIssue.found(None, None, None, text(_NOT_EFACT, kind=kind), offset=0))
        elif prefix.startswith(b"\xef\xbb\xbf"):
            self._stop(ValidationIssue.found(None, None, None, text(_BOM), offset=0))
        return self._stopped

    def _check_end(self) -> None:
        leftover = self._splitter.leftover
        units = self._splitter.units
        if units == 0 and self._not_efact(leftover[:8]):
            return
        if units < 2 or leftover not in (b"", b"\n", b"\r\n"):
            self._log.add(truncation_issue(units, self._splitter.offset, leftover))
        if units < 2:
            return
        order = self._records.order
        if not order.at_end:
            self._log.add(ValidationIssue.found(None, None, None,
                                                text(_ENDS_EARLY, expectation=order.expectation_text),
                                                offset=self._splitter.offset))
        if self._totals.records and not self._totals.invoices:
            self._log.add(ValidationIssue.found(None, None, None, text(_NO_INVOICE)))
        self._summaries.check_mutualities_declared()

    def _dispatch(self, units: int, offset: int, raw: bytes) -> None:
        unit = make_unit(units, offset, raw)
        if unit.kind == "200" and self._not_efact(raw[:8]):
            return
        if b"\n" in raw or b"\r" in raw:
            position = min(p for p in (raw.find(b"\n"), raw.find(b"\r")) if p >= 0)
            self._stop(ValidationIssue.found(
                unit.record_type if unit.kind == "record" else unit.kind, unit.index, None,
                text(_LINE_BREAK), offset=offset + position))
            return
        if unit.kind == "200":
            stop = self._header.check_200(unit)
            if stop is not None:
                self._stop(stop)
        elif unit.kind == "300":
            self._header.check_300(unit)
        else:
            self._records.check(unit)


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
    """Validate a 920000 sending held in memory."""
    raw = data.encode("latin-1") if isinstance(data, str) else data
    return validate_stream(io.BytesIO(raw), expect_test=expect_test,
                           strict_zone99=strict_zone99, max_issues=max_issues)


def validate_file(path: str | Path, *, expect_test: bool, strict_zone99: bool = False,
                  max_issues: int = DEFAULT_MAX_ISSUES) -> ValidationReport:
    """Validate a 920000 sending read from a file, chunk by chunk."""
    with open(path, "rb") as stream:
        return validate_stream(stream, expect_test=expect_test, strict_zone99=strict_zone99,
                               max_issues=max_issues)

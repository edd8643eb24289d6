"""Checks of the header of a 920000: segment 200 (message code, test/production marker,
sender's reference) and segment 300 (invoicing month, sending number, dates, versions).
"""
from __future__ import annotations

from unified_messaging.efact.issue_log import IssueLog
from unified_messaging.efact.layout import (
    FEEDBACK_CODES,
    PRODUCTION_MARKER,
    SEGMENT_200_ZONES,
    SEGMENT_300_ZONES,
    SENDING_CODE,
    TEST_MARKER,
    Zone,
)
from unified_messaging.efact.report import Severity, ValidationIssue
from unified_messaging.efact.units import RawUnit
from unified_messaging.efact.values import valid_date, valid_month


class HeaderChecks:
    """Checks segments 200 and 300 and keeps their fields in ``fields`` (``code``, ``version``,
    ``type``, ``zone_204``, ``month``, ``sending_number``, ``created``).

    ``expect_test`` says whether the destination is the test environment (zone 202 must be 92)
    or production (12).
    """

    def __init__(self, log: IssueLog, *, expect_test: bool) -> None:
        self.log = log
        self.expect_test = expect_test
        self.fields: dict[str, str] = {}

    def check_200(self, unit: RawUnit) -> ValidationIssue | None:
        """Check segment 200; the issue that stops the validation when this is no 920000."""
        text = unit.text
        name, version, kind, status, ref204, ref205 = SEGMENT_200_ZONES
        code = name.value(text)
        if code != SENDING_CODE:
            return self._wrong_code_issue(code, unit.offset)
        self.fields.update(code=code, version=version.value(text), type=kind.value(text),
                           zone_204=ref204.value(text))
        if not version.value(text).isdigit():
            self.log.segment("200", version, unit.offset, "the version must be 2 digits")
        self._check_marker(kind.value(text), unit.offset, kind)
        if not status.value(text).isdigit():
            self.log.segment("200", status, unit.offset, "the status must be 2 digits")
        self._check_zone_204(ref204.value(text), unit.offset, ref204)
        if not ref205.value(text).isdigit():
            self.log.segment("200", ref205, unit.offset,
                             "the insurer's reference must be 14 digits (zeros in a sending)")
        self._check_error_zones("200", SEGMENT_200_ZONES, text, unit.offset)
        return None

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
            self.log.segment("200", zone, offset,
                             f"the type must be {TEST_MARKER} (test) or {PRODUCTION_MARKER} "
                             f"(production), not {marker!r}")
        elif self.expect_test and marker == PRODUCTION_MARKER:
            self.log.segment("200", zone, offset,
                             "the file is marked as production (12) but it is being sent to "
                             "the test environment; a test sending must be marked 92")
        elif not self.expect_test and marker == TEST_MARKER:
            self.log.segment("200", zone, offset,
                             "the file is marked as a test file (92) but it is being sent to "
                             "production; a production sending must be marked 12")

    def _check_zone_204(self, reference: str, offset: int, zone: Zone) -> None:
        if not reference.isdigit():
            self.log.segment("200", zone, offset,
                             "the sender's reference must be 14 digits")
        elif set(reference) == {"0"}:
            self.log.segment("200", zone, offset,
                             "the sender's reference is all zeros; feedback cannot be matched "
                             "to this sending", Severity.WARNING)

    def _check_error_zones(self, segment: str, zones: tuple[Zone, ...], text: str,
                           offset: int) -> None:
        for zone in zones:
            code = zone.error_code(text)
            if code is not None and code != "00":
                self.log.add(ValidationIssue(
                    segment, None, zone.error_zone,
                    f"the error-code zone after zone {zone.number} must be 00 in a sending, "
                    f"not {code!r}", offset=offset + (zone.error_at or 0)))

    def check_300(self, unit: RawUnit) -> None:
        """Check segment 300 (read after a valid segment 200)."""
        text = unit.text
        zones = {zone.number: zone for zone in SEGMENT_300_ZONES}
        month = zones["300"].value(text)
        self.fields.update(month=month, sending_number=zones["301"].value(text),
                           created=zones["302"].value(text))
        if not valid_month(month):
            self.log.segment("300", zones["300"], unit.offset,
                             f"the invoicing month {month!r} is not a valid YYYYMM")
        if not zones["301"].value(text).isdigit():
            self.log.segment("300", zones["301"], unit.offset,
                             "the sending number must be 3 digits")
        if not valid_date(zones["302"].value(text)):
            self.log.segment("300", zones["302"], unit.offset,
                             f"the creation date {zones['302'].value(text)!r} is not a valid "
                             "YYYYMMDD date")
        self._check_instructions_version(zones["304"], text, unit.offset)
        for number in ("308", "309"):
            if not zones[number].value(text).isdigit():
                self.log.segment("300", zones[number], unit.offset,
                                 f"the {zones[number].label} must be 2 digits")
        self._check_error_zones("300", SEGMENT_300_ZONES, text, unit.offset)

    def _check_instructions_version(self, zone: Zone, text: str, offset: int) -> None:
        """Zone 304 starts with 999 on test sendings and 000 in production (public integrations)."""
        version = zone.value(text)
        if not version.isdigit():
            self.log.segment("300", zone, offset, "the version of the instructions must be 7 digits")
            return
        looks_test = version.startswith("999")
        if looks_test != self.expect_test:
            expected = "9991999-style (test)" if self.expect_test else "0001999-style (production)"
            self.log.segment("300", zone, offset,
                             f"the version of the instructions {version} does not look "
                             f"{expected}", Severity.WARNING)

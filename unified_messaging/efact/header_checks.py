"""Checks of the header of a 920000: segment 200 (message code, test/production marker,
sender's reference) and segment 300 (invoicing month, sending number, dates, versions).
"""
from __future__ import annotations

from unified_messaging import texts
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
from unified_messaging.texts import message
from unified_messaging.efact.values import valid_date, valid_month

_VERSION = message("the version must be 2 digits")
_STATUS = message("the status must be 2 digits")
_REF_205 = message("the insurer's reference must be 14 digits (zeros in a sending)")
_FEEDBACK_CODE = message("this is a feedback message ({code}) from the insurers, not an invoice sending ({sending})")
_OTHER_CODE = message("the message code is {code}; an invoice sending is {sending}")
_NOT_EFACT = message("not an eFact file: it should start with the message code {sending}, not {shown}")
_TYPE = message("the type must be {test} (test) or {production} (production), not {marker}")
_PRODUCTION_TO_TEST = message("the file is marked as production (12) but it is being sent to the test "
                              "environment; a test sending must be marked 92")
_TEST_TO_PRODUCTION = message("the file is marked as a test file (92) but it is being sent to production; "
                              "a production sending must be marked 12")
_REF_204 = message("the sender's reference must be 14 digits")
_REF_204_ZEROS = message("the sender's reference is all zeros; feedback cannot be matched to this sending")
_ERROR_ZONE = message("the error-code zone after zone {zone} must be 00 in a sending, not {code}")
_MONTH = message("the invoicing month {month} is not a valid YYYYMM")
_SENDING_NUMBER = message("the sending number must be 3 digits")
_CREATED = message("the creation date {date} is not a valid YYYYMMDD date")
_TWO_DIGITS = message("the {label} must be 2 digits")
_INSTRUCTIONS = message("the version of the instructions must be 7 digits")
_TEST_STYLE = message("9991999-style (test)")
_PRODUCTION_STYLE = message("0001999-style (production)")
_INSTRUCTIONS_STYLE = message("the version of the instructions {version} does not look {expected}")


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
            self.log.segment("200", version, unit.offset, texts.text(_VERSION))
        self._check_marker(kind.value(text), unit.offset, kind)
        if not status.value(text).isdigit():
            self.log.segment("200", status, unit.offset, texts.text(_STATUS))
        self._check_zone_204(ref204.value(text), unit.offset, ref204)
        if not ref205.value(text).isdigit():
            self.log.segment("200", ref205, unit.offset,
                             texts.text(_REF_205))
        self._check_error_zones("200", SEGMENT_200_ZONES, text, unit.offset)
        return None

    def _wrong_code_issue(self, code: str, offset: int) -> ValidationIssue:
        if code in FEEDBACK_CODES:
            message = texts.text(_FEEDBACK_CODE, code=code, sending=SENDING_CODE)
        elif code.isdigit():
            message = texts.text(_OTHER_CODE, code=code, sending=SENDING_CODE)
        else:
            shown = code.encode("latin-1").decode("ascii", "replace").replace("\ufffd", "?")
            message = texts.text(_NOT_EFACT, sending=SENDING_CODE, shown=repr(shown))
        return ValidationIssue("200", None, "200", str(message), offset=offset, text=message)

    def _check_marker(self, marker: str, offset: int, zone: Zone) -> None:
        if marker not in (TEST_MARKER, PRODUCTION_MARKER):
            self.log.segment("200", zone, offset,
                             texts.text(_TYPE, test=TEST_MARKER, production=PRODUCTION_MARKER,
                                  marker=repr(marker)))
        elif self.expect_test and marker == PRODUCTION_MARKER:
            self.log.segment("200", zone, offset,
                             texts.text(_PRODUCTION_TO_TEST))
        elif not self.expect_test and marker == TEST_MARKER:
            self.log.segment("200", zone, offset,
                             texts.text(_TEST_TO_PRODUCTION))

    def _check_zone_204(self, reference: str, offset: int, zone: Zone) -> None:
        if not reference.isdigit():
            self.log.segment("200", zone, offset,
                             texts.text(_REF_204))
        elif set(reference) == {"0"}:
            self.log.segment("200", zone, offset,
                             texts.text(_REF_204_ZEROS), Severity.WARNING)

    def _check_error_zones(self, segment: str, zones: tuple[Zone, ...], text: str,
                           offset: int) -> None:
        for zone in zones:
            code = zone.error_code(text)
            if code is not None and code != "00":
                finding = texts.text(_ERROR_ZONE, zone=zone.number, code=repr(code))
                self.log.add(ValidationIssue(segment, None, zone.error_zone, str(finding),
                                             offset=offset + (zone.error_at or 0), text=finding))

    def check_300(self, unit: RawUnit) -> None:
        """Check segment 300 (read after a valid segment 200)."""
        text = unit.text
        zones = {zone.number: zone for zone in SEGMENT_300_ZONES}
        month = zones["300"].value(text)
        self.fields.update(month=month, sending_number=zones["301"].value(text),
                           created=zones["302"].value(text))
        if not valid_month(month):
            self.log.segment("300", zones["300"], unit.offset,
                             texts.text(_MONTH, month=repr(month)))
        if not zones["301"].value(text).isdigit():
            self.log.segment("300", zones["301"], unit.offset,
                             texts.text(_SENDING_NUMBER))
        if not valid_date(zones["302"].value(text)):
            self.log.segment("300", zones["302"], unit.offset,
                             texts.text(_CREATED, date=repr(zones['302'].value(text))))
        self._check_instructions_version(zones["304"], text, unit.offset)
        for number in ("308", "309"):
            if not zones[number].value(text).isdigit():
                self.log.segment("300", zones[number], unit.offset,
                                 texts.text(_TWO_DIGITS, label=texts.text(zones[number].label)))
        self._check_error_zones("300", SEGMENT_300_ZONES, text, unit.offset)

    def _check_instructions_version(self, zone: Zone, text: str, offset: int) -> None:
        """Zone 304 starts with 999 on test sendings and 000 in production (public integrations)."""
        version = zone.value(text)
        if not version.isdigit():
            self.log.segment("300", zone, offset, texts.text(_INSTRUCTIONS))
            return
        looks_test = version.startswith("999")
        if looks_test != self.expect_test:
            expected = texts.text(_TEST_STYLE if self.expect_test else _PRODUCTION_STYLE)
            self.log.segment("300", zone, offset,
                             texts.text(_INSTRUCTIONS_STYLE, version=version, expected=expected), Severity.WARNING)

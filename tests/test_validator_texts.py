"""The validator's findings as texts: the same English as before, every template registered, translatable."""
from __future__ import annotations

import pytest

from unified_messaging.efact.layout import RECORD_LENGTH
from unified_messaging.efact.issue_log import IssueLog
from unified_messaging.efact.report import ValidationIssue
from unified_messaging.texts import TEMPLATES, VERBATIM, Reason, Text, text, verbatim
from unified_messaging.efact.validator import validate_bytes, validate_file
from unified_messaging.invoicing import reasons
from unified_messaging.simulator.sending_writer import Defect, SendingSpec, build_sending
from tests.conftest import reference_path as reference

OUTGOING = ("TFAC1SC09.509E", "TFAC1SC11.510E", "TFAC1SC12.518E", "TFAC1SC13.519E", "TFAC1SC15.520E")


def _units(data: bytes) -> list[bytes]:
    return [data[:67], data[67:227]] + [data[i:i + RECORD_LENGTH] for i in range(227, len(data), RECORD_LENGTH)]


def _poke(data: bytes, position: int, replacement: bytes) -> bytes:
    return data[:position] + replacement + data[position + len(replacement):]


def _bad_files() -> list[tuple[str, bytes, bool]]:
    """(label, content, expect_test) of many broken 920000 sendings, each refused for its own reasons."""
    good = build_sending(SendingSpec(mutualities=("131", "216"), invoices_per_mutuality=2,
                                     lines_per_invoice=2, eid_records=True))
    files = [(f"defect {defect.value}", build_sending(SendingSpec(defects=frozenset({defect}))), True)
             for defect in Defect]
    files += [("production to test", build_sending(SendingSpec(is_test=False)), True),
              ("test to production", good, False),
              ("empty", b"", True), ("short", b"920000000100920000", True),
              ("truncated", good[:-100], True), ("cut in the middle", good[:227 + 3 * RECORD_LENGTH + 120], True),
              ("stray breaks", good + b"\n\n\n", True), ("bom", b"\xef\xbb\xbf" + good, True),
              ("pdf", b"%PDF-1.7\n" + b"x" * 400, True), ("line break", _poke(good, 500, b"\n"), True),
              ("feedback code", _poke(good, 0, b"920098"), True), ("other code", _poke(good, 0, b"123456"), True),
              ("garbage code", _poke(good, 0, b"ABCDEF"), True)]
    for start in range(0, 227, 3):  # every zone of the header segments, one after the other
        files.append((f"header byte {start}", _poke(good, start, b"X"), True))
    units = _units(good)
    for index in range(2, len(units)):
        for start in range(0, RECORD_LENGTH, 7):  # every record, at many places
            broken = list(units)
            broken[index] = _poke(broken[index], start, b"Z")
            files.append((f"unit {index} byte {start}", b"".join(broken), True))
        files.append((f"unit {index} removed", b"".join(units[:index] + units[index + 1:]), True))
        files.append((f"unit {index} twice", b"".join(units[:index + 1] + units[index:]), True))
    return files


BAD = _bad_files()


def _old_location(issue: ValidationIssue) -> str:
    """The location as the validator wrote it before its texts were templates (the English to keep)."""
    if issue.record_type in ("200", "300"):
        place = f"segment {issue.record_type}"
    elif issue.record_type is None:
        place = "file"
    else:
        place = f"record {issue.record_type}"
        details = []
        if issue.sequence and issue.sequence.isdigit():
            details.append(f"no. {issue.sequence}")
        if issue.record_index is not None:
            number = issue.record_index + 1
            suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
            details.append(f"{number}{suffix} record of the file")
        if details:
            place += f" ({', '.join(details)})"
    if issue.offset is not None:
        place += f" at byte {issue.offset}"
    if issue.zone:
        place += f", zone {issue.zone}"
    return place


def _templates(line: Text) -> set[str]:
    found = {line.template}
    for value in line.values.values():
        if isinstance(value, Text):
            found |= _templates(value)
    return found


def _marked(template: str) -> str:
    return "<<" + template + ">>"


def _reports():
    for label, data, expect_test in BAD:
        yield label, validate_bytes(data, expect_test=expect_test, max_issues=5)


def test_the_bad_files_give_many_kinds_of_finding():
    kinds = {issue.text.template for _, report in _reports() for issue in report.issues}
    assert len(kinds) >= 40
    assert sum(not report.ok for _, report in _reports()) > len(BAD) // 2


@pytest.mark.parametrize("label, data, expect_test", BAD, ids=[label for label, _, _ in BAD])
def test_every_finding_is_a_text_with_the_same_english(label, data, expect_test):
    report = validate_bytes(data, expect_test=expect_test, max_issues=5)
    for issue in report.issues:
        assert issue.text is not None, issue.message
        assert str(issue.text) == issue.message
        assert str(issue.location_text()) == issue.location() == _old_location(issue)
        prefix = "" if issue.is_error else "warning: "
        assert str(issue.issue_text()) == str(issue) == f"{prefix}{_old_location(issue)}: {issue.message}"
    lines = [f"{'' if i.is_error else 'warning: '}{_old_location(i)}: {i.message}" for i in report.issues]
    if report.omitted_issues:
        lines.append(f"... and {report.omitted_issues} more problems not listed")
    assert report.describe() == "\n".join(lines) == "\n".join(str(line) for line in report.texts())
    for line in report.texts():
        assert _templates(line) - {VERBATIM} <= TEMPLATES


def test_omitted_problems_are_a_text():
    data = dict((label, data) for label, data, _ in BAD)["unit 4 removed"]
    report = validate_bytes(data, expect_test=True, max_issues=1)
    assert report.omitted_issues > 0
    last = report.texts()[-1]
    assert last.template == "... and {count} more problems not listed"
    assert str(last) == f"... and {report.omitted_issues} more problems not listed"


def test_rendering_translates_the_nested_parts():
    good = build_sending(SendingSpec())
    report = validate_bytes(good, expect_test=False)  # a test file sent to production
    issue = report.errors[0]
    rendered = issue.issue_text().render(_marked)
    assert rendered.startswith("<<")
    assert "<<segment 200>>" in rendered
    assert "<<the file is marked as a test file (92)" in rendered
    # an ordinal and the nested "expected ..." of an out-of-order record are translated too
    units = _units(good)
    swapped = b"".join(units[:3] + [units[4], units[3]] + units[5:])
    for finding in validate_bytes(swapped, expect_test=True).texts():
        rendered = finding.render(_marked)
        assert rendered.count("<<") >= 3, rendered
    out_of_order = [t for t in validate_bytes(swapped, expect_test=True).issues if "out of order" in t.message]
    assert out_of_order and "expected <<" in out_of_order[0].text.render(_marked)


def test_ssins_are_masked_in_the_text_too():
    log = IssueLog(10)
    finding = text("the file ends early: expected {expectation}", expectation=verbatim("85073100361 and more"))
    log.add(ValidationIssue.found(None, None, None, finding))
    log.segment("300", None, 67, text("the invoicing month {month} is not a valid YYYYMM", month="'85073100361'"))
    for issue in log.issues:
        assert "85073100361" not in issue.message
        assert "85073100361" not in issue.text.render(lambda t: t)
        assert "850731*****" in issue.message
        assert str(issue.text) == issue.message


def test_the_invalid_reason_carries_the_findings_and_round_trips():
    data = build_sending(SendingSpec(defects=frozenset({Defect.ZONE_99, Defect.HEADER})))
    report = validate_bytes(data, expect_test=True)
    refusal = reasons.invalid("TFAC.001", report)
    assert str(refusal) == "TFAC.001 is not a valid eFact 920000 sending:\n" + report.describe()
    stored = Reason.from_json(refusal.to_json())
    assert stored == refusal
    assert str(stored) == str(refusal)
    rendered = stored.render(_marked)
    assert rendered[0] == "<<{name} is not a valid eFact 920000 sending:>>".replace("{name}", "TFAC.001")
    assert all(line.startswith("<<") for line in rendered[1:])
    assert "<<the invoicing month " in rendered[1]


@pytest.mark.reference
@pytest.mark.parametrize("name", OUTGOING)
def test_real_sendings_sent_to_production_give_texts(name):
    report = validate_file(reference("efact", "outgoing", name), expect_test=False)
    assert report.issues
    for issue in report.issues:
        assert str(issue.text) == issue.message
        assert _templates(issue.issue_text()) - {VERBATIM} <= TEMPLATES

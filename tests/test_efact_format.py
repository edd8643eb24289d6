"""The 920000 reader and validator, on the real sendings and on broken input."""
from __future__ import annotations

import io
import json
import re
import tracemalloc
import zlib

import pytest

from unified_messaging.efact.layout import RECORD_LENGTH
from unified_messaging.efact.report import EfactError, Severity
from unified_messaging.efact.units import iter_units, read_sending
from unified_messaging.efact.validator import validate_bytes, validate_file, validate_stream
from unified_messaging.efact.values import mod97_digits, record_check_sum
from unified_messaging.simulator.sending_writer import Defect, SendingSpec, build_sending, spec_for_size, write_sending
from tests.conftest import reference_path as reference

OUTGOING = ("TFAC1SC09.509E", "TFAC1SC11.510E", "TFAC1SC12.518E", "TFAC1SC13.519E",
            "TFAC1SC15.520E")


def units_of(data: bytes) -> list[bytes]:
    return [data[:67], data[67:227]] + [data[i:i + RECORD_LENGTH]
                                        for i in range(227, len(data), RECORD_LENGTH)]


def only(report, **fields):
    """The issues of a report whose attributes equal ``fields``."""
    return [issue for issue in report.issues
            if all(getattr(issue, name) == value for name, value in fields.items())]


# --- the real sendings -------------------------------------------------------------------------


@pytest.mark.reference
@pytest.mark.parametrize("name", OUTGOING)
def test_real_sendings_validate_without_error(name):
    report = validate_file(reference("efact", "outgoing", name), expect_test=True)

    assert report.errors == []
    assert report.ok
    summary = report.summary
    assert summary.message_code == "920000"
    assert summary.is_test is True
    assert summary.invoices == 1
    assert [m.mutuality for m in summary.mutualities] == ["131"]
    assert summary.federation == "199"
    assert summary.total == summary.total_a == summary.mutualities[0].total
    assert summary.total_b == 0
    assert summary.records == (8 if name < "TFAC1SC13" else 7)
    assert summary.control == summary.mutualities[0].control


@pytest.mark.reference
@pytest.mark.parametrize("name", OUTGOING)
def test_real_sendings_summaries(name):
    summary = validate_file(reference("efact", "outgoing", name), expect_test=True).summary
    expected = {
        "TFAC1SC09.509E": ("20140000000001", "509", 1942, "13"),
        "TFAC1SC11.510E": ("20140000000001", "510", 1942, "13"),
        "TFAC1SC12.518E": ("20140000000518", "518", 1692, "13"),
        "TFAC1SC13.519E": ("20140000000519", "519", 1942, "55"),
        "TFAC1SC15.520E": ("20140000000520", "520", 1942, "55"),
    }[name]
    assert (summary.zone_204, summary.sending_number, summary.total, summary.control) == expected
    assert summary.invoicing_month == "201411"


@pytest.mark.reference
@pytest.mark.parametrize("name", OUTGOING)
def test_real_sendings_carry_the_plus_ten_zone_99_variant(name):
    """The CIN's test files compute zone 99 as (sum + 10) mod 97: warned about, or an error when
    strict (insurers answer such records with error 02 on zone 99, see the next test)."""
    path = reference("efact", "outgoing", name)
    lenient = validate_file(path, expect_test=True)
    strict = validate_file(path, expect_test=True, strict_zone99=True)

    numbered = [u for u in read_sending(path.read_bytes()) if u.kind == "record"
                and u.record_type not in ("95", "96")]
    assert len(lenient.warnings) == len(numbered)
    assert {w.zone for w in lenient.warnings} == {"99"}
    assert all("+10" in w.message for w in lenient.warnings)
    assert [e.record_index for e in strict.errors] == [u.index for u in numbered]
    assert not strict.ok


@pytest.mark.reference
def test_zone_99_rule_as_the_insurers_apply_it():
    """The feedback echoes the sent records.  No record an insurer flagged with error 02 on
    zone 99 follows the documented rule (sum of values mod 97) and nearly all follow the +10
    variant (the others were wrong in some other way); every record of the 2024 accepted
    sendings (920098) follows the documented rule."""
    folder = reference("efact", "feedback")
    index = json.loads((folder / "index.json").read_text())
    flagged, documented, variant, accepted = 0, 0, 0, 0
    for message in index["messages"]:
        if message["record_size"] != 800:
            continue
        text = (folder / message["file"]).read_bytes().decode("latin-1")
        records = [text[i:i + 800] for i in range(677, len(text), 800)]
        for slot in message.get("derived_error_slots", []):
            if slot["code"][3:] == "9902" and slot["code"][1:3] == slot["record_type"]:
                record = records[slot["record_index"]]
                total = record_check_sum(record[:350])
                flagged += 1
                documented += record[348:350] == mod97_digits(total)
                variant += record[348:350] == mod97_digits(total + 10)
        if message["code"] == "920098" and message["zone204"].startswith("2024"):
            for record in records:
                assert record[348:350] == mod97_digits(record_check_sum(record[:350]))
                accepted += 1
    assert flagged == 44 and documented == 0 and variant == 40
    assert accepted == 19


@pytest.mark.reference
def test_real_sending_read_unit_by_unit():
    data = reference("efact", "outgoing", "TFAC1SC09.509E").read_bytes()
    units = list(iter_units(io.BytesIO(data), chunk_size=5))
    assert [u.record_type for u in units] == ["200", "300", "10", "20", "50", "51", "80", "90",
                                             "95", "96"]
    assert [u.offset for u in units[:4]] == [0, 67, 227, 577]
    assert "".join(u.text for u in units).encode("latin-1") == data


# --- a generated sending: the reference for broken variants ------------------------------------


@pytest.fixture(scope="module")
def good() -> bytes:
    return build_sending(SendingSpec(mutualities=("131", "216"), invoices_per_mutuality=2,
                                     lines_per_invoice=2, eid_records=True))


def test_generated_sending_is_valid(good):
    report = validate_bytes(good, expect_test=True)
    assert report.issues == []
    assert report.summary.invoices == 4
    assert report.summary.service_lines == 8


def test_empty_file():
    report = validate_bytes(b"", expect_test=True)
    assert not report.ok
    assert [i.message for i in report.errors] == ["the file is empty"]
    with pytest.raises(EfactError, match="empty"):
        report.raise_for_errors()


def test_newline_only_and_short_files():
    assert "empty" in validate_bytes(b"\n", expect_test=True).errors[0].message
    report = validate_bytes(b"920000000100920000", expect_test=True)
    assert "too short" in report.errors[0].message


def test_truncated_record(good):
    report = validate_bytes(good[:-100], expect_test=True)
    truncated = [i for i in report.errors if "truncated record" in i.message]
    assert len(truncated) == 1
    issue = truncated[0]
    assert issue.record_type == "96"
    assert issue.record_index == len(units_of(good)) - 3
    assert "250 characters" in issue.message and "350" in issue.message
    assert issue.offset == len(good) - RECORD_LENGTH


def test_truncated_inside_a_record_in_the_middle(good):
    cut = 227 + 3 * RECORD_LENGTH + 120
    report = validate_bytes(good[:cut], expect_test=True)
    assert any("truncated record" in i.message and i.record_index == 3 for i in report.errors)
    assert any("ends early" in i.message for i in report.errors)


def test_wrong_zone_99_check_digits():
    data = build_sending(SendingSpec(defects=frozenset({Defect.ZONE_99})))
    report = validate_bytes(data, expect_test=True)

    assert len(report.errors) == 1
    issue = report.errors[0]
    assert (issue.record_type, issue.record_index, issue.zone, issue.sequence) == ("50", 2, "99", "000003")
    assert "wrong check digits" in issue.message
    assert issue.offset == 227 + 2 * RECORD_LENGTH + 348
    assert str(issue).startswith("record 50 (no. 000003, 3rd record of the file) at byte 1275, zone 99: ")


def test_zone_99_not_digits(good):
    units = units_of(good)
    units[3] = units[3][:348] + b"AB"
    report = validate_bytes(b"".join(units), expect_test=True)
    assert only(report, zone="99", record_index=1)[0].message.startswith("the check digits must be 2 digits")


def test_wrong_control_number():
    data = build_sending(SendingSpec(lines_per_invoice=3, defects=frozenset({Defect.CONTROL_NUMBER})))
    report = validate_bytes(data, expect_test=True)

    assert len(report.errors) == 1
    issue = report.errors[0]
    assert (issue.record_type, issue.zone) == ("80", "98")
    assert "wrong control number" in issue.message and "sum mod 97" in issue.message


def test_wrong_control_number_on_the_summaries(good):
    units = units_of(good)
    for position, zone in ((-3, "410"), (-1, "510")):
        broken = list(units)
        text = broken[position].decode()
        broken[position] = (text[:75] + mod97_digits(int(text[75:77]) + 3) + text[77:]).encode()
        report = validate_bytes(b"".join(broken), expect_test=True)
        assert [i.zone for i in report.errors] == [zone]


def test_summary_amount_that_does_not_add_up(good):
    units = units_of(good)
    text = units[-3].decode()
    units[-3] = (text[:23] + "+00000000001" + text[35:]).encode()
    report = validate_bytes(b"".join(units), expect_test=True)
    zones = {i.zone for i in report.errors}
    assert {"404", "408"} <= zones
    assert any("A + B" in i.message for i in report.errors)


def test_header_defect():
    report = validate_bytes(build_sending(SendingSpec(defects=frozenset({Defect.HEADER}))),
                            expect_test=True)
    assert [(i.record_type, i.zone) for i in report.errors] == [("300", "300")]
    assert report.errors[0].record_index is None


def test_blocking_defect():
    report = validate_bytes(build_sending(SendingSpec(defects=frozenset({Defect.BLOCKING}))),
                            expect_test=True)
    assert [(i.record_type, i.zone) for i in report.errors] == [("50", "5")]


@pytest.mark.parametrize("payload, kind", [
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n" + b"x" * 400, "a PDF document"),
    (b'<?xml version="1.0"?><invoice>' + b"x" * 400 + b"</invoice>", "an XML document"),
    (b"PK\x03\x04" + b"\x00" * 400, "a ZIP archive"),
    (zlib.compress(b"920000" * 200), "deflate-compressed"),
    (b"%PDF", "a PDF document"),
])
def test_non_efact_files(payload, kind):
    report = validate_bytes(payload, expect_test=True)
    assert len(report.errors) == 1
    assert report.errors[0].message.startswith("not an eFact file: this is")
    assert kind in report.errors[0].message


def test_plain_text_that_is_not_efact():
    report = validate_bytes(b"Dear customer, here is the invoice you asked for. " * 20,
                            expect_test=True)
    assert len(report.errors) == 1
    assert "should start with the message code 920000" in report.errors[0].message


def test_feedback_message_given_as_a_sending():
    report = validate_bytes(b"931000" + b"0" * 221, expect_test=True)
    assert "feedback message (931000)" in report.errors[0].message


def test_byte_order_mark(good):
    report = validate_bytes(b"\xef\xbb\xbf" + good, expect_test=True)
    assert len(report.errors) == 1 and "byte-order mark" in report.errors[0].message


def test_wrong_record_order(good):
    units = units_of(good)
    # swap the first invoice footer 80 and the sending footer 90
    footer = next(i for i, u in enumerate(units) if u[:2] == b"80")
    sending_footer = next(i for i, u in enumerate(units) if u[:2] == b"90")
    units[footer], units[sending_footer] = units[sending_footer], units[footer]
    report = validate_bytes(b"".join(units), expect_test=True)

    order = [i for i in report.errors if "out of order" in i.message]
    assert order[0].record_type == "90"
    assert order[0].record_index == footer - 2
    assert "expected a service record 50, 51, 52 or the invoice footer 80" in order[0].message
    assert any(i.zone == "2" for i in report.errors)  # sequence numbers no longer follow


def test_identity_record_before_its_service_line():
    data = build_sending(SendingSpec(eid_records=True))
    units = units_of(data)
    units[4], units[5] = units[5], units[4]  # 52 before 50
    report = validate_bytes(b"".join(units), expect_test=True)
    assert any(i.record_type == "52" and "before any service line 50" in i.message
               for i in report.errors)


def test_missing_federation_summary(good):
    report = validate_bytes(good[:-RECORD_LENGTH], expect_test=True)
    assert any("ends early" in i.message and "federation summary 96" in i.message
               for i in report.errors)


def test_test_marker_must_match_the_environment(good):
    production = build_sending(SendingSpec(is_test=False))

    to_production = validate_bytes(good, expect_test=False)
    to_test = validate_bytes(production, expect_test=True)

    assert [(i.record_type, i.zone) for i in to_production.errors] == [("200", "202")]
    assert "marked as a test file (92)" in to_production.errors[0].message
    assert [(i.record_type, i.zone) for i in to_test.errors] == [("200", "202")]
    assert "marked as production (12)" in to_test.errors[0].message
    assert validate_bytes(production, expect_test=False).issues == []


def test_trailing_newline_tolerated_other_stray_characters_reported(good):
    assert validate_bytes(good + b"\n", expect_test=True).issues == []
    assert validate_bytes(good + b"\r\n", expect_test=True).issues == []
    stray = validate_bytes(good + b"\n\n", expect_test=True)
    assert any("stray line breaks" in i.message for i in stray.errors)
    garbage = validate_bytes(good + b"XYZ", expect_test=True)
    assert any("truncated record" in i.message for i in garbage.errors)


def test_one_record_per_line_is_refused(good):
    units = units_of(good)
    report = validate_bytes(b"\r\n".join(units), expect_test=True)
    assert len(report.errors) == 1
    assert "line break" in report.errors[0].message
    assert report.errors[0].offset == 67


def test_streaming_with_tiny_chunks_gives_the_same_report(good):
    broken = bytearray(good)
    broken[227 + 2 * RECORD_LENGTH + 100] = ord("X")
    whole = validate_bytes(bytes(broken), expect_test=True)
    chunked = validate_stream(io.BytesIO(bytes(broken)), expect_test=True, chunk_size=13)
    assert whole.issues and chunked.issues == whole.issues
    assert chunked.summary == whole.summary


def test_issue_list_is_bounded():
    spec = SendingSpec(invoices_per_mutuality=300)
    data = bytearray(build_sending(spec))
    for start in range(227, len(data), RECORD_LENGTH):
        data[start + 348:start + 350] = b"AA"  # every record's zone 99
    report = validate_bytes(bytes(data), expect_test=True, max_issues=50)
    assert len(report.issues) == 50
    assert report.omitted_issues > 800 and report.omitted_errors == report.omitted_issues
    assert "more problems not listed" in report.describe()


def test_no_patient_ssin_in_any_message(good):
    units = units_of(good)
    ssins = {u[37:48].decode() for u in units[2:] if u[:2] in (b"20", b"50", b"80")}
    damaged = [u[:200] + b"#" + u[201:] if u[:2] in (b"20", b"50", b"80") else u for u in units]
    damaged[3] = damaged[3][:35] + b"ABCDEFGHIJKLM" + damaged[3][48:]
    report = validate_bytes(b"".join(damaged), expect_test=True)
    text = report.describe()
    assert report.errors
    assert not any(ssin in text for ssin in ssins)
    assert not re.search(r"(?<!\d)\d{11}(?!\d)", text)


def test_efact_error_names_record_zone_and_message():
    report = validate_bytes(build_sending(SendingSpec(defects=frozenset({Defect.ZONE_99}))),
                            expect_test=True)
    with pytest.raises(EfactError) as caught:
        report.raise_for_errors()
    error = caught.value
    assert (error.record_type, error.record_index, error.zone) == ("50", 2, "99")
    assert "check digits" in error.message
    assert error.issues == report.errors


def test_warnings_do_not_fail_a_report():
    data = bytearray(build_sending(SendingSpec()))
    data[20:34] = b"0" * 14  # zone 204 all zeros
    report = validate_bytes(bytes(data), expect_test=True)
    assert report.ok and [w.severity for w in report.warnings] == [Severity.WARNING]


# --- a 50 MB file with bounded memory ---------------------------------------------------------


def test_fifty_megabytes_validate_with_bounded_memory(tmp_path):
    spec = spec_for_size(50 * 1024 * 1024, mutualities=("131", "216", "319", "500"),
                         lines_per_invoice=10)
    path = tmp_path / "big.920000"
    with path.open("wb") as stream:
        size = write_sending(stream, spec)
    assert size >= 50 * 1024 * 1024

    tracemalloc.start()
    try:
        report = validate_file(path, expect_test=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert report.ok, report.describe()
    assert report.size == size
    assert report.summary.invoices == 4 * spec.invoices_per_mutuality
    assert report.summary.records == (size - 227) // RECORD_LENGTH
    assert peak < 20 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"

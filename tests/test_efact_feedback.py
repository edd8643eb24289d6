"""The feedback reader on the 54 real messages, and the explanations of their error codes."""
from __future__ import annotations

import hashlib
import json
import re
from decimal import Decimal

import pytest

from unified_messaging.efact.explain import explain, explain_message, explain_zone_error
from unified_messaging.efact.feedback import (
    FeedbackError,
    FileStatus,
    feedback_code,
    read_feedback,
    status_for,
)
from tests.conftest import reference_path as reference

from tests.conftest import SHARED_REFERENCE as REFERENCE
FEEDBACK = REFERENCE / "efact" / "feedback"


def index_entries() -> list[dict]:
    path = FEEDBACK / "index.json"
    if not path.exists():
        return []
    return json.loads(path.read_text())["messages"]


ENTRIES = index_entries()


def entry_id(entry: dict) -> str:
    return entry["file"].removesuffix(".txt")


@pytest.fixture(params=ENTRIES or [None], ids=[entry_id(e) for e in ENTRIES] or ["absent"])
def entry(request) -> dict:
    if request.param is None:
        pytest.skip("shared/reference/efact/feedback/index.json is absent")
    return request.param


def message_for(entry: dict):
    data = reference("efact", "feedback", entry["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    return read_feedback(data)


# --- the real messages, field by field ---------------------------------------------------------


@pytest.mark.reference
def test_the_index_lists_54_messages():
    reference("efact", "feedback", "index.json")
    assert len(ENTRIES) == 54
    codes = sorted({e["code"] for e in ENTRIES})
    assert codes == ["920098", "920099", "920900", "920999", "931000"]


@pytest.mark.reference
def test_header_zones_match_the_index(entry):
    message = message_for(entry)
    header = message.header

    assert message.code == entry["code"]
    assert message.length == entry["length"]
    assert header.message_code == entry["code"]
    assert header.version == entry["zone201_version"]
    assert header.type_marker == entry["zone202_type"]
    assert header.is_test == (entry["zone202_type"] == "92")
    assert header.status == entry["zone203_status"]
    assert header.zone_204 == message.zone_204 == entry["zone204"]
    assert header.zone_205 == entry["zone205"]
    assert header.error_percentage_raw == entry["zone310"]
    assert header.refusal_type == entry["zone311"]
    if "zone310_percent" in entry:
        assert header.error_percentage == Decimal(str(entry["zone310_percent"]))
        assert header.error_codes["3101"] == entry["zone3101"]
        assert header.error_codes["3111"] == entry["zone3111"]
    else:
        assert header.error_percentage is None
    if "zone300_acknowledged_message" in entry:
        assert header.acknowledged_message == entry["zone300_acknowledged_message"]
        assert header.error_codes["3001"] == entry["zone3001"]
    else:
        assert header.acknowledged_message is None


@pytest.mark.reference
def test_records_and_error_slots_match_the_index(entry):
    message = message_for(entry)

    assert len(message.records) == entry["record_count"]
    assert message.record_types == entry["record_types"]
    record_size = {"931000": 350, "920999": 350}.get(entry["code"], 800)
    assert record_size == entry["record_size"]
    assert all(len(r.original) == 350 for r in message.records)
    if record_size == 800:
        assert all(len(r.error_block) == 450 for r in message.records)
    expected = [(s["code"], s["record_index"], s["record_type"], s["slot"])
                for s in entry.get("derived_error_slots", [])]
    found = [(s.code, s.record_index, message.records[s.record_index].record_type, s.slot)
             for s in message.error_slots]
    assert found == expected


@pytest.mark.reference
def test_status_each_message_implies(entry):
    message = message_for(entry)
    expected = {"931000": FileStatus.ONGOING, "920098": FileStatus.ONGOING,
                "920099": FileStatus.NOK, "920999": FileStatus.NOK, "920900": FileStatus.DONE}
    assert message.status is expected[entry["code"]]
    assert message.refused == (expected[entry["code"]] is FileStatus.NOK)


@pytest.mark.reference
def test_messages_the_source_tests_expect_errors_in_have_errors(entry):
    message = message_for(entry)
    if any(x["asserts"] == "len(response.message.errors) > 0" for x in entry["expectations"]):
        assert message.error_slots or message.zone_errors


@pytest.mark.reference
def test_refused_at_reception_names_the_faulty_zone():
    for name in ("920999_20240131803654_1.txt", "920999_20240202652968_1.txt"):
        message = read_feedback(reference("efact", "feedback", name).read_bytes())
        assert [(e.segment, e.zone, e.code, e.record_index) for e in message.zone_errors] == [
            ("96", "501", "20", 0)]
        assert message.records[0].record_type == "96"


@pytest.mark.reference
def test_settlements_of_the_real_920900():
    reference("efact", "feedback", "index.json")
    entries = [e for e in ENTRIES if e["code"] == "920900"]
    assert len(entries) == 7
    for entry in entries:
        message = message_for(entry)
        assert len(message.settlements) == 1 and message.settlement_total is not None
        for settlement in message.settlements + (message.settlement_total,):
            assert settlement.accepted_total + settlement.rejected_total == settlement.requested_total
            assert settlement.accepted_a + settlement.rejected_a == settlement.requested_a
        mutuality = message.settlements[0]
        assert mutuality.payment_reference == mutuality.payment_reference_a
        assert mutuality.payment_reference.startswith(f"{message.header.sending_number}/"
                                                      f"{message.header.invoicing_month}/")
        assert message.settlement_total.payment_reference is None
        assert message.settlement_total.mutuality == "999"
        assert message.settlement_total.rejected_total == mutuality.rejected_total


@pytest.mark.reference
def test_settlement_amounts_of_one_message():
    message = read_feedback(reference("efact", "feedback", "920900_20240312357767_1.txt").read_bytes())
    settlement = message.settlements[0]
    assert (settlement.mutuality, settlement.requested_total, settlement.accepted_total,
            settlement.rejected_total, settlement.control) == ("950", 2767, 17, 2750, "55")
    assert settlement.payment_reference == "186/202403/900/"


# --- broken input ------------------------------------------------------------------------------


@pytest.mark.parametrize("data, text", [
    (b"", "empty"),
    (b"123456" + b"0" * 221, "not an eFact feedback message code"),
    (b"920000" + b"0" * 221, "invoice sending (920000), not a feedback"),
    (b"931000" + b"0" * 200, "has 227 characters, this one has 206"),
    (b"920099" + b"0" * 700, "677 + 800"),
    (b"920999" + b"0" * 300, "227 + 350"),
])
def test_unreadable_messages(data, text):
    with pytest.raises(FeedbackError, match=re.escape(text)):
        read_feedback(data)


@pytest.mark.reference
def test_trailing_newline_is_tolerated():
    data = reference("efact", "feedback", "931000_20240207390060_1.txt").read_bytes()
    assert read_feedback(data + b"\r\n").zone_204 == read_feedback(data).zone_204
    assert feedback_code(data) == "931000"


def test_status_for():
    assert status_for("931000") is FileStatus.ONGOING
    assert status_for("920098") is FileStatus.ONGOING
    assert status_for("920099") is FileStatus.NOK
    assert status_for("920999") is FileStatus.NOK
    assert status_for("920900") is FileStatus.DONE
    with pytest.raises(ValueError):
        status_for("920000")


# --- explanations ------------------------------------------------------------------------------


def test_explain_by_category():
    text = explain("F501203")
    assert text.startswith("Invoice refused (F): record 50 zone 12 error 03 — service line, zone 12")
    assert "not allowed" in text
    assert "Record rejected (R)" in explain("R502405")
    assert "prescriber identification" in explain("R502405")
    assert "check digits (zone 99) are wrong" in explain("B109902")
    assert "control number (zone 98) is wrong" in explain("B809802")
    assert "Signal (S)" in explain("S502744")
    assert "Insurability problem (E)" in explain("E200842")
    assert "specific to the sector" in explain("R5012A0")
    with pytest.raises(ValueError):
        explain("X123456")


@pytest.mark.reference
def test_every_real_error_code_gets_an_explanation_in_our_own_words():
    official = json.loads(reference("errors", "EfactErrors.json").read_text(encoding="utf-8-sig"))
    labels = [label for item in official for label in item["label"].values() if len(label) > 15]
    codes = {s["code"] for e in ENTRIES for s in e.get("derived_error_slots", [])}
    assert len(codes) > 40
    for code in codes:
        text = explain(code)
        assert text.startswith(f"{_title(code[0])} ({code[0]}): record {code[1:3]} zone {code[3:5]} "
                               f"error {code[5:7]} — ")
        assert len(text) > 80
        assert not any(label in text for label in labels)


def _title(letter: str) -> str:
    return {"B": "Blocking error", "F": "Invoice refused", "R": "Record rejected",
            "E": "Insurability problem", "S": "Signal"}[letter]


@pytest.mark.reference
def test_every_real_message_can_be_explained(entry):
    message = message_for(entry)
    lines = explain_message(message)
    assert lines
    assert len(lines) >= 1 + len(message.error_slots) + len(message.zone_errors)


def test_explain_zone_errors():
    assert "zone 501 (mutuality number) of the federation summary 96, error 20" in \
        explain_zone_error("501", "20")
    assert "duplicate" in explain_zone_error("301", "40")
    assert "segment 200" in explain_zone_error("204", "20")

"""What the web UI reads from the invoicing journal: amounts, error counts, filtered pages, monthly
figures, feedback delays; and a journal of the previous schema migrated in place.

Everything goes through a real SQLite journal, the real ``InvoicingStore`` and the poller's own
``store_message`` / ``store_tack``, with real feedback from the reference pack (skipped when it is
absent) or made by the project's writer.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.conftest import SHARED_REFERENCE, reference_path
from tests.support import Clock
from unified_messaging.efact.units import read_sending
from unified_messaging.efact.feedback import read_feedback
from unified_messaging.invoicing.folders import Folders
from unified_messaging.invoicing.poller import FeedbackPoller, error_counts, settled_amounts
from unified_messaging.invoicing.store import SHOWN_STATUSES, AlreadyRecorded, InvoicingStore
from unified_messaging.simulator.feedback_writer import (
    HeaderError,
    build_920098,
    build_920099,
    build_920900,
    build_920999,
    build_931000,
    first_index,
    slot,
)
from unified_messaging.simulator.sending_writer import build_sending
from unified_messaging.journal.store import Journal
from unified_messaging.mycarenet.genasync import APPLIES_TO_PREFIX, TACK_SUCCESS, ReceivedMessage, TAck

FEEDBACK = ("efact", "feedback")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


@pytest.fixture()
def clock() -> Clock:
    """The store's clock, moved by the test."""
    return Clock(utc(2025, 3, 15, 9, 0, 0))


@pytest.fixture()
def journal(tmp_path):
    handle = Journal(tmp_path / "journal.sqlite")
    yield handle
    handle.close()


@pytest.fixture()
def store(journal, clock) -> InvoicingStore:
    return InvoicingStore(journal, clock=clock)


@pytest.fixture()
def poller(store, tmp_path) -> FeedbackPoller:
    folders = Folders(tmp_path / "invoicing")
    folders.create()
    return FeedbackPoller(store, folders)


def claim(store: InvoicingStore, name: str, zone_204: str, *, destination: str | None = "100",
          state: str = "claimed", status: str | None = None, reason: str | None = None) -> int:
    return store.record_file(name=name, size=1234, sha256=hashlib.sha256(name.encode()).hexdigest(),
                             zone_204=zone_204, destination=destination, is_test=True, state=state,
                             work_name=None if state == "error" else f"{name}.work", status=status, reason=reason)


def accept(poller: FeedbackPoller, zone_204: str, reference: str) -> int | None:
    """A success TAck for the post of ``zone_204``, as the mailbox or the post answer brings it."""
    tack = TAck(TACK_SUCCESS, None, None, "urn:nip:issuer:platform", APPLIES_TO_PREFIX + zone_204, reference,
                f"<tack>{reference}</tack>".encode())
    return poller.store_tack(tack)


def deliver(poller: FeedbackPoller, content: bytes, zone_204: str, *, salt: str = "") -> None:
    """One message of the mailbox, stored the way the poller stores it."""
    poller.store_message(ReceivedMessage(
        input_reference=zone_204, nip_reference=f"nip-{zone_204}", output_reference=None,
        message_name="HCPFAC", reference=None, hash_value=hashlib.sha256(content + salt.encode()).digest(),
        content=content, xades=b""))


def feedback_rows(store: InvoicingStore, file_id: int) -> dict[str, dict]:
    return {row["code"]: store.feedback(row["id"]) for row in store.feedback_for(file_id)}


def reference_entries() -> list[dict]:
    index = SHARED_REFERENCE.joinpath(*FEEDBACK, "index.json")
    return json.loads(index.read_text())["messages"] if index.exists() else []


# --- amounts and error counts, computed once when a message is stored ----------------------------


def test_a_settlement_sets_the_amounts_and_the_payment_references(store, poller):
    sending = build_sending(zone_204="20250301000001", mutualities=("131", "132"), lines_per_invoice=2)
    file_id = claim(store, "FAC-SETTLED.txt", "20250301000001")
    accept(poller, "20250301000001", "REF0001")
    assert store.file(file_id)["amount_requested"] is None  # NULL until settled
    deliver(poller, build_931000(sending), "20250301000001")
    line = first_index(sending, "50")
    deliver(poller, build_920900(sending, {line: [slot("R", "50", 24, 5)]}), "20250301000001")

    row = store.file(file_id)
    assert row["status"] == "DONE"
    assert (row["amount_requested"], row["amount_accepted"], row["amount_rejected"]) == (9500, 7125, 2375)
    assert row["payment_reference"] == "001/202402/131/, 001/202402/132/"
    settlement = feedback_rows(store, file_id)["920900"]
    assert settlement["error_counts"] == {"R": 1}
    assert settlement["record_count"] == len(read_feedback(build_920900(
        sending, {line: [slot("R", "50", 24, 5)]})).records)
    assert feedback_rows(store, file_id)["931000"]["error_counts"] == {}


def test_the_same_settlement_delivered_again_changes_nothing(store, poller):
    sending = build_sending(zone_204="20250301000002")
    file_id = claim(store, "FAC-TWICE.txt", "20250301000002")
    accept(poller, "20250301000002", "REF0002")
    settlement = build_920900(sending, rejected={"131": 375})
    deliver(poller, settlement, "20250301000002")
    store.update_file(file_id, amount_accepted=1)  # a later change must not be overwritten by a re-delivery
    deliver(poller, settlement, "20250301000002")
    assert len(store.feedback_for(file_id)) == 1
    assert store.file(file_id)["amount_accepted"] == 1
    assert store.file(file_id)["amount_rejected"] == 375


def test_settled_amounts_fall_back_on_the_mutualities_when_the_total_is_missing():
    sending = build_sending(zone_204="20250301000003", mutualities=("131", "132"))
    full = build_920900(sending, rejected={"132": 100})
    without_92 = full[:-800]  # the federation's record 92 is the last one
    message = read_feedback(without_92)
    assert message.settlement_total is None and len(message.settlements) == 2
    amounts = settled_amounts(message)
    assert (amounts.requested, amounts.accepted, amounts.rejected) == (4750, 4650, 100)
    assert amounts == settled_amounts(read_feedback(full))
    assert settled_amounts(read_feedback(build_931000(sending))) is None


def test_error_slots_are_counted_per_letter_and_error_zones_as_zone(store, poller):
    sending = build_sending(zone_204="20250301000004", mutualities=("131", "132"), lines_per_invoice=2)
    lines = [unit.index for unit in read_sending(sending) if unit.record_type == "50"]
    errors = {lines[0]: [slot("B", "50", 24, 5), slot("R", "50", 26, 1)], lines[1]: [slot("F", "50", 24, 5)],
              lines[2]: [slot("R", "50", 24, 5), slot("E", "50", 24, 5), slot("S", "50", 24, 5)]}
    file_id = claim(store, "FAC-ERRORS.txt", "20250301000004")
    accept(poller, "20250301000004", "REF0004")
    deliver(poller, build_920098(sending, errors), "20250301000004")
    row = feedback_rows(store, file_id)["920098"]
    assert row["error_counts"] == {"B": 1, "F": 1, "R": 2, "E": 1, "S": 1}
    assert store.file(file_id)["status"] == "ONGOING" and store.file(file_id)["amount_requested"] is None

    refused = claim(store, "FAC-REFUSED.txt", "20250301000005")
    deliver(poller, build_920999(build_sending(zone_204="20250301000005"),
                                 [HeaderError("303", "01"), HeaderError("508", "02")]), "20250301000005")
    row = feedback_rows(store, refused)["920999"]
    assert row["error_counts"] == {"zone": 2} and row["record_count"] == 1
    assert store.file(refused)["status"] == "NOK"


def test_a_message_that_cannot_be_read_is_stored_as_before_without_counts(store, poller, caplog):
    sending = build_sending(zone_204="20250301000006")
    file_id = claim(store, "FAC-DAMAGED.txt", "20250301000006")
    accept(poller, "20250301000006", "REF0006")
    truncated = build_920099(sending, {first_index(sending, "50"): [slot("B", "50", 24, 5)]})[:-100]
    deliver(poller, truncated, "20250301000006")
    row = feedback_rows(store, file_id)["920099"]
    assert row["error_counts"] is None and row["record_count"] is None
    assert (poller.folders.received / row["received_name"]).read_bytes() == truncated
    file_row = store.file(file_id)
    assert file_row["status"] == "NOK" and "the insurers refused the sending" in file_row["reason"]
    assert file_row["amount_requested"] is None
    assert "could not be read" in caplog.text
    assert store.error_categories() == {"B": 0, "F": 0, "R": 0, "E": 0, "S": 0, "zone": 0}


@pytest.mark.reference
@pytest.mark.parametrize("code", ["931000", "920098", "920099", "920999", "920900"])
def test_real_feedback_gets_the_counts_the_reference_index_lists(tmp_path, code):
    reference_path(*FEEDBACK, "index.json")
    entries = [e for e in reference_entries() if e["code"] == code]
    assert entries
    for number, entry in enumerate(entries):
        clock = Clock(utc(2025, 3, 15, 9, 0, 0))
        journal = Journal(tmp_path / f"{code}-{number}.sqlite")
        try:
            store = InvoicingStore(journal, clock=clock)
            folders = Folders(tmp_path / f"{code}-{number}")
            folders.create()
            poller = FeedbackPoller(store, folders)
            zone_204 = entry["zone204"]
            file_id = claim(store, f"{zone_204}.txt", zone_204)
            accept(poller, zone_204, f"REF{number}")
            data = reference_path(*FEEDBACK, entry["file"]).read_bytes()
            deliver(poller, data, zone_204)
            row = feedback_rows(store, file_id)[code]
            expected = dict(Counter(s["code"][0] for s in entry.get("derived_error_slots", [])))
            zone_errors = len(read_feedback(data).zone_errors)
            if zone_errors:
                expected["zone"] = zone_errors
            assert row["error_counts"] == expected, entry["file"]
            assert row["record_count"] == entry["record_count"], entry["file"]
            if code == "920999":
                assert expected.get("zone"), "a reception refusal names at least one zone in error"
        finally:
            journal.close()


@pytest.mark.reference
def test_real_settlements_set_the_file_amounts(store, poller):
    expected = {"920900_20240312402786_1.txt": (13175, 12475, 700, "900/202403/900/"),
                "920900_20240312552511_1.txt": (3075, 2375, 700, "513/202403/900/"),
                "920900_20240223031819_1.txt": (2375, 0, 2375, "233/202402/900/")}
    for name, amounts in expected.items():
        data = reference_path(*FEEDBACK, name).read_bytes()
        zone_204 = name.split("_")[1]
        file_id = claim(store, f"{zone_204}.txt", zone_204)
        accept(poller, zone_204, f"REF-{zone_204}")
        deliver(poller, data, zone_204)
        row = store.file(file_id)
        assert (row["amount_requested"], row["amount_accepted"], row["amount_rejected"],
                row["payment_reference"]) == amounts
        assert row["status"] == "DONE"


@pytest.mark.reference
def test_real_refusals_add_up_in_the_error_categories(store, poller):
    names = ["920099_20240207390060_1.txt", "920099_20240223423445_1.txt", "920098_20240228280153_1.txt"]
    expected: Counter = Counter()
    for name in names:
        data = reference_path(*FEEDBACK, name).read_bytes()
        zone_204 = name.split("_")[1]
        claim(store, f"{zone_204}.txt", zone_204)
        deliver(poller, data, zone_204)
        expected.update(error_counts(read_feedback(data)))
    assert expected == Counter({"B": 10, "F": 5, "R": 11, "S": 1})
    assert store.error_categories() == {"B": 10, "F": 5, "R": 11, "E": 0, "S": 1, "zone": 0}


# --- the file list: filters and pages -------------------------------------------------------------


@pytest.fixture()
def traffic(store, poller, clock) -> dict[str, int]:
    """One file per shown status over three months (January to March 2025), newest last."""
    ids: dict[str, int] = {}

    def at(day: datetime) -> None:
        clock.set(day)

    at(utc(2025, 1, 10, 8))
    ids["error"] = claim(store, "bad_file.txt", "20250110000001", destination=None, state="error", status="NOK",
                         reason="The file is empty.")
    at(utc(2025, 1, 20, 8))
    ids["done"] = claim(store, "LAB-2025-01.txt", "20250120000001", destination="300")
    accept(poller, "20250120000001", "26012000000001")
    sending = build_sending(zone_204="20250120000001")
    at(utc(2025, 1, 20, 9))
    deliver(poller, build_931000(sending), "20250120000001")
    at(utc(2025, 1, 25, 9))
    deliver(poller, build_920900(sending), "20250120000001")
    at(utc(2025, 2, 3, 8))
    ids["nok"] = claim(store, "LAB-2025-02.txt", "20250203000001", destination="100")
    accept(poller, "20250203000001", "26020300000001")
    deliver(poller, build_920099(build_sending(zone_204="20250203000001"),
                                 {first_index(sending, "50"): [slot("B", "50", 24, 5)]}), "20250203000001")
    at(utc(2025, 2, 14, 8))
    ids["ongoing"] = claim(store, "100%_done.txt", "20250214000001", destination="500")
    accept(poller, "20250214000001", "26021400000001")
    deliver(poller, build_931000(build_sending(zone_204="20250214000001")), "20250214000001")
    at(utc(2025, 3, 1, 8))
    ids["ok"] = claim(store, "100x done.txt", "20250301000009", destination="600")
    accept(poller, "20250301000009", "26030100000009")
    at(utc(2025, 3, 10, 8))
    ids["posting"] = claim(store, "Lab-March.TXT", "20250310000001", destination="900")
    store.start_posting(ids["posting"])
    at(utc(2025, 3, 15, 8))
    ids["claimed"] = claim(store, "LAB-2025-03.txt", "20250315000001", destination="900")
    at(utc(2025, 3, 15, 9))
    return ids


def names(rows: list[dict]) -> list[str]:
    return [row["name"] for row in rows]


def test_every_status_filter_finds_its_files_and_counts_them(store, traffic):
    expected = {"OK": ["ok"], "ONGOING": ["ongoing"], "DONE": ["done"], "NOK": ["nok"], "ERROR": ["error"],
                "WAITING": ["claimed", "posting"]}
    for status, keys in expected.items():
        rows = store.list_files(status=status)
        assert [row["id"] for row in rows] == [traffic[k] for k in keys], status
        assert all(row["shown_status"] == status for row in rows)
        assert store.count_files(status=status) == len(keys)
    assert store.list_files(status="waiting") == store.list_files(status="WAITING")
    assert store.count_files() == 7 == sum(store.count_files(status=s) for s in SHOWN_STATUSES)
    with pytest.raises(ValueError):
        store.list_files(status="SENDING")


def test_the_list_is_newest_first_with_every_column(store, traffic):
    rows = store.list_files()
    assert [row["id"] for row in rows] == [traffic[k] for k in
                                           ("claimed", "posting", "ok", "ongoing", "nok", "done", "error")]
    done = next(row for row in rows if row["id"] == traffic["done"])
    assert done["shown_status"] == "DONE" and done["amount_requested"] == 2375 and done["amount_rejected"] == 0
    assert done["reference"] == "26012000000001" and done["last_feedback"] == "920900"
    assert {"amount_accepted", "payment_reference", "created_at", "zone_204", "destination"} <= set(done)


def test_the_month_filter_takes_the_whole_month_and_nothing_more(store, traffic, clock):
    assert names(store.list_files(month="2025-01")) == ["LAB-2025-01.txt", "bad_file.txt"]
    assert names(store.list_files(month="2025-02")) == ["100%_done.txt", "LAB-2025-02.txt"]
    assert store.count_files(month="2025-03") == 3 and store.count_files(month="2024-12") == 0
    clock.set(utc(2025, 3, 31, 23, 59, 59, 999000))
    edge_last = claim(store, "last-ms.txt", "20250331000001")
    clock.set(utc(2025, 4, 1, 0, 0, 0))
    edge_first = claim(store, "first-ms.txt", "20250401000001")
    assert edge_last in [r["id"] for r in store.list_files(month="2025-03")]
    assert [r["id"] for r in store.list_files(month="2025-04")] == [edge_first]
    assert store.count_files(month="2025-03", status="WAITING") == 3
    for bad in ("2025-3", "2025-13", "March", "2025-03-01", "2025-03\n"):
        with pytest.raises(ValueError):
            store.list_files(month=bad)


def test_the_text_filter_searches_five_columns_case_insensitively(store, traffic):
    assert names(store.list_files(text="lab-march")) == ["Lab-March.TXT"]       # name, case ignored
    assert names(store.list_files(text="26020300000001")) == ["LAB-2025-02.txt"]  # MyCareNet reference
    assert names(store.list_files(text="20250315")) == ["LAB-2025-03.txt"]        # zone 204
    assert store.count_files(text="900") == 2                                     # destination (and no more)
    assert names(store.list_files(text="file is EMPTY")) == ["bad_file.txt"]     # reason
    assert names(store.list_files(text="920099")) == ["LAB-2025-02.txt"]          # the refusal's reason
    assert store.count_files(text="  ") == 7 and store.count_files(text="") == 7
    assert store.count_files(text="nothing like this") == 0
    assert names(store.list_files(text="lab-2025", status="NOK", month="2025-02")) == ["LAB-2025-02.txt"]


def test_percent_underscore_and_backslash_are_taken_literally(store, traffic):
    assert names(store.list_files(text="100%")) == ["100%_done.txt"]
    assert names(store.list_files(text="%_d")) == ["100%_done.txt"]
    assert names(store.list_files(text="d_f")) == ["bad_file.txt"]
    assert store.count_files(text="x_d") == 0 and store.count_files(text="100_") == 0  # "100x done" would match
    # the refusal's reason says "20.00 % of the sending is in error"
    assert names(store.list_files(text="%")) == ["100%_done.txt", "LAB-2025-02.txt"]
    claim(store, r"C:\lab\file.txt", "20250315000002")
    assert names(store.list_files(text="\\lab\\")) == [r"C:\lab\file.txt"]
    assert store.count_files(text="\\") == 1


def test_pages_cover_every_file_once(store, traffic):
    every = [row["id"] for row in store.list_files(limit=100)]
    pages = [store.list_files(limit=3, offset=offset) for offset in (0, 3, 6, 9)]
    assert [len(page) for page in pages] == [3, 3, 1, 0]
    assert [row["id"] for page in pages for row in page] == every
    assert [r["id"] for r in store.list_files(status="WAITING", limit=1, offset=1)] == [traffic["posting"]]
    assert store.list_files(limit=0) == []
    with pytest.raises(ValueError):
        store.list_files(limit=-1)
    with pytest.raises(ValueError):
        store.list_files(offset=-1)


def test_months_and_statuses_per_month(store, traffic, clock):
    assert store.file_months() == ["2025-03", "2025-02", "2025-01"]
    assert store.files_per_status_per_month() == [
        {"month": "2025-03", "status": "OK", "n": 1},
        {"month": "2025-03", "status": "WAITING", "n": 2},
        {"month": "2025-02", "status": "NOK", "n": 1},
        {"month": "2025-02", "status": "ONGOING", "n": 1},
        {"month": "2025-01", "status": "DONE", "n": 1},
        {"month": "2025-01", "status": "ERROR", "n": 1},
    ]
    assert [r["month"] for r in store.files_per_status_per_month(months=2)] == ["2025-03"] * 2 + ["2025-02"] * 2
    clock.set(utc(2026, 1, 5))
    assert store.files_per_status_per_month(months=10) == []  # April 2025 to January 2026
    assert [r["month"] for r in store.files_per_status_per_month(months=11)] == ["2025-03"] * 2
    assert len(store.files_per_status_per_month(months=13)) == 6  # January 2025 to January 2026
    with pytest.raises(ValueError):
        store.files_per_status_per_month(months=0)


def test_feedback_delays_count_from_the_success_tack(store, poller, clock):
    sending = build_sending(zone_204="20250310000002")
    clock.set(utc(2025, 3, 10, 8, 0, 0))
    sent = claim(store, "DELAYS.txt", "20250310000002")
    clock.advance(12.5)
    accept(poller, "20250310000002", "REFDELAY")
    clock.advance(60)
    deliver(poller, build_931000(sending), "20250310000002")
    clock.advance(3600)
    deliver(poller, build_920098(sending), "20250310000002")
    clock.advance(600)
    deliver(poller, build_920098(sending), "20250310000002", salt="a second one")  # not the first: ignored
    clock.advance(86400)
    deliver(poller, build_920900(sending), "20250310000002")

    clock.set(utc(2025, 3, 11, 8, 0, 0))
    untacked = claim(store, "NO-TACK.txt", "20250311000001")  # a TAck the journal never saw
    clock.advance(30.25)
    deliver(poller, build_931000(build_sending(zone_204="20250311000001")), "20250311000001")
    clock.set(utc(2025, 3, 20))

    assert store.feedback_delays() == [
        {"code": "931000", "file_id": untacked, "seconds": 30.25},
        {"code": "920098", "file_id": sent, "seconds": 3660.0},
        {"code": "920900", "file_id": sent, "seconds": 3660.0 + 600 + 86400},
        {"code": "931000", "file_id": sent, "seconds": 60.0},
    ]
    clock.set(utc(2025, 5, 1))
    assert store.feedback_delays(months=2) == []
    assert len(store.feedback_delays(months=3)) == 4


def test_error_categories_sum_the_period_and_can_keep_to_some_codes(store, poller, clock):
    sending = build_sending(zone_204="20250110000002", mutualities=("131", "132"))
    line = first_index(sending, "50")
    clock.set(utc(2025, 1, 10, 8))
    claim(store, "OLD.txt", "20250110000002")
    deliver(poller, build_920098(sending, {line: [slot("B", "50", 24, 5)]}), "20250110000002")
    clock.set(utc(2025, 3, 2, 8))
    claim(store, "NEW.txt", "20250302000001")
    recent = build_sending(zone_204="20250302000001", mutualities=("131", "132"))
    errors = {line: [slot("R", "50", 24, 5), slot("F", "50", 26, 1)]}
    deliver(poller, build_920098(recent, errors), "20250302000001")
    deliver(poller, build_920900(recent, errors), "20250302000001")
    claim(store, "REFUSED.txt", "20250302000002")
    deliver(poller, build_920999(build_sending(zone_204="20250302000002"), [HeaderError("303", "01")]),
            "20250302000002")
    clock.set(utc(2025, 3, 15))

    assert store.error_categories() == {"B": 1, "F": 2, "R": 2, "E": 0, "S": 0, "zone": 1}
    assert store.error_categories(months=1) == {"B": 0, "F": 2, "R": 2, "E": 0, "S": 0, "zone": 1}
    assert store.error_categories(codes=("920098", "920099", "920999")) == {
        "B": 1, "F": 1, "R": 1, "E": 0, "S": 0, "zone": 1}


def test_one_feedback_and_one_tack_by_id(store, poller):
    sending = build_sending(zone_204="20250301000010")
    file_id = claim(store, "ONE.txt", "20250301000010")
    accept(poller, "20250301000010", "REF0010")
    deliver(poller, build_920098(sending, {first_index(sending, "50"): [slot("R", "50", 24, 5)]}),
            "20250301000010")
    row = store.feedback_for(file_id)[0]
    one = store.feedback(row["id"])
    assert one["error_counts"] == {"R": 1} and one["code"] == "920098" and one["file_id"] == file_id
    assert row["error_counts"] == '{"R":1}'  # stored as JSON text
    tack_row = store.tacks_for(file_id)[0]
    assert store.tack(tack_row["id"]) == tack_row and tack_row["success"] == 1
    assert store.feedback(10**6) is None and store.tack(10**6) is None


# --- a journal of the previous schema ----------------------------------------------------------------

PREVIOUS_SCHEMA = """
CREATE TABLE invoicing_files (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL, zone_204 TEXT,
    destination TEXT, is_test INTEGER, state TEXT NOT NULL, status TEXT, reference TEXT, reason TEXT,
    work_name TEXT, resend_of INTEGER REFERENCES invoicing_files(id), attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT, posting_since TEXT, last_feedback TEXT, last_feedback_at TEXT,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE INDEX invoicing_files_zone_204 ON invoicing_files(zone_204);
CREATE INDEX invoicing_files_state ON invoicing_files(state);
CREATE TABLE invoicing_feedback (
    id INTEGER PRIMARY KEY, message_key TEXT NOT NULL UNIQUE, file_id INTEGER REFERENCES invoicing_files(id),
    zone_204 TEXT, code TEXT NOT NULL, nip_reference TEXT, output_reference TEXT, received_name TEXT NOT NULL,
    probative_name TEXT, at TEXT NOT NULL);
CREATE TABLE invoicing_tacks (
    id INTEGER PRIMARY KEY, tack_key TEXT NOT NULL UNIQUE, file_id INTEGER REFERENCES invoicing_files(id),
    input_reference TEXT, reference TEXT, success INTEGER NOT NULL, message TEXT, probative_name TEXT,
    at TEXT NOT NULL);
CREATE TABLE invoicing_resends (
    sha256 TEXT PRIMARY KEY, refused_id INTEGER NOT NULL REFERENCES invoicing_files(id), at TEXT NOT NULL);
INSERT INTO invoicing_files (id, name, size, sha256, zone_204, destination, is_test, state, status, reference,
    last_feedback, last_feedback_at, created_at, updated_at)
    VALUES (1, 'OLD-2024-11.txt', 2000, 'abc', '20241105000001', '300', 1, 'sent', 'DONE', '24110500000001',
            '920900', '2024-11-20T10:00:00.000+00:00', '2024-11-05T10:00:00.000+00:00',
            '2024-11-20T10:00:00.000+00:00');
INSERT INTO invoicing_feedback (id, message_key, file_id, zone_204, code, received_name, at)
    VALUES (1, 'old-key', 1, '20241105000001', '920900', 'OLD-2024-11_920900_0123456789.txt',
            '2024-11-20T10:00:00.000+00:00');
INSERT INTO invoicing_tacks (id, tack_key, file_id, input_reference, reference, success, message, at)
    VALUES (1, '24110500000001', 1, '20241105000001', '24110500000001', 1, 'accepted',
            '2024-11-05T10:00:05.000+00:00');
"""


def columns(path: Path, table: str) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


def test_a_journal_of_the_previous_schema_gets_the_new_columns_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(PREVIOUS_SCHEMA)
    conn.close()
    assert "amount_requested" not in columns(path, "invoicing_files")

    clock = Clock(utc(2024, 12, 1))
    journal = Journal(path)
    try:
        store = InvoicingStore(journal, clock=clock)
        for column in ("amount_requested", "amount_accepted", "amount_rejected", "payment_reference"):
            assert column in columns(path, "invoicing_files")
        assert {"error_counts", "record_count"} <= set(columns(path, "invoicing_feedback"))
        old = store.file(1)
        assert old["name"] == "OLD-2024-11.txt" and old["status"] == "DONE" and old["amount_requested"] is None
        assert [r["id"] for r in store.list_files(status="DONE", month="2024-11")] == [1]
        assert store.feedback(1)["error_counts"] is None and store.feedback(1)["record_count"] is None
        assert store.tack(1)["reference"] == "24110500000001"
        assert store.feedback_delays() == [{"code": "920900", "file_id": 1, "seconds": 1295995.0}]
        assert store.error_categories() == {"B": 0, "F": 0, "R": 0, "E": 0, "S": 0, "zone": 0}
        assert InvoicingStore(journal, clock=clock).file(1) == store.file(1)  # opening again changes nothing

        folders = Folders(tmp_path / "invoicing")
        folders.create()
        poller = FeedbackPoller(store, folders)
        new_id = claim(store, "NEW.txt", "20241201000001")
        accept(poller, "20241201000001", "REFNEW")
        deliver(poller, build_920900(build_sending(zone_204="20241201000001")), "20241201000001")
        assert store.file(new_id)["amount_requested"] == 2375
    finally:
        journal.close()
    with sqlite3.connect(path) as conn:
        indexes = {row[1] for row in conn.execute("PRAGMA index_list(invoicing_files)")}
    conn.close()
    assert {"invoicing_files_created_at", "invoicing_files_status"} <= indexes


def test_a_post_begins_once_and_a_working_file_is_recorded_once(store):
    """The store's own guards (the pipeline reads a file ``claimed`` before it begins its post): a second
    ``start_posting``, or a second row for one file of the working folder, is refused."""
    file_id = claim(store, "FAC-GUARD.txt", "20250301000080")
    assert store.start_posting(file_id) is True
    assert store.start_posting(file_id) is False
    assert store.file(file_id)["attempts"] == 1
    with pytest.raises(AlreadyRecorded, match="FAC-GUARD.txt.work is recorded already"):
        claim(store, "FAC-GUARD.txt", "20250301000081")
    assert store.by_zone_204("20250301000081") == []

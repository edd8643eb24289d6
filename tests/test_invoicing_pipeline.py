"""Issue 4 end to end: real folders, the pipeline in-process, the real platform (STS, signatures,
GenAsync mailbox) over real sockets."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.invoicing_support import client_for
from unified_messaging.invoicing.pipeline import InvoicingPipeline
from unified_messaging.simulator.sending_writer import Defect, build_sending
from unified_messaging.journal.store import Journal


def drop(root: Path, name: str, data: bytes, *, marker: str | None = None) -> None:
    (root / "toSend" / name).write_bytes(data)
    (root / "toSend" / (marker or f"{name}.ok")).write_bytes(b"")


def run_until(pipeline: InvoicingPipeline, done, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pipeline.run_once(poll=True)
        if done():
            return
        time.sleep(0.1)
    raise AssertionError("the pipeline did not get there in time")


def status_of(pipeline: InvoicingPipeline, name: str) -> dict:
    return next(r for r in pipeline.store.files() if r["name"] == name)


@pytest.fixture()
def journal(tmp_path):
    """The pipeline's journal (test_database_invoicing.py gives a PostgreSQL one instead)."""
    return Journal(tmp_path / "journal.sqlite")


@pytest.fixture()
def pipeline(tmp_path, pki, platform, journal):
    url = platform.url
    pipe = InvoicingPipeline(tmp_path / "invoicing", journal, lambda: client_for(pki, url), poll_interval=0.1,
                             rescan_seconds=0.2)
    yield pipe
    pipe.stop()


def test_folders_are_created_at_start(pipeline):
    for name in ("toSend", "received", "archive", "error", "probative-values"):
        assert (pipeline.folders.root / name).is_dir()


def test_a_good_file_goes_from_ok_to_done_with_every_feedback_in_received(pipeline, platform):
    simulator = platform.simulator
    root = pipeline.folders.root
    drop(root, "FAC0001.txt", build_sending(zone_204="20240223000101"))
    run_until(pipeline, lambda: status_of(pipeline, "FAC0001.txt")["status"] == "DONE")
    row = status_of(pipeline, "FAC0001.txt")
    assert row["reference"] and row["last_feedback"] == "920900"
    assert (root / "archive" / "FAC0001.txt").exists() and not list((root / "toSend").iterdir())
    received = sorted(p.name.split("_")[1] for p in (root / "received").iterdir())
    assert received == ["920098", "920900", "931000"]
    assert all(p.name.startswith("FAC0001_") for p in (root / "received").iterdir())
    probative = [p.name for p in (root / "probative-values").iterdir()]
    assert any("_tack_" in n for n in probative) and sum(".xades" in n for n in probative) >= 3
    assert simulator.counters["genasync.posts.20240223000101"] == 1
    assert simulator.genasync.pending_messages() == 0  # everything confirmed


def test_the_pipeline_reacts_to_a_marker_by_itself(pipeline, platform):
    pipeline.start()
    drop(pipeline.folders.root, "FAC0002.txt", build_sending(zone_204="20240223000102"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(r["status"] == "DONE" for r in pipeline.store.files()):
        time.sleep(0.05)
    assert status_of(pipeline, "FAC0002.txt")["status"] == "DONE"


@pytest.mark.parametrize("options, code, words", [
    ({"invoicing_month": "202403", "creation_date": "20240223"}, "920999", "920999"),
    ({"nomenclature": "9999991"}, "920099", "920099"),
    ({"nomenclature": "9999990"}, "920099", "920099"),
])
def test_refusals_by_the_insurers_end_nok_with_the_feedback_visible(pipeline, options, code, words):
    root = pipeline.folders.root
    drop(root, "BAD.txt", build_sending(zone_204="20240223000103", **options))
    run_until(pipeline, lambda: status_of(pipeline, "BAD.txt")["status"] == "NOK")
    row = status_of(pipeline, "BAD.txt")
    assert row["last_feedback"] == code
    assert any(p.name.startswith(f"BAD_{code}_") for p in (root / "received").iterdir())


def test_a_payload_without_marker_is_never_touched(pipeline):
    root = pipeline.folders.root
    (root / "toSend" / "WAIT.txt").write_bytes(build_sending(zone_204="20240223000104"))
    pipeline.run_once(poll=False)
    assert (root / "toSend" / "WAIT.txt").exists() and not pipeline.store.files()


@pytest.mark.parametrize("name, data, words", [
    ("EMPTY.txt", b"", "empty"),
    ("TRUNC.txt", build_sending(zone_204="20240223000105")[:-100], "920000"),
    ("CHECK.txt", build_sending(zone_204="20240223000106", defects=frozenset({Defect.ZONE_99})), "zone 99"),
    ("NOTEFACT.pdf", b"%PDF-1.4 this is a pdf" + b" " * 400, "not an eFact"),
])
def test_bad_input_ends_in_error_with_a_reason(pipeline, platform, name, data, words):
    simulator = platform.simulator
    root = pipeline.folders.root
    drop(root, name, data)
    pipeline.run_once(poll=False)
    assert (root / "error" / name).exists()
    reason = (root / "error" / f"{name}.reason.txt").read_text()
    assert words in reason, reason
    assert status_of(pipeline, name)["status"] == "NOK"
    assert simulator.counters["genasync.post"] == 0


def test_a_marker_without_file_and_two_markers_for_one_file(pipeline, platform):
    simulator = platform.simulator
    root = pipeline.folders.root
    (root / "toSend" / "GHOST.txt.ok").write_bytes(b"")
    drop(root, "TWICE.txt", build_sending(zone_204="20240223000107"))
    (root / "toSend" / "TWICE.ok").write_bytes(b"")
    run_until(pipeline, lambda: status_of(pipeline, "TWICE.txt")["status"] == "DONE")
    assert "without its file" in (root / "error" / "GHOST.txt.ok.reason.txt").read_text()
    assert simulator.counters["genasync.posts.20240223000107"] == 1
    assert len(list((root / "error").glob("*.reason.txt"))) == 2


def test_the_same_file_dropped_twice_is_sent_once(pipeline, platform):
    simulator = platform.simulator
    root = pipeline.folders.root
    data = build_sending(zone_204="20240223000108")
    drop(root, "SAME.txt", data)
    pipeline.run_once(poll=False)
    drop(root, "SAME.txt", data)
    pipeline.run_once(poll=False)
    assert simulator.counters["genasync.posts.20240223000108"] == 1
    assert "already sent" in (root / "error" / "SAME.txt.reason.txt").read_text()


def test_a_network_failure_never_makes_a_file_nok(tmp_path, pki):
    pipe = InvoicingPipeline(tmp_path / "inv", Journal(tmp_path / "j.sqlite"),
                             lambda: client_for(pki, "http://127.0.0.1:9", timeout=2), poll_interval=0.1,
                             backoff=(0.1,))
    drop(pipe.folders.root, "NET.txt", build_sending(zone_204="20240223000109"))
    for _ in range(3):
        pipe.run_once(poll=True)
    row = status_of(pipe, "NET.txt")
    assert row["status"] is None and row["state"] == "posting" and "cannot be reached" in row["reason"]


def test_a_settled_file_shows_its_amounts_and_each_feedback_its_error_counts(pipeline):
    root = pipeline.folders.root
    drop(root, "AMOUNTS.txt", build_sending(zone_204="20240223000110"))
    run_until(pipeline, lambda: status_of(pipeline, "AMOUNTS.txt")["status"] == "DONE")
    row = status_of(pipeline, "AMOUNTS.txt")
    assert row["amount_requested"] == 2375 and row["amount_accepted"] + row["amount_rejected"] == 2375
    assert row["payment_reference"]
    store = pipeline.store
    assert [r["id"] for r in store.list_files(status="DONE", text="amounts")] == [row["id"]]
    stored = {f["code"]: store.feedback(f["id"]) for f in store.feedback_for(row["id"])}
    assert set(stored) == {"931000", "920098", "920900"}
    assert all(isinstance(f["error_counts"], dict) and f["record_count"] is not None for f in stored.values())
    delays = {d["code"]: d["seconds"] for d in store.feedback_delays() if d["file_id"] == row["id"]}
    assert set(delays) == set(stored) and all(seconds >= 0 for seconds in delays.values())


def test_a_refusal_counts_its_errors_for_the_error_categories(pipeline):
    drop(pipeline.folders.root, "ERRORS.txt", build_sending(zone_204="20240223000111", nomenclature="9999991"))
    run_until(pipeline, lambda: status_of(pipeline, "ERRORS.txt")["status"] == "NOK")
    refused = pipeline.store.feedback_for(status_of(pipeline, "ERRORS.txt")["id"])[-1]
    counts = pipeline.store.feedback(refused["id"])["error_counts"]
    assert refused["code"] == "920099" and sum(counts.values()) >= 1
    categories = pipeline.store.error_categories()
    assert all(categories[key] >= value for key, value in counts.items())


def test_markers_are_picked_up_at_once_not_at_the_rescan(tmp_path, pki, platform):
    """Each drop is sent on its own file-system event, long before the 60 s rescan and poll."""
    url = platform.url
    pipe = InvoicingPipeline(tmp_path / "invoicing", Journal(tmp_path / "journal.sqlite"),
                             lambda: client_for(pki, url), poll_interval=60, rescan_seconds=60).start()
    delays = []
    try:
        time.sleep(0.3)
        for number in range(5):
            started = time.monotonic()
            drop(pipe.folders.root, f"NOW{number}.txt", build_sending(zone_204=f"2024022300030{number}"))
            deadline = started + 10
            while time.monotonic() < deadline and not (pipe.folders.archive / f"NOW{number}.txt").exists():
                time.sleep(0.005)
            assert (pipe.folders.archive / f"NOW{number}.txt").exists(), "the marker did not start the pickup"
            delays.append(time.monotonic() - started)
    finally:
        pipe.stop()
    assert sorted(delays)[2] < 0.4, delays
    assert max(delays) < 5, delays


def test_a_name_already_taken_gets_the_one_clash_rule(pipeline):
    root = pipeline.folders.root
    for zone in ("20240223000201", "20240223000202"):
        drop(root, "TWIN.txt", build_sending(zone_204=zone))
        pipeline.run_once(poll=False)
    assert (root / "archive" / "TWIN.txt").exists() and (root / "archive" / "TWIN.2.txt").exists()
    for _ in range(2):
        drop(root, "EMPTY.txt", b"")
        pipeline.run_once(poll=False)
    assert (root / "error" / "EMPTY.txt").exists() and (root / "error" / "EMPTY.2.txt").exists()
    assert "empty" in (root / "error" / "EMPTY.2.txt.reason.txt").read_text()

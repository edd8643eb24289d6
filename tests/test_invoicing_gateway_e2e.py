"""Issue 4 through the real processes: ``unified-messaging serve`` (remote mode) against
``unified-messaging simulator``, the real folders, and ``unified-messaging invoicing status``.

A good file reaches DONE with every feedback file in ``received/``; the insurers' refusals reach NOK
with the reason visible in ``invoicing status``; bad input ends in ``error/`` with a reason and is
never posted; a 50 MB file is sent with the gateway's peak memory measured."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.invoicing_support import (
    drop_file,
    invoicing_status,
    journal_rows,
    received_codes,
    remote_gateway_config,
    simulator_counters,
    start_gateway,
    start_simulator,
    wait_for,
)
from unified_messaging.simulator.sending_writer import Defect, build_sending, spec_for_size, write_sending

PEAK_GROWTH_LIMIT_MB = 64


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gateway-e2e")
    simulator = start_simulator(folder)
    config = remote_gateway_config(folder, simulator)
    gateway = None
    try:
        gateway = start_gateway(folder, config)
        yield folder, config, simulator, gateway
    finally:
        if gateway is not None:
            code = gateway.stop()
            assert code == 0, gateway.output()[-3000:]
        simulator.stop()
    log = gateway.output() + simulator.output()
    assert "the-right-licence-password" not in log and "unified-messaging-dev" not in log


def root_of(folder: Path) -> Path:
    return folder / "um-data" / "invoicing"


def row_named(folder: Path, name: str) -> dict | None:
    return next((r for r in journal_rows(folder / "um-data" / "journal.sqlite") if r["name"] == name), None)


def wait_status(folder: Path, name: str, status: str, timeout: float = 30.0) -> dict:
    return wait_for(lambda: (row := row_named(folder, name)) is not None and row["status"] == status and row,
                    timeout=timeout, what=f"{name} {status}")


def test_a_good_file_reaches_done_with_every_feedback_in_received(stack):
    folder, config, simulator, _ = stack
    root = root_of(folder)
    drop_file(root / "toSend", "GOOD.txt", build_sending(zone_204="20240301000001"))
    row = wait_status(folder, "GOOD.txt", "DONE")
    wait_for(lambda: simulator_counters(simulator)["pending_messages"] == 0, what="everything confirmed")
    assert received_codes(root, "GOOD") == ["920098", "920900", "931000"]
    assert (root / "archive" / "GOOD.txt").exists()
    assert not (root / "toSend" / "GOOD.txt").exists() and not (root / "toSend" / "GOOD.txt.ok").exists()
    probative = [p.name for p in (root / "probative-values").iterdir() if p.name.startswith("GOOD_")]
    assert any("_tack_" in n for n in probative) and sum(".xades" in n for n in probative) >= 3
    assert simulator_counters(simulator)["genasync.posts.20240301000001"] == 1
    rows, table = invoicing_status(folder, config)
    shown = next(r for r in rows if r["name"] == "GOOD.txt")
    assert shown["status"] == "DONE" and shown["reference"] == row["reference"] and shown["last_feedback"] == "920900"
    assert "GOOD.txt" in table and "DONE" in table and row["reference"] in table


@pytest.mark.parametrize("name, zone_204, options, code, words", [
    ("HEADER.txt", "20240301000002", {"invoicing_month": "202403", "creation_date": "20240223"}, "920999",
     "Refused at reception"),
    ("BLOCKING.txt", "20240301000003", {"nomenclature": "9999991"}, "920099", "zone 311 = 01"),
    ("TOOMANY.txt", "20240301000004", {"nomenclature": "9999990"}, "920099", "zone 311 = 02"),
])
def test_refusals_reach_nok_with_the_reason_in_invoicing_status(stack, name, zone_204, options, code, words):
    folder, config, simulator, _ = stack
    root = root_of(folder)
    drop_file(root / "toSend", name, build_sending(zone_204=zone_204, **options))
    wait_status(folder, name, "NOK")
    stem = name[:-4]
    assert code in received_codes(root, stem)
    assert (root / "archive" / name).exists()  # technically accepted (TAck), then refused by the insurers
    assert simulator_counters(simulator)[f"genasync.posts.{zone_204}"] == 1
    rows, table = invoicing_status(folder, config)
    shown = next(r for r in rows if r["name"] == name)
    assert shown["status"] == "NOK" and shown["last_feedback"] == code
    assert shown["reason"].startswith(f"{code}: ") and words in shown["reason"], shown["reason"]
    assert "received/" in shown["reason"]
    line = next(i for i, text in enumerate(table.splitlines()) if name in text)
    assert "NOK" in table.splitlines()[line] and code in table.splitlines()[line + 1], table


@pytest.mark.parametrize("name, data, words", [
    ("EMPTY.txt", b"", "empty"),
    ("TRUNC.txt", build_sending(zone_204="20240301000005")[:-100], "920000"),
    ("CHECK.txt", build_sending(zone_204="20240301000006", defects=frozenset({Defect.ZONE_99})), "zone 99"),
    ("NOTEFACT.pdf", b"%PDF-1.4 this is a pdf" + b" " * 400, "not an eFact"),
])
def test_bad_input_ends_in_error_with_a_reason_and_is_never_posted(stack, name, data, words):
    folder, config, simulator, _ = stack
    root = root_of(folder)
    posts_before = simulator_counters(simulator)["genasync.post"]
    drop_file(root / "toSend", name, data)
    # The reason can be written a moment before the file lands beside it (seen on a loaded machine):
    # wait for both, then check them.
    wait_for(lambda: (root / "error" / f"{name}.reason.txt").exists() and (root / "error" / name).exists(),
             what=f"{name} and its reason in error/")
    assert words in (root / "error" / f"{name}.reason.txt").read_text()
    assert row_named(folder, name)["shown_status"] == "ERROR"  # refused by UM itself: ERROR in Mybox and the CLI
    assert simulator_counters(simulator)["genasync.post"] == posts_before


def test_two_markers_for_one_file_send_it_once_and_explain_the_other(stack):
    folder, config, simulator, _ = stack
    root = root_of(folder)
    (root / "toSend" / "TWICE.txt").write_bytes(build_sending(zone_204="20240301000007"))
    (root / "toSend" / "TWICE.txt.ok").write_bytes(b"")
    (root / "toSend" / "TWICE.ok").write_bytes(b"")
    wait_status(folder, "TWICE.txt", "DONE")
    reasons = [p for p in (root / "error").glob("TWICE*.reason.txt")]
    assert len(reasons) == 1 and "without its file" in reasons[0].read_text()
    assert simulator_counters(simulator)["genasync.posts.20240301000007"] == 1
    rows, table = invoicing_status(folder, config)
    assert any(r["name"].startswith("TWICE") and r["name"].endswith(".ok") and r["status"] == "ERROR" for r in rows)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    pytest.skip("no /proc on this system")


def test_a_50_mb_file_through_serve_with_bounded_memory(stack):
    folder, config, simulator, gateway = stack
    root = root_of(folder)
    before = peak_rss_mb(gateway.pid)
    spec = spec_for_size(50 * 1024 * 1024, zone_204="20240301000008")
    with open(root / "toSend" / "BIG.txt", "wb") as stream:
        write_sending(stream, spec)
    started = time.monotonic()
    (root / "toSend" / "BIG.txt.ok").write_bytes(b"")
    wait_for(lambda: (row := row_named(folder, "BIG.txt")) is not None and row["status"] in ("OK", "ONGOING", "DONE"),
             timeout=90, what="BIG.txt accepted")
    elapsed = time.monotonic() - started
    after = peak_rss_mb(gateway.pid)
    assert (root / "archive" / "BIG.txt").stat().st_size >= 50 * 1024 * 1024
    assert simulator_counters(simulator)["genasync.posts.20240301000008"] == 1
    print(f"50 MB through serve: .ok to TAck {elapsed:.1f} s; gateway peak RSS {before:.0f} MB -> {after:.0f} MB")
    assert after - before < PEAK_GROWTH_LIMIT_MB

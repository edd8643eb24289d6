"""Crash safety of the real gateway process: ``unified-messaging serve --workers 1`` is killed with
SIGKILL at each step of a sending and started again, or (``serve --workers 2``) its singletons
process, the one running the invoicing pipeline, is killed and the supervisor starts it again, while ``unified-messaging simulator`` (a process of its
own, so its mailbox and counters survive) keeps running.

Each step is reached by watching the gateway's own state (files in ``.work``, journal rows,
``received/``) and the simulator's counters, with the simulator slowed where needed (``--latency-ms``
delays answers after the platform handled the request; ``--hold OP=MS`` delays a request before it
is handled).  No hook in the gateway.  After each kill the test checks, on disk and in the
simulator, that the kill really happened at that step; after the restart: the file was posted
exactly once (``genasync.posts.<zone 204>``), every feedback message is in ``received/`` once, the
status is DONE, and nothing is left unconfirmed in the mailbox."""
from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest

from tests.invoicing_support import (
    drop_sending,
    invoicing_status,
    journal_feedback,
    journal_rows,
    received_codes,
    remote_gateway_config,
    simulator_counters,
    start_gateway,
    start_simulator,
    wait_for,
)


def _rows(folder: Path) -> list[dict]:
    return journal_rows(folder / "um-data" / "journal.sqlite")


def _work_files(root: Path, name: str) -> list[Path]:
    return [p for p in (root / ".work").glob(f"*-{name}")]


def after_claim(root, folder, simulator, name, ref):
    """The payload is in .work (claimed) and nothing is posting yet: killed during the record pass."""
    return bool(_work_files(root, name)) and not [r for r in _rows(folder) if r["state"] in ("posting", "sent")]


def during_post(root, folder, simulator, name, ref):
    """Marked posting (committed), the post arrived at the platform and held there: not taken yet.

    Waiting for its arrival (``held.post``), not only for the journal's ``posting``: killed before the
    request left, the post never reaches the platform and is sent again only after the repost grace
    (a minute here), which a busy machine made this test wait for."""
    counters = simulator_counters(simulator)
    return (any(r["state"] == "posting" for r in _rows(folder)) and counters.get("held.post", 0) == 1
            and counters["genasync.post"] == 0)


def after_post(root, folder, simulator, name, ref):
    """The platform took the post (counted) and its TAck answer is still on the way back."""
    return simulator_counters(simulator).get(f"genasync.posts.{ref}", 0) == 1


def between_get_and_confirm(root, folder, simulator, name, ref):
    """Feedback stored on disk and in the journal, the confirm held on its way: nothing confirmed."""
    counters = simulator_counters(simulator)
    return bool(journal_feedback(folder / "um-data" / "journal.sqlite")) and counters["genasync.confirm"] == 0 \
        and counters.get("genasync.confirmed.messages", 0) == 0


def checked_after_claim(root, folder, counters, ref):
    assert counters.get(f"genasync.posts.{ref}", 0) == 0
    assert not [r for r in _rows(folder) if r["state"] in ("posting", "sent")]


def checked_during_post(root, folder, counters, ref):
    assert counters.get(f"genasync.posts.{ref}", 0) == 0
    assert [r["state"] for r in _rows(folder)] == ["posting"]


def checked_after_post(root, folder, counters, ref):
    assert counters[f"genasync.posts.{ref}"] == 1
    assert [r["state"] for r in _rows(folder)] == ["posting"]  # the gateway never saw its TAck


def checked_between_get_and_confirm(root, folder, counters, ref):
    assert counters.get("genasync.confirmed.messages", 0) == 0 and counters["pending_messages"] >= 1
    stored = journal_feedback(folder / "um-data" / "journal.sqlite")
    assert stored and all((root / "received" / r["received_name"]).exists() for r in stored)


STEPS = {
    # step: (simulator options, big file?, reached, check after the kill)
    "after-claim": ((), True, after_claim, checked_after_claim),
    "during-post": (("--hold", "post=3000"), False, during_post, checked_during_post),  # room on a busy machine
    "after-post": (("--latency-ms", "1200"), False, after_post, checked_after_post),
    # the held confirm is still handled after the kill (its request was sent): the restarted gateway's get
    # must come first for the redelivery to be seen, so the hold leaves room for a slow restart
    "between-get-and-confirm": (("--hold", "confirm=8000"), False, between_get_and_confirm,
                                checked_between_get_and_confirm),
}


def singletons_pid(gateway) -> int | None:
    """The pid of the supervisor's singletons process (its last start), from the supervisor's log."""
    found = re.findall(r"supervisor: singletons started \(pid (\d+)\)", gateway.output())
    return int(found[-1]) if found else None


@pytest.mark.parametrize("killed", ["gateway", "singletons"])
@pytest.mark.parametrize("step", list(STEPS))
def test_gateway_killed_at_each_step_sends_once_and_reaches_done(tmp_path, step, killed):
    options, big, reached, checked = STEPS[step]
    ref = "20240302" + f"{['gateway', 'singletons'].index(killed) + 1:02d}00" + f"{list(STEPS).index(step) + 1:02d}"
    name = "FAC.txt"
    simulator = start_simulator(tmp_path, *options)
    config = remote_gateway_config(tmp_path, simulator)
    root = tmp_path / "um-data" / "invoicing"
    workers = ("--workers", "1" if killed == "gateway" else "2")
    gateway = start_gateway(tmp_path, config, *workers)
    try:
        drop_sending(root / "toSend", name, ref, big=big)
        wait_for(lambda: reached(root, tmp_path, simulator, name, ref), timeout=30, every=0.01, what=step)
        if killed == "gateway":
            gateway.kill()
        else:
            victim = singletons_pid(gateway)
            os.kill(victim, signal.SIGKILL)
        checked(root, tmp_path, simulator_counters(simulator), ref)

        if killed == "gateway":
            gateway = start_gateway(tmp_path, config, *workers)
        else:
            wait_for(lambda: singletons_pid(gateway) not in (None, victim), timeout=30,
                     what="the supervisor's new singletons process")
        wait_for(lambda: any(r["name"] == name and r["status"] == "DONE" for r in _rows(tmp_path)), timeout=60,
                 what="DONE after the restart")
        wait_for(lambda: simulator_counters(simulator)["pending_messages"] == 0, timeout=30,
                 what="every message confirmed")
        final = simulator_counters(simulator)
        assert gateway.stop() == 0
    finally:
        gateway.stop()
        simulator.stop()
    assert final[f"genasync.posts.{ref}"] == 1, final  # sent exactly once, whatever the kill interrupted
    assert final["genasync.post"] == 1
    if step == "between-get-and-confirm":
        assert final["genasync.redelivered"] >= 1  # the unconfirmed messages came again and were not duplicated
    assert received_codes(root, "FAC") == ["920098", "920900", "931000"]  # each message on disk, once
    assert len(journal_feedback(tmp_path / "um-data" / "journal.sqlite")) == 3
    assert (root / "archive" / name).exists()
    assert not list((root / ".work").iterdir()) and not list((root / "toSend").iterdir())
    assert not list((root / "error").iterdir())
    rows, _ = invoicing_status(tmp_path, config)
    assert [(r["name"], r["status"]) for r in rows] == [(name, "DONE")]


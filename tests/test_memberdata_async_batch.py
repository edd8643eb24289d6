"""The batch over the asynchronous MemberData (MDA, #12 point 4), with the real gateway's service, its
real simulator over sockets and real files: a large file goes async (MDA posts counted, no sync
MemberData call), its output is what the sync path writes for the same lines, refused lines keep their
error on their line, and a gateway process killed after the post and before the answers neither posts
again nor loses or repeats a line."""
from __future__ import annotations

import dataclasses
import datetime as dt
import os
import time

import pytest

from tests.conftest import make_config
from tests.invoicing_support import remote_gateway_config, simulator_counters, start_gateway, start_simulator
from tests.support import read_output, wait_for, write_job
from unified_messaging.insurability.batch import OUTPUT_COLUMNS, BatchRunner
from unified_messaging.insurability.batch_job import load_batch_job
from unified_messaging.simulator.memberdata_async import MEMBERDATA_ASYNC_PATH
from unified_messaging.simulator.memberdata import MEMBERDATA_PATH
from unified_messaging.simulator.population import TEST_PATIENTS

TODAY = dt.date.today().isoformat()
SCENARIOS = ["insured", "preferential_rate", "third_party_payment", "medical_house", "hospitalized",
             "deceased", "change_of_mutuality", "unknown", "several_insurers"]
AUDIT = OUTPUT_COLUMNS.index("audit_reference")
BAD_SSIN_LINE, UNKNOWN_LINE = 7, 11


def batch_lines(count: int) -> list[str]:
    """``count`` lines over the test population; line 7 has a bad SSIN, line 11 an unknown patient."""
    people = [p for s in SCENARIOS for p in TEST_PATIENTS if p.scenario == s]
    lines = []
    for n in range(1, count + 1):
        ssin = people[n % len(people)].ssin
        if n == BAD_SSIN_LINE:
            ssin = "12345678901"
        elif n == UNKNOWN_LINE:
            ssin = next(p.ssin for p in TEST_PATIENTS if p.scenario == "unknown")
        lines.append(f"{ssin};{TODAY};{TODAY};LINE-{n}")
    return lines


def write_batch(folder, name: str, count: int):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("ssin;period_start;period_end;reference\n" + "\n".join(batch_lines(count)) + "\n",
                    encoding="utf-8")
    old = time.time() - 60
    os.utime(path, (old, old))  # settled: the scheduler takes files unchanged for a while
    return path


@pytest.fixture(scope="module")
def mda_gateway(tmp_path_factory):
    from unified_messaging.gateway import Gateway

    config = make_config(tmp_path_factory.mktemp("mda-batch"),
                         upstream={"insurability_service": "memberdata"}, invoicing={"enabled": False,
                                                                                     "poll_interval_seconds": 0.2},
                         simulator={"genasync_acknowledgement_seconds": 0.5,
                                    "genasync_min_get_interval_seconds": 0.0},
                         batch={"memberdata_async_min_lines": 50, "memberdata_async_chunk": 500})
    gateway = Gateway(config).start()
    yield gateway
    gateway.stop()


def run_job(gateway, folder, count: int, *, asynchronous: bool, **settings):
    job = load_batch_job(write_job(folder))
    write_batch(job.input_folder, "patients.csv", count)
    mda = gateway.batch_memberdata_async() if asynchronous else None
    if mda is not None and settings:
        mda = dataclasses.replace(mda, **settings)
    summary = BatchRunner(job, gateway.insurability, journal=gateway.journal, memberdata_async=mda,
                          retry_delays=()).run()
    [result] = summary.files
    assert result.status == "done", result.describe()
    return read_output(job.output_folder / "patients.result.csv"), result


def counters(gateway) -> dict[str, int]:
    names = gateway.simulator.counters
    return {name: names[name] for name in names}


def test_memberdata_async_batch_of_120_lines_is_posted_once_and_answers_like_the_sync_path(mda_gateway, tmp_path):
    before = counters(mda_gateway)
    rows, result = run_job(mda_gateway, tmp_path / "async", 120, asynchronous=True)
    after = counters(mda_gateway)
    assert after["memberdata_async.post"] - before.get("memberdata_async.post", 0) == 1
    assert after["memberdata_async.queries"] - before.get("memberdata_async.queries", 0) == 119  # not the bad SSIN
    assert after["memberdata.consult"] == before["memberdata.consult"]  # no sync MemberData call for those lines
    assert after.get("pending_mda_answers", 0) == 0 and mda_gateway.simulator.memberdata_async.pending() == 0
    assert len(rows) == 121 and [r[3] for r in rows[1:]] == [f"LINE-{n}" for n in range(1, 121)]  # input order
    assert (result.lines, result.ok + result.errors) == (120, 120)

    sync_rows, _ = run_job(mda_gateway, tmp_path / "sync", 120, asynchronous=False)
    assert counters(mda_gateway)["memberdata.consult"] - after["memberdata.consult"] == 119
    assert rows[0] == sync_rows[0]  # the same header, the same answer columns
    start = len(rows[0]) - len(OUTPUT_COLUMNS)
    for mine, theirs in zip(rows[1:], sync_rows[1:]):
        assert mine[:start + AUDIT] + mine[start + AUDIT + 1:] == theirs[:start + AUDIT] + theirs[start + AUDIT + 1:]
        assert bool(mine[start + AUDIT]) == bool(theirs[start + AUDIT])  # both with an audit reference, or none

    status = start + OUTPUT_COLUMNS.index("status")
    code = start + OUTPUT_COLUMNS.index("code")
    messages = start + OUTPUT_COLUMNS.index("messages")
    assert (rows[BAD_SSIN_LINE][status], rows[BAD_SSIN_LINE][code]) == ("ERROR", "UM-SSIN")
    assert rows[UNKNOWN_LINE][status] == "ERROR" and "UNKNOWN_IO" in rows[UNKNOWN_LINE][messages]
    assert sum(r[status] == "OK" for r in rows[1:]) == result.ok == 80  # as many as the sync path
    consultations = [r for r in mda_gateway.journal.consultations(limit=400)
                     if r["interface"] == "batch" and r["upstream_service"] == "memberdata"]
    assert len(consultations) >= 2 * 119  # every line journaled, the async ones as MemberData answers


def test_memberdata_async_batch_in_chunks_keeps_the_input_order(mda_gateway, tmp_path):
    before = counters(mda_gateway)
    rows, result = run_job(mda_gateway, tmp_path / "chunks", 130, asynchronous=True, chunk=50)
    after = counters(mda_gateway)
    assert after["memberdata_async.post"] - before["memberdata_async.post"] == 3  # 50 + 50 + 29 queries
    assert [r[3] for r in rows[1:]] == [f"LINE-{n}" for n in range(1, 131)]
    assert not any(p.name.endswith(".job.json") for p in (tmp_path / "chunks" / "out").iterdir())


@pytest.mark.parametrize("count, settings", [(20, {}), (120, {"min_lines": 0})], ids=["small-file", "never-async"])
def test_memberdata_batch_keeps_the_sync_path_for_small_files_or_min_lines_0(mda_gateway, tmp_path, count, settings):
    before = counters(mda_gateway)
    rows, _ = run_job(mda_gateway, tmp_path / "small", count, asynchronous=True, **settings)
    after = counters(mda_gateway)
    assert after["memberdata_async.post"] == before["memberdata_async.post"]
    assert after["memberdata.consult"] - before["memberdata.consult"] == count - 1  # all but the bad SSIN
    assert len(rows) == count + 1


@pytest.mark.parametrize("mode, handled", [("html-503", 0), ("reset", 1)], ids=["never-reached", "answer-lost"])
def test_memberdata_async_post_lost_on_the_way_is_posted_once_by_the_next_run(mda_gateway, tmp_path, mode, handled):
    """``[simulator] fault_memberdata`` on the MDA post: a 503 from a proxy (the platform never saw it), or
    the connection reset after the platform took it (its TAck lost).  The run stops, resumable; the
    next one posts again only the post the platform never had."""
    job = load_batch_job(write_job(tmp_path))
    write_batch(job.input_folder, "patients.csv", 60)
    mda = dataclasses.replace(mda_gateway.batch_memberdata_async(), repost_grace=1.0)
    before = counters(mda_gateway)
    mda_gateway.simulator.faults.set("memberdata", mode, count=1)
    [stopped] = BatchRunner(job, mda_gateway.insurability, memberdata_async=mda, retry_delays=()).run().files
    assert stopped.status == "stopped" and "could not be reached to post" in stopped.reason
    assert '"posting"' in (job.output_folder / ".patients.csv.job.json").read_text(encoding="utf-8")
    assert counters(mda_gateway)["memberdata_async.post"] - before["memberdata_async.post"] == handled

    [done] = BatchRunner(job, mda_gateway.insurability, memberdata_async=mda, retry_delays=()).run().files
    assert done.status == "done", done.describe()
    after = counters(mda_gateway)
    assert after["memberdata_async.post"] - before["memberdata_async.post"] == 1  # the platform had it once
    assert after["memberdata.consult"] == before["memberdata.consult"]
    rows = read_output(job.output_folder / "patients.result.csv")
    assert [r[3] for r in rows[1:]] == [f"LINE-{n}" for n in range(1, 61)]
    assert mda_gateway.simulator.memberdata_async.pending() == 0


# -- the gateway process killed (SIGKILL) at each step of a chunk, then started again --


def _part_rows(folder) -> int:
    part = folder / "out" / ".patients.result.csv.part"
    return len(read_output(part)) if part.exists() else 0


def _sidecar(folder) -> str:
    path = folder / "out" / ".patients.csv.job.json"
    return path.read_text(encoding="utf-8") if path.exists() else ""


def during_post(folder, counters):
    """Recorded as posting (fsynced), the post arrived at the platform and is held there: not handled yet."""
    return '"posting"' in _sidecar(folder) and counters.get("held.post", 0) == 1 \
        and counters.get("memberdata_async.post", 0) == 0


def after_post(folder, counters):
    """The platform handled the post (its 119 answers wait in the mailbox, not due yet)."""
    return counters.get("pending_mda_answers", 0) == 119


def between_write_and_confirm(folder, counters):
    """Every answer written to the .part, the confirm held on its way: nothing confirmed."""
    return _part_rows(folder) == 121 and counters.get("held.confirm", 0) == 1


def checked_during_post(folder, counters):
    assert counters.get("memberdata_async.post", 0) == 0 and _part_rows(folder) == 1
    assert '"posting"' in _sidecar(folder)


def checked_after_post(folder, counters):
    assert _part_rows(folder) == 1  # only the header: no answer written yet
    assert counters["pending_mda_answers"] == 119
    assert counters.get("memberdata_async.delivered", 0) <= 1  # at most the post's TAck: no answer was due yet


def checked_between_write_and_confirm(folder, counters):
    assert counters.get("memberdata_async.confirmed.messages", 0) == 0 and counters["pending_mda_answers"] == 119
    assert _part_rows(folder) == 121 and '"posted"' in _sidecar(folder)


CRASHES = {
    # step: (simulator options, MDA answer delay, reached, checked after the kill)
    "during-post": (("--hold", "post=3000"), 1.0, during_post, checked_during_post),
    "after-post": ((), 6.0, after_post, checked_after_post),
    # the held confirm is still handled after the kill (its request was sent); the lines written before the
    # kill are kept and not written again, whichever of it and the restarted gateway's get comes first
    "between-write-and-confirm": (("--hold", "confirm=8000"), 0.5, between_write_and_confirm,
                                  checked_between_write_and_confirm),
}


@pytest.mark.parametrize("step", list(CRASHES))
def test_memberdata_async_batch_gateway_killed_posts_once_and_answers_every_line_once(tmp_path, step):
    options, delay, reached, checked = CRASHES[step]
    simulator = start_simulator(tmp_path, *options, timings=(delay, delay + 0.5, delay + 1.0))
    folder = tmp_path / "job"
    folder.mkdir()
    job_file = write_job(folder)
    base = simulator.url
    config = remote_gateway_config(tmp_path, simulator, extra=f"""
[batch]
jobs = ["{job_file}"]
rescan_seconds = 0.5
memberdata_async_min_lines = 50
""")
    text = config.read_text(encoding="utf-8").replace(
        'genasync_url = "', f'insurability_service = "memberdata"\nmemberdata_url = "{base}{MEMBERDATA_PATH}"\n'
        f'memberdata_async_url = "{base}{MEMBERDATA_ASYNC_PATH}"\ngenasync_url = "', 1)
    config.write_text(text, encoding="utf-8")
    gateway = start_gateway(tmp_path, config, "--workers", "1")  # one process: the kill is a crash
    output = folder / "out" / "patients.result.csv"
    try:
        write_batch(folder / "in", "patients.csv", 120)
        wait_for(lambda: reached(folder, simulator_counters(simulator)), timeout=60, every=0.01, what=step)
        gateway.kill()
        checked(folder, simulator_counters(simulator))

        gateway = start_gateway(tmp_path, config, "--workers", "1")
        wait_for(output.exists, timeout=90, what="the output after the restart")
        wait_for(lambda: simulator_counters(simulator).get("pending_mda_answers", 1) == 0, timeout=30,
                 what="every MDA answer confirmed")
        final = simulator_counters(simulator)
        assert gateway.stop() == 0
    finally:
        gateway.stop()
        simulator.stop()
    assert final["memberdata_async.post"] == 1, final  # never posted twice, whatever the kill interrupted
    assert sum(v for k, v in final.items() if k.startswith("memberdata_async.posts.")) == 1
    assert final.get("memberdata.consult", 0) == 0  # and never asked line by line instead
    # each answer confirmed once: by the restart after it saw them again, or (a slow start) by the held confirm
    assert final["memberdata_async.confirmed.messages"] == 119
    rows = read_output(output)
    assert [r[3] for r in rows[1:]] == [f"LINE-{n}" for n in range(1, 121)]  # every line, once, in order
    assert (folder / "archive" / "patients.csv").exists()
    assert not (folder / "out" / ".patients.csv.job.json").exists()

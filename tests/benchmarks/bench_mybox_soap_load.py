"""Mybox's pages on a year of traffic while the SOAP front answers 32 clients (issue #16, point 5).

What is measured
----------------
1. A data folder gets ``bench_mybox.py``'s synthetic year (``--consultations``, ``--files``,
   ``--batch-runs``; same seed, same journal) and its users (``tests.web_support.start_mybox``
   makes admin / office / nurse, then stops);
2. the real gateway serves that folder as separate processes, ``serve --workers N`` (default 2:
   supervisor, front workers, singletons, the simulator in its own process; with ``--workers 1``
   one gateway process and the simulator beside it, see ``bench_soap_workers.py``);
3. one ``requests`` session logged in as admin asks bench_mybox's 22 pages, one at a time, in
   rounds: ``--repeat`` rounds with nothing else running (**quiet**), then ``--repeat`` rounds
   while ``--clients`` SOAP clients (default 32, in ``--processes`` load generator processes) call
   GetInsurability as fast as they can (**under load**); the SOAP load starts first (its warm-up)
   and lasts ``--soap-seconds``, and the script says if the pages' rounds outlasted it;
4. prints, per page, median and p95 quiet and under load, and PASS or OVER against
   ``--target-ms`` (default 200) on the p95 under load; then the SOAP load's calls/s and p50/p99
   and the CPU of the gateway's processes and of the simulator over it.

The browser (this process), the load generators, the gateway and the simulator share the
machine's cores: a page's time includes waiting for a core.

    .venv/bin/python -m tests.benchmarks.bench_mybox_soap_load                # about 3 minutes
    .venv/bin/python -m tests.benchmarks.bench_mybox_soap_load --workers 1 --repeat 5
    .venv/bin/python -m tests.benchmarks.bench_mybox_soap_load --profile-dir /tmp/spy   # py-spy, see below

``--profile-dir`` records every front worker with py-spy during the rounds under load (``--idle``:
every sample of every thread, waiting or not; and ``--gil``: only the thread holding the GIL) and
prints, for the dashboard's and the consultations' requests, where their threads' samples are: in
SQLite (the GIL released: running on a core or waiting for one), in the charts, in the template,
or in the rest of the Python (holding the GIL or waiting for it; the ``--gil`` samples tell which).
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.benchmarks.bench_mybox import SEED, USER, CpuShare, Page, measure, pages_for, populate
from tests.benchmarks.bench_soap_front import machine_facts, write_config
from tests.benchmarks.bench_soap_workers import Deployment, Point, _cmdline, run_point, start, stop
from tests.benchmarks.common import not_negative_int, positive_float, positive_int, progress
from tests.conftest import make_config
from tests.web_support import MyboxStack, login, start_mybox
from unified_messaging.invoicing.store import InvoicingStore
from unified_messaging.journal.store import Journal
from unified_messaging.web.context import PREFIX


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=positive_int, default=2)
    parser.add_argument("--clients", type=positive_int, default=32, help="SOAP clients (default: %(default)s)")
    parser.add_argument("--processes", type=positive_int, default=4, help="SOAP load generator processes")
    parser.add_argument("--soap-seconds", type=positive_float, default=90.0,
                        help="how long the SOAP load lasts after its warm-up (default: %(default)s)")
    parser.add_argument("--repeat", type=positive_int, default=10, help="rounds of pages per phase")
    parser.add_argument("--target-ms", type=float, default=200.0)
    parser.add_argument("--consultations", type=not_negative_int, default=100_000)
    parser.add_argument("--files", type=not_negative_int, default=2_000)
    parser.add_argument("--days", type=positive_int, default=365)
    parser.add_argument("--batch-runs", type=not_negative_int, default=500)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--profile-dir", type=Path, help="py-spy the front workers under load, into this folder")
    return parser.parse_args(argv)


VIEWS = {"dashboard": "dashboard (unified_messaging/web/views/traffic.py", "consultations":
         "consultations (unified_messaging/web/views/traffic.py"}
# The innermost frame of a sample says where it is; py-spy shows no C frames, so a call into sqlite3 is
# the store's frame that made it (SQLite runs with the GIL released; the --gil samples show the rest).
PLACES = (("SQLite (a store's call)", ("journal/store.py", "journal/search.py", "invoicing/store.py")),
          ("sqlite-utils' query (SQLite's steps, rows to dicts)", ("sqlite_utils/",)),
          ("template", ("jinja2/", "markupsafe/", "templates/")), ("charts", ("web/charts.py",)))


def start_profiles(deployment: Deployment, folder: Path) -> list[subprocess.Popen]:
    """Two py-spy recordings of each front worker, until stopped: every thread's samples, and the GIL's."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    folder.mkdir(parents=True, exist_ok=True)
    fronts = [pid for pid in deployment.gateway_pids() if " front" in _cmdline(pid)] or [deployment.gateway.pid]
    return [subprocess.Popen([spy, "record", "--nonblocking", "--threads", *mode, "--format", "raw", "-r", "200",
                              "-o", str(folder / f"{name}-pid{pid}.txt"), "-p", str(pid)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for pid in fronts for name, mode in (("wall", ["--idle"]), ("gil", ["--gil"]))]


def stop_profiles(recorders: list[subprocess.Popen]) -> None:
    for recorder in recorders:
        recorder.send_signal(subprocess.signal.SIGINT)  # py-spy writes its file on Ctrl-C
    for recorder in recorders:
        recorder.wait(timeout=60)


def profile_report(folder: Path) -> list[str]:
    """Per view, where its request threads' samples are: every sample (wall), and those holding the GIL."""
    counts: dict[tuple[str, str, str], int] = {}
    for path in folder.glob("*-pid*.txt"):
        kind = path.name.split("-")[0]
        for line in path.read_text(errors="replace").splitlines():
            stack, _, number = line.rpartition(" ")
            view = next((v for v, frame in VIEWS.items() if frame in stack), "SOAP and the rest")
            if not number.isdigit():
                continue
            leaf = stack.rsplit(";", 1)[-1]
            place = next((name for name, marks in PLACES if any(mark in leaf for mark in marks)), "other Python")
            counts[(view, kind, place)] = counts.get((view, kind, place), 0) + int(number)
    lines = []
    held_total = sum(n for (_, k, _), n in counts.items() if k == "gil")
    for view in VIEWS:
        for kind, what in (("wall", "every sample"), ("gil", "holding the GIL")):
            total = sum(n for (v, k, _), n in counts.items() if v == view and k == kind)
            if total:
                shares = ", ".join(f"{place} {counts.get((view, kind, place), 0) / total:.0%}"
                                   for place in [name for name, _ in PLACES] + ["other Python"])
                lines.append(f"  {view}, {what} ({total} samples): {shares}")
        held = sum(n for (v, k, _), n in counts.items() if v == view and k == "gil")
        if held_total:
            lines.append(f"  {view}: {held / held_total:.1%} of the front workers' GIL samples")
    return lines


def _served_config(workdir: Path, data_folder: Path) -> Path:
    """The configuration ``serve`` gets: start_mybox's data folder and quick simulator timings."""
    path = workdir / "unified-messaging.toml"
    write_config(path, {
        "data": {"folder": str(data_folder)},
        "simulator": {"genasync_acknowledgement_seconds": 0.5, "genasync_detailed_seconds": 1.5,
                      "genasync_settlement_seconds": 3.0, "genasync_min_get_interval_seconds": 0.0},
        "invoicing": {"poll_interval_seconds": 1.0, "rescan_seconds": 1.0, "repost_grace_seconds": 1.0},
        "folders": {"insurability": False},
    })
    return path


def report(quiet: list[Page], loaded: list[Page], soap: Point | None, args: argparse.Namespace,
           outlasted: bool) -> int:
    for key, value in machine_facts():
        print(f"{key:>18}: {value}")
    print(f"\nMybox pages, workers={args.workers}, quiet vs while {args.clients} SOAP clients call GetInsurability "
          f"({args.processes} load generator processes); {args.repeat} rounds each")
    print(f"{'page':<40} {'quiet p50':>9} {'quiet p95':>9} {'load p50':>9} {'load p95':>9} {'p95 x':>6}")
    over = 0
    for calm, busy in zip(quiet, loaded):
        if not busy.times or not calm.times:
            print(f"{busy.name:<40} {busy.error or calm.error or 'no time'}")
            over += 1
            continue
        verdict = "PASS" if busy.percentile_ms(0.95) <= args.target_ms else "OVER"
        over += verdict == "OVER"
        print(f"{busy.name:<40} {calm.median_ms:>9.1f} {calm.percentile_ms(0.95):>9.1f} {busy.median_ms:>9.1f} "
              f"{busy.percentile_ms(0.95):>9.1f} {busy.percentile_ms(0.95) / calm.percentile_ms(0.95):>6.1f} {verdict}")
    worst = max((p for p in loaded if p.times), key=lambda p: p.percentile_ms(0.95), default=None)
    if worst is not None:
        print(f"worst p95 under load: {worst.percentile_ms(0.95):.1f} ms ({worst.name}); target {args.target_ms:g} ms")
    if soap is not None:
        print(f"SOAP load: {len(soap.latencies)} calls, {soap.rate:.1f} calls/s, p50 {soap.ms(50):.1f} ms, "
              f"p99 {soap.ms(99):.1f} ms, errors {sum(soap.errors.values())}; gateway processes "
              f"{soap.gateway_cpu / soap.elapsed:.0%} of a core, simulator {soap.simulator_cpu / soap.elapsed:.0%}, "
              f"load generators {soap.client_cpu / soap.elapsed:.0%}, other {soap.other_cpu / soap.elapsed:.0%}")
    if outlasted:
        print("WARNING: the pages' rounds under load outlasted the SOAP load; raise --soap-seconds")
    return 1 if over or (soap is not None and soap.errors) or outlasted else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.getLogger("unified_messaging").addHandler(logging.NullHandler())
    logging.getLogger("unified_messaging").propagate = False
    workdir = Path(tempfile.mkdtemp(prefix="um-bench-mybox-soap-"))
    deployment = None
    soap: list[Point] = []
    try:
        config = make_config(workdir)
        progress(f"writing a year of traffic to {config.journal_path}")
        year = populate(config.data_folder, config.invoicing_root, config.journal_path, args)
        start_mybox(workdir).gateway.stop()  # the users, in the data folder's secure space
        progress(f"starting serve --workers {args.workers}")
        deployment = start(args.workers, _served_config(workdir, config.data_folder), workdir)
        served = MyboxStack(None, deployment.services_url.replace("/unified-messaging/services", PREFIX),
                            config.data_folder)
        session = login(served, USER)
        reader = Journal(config.journal_path)
        store = InvoicingStore(reader)
        quiet, loaded = (pages_for(year, reader, store, config.web.page_size) for _ in range(2))
        progress(f"{len(quiet)} pages, {args.repeat} quiet rounds")
        measure(session, served, quiet, 1, args.repeat, CpuShare())
        load_args = argparse.Namespace(processes=args.processes, warmup=3.0, duration=args.soap_seconds,
                                       profile_dir=None, profile_clients=0)
        load = threading.Thread(target=lambda: soap.append(run_point(deployment, "gateway", args.clients, load_args,
                                                                     workdir / "unified-messaging.toml")))
        load.start()
        time.sleep(load_args.warmup + 5)  # the load generators started, warmed up and measuring
        progress(f"{args.repeat} rounds under SOAP load")
        recorders = start_profiles(deployment, args.profile_dir) if args.profile_dir else []
        measure(session, served, loaded, 1, args.repeat, CpuShare())
        stop_profiles(recorders)
        outlasted = not load.is_alive()
        load.join()
        session.close()
        reader.close()
    finally:
        if deployment is not None:
            stop(deployment)
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{'load average':>18}: {os.getloadavg()}")
    if args.profile_dir:
        print("\n".join(["py-spy under load, the request threads of:", *profile_report(args.profile_dir)]))
    return report(quiet, loaded, soap[0] if soap else None, args, outlasted)


if __name__ == "__main__":
    sys.exit(main())

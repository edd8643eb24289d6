"""Soak benchmark: mixed traffic at once for a bounded time, memory sampled, every call accounted for.

What is run
-----------
``unified-messaging simulator`` (its own process: STS, GenericInsurability, GenAsync, every platform
check, answers signed, insurers answering within seconds) and ``unified-messaging serve`` against it
([upstream] mode = "remote", SQLite journal, toQuery and invoicing folders, Mybox), then for
``--minutes`` (default 10) all at once:

* SOAP: ``--clients`` (default 32) threads, each posting GetInsurability for test patients in a loop;
* toQuery: a request file of ``--folder-requests`` questions dropped every ``--folder-every`` seconds,
  each waited for until its answer's ``.ok``;
* invoicing: a good 920000 file dropped every ``--invoice-every`` seconds, each waited for until DONE;
* Mybox: one logged-in user loading the dashboard, the invoicing list, the consultations and a file's
  page in a loop.

The gateway's resident memory (``VmRSS`` of its process) is sampled every ``--sample`` seconds.

What it checks (exit status 1 when one fails)
---------------------------------------------
* no failure of any kind (HTTP error, SOAP fault, a toQuery file that went to ``error/``, a file that
  did not reach DONE);
* memory flat: after ``--warmup`` minutes, the last sample is less than 10 % above the first;
* every call in the journal: SOAP consultations made = ``consultations`` rows of interface ``soap``,
  toQuery questions asked = rows of interface ``folder``, invoicing files dropped = ``invoicing_files``
  rows, all DONE.

How to run
----------
From the checkout::

    .venv/bin/python tests/benchmarks/bench_soak.py                # 10 minutes
    .venv/bin/python tests/benchmarks/bench_soak.py --minutes 1 --warmup 0.3   # a quick look

Where the memory goes (``--probe``): the gateway is started through ``probed_serve.py``, which
writes the resident memory next to the Python heap (tracemalloc) and glibc's malloc figures every
``--sample`` seconds; with ``--tracemalloc FRAMES`` it also takes a tracemalloc snapshot at
``--snapshot-at`` minutes (default: the end of the warm-up) and at the end, and the script prints
the ``--top`` allocations that grew most between the two (``compare_to(..., "traceback")``).
tracemalloc slows the gateway down and costs memory of its own: its figures say where memory goes,
not how much a normal run uses. ``--gateway-env MALLOC_ARENA_MAX=2`` sets a variable for the
gateway's process only::

    .venv/bin/python tests/benchmarks/bench_soak.py --minutes 5 --tracemalloc 25 --probe-dir /tmp/soak-probe

This is a script, not a pytest test.
"""
from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import subprocess
import signal
import sys
import tempfile
import tracemalloc
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks.common import positive_float, positive_int, progress  # noqa: E402
from tests.invoicing_support import (  # noqa: E402
    CLI,
    GATEWAY_ENV,
    Process,
    _launch,
    remote_gateway_config,
    start_gateway,
    start_simulator,
    wait_for,
)
from tests.support import ACTION, insurability_body, soap_envelope  # noqa: E402
from tests.web_support import csrf_of  # noqa: E402
from unified_messaging.simulator.population import TEST_PATIENTS  # noqa: E402
from unified_messaging.simulator.sending_writer import build_sending  # noqa: E402

INSURED = [p for p in TEST_PATIENTS if p.scenario == "insured" and p.ssin]
TNS = "http://unified-messaging.be/ConsultMyCareNet/"
ADMIN, PASSWORD, ADMIN_SSIN = "soak-admin", "Soak-Admin-Passw0rd", "85073003328"


@dataclass
class Kind:
    """The calls of one kind of traffic: how many, how many failed (with a few reasons), their latencies."""

    name: str
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ok(self, seconds: float) -> None:
        with self.lock:
            self.latencies.append(seconds)

    def failed(self, reason: str) -> None:
        with self.lock:
            self.failures.append(reason[:200])

    @property
    def made(self) -> int:
        return len(self.latencies) + len(self.failures)

    def line(self, seconds: float) -> str:
        values = sorted(self.latencies)

        def at(fraction: float) -> float:
            return values[min(len(values) - 1, int(fraction * len(values)))] * 1000 if values else 0.0

        return (f"{self.name:<10} {self.made:>7} calls {len(self.failures):>4} failed  {self.made / seconds:7.1f}/s  "
                f"p50 {at(0.5):7.1f} ms  p95 {at(0.95):7.1f} ms  p99 {at(0.99):7.1f} ms")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def soap_client(url: str, kind: Kind, stop: threading.Event, number: int) -> None:
    session = requests.Session()
    n = number
    while not stop.is_set():
        patient = INSURED[n % len(INSURED)]
        n += 1
        body = soap_envelope(insurability_body(patient.ssin)).encode()
        started = time.perf_counter()
        try:
            answer = session.post(url, data=body, timeout=30,
                                  headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": ACTION})
            if answer.status_code == 200 and b"<Status>OK</Status>" in answer.content.replace(b"tns:", b""):
                kind.ok(time.perf_counter() - started)
            else:
                kind.failed(f"HTTP {answer.status_code}: {answer.text[:120]}")
        except requests.RequestException as exc:
            kind.failed(f"{type(exc).__name__}: {exc}")


def folder_request(count: int, reference: str) -> bytes:
    questions = "".join(
        f"<InsurabilityRequest><CareProvider><Nihii>81234530000</Nihii><Quality>labo</Quality></CareProvider>"
        f"<Ssin>{INSURED[i % len(INSURED)].ssin}</Ssin><PeriodStart>{date.today().isoformat()}</PeriodStart>"
        f"<Reference>{reference}-{i}</Reference></InsurabilityRequest>" for i in range(count))
    return (f'<?xml version="1.0" encoding="UTF-8"?><InsurabilityRequests xmlns="{TNS}">{questions}'
            f"</InsurabilityRequests>").encode()


def folder_feeder(root: Path, kind: Kind, stop: threading.Event, every: float, per_file: int,
                  asked: list[int]) -> None:
    n = 0
    while not stop.wait(every if n else 0.5):
        n += 1
        name = f"soak-{n:05d}.xml"
        (root / "toQuery" / name).write_bytes(folder_request(per_file, f"SOAK{n}"))
        (root / "toQuery" / f"{name}.ok").write_bytes(b"")
        asked.append(per_file)
        started = time.perf_counter()
        done = root / "queried" / f"soak-{n:05d}.answer.xml.ok"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not done.exists():
            if (root / "error" / f"{name}.reason.txt").exists():
                kind.failed(f"{name} went to error/")
                break
            time.sleep(0.05)
        else:
            if done.exists():
                answer = done.with_name(done.name.removesuffix(".ok")).read_bytes()
                if answer.count(b"<Status>OK</Status>") == per_file:
                    kind.ok(time.perf_counter() - started)
                else:
                    kind.failed(f"{name}: not every answer OK")
            else:
                kind.failed(f"{name}: no answer within 120 s")


def invoice_feeder(to_send: Path, kind: Kind, stop: threading.Event, every: float, dropped: list[str]) -> None:
    n = 0
    while not stop.wait(every if n else 1.0):
        n += 1
        name = f"SOAK-{n:05d}.txt"
        partial = to_send.parent / f".{name}"
        partial.write_bytes(build_sending(zone_204=f"2024050{n:07d}"))
        partial.rename(to_send / name)
        (to_send / f"{name}.ok").write_bytes(b"")
        dropped.append(name)


def mybox_visitor(base: str, kind: Kind, stop: threading.Event) -> None:
    session = requests.Session()
    page = session.get(base + "/login", timeout=30)
    session.post(base + "/login", data={"login": ADMIN, "password": PASSWORD, "csrf_token": csrf_of(page.text)},
                 timeout=30)
    paths = ["/", "/invoicing", "/insurability", "/invoicing/1"]
    n = 0
    while not stop.wait(0.5):
        path = paths[n % len(paths)]
        n += 1
        started = time.perf_counter()
        try:
            answer = session.get(base + path, timeout=30)
            if answer.status_code == 200 and "login-submit" not in answer.text:
                kind.ok(time.perf_counter() - started)
            elif answer.status_code == 404 and path == "/invoicing/1":
                continue  # no file yet
            else:
                kind.failed(f"{path}: HTTP {answer.status_code}")
        except requests.RequestException as exc:
            kind.failed(f"{path}: {type(exc).__name__}")


def create_admin(folder: Path, config: Path) -> None:
    """The secure space and one administrator, made with the command line as an operator does."""
    def um(group: str, *args: str, stdin: str | None = None) -> None:
        subprocess.run([CLI, group, "--config", str(config), *args], cwd=folder, input=stdin, text=True, check=True,
                       capture_output=True, env={**os.environ, **GATEWAY_ENV}, timeout=60)

    um("securespace", "create", "--name", "Soak lab", "--owner-name", "Olivia Owner", "--owner-ssin", ADMIN_SSIN,
       "--responsible-name", "Olivia Owner", "--responsible-ssin", ADMIN_SSIN)
    um("users", "add", ADMIN, "--name", "Soak Admin", "--ssin", ADMIN_SSIN, "--role", "administrator",
       "--password-stdin", stdin=PASSWORD + "\n")


def journal_counts(journal: Path) -> dict[str, int]:
    db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        counts = dict(db.execute("SELECT interface, count(*) FROM consultations GROUP BY interface").fetchall())
        counts["invoicing files"] = db.execute("SELECT count(*) FROM invoicing_files").fetchone()[0]
        counts["invoicing DONE"] = db.execute("SELECT count(*) FROM invoicing_files WHERE status = 'DONE'").fetchone()[0]
        return counts
    finally:
        db.close()


def start_probed_gateway(folder: Path, config: Path, probe: Path, frames: int, every: float,
                         env: dict[str, str]) -> Process:
    """``serve`` through ``probed_serve.py`` (the same command line, with the memory probe inside)."""
    arguments = [sys.executable, str(Path(__file__).with_name("probed_serve.py")), "serve", "--port", "0",
                 "--workers", "1", "--config", str(config)]
    return _launch(arguments, folder, folder / "gateway.log", r"serving (http://\S+)", env={
        **GATEWAY_ENV, "PYTHONPATH": str(ROOT), "UM_PROBE_DIR": str(probe), "UM_PROBE_FRAMES": str(frames),
        "UM_PROBE_EVERY": str(every), **env})


def take_snapshot(gateway: Process, probe: Path, number: int) -> None:
    """Ask the probed gateway for its tracemalloc snapshot ``number`` and wait until it is written."""
    os.kill(gateway.pid, signal.SIGUSR1)
    wait_for(lambda: (probe / f"snapshot-{number}.tracemalloc").exists(), timeout=300, every=0.5,
             what=f"tracemalloc snapshot {number}")


def probe_rows(probe: Path) -> list[dict[str, float]]:
    lines = (probe / "probe.tsv").read_text().splitlines()
    names = lines[0].split("\t")
    return [dict(zip(names, map(float, line.split("\t")))) for line in lines[1:] if line.count("\t") == len(names) - 1]


def report_probe(probe: Path, warmup_seconds: float, top: int) -> None:
    """The probe's figures after the warm-up (first and last sample), then the largest growths."""
    rows = [r for r in probe_rows(probe) if r["seconds"] >= warmup_seconds] or probe_rows(probe)[-1:]
    if rows:
        first, last = rows[0], rows[-1]
        print(f"probe from {first['seconds'] / 60:.1f} to {last['seconds'] / 60:.1f} min of the gateway process "
              f"(after the warm-up):")
        for name in ("rss_mb", "traced_mb", "malloc_used_mb", "malloc_free_mb", "mmapped_mb", "pymalloc_blocks",
                     "threads", "fds"):
            print(f"    {name:<16} {first[name]:>12.1f} -> {last[name]:>12.1f}  ({last[name] - first[name]:+.1f})")
    snapshots = sorted(probe.glob("snapshot-*.tracemalloc"), key=lambda p: int(p.stem.split("-")[1]))
    if len(snapshots) < 2:
        return
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen importlib._bootstrap*")]
    before, after = (tracemalloc.Snapshot.load(str(p)).filter_traces(ignore) for p in (snapshots[0], snapshots[-1]))
    total = sum(s.size for s in after.statistics("filename")) - sum(s.size for s in before.statistics("filename"))
    print(f"tracemalloc: traced {total / 1024:+.0f} KiB between {snapshots[0].name} and {snapshots[-1].name}; "
          f"top {top} growths by traceback (innermost frame, then the innermost frames of unified_messaging):")
    lines: list[str] = []
    for number, stat in enumerate(after.compare_to(before, "traceback")[:top], 1):
        ours = [f for f in stat.traceback if "/unified_messaging/" in f.filename][-2:]
        frames = [stat.traceback[-1], *[f for f in ours if f is not stat.traceback[-1]]]
        print(f"{number:>3}. {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks (now {stat.size / 1024:.0f} KiB)")
        for frame in frames:
            print(f"        {frame.filename.split('site-packages/')[-1].split('/unified_messaging/')[-1]}:{frame.lineno}")
        lines.append(f"#{number} {stat.size_diff / 1024:+.1f} KiB {stat.count_diff:+d} blocks\n"
                     + "\n".join(stat.traceback.format(most_recent_first=True)))
    (probe / "growth.txt").write_text("\n\n".join(lines) + "\n")
    print(f"    (full tracebacks: {probe / 'growth.txt'})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=positive_float, default=10.0)
    parser.add_argument("--warmup", type=positive_float, default=2.0, help="minutes before memory counts")
    parser.add_argument("--clients", type=positive_int, default=32)
    parser.add_argument("--folder-every", type=positive_float, default=5.0)
    parser.add_argument("--folder-requests", type=positive_int, default=10)
    parser.add_argument("--invoice-every", type=positive_float, default=10.0)
    parser.add_argument("--sample", type=positive_float, default=10.0)
    parser.add_argument("--probe", action="store_true", help="start the gateway with the memory probe")
    parser.add_argument("--tracemalloc", type=positive_int, metavar="FRAMES",
                        help="the probe with tracemalloc on, FRAMES frames per allocation (implies --probe)")
    parser.add_argument("--snapshot-at", type=positive_float, help="minutes (default: --warmup)")
    parser.add_argument("--top", type=positive_int, default=25)
    parser.add_argument("--probe-dir", type=Path, help="keep the probe's files there (default: dropped)")
    parser.add_argument("--gateway-env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    probing = args.probe or args.tracemalloc is not None or bool(args.gateway_env)
    gateway_env = dict(item.split("=", 1) for item in args.gateway_env)
    snapshot_at = (args.snapshot_at if args.snapshot_at is not None else args.warmup) * 60
    snapshots = 0
    kinds = {name: Kind(name) for name in ("soap", "toQuery", "invoicing", "mybox")}
    samples: list[tuple[float, float]] = []
    asked: list[int] = []
    dropped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="um-bench-soak-") as temporary:
        folder = Path(temporary)
        simulator = start_simulator(folder / "sim", timings=(1.0, 3.0, 6.0))
        config = remote_gateway_config(folder, simulator, poll_interval=2.0, rescan=5.0,
                                       extra='[logging]\nlevel = "WARNING"\n')
        config.write_text(config.read_text().replace("[folders]\ninsurability = false",
                                                     "[folders]\ninsurability = true\nrescan_seconds = 5.0"))
        create_admin(folder, config)
        probe = args.probe_dir or folder / "probe"
        launched = time.monotonic()  # the probe's clock starts with the process
        gateway = (start_probed_gateway(folder, config, probe, args.tracemalloc or 0, args.sample, gateway_env)
                   if probing else start_gateway(folder, config, "--workers", "1"))  # one process to measure
        data = folder / "um-data"
        stop = threading.Event()
        threads = [threading.Thread(target=soap_client, args=(gateway.url + "/ConsultMyCareNetSoap", kinds["soap"],
                                                              stop, n), daemon=True) for n in range(args.clients)]
        threads.append(threading.Thread(target=folder_feeder, daemon=True, args=(
            data / "insurability", kinds["toQuery"], stop, args.folder_every, args.folder_requests, asked)))
        threads.append(threading.Thread(target=invoice_feeder, daemon=True, args=(
            data / "invoicing" / "toSend", kinds["invoicing"], stop, args.invoice_every, dropped)))
        mybox = gateway.url.replace("/services", "/mybox")
        threads.append(threading.Thread(target=mybox_visitor, args=(mybox, kinds["mybox"], stop), daemon=True))
        try:
            wait_for(lambda: (data / "insurability" / "toQuery").is_dir(), what="the toQuery folder")
            started = time.monotonic()
            for thread in threads:
                thread.start()
            progress(f"soak: {args.minutes} min, {args.clients} SOAP clients, gateway pid {gateway.pid}")
            while (elapsed := time.monotonic() - started) < args.minutes * 60:
                if args.tracemalloc and not snapshots and elapsed >= snapshot_at:
                    snapshots += 1
                    take_snapshot(gateway, probe, snapshots)
                    progress(f"tracemalloc snapshot {snapshots} taken")
                samples.append((elapsed, rss_mb(gateway.pid)))
                progress(f"{elapsed / 60:5.1f} min: RSS {samples[-1][1]:.1f} MB, SOAP {kinds['soap'].made} calls "
                         f"({len(kinds['soap'].failures)} failed), toQuery {kinds['toQuery'].made}, "
                         f"invoicing {len(dropped)}, Mybox {kinds['mybox'].made}")
                time.sleep(min(args.sample, max(0.0, args.minutes * 60 - elapsed)))
            samples.append((time.monotonic() - started, rss_mb(gateway.pid)))
            if args.tracemalloc:
                snapshots += 1
                take_snapshot(gateway, probe, snapshots)
            stop.set()
            for thread in threads:
                thread.join(timeout=150)
            seconds = time.monotonic() - started
            journal = data / "journal.sqlite"
            try:
                wait_for(lambda: journal_counts(journal)["invoicing DONE"] == len(dropped), timeout=120, every=1.0,
                         what="every invoicing file DONE")
            except AssertionError as exc:
                kinds["invoicing"].failed(str(exc))
            counts = journal_counts(journal)
        finally:
            gateway.stop()
            simulator.stop()
        if probing:
            report_probe(probe, started - launched + args.warmup * 60, args.top)
    kinds["invoicing"].latencies.extend([0.0] * counts["invoicing DONE"])  # counted as calls, not timed here

    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPU, Python "
          f"{platform.python_version()}, {platform.system()} {platform.release()}; load {os.getloadavg()}")
    print(f"date: {datetime.now().astimezone().isoformat(timespec='seconds')}; {seconds / 60:.1f} minutes")
    for kind in kinds.values():
        print(kind.line(seconds) if kind.name != "invoicing" else
              f"invoicing  {len(dropped):>7} files dropped, {counts['invoicing DONE']} DONE")
        for reason in kind.failures[:5]:
            print(f"    failure: {reason}")
    after = [mb for at, mb in samples if at >= args.warmup * 60]
    growth = (after[-1] - after[0]) / after[0] * 100 if len(after) >= 2 else 0.0
    print(f"memory (VmRSS, MB, every {args.sample:.0f} s): " + " ".join(f"{mb:.0f}" for _, mb in samples))
    print(f"memory after {args.warmup} min of warm-up: {after[0]:.1f} -> {after[-1]:.1f} MB ({growth:+.1f} %), "
          f"min {min(after):.1f}, max {max(after):.1f}" if after else "memory: no sample after the warm-up")
    journal_ok = {"soap": (kinds["soap"].made, counts.get("soap", 0)),
                  "toQuery": (sum(asked), counts.get("folder", 0)),
                  "invoicing": (len(dropped), counts["invoicing files"])}
    for name, (made, recorded) in journal_ok.items():
        print(f"journal: {name} calls made {made}, recorded {recorded}: {'same' if made == recorded else 'DIFFERENT'}")
    failed = sum(len(k.failures) for k in kinds.values())
    verdict = failed == 0 and growth < 10.0 and all(m == r for m, r in journal_ok.values())
    print(f"verdict: {'PASS' if verdict else 'FAIL'} ({failed} failures, memory {growth:+.1f} %)")
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())

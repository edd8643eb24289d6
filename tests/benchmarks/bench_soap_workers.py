"""GetInsurability through the gateway with ``--workers 1`` and ``--workers 2``, beside direct calls.

What is measured
----------------
For each ``--workers`` value (default 1 and 2) the script starts the real gateway as separate
processes, with the built-in simulator **out of process** in both cases, as the real platform is:

* ``workers = 1``: the simulator as ``unified-messaging simulator`` (its own process), then one
  gateway process (``Gateway`` started exactly as ``serve --workers 1`` starts it, but given the
  simulator's address, as the supervisor gives it to its children: this script re-runs itself
  with ``--serve-one``);
* ``workers = 2``: ``unified-messaging serve --workers 2``: the supervisor, two front workers, the
  singletons process and the simulator process it starts itself.

For each concurrency (default 1, 8, 32 clients) it measures ``direct`` (the gateway's own
upstream client straight to the simulator, signed and checked as the gateway does: see
``bench_soap_front.DirectTarget``) and ``gateway`` (zeep on ``ConsultMyCareNetSoap``), a warm-up
then ``--duration`` seconds each. One Python load generator saturates a core by itself, so from 2
clients on the clients run in ``--processes`` load generator **processes** (multiprocessing,
clients spread evenly over them, threads inside each); the output says how many.

Figures per point: calls/s, p50/p99, the latency the gateway adds, and the CPU (100 % = one
core) of the gateway's processes (supervisor and children, the simulator's process excluded),
of the simulator, of the load generators and of the rest of the machine, read from
``/proc/PID/stat`` and ``/proc/stat``; for the gateway rows also the gateway's CPU per call
(gateway CPU time over the calls answered). Every answer is checked; any error makes the exit
status 1.

``--profile-dir DIR`` also records py-spy (raw format) on every gateway process during the
``--profile-clients`` gateway point of each workers value (py-spy must be installed; the
breakdown by area is printed by ``profile_breakdown.py``).

Run from the checkout::

    .venv/bin/python -m tests.benchmarks.bench_soap_workers                 # about 4 minutes
    .venv/bin/python -m tests.benchmarks.bench_soap_workers --workers 2 --concurrency 32 --duration 20
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.benchmarks.bench_soap_front import (
    DirectTarget, GatewayTarget, _cycle, _die_with_parent, _safe_call, gateway_settings, insured_ssins,
    machine_busy_cpu_seconds, machine_facts, percentile, process_cpu_seconds, write_config)
from tests.benchmarks.common import positive_float, positive_int, progress

SERVING_LINE = re.compile(r"serving (http://\S+/unified-messaging/services)")
SIMULATOR_LINE = re.compile(r"simulated MyCareNet platform at (http://\S+)")
READY_LINE = "Press Ctrl-C to stop."


class BenchmarkError(Exception):
    """The benchmark cannot go on (a process did not start or stopped)."""


# --------------------------------------------------------------------------- processes


@dataclass
class Deployment:
    """The processes of one workers setting: the gateway's (a tree) and the simulator's."""

    workers: int
    gateway: subprocess.Popen
    simulator: subprocess.Popen | None  # started here (workers = 1); else the supervisor's child
    services_url: str
    simulator_url: str
    logs: list[Path]

    def gateway_pids(self) -> list[int]:
        """The gateway process and its descendants, the simulator excluded."""
        pids = [self.gateway.pid, *descendants(self.gateway.pid)]
        return [pid for pid in pids if "simulator" not in _cmdline(pid).split()]

    def simulator_pid(self) -> int:
        if self.simulator is not None:
            return self.simulator.pid
        for pid in descendants(self.gateway.pid):
            if "simulator" in _cmdline(pid).split():
                return pid
        raise BenchmarkError("the supervisor has no simulator process")


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat[stat.rindex(")") + 2:].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _cli() -> list[str]:
    beside = Path(sys.executable).with_name("unified-messaging")
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "unified_messaging.cli"]


def _spawn(command: list[str], workdir: Path, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(command, cwd=workdir, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=_die_with_parent, env=env)


def _wait_for(process: subprocess.Popen, log: Path, pattern: re.Pattern[str], timeout: float = 90) -> str:
    """The first group of ``pattern`` once ``READY_LINE`` follows it in ``log``."""
    deadline = time.monotonic() + timeout
    while True:
        text = log.read_text(encoding="utf-8", errors="replace")
        found = pattern.search(text)
        if found and READY_LINE in text[found.end():]:
            return found.group(1)
        if process.poll() is not None:
            raise BenchmarkError(f"{process.args[:3]} stopped at start-up:\n{text[-3000:]}")
        if time.monotonic() > deadline:
            raise BenchmarkError(f"{process.args[:3]} not ready after {timeout:g} s:\n{text[-3000:]}")
        time.sleep(0.05)


def start(workers: int, config_path: Path, workdir: Path) -> Deployment:
    config = ["--config", str(config_path)]
    if workers > 1:
        log = workdir / "gateway.log"
        gateway = _spawn([*_cli(), "serve", "--port", "0", "--workers", str(workers), *config], workdir, log)
        services = _wait_for(gateway, log, SERVING_LINE)
        simulator_url = SIMULATOR_LINE.search(log.read_text(encoding="utf-8", errors="replace")).group(1)
        return Deployment(workers, gateway, None, services, simulator_url, [log])
    sim_log, log = workdir / "simulator.log", workdir / "gateway.log"
    simulator = _spawn([*_cli(), "simulator", *config, "--port", "0"], workdir, sim_log)
    simulator_url = _wait_for(simulator, sim_log, SIMULATOR_LINE)
    # The child runs this module from the work folder: give it the checkout, whatever the caller's cwd.
    checkout = str(Path(__file__).resolve().parents[2])
    python_path = os.pathsep.join(filter(None, [checkout, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "UM_SIMULATOR_URL": simulator_url, "PYTHONPATH": python_path}
    gateway = _spawn([sys.executable, "-m", "tests.benchmarks.bench_soap_workers", "--serve-one", str(config_path)],
                     workdir, log, env)
    try:
        services = _wait_for(gateway, log, SERVING_LINE)
    except BaseException:
        simulator.terminate()
        raise
    return Deployment(1, gateway, simulator, services, simulator_url, [log, sim_log])


def stop(deployment: Deployment) -> None:
    for process in (deployment.gateway, deployment.simulator):
        if process is None or process.poll() is not None:
            continue
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def serve_one(config_path: str) -> int:
    """``serve --workers 1`` (one process: front and singletons) on the simulator at $UM_SIMULATOR_URL."""
    from unified_messaging.config import load_config
    from unified_messaging.gateway import Gateway
    from unified_messaging.logs import setup_logging
    from unified_messaging.memory import limit_malloc_arenas
    from unified_messaging.supervisor import SIMULATOR_ENV

    config = load_config(config_path).replace("server", port=0, workers=1)
    setup_logging(config.logging.level, config.logging.format)
    limit_malloc_arenas(config.server.malloc_arena_max)
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    gateway = Gateway(config, simulator_url=os.environ[SIMULATOR_ENV])
    gateway.start()
    print(f"serving {gateway.services_url}\n{READY_LINE}", file=sys.stderr, flush=True)
    stopping.wait()
    gateway.stop()
    return 0


# --------------------------------------------------------------------------- load generator processes


@dataclass
class Share:
    """What one load generator process brings back."""

    latencies: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    elapsed: float = 0.0
    cpu: float = 0.0


def _load_process(kind: str, where: str, config_path: str, clients: int, first: int, warmup: float,
                  duration: float, barrier, results) -> None:
    """One load generator: ``clients`` threads calling ``kind`` (gateway | direct)."""
    from unified_messaging.config import load_config

    target = GatewayTarget(where) if kind == "gateway" else DirectTarget(where, load_config(config_path))
    target.prepare(clients)
    ssins = insured_ssins()
    share = Share()
    lock = threading.Lock()
    window = {"end": 0.0}

    def opened() -> None:
        barrier.wait()  # every process has warmed up: the measured window opens
        window["start"] = time.perf_counter()
        window["end"] = window["start"] + duration

    local = threading.Barrier(clients, action=opened)

    def work(index: int) -> None:
        call = target.caller(index)
        patients = _cycle(ssins, start=first + index)
        until = time.perf_counter() + warmup
        while time.perf_counter() < until:
            _safe_call(call, next(patients))
        local.wait()
        latencies, errors = [], Counter()
        while time.perf_counter() < window["end"]:
            started = time.perf_counter()
            outcome = _safe_call(call, next(patients))
            if outcome is None:
                latencies.append(time.perf_counter() - started)
            else:
                errors[outcome] += 1
        with lock:
            share.latencies.extend(latencies)
            share.errors.update(errors)

    cpu0 = os.times()
    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cpu1 = os.times()
    share.elapsed = time.perf_counter() - window["start"]
    share.cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)  # warm-up included: an upper bound
    target.close()
    results.put(share)


@dataclass
class Point:
    workers: int
    target: str
    clients: int
    processes: int
    latencies: list[float]
    errors: Counter
    elapsed: float
    gateway_cpu: float  # CPU seconds over the window
    simulator_cpu: float
    other_cpu: float
    client_cpu: float

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed

    def ms(self, percent: float) -> float:
        return percentile(self.latencies, percent) * 1000

    @property
    def cpu_ms_per_call(self) -> float:
        return self.gateway_cpu * 1000 / max(len(self.latencies), 1)


def run_point(deployment: Deployment, kind: str, clients: int, args: argparse.Namespace,
              config_path: Path) -> Point:
    processes = 1 if clients == 1 else min(args.processes, clients)
    where = f"{deployment.services_url}/ConsultMyCareNetSoap?wsdl" if kind == "gateway" else deployment.simulator_url
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(processes + 1), context.Queue()
    spread = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    starts = [sum(spread[:i]) for i in range(processes)]
    workers = [context.Process(target=_load_process, daemon=True, args=(
        kind, where, str(config_path), spread[i], starts[i], args.warmup, args.duration, barrier, results))
        for i in range(processes)]
    for worker in workers:
        worker.start()
    barrier.wait(timeout=120)
    gateway_pids, simulator_pid = deployment.gateway_pids(), deployment.simulator_pid()
    gateway0 = sum(process_cpu_seconds(pid) for pid in gateway_pids)
    simulator0, machine0, wall0 = process_cpu_seconds(simulator_pid), machine_busy_cpu_seconds(), time.perf_counter()
    spy = _profile(deployment, kind, clients, args, gateway_pids)
    shares = [results.get(timeout=args.duration + 300) for _ in workers]
    wall = time.perf_counter() - wall0
    gateway_cpu = sum(process_cpu_seconds(pid) for pid in gateway_pids) - gateway0
    simulator_cpu = process_cpu_seconds(simulator_pid) - simulator0
    machine = machine_busy_cpu_seconds() - machine0
    for worker in workers:
        worker.join()
    for process in spy:
        process.wait()
    client_cpu = sum(s.cpu for s in shares) * wall / (args.warmup + wall)  # the window's part, roughly
    return Point(deployment.workers, kind, clients, processes,
                 latencies=[x for s in shares for x in s.latencies],
                 errors=sum((s.errors for s in shares), Counter()), elapsed=max(s.elapsed for s in shares),
                 gateway_cpu=gateway_cpu, simulator_cpu=simulator_cpu, client_cpu=client_cpu,
                 other_cpu=max(0.0, machine - gateway_cpu - simulator_cpu - client_cpu))


def _profile(deployment: Deployment, kind: str, clients: int, args: argparse.Namespace,
             pids: list[int]) -> list[subprocess.Popen]:
    if not args.profile_dir or kind != "gateway" or clients != args.profile_clients:
        return []
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    folder = Path(args.profile_dir)
    folder.mkdir(parents=True, exist_ok=True)
    seconds = str(max(1, int(args.duration) - 1))
    fronts = [pid for pid in pids if " front" in _cmdline(pid)] if deployment.workers > 1 else [deployment.gateway.pid]
    return [subprocess.Popen([spy, "record", "--nonblocking", "--gil", "--format", "raw", "-d", seconds, "-r", "100",
                              "-o", str(folder / f"workers{deployment.workers}-pid{pid}.txt"), "-p", str(pid)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for pid in fronts]


# --------------------------------------------------------------------------- report


def report(points: list[Point], processes: int, markdown: bool) -> None:
    cores = os.cpu_count() or 1
    print("\nGetInsurability, simulator out of process; CPU 100 % = one core; "
          f"load generators: 1 process at 1 client, else {processes} processes (multiprocessing), threads inside")
    head = (f"{'workers':>7} {'clients':>7} {'target':<8} {'calls':>6} {'calls/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
            f"{'+p50':>6} {'+p99':>7} {'gw CPU':>7} {'gw ms/call':>10} {'sim CPU':>7} {'load CPU':>8} "
            f"{'other':>6} {'errors':>6}")
    print(head)
    direct = {(p.workers, p.clients): p for p in points if p.target == "direct"}
    rows = []
    for p in points:
        base = direct.get((p.workers, p.clients)) if p.target == "gateway" else None
        added = (f"{p.ms(50) - base.ms(50):+6.1f} {p.ms(99) - base.ms(99):+7.1f}" if base else f"{'-':>6} {'-':>7}")
        per_call = f"{p.cpu_ms_per_call:10.2f}" if p.target == "gateway" else f"{'-':>10}"
        print(f"{p.workers:>7} {p.clients:>7} {p.target:<8} {len(p.latencies):>6} {p.rate:>8.1f} {p.ms(50):>7.1f} "
              f"{p.ms(99):>7.1f} {added} {p.gateway_cpu / p.elapsed:>7.0%} {per_call} "
              f"{p.simulator_cpu / p.elapsed:>7.0%} {p.client_cpu / p.elapsed:>8.0%} {p.other_cpu / p.elapsed:>6.0%} "
              f"{sum(p.errors.values()):>6}")
        if base:
            rows.append((p, base))
    print("\nratios: gateway calls/s / direct calls/s at the same clients and workers")
    for p, base in rows:
        print(f"  workers={p.workers} clients={p.clients}: {p.rate / base.rate:.2f} "
              f"(product CPU, gateway + simulator: {(p.gateway_cpu + p.simulator_cpu) / p.elapsed:.2f} cores of {cores})")
    if markdown:
        print("\n| workers | clients | direct calls/s | gateway calls/s | ratio | direct p50 / p99 ms | gateway p50 / p99 ms "
              "| added p50 / p99 ms | gateway CPU per call | product CPU (cores) |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for p, base in rows:
            print(f"| {p.workers} | {p.clients} | {base.rate:.0f} | {p.rate:.0f} | {p.rate / base.rate:.2f} | "
                  f"{base.ms(50):.1f} / {base.ms(99):.1f} | {p.ms(50):.1f} / {p.ms(99):.1f} | "
                  f"{p.ms(50) - base.ms(50):+.1f} / {p.ms(99) - base.ms(99):+.1f} | {p.cpu_ms_per_call:.2f} ms | "
                  f"{(p.gateway_cpu + p.simulator_cpu) / p.elapsed:.2f} |")
    for p in points:
        for message, count in p.errors.most_common(5):
            print(f"ERROR workers={p.workers} clients={p.clients} {p.target}: {count} x {message}", file=sys.stderr)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=lambda t: [int(x) for x in t.split(",")], default=[1, 2])
    parser.add_argument("--concurrency", type=lambda t: [int(x) for x in t.split(",")], default=[1, 8, 32])
    parser.add_argument("--targets", type=lambda t: t.split(","), default=["direct", "gateway"])
    parser.add_argument("--processes", type=positive_int, default=4, help="load generator processes (from 2 clients)")
    parser.add_argument("--duration", type=positive_float, default=8.0)
    parser.add_argument("--warmup", type=positive_float, default=2.0)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--profile-dir")
    parser.add_argument("--profile-clients", type=positive_int, default=8)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--serve-one", metavar="CONFIG", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_one:
        return serve_one(args.serve_one)
    for key, value in machine_facts():
        print(f"{key:>18}: {value}")
    print(f"{'load average':>18}: {os.getloadavg()}")
    points: list[Point] = []
    with tempfile.TemporaryDirectory(prefix="um-bench-workers-") as tmp:
        for workers in args.workers:
            workdir = Path(tmp) / f"workers-{workers}"
            workdir.mkdir()
            config_path = workdir / "unified-messaging.toml"
            write_config(config_path, gateway_settings(workdir / "um-data", args.latency_ms, args.set))
            progress(f"workers={workers}: starting")
            deployment = start(workers, config_path, workdir)
            try:
                for clients in args.concurrency:
                    for kind in args.targets:
                        point = run_point(deployment, kind, clients, args, config_path)
                        points.append(point)
                        progress(f"workers={workers} clients={clients} {kind}: {point.rate:.1f} calls/s, "
                                 f"p50 {point.ms(50):.1f} ms, errors {sum(point.errors.values())}")
            finally:
                stop(deployment)
    report(points, args.processes, args.markdown)
    print(f"{'load average':>18}: {os.getloadavg()} (end)")
    return 1 if any(p.errors for p in points) else 0


if __name__ == "__main__":
    sys.exit(main())

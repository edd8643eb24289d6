"""Benchmark of the batch.properties batch runner against the built-in simulator.

What is measured
----------------
For each simulated upstream latency (default 0 and 50 ms) the script starts the built-in simulator
in **a process of its own** (as the real platform is remote, and as ``serve --workers 2`` runs it;
``--simulator-threads`` worker threads, default 64, so that the upstream itself does not cap the
lines in flight: the real platform answers many calls at once), then builds one gateway service in
this process (``Gateway(config, simulator_url=...).open_service()``: journal, signed upstream
client with its STS token, security always on), then for each parallelism (default 1, 8, 32)
runs a fresh job on one CSV file of ``--lines`` lines (default 10,000; insured test patients in
turn) with ``BatchRunner``, exactly what ``unified-messaging batch run`` does: CSV reading, one
journalled consultation per line through the core service, ordered output written with fsyncs,
archiving.

Figures per point: wall time, lines per second, CPU time per line of this process (the runner and
the gateway's core: user + system CPU over the run divided by the lines) and of the simulator's
process, apart. Every output line is checked (``status=OK``, in input order); any other answer
makes the script exit with status 1.

How to run
----------
From the checkout::

    .venv/bin/python -m tests.benchmarks.bench_batch                  # all six points
    .venv/bin/python -m tests.benchmarks.bench_batch --lines 2000 --latency-ms 50 --parallel 8 32

This is a script, not a pytest test.
"""
from __future__ import annotations

import argparse
import csv
import logging
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

from tests.benchmarks.bench_soap_front import process_cpu_seconds
from unified_messaging.config import Config, config_from_dict
from unified_messaging.gateway import Gateway
from unified_messaging.insurability.batch import BatchRunner
from unified_messaging.insurability.batch_job import load_batch_job
from unified_messaging.secrets import resolve_secret
from unified_messaging.simulator.standalone import StandaloneSettings, StandaloneSimulator
from unified_messaging.simulator.population import TEST_PATIENTS

log = logging.getLogger(__name__)


def make_job(folder: Path, lines: int, parallel: int) -> Path:
    for name in ("in", "out", "archive", "error"):
        (folder / name).mkdir(parents=True)
    (folder / "batch.properties").write_text(
        "mycarenet.connection=SSO\ninput.folder=in\noutput.folder=out\narchive.folder=archive\n"
        f"error.folder=error\ncareprovider.nihii=81234530000\ncareprovider.quality=labo\nmax.parallel={parallel}\n",
        encoding="iso-8859-1")
    insured = [p.ssin for p in TEST_PATIENTS if p.scenario == "insured"]
    rows = [f"{insured[i % len(insured)]};2025-10-01;B{i:06d}" for i in range(lines)]
    (folder / "in" / "bench.csv").write_text("ssin;period_start;reference\n" + "\n".join(rows) + "\n")
    return folder / "batch.properties"


def check(output: Path, lines: int) -> None:
    rows = list(csv.reader(output.open(newline=""), delimiter=";"))[1:]
    bad = [r for i, r in enumerate(rows) if r[2] != f"B{i:06d}" or r[3] != "OK"]
    if len(rows) != lines or bad:
        print(f"ERROR: {len(rows)} output lines, {len(bad)} wrong, e.g. {bad[:1]}", file=sys.stderr)
        sys.exit(1)


def _simulator(config: Config, threads: int, pipe) -> None:
    """The simulator's process: serve until the benchmark closes its end of the pipe."""
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    password = resolve_secret(config.licence.password, key="[licence] password",
                              data_folder=config.data_folder).value
    simulator = StandaloneSimulator(StandaloneSettings(
        data_folder=config.data_folder, licences={config.licence.username: password},
        latency_ms=config.simulator.latency_ms, threads=threads)).start()
    pipe.send(simulator.url)
    try:
        pipe.recv()
    except EOFError:
        pass
    simulator.stop()


def start_simulator(config: Config, threads: int) -> tuple[multiprocessing.Process, str, object]:
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=_simulator, args=(config, threads, theirs), daemon=True)
    process.start()
    theirs.close()
    if not ours.poll(120):
        process.kill()
        raise SystemExit("the simulator did not start within 120 s")
    return process, ours.recv(), ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=int, nargs="+", default=[0, 50])
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--simulator-threads", type=int, default=64)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # the simulator queues at 32: expected
    print(f"simulator: its own process, {args.simulator_threads} threads; load average {os.getloadavg()}")
    print(f"{'latency ms':>10} {'parallel':>8} {'lines':>7} {'wall s':>8} {'lines/s':>9} {'CPU ms/line':>12} "
          f"{'sim CPU ms/line':>15}")
    results = []
    with tempfile.TemporaryDirectory(prefix="um-bench-batch-") as tmp:
        for latency in args.latency_ms:
            config = config_from_dict({"data": {"folder": f"{tmp}/data"}, "simulator": {"latency_ms": latency},
                                       "logging": {"level": "WARNING"}}, source="bench")
            simulator, url, pipe = start_simulator(config, args.simulator_threads)
            gateway = Gateway(config, simulator_url=url)
            service = gateway.open_service()
            try:
                for parallel in args.parallel:
                    folder = Path(tmp) / f"job-{latency}-{parallel}"
                    job = load_batch_job(make_job(folder, args.lines, parallel))
                    cpu0, sim0, wall0 = os.times(), process_cpu_seconds(simulator.pid), time.perf_counter()
                    summary = BatchRunner(job, service, max_parallel=parallel).run()
                    wall = time.perf_counter() - wall0
                    cpu1, sim1 = os.times(), process_cpu_seconds(simulator.pid)
                    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
                    if not summary.complete:
                        print(summary.describe(), file=sys.stderr)
                        sys.exit(1)
                    check(job.output_folder / "bench.result.csv", args.lines)
                    row = (latency, parallel, args.lines, wall, args.lines / wall, cpu * 1000 / args.lines,
                           (sim1 - sim0) * 1000 / args.lines)
                    results.append(row)
                    print(f"{row[0]:>10} {row[1]:>8} {row[2]:>7} {row[3]:>8.1f} {row[4]:>9.0f} {row[5]:>12.2f} "
                          f"{row[6]:>15.2f}", flush=True)
            finally:
                gateway.stop()
                pipe.close()
                simulator.join(30)
    print("\n| simulated latency | parallelism | lines | wall time | lines/s | gateway CPU per line | simulator CPU per line |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for latency, parallel, lines, wall, rate, cpu, sim in results:
        print(f"| {latency} ms | {parallel} | {lines:,} | {wall:.1f} s | {rate:.0f} | {cpu:.2f} ms | {sim:.2f} ms |")


if __name__ == "__main__":
    main()

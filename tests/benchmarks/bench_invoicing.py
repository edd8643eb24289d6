"""Benchmark of the eFact invoicing folders through the real processes.

What is measured
----------------
``unified-messaging simulator`` (a process of its own: GenAsync mailbox, STS, every platform check,
answers signed) and ``unified-messaging serve`` ([upstream] mode = "remote" pointing at it, the way
an integrator runs against the real platform) are started as two processes.  The insurers' answers
are pushed out of the way (acknowledgement after an hour) so that only the sending path is timed:
``.ok`` marker written -> claimed, validated and hashed (one streaming pass), journalled, deflated,
base64'd, signed (WS-Security with the STS token), posted, TAck verified and stored.

* **.ok to TAck, single files**: ``--singles`` files (default 50) dropped one at a time, each after the
  previous one's TAck; the time is from the ``.ok`` marker's creation (its ``st_mtime``) to the TAck
  file appearing in ``probative-values/`` (its ``st_mtime``: written just before the atomic rename)
  and, as a cross-check, to the moment the gateway recorded the TAck in its journal
  (``invoicing_tacks.at``, the gateway's clock on the same machine): p50, p95, p99.
* **burst**: ``--burst`` small files (default 1,000) written to ``toSend``, then their markers as fast
  as possible; files per minute = files / (last TAck recorded - first marker written).
* **50 MB file**: the gateway's peak resident memory (``VmHWM``) before and after one 50 MB sending,
  and its .ok-to-TAck time.  Run first, on a fresh gateway, so the peak is the big file's.

The simulator's counters are checked at the end: every file posted exactly once.

How to run
----------
From the checkout (about 2 minutes)::

    .venv/bin/python tests/benchmarks/bench_invoicing.py
    .venv/bin/python tests/benchmarks/bench_invoicing.py --singles 200 --burst 1000 --big-mb 50
    .venv/bin/python tests/benchmarks/bench_invoicing.py --singles 200 --burst 0 --big-mb 0  # singles only

``--rescan`` sets ``[invoicing] rescan_seconds`` (default 10 s): a pickup that waited for the rescan
instead of acting on the file-system event shows up as seconds, not milliseconds.

This is a script, not a pytest test.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.invoicing_support import (  # noqa: E402
    remote_gateway_config,
    simulator_counters,
    start_gateway,
    start_simulator,
    wait_for,
)
from unified_messaging.simulator.sending_writer import build_sending, spec_for_size, write_sending  # noqa: E402
from unified_messaging.journal.store import Journal  # noqa: E402


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


class Tacks:
    """The TAck times the gateway recorded, read from its journal."""

    def __init__(self, journal: Path) -> None:
        self.journal = journal

    def at(self) -> dict[str, float]:
        if not self.journal.exists():
            return {}
        handle = Journal(self.journal)
        try:
            rows = handle.db.query("SELECT input_reference, at FROM invoicing_tacks")
            return {r["input_reference"]: datetime.fromisoformat(r["at"]).timestamp() for r in rows}
        except Exception:  # the table is not there yet
            return {}
        finally:
            handle.close()


def drop(to_send: Path, name: str, data: bytes | None = None) -> float:
    """The file, then its marker; returns the marker's creation time (its ``st_mtime``)."""
    if data is not None:
        (to_send / name).write_bytes(data)
    marker = to_send / f"{name}.ok"
    with open(marker, "wb") as stream:
        created = os.fstat(stream.fileno()).st_mtime
    return created


def tack_file_time(probative: Path, stem: str) -> float | None:
    """When the TAck file of ``stem`` appeared in ``probative-values/`` (its ``st_mtime``), if it did."""
    for path in probative.glob(f"{stem}_tack_*.xml"):
        if not path.name.endswith(".xades.xml"):
            return path.stat().st_mtime
    return None


def figures(values: list[float]) -> str:
    return (f"p50 {percentile(values, 0.5) * 1000:.0f} ms, p95 {percentile(values, 0.95) * 1000:.0f} ms, "
            f"p99 {percentile(values, 0.99) * 1000:.0f} ms, max {max(values) * 1000:.0f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--singles", type=int, default=50)
    parser.add_argument("--burst", type=int, default=1000, help="0 skips the burst")
    parser.add_argument("--big-mb", type=int, default=50, help="0 skips the big file")
    parser.add_argument("--rescan", type=float, default=10.0, help="[invoicing] rescan_seconds")
    args = parser.parse_args()
    singles: list[float] = []
    journalled: list[float] = []
    size = big_seconds = before = after = burst_seconds = markers_written = 0.0
    with tempfile.TemporaryDirectory(prefix="um-bench-invoicing-") as temporary:
        folder = Path(temporary)
        simulator = start_simulator(folder, timings=(3600.0, 3600.0, 3600.0))
        config = remote_gateway_config(folder, simulator, poll_interval=15.0, rescan=args.rescan,
                                       extra='[logging]\nlevel = "WARNING"\n')
        gateway = start_gateway(folder, config)
        to_send = folder / "um-data" / "invoicing" / "toSend"
        probative = folder / "um-data" / "invoicing" / "probative-values"
        tacks = Tacks(folder / "um-data" / "journal.sqlite")
        expected: list[str] = []
        try:
            time.sleep(1.0)
            # 1. the big file, first, on a fresh gateway
            big_ref = "20240401000000"
            if args.big_mb:
                before = peak_rss_mb(gateway.pid)
                with open(folder / "BIG.txt", "wb") as stream:
                    write_sending(stream, spec_for_size(args.big_mb * 1024 * 1024, zone_204=big_ref))
                size = (folder / "BIG.txt").stat().st_size
                (folder / "BIG.txt").rename(to_send / "BIG.txt")
                marked = drop(to_send, "BIG.txt")
                got = wait_for(lambda: tacks.at().get(big_ref), timeout=300, every=0.05, what="the big file's TAck")
                after = peak_rss_mb(gateway.pid)
                big_seconds = got - marked
                expected.append(big_ref)

            # 2. single files, one at a time
            for number in range(args.singles):
                ref = f"202404011{number:05d}"
                stem = f"S{number:05d}"
                marked = drop(to_send, f"{stem}.txt", build_sending(zone_204=ref))
                appeared = wait_for(lambda: tack_file_time(probative, stem), timeout=60, every=0.002,
                                    what=f"the TAck file of {stem}")
                got = wait_for(lambda: tacks.at().get(ref), timeout=60, every=0.005, what=f"TAck {ref}")
                singles.append(appeared - marked)
                journalled.append(got - marked)
                expected.append(ref)

            # 3. a burst
            if args.burst:
                refs = [f"202404012{number:05d}" for number in range(args.burst)]
                for number, ref in enumerate(refs):
                    (to_send / f"B{number:05d}.txt").write_bytes(build_sending(zone_204=ref))
                first_marker = time.time()
                for number in range(args.burst):
                    (to_send / f"B{number:05d}.txt.ok").write_bytes(b"")
                markers_written = time.time() - first_marker
                times = wait_for(lambda: (seen := tacks.at()) and all(r in seen for r in refs) and seen,
                                 timeout=1800, every=0.5, what="every TAck of the burst")
                burst_seconds = max(times[r] for r in refs) - first_marker
                expected += refs

            counters = simulator_counters(simulator)
        finally:
            gateway.stop()
            simulator.stop()
    twice = [r for r in expected if counters.get(f"genasync.posts.{r}", 0) != 1]
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPU, Python {platform.python_version()}, "
          f"{platform.system()} {platform.release()}")
    print(f"date: {datetime.now().astimezone().isoformat(timespec='seconds')}")
    measures: list[tuple[str, str]] = []  # (the line printed, the README table row)
    if singles:
        measures.append((
            f"single files, .ok created -> TAck file appeared (n={len(singles)}): {figures(singles)}, "
            f"mean {statistics.mean(singles) * 1000:.0f} ms\n"
            f"single files, .ok created -> TAck in the journal (n={len(journalled)}): {figures(journalled)}",
            f"| `.ok` to TAck, one small file, p50 / p95 / p99 ({len(singles)} files) | "
            f"{percentile(singles, 0.5) * 1000:.0f} ms / {percentile(singles, 0.95) * 1000:.0f} ms / "
            f"{percentile(singles, 0.99) * 1000:.0f} ms |"))
    if args.burst:
        measures.append((
            f"burst of {args.burst} small files: {burst_seconds:.1f} s from the first marker to the last TAck "
            f"({markers_written:.2f} s to write the markers): {args.burst / burst_seconds * 60:.0f} files/minute",
            f"| burst of {args.burst} small files | {args.burst / burst_seconds * 60:.0f} files/minute "
            f"({burst_seconds:.1f} s) |"))
    if args.big_mb:
        measures.append((
            f"{size / 1024 / 1024:.0f} MB file: .ok to TAck {big_seconds:.1f} s; gateway peak RSS {before:.0f} MB "
            f"before, {after:.0f} MB after (+{after - before:.0f} MB)",
            f"| {size / 1024 / 1024:.0f} MB file: gateway peak RSS (before -> after), .ok to TAck | "
            f"{before:.0f} MB -> {after:.0f} MB, {big_seconds:.1f} s |"))
    for line, _ in measures:
        print(line)
    print(f"exactly once: {len(expected) - len(twice)}/{len(expected)} files posted once"
          + (f"; NOT once: {twice[:5]}" if twice else ""))
    print()
    print("| measure | figure |")
    print("|---|---|")
    for _, row in measures:
        print(row)
    return 1 if twice else 0


if __name__ == "__main__":
    sys.exit(main())

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
  previous one's TAck; the time is from writing the ``.ok`` to the moment the gateway recorded the
  TAck in its journal (``invoicing_tacks.at``, the gateway's clock on the same machine): p50, p99.
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
    if data is not None:
        (to_send / name).write_bytes(data)
    marker_time = time.time()
    (to_send / f"{name}.ok").write_bytes(b"")
    return marker_time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--singles", type=int, default=50)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--big-mb", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="um-bench-invoicing-") as temporary:
        folder = Path(temporary)
        simulator = start_simulator(folder, timings=(3600.0, 3600.0, 3600.0))
        config = remote_gateway_config(folder, simulator, poll_interval=15.0, rescan=10.0,
                                       extra='[logging]\nlevel = "WARNING"\n')
        gateway = start_gateway(folder, config)
        to_send = folder / "um-data" / "invoicing" / "toSend"
        tacks = Tacks(folder / "um-data" / "journal.sqlite")
        expected: list[str] = []
        try:
            # 1. the big file, first, on a fresh gateway
            big_ref = "20240401000000"
            time.sleep(1.0)
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
            singles = []
            for number in range(args.singles):
                ref = f"202404011{number:05d}"
                marked = drop(to_send, f"S{number:05d}.txt", build_sending(zone_204=ref))
                got = wait_for(lambda: tacks.at().get(ref), timeout=60, every=0.005, what=f"TAck {ref}")
                singles.append(got - marked)
                expected.append(ref)

            # 3. a burst
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
    print(f"single files (.ok to TAck, n={len(singles)}): p50 {percentile(singles, 0.5) * 1000:.0f} ms, "
          f"p99 {percentile(singles, 0.99) * 1000:.0f} ms, mean {statistics.mean(singles) * 1000:.0f} ms")
    print(f"burst of {args.burst} small files: {burst_seconds:.1f} s from the first marker to the last TAck "
          f"({markers_written:.2f} s to write the markers): {args.burst / burst_seconds * 60:.0f} files/minute")
    print(f"{size / 1024 / 1024:.0f} MB file: .ok to TAck {big_seconds:.1f} s; gateway peak RSS {before:.0f} MB "
          f"before, {after:.0f} MB after (+{after - before:.0f} MB)")
    print(f"exactly once: {len(expected) - len(twice)}/{len(expected)} files posted once"
          + (f"; NOT once: {twice[:5]}" if twice else ""))
    print()
    print("| measure | figure |")
    print("|---|---|")
    print(f"| .ok to TAck, single small file, p50 / p99 (n={len(singles)}) | "
          f"{percentile(singles, 0.5) * 1000:.0f} ms / {percentile(singles, 0.99) * 1000:.0f} ms |")
    print(f"| burst of {args.burst} small files | {args.burst / burst_seconds * 60:.0f} files/minute "
          f"({burst_seconds:.1f} s) |")
    print(f"| {size / 1024 / 1024:.0f} MB file: gateway peak RSS (before -> after), .ok to TAck | "
          f"{before:.0f} MB -> {after:.0f} MB, {big_seconds:.1f} s |")
    return 1 if twice else 0


if __name__ == "__main__":
    sys.exit(main())

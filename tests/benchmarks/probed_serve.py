"""``unified-messaging <args>`` with a memory probe inside, for ``bench_soak.py --probe``.

Not product code: the soak benchmark starts the gateway as ``python probed_serve.py serve ...``
instead of ``unified-messaging serve ...`` when it is asked where the memory goes. This script

* starts ``tracemalloc`` with ``UM_PROBE_FRAMES`` frames per allocation before anything of the
  gateway is imported, when that variable is above 0;
* writes a line every ``UM_PROBE_EVERY`` seconds (default 5) to ``UM_PROBE_DIR/probe.tsv``: the
  resident memory, what tracemalloc traces (the Python heap, when on), glibc's ``mallinfo2``
  (bytes handed out by ``malloc`` and bytes it holds free: the C libraries' heap, SQLite's page
  caches, libxml2, OpenSSL, and the Python objects too large for pymalloc), pymalloc's allocated
  blocks, threads and open file descriptors;
* on SIGUSR1, dumps a tracemalloc snapshot to ``UM_PROBE_DIR/snapshot-N.tracemalloc`` (written
  aside, then renamed, so a reader never sees half a file);
* then runs the command line, unchanged.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
import tracemalloc
from pathlib import Path

COLUMNS = ("seconds", "rss_mb", "traced_mb", "malloc_used_mb", "malloc_free_mb", "mmapped_mb",
           "pymalloc_blocks", "threads", "fds")


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def _mallinfo() -> MallInfo2 | None:
    try:
        function = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return None
    function.restype = MallInfo2
    return function()


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _sample(started: float) -> str:
    mb = 1024 * 1024
    info = _mallinfo()
    traced = tracemalloc.get_traced_memory()[0] / mb if tracemalloc.is_tracing() else 0.0
    values = (time.monotonic() - started, _rss_mb(), traced,
              info.uordblks / mb if info else 0.0, info.fordblks / mb if info else 0.0,
              info.hblkhd / mb if info else 0.0)
    counts = (sys.getallocatedblocks(), threading.active_count(), len(os.listdir("/proc/self/fd")))
    return "\t".join([*(f"{v:.2f}" for v in values), *(str(c) for c in counts)])


def _sampler(folder: Path, every: float) -> None:
    started = time.monotonic()
    with open(folder / "probe.tsv", "w", buffering=1) as out:
        out.write("\t".join(COLUMNS) + "\n")
        while True:
            out.write(_sample(started) + "\n")
            time.sleep(every)


def _snapshot_on_signal(folder: Path) -> None:
    taken = [0]

    def dump(*_: object) -> None:
        taken[0] += 1
        target = folder / f"snapshot-{taken[0]}.tracemalloc"
        partial = target.with_suffix(".partial")
        tracemalloc.take_snapshot().dump(str(partial))
        partial.rename(target)

    signal.signal(signal.SIGUSR1, dump)


def main() -> None:
    folder = Path(os.environ["UM_PROBE_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    frames = int(os.environ.get("UM_PROBE_FRAMES", "0"))
    if frames > 0:
        tracemalloc.start(frames)
        _snapshot_on_signal(folder)
    threading.Thread(target=_sampler, args=(folder, float(os.environ.get("UM_PROBE_EVERY", "5"))),
                     name="um-probe", daemon=True).start()
    from unified_messaging.cli import main as cli

    sys.argv = ["unified-messaging", *sys.argv[1:]]
    cli()


if __name__ == "__main__":
    main()

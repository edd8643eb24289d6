"""The gateway's counters and histograms, in ``prometheus_client``'s multi-process mode.

Multi-process mode keeps the numbers right once several worker processes serve the same install
(and already now, when ``unified-messaging batch run`` counts its consultations beside ``serve``):
each process writes its values to memory-mapped files in one folder, and a scrape sums them.
``prepare`` chooses that folder before the first metric exists: ``PROMETHEUS_MULTIPROC_DIR``
when the environment sets it (a supervisor starting several workers, who then cleans it before
starting them), else ``<data folder>/metrics``, where the files of processes that have ended are
removed at start (their counters restart from zero, which Prometheus handles as a counter reset).

The hooks are few on purpose: ``consultation_observer`` is given to the core insurability service
(outcome per interface), ``UpstreamWatch`` wraps the clients the upstream seam returns (latency
per service, last success and failure for the health endpoint).
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from unified_messaging.domain.errors import UpstreamFault, UpstreamUnavailable

log = logging.getLogger(__name__)

ENV = "PROMETHEUS_MULTIPROC_DIR"
OWNER_ENV = "UM_METRICS_FOLDER"  # set with ENV when the gateway chose the folder itself
FOLDER = "metrics"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

_lock = threading.Lock()
_folder: Path | None = None
_instruments: "Instruments | None" = None


def prepare(data_folder: Path) -> Path:
    """Choose (once per process) the multi-process folder and switch ``prometheus_client`` to it."""
    global _folder
    with _lock:
        if _folder is not None:
            return _folder
        own = (Path(data_folder) / FOLDER).resolve()
        inherited, owner = os.environ.get(ENV), os.environ.get(OWNER_ENV)
        if inherited and (owner is None or Path(owner) == own):
            folder = Path(inherited)  # a supervisor's, or the one our parent process chose for us
            folder.mkdir(parents=True, exist_ok=True)
        else:
            folder = own
            folder.mkdir(parents=True, exist_ok=True)
            remove_dead_processes_files(folder)
            os.environ[ENV] = os.environ[OWNER_ENV] = str(folder)
        from prometheus_client import values  # imported only now: it reads ENV when first imported

        if not getattr(values.ValueClass, "_multiprocess", False):
            values.ValueClass = values.MultiProcessValue()  # prometheus_client was imported earlier
        _folder = folder
        log.info("metrics: prometheus_client multi-process files in %s", folder)
        return folder


def remove_dead_processes_files(folder: Path) -> list[Path]:
    """Remove the files of processes that are gone (``counter_<pid>.db``...); returns them.

    A live process's files stay: ``batch run`` started beside ``serve`` must not wipe the counts
    ``serve`` is writing.  A process that ended takes its counts with it at the next start.
    """
    removed = []
    for path in folder.glob("*.db"):
        pid = path.stem.rpartition("_")[2]
        if pid.isdigit() and not process_alive(int(pid)):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


@dataclass(frozen=True)
class Instruments:
    """The metrics the hooks feed (the scrape-time gauges are in ``collector``)."""

    consultations: Any
    upstream_seconds: Any
    sts_calls: Any


def instruments(data_folder: Path) -> Instruments:
    """This process's instruments, created on first use (after ``prepare``)."""
    global _instruments
    prepare(data_folder)
    with _lock:
        if _instruments is None:
            from prometheus_client import Counter, Histogram

            _instruments = Instruments(
                consultations=Counter("um_consultations", "Insurability consultations, by interface and outcome "
                                      "(OK, ERROR, FAULT, REJECTED, UNAVAILABLE).", ["interface", "outcome"]),
                upstream_seconds=Histogram("um_upstream_call_seconds", "Duration of calls to the upstream "
                                           "platform, by service and outcome (ok, fault, unavailable, error).",
                                           ["service", "outcome"], buckets=LATENCY_BUCKETS),
                sts_calls=Counter("um_sts_calls", "Token requests to the STS, by outcome.", ["outcome"]),
            )
        return _instruments


def metrics_folder() -> Path | None:
    return _folder


def consultation_observer(data_folder: Path) -> Callable[[str, str], None]:
    """What the core insurability service calls once per consultation it journals."""
    counter = instruments(data_folder).consultations
    children: dict[tuple[str, str], Any] = {}  # prometheus_client's own child per labels, looked up once

    def observe(interface: str, outcome: str) -> None:
        child = children.get((interface, outcome))
        if child is None:
            child = children[(interface, outcome)] = counter.labels(interface=interface, outcome=outcome)
        child.inc()
    return observe


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def outcome_of(error: BaseException | None) -> str:
    if error is None:
        return "ok"
    if isinstance(error, UpstreamFault):
        return "fault"
    if isinstance(error, UpstreamUnavailable):
        return "unavailable"
    return "error"


@dataclass
class ServiceState:
    last_success: datetime | None = None
    last_failure: datetime | None = None
    last_failure_kind: str | None = None
    calls: int = 0


class UpstreamWatch:
    """The observer at the upstream seam: times every call of the wrapped clients.

    Per service it feeds the latency histogram (and the STS counter), and remembers the last
    success and the last failure for the health endpoint (this process's calls).
    """

    def __init__(self, data_folder: Path, *, clock: Callable[[], datetime] = utc_now,
                 monotonic: Callable[[], float] = time.perf_counter) -> None:
        self.metrics = instruments(data_folder)
        self.clock, self.monotonic = clock, monotonic
        self._states: dict[str, ServiceState] = {}
        self._guard = threading.Lock()
        self._histograms: dict[tuple[str, str], Any] = {}  # prometheus_client's child per labels, looked up once

    def record(self, service: str, seconds: float, error: BaseException | None) -> None:
        outcome = outcome_of(error)
        histogram = self._histograms.get((service, outcome))
        if histogram is None:
            histogram = self._histograms[(service, outcome)] = self.metrics.upstream_seconds.labels(
                service=service, outcome=outcome)
        histogram.observe(seconds)
        if service == "sts":
            self.metrics.sts_calls.labels(outcome=outcome).inc()
        with self._guard:
            state = self._states.setdefault(service, ServiceState())
            state.calls += 1
            if error is None:
                state.last_success = self.clock()
            else:
                state.last_failure, state.last_failure_kind = self.clock(), outcome

    def states(self) -> dict[str, ServiceState]:
        with self._guard:
            return {name: ServiceState(**vars(state)) for name, state in self._states.items()}

    def timed(self, service: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            started = self.monotonic()
            try:
                result = call(*args, **kwargs)
            except BaseException as exc:
                self.record(service, self.monotonic() - started, exc)
                raise
            self.record(service, self.monotonic() - started, None)
            return result
        return run

    def wrap(self, target: Any, service: str, methods: Iterable[str]) -> Any:
        """``target`` with ``methods`` timed as calls to ``service``; every other attribute as it is."""
        return _Timed(target, {name: self.timed(service, getattr(target, name)) for name in methods})


class _Timed:
    def __init__(self, target: Any, timed: dict[str, Callable[..., Any]]) -> None:
        self._target, self._timed = target, timed

    def __getattr__(self, name: str) -> Any:
        timed = self.__dict__.get("_timed", {})
        return timed[name] if name in timed else getattr(self.__dict__["_target"], name)


def render(extra_collectors: Iterable[Any] = ()) -> tuple[bytes, str]:
    """The Prometheus text exposition: every process's values summed, then ``extra_collectors``."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    if _folder is not None:
        MultiProcessCollector(registry, path=str(_folder))
    for collector in extra_collectors:
        registry.register(collector)
    return generate_latest(registry), CONTENT_TYPE_LATEST

"""What each process of a supervised install tells the others about itself.

With ``serve --workers N`` the state that lives in memory is split among processes: the toQuery
watcher and the invoicing pipeline (and so their storage faults) run in the singletons process,
each front worker has its own upstream watch (last success and failure per service). Any front
worker may answer ``/health`` or draw Mybox's banner, so each process writes a small JSON
snapshot of that state to a shared folder about once a second, and readers merge the snapshots
of the processes that are alive.

The folder is the supervisor's (``UM_STATUS_FOLDER``), in shared memory (``/dev/shm``) when the
machine has it: a data disk that has turned read-only, the very fault to report, must not stop
the report. A snapshot is only operational state (names of folders, times, counts), never
patient data; a process that ends removes its own, and the snapshot of a dead process is
ignored (its pid is gone) and removed by the next reader.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from unified_messaging.monitoring.metrics import ServiceState, UpstreamWatch, process_alive, utc_now

log = logging.getLogger(__name__)

ENV = "UM_STATUS_FOLDER"
PERIOD_SECONDS = 1.0
STALE_SECONDS = 15.0  # a live process whose snapshot is older than this is reported as not reporting


@dataclass(frozen=True)
class ProcessStatus:
    """One process's snapshot, as written by :meth:`StatusBoard.publish`."""

    pid: int
    role: str
    at: datetime
    storage_faults: dict[str, str]
    upstream: dict[str, ServiceState]
    leader: bool | None = None
    """Whether the process runs the singletons (None: it never does, a front worker)."""


def new_folder() -> Path:
    """A fresh folder for the snapshots of one supervised install (the supervisor removes it)."""
    shm = Path("/dev/shm")
    parent = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="um-status-", dir=parent))


class StatusBoard:
    """This process's snapshot in ``folder``, kept current; the merged view of every live process."""

    def __init__(self, folder: Path, *, role: str, storage_faults: Callable[[], dict[str, str]],
                 watch: UpstreamWatch | None, clock: Callable[[], datetime] = utc_now,
                 period: float = PERIOD_SECONDS, leader: Callable[[], bool | None] = lambda: None) -> None:
        self.folder = Path(folder)
        self.role = role
        self.pid = os.getpid()
        self._own_faults = storage_faults
        self._watch = watch
        self._own_leader = leader
        self.clock = clock
        self.period = period
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed = False

    @property
    def path(self) -> Path:
        return self.folder / f"{self.role}-{self.pid}.json"

    def start(self) -> "StatusBoard":
        self.publish()
        self._thread = threading.Thread(target=self._run, name="um-status-board", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.path.unlink(missing_ok=True)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.publish()

    def publish(self) -> None:
        """Write this process's snapshot now (atomically: readers never see half of one)."""
        document = {"pid": self.pid, "role": self.role, "at": self.clock().isoformat(),
                    "storage_faults": self._own_faults(), "leader": self._own_leader(),
                    "upstream": {name: _state_json(state) for name, state in self._own_states().items()}}
        temporary = self.folder / f".{self.path.name}.tmp"
        try:
            temporary.write_text(json.dumps(document), encoding="utf-8")
            os.replace(temporary, self.path)
            self._failed = False
        except OSError as exc:
            if not self._failed:  # once per outage, not once a second
                log.error("status board: cannot write %s (%s); other processes will not see this one's "
                          "state until it can", self.path, exc)
            self._failed = True

    # -- the merged view --

    def others(self) -> list[ProcessStatus]:
        """The snapshots of the other live processes (a dead process's file is removed)."""
        found = []
        for path in sorted(self.folder.glob("*.json")):
            status = _read(path)
            if status is None or status.pid == self.pid:
                continue
            if not process_alive(status.pid):
                path.unlink(missing_ok=True)
                continue
            found.append(status)
        return found

    def storage_faults(self) -> dict[str, str]:
        """Every live process's storage faults (interface -> what failed), this one's first."""
        merged = dict(self._own_faults())
        for status in self.others():
            for interface, fault in status.storage_faults.items():
                merged.setdefault(interface, fault)
        return merged

    def leader(self) -> bool:
        """Whether this node runs the singletons: this process does, or a live process of it does."""
        own = self._own_leader()
        if own is not None:
            return own
        return any(status.leader for status in self.others())

    def upstream_states(self) -> dict[str, ServiceState]:
        """Per upstream service: the calls of every process summed, the latest success and failure."""
        merged = {name: state for name, state in self._own_states().items()}
        for status in self.others():
            for name, theirs in status.upstream.items():
                merged[name] = _combine(merged[name], theirs) if name in merged else theirs
        return merged

    def processes(self) -> list[dict]:
        """For the health report: each live process, its role and how old its snapshot is."""
        now = self.clock()
        found = [{"role": self.role, "pid": self.pid, "reporting": True, "age_seconds": 0.0}]
        for status in self.others():
            age = round((now - status.at).total_seconds(), 1)
            found.append({"role": status.role, "pid": status.pid, "reporting": age <= STALE_SECONDS,
                          "age_seconds": age})
        return found

    def _own_states(self) -> dict[str, ServiceState]:
        return self._watch.states() if self._watch is not None else {}


def _combine(a: ServiceState, b: ServiceState) -> ServiceState:
    combined = ServiceState()
    combined.calls = a.calls + b.calls
    combined.last_success = _latest(a.last_success, b.last_success)
    failures = [s for s in (a, b) if s.last_failure is not None]
    if failures:
        latest = max(failures, key=lambda s: s.last_failure)
        combined.last_failure, combined.last_failure_kind = latest.last_failure, latest.last_failure_kind
    return combined


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return max((m for m in (a, b) if m is not None), default=None)


def _state_json(state: ServiceState) -> dict:
    return {"calls": state.calls, "last_success": _iso(state.last_success), "last_failure": _iso(state.last_failure),
            "last_failure_kind": state.last_failure_kind}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _moment(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _read(path: Path) -> ProcessStatus | None:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        upstream = {}
        for name, values in document.get("upstream", {}).items():
            state = ServiceState()
            state.calls = int(values.get("calls", 0))
            state.last_success, state.last_failure = _moment(values.get("last_success")), _moment(values.get("last_failure"))
            state.last_failure_kind = values.get("last_failure_kind")
            upstream[name] = state
        return ProcessStatus(pid=int(document["pid"]), role=str(document["role"]), at=_moment(document["at"]),
                             storage_faults={str(k): str(v) for k, v in document.get("storage_faults", {}).items()},
                             upstream=upstream, leader=document.get("leader"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.debug("status board: %s unreadable (%s)", path, exc)
        return None


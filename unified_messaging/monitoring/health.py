"""Readiness: is this gateway able to do its work right now, and what should its operator look at?

``Sources`` is what the gateway gives the monitoring (the journal, its folders, the upstream
watch, how to read the token's and the certificates' validity); ``Readiness.report`` turns it into
the JSON of ``GET /unified-messaging/health``.  Not ready (HTTP 503) when the journal cannot be
written, a folder is missing or cannot be written, or the gateway's own certificate has expired;
the upstream, the token and the invoicing backlog are reported without failing readiness (a
load balancer taking the gateway out while MyCareNet is down would help nobody).

Nothing in the report is patient data: times, counts, folder names, days.
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from unified_messaging.database.engine import failures
from unified_messaging.folders.files import REASON_SUFFIX
from unified_messaging.invoicing.folders import Folders as InvoicingFolders
from unified_messaging.insurability.folder import InsurabilityFolderLayout
from unified_messaging.journal import Journal
from unified_messaging.monitoring.expiry import WARN_WITHIN_DAYS
from unified_messaging.monitoring.metrics import ServiceState, UpstreamWatch, utc_now

log = logging.getLogger(__name__)

PROBE_NAME = ".um-health-probe"


def iso(moment: datetime | None) -> str | None:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds") if moment else None


@dataclass
class Sources:
    """What the monitoring reads; the gateway (the composition root) fills it."""

    journal: Journal
    data_folder: Path
    watch: UpstreamWatch | None = None
    insurability_root: Path | None = None
    invoicing_root: Path | None = None
    token_valid_until: Callable[[], datetime | None] = lambda: None
    certificates: Callable[[], list[tuple[str, datetime]]] = lambda: []
    """(label, not after) of the gateway's own certificate ("gateway") and the secure space's."""
    storage_faults: Callable[[], dict[str, str]] = lambda: {}
    """The storage faults the folder interfaces have now (interface -> what failed), until they recover."""
    upstream_states: Callable[[], dict[str, ServiceState]] | None = None
    """Per upstream service, the calls of every process (supervised); None: ``watch``'s, this process's."""
    processes: Callable[[], list[dict]] = lambda: []
    leader: Callable[[], bool] = lambda: True
    """Whether this node runs the singletons (on PostgreSQL one node does; on SQLite the one node)."""
    """The processes of a supervised install, for the report (empty when one process does all)."""
    clock: Callable[[], datetime] = utc_now

    def folders(self) -> dict[str, Path]:
        """Every folder the gateway must be able to write, by a name for the operator."""
        found = {"data": self.data_folder}
        if self.insurability_root is not None:
            layout = InsurabilityFolderLayout(self.insurability_root)
            found.update({f"insurability/{p.name}": p for p in (layout.to_query, layout.queried, layout.error,
                                                                 layout.working)})
        if self.invoicing_root is not None:
            folders = InvoicingFolders(self.invoicing_root)
            found.update({f"invoicing/{p.name}": p for p in (folders.to_send, folders.received, folders.archive,
                                                             folders.error, folders.probative, folders.work)})
        return found

    def error_folders(self) -> dict[str, Path]:
        return {name: path for name, path in self.folders().items() if name.endswith("/error")}

    def certificate_days(self) -> dict[str, float]:
        now = self.clock()
        return {label: round((not_after - now).total_seconds() / 86400, 2)
                for label, not_after in self.certificates()}

    def invoicing_waiting(self) -> int:
        """Invoicing files not sent yet: dropped in toSend, or claimed and not posted."""
        if self.invoicing_root is None:
            return 0
        row = self.journal.query(
            "SELECT COUNT(*) AS n FROM invoicing_files WHERE status IS NULL AND state IN ('claimed', 'posting')")
        return count_files(InvoicingFolders(self.invoicing_root).to_send) + int(row[0]["n"] if row else 0)


def count_files(folder: Path) -> int:
    """Files in ``folder`` (not the ``.reason.txt`` beside a file in error); 0 when it is missing."""
    try:
        with os.scandir(folder) as entries:
            return sum(1 for e in entries if e.is_file() and not e.name.endswith(REASON_SUFFIX)
                       and not e.name.startswith("."))
    except OSError:
        return 0


def folder_problem(folder: Path) -> str | None:
    """Why the gateway cannot write ``folder``, or None when it can (a file is created and removed)."""
    if not folder.is_dir():
        return "missing"
    probe = folder / f"{PROBE_NAME}-{os.getpid()}-{threading.get_ident()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return f"not writable ({exc.strerror or exc})"
    return None


def journal_problem(journal: Journal) -> str | None:
    """Why the journal cannot be written, or None: a real write (then undone) in a transaction."""
    try:
        with journal.write() as tx:
            tx.execute("INSERT INTO meta (key, value) VALUES ('health_probe', :at) "
                       "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                       {"at": utc_now().isoformat(timespec="seconds")})
        return None
    except failures() as exc:
        return f"not writable ({exc})"


class Readiness:
    def __init__(self, sources: Sources) -> None:
        self.sources = sources

    def report(self) -> tuple[bool, dict[str, Any]]:
        """(ready, the JSON document of the health endpoint)."""
        s = self.sources
        failing: list[str] = []
        journal = journal_problem(s.journal)
        if journal:
            failing.append(f"journal: {journal}")
        folders = {name: folder_problem(path) or "ok" for name, path in s.folders().items()}
        failing += [f"folder {name}: {state}" for name, state in folders.items() if state != "ok"]
        storage = s.storage_faults()
        failing += [f"storage {name}: {fault}" for name, fault in storage.items()]
        days = s.certificate_days()
        if days.get("gateway", 1.0) < 0:
            failing.append("certificate gateway: expired")
        states = s.upstream_states() if s.upstream_states else (s.watch.states() if s.watch else {})
        upstream = {name: {"last_success": iso(state.last_success), "last_failure": iso(state.last_failure),
                           "last_failure_kind": state.last_failure_kind, "calls": state.calls}
                    for name, state in sorted(states.items())}
        document = {
            "status": "not ready" if failing else "ready",
            "live": True,
            "leader": s.leader(),
            "failing": failing,
            "at": iso(s.clock()),
            "journal": {"writable": journal is None, **({"problem": journal} if journal else {})},
            "folders": folders,
            "upstream": upstream,
            "token": {"valid_until": iso(s.token_valid_until())},
            "certificates": {"days_to_earliest_expiry": min(days.values()) if days else None,
                             "count": len(days),
                             "expiring_within_30_days": sorted(k for k, d in days.items() if d <= WARN_WITHIN_DAYS)},
            "storage_faults": storage,
            "invoicing": {"backlog": self._backlog(), "enabled": s.invoicing_root is not None},
            "error_folder_files": sum(count_files(p) for p in s.error_folders().values()),
        }
        processes = s.processes()
        if processes:
            document["processes"] = processes
        if failing:
            log.warning("health: not ready (%s)", "; ".join(failing))
        return not failing, document

    def _backlog(self) -> int | None:
        try:
            return self.sources.invoicing_waiting()
        except failures() as exc:
            log.warning("health: the invoicing backlog cannot be read (%s)", exc)
            return None

"""The dashboard's figures, kept between visits where they cannot have changed.

On a year of traffic the dashboard's queries read the whole year (about 20 ms of SQL, and the
feedback delays are some 6,000 rows turned into dicts and bucketed in Python, under the GIL that
the SOAP threads of the same worker want). Most of it cannot change between two visits, so each
Mybox process keeps it, and every figure shown is still the journal's figure at that visit:

* **consultations per month and outcome**: a consultation is journaled when it is made, so only
  the newest months can still grow; the last ``OPEN_MONTHS`` months with consultations are read
  again on every visit and the older ones kept (all read again when a new month begins);
* **feedback delays and error categories**: rows of files, TAcks and feedback messages are only
  ever added (``InvoicingStore`` updates a file's state and status, never its id, ``created_at``,
  a TAck or a message), so they are kept until a file, a TAck or a message is added, or the
  twelve-month period moves;
* the files per status and month (a file's status changes as feedback arrives) and the refused
  consultations' codes are cheap queries on indexes, read on every visit.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from unified_messaging.invoicing.store import InvoicingStore
from unified_messaging.journal import Journal

log = logging.getLogger(__name__)

MONTHS = 12  # the dashboard's period
OPEN_MONTHS = 2  # the newest months with consultations, read again on every visit (a call may end after midnight)
DELAY_BUCKETS = ((3600, "< 1 h"), (6 * 3600, "1–6 h"), (24 * 3600, "6–24 h"), (3 * 86400, "1–3 d"),
                 (7 * 86400, "3–7 d"), (None, "> 7 d"))
_ADDED_ONLY = ("invoicing_files", "invoicing_tacks", "invoicing_feedback")


@dataclass(frozen=True)
class InvoicingFigures:
    """What the delays and errors charts show: ``delays`` counts the files per (bucket label, code)."""

    delays: dict[tuple[str, str], int]
    codes: frozenset[str]  # the feedback codes received
    categories: dict[str, int]


def delay_counts(delays: list[dict]) -> dict[tuple[str, str], int]:
    """``{code, seconds}`` rows -> how many fall in each (``DELAY_BUCKETS`` label, code)."""
    counts: dict[tuple[str, str], int] = {}
    for delay in delays:
        label = next(label for limit, label in DELAY_BUCKETS if limit is None or delay["seconds"] < limit)
        counts[(label, delay["code"])] = counts.get((label, delay["code"]), 0) + 1
    return counts


class DashboardFigures:
    """One Mybox process's kept figures; safe for waitress's threads (two first visits may both read)."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._per_month: tuple[list[str], list[dict]] | None = None  # (months newest first, rows)
        self._invoicing: tuple[tuple, InvoicingFigures] | None = None  # (version, figures)

    def consultations_per_month(self, journal: Journal) -> list[dict]:
        """``journal.consultations_per_month(months=MONTHS)``, the closed months kept."""
        recent = journal.consultations_per_month(months=OPEN_MONTHS)
        open_months = sorted({row["month"] for row in recent}, reverse=True)
        with self._lock:
            kept = self._per_month
        if kept is not None and kept[0][:len(open_months)] == open_months:
            return recent + [row for row in kept[1] if row["month"] not in open_months]
        rows = journal.consultations_per_month(months=MONTHS)
        months = sorted({row["month"] for row in rows}, reverse=True)
        with self._lock:
            self._per_month = (months, rows)
        return rows

    def invoicing(self, store: InvoicingStore, codes: tuple[str, ...]) -> InvoicingFigures:
        """The feedback delays and the error categories (of the messages with ``codes``), kept until a row
        is added to the invoicing tables or the period moves."""
        version = (f"{self._clock():%Y-%m}", codes, *store.journal.query(
            "SELECT " + ", ".join(f"(SELECT max(id) FROM {table}) AS {table}" for table in _ADDED_ONLY))[0].values())
        with self._lock:
            kept = self._invoicing
        if kept is not None and kept[0] == version:
            return kept[1]
        delays = store.feedback_delays(months=MONTHS)
        figures = InvoicingFigures(delay_counts(delays), frozenset(d["code"] for d in delays),
                                   store.error_categories(months=MONTHS, codes=codes))
        with self._lock:
            self._invoicing = (version, figures)
        return figures

"""The gauges computed when Prometheus scrapes, from what the gateway keeps anyway.

Invoicing files by status and feedback messages by type come from the journal (shared by every
process, so one scrape gives the install's numbers whichever worker answers it), files in error
from the error folders, and certificates' days to expiry from the gateway's own certificate and
the secure space's.  A certificate's label is ``gateway`` or the secure space's number for it
(``securespace-3``): never its holder's NIHII or SSIN.
"""
from __future__ import annotations

import logging
from typing import Any, Iterator

from unified_messaging.database.engine import failures
from unified_messaging.monitoring.health import Sources, count_files

log = logging.getLogger(__name__)

# The status Mybox shows for an invoicing file (the same rule as ``invoicing.store.SHOWN_STATUSES``).
SHOWN_STATUS_SQL = ("CASE WHEN state = 'error' THEN 'ERROR' "
                    "WHEN status IS NULL AND state IN ('claimed', 'posting') THEN 'WAITING' "
                    "ELSE COALESCE(status, 'WAITING') END")


class GatewayCollector:
    """A ``prometheus_client`` collector (``collect`` is all it needs); ``prometheus_client`` is
    imported at scrape time only, after ``metrics.prepare`` chose the multi-process folder."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        s = self.sources
        if s.invoicing_root is not None:
            try:
                yield from self._invoicing()
            except failures() as exc:
                log.warning("metrics: the invoicing counts cannot be read (%s)", exc)
        errors = GaugeMetricFamily("um_files_in_error", "Files in an error folder (without their .reason.txt).",
                                   labels=["folder"])
        for name, path in s.error_folders().items():
            errors.add_metric([name], count_files(path))
        yield errors
        days = GaugeMetricFamily("um_certificate_days_to_expiry", "Days until a certificate expires "
                                 "(negative: expired).", labels=["certificate"])
        for label, value in s.certificate_days().items():
            days.add_metric([label], value)
        yield days

    def _invoicing(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        journal = self.sources.journal
        files = GaugeMetricFamily("um_invoicing_files", "Invoicing files in the journal, by the status Mybox "
                                  "shows (WAITING, OK, ONGOING, DONE, NOK, ERROR).", labels=["status"])
        for row in journal.query(f"SELECT {SHOWN_STATUS_SQL} AS status, COUNT(*) AS n FROM invoicing_files GROUP BY 1"):
            files.add_metric([str(row["status"])], row["n"])
        yield files
        feedback = GaugeMetricFamily("um_invoicing_feedback_messages", "Feedback messages received from the "
                                     "platform, by message type (931000, 920098, 920900...).", labels=["type"])
        for row in journal.query("SELECT code, COUNT(*) AS n FROM invoicing_feedback GROUP BY code"):
            feedback.add_metric([str(row["code"])], row["n"])
        yield feedback

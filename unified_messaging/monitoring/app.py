"""``GET /unified-messaging/health`` (readiness), ``/health/live`` (liveness) and ``/metrics``.

Readiness answers 200 with the JSON report when ready, 503 with the same report (its ``failing``
list names each failing part) when not; liveness answers 200 as long as the process serves.
Only GET and HEAD are answered; nothing here needs or reads a session.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any, Callable, Iterable

from cryptography import x509

from unified_messaging.config import Config
from unified_messaging.journal import Journal

from unified_messaging.monitoring.board import StatusBoard
from unified_messaging.monitoring.collector import GatewayCollector
from unified_messaging.monitoring.health import Readiness, Sources
from unified_messaging.monitoring.metrics import UpstreamWatch, render

log = logging.getLogger(__name__)

HEALTH = "/unified-messaging/health"
METRICS = "/unified-messaging/metrics"
PATHS = (HEALTH, HEALTH + "/live", HEALTH + "/ready", METRICS)


class MonitoringApp:
    """The WSGI application for ``PATHS``."""

    def __init__(self, sources: Sources) -> None:
        self.readiness = Readiness(sources)
        self.collector = GatewayCollector(sources)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "").rstrip("/")
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return _answer(start_response, "405 Method Not Allowed", b"Only GET is answered here.\n",
                           "text/plain; charset=utf-8", [("Allow", "GET, HEAD")])
        if path == HEALTH + "/live":
            return _json(start_response, "200 OK", {"status": "alive", "live": True})
        if path in (HEALTH, HEALTH + "/ready"):
            ready, document = self.readiness.report()
            return _json(start_response, "200 OK" if ready else "503 Service Unavailable", document)
        if path == METRICS:
            body, kind = render([self.collector])
            return _answer(start_response, "200 OK", body, kind)
        return _answer(start_response, "404 Not Found", b"Nothing here.\n", "text/plain; charset=utf-8")


def _json(start_response: Callable, status: str, document: dict) -> Iterable[bytes]:
    return _answer(start_response, status, json.dumps(document, indent=1).encode("utf-8") + b"\n",
                   "application/json")


def _answer(start_response: Callable, status: str, body: bytes, kind: str,
            headers: list[tuple[str, str]] | None = None) -> Iterable[bytes]:
    start_response(status, [("Content-Type", kind), ("Content-Length", str(len(body))),
                            ("Cache-Control", "no-store"), *(headers or [])])
    return [body]


def gateway_sources(config: Config, journal: Journal, watch: UpstreamWatch | None, *,
                    certificate: x509.Certificate, token_cache: Any = None, securespace: Any = None,
                    storage_faults: Callable[[], dict[str, str]] = dict, board: StatusBoard | None = None,
                    clock: Callable[[], datetime]) -> Sources:
    """The monitoring's view of a started gateway: its configured folders, its own certificate
    (and the secure space's, when it has one), the token cache of the upstream seam; with a
    ``board`` (supervised), the storage faults and upstream states of every process."""

    def certificates() -> list[tuple[str, datetime]]:
        found = [("gateway", certificate.not_valid_after_utc)]
        if securespace is not None:
            found += [(f"securespace-{record.id}", record.not_after) for record in securespace.certificates()]
        return found

    return Sources(journal=journal, data_folder=config.data_folder, watch=watch,
                   insurability_root=config.insurability_root if config.folders.insurability else None,
                   invoicing_root=config.invoicing_root if config.invoicing.enabled else None,
                   token_valid_until=lambda: token_cache.valid_until(certificate) if token_cache else None,
                   certificates=certificates, clock=clock,
                   storage_faults=board.storage_faults if board else storage_faults,
                   upstream_states=board.upstream_states if board else None,
                   processes=board.processes if board else (lambda: []))

"""The gateway's top-level WSGI application: which part of the gateway answers which path."""
from __future__ import annotations

from typing import Callable, Iterable

from unified_messaging.monitoring.app import PATHS as MONITORING_PATHS, MonitoringApp
from unified_messaging.soap.router import PREFIXES, ServicesRouter
from unified_messaging.web.app import Mybox
from unified_messaging.web.context import PREFIX as MYBOX_PREFIX


class GatewayApp:
    """The top-level WSGI app: the services prefixes, Mybox, the health and metrics endpoints, a
    redirect from ``/``, 404 elsewhere."""

    def __init__(self, services: ServicesRouter, mybox: Mybox | None = None,
                 monitoring: MonitoringApp | None = None) -> None:
        self.services = services
        self.mybox = mybox
        self.monitoring = monitoring

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if any(path == p or path.startswith(p + "/") for p in PREFIXES):
            return self.services(environ, start_response)
        if self.mybox is not None and (path == MYBOX_PREFIX or path.startswith(MYBOX_PREFIX + "/")):
            return self.mybox(environ, start_response)
        if self.monitoring is not None and path.rstrip("/") in MONITORING_PATHS:
            return self.monitoring(environ, start_response)
        if path in ("", "/", "/unified-messaging", "/unified-messaging/"):
            start_response("302 Found", [("Location", PREFIXES[0]), ("Content-Length", "0")])
            return [b""]
        body = f"Nothing here. The services are listed at {PREFIXES[0]}\n".encode("utf-8")
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8"),
                                         ("Content-Length", str(len(body)))])
        return [body]

"""One running unified-messaging: built from a Config, started, stopped.

The gateway serves the legacy interfaces with waitress; when the configured upstream is the
simulator (the default), the MyCareNet simulator runs in the same process on its own local port,
so that everything between the two goes over a real socket.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable, Iterable

import waitress
from waitress import wasyncore
from waitress.server import BaseWSGIServer

from unified_messaging.config import Config, ConfigError
from unified_messaging.insurability.service import InsurabilityService
from unified_messaging.journal import Journal
from unified_messaging.mycarenet.insurability import GenericInsurabilityClient
from unified_messaging.simulator.app import Simulator
from unified_messaging.soap.consult import build_soap_apps
from unified_messaging.soap.contract import Contract
from unified_messaging.soap.router import PREFIXES, ServicesRouter

log = logging.getLogger(__name__)


@dataclass
class _RunningServer:
    server: BaseWSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return self.server.effective_port

    def close(self) -> None:
        """Close the listener and every open connection from waitress's own loop, then stop the workers.

        waitress's loop runs until its socket map is empty; closing sockets from another thread
        races with it ("Bad file descriptor"), so the closing is handed to the loop's trigger.
        """
        self.server.trigger.pull_trigger(lambda: wasyncore.close_all(self.server._map))
        self.thread.join(timeout=10)
        self.server.task_dispatcher.shutdown()


def _start(app: Callable, host: str, port: int, *, threads: int, max_body: int, name: str) -> _RunningServer:
    server = waitress.create_server(
        app, host=host, port=port, threads=threads, ident="unified-messaging",
        max_request_body_size=max_body, clear_untrusted_proxy_headers=True, channel_timeout=60,
    )
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    return _RunningServer(server, thread)


class GatewayApp:
    """The top-level WSGI app: the services prefixes, a redirect from ``/``, 404 elsewhere."""

    def __init__(self, services: ServicesRouter) -> None:
        self.services = services

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if any(path == p or path.startswith(p + "/") for p in PREFIXES):
            return self.services(environ, start_response)
        if path in ("", "/", "/unified-messaging", "/unified-messaging/"):
            start_response("302 Found", [("Location", PREFIXES[0]), ("Content-Length", "0")])
            return [b""]
        body = f"Nothing here. The services are listed at {PREFIXES[0]}\n".encode("utf-8")
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8"),
                                         ("Content-Length", str(len(body)))])
        return [body]


class Gateway:
    """Build with a Config, then ``start()``; ``stop()`` closes servers and the journal."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.simulator: Simulator | None = None
        self.simulator_url: str | None = None
        self._servers: list[_RunningServer] = []
        self._main: _RunningServer | None = None
        self.journal: Journal | None = None

    @property
    def port(self) -> int:
        assert self._main is not None, "start() the gateway first"
        return self._main.port

    @property
    def url(self) -> str:
        return f"http://{self._display_host(self.config.server.host)}:{self.port}"

    @property
    def services_url(self) -> str:
        return self.url + PREFIXES[0]

    @staticmethod
    def _display_host(host: str) -> str:
        return "127.0.0.1" if host in ("0.0.0.0", "") else host

    def _upstream_endpoint(self) -> str:
        upstream = self.config.upstream
        if upstream.mode == "simulator":
            sim = self.config.simulator
            self.simulator = Simulator(latency_ms=sim.latency_ms)
            running = _start(self.simulator, sim.host, sim.port, threads=max(8, self.config.server.threads),
                             max_body=self.config.server.max_request_bytes * 4, name="um-simulator")
            self._servers.append(running)
            base = f"http://{self._display_host(sim.host)}:{running.port}"
            self.simulator_url = base
            log.info("MyCareNet simulator listening on %s", base)
            return base + Simulator.GENERICINSURABILITY_PATH
        if not upstream.genericinsurability_url:
            raise ConfigError(
                '[upstream] genericinsurability_url = "" is not valid when [upstream] mode = "remote": '
                "expected the GenericInsurability address of the MyCareNet platform."
            )
        return upstream.genericinsurability_url

    def start(self) -> "Gateway":
        cfg = self.config
        cfg.data_folder.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(cfg.journal_path)
        try:
            endpoint = self._upstream_endpoint()
            client = GenericInsurabilityClient(
                endpoint,
                licence_username=cfg.licence.username,
                licence_password=cfg.licence.password,
                package_name=cfg.licence.package_name,
                is_test=cfg.upstream.is_test,
                timeout=cfg.upstream.timeout_seconds,
            )
            service = InsurabilityService(client, self.journal)
            contract = Contract()
            apps = build_soap_apps(service, contract, max_content_length=cfg.server.max_request_bytes)
            router = ServicesRouter(contract, apps, public_base_url=cfg.server.public_base_url,
                                    max_request_bytes=cfg.server.max_request_bytes)
            self._main = _start(GatewayApp(router), cfg.server.host, cfg.server.port,
                                threads=cfg.server.threads, max_body=cfg.server.max_request_bytes * 4,
                                name="um-gateway")
        except BaseException:
            self.stop()
            raise
        self._servers.append(self._main)
        log.info("unified-messaging listening on %s (data in %s, journal %s)",
                 self.services_url, cfg.data_folder, cfg.journal_path)
        return self

    def stop(self) -> None:
        for running in reversed(self._servers):
            running.close()
        self._servers.clear()
        if self.journal is not None:
            self.journal.close()

    def __enter__(self) -> "Gateway":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

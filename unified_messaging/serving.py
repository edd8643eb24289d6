"""Running a WSGI application under waitress in a thread, and stopping it cleanly.

Used for the gateway's own ports and the simulator's, and by the tests for any local server.
"""
from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import waitress
from waitress import wasyncore
from waitress.server import BaseWSGIServer

log = logging.getLogger(__name__)


@dataclass
class RunningServer:
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
        try:
            self.server.trigger.pull_trigger(lambda: wasyncore.close_all(self.server._map, ignore_all=True))
        except OSError:
            log.debug("the %s loop had already closed its trigger", self.thread.name)
        self.thread.join(timeout=10)
        self.server.task_dispatcher.shutdown()


def start_server(app: Callable, host: str, port: int, *, threads: int, max_body: int, name: str) -> RunningServer:
    server = waitress.create_server(
        app, host=host, port=port, threads=threads, ident="unified-messaging",
        max_request_body_size=max_body, clear_untrusted_proxy_headers=True, channel_timeout=60,
    )
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    return RunningServer(server, thread)


@contextmanager
def serving(app: Callable, *, threads: int = 8, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``app`` on a free local port for the duration of a ``with`` block; yields its URL."""
    running = start_server(app, host, 0, threads=threads, max_body=64 * 1024 * 1024, name="um-local-server")
    try:
        yield f"http://{host}:{running.port}"
    finally:
        running.close()

"""Running a WSGI application under waitress in a thread, and stopping it cleanly.

Used for the gateway's own ports and the simulator's, and by the tests for any local server.

``ServerLimits`` keeps one broken or hostile client from taking the port down: waitress reads
requests in its event loop and hands only complete ones to the worker threads, so idle or
half-sent connections cost a file descriptor each, not a thread; what must be bounded is how many
there are (``connection_limit``, ``max_connections_per_client``) and how long they may stay
(``idle_timeout``: no request in progress; ``request_read_timeout``: a request whose headers and
body have not all arrived, even if it trickles a byte at a time).  The event loop uses ``poll``,
since ``select`` cannot watch more than 1,024 descriptors.
"""
from __future__ import annotations

import logging
import resource
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import waitress
from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.task import ErrorTask, ThreadedTaskDispatcher, WSGITask
from waitress.utilities import RequestEntityTooLarge
from waitress.server import BaseWSGIServer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerLimits:
    """How many connections a port holds and how long a slow one may stay (``[server]`` keys)."""

    connection_limit: int = 2000
    max_connections_per_client: int = 500
    idle_timeout: float = 30.0
    request_read_timeout: float = 15.0

    @property
    def cleanup_interval(self) -> float:
        return max(0.5, min(self.idle_timeout, self.request_read_timeout) / 4)


@dataclass(frozen=True)
class ProxyTrust:
    """The reverse proxy whose forwarded headers name the real client (``[server] trusted_proxy``).

    waitress then sets ``REMOTE_ADDR`` (and the scheme and host) from those headers for requests from
    that peer only; from every other peer it removes them."""

    address: str = ""
    headers: tuple[str, ...] = ("x-forwarded-for", "x-forwarded-proto")
    count: int = 1

    def waitress_options(self) -> dict[str, object]:
        if not self.address:
            return {}
        return {"trusted_proxy": self.address, "trusted_proxy_headers": {h.lower() for h in self.headers},
                "trusted_proxy_count": self.count, "log_untrusted_proxy_headers": True}


def raise_open_file_limit(wanted: int) -> int:
    """Raise this process's soft limit of open files towards ``wanted`` (up to the hard limit);
    returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def _peer(addr: object) -> object:
    return addr[0] if isinstance(addr, tuple) else addr


# For a body larger than the server reads at all: (path, content type) -> (content type, body) of the
# answer, or None for waitress's own plain-text 413.
OversizedAnswer = Callable[[str, str], "tuple[str, bytes] | None"]


def _error_task(oversized: OversizedAnswer | None) -> type[ErrorTask]:
    class AnsweringErrorTask(ErrorTask):
        """waitress's error answer, except a body too large for it on a path whose application has its own
        words for that (the SOAP services answer a SOAP fault, as for any body over their limit)."""

        def execute(self) -> None:
            answer = None
            if oversized is not None and isinstance(self.request.error, RequestEntityTooLarge):
                answer = oversized(self.request.path or "", self.request.headers.get("CONTENT_TYPE", ""))
            if answer is None:
                super().execute()
                return
            content_type, body = answer
            self.status = "413 Request Entity Too Large"
            self.response_headers.append(("Content-Type", content_type))
            self.set_close_on_finish()
            self.content_length = len(body)
            self.write(body)

    return AnsweringErrorTask


class _OneSendTask(WSGITask):
    """waitress's WSGI task, except that a body written whole in one piece (what our applications return:
    ``[body]`` with its Content-Length) goes out with the response header in one buffer, so in one ``send``
    instead of two (the same bytes on the wire); anything else is written as waitress writes it."""

    def write(self, data: bytes) -> None:
        if (not self.wrote_header and self.complete and type(data) is bytes and data and self.has_body
                and not self.chunked_response and self.content_length == len(data)):
            self.channel.write_soon(self.build_response_header() + data)
            self.wrote_header = True
            self.content_bytes_written += len(data)
            return
        super().write(data)


def _limited_channel(limits: ServerLimits, oversized: OversizedAnswer | None = None) -> type[HTTPChannel]:
    warned: dict[object, float] = {}  # one warning a minute per client address

    class LimitedChannel(HTTPChannel):
        """Refuses a client past its connection cap; remembers when the request being read began; writes a
        whole answer in one send (``_OneSendTask``); does not make the event loop spin on a channel whose
        worker thread is writing (``writable``)."""

        task_class = _OneSendTask
        error_task_class = _error_task(oversized)

        def __init__(self, server, sock, addr, adj, map=None) -> None:
            super().__init__(server, sock, addr, adj, map=map)
            self.reading_since: float | None = None
            peer = _peer(addr)
            same = sum(1 for c in server.active_channels.values() if _peer(getattr(c, "addr", None)) == peer)
            if same > limits.max_connections_per_client:
                if time.monotonic() - warned.get(peer, -60.0) >= 60.0:
                    warned[peer] = time.monotonic()
                    log.warning("%s holds %d connections (at most %d per client, [server] "
                                "max_connections_per_client): closing the newest ones", peer, same,
                                limits.max_connections_per_client)
                self.will_close = True

        def writable(self) -> bool:
            """waitress's rule, except while a worker thread holds the output buffer (it is appending or sending
            itself): the loop would otherwise wake at once on the writable socket, fail to take the buffer and
            poll again: 14 wake-ups per answer at 8 clients, measured, and the loop's CPU with them. The worker wakes
            the loop (its trigger) when it leaves data it could not send, and the loop polls at least once a
            second (``asyncore_loop_timeout``), so nothing waits for ever."""
            if self.will_close or self.close_when_flushed:
                return True
            if not self.total_outbufs_len:
                return False
            if not self.requests:
                return True
            if not self.outbuf_lock.acquire(False):
                return False
            self.outbuf_lock.release()
            return True

        def received(self, data: bytes) -> bool:
            if self.request is None and self.reading_since is None and data:
                self.reading_since = time.monotonic()
            result = super().received(data)
            if self.request is None:
                self.reading_since = None
            return result

    return LimitedChannel


def _apply_limits(server: BaseWSGIServer, limits: ServerLimits, oversized: OversizedAnswer | None) -> None:
    server.channel_class = _limited_channel(limits, oversized)
    waitress_maintenance = server.maintenance

    def maintenance(now: float) -> None:
        waitress_maintenance(now)
        cutoff = time.monotonic() - limits.request_read_timeout
        for channel in list(server.active_channels.values()):
            since = getattr(channel, "reading_since", None)
            if since is not None and since < cutoff and not channel.requests:
                channel.will_close = True

    server.maintenance = maintenance


class _UrgentFirst(ThreadedTaskDispatcher):
    """waitress's worker threads, taking the requests ``urgent(path)`` says are urgent before the others.

    waitress queues every complete request for its threads in arrival order. Under a SOAP load
    that keeps every thread busy, a Mybox page (a few ms of work) would wait behind all the calls
    queued before it: hundreds of ms at 32 clients. Urgent requests go before the queued others
    (in their own arrival order); the others keep theirs. A request already being served is never
    interrupted, so an urgent one waits at most for the first thread to finish its call.
    """

    def __init__(self, urgent: Callable[[str], bool]) -> None:
        super().__init__()
        self._urgent = urgent

    def _is_urgent(self, channel: object) -> bool:
        requests = getattr(channel, "requests", None)
        return bool(requests) and self._urgent(getattr(requests[0], "path", "") or "")

    def add_task(self, task: object) -> None:
        if not self._is_urgent(task):
            super().add_task(task)
            return
        with self.lock:
            place = 0
            while place < len(self.queue) and self._is_urgent(self.queue[place]):
                place += 1
            self.queue.insert(place, task)
            self.queue_cv.notify()


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


def start_server(app: Callable, host: str, port: int, *, threads: int, max_body: int, name: str,
                 limits: ServerLimits = ServerLimits(), proxy: ProxyTrust = ProxyTrust(),
                 oversized: OversizedAnswer | None = None, sock: socket.socket | None = None,
                 urgent: Callable[[str], bool] | None = None) -> RunningServer:
    """Serve ``app`` on ``host:port``, or on ``sock`` when given (a socket a supervisor bound once
    and handed to each of its worker processes). ``urgent(path)``: the requests served before
    the others queued (see ``_UrgentFirst``)."""
    raise_open_file_limit(limits.connection_limit + 256)
    where: dict[str, object] = {"sockets": [sock]} if sock is not None else {"host": host, "port": port}
    if urgent is not None:
        dispatcher = _UrgentFirst(urgent)
        dispatcher.set_thread_count(threads)
        where["_dispatcher"] = dispatcher  # waitress's own hook for a dispatcher of the caller's
    server = waitress.create_server(
        app, **where, threads=threads, ident="unified-messaging",
        max_request_body_size=max_body, clear_untrusted_proxy_headers=True,
        connection_limit=limits.connection_limit, channel_timeout=limits.idle_timeout,
        cleanup_interval=limits.cleanup_interval, asyncore_use_poll=True, **proxy.waitress_options(),
    )
    _apply_limits(server, limits, oversized)
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

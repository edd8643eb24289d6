"""A lean HTTP/1.1 server for the simulator in its own process: one thread per connection.

The simulated platform is not the product's front, and under a batch its server was most of its
CPU: waitress reads each request in its event loop, hands it to a worker thread through a queue
and a condition, and the worker hands the answer back to the loop, which costs more than the
simulator's own work once 32 connections or more are busy.  Here the thread of a connection
reads its requests, calls the WSGI application and writes the answer itself, with blocking
sockets: no loop, no queue, no hand-over.

What the clients see is what they saw with waitress: HTTP/1.1 keep-alive (HTTP/1.0 closes unless
asked to keep alive), ``Content-Length`` or chunked request bodies, ``Expect: 100-continue``, a 413
answer past ``max_body`` (``OversizedAnswer`` words it, as for waitress), the connection closed
when an answer ends shorter than its ``Content-Length`` (the ``reset`` chaos mode), ``400`` for a
request that is not HTTP, and idle connections closed after ``idle_timeout``.  ``threads`` bounds
the calls into the application at once (waitress's worker threads), not the connections.
"""
from __future__ import annotations

import io
import logging
import socket
import sys
import threading
import time
from email.utils import formatdate
from typing import Any, Callable, Iterable
from urllib.parse import unquote_to_bytes

from unified_messaging.serving import OversizedAnswer, ServerLimits, raise_open_file_limit

log = logging.getLogger(__name__)

MAX_LINE = 65536
MAX_HEADERS = 200
SERVER_IDENT = "unified-messaging"
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding"})

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    """The ``Date`` header's value, formatted once a second rather than once an answer."""
    global _date_cache
    second = int(time.time())
    cached = _date_cache
    if cached[0] != second:
        cached = _date_cache = (second, formatdate(second, usegmt=True))
    return cached[1]


class BadRequest(Exception):
    """The bytes received are not an HTTP/1.x request this server accepts."""

    def __init__(self, status: str, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class _Request:
    __slots__ = ("method", "target", "version", "headers", "keep_alive")

    def __init__(self, method: str, target: str, version: str, headers: dict[str, str]) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        connection = headers.get("CONNECTION", "").lower()
        if version == "HTTP/1.1":
            self.keep_alive = "close" not in connection
        else:
            self.keep_alive = "keep-alive" in connection


def _read_request(rfile: io.BufferedReader) -> _Request | None:
    """The request line and headers, or ``None`` when the client closed the connection between requests."""
    line = rfile.readline(MAX_LINE + 1)
    while line in (b"\r\n", b"\n"):  # tolerated empty lines between requests (RFC 9112 section 2.2)
        line = rfile.readline(MAX_LINE + 1)
    if not line:
        return None
    if len(line) > MAX_LINE:
        raise BadRequest("431 Request Header Fields Too Large", "The request line is too long.")
    parts = line.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest("400 Bad Request", "The request line is not HTTP/1.x.")
    method, target, version = parts
    headers: dict[str, str] = {}
    name = ""
    for _ in range(MAX_HEADERS + 1):
        line = rfile.readline(MAX_LINE + 1)
        if not line:
            return None
        if line in (b"\r\n", b"\n"):
            return _Request(method, target, version, headers)
        if len(line) > MAX_LINE:
            raise BadRequest("431 Request Header Fields Too Large", "A header line is too long.")
        text = line.decode("latin-1").rstrip("\r\n")
        if text[:1] in (" ", "\t") and name:  # an obsolete folded continuation line
            headers[name] += " " + text.strip()
            continue
        key, sep, value = text.partition(":")
        if not sep or not key or key != key.strip():
            raise BadRequest("400 Bad Request", "A header line is not 'Name: value'.")
        name = key.upper().replace("-", "_")
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    raise BadRequest("431 Request Header Fields Too Large", "The request has too many headers.")


def _read_chunked(rfile: io.BufferedReader, limit: int) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        line = rfile.readline(MAX_LINE + 1)
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise BadRequest("400 Bad Request", "A chunk size is not hexadecimal.") from None
        if size == 0:
            while rfile.readline(MAX_LINE + 1) not in (b"\r\n", b"\n", b""):  # trailers, ignored
                pass
            return b"".join(parts)
        total += size
        if total > limit:
            raise _TooLarge()
        data = rfile.read(size)
        if len(data) < size:
            raise BadRequest("400 Bad Request", "The chunked body ended early.")
        parts.append(data)
        rfile.readline(MAX_LINE + 1)


class _TooLarge(Exception):
    pass


def answer_of(app: WsgiApp, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    """Call a WSGI application: its status, headers and whole body."""
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        seen["status"], seen["headers"] = status, headers
        return lambda data: None  # the legacy write() callable: unused by the simulator's applications

    chunks = app(environ, start_response)
    try:
        body = b"".join(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    return seen["status"], seen["headers"], body


class _Connection:
    """One client connection, served by its own thread until it closes or idles out."""

    def __init__(self, server: "LeanServer", sock: socket.socket, address: Any) -> None:
        self.server = server
        self.sock = sock
        self.address = address
        self.rfile = sock.makefile("rb", buffering=65536)

    def serve(self) -> None:
        try:
            while not self.server.closing:
                self.sock.settimeout(self.server.limits.idle_timeout)
                try:
                    request = _read_request(self.rfile)
                except BadRequest as bad:
                    self._plain(bad.status, bad.text)
                    return
                if request is None:
                    return
                self.sock.settimeout(self.server.limits.request_read_timeout)
                if not self._answer(request):
                    return
        except (OSError, ValueError):  # reset by the peer, timed out, or closed by stop()
            return
        finally:
            self._close()

    def _answer(self, request: _Request) -> bool:
        """Read the body, call the application, write the answer; ``False`` to close the connection."""
        headers = request.headers
        if headers.get("EXPECT", "").lower() == "100-continue" and request.version == "HTTP/1.1":
            self.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        try:
            body = self._body(request)
        except _TooLarge:
            self._oversized(request)
            return False
        except BadRequest as bad:
            self._plain(bad.status, bad.text)
            return False
        environ = self.server.environ(request, body, self.address)
        with self.server.workers:
            status, response_headers, payload = answer_of(self.server.app, environ)
        return self._write(request, status, response_headers, payload)

    def _body(self, request: _Request) -> bytes:
        headers = request.headers
        limit = self.server.max_body
        if "chunked" in headers.get("TRANSFER_ENCODING", "").lower():
            return _read_chunked(self.rfile, limit)
        text = headers.get("CONTENT_LENGTH", "")
        if not text:
            return b""
        try:
            length = int(text)
        except ValueError:
            raise BadRequest("400 Bad Request", "The Content-Length is not a number.") from None
        if length < 0:
            raise BadRequest("400 Bad Request", "The Content-Length is negative.")
        if length > limit:
            raise _TooLarge()
        data = self.rfile.read(length)
        if len(data) < length:
            raise BadRequest("400 Bad Request", "The body ended before its Content-Length.")
        return data

    def _write(self, request: _Request, status: str, headers: list[tuple[str, str]], payload: bytes) -> bool:
        keep_alive = request.keep_alive
        lines = [f"HTTP/1.1 {status}"]
        length: int | None = None
        for name, value in headers:
            lowered = name.lower()
            if lowered in _HOP_BY_HOP:
                if lowered == "connection" and value.lower() == "close":
                    keep_alive = False
                continue
            if lowered == "content-length":
                length = int(value)
            lines.append(f"{name}: {value}")
        short = length is not None and len(payload) < length
        if length is None:
            lines.append(f"Content-Length: {len(payload)}")
        elif len(payload) > length:
            payload = payload[:length]
        if short:
            keep_alive = False
        lines.append(f"Date: {_http_date()}")
        lines.append(f"Server: {SERVER_IDENT}")
        if not keep_alive:
            lines.append("Connection: close")
        elif request.version != "HTTP/1.1":
            lines.append("Connection: Keep-Alive")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if request.method == "HEAD":
            payload = b""
        self.sock.sendall(head + payload)
        return keep_alive

    def _oversized(self, request: _Request) -> None:
        answer = None
        if self.server.oversized is not None:
            path = request.target.split("?", 1)[0]
            answer = self.server.oversized(path, request.headers.get("CONTENT_TYPE", ""))
        if answer is None:
            self._plain("413 Request Entity Too Large",
                        f"The request body exceeds {self.server.max_body} bytes.")
            return
        content_type, body = answer
        self._send_closing("413 Request Entity Too Large", content_type, body)

    def _plain(self, status: str, text: str) -> None:
        self._send_closing(status, "text/plain; charset=utf-8", (text + "\n").encode("utf-8"))

    def _send_closing(self, status: str, content_type: str, body: bytes) -> None:
        head = (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                f"Date: {_http_date()}\r\nServer: {SERVER_IDENT}\r\nConnection: close\r\n\r\n")
        try:
            self.sock.sendall(head.encode("latin-1") + body)
        except OSError:
            pass

    def _close(self) -> None:
        self.server.forget(self)
        try:
            self.rfile.close()
            self.sock.close()
        except OSError:
            pass


class LeanServer:
    """Serves ``app`` on ``host:port`` (``start()``), a thread per connection; ``close()`` stops it."""

    def __init__(self, app: WsgiApp, host: str, port: int, *, threads: int, max_body: int,
                 name: str, limits: ServerLimits = ServerLimits(), oversized: OversizedAnswer | None = None) -> None:
        self.app = app
        self.max_body = max_body
        self.limits = limits
        self.oversized = oversized
        self.name = name
        self.workers = threading.BoundedSemaphore(threads)
        self.closing = False
        self._connections: set[_Connection] = set()
        self._lock = threading.Lock()
        raise_open_file_limit(limits.connection_limit + 256)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, port))
        self._listener.listen(1024)
        self.host = host
        self.port: int = self._listener.getsockname()[1]
        self._base = {
            "SERVER_NAME": host or "localhost", "SERVER_PORT": str(self.port), "SCRIPT_NAME": "",
            "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
            "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
            "SERVER_SOFTWARE": SERVER_IDENT,
        }
        self._thread = threading.Thread(target=self._accept, name=name, daemon=True)

    def start(self) -> "LeanServer":
        self._thread.start()
        return self

    def environ(self, request: _Request, body: bytes, address: Any) -> dict[str, Any]:
        path, _, query = request.target.partition("?")
        if path.startswith(("http://", "https://")):  # an absolute target: keep its path only
            path = "/" + path.split("/", 3)[3] if path.count("/") >= 3 else "/"
        environ = dict(self._base)
        environ["REQUEST_METHOD"] = request.method
        environ["PATH_INFO"] = unquote_to_bytes(path).decode("latin-1")
        environ["QUERY_STRING"] = query
        environ["SERVER_PROTOCOL"] = request.version
        environ["REMOTE_ADDR"] = address[0] if isinstance(address, tuple) else str(address)
        if isinstance(address, tuple):
            environ["REMOTE_PORT"] = str(address[1])
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        for key, value in request.headers.items():
            if key == "CONTENT_TYPE":
                environ["CONTENT_TYPE"] = value
            elif key not in ("CONTENT_LENGTH", "TRANSFER_ENCODING"):
                environ["HTTP_" + key] = value
        return environ

    def _accept(self) -> None:
        while not self.closing:
            try:
                sock, address = self._listener.accept()
            except OSError:
                if self.closing:
                    return
                continue
            connection = _Connection(self, sock, address)
            with self._lock:
                refused = len(self._connections) >= self.limits.connection_limit
                if not refused:
                    self._connections.add(connection)
            if refused:
                log.warning("%s: %d connections open ([server] connection_limit): closing a new one", self.name,
                            self.limits.connection_limit)
                connection._close()
                continue
            threading.Thread(target=connection.serve, name=f"{self.name}-conn", daemon=True).start()

    def forget(self, connection: _Connection) -> None:
        with self._lock:
            self._connections.discard(connection)

    def close(self) -> None:
        """Stop accepting, close every open connection (a call in progress ends with it), join the listener."""
        self.closing = True
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=10)

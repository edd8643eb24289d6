"""The usual upstream post over keep-alive sockets of our own, without requests/urllib3.

``GatewayTransport.post`` sends most posts here: a direct connection (no proxy for the address),
no credentials, no cookie to send and no response hook (no tracer).  Everything else keeps going
through the session's ``HTTPAdapter``.  For a SOAP post and its answer, the requests path spent
about 0.3 ms of CPU more than ``http.client`` alone (``tests/benchmarks/bench_floor.py``): its
connection pool, its retry and timeout objects, urllib3's response and header classes; and
``http.client`` itself sends the headers and the body in two sends and parses the answer's
headers with the ``email`` package.  Here the request (line, headers, body) goes in one send,
the status line and headers are read by ``_Answer``, and ``http.client`` reads the body
(Content-Length, chunked, or up to the end of the connection).

What the requests path did is kept: the same request line and headers (``Host`` first, then the
session's, ours, ``Content-Length``), a connection per thread and address reused while the other
side keeps it open (one the other side has closed is noticed before it is reused; an answer with
``Connection: close`` closes it), ``TCP_NODELAY``, one timeout for the connection and for each
read, TLS verified against the bundle ``requests`` would use (``REQUESTS_CA_BUNDLE`` or its own),
answers decoded when gzip/deflate compressed.  Failures are raised as the ``requests`` exceptions
the requests path raised, so that ``transport.network_reason`` words them the same way.  The
answer is a ``requests.Response`` with its status, reason, headers, body, URL, encoding and
request; its cookies are kept in the session's jar.
"""
from __future__ import annotations

import http.client
import os
import re
import socket
import ssl
import threading
import time
import zlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.cookies import extract_cookies_to_jar
from requests.structures import CaseInsensitiveDict
from requests.utils import DEFAULT_CA_BUNDLE_PATH, get_encoding_from_headers
from urllib3.util.wait import wait_for_read

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_DECODABLE = frozenset({"gzip", "x-gzip", "deflate", "identity"})


@dataclass(frozen=True)
class Destination:
    """Where a direct post goes: the connection's key and the request target."""

    scheme: str
    host: str
    port: int
    target: str  # path and query, as the request line carries them
    url: str  # the URL as requests prepared it


def destination(url: str) -> Destination | None:
    """The ``Destination`` of a prepared URL, or None when this module does not post there."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        return None
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Destination(parts.scheme, parts.hostname, port, target, url)


def decodable(accept_encoding: str | None) -> bool:
    """Whether every content coding the headers accept can be decoded here."""
    return all(coding.split(";")[0].strip().lower() in _DECODABLE
               for coding in (accept_encoding or "").split(",") if coding.strip())


def verifiable(scheme: str, verify: Any) -> bool:
    """Whether a connection of ``scheme`` can be made here with requests' ``verify`` (plain HTTP, or
    TLS verified against its bundle, a CA file or a CA folder; an unverified TLS connection is not)."""
    return scheme == "http" or verify is True or isinstance(verify, str)


class Connections:
    """One keep-alive connection per thread and destination; ``close()`` closes every thread's."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[_Link] = []
        self._contexts: dict[Any, ssl.SSLContext] = {}

    def post(self, where: Destination, headers: dict[str, str], body: bytes, *, timeout: float, verify: Any,
             session: requests.Session) -> requests.Response:
        """POST ``body`` and read the whole answer; failures raised as ``requests`` exceptions."""
        request = requests.PreparedRequest()
        request.method, request.url, request.body, request.headers = "POST", where.url, body, headers
        started = time.perf_counter()
        link = self._link(where, timeout, verify)
        head = _request_head(where, headers)
        try:
            if link.sock is None:
                link.open()
            answer, content = link.exchange(head + body)
        except BaseException as exc:
            link.close()
            if isinstance(exc, Exception):
                raise _requests_error(exc, request) from exc
            raise
        response = requests.Response()
        response.status_code, response.reason, response.url = answer.status, answer.reason, where.url
        response.headers = _headers(answer.pairs)
        response._content = _decoded(content, response.headers.get("Content-Encoding"), request)
        response.encoding = get_encoding_from_headers(response.headers)
        response.request = request
        response.elapsed = timedelta(seconds=time.perf_counter() - started)
        if "Set-Cookie" in response.headers:
            original = _Original(answer)
            extract_cookies_to_jar(response.cookies, request, original)
            extract_cookies_to_jar(session.cookies, request, original)
        return response

    def _link(self, where: Destination, timeout: float, verify: Any) -> _Link:
        pool = getattr(self._local, "pool", None)
        if pool is None:
            pool = self._local.pool = {}
        key = (where.scheme, where.host, where.port)
        link = pool.get(key)
        if link is None:
            link = pool[key] = _Link(where, timeout, self._context(verify) if where.scheme == "https" else None)
            with self._lock:
                self._all.append(link)
        elif link.sock is not None and wait_for_read(link.sock, timeout=0.0):
            link.close()  # closed (or talking) on the other side: connect again
        link.timeout = timeout
        return link

    def _context(self, verify: Any) -> ssl.SSLContext:
        """The TLS context for ``verify`` as requests reads it: True (its CA bundle), a file or a folder."""
        key = verify if isinstance(verify, str) else bool(verify)
        context = self._contexts.get(key)
        if context is None:
            if verify is True:
                context = ssl.create_default_context(cafile=DEFAULT_CA_BUNDLE_PATH)
            elif isinstance(verify, str):
                context = (ssl.create_default_context(capath=verify) if os.path.isdir(verify)
                           else ssl.create_default_context(cafile=verify))
            else:
                raise ValueError("an unverified TLS connection is not posted directly")
            self._contexts[key] = context
        return context

    def close(self) -> None:
        with self._lock:
            links, self._all = self._all, []
        for link in links:
            link.close()
        self._local = threading.local()


class _Link:
    """One connection: the request written in one send, the answer read by ``_Answer``."""

    def __init__(self, where: Destination, timeout: float, context: ssl.SSLContext | None) -> None:
        self.where, self.timeout, self._context = where, timeout, context
        self.sock: socket.socket | None = None

    def open(self) -> None:
        where = self.where
        try:
            sock = socket.create_connection((where.host, where.port), self.timeout)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self._context is not None:
                    sock = self._context.wrap_socket(sock, server_hostname=where.host)
            except BaseException:
                sock.close()
                raise
        except (socket.timeout, TimeoutError) as exc:
            raise requests.ConnectTimeout(f"Connection to {where.host}:{where.port} timed out ({exc})") from exc
        except socket.gaierror as exc:
            raise requests.ConnectionError(f"NameResolutionError: cannot resolve {where.host} ({exc})") from exc
        except (ssl.SSLError, ssl.CertificateError) as exc:
            raise requests.exceptions.SSLError(f"TLS with {where.host}:{where.port} failed: {exc}") from exc
        except OSError as exc:
            raise requests.ConnectionError(f"Failed to establish a new connection to {where.host}:{where.port}: "
                                           f"{exc}") from exc
        self.sock = sock

    def exchange(self, data: bytes) -> tuple[_Answer, bytes]:
        self.sock.sendall(data)
        answer = _Answer(self.sock, method="POST")
        answer.begin()
        content = answer.read()
        if answer.will_close:
            self.close()
        return answer, content

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()


class _Answer(http.client.HTTPResponse):
    """An ``http.client`` response whose status line and headers are read here (``http.client``
    parses headers with the ``email`` package: some 30 us an answer); ``http.client`` reads the
    body (Content-Length, chunked or up to the end of the connection)."""

    pairs: list[tuple[str, str]]

    def begin(self) -> None:
        if self.headers is not None:
            return
        version, status, reason = self._read_status()
        while status == http.client.CONTINUE:
            _header_lines(self.fp)
            version, status, reason = self._read_status()
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        self.pairs = _header_lines(self.fp)
        message = http.client.HTTPMessage()
        fields: dict[str, str] = {}
        for name, value in self.pairs:
            message[name] = value
            fields.setdefault(name.lower(), value)
        self.headers = self.msg = message
        self.chunked = fields.get("transfer-encoding", "").strip().lower() == "chunked"
        self.chunk_left = None
        connection = fields.get("connection", "").lower()
        if self.version == 11:
            closes = "close" in connection
        else:
            closes = not (fields.get("keep-alive") or "keep-alive" in connection
                          or "keep-alive" in fields.get("proxy-connection", "").lower())
        length = None
        if not self.chunked and fields.get("content-length"):
            try:
                length = int(fields["content-length"])
            except ValueError:
                length = None
            if length is not None and length < 0:
                length = None
        if status in (http.client.NO_CONTENT, http.client.NOT_MODIFIED) or 100 <= status < 200:
            length = 0
        self.length = length
        self.will_close = closes or (not self.chunked and length is None)


_MAX_LINE = 65536
_MAX_HEADERS = 100
_UNSAFE = re.compile(r"[\r\n\x00]")


def _header_lines(reader: Any) -> list[tuple[str, str]]:
    """The header fields up to the blank line, as (name, value); a folded line joins the previous."""
    pairs: list[tuple[str, str]] = []
    while True:
        line = reader.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise http.client.LineTooLong("header line")
        if line in (b"\r\n", b"\n", b""):
            return pairs
        if len(pairs) >= _MAX_HEADERS:
            raise http.client.HTTPException(f"got more than {_MAX_HEADERS} headers")
        text = line.decode("iso-8859-1")
        if text[0] in " \t" and pairs:
            name, value = pairs[-1]
            pairs[-1] = (name, f"{value} {text.strip()}")
            continue
        name, colon, value = text.partition(":")
        if colon:
            pairs.append((name.strip(), value.strip()))


def _request_head(where: Destination, headers: dict[str, str]) -> bytes:
    """The request line and headers (``Host`` first, as ``http.client`` writes them)."""
    host = f"[{where.host}]" if ":" in where.host else where.host
    if where.port != (443 if where.scheme == "https" else 80):
        host = f"{host}:{where.port}"
    lines = [f"POST {where.target} HTTP/1.1", f"Host: {host}"]
    for name, value in headers.items():
        if _UNSAFE.search(name) or _UNSAFE.search(value):
            raise requests.exceptions.InvalidHeader(f"invalid header {name!r}")
        lines.append(f"{name}: {value}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1")


class _Original:
    """What ``extract_cookies_to_jar`` reads of a urllib3 response: the ``http.client`` one."""

    def __init__(self, answer: http.client.HTTPResponse) -> None:
        self._original_response = answer


def _requests_error(exc: Exception, request: requests.PreparedRequest) -> Exception:
    """The ``requests`` exception for a failure after the connection was made."""
    if isinstance(exc, requests.RequestException):
        return exc
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return requests.ReadTimeout(f"Read timed out ({exc})", request=request)
    if isinstance(exc, (ssl.SSLError, ssl.CertificateError)):
        return requests.exceptions.SSLError(str(exc), request=request)
    if isinstance(exc, http.client.IncompleteRead):
        return requests.exceptions.ChunkedEncodingError(f"IncompleteRead: {exc!r}", request=request)
    if isinstance(exc, http.client.RemoteDisconnected):
        return requests.ConnectionError(f"RemoteDisconnected: {exc}", request=request)
    if isinstance(exc, (OSError, http.client.HTTPException)):
        return requests.ConnectionError(f"Connection aborted: {type(exc).__name__}: {exc}", request=request)
    return exc


def _headers(pairs: list[tuple[str, str]]) -> CaseInsensitiveDict:
    """The answer's headers, a repeated one joined with ", " (as urllib3 gives them to requests)."""
    headers: CaseInsensitiveDict = CaseInsensitiveDict()
    for name, value in pairs:
        if name in headers:
            headers[name] = f"{headers[name]}, {value}"
        else:
            headers[name] = value
    return headers


def _decoded(content: bytes, coding: str | None, request: requests.PreparedRequest) -> bytes:
    if not coding or not content:
        return content
    try:
        for step in reversed([part.strip().lower() for part in coding.split(",") if part.strip()]):
            if step in ("gzip", "x-gzip"):
                content = _gunzip(content)
            elif step == "deflate":
                try:
                    content = zlib.decompress(content)
                except zlib.error:
                    content = zlib.decompress(content, -zlib.MAX_WBITS)
            elif step != "identity":
                raise zlib.error(f"unknown content coding {step}")
    except zlib.error as exc:
        raise requests.exceptions.ContentDecodingError(f"Failed to decode the answer: {exc}",
                                                       request=request) from None
    return content


def _gunzip(data: bytes) -> bytes:
    """Every member of a gzip stream, decompressed."""
    out = []
    while data:
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out.append(decompressor.decompress(data))
        out.append(decompressor.flush())
        if not decompressor.eof:
            raise zlib.error("the gzip stream is truncated")
        data = decompressor.unused_data
    return b"".join(out)

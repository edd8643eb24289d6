"""The usual upstream post over ``http.client`` keep-alive connections, without requests/urllib3.

``GatewayTransport.post`` sends most posts here: a direct connection (no proxy for the address),
no credentials, no cookie to send and no response hook (no tracer).  Everything else keeps going
through the session's ``HTTPAdapter``.  For a SOAP post and its answer, the requests path spent
about 0.3 ms of CPU more than ``http.client`` alone (``tests/benchmarks/bench_floor.py``): its
connection pool, its retry and timeout objects, urllib3's response and header classes.

What the requests path did is kept: the same request line and headers (the session's, ours,
``Content-Length``; ``Host`` from ``http.client``), body and headers in one send, a connection
per thread and address reused while the other side keeps it open (a connection the other side
has closed is noticed before it is reused), ``TCP_NODELAY``, one timeout for the connection and
for each read, TLS verified against the bundle ``requests`` would use, answers decoded when
gzip/deflate compressed.  Failures are raised as the ``requests`` exceptions the requests path
raised, so that ``transport.network_reason`` words them the same way.  The answer is a
``requests.Response`` with its status, reason, headers, body, URL, encoding and request.
"""
from __future__ import annotations

import http.client
import os
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
        self._all: list[http.client.HTTPConnection] = []
        self._contexts: dict[Any, ssl.SSLContext] = {}

    def post(self, where: Destination, headers: dict[str, str], body: bytes, *, timeout: float, verify: Any,
             session: requests.Session) -> requests.Response:
        """POST ``body`` and read the whole answer; failures raised as ``requests`` exceptions."""
        request = requests.PreparedRequest()
        request.method, request.url, request.body, request.headers = "POST", where.url, body, headers
        started = time.perf_counter()
        connection = self._connection(where, timeout, verify)
        try:
            if connection.sock is None:
                _connect(connection, where)
            connection.putrequest("POST", where.target, skip_accept_encoding=True)
            for name, value in headers.items():
                connection.putheader(name, value)
            connection.endheaders(body)
            answer = connection.getresponse()
            content = answer.read()
        except BaseException as exc:
            connection.close()
            if isinstance(exc, Exception):
                raise _requests_error(exc, request) from exc
            raise
        if answer.will_close:
            connection.close()
        response = requests.Response()
        response.status_code, response.reason, response.url = answer.status, answer.reason, where.url
        response.headers = _headers(answer.msg)
        response._content = _decoded(content, response.headers.get("Content-Encoding"), request)
        response.encoding = get_encoding_from_headers(response.headers)
        response.request = request
        response.elapsed = timedelta(seconds=time.perf_counter() - started)
        if "Set-Cookie" in response.headers:
            original = _Original(answer)
            extract_cookies_to_jar(response.cookies, request, original)
            extract_cookies_to_jar(session.cookies, request, original)
        return response

    def _connection(self, where: Destination, timeout: float, verify: Any) -> http.client.HTTPConnection:
        pool = getattr(self._local, "pool", None)
        if pool is None:
            pool = self._local.pool = {}
        key = (where.scheme, where.host, where.port)
        connection = pool.get(key)
        if connection is not None:
            if connection.sock is not None and wait_for_read(connection.sock, timeout=0.0):
                connection.close()  # closed (or talking) on the other side: connect again
            connection.timeout = timeout
            return connection
        if where.scheme == "https":
            connection = http.client.HTTPSConnection(where.host, where.port, timeout=timeout,
                                                     context=self._context(verify))
        else:
            connection = http.client.HTTPConnection(where.host, where.port, timeout=timeout)
        pool[key] = connection
        with self._lock:
            self._all.append(connection)
        return connection

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
            connections, self._all = self._all, []
        for connection in connections:
            connection.close()
        self._local = threading.local()


class _Original:
    """What ``extract_cookies_to_jar`` reads of a urllib3 response: the ``http.client`` one."""

    def __init__(self, answer: http.client.HTTPResponse) -> None:
        self._original_response = answer


def _connect(connection: http.client.HTTPConnection, where: Destination) -> None:
    try:
        connection.connect()
    except (socket.timeout, TimeoutError) as exc:
        connection.close()
        raise requests.ConnectTimeout(f"Connection to {where.host}:{where.port} timed out ({exc})") from exc
    except socket.gaierror as exc:
        connection.close()
        raise requests.ConnectionError(f"NameResolutionError: cannot resolve {where.host} ({exc})") from exc
    except (ssl.SSLError, ssl.CertificateError) as exc:
        connection.close()
        raise requests.exceptions.SSLError(f"TLS with {where.host}:{where.port} failed: {exc}") from exc
    except OSError as exc:
        connection.close()
        raise requests.ConnectionError(f"Failed to establish a new connection to {where.host}:{where.port}: "
                                       f"{exc}") from exc


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


def _headers(message: http.client.HTTPMessage) -> CaseInsensitiveDict:
    """The answer's headers, a repeated one joined with ", " (as urllib3 gives them to requests)."""
    headers: CaseInsensitiveDict = CaseInsensitiveDict()
    for name, value in message.items():
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

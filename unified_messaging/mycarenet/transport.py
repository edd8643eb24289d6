"""HTTP transport for the upstream zeep clients.

One ``GatewayTransport`` serves one client instance that many server threads use at once.
``requests.Session`` is not documented as thread-safe, so each thread gets its own session (and
so its own keep-alive connections); sessions are created on first use and closed by ``close()``.
Unlike zeep's default transport, nothing here logs message bodies: they carry the licence
password and patients' SSINs.
"""
from __future__ import annotations

import logging
import threading

import requests
import zeep
from requests.adapters import HTTPAdapter

from unified_messaging.mycarenet.trace import ExchangeTracer

log = logging.getLogger(__name__)

USER_AGENT = "unified-messaging"
CONNECTIONS_PER_HOST = 2


class GatewayTransport(zeep.Transport):
    """A zeep transport with one ``requests.Session`` per thread and a single timeout."""

    def __init__(self, *, timeout: float, tracer: ExchangeTracer | None = None) -> None:
        # zeep's constructor would create one shared Session; set its attributes ourselves instead.
        self.cache = None
        self.load_timeout = timeout
        self.operation_timeout = timeout
        self.logger = log
        self._close_session = False
        self._local = threading.local()
        self._lock = threading.Lock()
        self._sessions: list[requests.Session] = []
        self._tracer = tracer

    @property
    def session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=CONNECTIONS_PER_HOST, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers["User-Agent"] = USER_AGENT
            if self._tracer is not None:
                self._tracer.attach(session)
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def post(self, address: str, message: bytes, headers: dict[str, str]) -> requests.Response:
        return self.session.post(address, data=message, headers=headers, timeout=self.operation_timeout)

    def close(self) -> None:
        """Close every thread's session (their pooled connections)."""
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
        self._local = threading.local()


def network_reason(exc: requests.RequestException, timeout: float) -> str:
    """A short reason for a failed HTTP exchange; never the request itself."""
    text = str(exc)
    if isinstance(exc, requests.ConnectTimeout):
        return f"no connection within {timeout:g} s"
    if isinstance(exc, requests.Timeout):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, requests.exceptions.SSLError):
        return "the TLS handshake failed (certificate or protocol)"
    if "NameResolution" in text or "Name or service not known" in text or "getaddrinfo" in text:
        return "the host name cannot be resolved (DNS)"
    if "refused" in text.lower():
        return "connection refused: nothing listens at that address"
    if isinstance(exc, requests.ConnectionError):
        return "the connection failed or was closed before an answer"
    return f"HTTP exchange failed ({type(exc).__name__})"

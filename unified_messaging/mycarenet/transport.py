"""HTTP transport for the upstream zeep clients.

One ``GatewayTransport`` serves one client instance that many server threads use at once.
``requests.Session`` is not documented as thread-safe, so each thread gets its own session (and
so its own keep-alive connections); sessions are created on first use and closed by ``close()``.
Unlike zeep's default transport, nothing here logs message bodies: they carry the licence
password and patients' SSINs.

The usual post (a direct connection: no proxy for the address, no credentials, no cookie to send,
no tracer) goes over ``keepalive``'s ``http.client`` connections, cheaper still (see that module).
Any other post goes straight to the thread's ``HTTPAdapter`` (its urllib3 keep-alive pool) with a request
prepared here, not through ``Session.request``, which per call merges the session's settings,
reads the environment (proxies, CA bundle, ``~/.netrc``), builds hooks and redirect state: that
was about half of the HTTP client's CPU, about 0.5 ms per call. What the session did that matters
is kept: the environment is read once per address at its first call (``HTTPS_PROXY``/``NO_PROXY``,
``REQUESTS_CA_BUNDLE``, netrc credentials; a change is seen after a restart), the session's
headers and cookies go with every post and the answer's cookies are kept, the tracer's response
hook runs, and an answer that redirects is posted again through the session, which follows it.

``network_reason`` turns a failed exchange into a short reason (``domain.errors`` words the
message from it); ``GatewayTransport.exchange`` is the synchronous clients' post, where a failed
exchange is already ``UpstreamUnavailable`` with that reason.  An HTTP error page (a proxy's or a load balancer's "502 Bad Gateway", a
"503 Service Unavailable" maintenance page) is not a SOAP answer: ``check_answer`` refuses it as
``ErrorPage`` before anyone tries to parse it as XML, so the caller reads "MyCareNet is not
available (HTTP 502 Bad Gateway with an HTML error page...)" instead of an XML parser's complaint.
"""
from __future__ import annotations

import logging
import threading

import requests
import zeep
from requests.adapters import HTTPAdapter
from requests.cookies import extract_cookies_to_jar
from requests.hooks import dispatch_hook
from requests.structures import CaseInsensitiveDict

from unified_messaging.domain.errors import UpstreamUnavailable
from unified_messaging.mycarenet.keepalive import (
    REDIRECT_STATUSES, Connections, Destination, decodable, destination, verifiable,
)
from unified_messaging.mycarenet.trace import ExchangeTracer

log = logging.getLogger(__name__)

USER_AGENT = "unified-messaging"
CONNECTIONS_PER_HOST = 2


_XML_TYPES = ("text/xml", "application/soap+xml", "application/xml", "multipart/related")


class ErrorPage(requests.RequestException):
    """An HTTP answer that is an error page (HTML, plain text...), not a SOAP message."""

    def __init__(self, status: int, phrase: str, content_type: str) -> None:
        self.status = status
        self.phrase = phrase
        self.content_type = content_type
        super().__init__(f"HTTP {status} {phrase}".strip())


def check_answer(response: requests.Response) -> requests.Response:
    """``response``, or ``ErrorPage`` when it is an HTTP error whose body is no XML (an error page).

    A SOAP fault comes with HTTP 500 and an XML content type: it passes, and is read as a fault.
    """
    if response.status_code < 400:
        return response
    content_type = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    start = response.content[:200].lstrip().lower()
    looks_xml = start.startswith((b"<?xml", b"<soap", b"<s:", b"<env")) or b"envelope" in start[:80]
    if content_type in _XML_TYPES and looks_xml or (not content_type and looks_xml):
        return response
    raise ErrorPage(response.status_code, response.reason or "", content_type or "no content type")


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
        self._environment: dict[str, dict] = {}
        self._urls: dict[str, str] = {}  # address -> the URL as prepare() writes it
        self._connections = Connections()
        self._destinations: dict[str, Destination | None] = {}  # address -> where a direct post goes

    @property
    def session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # read once per address: ``_settings``
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
        session = self.session
        settings = self._settings(address)
        where = self._destination(address, settings)
        if where is not None and not session.hooks["response"] and not len(session.cookies) and session.cert is None:
            response = self._connections.post(
                where, {**session.headers, **headers, "Content-Length": str(len(message))}, message,
                timeout=self.operation_timeout, verify=settings["verify"], session=session)
            if response.status_code in REDIRECT_STATUSES and "location" in response.headers:
                return check_answer(session.post(address, data=message, headers=headers,
                                                 timeout=self.operation_timeout, **settings))
            return check_answer(response)
        request = self._prepared(session, address, message, headers, settings["auth"])
        response = session.get_adapter(address).send(request, timeout=self.operation_timeout, verify=settings["verify"],
                                                     proxies=settings["proxies"], stream=False, cert=session.cert)
        if response.is_redirect:  # rare: the session knows how to follow one
            return check_answer(session.post(address, data=message, headers=headers, timeout=self.operation_timeout,
                                             **settings))
        extract_cookies_to_jar(session.cookies, request, response.raw)
        response.content  # read it all: the connection goes back to the pool
        return check_answer(dispatch_hook("response", request.hooks, response))

    def _prepared(self, session: requests.Session, address: str, message: bytes, headers: dict[str, str],
                  auth: object) -> requests.PreparedRequest:
        """The request ``PreparedRequest.prepare`` makes, without its work per call when it would only
        repeat itself: the address is parsed and quoted once, and with no credentials and no cookie
        to send (the usual case: WS-Security carries the caller's identity) the request is the
        session's headers, ours, the body and its length."""
        url = self._urls.get(address)
        if url is None or auth is not None or len(session.cookies):
            request = requests.PreparedRequest()
            request.prepare(method="POST", url=address, headers={**session.headers, **headers}, data=message,
                            cookies=session.cookies, auth=auth, hooks=session.hooks)
            if "Authorization" not in request.headers and "Cookie" not in request.headers:
                self._urls[address] = request.url
            return request
        request = requests.PreparedRequest()
        request.method, request.url, request.body = "POST", url, message
        request.headers = CaseInsensitiveDict({**session.headers, **headers, "Content-Length": str(len(message))})
        request.hooks = {event: list(hooks) for event, hooks in session.hooks.items()}
        return request

    def _destination(self, address: str, settings: dict) -> Destination | None:
        """Where ``address`` is posted by ``keepalive`` (found once): None for a proxied address,
        netrc credentials, an unverified TLS connection, an answer coding it cannot decode."""
        if address in self._destinations:
            return self._destinations[address]
        where = None
        if (settings["auth"] is None and not requests.utils.select_proxy(address, settings["proxies"])
                and decodable(self.session.headers.get("Accept-Encoding"))):
            request = requests.PreparedRequest()
            request.prepare_url(address, None)
            where = destination(request.url)
            if where is not None and not verifiable(where.scheme, settings["verify"]):
                where = None
        self._destinations[address] = where
        return where

    def _settings(self, address: str) -> dict:
        """What ``requests`` would take from the environment for ``address`` (proxies, CA bundle,
        netrc credentials), found once per address."""
        settings = self._environment.get(address)
        if settings is None:
            reader = requests.Session()  # trust_env: the environment as requests reads it
            merged = reader.merge_environment_settings(address, {}, None, None, None)
            settings = {"proxies": merged["proxies"], "verify": merged["verify"],
                        "auth": requests.utils.get_netrc_auth(address)}
            reader.close()
            self._environment[address] = settings
        return settings

    def exchange(self, address: str, message: bytes, headers: dict[str, str]) -> requests.Response:
        """``post``, with a failed exchange (no connection, no answer in time, an error page) raised as
        ``UpstreamUnavailable`` for ``address``, worded by ``network_reason``."""
        try:
            return self.post(address, message, headers)
        except requests.RequestException as exc:
            raise UpstreamUnavailable(address, network_reason(exc, self.operation_timeout)) from None

    def close(self) -> None:
        """Close every thread's session (their pooled connections)."""
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
        self._connections.close()
        self._local = threading.local()


def network_reason(exc: requests.RequestException, timeout: float) -> str:
    """A short reason for a failed HTTP exchange; never the request itself."""
    text = str(exc)
    if isinstance(exc, ErrorPage):
        page = "an HTML error page" if "html" in exc.content_type else f"an error page ({exc.content_type})"
        return f"{exc} with {page} instead of a SOAP answer"
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
    if isinstance(exc, requests.exceptions.ChunkedEncodingError) or "IncompleteRead" in text:
        return "the connection was closed in the middle of the answer"
    if isinstance(exc, requests.ConnectionError):
        if "reset" in text.lower() or "aborted" in text.lower() or "RemoteDisconnected" in text:
            return "the connection was closed in the middle of the answer (reset by the other side)"
        return "the connection failed or was closed before an answer"
    return f"HTTP exchange failed ({type(exc).__name__})"

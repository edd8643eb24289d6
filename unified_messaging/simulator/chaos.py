"""Upstream chaos: faults the simulator injects in its answers, per service (genins, sts, genasync).

A real platform (or what stands between it and the gateway) fails in ways a well-behaved
simulator never does.  ``FaultInjection`` makes the simulator fail those ways on purpose, so that
the gateway's handling of each can be tested over real sockets:

==================  ==========================================================================
mode                what the caller receives
==================  ==========================================================================
``slow``            the normal answer, after ``slow_seconds`` (longer than the client's time-out)
``reset``           the status line, the headers and half the answer, then the connection closed
``html-502``        ``502 Bad Gateway`` with a proxy's HTML error page (the platform never sees
                    the request)
``html-503``        ``503 Service Unavailable`` with a maintenance HTML page (idem)
``malformed-xml``   the answer with a broken closing tag (not well-formed XML)
``truncated-xml``   the first half of the answer, with a Content-Length that matches it
``expired-signer``  the answer signed again with a platform certificate that expired (same
                    subject, same CA); for the STS, the token (SAML assertion) is signed again
``foreign-signer``  the answer signed again with a platform certificate from another CA; for
                    the STS, the token (SAML assertion) is signed again
==================  ==========================================================================

Except for the two HTML modes the platform handles the request first (a post is taken, a token
issued): the fault is in the answer, which is what makes a retry dangerous.  The STS answer
itself is not signed: its signer faults re-sign the assertion it carries (what the gateway checks
against ``[upstream] ehealth_ca``).

A fault is set with ``set(service, mode, count=None)`` (``count`` limits it to the next calls)
and lifted with ``clear()``; ``[simulator] fault_genins`` / ``fault_sts`` / ``fault_genasync``
and ``fault_slow_seconds`` set them from the configuration.  ``injected`` counts what was done.
"""
from __future__ import annotations

import enum
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Iterator

from lxml import etree

from unified_messaging.mycarenet.keystore import KeyEntry
from unified_messaging.mycarenet.wsse import DS_NS, SAML_NS, sign_with_certificate
from unified_messaging.simulator.httpserver import WsgiApp, answer_of
from unified_messaging.simulator.sts import sign_assertion
from unified_messaging.xmlsafe import parse_xml

log = logging.getLogger(__name__)

SERVICES = ("genins", "sts", "genasync", "memberdata")
DEFAULT_SLOW_SECONDS = 35.0

SignerFactory = Callable[["FaultMode"], KeyEntry]

_SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
_WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"

HTML_502 = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
            b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
HTML_503 = (b'<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n<html><head>\n<title>503 Service Unavailable'
            b"</title>\n</head><body>\n<h1>Service Unavailable</h1>\n<p>The server is temporarily unable to service "
            b"your request due to maintenance downtime or capacity problems. Please try again later.</p>\n"
            b"<hr>\n</body></html>\n")


class FaultMode(str, enum.Enum):
    NONE = "none"
    SLOW = "slow"
    RESET = "reset"
    HTML_502 = "html-502"
    HTML_503 = "html-503"
    MALFORMED_XML = "malformed-xml"
    TRUNCATED_XML = "truncated-xml"
    EXPIRED_SIGNER = "expired-signer"
    FOREIGN_SIGNER = "foreign-signer"

    @property
    def is_signer(self) -> bool:
        return self in (FaultMode.EXPIRED_SIGNER, FaultMode.FOREIGN_SIGNER)


def parse_mode(value: str, *, service: str) -> FaultMode:
    """``"html-502"`` -> ``FaultMode.HTML_502``; a clear ``ValueError`` for anything else."""
    try:
        mode = FaultMode((value or "none").strip().lower())
    except ValueError:
        raise ValueError(f"fault mode {value!r} for {service} is not one of "
                         f"{', '.join(m.value for m in FaultMode)}") from None
    return mode


@dataclass
class _Fault:
    mode: FaultMode
    remaining: int | None  # None: until cleared


class FaultInjection:
    """The faults the simulator injects now, per service; thread-safe."""

    def __init__(self, *, slow_seconds: float = DEFAULT_SLOW_SECONDS, signers: SignerFactory | None = None) -> None:
        self.slow_seconds = slow_seconds
        self._signers = signers
        self._signer_cache: dict[FaultMode, KeyEntry] = {}
        self._paths: dict[str, str] = {}
        self._faults: dict[str, _Fault] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self.injected: dict[str, int] = {}

    def use_signers(self, factory: SignerFactory) -> None:
        """Where the signer faults get their keys (``platform.fault_signer``)."""
        self._signers = factory
        self._signer_cache.clear()

    def route(self, path: str, service: str) -> None:
        """Say which service answers at ``path`` (the simulator registers its addresses)."""
        if service not in SERVICES:
            raise ValueError(f"unknown service {service!r}: one of {', '.join(SERVICES)}")
        self._paths[path] = service

    def set(self, service: str, mode: FaultMode | str, *, count: int | None = None) -> None:
        """Inject ``mode`` in ``service``'s answers: the next ``count`` calls, or until ``clear()``."""
        if service not in SERVICES:
            raise ValueError(f"unknown service {service!r}: one of {', '.join(SERVICES)}")
        mode = parse_mode(mode.value if isinstance(mode, FaultMode) else mode, service=service)
        if mode.is_signer and self._signers is None:
            raise ValueError(f"fault mode {mode.value} needs the platform's PKI (build the simulator with it)")
        with self._lock:
            if mode is FaultMode.NONE:
                self._faults.pop(service, None)
            else:
                self._faults[service] = _Fault(mode, count)
                self._wake.clear()
        log.warning("simulator fault injection: %s answers %s%s", service, mode.value,
                    f" for the next {count} call(s)" if count else "")

    def clear(self, service: str | None = None) -> None:
        """Lift the fault of ``service`` (of every service by default); wakes the slow answers."""
        with self._lock:
            if service is None:
                self._faults.clear()
            else:
                self._faults.pop(service, None)
            if not self._faults:
                self._wake.set()

    def mode(self, service: str) -> FaultMode:
        with self._lock:
            fault = self._faults.get(service)
            return fault.mode if fault else FaultMode.NONE

    def _take(self, path: str) -> tuple[str, FaultMode] | None:
        service = self._paths.get(path)
        if service is None:
            return None
        with self._lock:
            fault = self._faults.get(service)
            if fault is None:
                return None
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    del self._faults[service]
            key = f"{service}.{fault.mode.value}"
            self.injected[key] = self.injected.get(key, 0) + 1
            return service, fault.mode

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any], app: WsgiApp) -> Iterable[bytes]:
        """Answer through ``app``, with the fault of the service at this address if one is set."""
        taken = self._take(environ.get("PATH_INFO") or "/") if environ.get("REQUEST_METHOD") == "POST" else None
        if taken is None:
            return app(environ, start_response)
        service, mode = taken
        log.info("injecting %s in a %s answer", mode.value, service)
        if mode in (FaultMode.HTML_502, FaultMode.HTML_503):
            _drain(environ)
            status, page = (("502 Bad Gateway", HTML_502) if mode is FaultMode.HTML_502
                            else ("503 Service Unavailable", HTML_503))
            start_response(status, [("Content-Type", "text/html"), ("Content-Length", str(len(page)))])
            return [page]
        if mode is FaultMode.SLOW:
            self._wake.wait(self.slow_seconds)
            return app(environ, start_response)
        status, headers, body = answer_of(app, environ)
        if mode is FaultMode.RESET:
            start_response(status, _with_length(headers, len(body)))
            return _half_then_close(body)
        if mode is FaultMode.MALFORMED_XML:
            body = _break_a_tag(body)
        elif mode is FaultMode.TRUNCATED_XML:
            body = body[: len(body) // 2]
        elif service == "sts":
            body = self._sign_token_again(body, mode)
        else:
            body = self._sign_again(body, mode)
        start_response(status, _with_length(headers, len(body)))
        return [body]

    def _signer(self, mode: FaultMode) -> KeyEntry:
        assert self._signers is not None
        with self._lock:
            entry = self._signer_cache.get(mode)
            if entry is None:
                entry = self._signer_cache[mode] = self._signers(mode)
        return entry

    def _sign_token_again(self, body: bytes, mode: FaultMode) -> bytes:
        """The STS answer with its token's signature made again by the fault's signer (a refusal,
        which holds no token, goes as it is)."""
        entry = self._signer(mode)
        envelope = parse_xml(body)
        for assertion in envelope.iter(f"{{{SAML_NS}}}Assertion"):
            for signature in assertion.findall(f"{{{DS_NS}}}Signature"):
                assertion.remove(signature)
            sign_assertion(assertion, entry)
        return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")

    def _sign_again(self, body: bytes, mode: FaultMode) -> bytes:
        entry = self._signer(mode)
        envelope = parse_xml(body)
        header = envelope.find(f"{{{_SOAP11}}}Header")
        if header is not None:
            for security in header.findall(f"{{{_WSSE}}}Security"):
                header.remove(security)
        # Signed "now" for the Timestamp: the certificate's own dates are the fault.
        sign_with_certificate(envelope, key=entry.private_key, certificate=entry.certificate,
                              now=datetime.now(timezone.utc), ttl=timedelta(minutes=5))
        return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


def _drain(environ: dict[str, Any]) -> None:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > 0:
        environ["wsgi.input"].read(length)


def _with_length(headers: list[tuple[str, str]], length: int) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers if k.lower() != "content-length"] + [("Content-Length", str(length))]


def _half_then_close(body: bytes) -> Iterator[bytes]:
    """Half the promised bytes: the server closes the connection when the answer ends short."""
    yield body[: len(body) // 2]


def _break_a_tag(body: bytes) -> bytes:
    """The answer with its last closing tag misspelt, so that it is not well-formed any more."""
    at = body.rfind(b"</")
    if at < 0:
        return body + b"<unclosed"
    return body[:at] + b"</broken-" + body[at + 2:]

"""Support tracing: every raw upstream SOAP exchange written to a folder, with secrets masked.

Turned on by ``[upstream] trace_folder``.  Each exchange gives two files,
``<time>-<n>-<service>-<path>-request.xml`` and ``...-response.xml``, exactly as sent and received
except that the licence password, certificates and signature values (key material) and anything
that looks like an SSIN are masked, so a trace can be mailed to an integrator or a helpdesk.

``<service>`` names the MyCareNet service of the exchange (``exchange_service``), read from the
request itself: GenericInsurability or MemberData, synchronous or asynchronous (a GenAsync ``MDA``
message), the GenAsync mailbox of eFact, the STS.  The response file starts with a comment naming
it again, with the HTTP status and the address.  One tracer serves every client, so the request,
not the client, says which service it is: the same words whichever client sent it.
"""
from __future__ import annotations

import itertools
import logging
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import requests

from unified_messaging.identifiers import mask_ssins_in_text

log = logging.getLogger(__name__)

_PASSWORD = re.compile(rb"(<(?:[\w.-]+:)?Password\b[^>]*>)([^<]*)(</)")
_KEY_MATERIAL = re.compile(
    rb"(<(?:[\w.-]+:)?(?:BinarySecurityToken|X509Certificate|SignatureValue|Modulus|Exponent)\b[^>]*>)"
    rb"([^<]*)(</)"
)


_MEMBERDATA_SYNC_NS = b"urn:be:fgov:ehealth:mycarenet:memberdata:protocol:v1"
_GENINS_NS = b"urn:be:fgov:ehealth:genericinsurability:protocol:v1"
_GENASYNC_NS = b"urn:be:cin:nip:async:generic"
_BODY_FIRST = re.compile(rb"<(?:[\w.-]+:)?Body\b[^>]*>\s*<(?:[\w.-]+:)?([\w.-]+)")
_MDA_NAMED = re.compile(rb"""\bMessageName\s*=\s*["']MDA["']|<(?:[\w.-]+:)?MessageNames>[^<]*\bMDA\b""")

GENINS = "GenericInsurability (sync)"
MEMBERDATA_SYNC = "MemberData (sync)"
MEMBERDATA_ASYNC = "MemberData (async, GenAsync MDA"  # + " post" / " get" / " confirm" + ")"
GENASYNC = "GenAsync"
STS = "STS"


def exchange_service(url: str, request: bytes) -> str:
    """The MyCareNet service an exchange went to, as a trace names it (``""``: not recognised).

    MemberData over GenAsync is a GenAsync ``post`` whose blob is named ``MDA``, a ``get`` asking
    for ``MDA`` messages, or any call to a MemberData GenAsync address (the platform's ends in
    ``/GenAsync/memberData``); the GenAsync operation follows the service's name.
    """
    path = urlsplit(url).path
    if _MEMBERDATA_SYNC_NS in request:
        return MEMBERDATA_SYNC
    if _GENINS_NS in request:
        return GENINS
    if _GENASYNC_NS in request:
        found = _BODY_FIRST.search(request)
        operation = f" {found.group(1).decode('ascii')}" if found else ""
        if _MDA_NAMED.search(request) or "memberdata" in path.lower():
            return f"{MEMBERDATA_ASYNC}{operation})"
        return GENASYNC + operation
    if "SecurityTokenService" in path or b"RequestSecurityToken" in request:
        return STS
    return ""


def mask_exchange(data: bytes) -> bytes:
    """The message with the licence password, key material and SSINs masked."""
    data = _PASSWORD.sub(rb"\1*****\3", data)
    data = _KEY_MATERIAL.sub(lambda m: m.group(1) + b"[%d characters masked]" % len(m.group(2)) + m.group(3), data)
    return mask_ssins_in_text(data.decode("utf-8", errors="replace")).encode("utf-8")


class ExchangeTracer:
    """Writes masked exchanges to ``folder``; attach it to a ``requests.Session``."""

    def __init__(self, folder: Path, *, now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._now = now
        self._numbers = itertools.count(1)

    def attach(self, session: requests.Session) -> requests.Session:
        session.hooks.setdefault("response", []).append(self._on_response)
        return session

    def _on_response(self, response: requests.Response, *args: object, **kwargs: object) -> None:
        body = response.request.body or b""
        self.record(response.request.url or "", body if isinstance(body, bytes) else body.encode("utf-8"),
                    response.content, response.status_code)

    def record(self, url: str, request: bytes, response: bytes, status: int) -> Path:
        service = exchange_service(url, request)
        names = "-".join(part for part in (_slug(service), _slug(urlsplit(url).path)) if part) or "root"
        stem = f"{self._now():%Y%m%dT%H%M%S.%f}-{next(self._numbers):06d}-{names}"
        (self.folder / f"{stem}-request.xml").write_bytes(mask_exchange(request))
        said = f"{service}: " if service else ""
        (self.folder / f"{stem}-response.xml").write_bytes(
            f"<!-- {said}HTTP {status} from {url} -->\n".encode("utf-8") + mask_exchange(response))
        log.debug("traced exchange %s (%s)", stem, service or "service not recognised")
        return self.folder / f"{stem}-request.xml"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")

"""Support tracing: every raw upstream SOAP exchange written to a folder, with secrets masked.

Turned on by ``[upstream] trace_folder``.  Each exchange gives two files,
``<time>-<n>-<service>-request.xml`` and ``...-response.xml``, exactly as sent and received except
that the licence password, certificates and signature values (key material) and anything that
looks like an SSIN are masked, so a trace can be mailed to an integrator or a helpdesk.
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
        service = re.sub(r"[^A-Za-z0-9]+", "-", urlsplit(url).path).strip("-") or "root"
        stem = f"{self._now():%Y%m%dT%H%M%S.%f}-{next(self._numbers):06d}-{service}"
        (self.folder / f"{stem}-request.xml").write_bytes(mask_exchange(request))
        (self.folder / f"{stem}-response.xml").write_bytes(
            f"<!-- HTTP {status} from {url} -->\n".encode("utf-8") + mask_exchange(response))
        log.debug("traced exchange %s", stem)
        return self.folder / f"{stem}-request.xml"

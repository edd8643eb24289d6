"""The WS-Security vocabulary and small helpers shared by the other ``wsse`` modules.

Namespaces and token-profile URIs, the clock (``Clock``, ``utc_now``, the accepted skew), XML IDs,
``xs:dateTime`` instants as the eHealth stacks write them, and certificates as base64 DER.  It
imports nothing from the rest of the package, so every other module may import it.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

SOAP11_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_NS = "http://www.w3.org/2003/05/soap-envelope"
WSSE_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSSE11_NS = "http://docs.oasis-open.org/wss/oasis-wss-wssecurity-secext-1.1.xsd"
WSU_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
SAML_NS = "urn:oasis:names:tc:SAML:1.0:assertion"

SAML_ASSERTION_ID = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.0#SAMLAssertionID"
SAML_V11_TOKEN_TYPE = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLV1.1"
X509_V3 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
BASE64_BINARY = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"

WSU_ID = f"{{{WSU_NS}}}Id"
SOAP_NAMESPACES = (SOAP11_NS, SOAP12_NS)

DEFAULT_CLOCK_SKEW = timedelta(minutes=5)
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def new_id(prefix: str) -> str:
    """A fresh XML ID (an NCName), such as ``TS-3f2a...``."""
    return f"{prefix}-{uuid.uuid4().hex}"


def format_instant(moment: datetime) -> str:
    """``2024-03-01T09:30:00.123Z``: UTC with milliseconds, as the eHealth stacks write it."""
    utc = aware(moment).astimezone(timezone.utc).replace(tzinfo=None)
    return utc.isoformat(timespec="milliseconds") + "Z"


_INSTANT = re.compile(r"^\s*(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?\s*$")


def parse_instant(text: str | None) -> datetime | None:
    """An ``xs:dateTime`` as an aware UTC datetime (no zone means UTC); None when absent or invalid."""
    match = _INSTANT.match(text or "")
    if not match:
        return None
    base, fraction, zone = match.groups()
    try:
        moment = datetime.fromisoformat(base)
    except ValueError:
        return None
    if fraction:
        moment = moment.replace(microsecond=int(fraction[:6].ljust(6, "0")))
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        return moment.replace(tzinfo=timezone(sign * offset)).astimezone(timezone.utc)
    return moment.replace(tzinfo=timezone.utc)


def aware(moment: datetime) -> datetime:
    """``moment`` with a time zone: a naive datetime is taken as UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@lru_cache(maxsize=64)
def certificate_base64(certificate: x509.Certificate) -> str:
    """A certificate as base64 DER (remembered: certificates are immutable, and the platform puts
    the same one in the BinarySecurityToken of every answer it signs)."""
    return base64.b64encode(certificate.public_bytes(Encoding.DER)).decode("ascii")


@lru_cache(maxsize=64)
def certificate_from_base64(text: str | None) -> x509.Certificate:
    """A certificate from base64 DER (line breaks allowed); ``ValueError`` when it is none.

    Remembered (certificates are immutable): the same token's and the platform's certificates
    come back in every message, and reading one costs more than the rest of the lookup.
    """
    try:
        der = base64.b64decode("".join((text or "").split()), validate=True)
        return x509.load_der_x509_certificate(der)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not a base64 DER certificate ({exc})") from None


def children(parent: etree._Element, tag: str) -> list[etree._Element]:
    """The direct children of ``parent`` named ``tag`` (Clark notation)."""
    return [child for child in parent if child.tag == tag]


@lru_cache(maxsize=64)
def certificate_fingerprint(certificate: x509.Certificate) -> str:
    """The SHA-256 fingerprint of a certificate, in hexadecimal (remembered: the token cache asks
    for its certificate's on every call)."""
    return hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()

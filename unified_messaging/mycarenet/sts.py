"""Client of the eHealth STS: a SAML 1.1 holder-of-key token for the care provider's certificate.

The request is a WS-Trust 1.3 ``RequestSecurityToken`` (SOAP 1.1, SOAPAction
``urn:be:fgov:ehealth:sts:protocol:v1:RequestSecurityToken``, as in the eHealth WS-Trust WSDL):

* ``TokenType`` SAML 1.1, ``RequestType`` Issue, ``KeyType`` PublicKey, ``UseKey`` holding the
  authentication certificate (the key the token will be bound to), a ``Lifetime``;
* ``Claims`` (dialect ``.../authorization/200706/authclaims``): one ``auth:ClaimType`` per SAML
  attribute wanted.  The eHealth convention, as public integrations use it: identification
  attributes carry the holder's value (``urn:be:fgov:person:ssin`` = the SSIN, or
  ``urn:be:fgov:ehealth:1.0:<quality>:nihii-number`` = the organisation's number), certification
  attributes name what the STS must confirm (``...professional:nurse:boolean``,
  ``...nihii:nurse:nihii11``, ``...recognisedlabo:boolean``...).  ``claims_for`` derives them
  from the certificate's identity and the qualities table (``qualities.toml``); callers may pass
  their own.
* ``wsse:Security``: Timestamp, BinarySecurityToken (the authentication certificate) and a
  signature over the three of them and the Body, made with the authentication key.

The answer is a ``RequestSecurityTokenResponse`` whose ``RequestedSecurityToken`` holds the
assertion.  ``SamlToken.assertion_xml`` keeps the assertion's bytes exactly as they arrived when
they stand alone (they usually declare their own namespaces); otherwise lxml's serialisation of
the element, which adds the namespace declarations it inherited.  Both canonicalise identically,
so the STS's signature on the assertion holds wherever it is inserted.

``TokenCache`` keeps one token per certificate and renews it shortly before it expires; callers
who need the same certificate's token while it is being renewed wait for that single STS call.
"""
from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

import requests
from cryptography import x509
from lxml import etree

from unified_messaging.mycarenet import qualities
from unified_messaging.identifiers import mask_ssins_in_text
from unified_messaging.domain.errors import UpstreamError, UpstreamFault, UpstreamUnavailable
from unified_messaging.mycarenet.faults import soap_fault
from unified_messaging.mycarenet.transport import check_answer, network_reason
from unified_messaging.mycarenet.keystore import IdentifierKind, Identity, KeyEntry, TrustedCa, describe_certificate
from unified_messaging.mycarenet.wsse import (
    SAML_NS, SAML_V11_TOKEN_TYPE, SOAP11_NS, WSU_NS, Clock, RefusalCode, SecurityRefusal, SigningCredential,
    binary_security_token, canonicalize, certificate_fingerprint, format_instant, new_id, read_assertion,
    sign_with_certificate, utc_now, verify_assertion,
)
from unified_messaging.xmlsafe import UnsafeXml, parse_xml

logger = logging.getLogger(__name__)

WST_NS = "http://docs.oasis-open.org/ws-sx/ws-trust/200512"
AUTH_NS = "http://docs.oasis-open.org/wsfed/authorization/200706"
SOA_ERRORS_NS = "urn:be:fgov:ehealth:errors:soa:v1"
STS_ACTION = "urn:be:fgov:ehealth:sts:protocol:v1:RequestSecurityToken"
ISSUE = f"{WST_NS}/Issue"
PUBLIC_KEY = f"{WST_NS}/PublicKey"
CLAIMS_DIALECT = f"{AUTH_NS}/authclaims"
PRODUCTION_ENDPOINT = "https://services.ehealth.fgov.be/IAM/SecurityTokenService/v1"
ACCEPTANCE_ENDPOINT = "https://services-acpt.ehealth.fgov.be/IAM/SecurityTokenService/v1"

IDENTIFICATION_NAMESPACE = "urn:be:fgov:identification-namespace"
CERTIFIED_NAMESPACE = "urn:be:fgov:certified-namespace:ehealth"
HOLDER_SSIN = "urn:be:fgov:ehealth:1.0:certificateholder:person:ssin"
PERSON_SSIN = "urn:be:fgov:person:ssin"

DEFAULT_TOKEN_LIFETIME = timedelta(hours=24)
_REQUEST_TTL = timedelta(seconds=60)
_ADVICE = ("Check that the eHealth keystore is the right one and still valid, and that this computer's clock "
           "is right; call the eHealth helpdesk if it lasts.")
_CA_ADVICE = ("Check that [upstream] sts_url is the eHealth STS of this environment and that [upstream] ehealth_ca "
              "holds the eHealth CA certificates of the same environment (acceptance and production differ); "
              "the token is not used.")


@dataclass(frozen=True)
class Claim:
    """One SAML attribute asked of the STS: with a ``value`` to be identified by, without to be certified."""

    uri: str
    value: str | None = None

    def __repr__(self) -> str:
        value = f", value={mask_ssins_in_text(self.value)!r}" if self.value else ""
        return f"Claim({self.uri!r}{value})"


def claims_for(identity: Identity) -> tuple[Claim, ...]:
    """The attributes eHealth asks for, for this certificate holder, from the qualities table
    (``qualities.toml``): a person's SSIN twice (holder and person), then the quality's own
    (a professional boolean and NIHII; an organisation's number and its "recognised" boolean).
    Identification claims carry the holder's number; certified ones are asked without a value.
    """
    person = identity.kind is IdentifierKind.SSIN
    if not identity.quality:
        if person:
            return (Claim(HOLDER_SSIN, identity.value), Claim(PERSON_SSIN, identity.value))
        raise ValueError(f"no STS claims are known for {identity}; pass them explicitly")
    rules = qualities.active().claims(identity.quality, "person" if person else "organisation")
    return tuple(Claim(rule.uri, identity.value if rule.identifies else None) for rule in rules)


@dataclass(frozen=True, repr=False, eq=False)
class SamlToken:
    """A token from the STS.  ``assertion_xml`` is secret-ish and personal: never log it."""

    assertion_xml: bytes
    assertion_id: str
    not_before: datetime
    not_after: datetime
    attributes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def attribute(self, name: str) -> str | None:
        values = self.attributes.get(name)
        return values[0] if values else None

    def __repr__(self) -> str:
        return (f"SamlToken(id={self.assertion_id!r}, not_before={format_instant(self.not_before)}, "
                f"not_after={format_instant(self.not_after)}, attributes={sorted(self.attributes)})")


# --------------------------------------------------------------------------------------------
# The request
# --------------------------------------------------------------------------------------------

def build_request(entry: KeyEntry, *, claims: Sequence[Claim], now: datetime,
                  lifetime: timedelta = DEFAULT_TOKEN_LIFETIME) -> etree._Element:
    """The signed SOAP envelope of a ``RequestSecurityToken`` for ``entry``'s certificate."""
    envelope = etree.Element(f"{{{SOAP11_NS}}}Envelope", nsmap={"soapenv": SOAP11_NS})
    etree.SubElement(envelope, f"{{{SOAP11_NS}}}Header")
    body = etree.SubElement(envelope, f"{{{SOAP11_NS}}}Body", nsmap={"wsu": WSU_NS})
    body.append(_request_security_token(entry.certificate, claims, now, lifetime))
    return sign_with_certificate(envelope, key=entry.private_key, certificate=entry.certificate, now=now,
                                 ttl=_REQUEST_TTL)


def _request_security_token(certificate: x509.Certificate, claims: Sequence[Claim], now: datetime,
                            lifetime: timedelta) -> etree._Element:
    rst = etree.Element(f"{{{WST_NS}}}RequestSecurityToken", nsmap={"wst": WST_NS, "auth": AUTH_NS},
                        Context=new_id("RST"))
    etree.SubElement(rst, f"{{{WST_NS}}}TokenType").text = SAML_V11_TOKEN_TYPE
    etree.SubElement(rst, f"{{{WST_NS}}}RequestType").text = ISSUE
    claims_element = etree.SubElement(rst, f"{{{WST_NS}}}Claims", Dialect=CLAIMS_DIALECT)
    for claim in claims:
        claim_type = etree.SubElement(claims_element, f"{{{AUTH_NS}}}ClaimType", Uri=claim.uri)
        if claim.value is not None:
            etree.SubElement(claim_type, f"{{{AUTH_NS}}}Value").text = claim.value
    period = etree.SubElement(rst, f"{{{WST_NS}}}Lifetime")
    etree.SubElement(period, f"{{{WSU_NS}}}Created", nsmap={"wsu": WSU_NS}).text = format_instant(now)
    etree.SubElement(period, f"{{{WSU_NS}}}Expires", nsmap={"wsu": WSU_NS}).text = format_instant(now + lifetime)
    etree.SubElement(rst, f"{{{WST_NS}}}KeyType").text = PUBLIC_KEY
    use_key = etree.SubElement(rst, f"{{{WST_NS}}}UseKey")
    use_key.append(binary_security_token(certificate, with_id=False))
    return rst


# --------------------------------------------------------------------------------------------
# The answer
# --------------------------------------------------------------------------------------------

def parse_response(data: bytes, *, endpoint: str = "the STS", status: int = 200) -> SamlToken:
    """The token of an RSTR envelope; ``UpstreamFault`` for a SOAP fault, ``UpstreamUnavailable``
    for an answer that is not SOAP."""
    try:
        envelope = parse_xml(data) if data.strip() else None
    except UnsafeXml as exc:
        raise UpstreamUnavailable(endpoint, f"HTTP {status}, the answer is not acceptable XML: {exc}") from None
    if envelope is None or envelope.tag != f"{{{SOAP11_NS}}}Envelope":
        raise UpstreamUnavailable(endpoint, f"HTTP {status}, the answer is not a SOAP message")
    fault = envelope.find(f"{{{SOAP11_NS}}}Body/{{{SOAP11_NS}}}Fault")
    if fault is not None:
        raise soap_fault(fault, default_advice=_ADVICE)
    assertions = envelope.findall(f"{{{SOAP11_NS}}}Body//{{{WST_NS}}}RequestedSecurityToken/{{{SAML_NS}}}Assertion")
    if len(assertions) != 1:
        raise UpstreamFault("UM-STS-NO-TOKEN",
                            f"The STS answer holds {len(assertions)} SAML 1.1 assertions instead of one",
                            "Check that the [sts] address points at the eHealth STS (WS-Trust, SAML 1.1 tokens).")
    assertion = assertions[0]
    try:
        info = read_assertion(assertion)
    except SecurityRefusal as refusal:
        raise UpstreamFault("UM-STS-NO-TOKEN", refusal.message, _ADVICE) from None
    if info.not_on_or_after is None:
        raise UpstreamFault("UM-STS-NO-TOKEN", "The STS token has no end of validity (NotOnOrAfter)", _ADVICE)
    return SamlToken(
        assertion_xml=received_bytes(data, assertion),
        assertion_id=info.assertion_id,
        not_before=info.not_before or info.issue_instant or info.not_on_or_after,
        not_after=info.not_on_or_after,
        attributes=info.attributes,
    )


def received_bytes(data: bytes, element: etree._Element) -> bytes:
    """The bytes of ``element`` exactly as they are in ``data`` when they stand alone as XML with
    the same canonical form; else lxml's serialisation of the element (see the module docstring)."""
    serialised = etree.tostring(element, encoding="UTF-8")
    candidate = _raw_slice(data, element.get("AssertionID") or "")
    if candidate is None:
        return serialised
    try:
        if canonicalize(parse_xml(candidate)) == canonicalize(element):
            return candidate
    except UnsafeXml:
        pass
    return serialised


def _raw_slice(data: bytes, assertion_id: str) -> bytes | None:
    pattern = re.compile(rb"AssertionID\s*=\s*([\"'])" + re.escape(assertion_id.encode()) + rb"\1")
    matches = list(pattern.finditer(data)) if assertion_id else []
    if len(matches) != 1:
        return None
    start = data.rfind(b"<", 0, matches[0].start())
    name = re.match(rb"<([^\s/>]+)", data[start:])
    if start < 0 or name is None:
        return None
    tags = re.compile(rb"<(/?)" + re.escape(name.group(1)) + rb"(?=[\s/>])")
    depth = 0
    for tag in tags.finditer(data, start):
        end = _tag_end(data, tag.start())
        if end is None:
            return None
        if tag.group(1):
            depth -= 1
        elif data[end - 1:end] != b"/":
            depth += 1
        if depth == 0:
            return data[start:end + 1]
    return None


def _tag_end(data: bytes, position: int) -> int | None:
    """The index of the ``>`` closing the tag that starts at ``position`` (quotes may hold ``>``)."""
    quote = None
    for index in range(position, len(data)):
        byte = data[index:index + 1]
        if quote:
            if byte == quote:
                quote = None
        elif byte in (b'"', b"'"):
            quote = byte
        elif byte == b">":
            return index
    return None


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------

class StsClient:
    """Asks the eHealth STS for SAML tokens over HTTP.

    ``session`` is used as given (the caller then owns its thread-safety); without one, every call
    uses a short-lived session of its own, which suits a call made once per token.  When
    ``sts_certificate`` is given, the token's signature is checked against it; with ``ehealth_ca``
    (``[upstream] ehealth_ca``, one CA or a bundle) the token's signature is checked and its
    signer's certificate must chain to that CA.  With neither, the token is only read.
    """

    def __init__(self, endpoint: str, *, session: requests.Session | None = None, timeout: float = 30.0,
                 token_lifetime: timedelta = DEFAULT_TOKEN_LIFETIME, now: Clock = utc_now,
                 sts_certificate: x509.Certificate | None = None, ehealth_ca: TrustedCa | None = None) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.token_lifetime = token_lifetime
        self._session = session
        self._now = now
        self._sts_certificate = sts_certificate
        self._ehealth_ca = ehealth_ca or None

    def request_token(self, entry: KeyEntry, *, claims: Sequence[Claim] | None = None) -> SamlToken:
        """A fresh token for ``entry`` (its authentication key and certificate)."""
        who = describe_certificate(entry.certificate)
        wanted = tuple(claims) if claims is not None else claims_for(entry.identity)
        envelope = build_request(entry, claims=wanted, now=self._now(), lifetime=self.token_lifetime)
        payload = etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")
        response = self._post(payload)
        try:
            token = parse_response(response.content, endpoint=self.endpoint, status=response.status_code)
        except UpstreamFault as fault:
            logger.warning("STS refused a token for %s: %s %s", who, fault.code, fault.message)
            raise
        self._check_token(token, entry)
        logger.info("STS token %s for %s, valid until %s", token.assertion_id, who, format_instant(token.not_after))
        return token

    def _post(self, payload: bytes) -> requests.Response:
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{STS_ACTION}"'}
        try:
            if self._session is not None:
                return check_answer(self._session.post(self.endpoint, data=payload, headers=headers,
                                                       timeout=self.timeout))
            with requests.Session() as session:
                return check_answer(session.post(self.endpoint, data=payload, headers=headers, timeout=self.timeout))
        except requests.RequestException as exc:
            raise UpstreamUnavailable(self.endpoint, f"the STS: {network_reason(exc, self.timeout)}") from None

    def _check_token(self, token: SamlToken, entry: KeyEntry) -> None:
        assertion = parse_xml(token.assertion_xml)
        try:
            if self._sts_certificate is not None or self._ehealth_ca is not None:
                info = verify_assertion(assertion, sts_certificate=self._sts_certificate, now=self._now(),
                                        trusted_ca=self._ehealth_ca)
            else:
                info = read_assertion(assertion)
        except SecurityRefusal as refusal:
            logger.warning("STS token refused: %s", refusal.message)
            advice = _CA_ADVICE if refusal.code is RefusalCode.ASSERTION_FOREIGN else _ADVICE
            raise UpstreamFault("UM-STS-BAD-TOKEN", refusal.message, advice) from None
        if info.holder_certificate != entry.certificate:
            raise UpstreamFault("UM-STS-BAD-TOKEN", "The STS issued a token for another certificate than the one that "
                                "asked for it", _ADVICE)


# --------------------------------------------------------------------------------------------
# The cache
# --------------------------------------------------------------------------------------------

class TokenSource(Protocol):
    def request_token(self, entry: KeyEntry) -> SamlToken: ...


@dataclass
class _Slot:
    """One certificate's token, and the lock that makes its renewal happen once."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    token: SamlToken | None = None
    finished: int = 0
    failure: UpstreamError | None = None


class TokenCache:
    """One token per certificate (by SHA-256 fingerprint), renewed ``renew_before`` its end.

    Callers for the same certificate share one lock: while one asks the STS, the others wait and
    then take its token, or its error (so that an unreachable STS is not asked once per waiting
    caller).  Different certificates have different locks.  When a renewal fails while the
    current token still has at least a minute of validity, that token is used.
    """

    _LAST_RESORT_MARGIN = timedelta(minutes=1)

    def __init__(self, sts_client: TokenSource, *, renew_before: timedelta = timedelta(minutes=5),
                 now: Clock = utc_now) -> None:
        self._sts = sts_client
        self.renew_before = renew_before
        self._now = now
        self._guard = threading.Lock()
        self._slots: dict[str, _Slot] = {}

    def get(self, entry: KeyEntry) -> SamlToken:
        """A token for ``entry`` valid for more than ``renew_before``, from the cache or the STS."""
        slot = self._slot(entry)
        finished_before = slot.finished
        with slot.lock:
            now = self._now()
            if slot.token is not None and now < slot.token.not_after - self.renew_before:
                return slot.token
            error = None
            if slot.failure is not None and slot.finished != finished_before:
                error = _replay(slot.failure)
            else:
                try:
                    slot.token, slot.failure = self._sts.request_token(entry), None
                    return slot.token
                except UpstreamError as exc:
                    slot.failure = error = exc
                finally:
                    slot.finished += 1
            if slot.token is not None and now < slot.token.not_after - self._LAST_RESORT_MARGIN:
                logger.warning("Token renewal for %s failed (%s); using the current token until %s",
                               describe_certificate(entry.certificate), error, format_instant(slot.token.not_after))
                return slot.token
            raise error

    def token_provider(self, entry: KeyEntry) -> Callable[[], SigningCredential]:
        """What ``wsse.WsseSigningPlugin`` needs: the current token with ``entry``'s key."""
        def provide() -> SigningCredential:
            return SigningCredential(self.get(entry).assertion_xml, entry.private_key, entry.certificate)
        return provide

    def invalidate(self, entry: KeyEntry) -> None:
        """Forget ``entry``'s token (the platform refused it): the next ``get`` asks the STS."""
        slot = self._slot(entry)
        with slot.lock:
            slot.token = None

    def has_token(self, certificate: x509.Certificate) -> bool:
        """Whether a token is cached for this certificate (it has acted upstream)."""
        with self._guard:
            slot = self._slots.get(certificate_fingerprint(certificate))
        return slot is not None and slot.token is not None

    def valid_until(self, certificate: x509.Certificate) -> datetime | None:
        """Until when the cached token of this certificate is valid (None: no token cached)."""
        with self._guard:
            slot = self._slots.get(certificate_fingerprint(certificate))
        token = slot.token if slot is not None else None
        return token.not_after if token is not None else None

    def observe_source(self, wrap: Callable[[TokenSource], TokenSource]) -> None:
        """Put an observer around the STS client (the monitoring times every token request)."""
        self._sts = wrap(self._sts)

    def _slot(self, entry: KeyEntry) -> _Slot:
        key = certificate_fingerprint(entry.certificate)
        slot = self._slots.get(key)  # a slot is never replaced once made: read without the lock
        if slot is None:
            with self._guard:
                slot = self._slots.setdefault(key, _Slot())
        return slot


def _replay(error: UpstreamError) -> UpstreamError:
    """A copy of ``error`` to raise in another thread (an exception object carries its traceback)."""
    copy = error.__class__.__new__(error.__class__)
    copy.__dict__.update(error.__dict__)
    copy.args = error.args
    return copy


TOKEN_REFUSALS = frozenset({"SIM-SEC-10", "SIM-SEC-11", "SIM-SEC-12", "SIM-SEC-13", "SIM-SEC-14", "SIM-SEC-15"})
"""Codes that mean "this token is not (or no longer) good": worth one new token.  The platform's catalogue
has no such code; these are the built-in simulator's (``simulator/security.py``)."""

T = TypeVar("T")


def renewing_token(cache: TokenCache, entry: KeyEntry, call: Callable[[], T]) -> T:
    """Run ``call``; when the platform refuses the token, drop it from the cache and try once more.

    Without this a refused token (STS key rolled over, clocks apart) would be sent again until it
    expired, hours later.
    """
    try:
        return call()
    except UpstreamFault as fault:
        if fault.code not in TOKEN_REFUSALS:
            raise
        logger.warning("The platform refused the token of %s (%s); asking the STS for a new one",
                       describe_certificate(entry.certificate), fault.code)
        cache.invalidate(entry)
        return call()

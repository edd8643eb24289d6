"""The platform's security checks on a business call, as the simulator performs them.

``SecurityCheck.check(envelope_bytes)`` returns who called (``CallerInfo``) or raises
``SimulatedFault`` with a platform-style code and a readable English message.  It is also a
simulator interceptor: ``simulator.interceptors.append(security_check)`` runs it on every SOAP
call before dispatch and leaves the caller in ``request.context["caller"]``.

What is checked, in order: the WS-Security signature (``wsse.verify_envelope``: structure, Body and
Timestamp signed, digests, signature by the holder-of-key of the SAML assertion, no wrapping), the
timestamp, the holder's certificate (issued by the simulator's CA, within its dates), the
assertion (signed by the simulator's STS, within its dates), then the MyCareNet licence:
``Origin/Package/License/Username`` and ``Password``, looked up by local names anywhere in the
Body, so that GenericInsurability (``CommonInput/Origin/...``) and GenAsync (``CommonInput/Origin``
for post, ``Origin`` for get and confirm) are read alike.

The codes follow the platform's catalogue of SOA errors (the GenericInsurability error table,
``shared/reference/errors/GenInsErrors.json``; ``tests/test_fault_catalogue.py`` checks every code
the simulator answers against it; the message-format codes, ``SOA-00001`` and ``SOA-03001``..``SOA-03006``,
are ``simulator/soap.py``'s) wherever the catalogue has a code for the refusal:

=========  =================================================================================
code       catalogue meaning -> the refusals answered with it
=========  =================================================================================
SOA-01001  user not recognised (not logged in, username or password wrong) -> no MyCareNet licence
           (``Origin/Package/License``) in the request, several, or its username or password is
           wrong; the holder's certificate was not issued by the platform's (simulator's) CA
SOA-01002  the user has no access (``simulator/access.py``: the quality may not use the service)
SOA-03001  the message content is not conform -> not well-formed XML or not a SOAP envelope; (STS
           only) the RequestSecurityToken is not one the STS can answer
=========  =================================================================================

The catalogue has no code for what goes wrong in the WS-Security mechanics (a signature, a digest,
a Timestamp, the SAML token's dates, a replay): the platform's real answers there are less detailed.
For those the simulator keeps codes of its own, one per refusal so that tests, the gateway's advice
and support staff can tell them apart, written ``SIM-SEC-nn`` so that they are plainly not the
platform's (``nn`` is the number they had as ``SOA-010nn`` before they were renamed):

==========  ================================================================================
code        refusal (not in the platform's catalogue)
==========  ================================================================================
SIM-SEC-01  the message is not signed (no ``wsse:Security`` header, or no signature in it)
SIM-SEC-02  the signature value does not verify with the holder's key
SIM-SEC-03  a signed part (Body, Timestamp, token) was changed after signing (digest mismatch)
SIM-SEC-04  the Body, the Timestamp (or the STS request's token) is not covered by the signature
SIM-SEC-05  a reference is ambiguous or points outside the expected elements (signature wrapping)
SIM-SEC-06  an algorithm is refused (SHA-1, inclusive C14N...): RSA/ECDSA with SHA-2 and exclusive C14N only
SIM-SEC-07  the Timestamp is missing or incomplete
SIM-SEC-08  the Timestamp has expired
SIM-SEC-09  the Timestamp is in the future (the sender's clock is ahead)
SIM-SEC-10  no usable token: the signature names no SAML assertion or certificate found in the message
SIM-SEC-11  the SAML assertion is not usable (no AssertionID, no holder-of-key certificate...)
SIM-SEC-12  the SAML assertion was issued by another STS than the simulator's
SIM-SEC-13  the SAML assertion's signature does not verify (altered)
SIM-SEC-14  the SAML assertion has expired
SIM-SEC-15  the SAML assertion is not valid yet
SIM-SEC-17  the holder's certificate has expired or is not valid yet
SIM-SEC-21  the same signed message was already received (replay)
SIM-SEC-22  the Timestamp claims a lifetime longer than 10 minutes
SIM-SEC-23  the XAdES of an eFact post does not verify (``xades_t.py``)
SIM-SEC-24  the XAdES of an eFact post is signed by another certificate than the caller's
SIM-SEC-25  MemberData: the caller has no encryption certificate at the key depot (answers are encrypted)
==========  ================================================================================
"""
from __future__ import annotations

import heapq
import hmac
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from cryptography import x509
from lxml import etree

from unified_messaging.mycarenet.keystore import Identity, describe_certificate
from unified_messaging.mycarenet.wsse import (
    DEFAULT_CLOCK_SKEW, DS_NS, WSSE_NS, RefusalCode, SecurityRefusal, VerifiedCaller, utc_now, verify_envelope,
)
from unified_messaging.simulator.counters import Counters
from unified_messaging.simulator.soap import SoapFault

logger = logging.getLogger(__name__)

# The platform catalogue's codes (see the module docstring for what each covers)
CERTIFICATE_UNTRUSTED = "SOA-01001"
LICENCE_MISSING = "SOA-01001"
LICENCE_REFUSED = "SOA-01001"
STS_INVALID_REQUEST = "SOA-03001"
MALFORMED = "SOA-03001"

# The simulator's own codes: the catalogue has none for these refusals
UNSIGNED = "SIM-SEC-01"
SIGNATURE_INVALID = "SIM-SEC-02"
TAMPERED = "SIM-SEC-03"
PART_NOT_SIGNED = "SIM-SEC-04"
AMBIGUOUS_REFERENCE = "SIM-SEC-05"
ALGORITHM_REFUSED = "SIM-SEC-06"
TIMESTAMP_MISSING = "SIM-SEC-07"
TIMESTAMP_EXPIRED = "SIM-SEC-08"
TIMESTAMP_NOT_YET_VALID = "SIM-SEC-09"
TOKEN_MISSING = "SIM-SEC-10"
ASSERTION_INVALID = "SIM-SEC-11"
ASSERTION_FOREIGN = "SIM-SEC-12"
ASSERTION_SIGNATURE_INVALID = "SIM-SEC-13"
ASSERTION_EXPIRED = "SIM-SEC-14"
ASSERTION_NOT_YET_VALID = "SIM-SEC-15"
CERTIFICATE_EXPIRED = "SIM-SEC-17"
REPLAYED = "SIM-SEC-21"
TIMESTAMP_TOO_LONG = "SIM-SEC-22"
NON_CATALOGUE_PREFIX = "SIM-SEC-"  # what marks a code as the simulator's own

CODES: Mapping[RefusalCode, str] = {
    RefusalCode.MALFORMED: MALFORMED,
    RefusalCode.UNSIGNED: UNSIGNED,
    RefusalCode.SIGNATURE_INVALID: SIGNATURE_INVALID,
    RefusalCode.DIGEST_MISMATCH: TAMPERED,
    RefusalCode.PART_NOT_SIGNED: PART_NOT_SIGNED,
    RefusalCode.AMBIGUOUS_REFERENCE: AMBIGUOUS_REFERENCE,
    RefusalCode.ALGORITHM_REFUSED: ALGORITHM_REFUSED,
    RefusalCode.TIMESTAMP_MISSING: TIMESTAMP_MISSING,
    RefusalCode.TIMESTAMP_EXPIRED: TIMESTAMP_EXPIRED,
    RefusalCode.TIMESTAMP_NOT_YET_VALID: TIMESTAMP_NOT_YET_VALID,
    RefusalCode.TIMESTAMP_TOO_LONG: TIMESTAMP_TOO_LONG,
    RefusalCode.TOKEN_MISSING: TOKEN_MISSING,
    RefusalCode.ASSERTION_INVALID: ASSERTION_INVALID,
    RefusalCode.ASSERTION_FOREIGN: ASSERTION_FOREIGN,
    RefusalCode.ASSERTION_SIGNATURE_INVALID: ASSERTION_SIGNATURE_INVALID,
    RefusalCode.ASSERTION_EXPIRED: ASSERTION_EXPIRED,
    RefusalCode.ASSERTION_NOT_YET_VALID: ASSERTION_NOT_YET_VALID,
    RefusalCode.CERTIFICATE_UNTRUSTED: CERTIFICATE_UNTRUSTED,
    RefusalCode.CERTIFICATE_EXPIRED: CERTIFICATE_EXPIRED,
}


class SimulatedFault(SoapFault):
    """A security refusal, answered like the platform does (a ``Client`` SOAP fault with a SOA code)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__("Client", code, message)


def fault_for(refusal: SecurityRefusal) -> SimulatedFault:
    return SimulatedFault(CODES[refusal.code], refusal.message)


class CounterSink(Protocol):
    def increment(self, name: str, by: int = 1) -> None: ...


@dataclass(frozen=True, repr=False, eq=False)
class CallerInfo:
    """Who made an accepted business call."""

    certificate: x509.Certificate
    identity: Identity | None
    assertion_id: str
    attributes: Mapping[str, tuple[str, ...]]
    licence_username: str
    verified: VerifiedCaller

    def __repr__(self) -> str:
        return (f"CallerInfo({describe_certificate(self.certificate)!r}, assertion={self.assertion_id!r}, "
                f"licence={self.licence_username!r})")


class SecurityCheck:
    """The platform's checks on a signed business call (see the module docstring for the codes)."""

    def __init__(self, ca_certificate: x509.Certificate, sts_certificate: x509.Certificate, *,
                 licences: Mapping[str, str], now: Callable[[], datetime] = utc_now,
                 max_clock_skew: timedelta = DEFAULT_CLOCK_SKEW, counters: CounterSink | None = None) -> None:
        self._ca = ca_certificate
        self._sts = sts_certificate
        self._licences = dict(licences)
        self._now = now
        self._skew = max_clock_skew
        self.counters: CounterSink = counters if counters is not None else Counters()
        self._seen: set[str] = set()
        self._expiries: list[tuple[datetime, str]] = []  # a heap: the earliest expiry first
        self._replay_lock = threading.Lock()

    def check(self, envelope_bytes: bytes, *, parsed: etree._Element | None = None) -> CallerInfo:
        """Who called, or ``SimulatedFault`` naming the first problem found; ``parsed``: the bytes as
        ``parse_request`` read them (with ``parse_xml``), so that they are not parsed twice."""
        try:
            caller = self._check(envelope_bytes, parsed)
        except SimulatedFault as fault:
            self.counters.increment(f"security.refused.{fault.code}")
            logger.info("Business call refused: %s %s", fault.code, fault.message)
            raise
        self.counters.increment("security.accepted")
        if logger.isEnabledFor(logging.DEBUG):  # describing a certificate costs ~0.1 ms: only when logged
            logger.debug("Business call from %s accepted", describe_certificate(caller.certificate))
        return caller

    def __call__(self, request: Any) -> None:
        """The simulator interceptor form: checks ``request.raw``, sets ``request.context["caller"]``."""
        request.context["caller"] = self.check(request.raw, parsed=getattr(request, "envelope", None))

    def _check(self, envelope_bytes: bytes, parsed: etree._Element | None = None) -> CallerInfo:
        try:
            verified = verify_envelope(envelope_bytes, trusted_ca=self._ca, now=self._now, max_clock_skew=self._skew,
                                       sts_certificate=self._sts, parsed=parsed)
        except SecurityRefusal as refusal:
            raise fault_for(refusal) from None
        self._refuse_replay(verified)
        if verified.assertion is None:
            raise SimulatedFault(TOKEN_MISSING, "The message is signed with a certificate, not with a SAML "
                                                "holder-of-key token of the eHealth STS; ask the STS for a token "
                                                "and sign with it.")
        username = self._check_licence(verified.body)
        return CallerInfo(certificate=verified.certificate, identity=verified.identity,
                          assertion_id=verified.assertion.assertion_id, attributes=verified.assertion.attributes,
                          licence_username=username, verified=verified)

    def _refuse_replay(self, verified: VerifiedCaller) -> None:
        """Each signed message is accepted once: its signature value is remembered until its
        Timestamp (plus the allowed skew) has expired."""
        # the message's own signature (a direct child of wsse:Security), not the assertion's, which
        # is the same for every call made with one token
        soap = etree.QName(verified.envelope).namespace  # the one Header's one Security (verify_envelope)
        value = verified.envelope.findtext(f"{{{soap}}}Header/{{{WSSE_NS}}}Security/{{{DS_NS}}}Signature/"
                                           f"{{{DS_NS}}}SignatureValue")
        if not value:
            return
        now = self._now()
        with self._replay_lock:
            while self._expiries and self._expiries[0][0] < now:  # forget what can no longer be replayed
                self._seen.discard(heapq.heappop(self._expiries)[1])
            if value in self._seen:
                raise SimulatedFault(REPLAYED, "This signed message was already received; sign every message anew "
                                               "(a new Timestamp and signature).")
            self._seen.add(value)
            heapq.heappush(self._expiries, (verified.expires + self._skew, value))

    def _check_licence(self, body: etree._Element) -> str:
        licences = [element for element in body.iter("{*}License") if _is_licence(element)]  # any namespace or none
        if not licences:
            raise SimulatedFault(LICENCE_MISSING, "The request carries no MyCareNet licence "
                                                  "(Origin/Package/License with Username and Password).")
        if len(licences) > 1:
            raise SimulatedFault(LICENCE_MISSING, "The request carries several MyCareNet licences; send exactly one.")
        username = _child_text(licences[0], "Username")
        password = _child_text(licences[0], "Password")
        expected = self._licences.get(username)
        if not username or expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            raise SimulatedFault(LICENCE_REFUSED, "The MyCareNet licence username or password is not recognised; check "
                                                  "the licence in the gateway's settings.")
        return username


def _local(element: etree._Element | None) -> str:
    return etree.QName(element).localname if element is not None else ""


def _is_licence(element: etree._Element) -> bool:
    tag = element.tag  # Clark notation: the local name is what follows "}" (a cheap test for every element)
    if tag != "License" and not tag.endswith("}License"):
        return False
    package = element.getparent()
    origin = package.getparent() if package is not None else None
    return _local(element) == "License" and _local(package) == "Package" and _local(origin) == "Origin"


def _child_text(element: etree._Element, name: str) -> str:
    for child in element:
        if isinstance(child.tag, str) and _local(child) == name:
            return (child.text or "").strip()
    return ""

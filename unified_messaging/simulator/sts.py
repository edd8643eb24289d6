"""The simulator's eHealth STS: a WSGI application issuing SAML 1.1 holder-of-key tokens.

It answers a WS-Trust 1.3 ``RequestSecurityToken`` posted over HTTP (see ``mycarenet/sts.py`` for
the request), after checking what the real STS checks:

* the WS-Security signature: Timestamp, BinarySecurityToken and Body signed by the key of the
  BinarySecurityToken's certificate (``wsse.verify_envelope``), the Timestamp's dates;
* that certificate: issued by the simulator's CA (``verify_chain``) and within its dates;
* the request: SAML 1.1 token type, Issue, and a ``UseKey`` certificate equal to the signer's (a
  token is only bound to the key that proved its possession).

The token is a SAML 1.1 assertion (Issuer ``urn:be:fgov:ehealth:sts:1_0`` like the real one):
Conditions NotBefore (backdated five minutes for clock skew, like eHealth's) / NotOnOrAfter,
an AuthenticationStatement whose Subject confirms the holder-of-key with the holder's certificate in
``ds:KeyInfo``, an AttributeStatement with the requested attributes the simulator can certify from
the certificate's identity (``Identity.from_certificate``), and an enveloped signature (exclusive
C14N, RSA-SHA256) by the simulator's STS key, whose certificate is in the signature's KeyInfo.
Requested attributes it cannot certify are left out; without claims it issues all it knows.

Refusals are SOAP faults in the platform style (``soap.fault_envelope``) with the codes of
``simulator.security``.  ``counters`` counts ``sts.issued`` and ``sts.refused.<code>``.
"""
from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from lxml import etree

from unified_messaging.mycarenet import qualities
from unified_messaging.mycarenet.keystore import IdentifierKind, Identity, KeyEntry, KeystoreError, describe_certificate
from unified_messaging.mycarenet.sts import (
    AUTH_NS, CERTIFIED_NAMESPACE, HOLDER_SSIN, IDENTIFICATION_NAMESPACE, ISSUE, PERSON_SSIN, PUBLIC_KEY, WST_NS, Claim,
)
from unified_messaging.mycarenet.wsse import (
    DEFAULT_CLOCK_SKEW, DS_NS, HOLDER_OF_KEY, SAML_NS, SAML_V11_TOKEN_TYPE, SOAP11_NS, WSSE_NS, WSU_ID, WSU_NS,
    SecurityRefusal, certificate_base64, certificate_from_base64, format_instant, parse_instant, sign_elements,
    utc_now, verify_envelope,
)
from unified_messaging.simulator.counters import Counters
from unified_messaging.simulator.security import (
    STS_INVALID_REQUEST, CounterSink, SimulatedFault, fault_for,
)
from unified_messaging.simulator.soap import CONTENT_TYPE, UNDEFINED, SoapFault, fault_envelope
from unified_messaging.xmlsafe import parse_xml

logger = logging.getLogger(__name__)

ISSUER = "urn:be:fgov:ehealth:sts:1_0"
X509_PKI = "urn:oasis:names:tc:SAML:1.0:am:X509-PKI"
X509_SUBJECT_NAME = "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName"
MAX_REQUEST_BYTES = 256 * 1024
_BACKDATE = timedelta(minutes=5)


class SimulatedSts:
    """The STS as a WSGI application (POST the RST; any other method gets 405)."""

    def __init__(self, ca_certificate: x509.Certificate, signing_entry: KeyEntry, *,
                 token_lifetime: timedelta = timedelta(hours=24), now: Callable[[], datetime] = utc_now,
                 max_clock_skew: timedelta = DEFAULT_CLOCK_SKEW, counters: CounterSink | None = None) -> None:
        self._ca = ca_certificate
        self._signing = signing_entry
        self.token_lifetime = token_lifetime
        self._now = now
        self._skew = max_clock_skew
        self.counters: CounterSink = counters if counters is not None else Counters()

    @property
    def certificate(self) -> x509.Certificate:
        """The certificate that signs the tokens (what business services trust)."""
        return self._signing.certificate

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            body = b"POST a WS-Trust RequestSecurityToken to this address.\n"
            start_response("405 Method Not Allowed", [("Content-Type", "text/plain; charset=utf-8"),
                                                      ("Allow", "POST"), ("Content-Length", str(len(body)))])
            return [body]
        status, answer = self.answer(_read_body(environ))
        start_response(status, [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(answer)))])
        return [answer]

    def answer(self, request: bytes | None) -> tuple[str, bytes]:
        """The HTTP status and SOAP answer (RSTR or fault) for the bytes of a request."""
        try:
            if request is None:
                raise SimulatedFault(STS_INVALID_REQUEST, f"The request is larger than {MAX_REQUEST_BYTES} bytes.")
            answer = self._issue(request)
        except SimulatedFault as fault:
            self.counters.increment(f"sts.refused.{fault.code}")
            logger.warning("STS refused a token: %s %s", fault.code, fault.message)
            return "500 Internal Server Error", fault_envelope(fault)
        except Exception:
            logger.exception("The simulated STS failed to answer")
            fault = SoapFault.server(UNDEFINED, "The simulated STS could not answer this request; see its log.")
            return "500 Internal Server Error", fault_envelope(fault)
        self.counters.increment("sts.issued")
        return "200 OK", answer

    def issue_assertion(self, certificate: x509.Certificate, claims: Sequence[Claim] | None = None, *,
                        issue_instant: datetime | None = None, lifetime: timedelta | None = None) -> bytes:
        """A signed assertion for ``certificate`` (no checks: tests use it to make odd tokens)."""
        instant = issue_instant or self._now()
        not_after = instant + (lifetime if lifetime is not None else self.token_lifetime)
        identity = _identity(certificate)
        assertion_id = f"_{uuid.uuid4().hex}"
        assertion = etree.Element(f"{{{SAML_NS}}}Assertion", nsmap={None: SAML_NS}, AssertionID=assertion_id,
                                  IssueInstant=format_instant(instant), Issuer=ISSUER, MajorVersion="1",
                                  MinorVersion="1")
        etree.SubElement(assertion, f"{{{SAML_NS}}}Conditions", NotBefore=format_instant(instant - _BACKDATE),
                         NotOnOrAfter=format_instant(not_after))
        statement = etree.SubElement(assertion, f"{{{SAML_NS}}}AuthenticationStatement",
                                     AuthenticationInstant=format_instant(instant), AuthenticationMethod=X509_PKI)
        subject = _subject(statement, certificate)
        confirmation = etree.SubElement(subject, f"{{{SAML_NS}}}SubjectConfirmation")
        etree.SubElement(confirmation, f"{{{SAML_NS}}}ConfirmationMethod").text = HOLDER_OF_KEY
        confirmation.append(_key_info(certificate))
        attributes = _attributes(identity, claims)
        if attributes:
            attribute_statement = etree.SubElement(assertion, f"{{{SAML_NS}}}AttributeStatement")
            _subject(attribute_statement, certificate)
            for name, namespace, value in attributes:
                attribute = etree.SubElement(attribute_statement, f"{{{SAML_NS}}}Attribute", AttributeName=name,
                                             AttributeNamespace=namespace)
                etree.SubElement(attribute, f"{{{SAML_NS}}}AttributeValue").text = value
        sign_assertion(assertion, self._signing)
        return etree.tostring(assertion, encoding="UTF-8")

    def _issue(self, request: bytes) -> bytes:
        try:
            verified = verify_envelope(request, trusted_ca=self._ca, now=self._now, max_clock_skew=self._skew,
                                       require_signed_token=True)
        except SecurityRefusal as refusal:
            raise fault_for(refusal) from None
        if verified.token is None:
            raise SimulatedFault(STS_INVALID_REQUEST, "The request must be signed with the BinarySecurityToken of the "
                                                      "authentication certificate.")
        rst = _only(verified.body, f"{{{WST_NS}}}RequestSecurityToken", "a RequestSecurityToken in the Body")
        _expect(rst, "TokenType", SAML_V11_TOKEN_TYPE)
        _expect(rst, "RequestType", ISSUE)
        if rst.find(f"{{{WST_NS}}}KeyType") is not None:
            _expect(rst, "KeyType", PUBLIC_KEY)
        _check_use_key(rst, verified.certificate, verified.token)
        now = self._now()
        assertion = self.issue_assertion(verified.certificate, _claims(rst), issue_instant=now,
                                         lifetime=_lifetime(rst, now, self.token_lifetime))
        logger.info("STS issued a token to %s", describe_certificate(verified.certificate))
        return _response(rst, assertion)


def sign_assertion(assertion: etree._Element, entry: KeyEntry) -> None:
    """Sign ``assertion`` in place as the STS does: enveloped, exclusive C14N, the signer's
    certificate in the signature's KeyInfo (``simulator.chaos`` re-signs tokens with it too)."""
    sign_elements(assertion, [(assertion.get("AssertionID"), assertion)], key=entry.private_key,
                  key_info=_x509_data(entry.certificate), enveloped=True)


def _read_body(environ: dict[str, Any]) -> bytes | None:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > MAX_REQUEST_BYTES:
        return None
    return environ["wsgi.input"].read(length) if length > 0 else b""


def _only(parent: etree._Element, tag: str, what: str) -> etree._Element:
    found = [child for child in parent if child.tag == tag]
    if len(found) != 1:
        raise SimulatedFault(STS_INVALID_REQUEST, f"The request must hold exactly one {what}.")
    return found[0]


def _expect(rst: etree._Element, name: str, expected: str) -> None:
    value = (rst.findtext(f"{{{WST_NS}}}{name}") or "").strip()
    if value != expected:
        raise SimulatedFault(STS_INVALID_REQUEST, f"The STS answers {name} {expected}, not {value or '(none)'}.")


def _check_use_key(rst: etree._Element, signer: x509.Certificate, signing_token: etree._Element) -> None:
    """``UseKey`` (when present) must hold the signer's certificate or refer to its BinarySecurityToken."""
    use_key = rst.find(f"{{{WST_NS}}}UseKey")
    if use_key is None:
        return
    reference = use_key.find(f"{{{WSSE_NS}}}SecurityTokenReference/{{{WSSE_NS}}}Reference")
    if reference is not None and reference.get("URI") == f"#{signing_token.get(WSU_ID)}":
        return
    text = use_key.find(f"{{{WSSE_NS}}}BinarySecurityToken")
    if text is None:
        text = use_key.find(f".//{{{DS_NS}}}X509Certificate")
    try:
        wanted = certificate_from_base64(text.text if text is not None else None)
    except ValueError:
        raise SimulatedFault(STS_INVALID_REQUEST,
                             "UseKey must hold the certificate of the key to bind the token to.") from None
    if wanted != signer:
        raise SimulatedFault(STS_INVALID_REQUEST, "UseKey names another certificate than the one that signed the "
                                                  "request: a token can only be bound to the key that signed.")


def _claims(rst: etree._Element) -> list[Claim] | None:
    claims = rst.find(f"{{{WST_NS}}}Claims")
    if claims is None:
        return None
    return [Claim(claim.get("Uri") or "", claim.findtext(f"{{{AUTH_NS}}}Value"))
            for claim in claims.iterfind(f"{{{AUTH_NS}}}ClaimType")]


def _lifetime(rst: etree._Element, now: datetime, longest: timedelta) -> timedelta:
    expires = parse_instant(rst.findtext(f"{{{WST_NS}}}Lifetime/{{{WSU_NS}}}Expires"))
    if expires is None or expires <= now:
        return longest
    return min(expires - now, longest)


def _identity(certificate: x509.Certificate) -> Identity | None:
    try:
        return Identity.from_certificate(certificate)
    except KeystoreError:
        return None


def _known_attributes(identity: Identity | None) -> dict[str, tuple[str, str]]:
    """Every attribute the simulator can certify for ``identity``, from the qualities table (as the
    real STS knows them from its registries): name -> (namespace, value)."""
    if identity is None:
        return {}
    person = identity.kind is IdentifierKind.SSIN
    if not identity.quality:
        return {HOLDER_SSIN: (IDENTIFICATION_NAMESPACE, identity.value),
                PERSON_SSIN: (IDENTIFICATION_NAMESPACE, identity.value)} if person else {}
    known: dict[str, tuple[str, str]] = {}
    for rule in qualities.active().claims(identity.quality, "person" if person else "organisation"):
        value = {"holder": identity.value, "true": "true", "nihii": identity.nihii}[rule.value]
        if rule.value == "nihii" and not (value and len(value) == 11):
            continue  # no 11-digit NIHII for this person: the STS cannot certify it
        known[rule.uri] = (IDENTIFICATION_NAMESPACE if rule.identifies else CERTIFIED_NAMESPACE, value)
    return known


def _attributes(identity: Identity | None, claims: Sequence[Claim] | None) -> list[tuple[str, str, str]]:
    known = _known_attributes(identity)
    names = list(known) if claims is None else [claim.uri for claim in claims if claim.uri in known]
    for claim in claims or ():
        if claim.value is not None and claim.uri in known and claim.value != known[claim.uri][1]:
            raise SimulatedFault(STS_INVALID_REQUEST,
                                 f"The claim {claim.uri} does not match the certificate's identity.")
    return [(name, known[name][0], known[name][1]) for name in dict.fromkeys(names)]


def _subject(statement: etree._Element, certificate: x509.Certificate) -> etree._Element:
    subject = etree.SubElement(statement, f"{{{SAML_NS}}}Subject")
    etree.SubElement(subject, f"{{{SAML_NS}}}NameIdentifier", Format=X509_SUBJECT_NAME,
                     NameQualifier=certificate.issuer.rfc4514_string()).text = certificate.subject.rfc4514_string()
    return subject


def _x509_data(certificate: x509.Certificate) -> etree._Element:
    data = etree.Element(f"{{{DS_NS}}}X509Data", nsmap={"ds": DS_NS})
    etree.SubElement(data, f"{{{DS_NS}}}X509Certificate").text = certificate_base64(certificate)
    return data


def _key_info(certificate: x509.Certificate) -> etree._Element:
    key_info = etree.Element(f"{{{DS_NS}}}KeyInfo", nsmap={"ds": DS_NS})
    key_info.append(_x509_data(certificate))
    return key_info


def _response(rst: etree._Element, assertion_xml: bytes) -> bytes:
    """The RSTR envelope; the assertion goes in as the bytes just signed (parsed, not rebuilt)."""
    envelope = etree.Element(f"{{{SOAP11_NS}}}Envelope", nsmap={"soapenv": SOAP11_NS})
    body = etree.SubElement(envelope, f"{{{SOAP11_NS}}}Body")
    response = etree.SubElement(body, f"{{{WST_NS}}}RequestSecurityTokenResponse", nsmap={"wst": WST_NS})
    if rst.get("Context"):
        response.set("Context", rst.get("Context"))
    etree.SubElement(response, f"{{{WST_NS}}}TokenType").text = SAML_V11_TOKEN_TYPE
    requested = etree.SubElement(response, f"{{{WST_NS}}}RequestedSecurityToken")
    assertion = parse_xml(assertion_xml)
    requested.append(assertion)
    conditions = assertion.find(f"{{{SAML_NS}}}Conditions")
    lifetime = etree.SubElement(response, f"{{{WST_NS}}}Lifetime")
    etree.SubElement(lifetime, f"{{{WSU_NS}}}Created", nsmap={"wsu": WSU_NS}).text = conditions.get("NotBefore")
    etree.SubElement(lifetime, f"{{{WSU_NS}}}Expires", nsmap={"wsu": WSU_NS}).text = conditions.get("NotOnOrAfter")
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


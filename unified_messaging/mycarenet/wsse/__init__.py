"""WS-Security for MyCareNet calls: sign a business call with a SAML holder-of-key token, and verify one.

The profile (MYCARENET.md §1, and what the eHealth platform accepts since SHA-1 was refused in 2023):

* ``soap:Header/wsse:Security`` (``mustUnderstand="1"``) holds, in this order, a ``wsu:Timestamp``
  (Created/Expires, a short TTL), the token and a ``ds:Signature``;
* the signature uses exclusive C14N for SignedInfo and for every reference, SHA-256 digests and
  RSA-SHA256 (ECDSA-SHA256/384 for EC keys: eHealth issues EC certificates too);
* a business call references the Body and the Timestamp by ``wsu:Id``; its ``KeyInfo`` names the
  SAML 1.1 assertion in the header, whose holder-of-key certificate is the signer;
* the STS request (see ``sts.py``) uses the same building blocks with a ``BinarySecurityToken``
  (the authentication certificate) as the key, itself signed with the Timestamp and the Body.

The package, by concept (as zeep's ``wsse/``):

* ``utils``: namespaces and token-profile URIs, the clock, instants, Ids, certificates in base64;
* ``refusals``: ``RefusalCode`` and ``SecurityRefusal`` (one code per problem, so that the
  simulator can answer each with its own platform code);
* ``dsig``: XML-DSig signing and checking (exclusive C14N, digests, RSA/ECDSA values);
* ``saml``: reading and checking a SAML 1.1 assertion;
* ``header``: building the Security header, Timestamp, BinarySecurityToken and references;
* ``signing``: signing an envelope with a certificate or with a SAML token;
* ``plugin``: ``SigningCredential`` and the zeep plugin ``WsseSigningPlugin``;
* ``verify``: ``verify_envelope``, used by the clients and the simulator.

Nothing here logs a key, a token's content or an SSIN.
"""
from unified_messaging.mycarenet.wsse.dsig import (
    DIGEST_SHA256, ECDSA_SHA256, ECDSA_SHA384, ENVELOPED_SIGNATURE, EXC_C14N, RSA_SHA256, canonicalize,
    sign_elements, signature_method_for, verify_signature,
)
from unified_messaging.mycarenet.wsse.header import (
    add_timestamp, assertion_reference, binary_security_token, identify, security_header, soap_parts,
    token_reference,
)
from unified_messaging.mycarenet.wsse.plugin import SigningCredential, WsseSigningPlugin
from unified_messaging.mycarenet.wsse.refusals import RefusalCode, SecurityRefusal
from unified_messaging.mycarenet.wsse.saml import HOLDER_OF_KEY, SamlAssertion, read_assertion, verify_assertion
from unified_messaging.mycarenet.wsse.signing import sign_envelope, sign_with_certificate
from unified_messaging.mycarenet.wsse.utils import (
    BASE64_BINARY, DEFAULT_CLOCK_SKEW, DS_NS, SAML_ASSERTION_ID, SAML_NS, SAML_V11_TOKEN_TYPE, SOAP11_NS, SOAP12_NS,
    WSSE11_NS, WSSE_NS, WSU_ID, WSU_NS, X509_V3, Clock, certificate_base64, certificate_fingerprint,
    certificate_from_base64, format_instant, new_id, parse_instant, utc_now,
)
from unified_messaging.mycarenet.wsse.verify import MAX_TIMESTAMP_LIFETIME, VerifiedCaller, verify_envelope

__all__ = [
    "BASE64_BINARY", "DEFAULT_CLOCK_SKEW", "DIGEST_SHA256", "DS_NS", "ECDSA_SHA256", "ECDSA_SHA384",
    "ENVELOPED_SIGNATURE", "EXC_C14N", "HOLDER_OF_KEY", "MAX_TIMESTAMP_LIFETIME", "RSA_SHA256", "SAML_ASSERTION_ID",
    "SAML_NS", "SAML_V11_TOKEN_TYPE", "SOAP11_NS", "SOAP12_NS", "WSSE11_NS", "WSSE_NS", "WSU_ID", "WSU_NS", "X509_V3",
    "Clock", "RefusalCode", "SamlAssertion", "SecurityRefusal", "SigningCredential", "VerifiedCaller",
    "WsseSigningPlugin", "add_timestamp", "assertion_reference", "binary_security_token", "canonicalize",
    "certificate_base64", "certificate_fingerprint", "certificate_from_base64", "format_instant", "identify",
    "new_id", "parse_instant", "read_assertion", "security_header", "sign_elements", "sign_envelope",
    "sign_with_certificate", "signature_method_for", "soap_parts", "token_reference", "utc_now", "verify_assertion",
    "verify_envelope", "verify_signature",
]

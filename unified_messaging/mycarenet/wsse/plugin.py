"""The zeep side of signing: ``SigningCredential`` (token and key) and ``WsseSigningPlugin``.

The clients (GenericInsurability, GenAsync, the secure-space check) hand zeep a plugin that signs
every outgoing message with the current token of ``sts.TokenCache``; this module is all they need.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from lxml import etree
from zeep import Plugin

from unified_messaging.mycarenet.keystore import describe_certificate
from unified_messaging.mycarenet.wsse.signing import sign_envelope, signed_envelope_bytes
from unified_messaging.mycarenet.wsse.utils import Clock, utc_now


@dataclass(frozen=True, repr=False, eq=False)
class SigningCredential:
    """What signs a business call: the SAML assertion (bytes as received) and its holder's key."""

    assertion_xml: bytes
    private_key: PrivateKeyTypes
    certificate: x509.Certificate

    def __repr__(self) -> str:
        return f"SigningCredential(certificate={describe_certificate(self.certificate)!r})"


class WsseSigningPlugin(Plugin):
    """A zeep plugin that signs every outgoing message with the token of ``token_provider()``.

    ``token_provider`` returns a ``SigningCredential`` (``sts.TokenCache.token_provider(entry)``
    gives one that renews the token when needed).  The plugin returns the signed copy, which zeep
    (and ``apply_egress``) send instead of the original; zeep serialises it after the plugins
    without pretty-printing, and exclusive C14N keeps the signature independent of where
    namespaces end up being declared.
    """

    def __init__(self, token_provider: Callable[[], SigningCredential], *, ttl_seconds: int = 60,
                 now: Clock = utc_now) -> None:
        self._token_provider = token_provider
        self._ttl_seconds = ttl_seconds
        self._now = now

    def egress(self, envelope: etree._Element, http_headers: dict, operation: Any,
               binding_options: Any) -> tuple[etree._Element, dict]:
        credential = self._token_provider()
        signed = sign_envelope(envelope, assertion_xml=credential.assertion_xml, key=credential.private_key,
                               certificate=credential.certificate, ttl_seconds=self._ttl_seconds, now=self._now)
        return signed, http_headers

    def egress_bytes(self, envelope: etree._Element, http_headers: dict) -> tuple[bytes, dict]:
        """What ``egress`` gives, serialised with an XML declaration, made without copying
        ``envelope`` (which it changes) or parsing the result: see ``signed_envelope_bytes``."""
        credential = self._token_provider()
        signed = signed_envelope_bytes(envelope, assertion_xml=credential.assertion_xml, key=credential.private_key,
                                       certificate=credential.certificate, ttl_seconds=self._ttl_seconds, now=self._now)
        return signed, http_headers


def outgoing_bytes(plugins: list, envelope: etree._Element, http_headers: dict, operation: Any,
                   binding_options: Any) -> tuple[bytes, dict]:
    """The message zeep's ``apply_egress`` then serialisation would send (``plugins`` in order),
    for an envelope made for this one message: when the last plugin is a ``WsseSigningPlugin``, it
    signs and serialises in one go (``egress_bytes``)."""
    last = plugins[-1] if plugins else None
    signer = last if isinstance(last, WsseSigningPlugin) else None
    for plugin in plugins[:-1] if signer is not None else plugins:
        result = plugin.egress(envelope, http_headers, operation, binding_options)
        if result is not None:
            envelope, http_headers = result
    if signer is not None:
        return signer.egress_bytes(envelope, http_headers)
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"), http_headers

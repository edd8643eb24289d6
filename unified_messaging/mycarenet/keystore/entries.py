"""A keystore's keys: ``KeyEntry`` (a key, its certificate and chain) and ``Keystore`` (the rules).

The authentication entry is chosen by its certificate, never by its position in the file: see
``Keystore.authentication``.  Nothing here represents key material.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from unified_messaging.identifiers import mask_ssins_in_text
from unified_messaging.mycarenet.keystore.certificates import (
    allows_encryption, describe_certificate, is_issued_by, key_usage, public_key_der,
)
from unified_messaging.mycarenet.keystore.errors import KeystoreError
from unified_messaging.mycarenet.keystore.identity import Identity

AUTHENTICATION_ALIAS = "authentication"


@dataclass(frozen=True, repr=False, eq=False)
class KeyEntry:
    """One private key with its certificate.

    ``chain`` starts with ``certificate`` and follows the issuers found in the keystore, up to the
    root when the file holds it (as Java's ``KeyStore.getCertificateChain`` does).
    """

    alias: str
    private_key: PrivateKeyTypes
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()

    def __post_init__(self) -> None:
        if not self.chain or self.chain[0] != self.certificate:
            object.__setattr__(self, "chain", (self.certificate,) + tuple(self.chain))

    @property
    def identity(self) -> Identity:
        return Identity.from_certificate(self.certificate)

    @property
    def is_signing(self) -> bool:
        """The certificate allows digital signatures (no key usage extension allows everything)."""
        usage = key_usage(self.certificate)
        return usage is None or usage.digital_signature

    def __repr__(self) -> str:
        return (f"KeyEntry(alias={mask_ssins_in_text(self.alias)!r}, "
                f"certificate={describe_certificate(self.certificate)!r}, "
                f"not_after={self.certificate.not_valid_after_utc:%Y-%m-%d})")


class Keystore:
    """The keys of one keystore file, with the rules that say which one authenticates."""

    def __init__(self, entries: Sequence[KeyEntry], certificates: Sequence[x509.Certificate] = ()) -> None:
        self.entries: tuple[KeyEntry, ...] = tuple(entries)
        self.certificates: tuple[x509.Certificate, ...] = tuple(certificates)

    @property
    def aliases(self) -> tuple[str, ...]:
        return tuple(entry.alias for entry in self.entries)

    def entry(self, alias: str) -> KeyEntry:
        for entry in self.entries:
            if entry.alias == alias:
                return entry
        raise KeyError(alias)

    @property
    def authentication(self) -> KeyEntry:
        """The entry whose certificate is the authentication certificate.

        Candidates are the entries whose certificate allows digital signatures and was not issued
        by another entry's certificate (eHealth encryption certificates are issued by the holder's
        own authentication key).  One candidate: that is it.  Several: the one under the alias
        ``authentication``.  Never "the first key in the file".
        """
        chosen, candidates = self._choose_authentication()
        if chosen is not None:
            return chosen
        aliases = ", ".join(repr(mask_ssins_in_text(e.alias)) for e in self.entries) or "none"
        if not candidates:
            raise KeystoreError(
                "The keystore holds no authentication certificate (one that allows digital "
                f"signatures); its keys are: {aliases}. Use the eHealth keystore that contains the "
                "'authentication' key."
            )
        raise KeystoreError(
            "The keystore holds several certificates that could authenticate and none is under the "
            f"alias 'authentication' ({aliases}). Keep only the eHealth keystore's own keys in it."
        )

    @property
    def identity(self) -> Identity:
        return self.authentication.identity

    @property
    def encryption_entries(self) -> tuple[KeyEntry, ...]:
        """Every entry but the authentication one whose certificate allows encryption."""
        authentication, _ = self._choose_authentication()
        return tuple(e for e in self.entries if e is not authentication and allows_encryption(e.certificate))

    def find(self, certificate: x509.Certificate) -> KeyEntry | None:
        """The entry holding this certificate, else the one whose key matches its public key."""
        for entry in self.entries:
            if entry.certificate == certificate:
                return entry
        wanted = public_key_der(certificate)
        for entry in self.entries:
            if public_key_der(entry.certificate) == wanted:
                return entry
        return None

    def _choose_authentication(self) -> tuple[KeyEntry | None, list[KeyEntry]]:
        """The authentication entry (None when there is none or no way to tell), and the candidates."""
        def issued_by_another_entry(entry: KeyEntry) -> bool:
            return any(other is not entry and is_issued_by(entry.certificate, other.certificate)
                       for other in self.entries)

        candidates = [e for e in self.entries if e.is_signing and not issued_by_another_entry(e)]
        if len(candidates) == 1:
            return candidates[0], candidates
        named = [e for e in candidates if e.alias.lower() == AUTHENTICATION_ALIAS]
        return (named[0] if len(named) == 1 else None), candidates

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return f"Keystore({', '.join(repr(e) for e in self.entries)})"

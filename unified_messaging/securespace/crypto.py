"""Password hashing and encryption at rest for the secure space.

* **User passwords**: scrypt (``hashlib.scrypt``), a random 16-byte salt per user, N=2**15, r=8,
  p=1 by default (about 32 MiB and a few tens of milliseconds per check), compared in constant
  time.  The parameters are stored with each hash (``scrypt$N$r$p$salt$hash``), so raising them
  later does not lock anyone out; tests lower them through ``PasswordHasher(cost=...)``.
* **Secrets at rest** (the ``.p12`` bytes, its password, the licence password): AES-256-GCM with a
  key derived by HKDF-SHA256 from the installation's master secret and a random 16-byte salt per
  secret, a random 96-bit nonce, and the row's purpose as associated data, so that a blob copied
  to another row or column does not decrypt.  Blob layout: ``b"UM1" + salt + nonce + ciphertext``.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
from typing import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from unified_messaging.securespace.catalogue import Refusal

logger = logging.getLogger(__name__)

DEFAULT_SCRYPT_N = 2 ** 15
_SCRYPT_R = 8
_SCRYPT_P = 1
_HKDF_INFO = b"unified-messaging secure space v1"
_BLOB_MAGIC = b"UM1"
_SALT = 16
_NONCE = 12


class PasswordHasher:
    """Hashes and checks user passwords with scrypt; ``cost`` is N (a power of two)."""

    def __init__(self, cost: int = DEFAULT_SCRYPT_N) -> None:
        if cost < 2 or cost & (cost - 1):
            raise ValueError("the scrypt cost must be a power of two")
        self.cost = cost

    def hash(self, password: str) -> str:
        salt = os.urandom(_SALT)
        digest = self._scrypt(password, salt, self.cost, _SCRYPT_R, _SCRYPT_P)
        return "$".join(("scrypt", str(self.cost), str(_SCRYPT_R), str(_SCRYPT_P),
                         base64.b64encode(salt).decode(), base64.b64encode(digest).decode()))

    def verify(self, password: str, stored: str) -> bool:
        try:
            scheme, n, r, p, salt, digest = stored.split("$")
            if scheme != "scrypt":
                return False
            expected = base64.b64decode(digest)
            actual = self._scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
        except (ValueError, TypeError):
            return False
        return hmac.compare_digest(actual, expected)

    def dummy_verify(self, password: str) -> None:
        """Spend the time of a real check, so that an unknown login is not told apart by timing."""
        self._scrypt(password, b"\0" * _SALT, self.cost, _SCRYPT_R, _SCRYPT_P)

    @staticmethod
    def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
        return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                              maxmem=256 * n * r + 1024 * 1024, dklen=32)


class Sealer:
    """Encrypts and decrypts secrets with keys derived from the master secret.

    ``master_secret`` may be several secrets (``secrets.master_keys`` during a key rotation): each
    is tried in turn to open; the last (the newest) seals, so that nothing sealed while a rotation
    is under way is left under the key it retires.
    """

    def __init__(self, master_secret: bytes | Sequence[bytes]) -> None:
        secrets = (master_secret,) if isinstance(master_secret, bytes) else tuple(master_secret)
        if not secrets or any(len(s) < 16 for s in secrets):
            raise ValueError("the master secret is too short")
        self._masters = secrets

    def seal(self, plain: bytes, purpose: str) -> bytes:
        salt, nonce = os.urandom(_SALT), os.urandom(_NONCE)
        key = self._key(self._masters[-1], salt)
        return _BLOB_MAGIC + salt + nonce + AESGCM(key).encrypt(nonce, plain, purpose.encode())

    def open(self, blob: bytes, purpose: str) -> bytes:
        """The clear bytes, or ``SS-CERT-UNREADABLE`` for another master secret or an altered blob."""
        if not blob.startswith(_BLOB_MAGIC):
            raise Refusal("SS-CERT-UNREADABLE", "The stored value is not in the expected format.")
        body = blob[len(_BLOB_MAGIC):]
        salt, nonce, sealed = body[:_SALT], body[_SALT:_SALT + _NONCE], body[_SALT + _NONCE:]
        for master in self._masters:
            try:
                return AESGCM(self._key(master, salt)).decrypt(nonce, sealed, purpose.encode())
            except InvalidTag:
                continue
        raise Refusal("SS-CERT-UNREADABLE", f"({purpose.split(':')[0]})")

    @staticmethod
    def _key(master: bytes, salt: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_HKDF_INFO).derive(master)


def fingerprint(der: bytes) -> str:
    """SHA-256 of a certificate's DER, in hex (public information, used to find it again)."""
    return hashlib.sha256(der).hexdigest()

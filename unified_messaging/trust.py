"""The trust the configuration names: ``[upstream] platform_ca`` and ``[upstream] ehealth_ca``, read from PEM files.

``platform_ca`` vouches for the platform's signed answers; ``ehealth_ca`` (a bundle: roots and
intermediates) for the care providers' eHealth certificates uploaded into the secure space and for
the certificate that signs the STS's tokens.  A file that cannot be read, or holds no PEM
certificate, stops start-up with a ``ConfigError`` naming the key.  Shared by the upstream seam and
the secure-space commands (which must not reach the simulator through ``upstream``).
"""
from __future__ import annotations

from pathlib import Path

from cryptography import x509

from unified_messaging.config import ConfigError
from unified_messaging.mycarenet.keystore import KeystoreError, load_certificate_bundle


def load_platform_ca(path: str) -> x509.Certificate | None:
    """``[upstream] platform_ca``: the CA that signs the platform's answers, or None when unset."""
    return _read_pem(path, "[upstream] platform_ca", "certificate file")[0] if path else None


def load_ehealth_ca(path: str, *, key: str = "[upstream] ehealth_ca") -> tuple[x509.Certificate, ...]:
    """``[upstream] ehealth_ca``: every certificate of the eHealth CA bundle, or () when unset.

    ``key`` is how the error names the setting (the command line's option, say)."""
    return _read_pem(path, key, "bundle of the eHealth CA certificates") if path else ()


def _read_pem(path: str, key: str, what: str) -> tuple[x509.Certificate, ...]:
    try:
        return load_certificate_bundle(Path(path).expanduser().read_bytes())
    except OSError as exc:
        raise ConfigError(f"{key} = {path!r} is not valid: expected a readable PEM {what} "
                          f"({exc.strerror or exc}).") from None
    except KeystoreError as exc:
        raise ConfigError(f"{key} = {path!r} is not valid: expected a PEM {what}, but {exc}.") from None


NOT_CHECKED_WITHOUT_EHEALTH_CA = (
    "[upstream] ehealth_ca is not set: uploaded certificates are not chain-checked and STS assertions are not "
    "verified: set [upstream] ehealth_ca to the PEM bundle of the eHealth CA certificates of this environment")

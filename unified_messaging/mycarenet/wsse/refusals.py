"""Why a signed message or a token is refused: ``RefusalCode`` and ``SecurityRefusal``.

Each code is one problem, so that the simulator can answer each with its own platform code and a
client can tell the caller what went wrong.
"""
from __future__ import annotations

from enum import Enum


class RefusalCode(str, Enum):
    """Why a signed message was refused; each has its own platform code in the simulator."""

    MALFORMED = "malformed"
    UNSIGNED = "unsigned"
    TIMESTAMP_MISSING = "timestamp-missing"
    TIMESTAMP_EXPIRED = "timestamp-expired"
    TIMESTAMP_NOT_YET_VALID = "timestamp-not-yet-valid"
    TIMESTAMP_TOO_LONG = "timestamp-too-long"
    PART_NOT_SIGNED = "part-not-signed"
    AMBIGUOUS_REFERENCE = "ambiguous-reference"
    ALGORITHM_REFUSED = "algorithm-refused"
    DIGEST_MISMATCH = "digest-mismatch"
    SIGNATURE_INVALID = "signature-invalid"
    TOKEN_MISSING = "token-missing"
    CERTIFICATE_UNTRUSTED = "certificate-untrusted"
    CERTIFICATE_EXPIRED = "certificate-expired"
    ASSERTION_INVALID = "assertion-invalid"
    ASSERTION_FOREIGN = "assertion-foreign"
    ASSERTION_SIGNATURE_INVALID = "assertion-signature-invalid"
    ASSERTION_EXPIRED = "assertion-expired"
    ASSERTION_NOT_YET_VALID = "assertion-not-yet-valid"


class SecurityRefusal(Exception):
    """A signed message (or token) cannot be accepted; ``message`` says why in plain English."""

    def __init__(self, code: RefusalCode, message: str) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message

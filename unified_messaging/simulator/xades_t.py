"""XAdES in the simulated GenAsync mailbox: the post's XAdES-BES checked, the answers' XAdES-T made.

A post must carry, in ``Xades-t``, the XAdES-BES of its blob (``mycarenet.xades``): the simulator
checks it with the same ``verify`` the gateway uses, against the file the blob holds (decoded,
inflated when deflated: the optional-deflate transform), naming the blob's ``Id``, with a signer
certificate issued by the simulator's CA, and requires that signer to be the caller (the
holder-of-key of the token that signed the SOAP message).  Refusals are platform-style SOAP faults
in the message family ``SOA-03xxx`` (after ``soap.py``'s 03001..03006; the numbers are the
simulator's own):

==========  ==================================================================================
code        refusal
==========  ==================================================================================
SOA-03007   the post carries no XAdES (``Xades-t`` missing or empty): the catalogue's "content
            validation failed"
SIM-SEC-23  the XAdES does not verify: digest of the blob, SignedProperties, signature value,
            algorithms, or the signer's certificate (not issued by the simulator's CA, expired)
SIM-SEC-24  the XAdES is signed by another certificate than the caller's
==========  ==================================================================================

Answers: each TAck and MsgResponse carries a real XAdES signed with the platform's key, made
XAdES-T by a signature time-stamp (``mycarenet.xades_timestamp``).  The real platform's time-stamp
is an RFC 3161 token from a TSA; the simulator's is its own small token, signed by the platform
key over the SHA-256 of the canonical ``ds:SignatureValue`` with its time (see that module for
what the gateway checks).  A message's XAdES signs its file (blob ``Id`` ``blob-<Reference>``,
base64 then optional-deflate); a TAck's signs the TAck's content (``#tack-<Reference>``, base64).
"""
from __future__ import annotations

import base64
import binascii
import logging
from datetime import datetime
from typing import Any, Callable

from cryptography import x509

from unified_messaging.mycarenet.keystore import KeyEntry, describe_certificate
from unified_messaging.mycarenet.wsse import SecurityRefusal
from unified_messaging.mycarenet.xades import sign_blob, verify
from unified_messaging.mycarenet.xades_timestamp import stamp_signature
from unified_messaging.simulator.soap import SoapFault

log = logging.getLogger(__name__)

XADES_MISSING = "SOA-03007"
XADES_REFUSED = "SIM-SEC-23"  # the catalogue has no code for signatures (see security.py)
XADES_FOREIGN_SIGNER = "SIM-SEC-24"


class SimulatedXades:
    """The platform's side of XAdES (see the module docstring)."""

    def __init__(self, *, trusted_ca: x509.Certificate | None, signing_entry: KeyEntry | None,
                 now: Callable[[], datetime]) -> None:
        self._ca = trusted_ca
        self._entry = signing_entry
        self._now = now

    def check_post(self, xades_text: str | None, content: bytes, blob_id: str | None, caller: Any) -> None:
        """Refuse (``SoapFault``) a post whose XAdES is missing, wrong, or not the caller's.

        Without a trusted CA (a bare simulator) nothing is checked.
        """
        if self._ca is None:
            return
        try:
            xades = base64.b64decode("".join((xades_text or "").split()), validate=True)
        except binascii.Error:
            raise SoapFault.client(XADES_REFUSED, "The Xades-t element is not valid base64.") from None
        if not xades:
            raise SoapFault.client(XADES_MISSING, "The post carries no XAdES: sign the blob with XAdES-BES and send "
                                                  "it base64-encoded in Xades-t.")
        try:
            verified = verify(xades, content, trusted_ca=self._ca, now=self._now, blob_id=blob_id)
        except SecurityRefusal as refusal:
            raise SoapFault.client(XADES_REFUSED, f"The XAdES of the post is refused: {refusal.message}") from None
        signer = getattr(caller, "certificate", None)
        if signer is not None and verified.certificate != signer:
            raise SoapFault.client(XADES_FOREIGN_SIGNER,
                                   f"The XAdES is signed by {describe_certificate(verified.certificate)}, not by the "
                                   f"caller {describe_certificate(signer)}.")

    def sign(self, content: bytes, blob_id: str, *, deflated: bool) -> bytes:
        """The XAdES-T of an answer; empty when the simulator has no platform key."""
        if self._entry is None:
            return b""
        moment = self._now()
        bes = sign_blob(content, blob_id, self._entry, moment, deflated=deflated)
        return stamp_signature(bes, key=self._entry.private_key, certificate=self._entry.certificate, now=moment)

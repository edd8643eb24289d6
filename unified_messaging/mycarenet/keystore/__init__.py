"""Care provider keystores: eHealth-style PKCS#12 files with several keys, and who they belong to.

An eHealth keystore (the ``.p12`` that the eHealth certificate manager makes) holds several private
keys, each under an alias (the bag's ``friendlyName``):

* ``authentication``: the authentication key, whose certificate is issued by the eHealth CA. It signs
  the STS request and, as holder-of-key, every business call.
* one or more encryption keys, named by a serial number, used for end-to-end encryption (ETK).

The package, by concept:

* ``identity``: who a certificate belongs to (``Identity``, ``IdentifierKind``), from its subject;
* ``certificates``: what a certificate says and allows (``describe_certificate``, key usages, issuer);
* ``entries``: ``KeyEntry`` and ``Keystore``, with the rule that picks the authentication entry;
* ``pkcs12_read`` / ``pkcs12_write``: the PFX structure (``load_keystore``, ``read_keystore``,
  ``dump_keystore``), with ``pbe`` and ``rc2`` for the password-based ciphers;
* ``chain``: a certificate checked against the trusted CA or a PEM bundle of them (``verify_chain``,
  ``load_certificate_bundle``);
* ``errors``: ``KeystoreError``, whose messages are written for the person installing the gateway.

Nothing here logs or represents key material, and an SSIN only ever appears masked.
"""
from unified_messaging.mycarenet.keystore.certificates import describe_certificate
from unified_messaging.mycarenet.keystore.chain import TrustedCa, load_certificate_bundle, verify_chain
from unified_messaging.mycarenet.keystore.entries import AUTHENTICATION_ALIAS, KeyEntry, Keystore
from unified_messaging.mycarenet.keystore.errors import KeystoreError
from unified_messaging.mycarenet.keystore.identity import IdentifierKind, Identity
from unified_messaging.mycarenet.keystore.pkcs12_read import load_keystore, read_keystore
from unified_messaging.mycarenet.keystore.pkcs12_write import dump_keystore

__all__ = [
    "AUTHENTICATION_ALIAS", "IdentifierKind", "Identity", "KeyEntry", "Keystore", "KeystoreError", "TrustedCa",
    "describe_certificate", "dump_keystore", "load_certificate_bundle", "load_keystore", "read_keystore",
    "verify_chain",
]

"""``KeystoreError``, raised by every ``keystore`` module, and the message shared by the ciphers."""
from __future__ import annotations


class KeystoreError(Exception):
    """The keystore cannot be used: wrong password, damaged file, no usable key...

    The message is written for the person installing the gateway: it says what is wrong and what
    to do about it.
    """


CANNOT_DECRYPT = (
    "The keystore could not be decrypted: the password is wrong or the file is damaged. Check the "
    "password (it is case-sensitive) and copy the .p12 file again."
)

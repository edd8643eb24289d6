"""RC2 decryption (RFC 2268) with any effective key length, for legacy keystores."""
from __future__ import annotations

from unified_messaging.mycarenet.keystore.errors import CANNOT_DECRYPT, KeystoreError

_RC2_PITABLE = bytes.fromhex(
    "d978f9c419ddb5ed28e9fd794aa0d89dc67e37832b76538e624c6488448bfba2"
    "179a59f587b34f1361456d8d09817d32bd8f40eb86b77b0bf09521225c6b4e82"
    "54d66593ce60b21c7356c014a78cf1dc1275ca1f3bbee4d1423dd430a33cb626"
    "6fbf0eda4669075727f21d9bbc944303f811c7f690ef3ee706c3d52fc8661ed7"
    "08e8eade8052eef784aa72ac354d6a2a961ad2715a1549744b9fd05e0418a4ec"
    "c2e0416e0f51cbcc2491af50a1f47039997c3a8523b8b47afc02365b25559731"
    "2d5dfa98e38a92ae05df2910676cbac9d300e6cfe19ea82c6316013f58e289a9"
    "0d38341bab33ffb0bb480c5fb9b1cd2ec5f3db47e5a59c770aa62068fe7fc1ad"
)


class Rc2:
    """RC2 decryption (RFC 2268), for legacy keystores' ``pbeWithSHA1And40BitRC2-CBC`` safes.

    ``cryptography`` offers RC2 with 128-bit keys only; old OpenSSL and Windows exports encrypt the
    certificates with 40-bit RC2, hence this small implementation.  Decryption only.
    """

    _ROTATIONS = (1, 2, 3, 5)

    def __init__(self, key: bytes, effective_bits: int) -> None:
        expanded = bytearray(128)
        expanded[:len(key)] = key
        for i in range(len(key), 128):
            expanded[i] = _RC2_PITABLE[(expanded[i - 1] + expanded[i - len(key)]) & 0xFF]
        t8 = (effective_bits + 7) // 8
        mask = 0xFF % (1 << (8 + effective_bits - 8 * t8))
        expanded[128 - t8] = _RC2_PITABLE[expanded[128 - t8] & mask]
        for i in range(127 - t8, -1, -1):
            expanded[i] = _RC2_PITABLE[expanded[i + 1] ^ expanded[i + t8]]
        self._words = [expanded[2 * i] | expanded[2 * i + 1] << 8 for i in range(64)]

    def decrypt_block(self, block: bytes) -> bytes:
        k = self._words
        r = [block[2 * i] | block[2 * i + 1] << 8 for i in range(4)]
        j = 63

        def unmix() -> None:
            nonlocal j
            for i in (3, 2, 1, 0):
                s = self._ROTATIONS[i]
                r[i] = ((r[i] >> s) | (r[i] << (16 - s))) & 0xFFFF
                r[i] = (r[i] - k[j] - (r[i - 1] & r[i - 2]) - (~r[i - 1] & r[i - 3])) & 0xFFFF
                j -= 1

        def unmash() -> None:
            for i in (3, 2, 1, 0):
                r[i] = (r[i] - k[r[i - 1] & 63]) & 0xFFFF

        for _ in range(5):
            unmix()
        unmash()
        for _ in range(6):
            unmix()
        unmash()
        for _ in range(5):
            unmix()
        return b"".join(bytes((w & 0xFF, w >> 8)) for w in r)

    def decrypt_cbc(self, data: bytes, iv: bytes) -> bytes:
        if len(data) % 8:
            raise KeystoreError(CANNOT_DECRYPT)
        out = bytearray()
        previous = iv
        for start in range(0, len(data), 8):
            block = data[start:start + 8]
            out += bytes(a ^ b for a, b in zip(self.decrypt_block(block), previous))
            previous = block
        return bytes(out)

"""Password-based cryptography of PKCS#12 files (RFC 7292 appendix B, RFC 8018).

Reads what OpenSSL, Java's keytool and the eHealth tools write: PBES2 (PBKDF2 + AES / 3DES / DES /
RC2) and the legacy PKCS#12 PBE schemes (SHA-1 with 3DES, RC2 or RC4); ``decrypt`` chooses by the
algorithm identifier.  Writes PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC (``pbes2_encrypt``).
The PKCS#12 key derivation (``pkcs12_kdf``) also makes the MAC key.  Iteration counts are bounded
so that a hostile file cannot make reading hang.
"""
from __future__ import annotations

import hashlib
import os

from asn1crypto import algos, core
from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4, TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from unified_messaging.mycarenet.keystore.errors import CANNOT_DECRYPT, KeystoreError
from unified_messaging.mycarenet.keystore.rc2 import Rc2

_KDF_KEY, _KDF_IV, KDF_MAC = 1, 2, 3
_MAX_ITERATIONS = 5_000_000

_HASHLIB_NAMES = {"sha1": "sha1", "sha224": "sha224", "sha256": "sha256", "sha384": "sha384",
                  "sha512": "sha512", "sha512_224": "sha512_224", "sha512_256": "sha512_256", "md5": "md5"}

# name -> (cipher, key length in bytes)
_PKCS12_PBE = {
    "pkcs12_sha1_tripledes_3key": ("3des", 24),
    "pkcs12_sha1_tripledes_2key": ("3des", 16),
    "pkcs12_sha1_rc2_128": ("rc2", 16),
    "pkcs12_sha1_rc2_40": ("rc2", 5),
    "pkcs12_sha1_rc4_128": ("rc4", 16),
    "pkcs12_sha1_rc4_40": ("rc4", 5),
}


def hashlib_name(algorithm: str) -> str:
    """The ``hashlib`` name of a MAC or PRF digest; ``KeystoreError`` when it is not supported."""
    try:
        return _HASHLIB_NAMES[algorithm]
    except KeyError:
        raise KeystoreError(f"The keystore's integrity check uses {algorithm}, which is not supported. "
                            "Export it again with: openssl pkcs12 -export -macalg sha256 ...") from None


def checked_iterations(count: int) -> int:
    """Refuse absurd iteration counts, which would make reading the file hang."""
    if not 1 <= count <= _MAX_ITERATIONS:
        raise KeystoreError(f"The keystore asks for {count} key derivation iterations, which is not "
                            f"plausible (at most {_MAX_ITERATIONS} are accepted). Export it again.")
    return count


def bmp_password_variants(password: str) -> tuple[bytes, ...]:
    """The password as PKCS#12 wants it: UTF-16BE with a two-byte terminator.

    An empty password is written either as just the terminator (OpenSSL) or as nothing at all
    (some other tools), so both are tried.
    """
    if password:
        return (password.encode("utf-16-be") + b"\x00\x00",)
    return (b"\x00\x00", b"")


def pkcs12_kdf(hash_name: str, password: bytes, salt: bytes, purpose: int, iterations: int,
               length: int) -> bytes:
    """The PKCS#12 key derivation (RFC 7292 B.2): purpose 1 key, 2 IV, 3 MAC key."""
    block = hashlib.new(hash_name).block_size

    def stretch(data: bytes) -> bytes:
        if not data:
            return b""
        size = block * ((len(data) + block - 1) // block)
        return (data * (size // len(data) + 1))[:size]

    diversifier = bytes([purpose]) * block
    material = bytearray(stretch(salt) + stretch(password))
    output = b""
    while len(output) < length:
        digest = hashlib.new(hash_name, diversifier + bytes(material)).digest()
        for _ in range(iterations - 1):
            digest = hashlib.new(hash_name, digest).digest()
        output += digest
        addend = int.from_bytes(stretch(digest)[:block], "big") + 1
        for start in range(0, len(material), block):
            chunk = (int.from_bytes(material[start:start + block], "big") + addend) % (1 << (8 * block))
            material[start:start + block] = chunk.to_bytes(block, "big")
    return output[:length]


def decrypt(algorithm: algos.EncryptionAlgorithm, utf8_password: bytes, bmp_password: bytes,
            data: bytes) -> bytes:
    """Decrypt a safe or a shrouded key: PBES2 takes the UTF-8 password, the PKCS#12 schemes the BMP one."""
    name = algorithm["algorithm"].native
    if name == "pbes2":
        return _pbes2_decrypt(algorithm, utf8_password, data)
    if name in _PKCS12_PBE:
        return _pkcs12_pbe_decrypt(name, algorithm, bmp_password, data)
    raise KeystoreError(f"The keystore is encrypted with {name}, which is not supported. Export it "
                        "again with AES: openssl pkcs12 -export ... (OpenSSL 3 uses AES by default).")


def _pkcs12_pbe_decrypt(name: str, algorithm: algos.EncryptionAlgorithm, bmp_password: bytes,
                        data: bytes) -> bytes:
    cipher, key_length = _PKCS12_PBE[name]
    salt = algorithm["parameters"]["salt"].native
    iterations = checked_iterations(algorithm["parameters"]["iterations"].native)
    key = pkcs12_kdf("sha1", bmp_password, salt, _KDF_KEY, iterations, key_length)
    if cipher == "rc4":
        decryptor = Cipher(ARC4(key), mode=None).decryptor()
        return decryptor.update(data) + decryptor.finalize()
    iv = pkcs12_kdf("sha1", bmp_password, salt, _KDF_IV, iterations, 8)
    if cipher == "rc2":
        return _unpad(Rc2(key, 8 * key_length).decrypt_cbc(data, iv), 8)
    if key_length == 16:
        key += key[:8]  # two-key 3DES is K1 K2 K1
    return _unpad(_cbc_decrypt(TripleDES(key), iv, data), 8)


def _pbes2_decrypt(algorithm: algos.EncryptionAlgorithm, password: bytes, data: bytes) -> bytes:
    parameters = algorithm["parameters"]
    derivation = parameters["key_derivation_func"]
    if derivation["algorithm"].native != "pbkdf2":
        raise KeystoreError(f"The keystore's keys are protected with {derivation['algorithm'].native}, "
                            "which is not supported. Export it again with PBKDF2 (OpenSSL's default).")
    kdf = derivation["parameters"]
    if kdf["salt"].name != "specified":
        raise KeystoreError("The keystore's key derivation takes its salt from elsewhere, which is not supported.")
    scheme = parameters["encryption_scheme"]
    cipher_name = scheme["algorithm"].native
    key_length = kdf["key_length"].native or scheme.key_length
    key = hashlib.pbkdf2_hmac(hashlib_name(kdf["prf"]["algorithm"].native), password,
                              kdf["salt"].native, checked_iterations(kdf["iteration_count"].native), key_length)
    iv = scheme.encryption_iv
    if cipher_name in ("aes128_cbc", "aes192_cbc", "aes256_cbc"):
        return _unpad(_cbc_decrypt(algorithms.AES(key), iv, data), 16)
    if cipher_name == "tripledes_3key":
        return _unpad(_cbc_decrypt(TripleDES(key), iv, data), 8)
    if cipher_name == "des":
        return _unpad(_cbc_decrypt(TripleDES(key * 3), iv, data), 8)
    if cipher_name == "rc2":
        return _unpad(Rc2(key, _rc2_effective_bits(scheme, key_length)).decrypt_cbc(data, iv), 8)
    raise KeystoreError(f"The keystore is encrypted with {cipher_name}, which is not supported. Export it "
                        "again with AES: openssl pkcs12 -export ...")


def _rc2_effective_bits(scheme: algos.EncryptionAlgorithm, key_length: int) -> int:
    version = scheme["parameters"]["rc2_parameter_version"].native
    if version is None:
        return 32
    return {160: 40, 120: 64, 58: 128}.get(version, version if version >= 256 else 8 * key_length)


def _cbc_decrypt(algorithm: algorithms.AES | TripleDES, iv: bytes, data: bytes) -> bytes:
    decryptor = Cipher(algorithm, modes.CBC(iv)).decryptor()
    return decryptor.update(data) + decryptor.finalize()


def _unpad(plain: bytes, block: int) -> bytes:
    count = plain[-1] if plain else 0
    if not 1 <= count <= block or plain[-count:] != bytes([count]) * count:
        raise KeystoreError(CANNOT_DECRYPT)
    return plain[:-count]


def pbes2_encrypt(password: bytes, plain: bytes, iterations: int) -> tuple[algos.EncryptionAlgorithm, bytes]:
    """Encrypt with PBKDF2-HMAC-SHA256 and AES-256-CBC (fresh salt and IV); the algorithm identifier and the data."""
    salt, iv = os.urandom(16), os.urandom(16)
    key = hashlib.pbkdf2_hmac("sha256", password, salt, iterations, 32)
    padding = 16 - len(plain) % 16
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    encrypted = encryptor.update(plain + bytes([padding]) * padding) + encryptor.finalize()
    algorithm = algos.EncryptionAlgorithm({
        "algorithm": "pbes2",
        "parameters": {
            "key_derivation_func": {"algorithm": "pbkdf2", "parameters": {
                "salt": algos.Pbkdf2Salt(name="specified", value=salt), "iteration_count": iterations,
                "prf": {"algorithm": "sha256", "parameters": core.Null()}}},
            "encryption_scheme": {"algorithm": "aes256_cbc", "parameters": core.OctetString(iv)},
        },
    })
    return algorithm, encrypted

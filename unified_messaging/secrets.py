"""Secrets in the configuration: licence and keystore passwords.

A secret value in ``conf/`` may be written four ways:

* ``enc:<token>``: encrypted with the installation's master key (``unified-messaging secret
  encrypt`` makes one); the clear value is never on disk.
* ``env:NAME``: read from the environment variable NAME at start-up.
* ``file:/path``: read from a file (for example a container secret), trailing newline removed.
* anything else: the value itself, in clear (acceptable for the simulator's demo values only;
  start-up warns when a clear secret is used towards the real platform).

The master key is a Fernet key in ``<data folder>/master.key`` (mode 0600), created on first use,
or the ``UM_MASTER_KEY`` environment variable when set.  While a key rotation is under way
(``unified-messaging secret rotate-master-key``, see ``operations/rotation.py``) the next key waits
in ``master.key.next``; every reader then accepts both keys, so an interrupted rotation leaves a
working install and running the command again finishes it.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

log = logging.getLogger(__name__)

MASTER_KEY_FILE = "master.key"
NEXT_KEY_FILE = "master.key.next"
MASTER_KEY_ENV = "UM_MASTER_KEY"


class SecretError(ValueError):
    """A secret reference cannot be resolved; the message names the key and what to do."""


@dataclass(frozen=True)
class Secret:
    """A resolved secret; its repr never shows the value."""

    value: str
    origin: str  # "encrypted", "environment", "file" or "clear"

    def __repr__(self) -> str:
        return f"Secret(<hidden>, origin={self.origin!r})"

    __str__ = __repr__


def master_key(data_folder: Path, *, create: bool = True) -> bytes:
    """The installation's master key, from ``UM_MASTER_KEY`` or ``<data>/master.key``."""
    from_env = os.environ.get(MASTER_KEY_ENV)
    if from_env:
        return from_env.encode("ascii")
    path = Path(data_folder) / MASTER_KEY_FILE
    if path.exists():
        return path.read_bytes().strip()
    if not create:
        raise SecretError(f"There is no master key at {path}; encrypted secrets cannot be read.")
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key + b"\n")
    log.info("created the master key %s (keep it with the data folder; back it up)", path)
    return key


def master_keys(data_folder: Path, *, create: bool = True) -> tuple[bytes, ...]:
    """Every key that may have sealed a secret: the master key, then the next one during a rotation
    (the last is the one to seal with)."""
    current = master_key(data_folder, create=create)
    upcoming = Path(data_folder) / NEXT_KEY_FILE
    if os.environ.get(MASTER_KEY_ENV) or not upcoming.exists():
        return (current,)
    return (current, upcoming.read_bytes().strip())


def rotation_pending(data_folder: Path) -> bool:
    """True when a master key rotation was interrupted (run ``secret rotate-master-key`` again)."""
    return (Path(data_folder) / NEXT_KEY_FILE).exists() and not os.environ.get(MASTER_KEY_ENV)


def encrypt_secret(clear: str, data_folder: Path) -> str:
    """The ``enc:`` form of a secret, for the configuration file."""
    newest = master_keys(data_folder)[-1]  # during a rotation, the key that stays
    return "enc:" + Fernet(newest).encrypt(clear.encode("utf-8")).decode("ascii")


def resolve_secret(value: str, *, key: str, data_folder: Path) -> Secret:
    """Turn a configured value into the secret it stands for; ``key`` names it in errors."""
    if value.startswith("enc:"):
        fernet = MultiFernet([Fernet(k) for k in master_keys(data_folder, create=False)])  # SecretError: no key
        try:
            clear = fernet.decrypt(value[4:].encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            raise SecretError(
                f"{key} cannot be decrypted with this installation's master key: it was encrypted "
                "elsewhere or altered. Encrypt it again with 'unified-messaging secret encrypt'."
            ) from None
        return Secret(clear.decode("utf-8"), "encrypted")
    if value.startswith("env:"):
        name = value[4:]
        if name not in os.environ:
            raise SecretError(f"{key} = {value!r}: the environment variable {name} is not set.")
        return Secret(os.environ[name], "environment")
    if value.startswith("file:"):
        path = Path(value[5:])
        try:
            return Secret(path.read_text(encoding="utf-8").rstrip("\r\n"), "file")
        except OSError as exc:
            raise SecretError(f"{key} = {value!r}: the file cannot be read ({exc.strerror}).") from None
    return Secret(value, "clear")

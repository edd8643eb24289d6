"""The secure space's store: one SQLite file, ``<data folder>/securespace.sqlite``.

What is never in the file in clear: the ``.p12`` bytes, its password and the licence password
(sealed with ``crypto.Sealer`` under the master secret), user passwords (scrypt hashes only).
Every decision (may this change be made, is this identifier valid) is taken by ``rules``.

``SecureSpaceStore`` is the facade callers use; each concept keeps its table(s) in its own module:
``users``, ``space``, ``certificates`` (with the access lists), ``establishments``, ``mandates``,
``licence_store``, ``resealing`` (the key rotation's pass); the tables and migrations are in ``schema``, the shared connection in ``base``.
The concepts are composed as mixins rather than as ``store.users.add(...)`` objects behind
delegating methods: they call one another (a certificate needs its responsible user and the space
owner, an establishment its certificate), they share one connection per thread and one clock, and
callers use some forty methods on the store itself, whose signatures delegation would write twice.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from unified_messaging.securespace.establishments import EstablishmentStore
from unified_messaging.securespace.licence_store import LicenceStore
from unified_messaging.securespace.mandates import MandateStore
from unified_messaging.securespace.resealing import ResealStore

STORE_FILE = "securespace.sqlite"


class SecureSpaceStore(EstablishmentStore, MandateStore, LicenceStore, ResealStore):
    """Users, the space, certificates and access lists, establishments, mandates and the licence.

    ``EstablishmentStore`` brings ``CertificateStore``, which brings ``UserStore`` and ``SpaceStore``;
    see ``base.StoreBase`` for the constructor's arguments.
    """

    @classmethod
    def in_data_folder(cls, data_folder: Path, master_secret: bytes | Sequence[bytes], **options: Any) -> SecureSpaceStore:
        return cls(Path(data_folder) / STORE_FILE, master_secret, **options)

"""The secure space's store: the SQLite file ``<data folder>/securespace.sqlite`` (the default), or
the PostgreSQL database of ``[database] url`` (``SecureSpaceStore.open``), through the database layer.

What is never in the file in clear: the ``.p12`` bytes, its password and the licence password
(sealed with ``crypto.Sealer`` under the master secret), user passwords (scrypt hashes only).
Every decision (may this change be made, is this identifier valid) is taken by ``rules``.

``SecureSpaceStore`` is the facade callers use; each concept keeps its table(s) in its own module:
``users``, ``space``, ``certificates`` (with the access lists), ``establishments``, ``mandates``,
``licence_store``, ``resealing`` (the key rotation's pass); the tables and migrations are in ``database/schema.py``, the shared database in ``base``.
The concepts are composed as mixins rather than as ``store.users.add(...)`` objects behind
delegating methods: they call one another (a certificate needs its responsible user and the space
owner, an establishment its certificate), they share one connection per thread and one clock, and
callers use some forty methods on the store itself, whose signatures delegation would write twice.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from unified_messaging.database import SECURESPACE, open_store
from unified_messaging.database.schema import SQLITE_FILES
from unified_messaging.securespace.establishments import EstablishmentStore
from unified_messaging.securespace.licence_store import LicenceStore
from unified_messaging.securespace.mandates import MandateStore
from unified_messaging.securespace.resealing import ResealStore

STORE_FILE = SQLITE_FILES[SECURESPACE]


class SecureSpaceStore(EstablishmentStore, MandateStore, LicenceStore, ResealStore):
    """Users, the space, certificates and access lists, establishments, mandates and the licence.

    ``EstablishmentStore`` brings ``CertificateStore``, which brings ``UserStore`` and ``SpaceStore``;
    see ``base.StoreBase`` for the constructor's arguments.
    """

    @classmethod
    def in_data_folder(cls, data_folder: Path, master_secret: bytes | Sequence[bytes], **options: Any) -> SecureSpaceStore:
        return cls(Path(data_folder) / STORE_FILE, master_secret, **options)

    @classmethod
    def open(cls, url: str, data_folder: Path, master_secret: bytes | Sequence[bytes], **options: Any) -> SecureSpaceStore:
        """The configured secure space: ``url`` "" = its file in the data folder, else that PostgreSQL
        (refused when ``db migrate`` has not created its tables there)."""
        if not url:
            return cls.in_data_folder(data_folder, master_secret, **options)
        return cls(open_store(url, data_folder, store=SECURESPACE), master_secret, **options)

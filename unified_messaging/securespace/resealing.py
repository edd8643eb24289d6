"""Every sealed value of the secure space, opened and sealed again under another master secret.

The master key rotation (``operations/rotation.py``) uses it; the secure space alone knows which
columns hold sealed values and under which purpose each was sealed.
"""
from __future__ import annotations

import logging
from typing import Callable, Iterator

from unified_messaging.database import Transaction
from unified_messaging.securespace.base import StoreBase
from unified_messaging.securespace.crypto import Sealer

logger = logging.getLogger(__name__)


def _no_checkpoint(step: str) -> None:
    """The default checkpoint: nothing (tests pass one that stops the process at a given step)."""


def _sealed_values(db: Transaction) -> Iterator[tuple[str, str, str, object, bytes]]:
    """(table, column, purpose, row key, sealed blob) of every sealed value, in a stable order."""
    for row in db.query("SELECT id, fingerprint, keystore, keystore_password FROM certificates ORDER BY id"):
        yield "certificates", "keystore", f"keystore:{row['fingerprint']}", row["id"], bytes(row["keystore"])
        yield ("certificates", "keystore_password", f"keystore-password:{row['fingerprint']}", row["id"],
               bytes(row["keystore_password"]))
    for row in db.query("SELECT id, username, password FROM licence"):
        yield "licence", "password", f"licence-password:{row['username']}", row["id"], bytes(row["password"])


class ResealStore(StoreBase):
    """Opens every sealed value (a check) and seals them all again (a rotation), in one transaction."""

    def count_sealed(self) -> int:
        """Open every sealed value with the store's secrets; ``Refusal`` SS-CERT-UNREADABLE if one fails."""
        values = list(_sealed_values(self.db))
        for _, _, purpose, _, blob in values:
            self._sealer.open(blob, purpose)
        return len(values)

    def reseal_all(self, new_secret: bytes, *, checkpoint: Callable[[str], None] = _no_checkpoint) -> int:
        """Seal every value again under ``new_secret``, all or nothing; the store then seals with it.

        ``checkpoint`` is called after each value is sealed again (inside the transaction) and once
        the transaction is committed, with the name of the step.
        """
        new = Sealer(new_secret)
        with self.write() as db:
            values = list(_sealed_values(db))
            for done, (table, column, purpose, key, blob) in enumerate(values, 1):
                clear = self._sealer.open(blob, purpose)
                db.execute(f"UPDATE {table} SET {column} = :sealed WHERE id = :id", {"sealed": new.seal(clear, purpose), "id": key})
                checkpoint(f"resealed-{done}")
        checkpoint("resealed-committed")
        self._sealer = new
        logger.info("%d sealed values of the secure space sealed again under the new master key", len(values))
        return len(values)

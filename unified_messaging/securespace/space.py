"""The secure space itself: its one row (name, owner, responsible person)."""
from __future__ import annotations

import logging

from unified_messaging.identifiers import mask_ssin
from unified_messaging.securespace import rules
from unified_messaging.securespace.base import StoreBase
from unified_messaging.securespace.catalogue import Refusal
from unified_messaging.securespace.models import SecureSpace

logger = logging.getLogger(__name__)


class SpaceStore(StoreBase):
    """The ``space`` table: at most one row."""

    def create_space(self, name: str, owner_name: str, owner_ssin: str, responsible_name: str,
                     responsible_ssin: str) -> SecureSpace:
        rules.check_ssin(owner_ssin)
        rules.check_ssin(responsible_ssin)
        with self.write() as db:
            if db.query("SELECT 1 AS found FROM space"):
                raise Refusal("SS-SECURE-SPACE-EXISTS")
            db.execute("INSERT INTO space (id, name, owner_name, owner_ssin, responsible_name, responsible_ssin, "
                       "created_at) VALUES (1, :name, :owner_name, :owner_ssin, :responsible_name, "
                       ":responsible_ssin, :at)",
                       {"name": name, "owner_name": owner_name, "owner_ssin": owner_ssin,
                        "responsible_name": responsible_name, "responsible_ssin": responsible_ssin,
                        "at": self._stamp()})
        logger.info("secure space '%s' created, owner SSIN %s", name, mask_ssin(owner_ssin))
        return self.space()

    def update_space(self, **values: str) -> SecureSpace:
        allowed = {"name", "owner_name", "owner_ssin", "responsible_name", "responsible_ssin"}
        changes = {k: v for k, v in values.items() if k in allowed and v}
        for key in ("owner_ssin", "responsible_ssin"):
            if key in changes:
                rules.check_ssin(changes[key])
        self.space()
        if changes:
            with self.write() as db:
                db.execute("UPDATE space SET " + ", ".join(f"{k} = :{k}" for k in changes) + " WHERE id = 1",
                           changes)
        return self.space()

    def space(self) -> SecureSpace:
        found = self.space_or_none()
        if found is None:
            raise Refusal("SS-NO-SECURE-SPACE")
        return found

    def space_or_none(self) -> SecureSpace | None:
        rows = self._rows("SELECT * FROM space")
        if not rows:
            return None
        row = rows[0]
        return SecureSpace(row["name"], row["owner_name"], row["owner_ssin"], row["responsible_name"],
                           row["responsible_ssin"], row["created_at"])

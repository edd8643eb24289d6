"""The MyCareNet licence (username and sealed password) kept in the secure space."""
from __future__ import annotations

import logging

from unified_messaging.securespace.base import StoreBase
from unified_messaging.securespace.models import Licence

logger = logging.getLogger(__name__)


class LicenceStore(StoreBase):
    """The ``licence`` table: at most one row."""

    def set_licence(self, username: str, password: str) -> None:
        sealed = self._sealer.seal(password.encode("utf-8"), f"licence-password:{username}")
        with self.write() as db:
            db.execute("INSERT OR REPLACE INTO licence VALUES (1, ?, ?, ?)", [username, sealed, self._stamp()])
        logger.info("MyCareNet licence %s recorded", username)

    def licence(self) -> Licence | None:
        rows = self._rows("SELECT username, password FROM licence")
        if not rows:
            return None
        username = rows[0]["username"]
        return Licence(username, self._sealer.open(rows[0]["password"], f"licence-password:{username}").decode("utf-8"))

    def licence_username(self) -> str | None:
        rows = self._rows("SELECT username FROM licence")
        return rows[0]["username"] if rows else None


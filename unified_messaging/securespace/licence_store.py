"""The MyCareNet licence (username and sealed password) kept in the secure space."""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from unified_messaging.securespace.base import StoreBase
from unified_messaging.securespace.models import Licence

logger = logging.getLogger(__name__)


class LicenceStore(StoreBase):
    """The ``licence`` table: at most one row."""

    def set_licence(self, username: str, password: str) -> None:
        sealed = self._sealer.seal(password.encode("utf-8"), f"licence-password:{username}")
        with self.write() as db:
            db.execute("INSERT INTO licence (id, username, password, updated_at) VALUES (1, :username, :password, :at) "
                       "ON CONFLICT (id) DO UPDATE SET username = excluded.username, password = excluded.password, "
                       "updated_at = excluded.updated_at",
                       {"username": username, "password": sealed, "at": self._stamp()})
        logger.info("MyCareNet licence %s recorded", username)

    def licence(self) -> Licence | None:
        rows = self._rows("SELECT username, password FROM licence")
        if not rows:
            return None
        username = rows[0]["username"]
        return Licence(username, self._sealer.open(bytes(rows[0]["password"]), f"licence-password:{username}").decode("utf-8"))

    def licence_username(self) -> str | None:
        rows = self._rows("SELECT username FROM licence")
        return rows[0]["username"] if rows else None



class LicenceInForce:
    """The licence every upstream call carries (#18 point 1): the one recorded in the secure space when
    there is one (``licence set``, Mybox Administration), else the configuration's ``[licence]``.

    Called per call, it reads the secure space at most every ``refresh_seconds``, so a licence recorded
    while serving, by any process, is in force within that time, without a restart.  When the secure
    space cannot be read, the last licence known stays in force (and it says so once in the log).
    """

    def __init__(self, configured: Licence, recorded: Callable[[], Licence | None] = lambda: None, *,
                 refresh_seconds: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.configured = configured
        self._recorded = recorded
        self._refresh = refresh_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._current: tuple[Licence, str] | None = None
        self._read_at = 0.0
        self._failing = False

    def __call__(self) -> tuple[str, str]:
        licence = self.current()[0]
        return licence.username, licence.password

    def current(self) -> tuple[Licence, str]:
        """The licence in force and where it comes from: ``"secure space"`` or ``"configuration"``."""
        with self._lock:
            now = self._clock()
            if self._current is None or now - self._read_at >= self._refresh:
                self._current = self._read()
                self._read_at = now
            return self._current

    def _read(self) -> tuple[Licence, str]:
        try:
            recorded = self._recorded()
        except Exception as exc:  # a locked or full data folder must not stop the calls
            if not self._failing:
                logger.warning("the secure space's licence cannot be read (%s); the last licence known stays in force",
                               type(exc).__name__)
                self._failing = True
            return self._current or (self.configured, "configuration")
        self._failing = False
        chosen = (recorded, "secure space") if recorded is not None else (self.configured, "configuration")
        if self._current is not None and self._current[0].username != chosen[0].username:
            logger.info("MyCareNet licence now in force: %s (from the %s)", chosen[0].username, chosen[1])
        return chosen

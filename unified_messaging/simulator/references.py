"""Platform-style references handed out by the simulator (what a user quotes to the helpdesk)."""
from __future__ import annotations

import threading
import time
from datetime import date
from typing import Callable


class NipReferences:
    """Fresh 14-digit references: the day (YYMMDD) then an 8-digit sequence.

    The sequence starts from the clock (milliseconds, modulo 10^8) so that a restarted simulator
    does not hand out the references of the previous run again, and then counts up under a lock,
    so that concurrent calls never share one.
    """

    def __init__(self, today: Callable[[], date] = date.today) -> None:
        self._today = today
        self._lock = threading.Lock()
        self._next = int(time.time() * 1000) % 10**8

    def next(self) -> str:
        with self._lock:
            sequence = self._next
            self._next = (self._next + 1) % 10**8
        return f"{self._today():%y%m%d}{sequence:08d}"

"""Certificate expiry, said every day in the log (not only when someone opens a page).

Once at start-up and then once a day, every certificate the gateway uses (its own, and each of
the secure space's) that has expired or expires within ``warn_within_days`` is logged at WARNING,
with what to do.  The same figures are in the health document and the metrics.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

log = logging.getLogger(__name__)

WARN_WITHIN_DAYS = 30


@dataclass(frozen=True)
class Expiry:
    """A certificate that has expired (``days`` < 0) or expires soon."""

    label: str
    not_after: datetime
    days: float

    @property
    def expired(self) -> bool:
        return self.days < 0


def expiries(certificates: list[tuple[str, datetime]], now: datetime,
             warn_within_days: int = WARN_WITHIN_DAYS) -> list[Expiry]:
    """The ``(label, not after)`` pairs that have expired or expire within ``warn_within_days``, soonest
    first (the log, and Mybox's banners, say them each in their own words)."""
    found = [Expiry(label, not_after, (not_after - now).total_seconds() / 86400) for label, not_after in certificates]
    return sorted((e for e in found if e.days <= warn_within_days), key=lambda e: e.not_after)


def expiry_lines(certificates: list[tuple[str, datetime]], now: datetime,
                 warn_within_days: int = WARN_WITHIN_DAYS) -> list[str]:
    """The warnings for ``(label, not after)`` pairs, soonest first."""
    lines = []
    for e in expiries(certificates, now, warn_within_days):
        if e.expired:
            lines.append(f"certificate {e.label} expired on {e.not_after:%Y-%m-%d}: calls made with it are refused; "
                         "renew it with eHealth and upload the new keystore")
        else:
            lines.append(f"certificate {e.label} expires on {e.not_after:%Y-%m-%d} (in {int(e.days)} day(s)): "
                         "renew it with eHealth and upload the new keystore before then")
    return lines


class ExpiryWarnings:
    """A daemon thread that logs ``expiry_lines`` at start and every ``every``."""

    def __init__(self, certificates: Callable[[], list[tuple[str, datetime]]], *, clock: Callable[[], datetime],
                 every: timedelta = timedelta(days=1), warn_within_days: int = WARN_WITHIN_DAYS) -> None:
        self.certificates = certificates
        self.clock = clock
        self.every = every
        self.warn_within_days = warn_within_days
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> list[str]:
        try:
            lines = expiry_lines(self.certificates(), self.clock(), self.warn_within_days)
        except Exception:  # a secure space that cannot be read must not stop the daily check
            log.exception("the certificates' expiry could not be read")
            return []
        for line in lines:
            log.warning(line)
        return lines

    def start(self) -> "ExpiryWarnings":
        self._thread = threading.Thread(target=self._run, name="um-expiry", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while True:
            self.check()
            if self._stop.wait(self.every.total_seconds()):
                return

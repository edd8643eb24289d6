"""Certificate expiry, said every day in the log (not only when someone opens a page).

Once at start-up and then once a day, every certificate the gateway uses (its own, and each of
the secure space's) that has expired or expires within ``warn_within_days`` is logged at WARNING,
with what to do.  The same figures are in the health document and the metrics.
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import Callable

log = logging.getLogger(__name__)

WARN_WITHIN_DAYS = 30


def expiry_lines(certificates: list[tuple[str, datetime]], now: datetime,
                 warn_within_days: int = WARN_WITHIN_DAYS) -> list[str]:
    """The warnings for ``(label, not after)`` pairs, soonest first."""
    lines = []
    for label, not_after in sorted(certificates, key=lambda pair: pair[1]):
        days = (not_after - now).total_seconds() / 86400
        if days < 0:
            lines.append(f"certificate {label} expired on {not_after:%Y-%m-%d}: calls made with it are refused; "
                         "renew it with eHealth and upload the new keystore")
        elif days <= warn_within_days:
            lines.append(f"certificate {label} expires on {not_after:%Y-%m-%d} (in {int(days)} day(s)): renew it "
                         "with eHealth and upload the new keystore before then")
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

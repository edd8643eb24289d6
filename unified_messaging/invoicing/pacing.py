"""When the feedback poller may send its next GenAsync ``get`` (#15 point 3).

MyCareNet refuses a ``get`` that comes too soon after the previous one for the same mailbox, with a
fault whose text says "Not enough time ... wait 8.0 s".  Asking again every few seconds only earns
more refusals, so the poller paces itself:

* after an answer, the next ``get`` waits the configured interval (never less than the gap the
  platform accepts), or only that gap when more messages are waiting (a full batch came back);
* after a "Not enough time", it waits what the platform names (or the client's ``throttle_wait``
  when the text names nothing, as freehealth-connector's 30 s), and learns the platform's gap from it: the time
  since the last accepted ``get`` plus the named wait;
* ``throttle_retries`` refusals in a row (freehealth-connector gives up after 8) count as a failure
  of the poll, like a network error: the failures' backoff applies from then on;
* any other failure backs off along the shared :class:`~unified_messaging.retry.RetryPolicy`.

The clock is injectable (monotonic seconds) so tests need no sleeping.
"""
from __future__ import annotations

import logging
import time
from typing import Callable

from unified_messaging.mycarenet.throttling import PLATFORM_MIN_GET_INTERVAL, MailboxThrottled
from unified_messaging.retry import RetryPolicy

log = logging.getLogger(__name__)

# Arriving exactly when the named wait ends may still be too soon (the platform rounds to 0.1 s).
_MARGIN = 0.25
# A learned gap above this is taken for noise (another program's get of the same mailbox).
_MAX_LEARNED_GAP = 60.0

__all__ = ["PollPacing"]


class PollPacing:
    """The feedback poller's schedule: ``due()`` says whether to ``get`` now; the poller reports each outcome."""

    def __init__(self, interval: float, *, backoff: RetryPolicy, throttle_retries: int = 8,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.throttle_retries = throttle_retries
        self._backoff = backoff
        self._clock = clock
        self.gap = min(interval, PLATFORM_MIN_GET_INTERVAL)
        """The shortest gap between two gets the platform accepts, as far as the poller knows."""
        self.next_at = 0.0
        self.throttled_in_a_row = 0
        self.failures = 0
        self._last_accepted: float | None = None
        self._started: float | None = None

    def due(self) -> bool:
        return self._clock() >= self.next_at

    def wait(self) -> float:
        """Seconds until the next get is due (0 when it is due)."""
        return max(0.0, self.next_at - self._clock())

    def started(self) -> None:
        """A get is being sent now."""
        self._started = self._clock()

    def answered(self, *, more_waiting: bool) -> None:
        """The platform answered the get; ``more_waiting`` when it returned a full batch."""
        self._last_accepted = self._started if self._started is not None else self._clock()
        self.throttled_in_a_row = 0
        self.failures = 0
        self.next_at = self._last_accepted + (self.gap if more_waiting else max(self.interval, self.gap))

    def throttled(self, refusal: MailboxThrottled) -> bool:
        """The platform said "Not enough time".  True when this one counts as a failure of the poll
        (``throttle_retries`` in a row); the next get is then scheduled by :meth:`failed`."""
        now = self._clock()
        self.throttled_in_a_row += 1
        if refusal.named and self._last_accepted is not None and self._started is not None:
            learned = min((self._started - self._last_accepted) + refusal.wait_seconds + _MARGIN, _MAX_LEARNED_GAP)
            if learned > self.gap:
                log.info("MyCareNet accepts a get about every %.1f s: the poller keeps at least that gap", learned)
                self.gap = learned
        self.next_at = now + refusal.wait_seconds + (_MARGIN if refusal.named else 0.0)
        if self.throttled_in_a_row < self.throttle_retries:
            return False
        self.throttled_in_a_row = 0
        return True

    def failed(self) -> float:
        """The get failed (network, fault, or too many throttles): back off.  Returns the delay."""
        self.failures += 1
        delay = self._backoff.delay(self.failures)
        self.next_at = max(self.next_at, self._clock() + delay)
        return delay

    def no_later_than(self, delay: float) -> None:
        """Bring the next get forward to ``delay`` from now (a post to settle), never under the platform's gap."""
        earliest = self._last_accepted + self.gap if self._last_accepted is not None else 0.0
        self.next_at = min(self.next_at, max(self._clock() + delay, earliest))

"""One retry/backoff policy shared by the folder watcher, the invoicing pipeline and the batch (#19 point 6).

A :class:`RetryPolicy` says how long to wait before attempt ``n`` (1 = the first retry): either an
explicit schedule (the last step repeats) or a geometric one (``first * factor ** (n - 1)`` capped at
``maximum``), with optional proportional jitter drawn from an injectable random source, and an optional
``max_attempts`` after which :meth:`RetryPolicy.exhausted` is true.  :class:`Backoff` tracks, per key,
the attempts made and when the next one is due, with an injectable clock.
"""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Hashable

log = logging.getLogger(__name__)

__all__ = ["Backoff", "RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    """Delays between attempts.  ``schedule``, when given, wins over ``first``/``factor``/``maximum``."""

    first: float = 1.0
    factor: float = 2.0
    maximum: float = 300.0
    jitter: float = 0.0  # 0.1 = up to +-10 %
    max_attempts: int | None = None
    schedule: tuple[float, ...] = ()
    rand: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.first < 0 or self.maximum < 0 or self.factor < 1 or not 0 <= self.jitter < 1:
            raise ValueError("retry policy: first/maximum >= 0, factor >= 1, 0 <= jitter < 1")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("retry policy: max_attempts must be at least 1")

    @classmethod
    def from_schedule(cls, delays: tuple[float, ...] | list[float], **kwargs: object) -> "RetryPolicy":
        """A policy that waits ``delays[n-1]`` before attempt ``n`` and the last delay after that."""
        if not delays:
            raise ValueError("retry policy: empty schedule")
        return cls(schedule=tuple(float(d) for d in delays), maximum=max(delays), **kwargs)  # type: ignore[arg-type]

    def base_delay(self, attempt: int) -> float:
        """The delay before retry number ``attempt`` (1-based), without jitter."""
        n = max(1, attempt)
        if self.schedule:
            return self.schedule[min(n, len(self.schedule)) - 1]
        return min(self.first * self.factor ** (n - 1), self.maximum)

    def delay(self, attempt: int) -> float:
        """The delay before retry number ``attempt`` (1-based), jittered when ``jitter`` is set."""
        base = self.base_delay(attempt)
        if self.jitter:
            base *= 1 + self.jitter * (2 * self.rand() - 1)
        return max(0.0, base)

    def exhausted(self, attempts: int) -> bool:
        """True when ``attempts`` retries have been made and no further one is allowed."""
        return self.max_attempts is not None and attempts >= self.max_attempts


class Backoff:
    """Per-key retry bookkeeping: ``failed(key)`` schedules the next attempt, ``due(key)`` says if it may run."""

    def __init__(self, policy: RetryPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.clock = clock
        self._entries: dict[Hashable, tuple[float, int]] = {}  # key -> (next attempt at, attempts)

    def failed(self, key: Hashable) -> float:
        """Record a failure of ``key``; returns the delay until its next attempt."""
        attempts = self._entries.get(key, (0.0, 0))[1] + 1
        delay = self.policy.delay(attempts)
        self._entries[key] = (self.clock() + delay, attempts)
        return delay

    def due(self, key: Hashable) -> bool:
        entry = self._entries.get(key)
        return entry is None or entry[0] <= self.clock()

    def attempts(self, key: Hashable) -> int:
        return self._entries.get(key, (0.0, 0))[1]

    def forget(self, key: Hashable) -> None:
        self._entries.pop(key, None)

    def soonest(self) -> float | None:
        """When the earliest pending retry is due (clock time), or None."""
        return min((at for at, _ in self._entries.values()), default=None)

    def __bool__(self) -> bool:
        return bool(self._entries)

"""Thread-safe counters shared by the simulator's services (calls, faults, tokens, refusals)."""
from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping


class Counters(Mapping[str, int]):
    """Thread-safe counters, read like a dict (``counters["genericinsurability.getInsurability"]``).

    A name never incremented reads as 0, so tests can compare before/after for any counter.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, int] = {}

    def register(self, name: str) -> None:
        with self._lock:
            self._values.setdefault(name, 0)

    def increment(self, name: str, by: int = 1) -> None:
        with self._lock:
            self._values[name] = self._values.get(name, 0) + by

    def __getitem__(self, name: str) -> int:
        with self._lock:
            return self._values.get(name, 0)

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._values))

    def __len__(self) -> int:
        with self._lock:
            return len(self._values)

    def __repr__(self) -> str:
        with self._lock:
            return f"Counters({self._values!r})"

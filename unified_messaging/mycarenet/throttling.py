"""MyCareNet's throttling of GenAsync ``get``: the "Not enough time" fault and the wait it names.

The platform refuses a ``get`` of a mailbox that comes too soon after the previous one, with a
fault whose text contains "Not enough time" and, on the acceptance platform, names the wait
("wait 8.0 s before asking again").  The official clients wait 30 s when nothing is named.
"""
from __future__ import annotations

import re

from unified_messaging.domain.errors import UpstreamFault

__all__ = ["DEFAULT_THROTTLE_WAIT", "PLATFORM_MIN_GET_INTERVAL", "THROTTLE_TEXT", "MailboxThrottled", "named_wait"]

THROTTLE_TEXT = "Not enough time"
DEFAULT_THROTTLE_WAIT = 30.0
# The shortest gap between two gets of one mailbox MyCareNet accepts, as measured on the acceptance
# platform: a get 2 s after the previous one was told to "wait 8.0 s".
PLATFORM_MIN_GET_INTERVAL = 10.0
# "... wait 8.0 s ...", "wait 8 seconds": the wait the platform names in its "Not enough time" fault
_NAMED_WAIT = re.compile(r"\bwait\s+(\d+(?:[.,]\d+)?)\s*(?:s\b|sec|second)", re.IGNORECASE)


class MailboxThrottled(UpstreamFault):
    """The platform refused a ``get`` that came too soon after the previous one: wait and retry.

    ``wait_seconds`` is the wait the platform names in its message when it names one (``named``),
    otherwise the client's default (freehealth-connector waits 30 s).
    """

    def __init__(self, message: str, wait_seconds: float = DEFAULT_THROTTLE_WAIT, *, named: bool = False) -> None:
        super().__init__("NOT_ENOUGH_TIME", message, f"Wait {wait_seconds:g} s before the next get.")
        self.wait_seconds = wait_seconds
        self.named = named


def named_wait(text: str) -> float | None:
    """The wait a "Not enough time" message names ("wait 8.0 s before asking again" -> 8.0), if any."""
    found = _NAMED_WAIT.search(text or "")
    return float(found.group(1).replace(",", ".")) if found else None

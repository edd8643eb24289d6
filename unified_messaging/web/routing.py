"""The Mybox route table: each view says its address, its methods and the permission it needs.

View modules register with ``@route(...)``; ``app.Mybox`` builds its URL map from ``ROUTES``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from unified_messaging.web.permissions import Permission

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Route:
    path: str
    endpoint: str
    methods: tuple[str, ...]
    permission: Permission | None  # None: reachable without logging in (the login page only)
    view: Callable


ROUTES: dict[str, Route] = {}


def route(path: str, *, methods: tuple[str, ...] = ("GET",), permission: Permission | None) -> Callable:
    """Register a view; the endpoint is the function's name (unique across Mybox)."""
    def register(view: Callable) -> Callable:
        if view.__name__ in ROUTES:
            raise ValueError(f"two Mybox views are called {view.__name__}")
        ROUTES[view.__name__] = Route(path, view.__name__, methods, permission, view)
        return view
    return register

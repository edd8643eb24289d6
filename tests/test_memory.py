"""[server] malloc_arena_max: glibc's mallopt really takes the cap (no mocks)."""
import platform

import pytest

from unified_messaging.config import ServerConfig
from unified_messaging.memory import limit_malloc_arenas


def test_default_is_two_arenas() -> None:
    assert ServerConfig().malloc_arena_max == 2


def test_zero_leaves_glibc_default() -> None:
    assert limit_malloc_arenas(0) is None


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_mallopt_accepts_the_cap() -> None:
    assert limit_malloc_arenas(2) == 1

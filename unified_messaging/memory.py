"""glibc malloc tuning for the gateway's processes.

A gateway process runs dozens of threads (waitress workers, folder watchers, the invoicing
pipeline, pollers). glibc gives each thread that contends for the heap an arena of its own, up to
8 per core; the soak benchmark showed the resident memory of a long run growing by free memory
left in those arenas (fragmentation), while the memory malloc hands out stayed flat. Capping the
number of arenas (``[server] malloc_arena_max``) keeps that free memory in a few arenas where it
is reused. Off glibc (musl, macOS, Windows) this module does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc malloc.h


def _libc() -> ctypes.CDLL | None:
    if platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def limit_malloc_arenas(arenas: int) -> int | None:
    """Cap glibc's malloc arenas at ``arenas`` (0 = leave glibc's default).

    Call it at process start, before the threads start: arenas already created stay. Returns what
    ``mallopt`` returned (1 = applied, 0 = refused), or None when nothing was asked or the C
    library is not glibc.
    """
    if arenas <= 0:
        return None
    libc = _libc()
    if libc is None or not hasattr(libc, "mallopt"):
        log.debug("malloc_arena_max=%d ignored: the C library is not glibc", arenas)
        return None
    result = int(libc.mallopt(ctypes.c_int(M_ARENA_MAX), ctypes.c_int(arenas)))
    if result == 1:
        log.info("glibc malloc arenas limited to %d", arenas)
    else:
        log.warning("glibc refused malloc_arena_max=%d (mallopt returned %d)", arenas, result)
    return result

"""Giving freed memory back to the operating system between heavy stages.

glibc keeps memory that worker threads freed in per-thread arenas instead of returning it, so
after a parallel stage (SIFT on every frame, rendering tiles) a process can hold several hundred
megabytes it no longer uses. ``malloc_trim`` returns it; Dask's distributed workers do the same.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        lib = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return lib if lib is not None and hasattr(lib, "malloc_trim") else None


def trim_memory() -> bool:
    """Return freed heap memory to the OS (glibc ``malloc_trim``); False where unavailable
    (musl, macOS, Windows), where it is not needed in the same way."""
    lib = _libc()
    return bool(lib.malloc_trim(0)) if lib is not None else False

"""One progress type for long work: the CLI renders it as a bar, the API as job progress."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

#: ``progress(fraction, message)``: fraction in [0, 1] of the current step, a short human message.
ProgressCallback = Callable[[float, str], None]

T = TypeVar("T")


def no_progress(fraction: float, message: str) -> None:
    """The default callback: report nothing."""


def track(items: Iterable[T], total: int, message: str,
          progress: ProgressCallback | None) -> Iterator[T]:
    """Yield ``items`` while reporting ``done/total`` through ``progress``."""
    cb = progress or no_progress
    cb(0.0, message)
    for i, item in enumerate(items, 1):
        yield item
        cb(i / max(total, 1), message)


def scaled(progress: ProgressCallback | None, start: float, stop: float) -> ProgressCallback:
    """A callback mapping a sub-step's [0, 1] onto ``[start, stop]`` of the parent's."""
    cb = progress or no_progress

    def inner(fraction: float, message: str) -> None:
        cb(start + (stop - start) * min(max(fraction, 0.0), 1.0), message)

    return inner

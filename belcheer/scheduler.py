"""The Dask scheduler the stages run on, read from one setting in one place.

``BELCHEER_SCHEDULER`` (or a stage's ``scheduler=`` argument) names it: ``threads`` (the
default), ``processes``, ``synchronous``, or the address of a dask.distributed scheduler
(``tcp://host:8786``, ``tls://…``). A ``distributed.Client`` made by the caller (a notebook on a
cluster) is accepted wherever a spec is. Every stage asks this module, so a spec means the same
thing to feature detection, rendering, indices and zonal statistics, and a wrong one gets the same
error everywhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dask

from belcheer.errors import ConfigError, SchedulerUnavailableError

#: spellings people (and dask) use for the local schedulers
_ALIASES = {"threads": "threads", "threading": "threads", "processes": "processes",
            "multiprocessing": "processes", "synchronous": "synchronous", "sync": "synchronous",
            "single-threaded": "synchronous"}
_PROTOCOLS = ("tcp://", "tls://", "inproc://", "ws://", "wss://", "ucx://")
#: seconds to wait for a cluster's scheduler before naming it unreachable
CONNECT_TIMEOUT_S = 20


@dataclass(frozen=True)
class Scheduler:
    """A parsed scheduler spec: a local ``kind`` or a cluster ``address`` (or a caller's client)."""

    kind: str  # "threads" | "processes" | "synchronous" | "distributed"
    address: str | None = None
    client: Any = None

    @property
    def distributed(self) -> bool:
        return self.kind == "distributed"


def parse(spec: str | Any | None) -> Scheduler:
    """A scheduler spec as a :class:`Scheduler`; ``None`` reads ``BELCHEER_SCHEDULER``.

    Raises ConfigError naming the spec when it is neither a local scheduler nor an address."""
    if spec is None:
        from belcheer.config import Settings

        spec = Settings().scheduler
    if isinstance(spec, Scheduler):
        return spec
    if not isinstance(spec, str):
        if hasattr(spec, "submit") and hasattr(spec, "nthreads"):  # a distributed.Client
            return Scheduler("distributed", client=spec)
        raise ConfigError(f"scheduler {spec!r} is neither a name, an address nor a Dask client")
    s = spec.strip()
    if s.lower() in _ALIASES:
        return Scheduler(_ALIASES[s.lower()])
    if s.lower().startswith(_PROTOCOLS):
        return Scheduler("distributed", address=s)
    raise ConfigError(f"unknown scheduler {spec!r}: use threads, processes, synchronous or the "
                      "address of a Dask cluster (tcp://host:8786)")


def is_distributed(spec: str | Any | None) -> bool:
    """Whether ``spec`` (None: the setting) names a Dask cluster rather than a local scheduler."""
    return parse(spec).distributed


@contextlib.contextmanager
def client(spec: str | Any | None) -> Iterator[Any]:
    """A ``distributed.Client`` for a cluster spec, closed on exit (a caller's own client is
    lent, not closed). Raises SchedulerUnavailableError naming the address when it cannot
    connect, ConfigError for a local spec."""
    sched = parse(spec)
    if not sched.distributed:
        raise ConfigError(f"scheduler {sched.kind!r} is not a Dask cluster")
    if sched.client is not None:
        yield sched.client
        return
    from distributed import Client

    try:
        c = Client(sched.address, set_as_default=False, timeout=f"{CONNECT_TIMEOUT_S}s")
    except (OSError, TimeoutError) as e:
        raise SchedulerUnavailableError(
            f"the Dask scheduler at {sched.address} cannot be reached ({e}); start the cluster or fix "
            "BELCHEER_SCHEDULER") from e
    try:
        yield c
    finally:
        c.close()


def worker_threads(spec: str | Any | None, local: int) -> int:
    """Threads available to run tasks: the cluster's total for a cluster, else ``local``."""
    sched = parse(spec)
    if not sched.distributed:
        return max(int(local), 1)
    with client(sched) as c:
        return max(sum(c.nthreads().values()), 1)


def compute(*tasks: Any, scheduler: str | Any | None = None) -> tuple:
    """``dask.compute`` of ``tasks`` on the named scheduler; results in the tasks' order."""
    sched = parse(scheduler)
    if sched.distributed:
        with client(sched) as c:
            return tuple(c.gather(c.compute(list(tasks))))
    return dask.compute(*tasks, scheduler=sched.kind)

"""One scheduler setting for every stage: parsing, errors, and tasks run on a real Dask cluster."""

from __future__ import annotations

import socket

import dask
import pytest

from belcheer import scheduler
from belcheer.errors import ConfigError, SchedulerUnavailableError


@pytest.mark.parametrize(("spec", "kind"), [("threads", "threads"), ("Threading", "threads"),
                                            ("processes", "processes"), ("sync", "synchronous"),
                                            (" synchronous ", "synchronous")])
def test_local_names(spec, kind):
    parsed = scheduler.parse(spec)
    assert parsed.kind == kind and not parsed.distributed and parsed.address is None


def test_addresses_and_the_setting(monkeypatch):
    parsed = scheduler.parse("tcp://10.0.0.5:8786")
    assert parsed.distributed and parsed.address == "tcp://10.0.0.5:8786"
    monkeypatch.setenv("BELCHEER_SCHEDULER", "tls://sched.aimag.mn:8786")
    assert scheduler.parse(None).address == "tls://sched.aimag.mn:8786"
    assert scheduler.is_distributed(None)
    monkeypatch.setenv("BELCHEER_SCHEDULER", "processes")
    assert scheduler.parse(None).kind == "processes"


@pytest.mark.parametrize("spec", ["thread", "10.0.0.5:8786", "http://x:8786", ""])
def test_a_wrong_spec_is_named(spec):
    with pytest.raises(ConfigError, match="unknown scheduler") as e:
        scheduler.parse(spec)
    assert repr(spec) in str(e.value)


def test_the_stages_share_the_error(tmp_path):
    """Indices and zonal statistics used to raise two different errors for the same bad spec."""
    from belcheer.indices.compute import _scheduler

    with pytest.raises(ConfigError, match="unknown scheduler 'bogus'"), _scheduler("bogus"):
        pass


def test_an_unreachable_cluster_names_its_address(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    monkeypatch.setattr(scheduler, "CONNECT_TIMEOUT_S", 2)
    with pytest.raises(SchedulerUnavailableError, match=f"tcp://127.0.0.1:{port}") as e:
        scheduler.compute(dask.delayed(int)(1), scheduler=f"tcp://127.0.0.1:{port}")
    assert e.value.http_status == 503


def test_tasks_run_on_a_real_cluster_and_locally_alike():
    from distributed import LocalCluster

    tasks = [dask.delayed(pow)(i, 3) for i in range(7)]
    expected = tuple(i ** 3 for i in range(7))
    assert scheduler.compute(*tasks, scheduler="synchronous") == expected
    assert scheduler.compute(*tasks, scheduler="threads") == expected
    with LocalCluster(n_workers=2, processes=False, threads_per_worker=1, protocol="tcp",
                      dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://")
        assert scheduler.compute(*tasks, scheduler=cluster.scheduler_address) == expected
        assert scheduler.worker_threads(cluster.scheduler_address, local=9) == 2
        with scheduler.client(cluster.scheduler_address) as c:  # a caller's own client is lent
            assert scheduler.compute(*tasks, scheduler=c) == expected
            assert c.status == "running"
    assert scheduler.worker_threads("threads", local=3) == 3

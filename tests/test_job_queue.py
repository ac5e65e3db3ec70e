"""The job queue shared by API replicas and `belcheer worker` processes (issue 16, item 4).

Real processes on loopback, a real PostgreSQL (tests/pgserver.py) and the embedded SQLite file:
two API replicas that only queue jobs and two workers that run them; each job runs exactly once
(read from the stages' own log); a worker killed with SIGKILL mid-mosaic has its job resumed
by the other worker from its last finished stage, with the same products as an uninterrupted run;
a worker whose database goes down mid-job keeps running and resumes the job once it is back.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import pytest
import rasterio

from belcheer import pipeline
from belcheer.config import Settings
from belcheer.workspace import open_workspace

PASSWORD = "queue-test-password-1"
_CLI = "import sys; from belcheer.cli import main; sys.exit(main(sys.argv[1:]))"

# a worker whose stages are instant stand-ins that log what ran where: exactly-once is read from
# this log, not from the job rows the workers themselves write
_LOGGING_WORKER = """
import json, os, sys, time
from belcheer import pipeline
from belcheer.cli import main

LOG = os.environ["QUEUE_TEST_LOG"]

SECONDS = json.loads(os.environ.get("QUEUE_TEST_STAGE_S", "{}"))

def fake(name):
    def run(ctx, progress):
        progress(0.0, name)
        end = time.monotonic() + SECONDS.get(name, 0.15)
        while time.monotonic() < end:  # a stage reports progress as it goes, as the real ones do
            time.sleep(0.05)
            progress(0.5, name)
        with open(LOG, "a") as f:
            f.write(json.dumps({"survey": ctx.params.survey, "stage": name, "pid": os.getpid()}) + "\\n")
        return {"fake": name}
    return run

for n in pipeline.STAGES:
    pipeline._RUNNERS[n] = fake(n)
sys.exit(main(sys.argv[1:]))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(ws: Path, catalog: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BELCHEER_")}
    env.update(BELCHEER_WORKSPACE=str(ws), BELCHEER_CATALOG=catalog, BELCHEER_SECRET_KEY="q" * 40,
               BELCHEER_JOB_HEARTBEAT_S="0.5", BELCHEER_JOB_STALE_AFTER_S="3", BELCHEER_JOB_POLL_S="0.3",
               BELCHEER_LOG_LEVEL="INFO", **extra)
    return env


def _start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    out = log.open("wb")
    return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-2000:]
        try:
            if httpx.get(url + "/conformance", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not start: {log.read_text()[-2000:]}")


def _wait_jobs(ws, ids: list[str], timeout: float, procs: list[subprocess.Popen], logs: list[Path]):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = {j.id: j for j in ws.catalog.jobs() if j.id in ids}
        if all(j.state in ("done", "failed") for j in jobs.values()) and len(jobs) == len(ids):
            return jobs
        time.sleep(0.3)
    tails = "\n".join(p.read_text()[-1500:] for p in logs)
    raise AssertionError(f"jobs not finished: {[(j.id, j.state, j.worker) for j in jobs.values()]}\n{tails}")


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ws' / 'catalog.sqlite'}"
    return request.getfixturevalue("postgres_url")


def test_two_replicas_two_workers_run_each_of_six_jobs_exactly_once(tmp_path, catalog_url):
    ws_dir = tmp_path / "ws"
    stage_log = tmp_path / "stages.jsonl"
    ws = open_workspace(ws_dir, Settings(workspace=ws_dir, catalog=catalog_url))
    from belcheer.api.auth import add_user

    add_user(ws, "officer", PASSWORD, "officer")
    procs: list[subprocess.Popen] = []
    logs: list[Path] = []
    try:
        urls = []
        for k in range(2):  # replicas that queue jobs and run none
            port = _free_port()
            logs.append(tmp_path / f"api{k}.log")
            procs.append(_start([sys.executable, "-c", _CLI, "serve", "--port", str(port)],
                                _env(ws_dir, catalog_url, BELCHEER_RUN_JOBS="false"), logs[-1]))
            urls.append(f"http://127.0.0.1:{port}")
        for k in range(2):
            logs.append(tmp_path / f"worker{k}.log")
            procs.append(_start([sys.executable, "-c", _LOGGING_WORKER, "worker"],
                                _env(ws_dir, catalog_url, QUEUE_TEST_LOG=str(stage_log)), logs[-1]))
        for url, proc, log in zip(urls, procs, logs, strict=False):
            _wait_http(url, proc, log)
        tokens = []
        for url in urls:
            r = httpx.post(url + "/token", data={"username": "officer", "password": PASSWORD})
            assert r.status_code == 200, r.text
            tokens.append({"Authorization": f"Bearer {r.json()['access_token']}"})

        ids: list[str] = []
        lock = threading.Lock()

        def submit(k: int) -> None:
            r = httpx.post(urls[k % 2] + "/jobs", json={"survey": f"сум-{k}"}, headers=tokens[k % 2],
                           timeout=30)
            assert r.status_code == 202, r.text
            assert r.json()["state"] == "queued"  # the replica queued it and runs nothing itself
            with lock:
                ids.append(r.json()["id"])

        threads = [threading.Thread(target=submit, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(ids) == 6
        jobs = _wait_jobs(ws, ids, 120, procs, logs)
    finally:
        _stop(procs)
    assert {j.state for j in jobs.values()} == {"done"}, [(j.state, j.error) for j in jobs.values()]
    assert {j.attempts for j in jobs.values()} == {1}
    runs = [json.loads(line) for line in stage_log.read_text().splitlines()]
    counts = Counter((r["survey"], r["stage"]) for r in runs)
    assert counts == Counter({(f"сум-{k}", s): 1 for k in range(6) for s in pipeline.STAGES})
    workers = {j.worker for j in jobs.values()}
    worker_pids = {int(w.split(":")[1]) for w in workers}
    assert worker_pids == {p.pid for p in procs[2:]}  # both workers took jobs from the one queue
    # every stage of a job ran in the worker the job row names
    for j in jobs.values():
        pid = int(j.worker.split(":")[1])
        assert {r["pid"] for r in runs if r["survey"] == j.params["survey"]} == {pid}
    # a replica's stop left nothing running
    assert ws.catalog.jobs("running") == []


@pytest.fixture(scope="module")
def small_survey(tmp_path_factory) -> Path:
    from belcheer.cli import main

    out = tmp_path_factory.mktemp("queue-survey")
    assert main(["simulate", str(out), "--camera", "rgb", "--seed", "3", "--area-ha", "0.3"]) == 0
    return out / "frames"


def _pixels(ws, survey: str) -> dict[str, np.ndarray]:
    out = {}
    for p in ws.catalog.products(survey):
        if p.kind.value in ("orthomosaic", "index"):
            with ws.product_file(p) as path, rasterio.open(path) as ds:
                out[p.name] = ds.read()
    return out


def test_a_worker_killed_mid_mosaic_has_its_job_resumed_by_another(tmp_path, postgres_url, small_survey):
    survey = "Баянцагаан-2026-07"
    ws_dir = tmp_path / "ws"
    ws = open_workspace(ws_dir, Settings(workspace=ws_dir, catalog=postgres_url))
    params = pipeline.PipelineParams(survey=survey, frames_dir=small_survey)
    job = ws.catalog.add_job("pipeline", params.to_dict(), owner="officer")
    procs: list[subprocess.Popen] = []
    logs: list[Path] = []
    try:
        for k in range(2):
            logs.append(tmp_path / f"worker{k}.log")
            procs.append(_start([sys.executable, "-c", _CLI, "worker"],
                                _env(ws_dir, postgres_url), logs[-1]))
        deadline = time.monotonic() + 180
        while True:
            j = ws.catalog.job(job.id)
            if j.state == "running" and j.stage == "mosaic" and j.progress > 0.2:
                break
            assert j.state not in ("done", "failed"), (j.state, j.error)
            assert time.monotonic() < deadline, "\n".join(p.read_text()[-1500:] for p in logs)
            time.sleep(0.05)
        victim_pid = int(j.worker.split(":")[1])
        victim = next(p for p in procs if p.pid == victim_pid)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
        assert "mosaic" not in j.result.get("done", [])  # killed inside the stage, not after it
        done = _wait_jobs(ws, [job.id], 240, procs, logs)[job.id]
    finally:
        _stop(procs)
    assert done.state == "done", done.error
    assert done.attempts == 2
    survivor = next(p for p in procs if p.pid != victim_pid)
    assert int(done.worker.split(":")[1]) == survivor.pid
    assert done.result["done"] == list(pipeline.STAGES)
    assert done.result["stages"]["ingest"]["captures"] == 12  # ingest ran once, before the kill
    assert "orthomosaic" in done.result["products"]

    # the same survey run without interruption, in its own workspace
    ref_dir = tmp_path / "ref"
    ref = open_workspace(ref_dir, Settings(workspace=ref_dir))
    pipeline.run_pipeline(ref, pipeline.PipelineParams(survey=survey, frames_dir=small_survey))
    got, want = _pixels(ws, survey), _pixels(ref, survey)
    assert set(got) == set(want) and "orthomosaic" in got and len(got) >= 3
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_a_worker_losing_its_database_mid_job_resumes_it_when_the_database_is_back(tmp_path):
    """The PostgreSQL server dies (immediate shutdown) while the only worker is inside a stage:
    the job is neither lost nor marked failed; the worker survives the outage and, once the
    server is back and the claim has gone stale, takes the job up again from its last finished
    stage (the stages before it ran once)."""
    import pgserver

    server = pgserver.start()
    procs: list[subprocess.Popen] = []
    try:
        url = server.new_database()
        ws_dir = tmp_path / "ws"
        stage_log = tmp_path / "stages.jsonl"
        ws = open_workspace(ws_dir, Settings(workspace=ws_dir, catalog=url))
        params = pipeline.PipelineParams(survey="Эрдэнэ-2026-08", frames_dir=tmp_path)
        job = ws.catalog.add_job("pipeline", params.to_dict(), owner="officer")
        logs = [tmp_path / "worker.log"]
        procs.append(_start([sys.executable, "-c", _LOGGING_WORKER, "worker"],
                            _env(ws_dir, url, QUEUE_TEST_LOG=str(stage_log),
                                 QUEUE_TEST_STAGE_S=json.dumps({"mosaic": 9.0})), logs[0]))
        deadline = time.monotonic() + 60
        while (j := ws.catalog.job(job.id)).stage != "mosaic":
            assert j.state not in ("done", "failed") and time.monotonic() < deadline, logs[0].read_text()
            time.sleep(0.05)
        ws.catalog.close()
        pgserver.halt(server)
        time.sleep(6.0)  # twice the stale limit: the worker's heartbeats fail all along
        assert procs[0].poll() is None, logs[0].read_text()[-2000:]
        pgserver.restart(server)
        done = _wait_jobs(ws, [job.id], 90, procs, logs)[job.id]
    finally:
        _stop(procs)
        pgserver.stop(server)
    out = logs[0].read_text()
    assert done.state == "done", (done.error, out[-2000:])
    assert done.attempts == 2  # claimed again after the outage
    assert done.result["done"] == list(pipeline.STAGES)
    assert "heartbeat failed" in out and "catalog database" in out
    runs = Counter(json.loads(line)["stage"] for line in stage_log.read_text().splitlines())
    # every stage finished exactly once: the interrupted mosaic logged nothing, the stages
    # before it were not run again
    assert runs == Counter(dict.fromkeys(pipeline.STAGES, 1))

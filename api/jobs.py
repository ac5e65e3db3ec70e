"""Pipeline jobs: a queue in the catalog's job rows, run by :class:`JobRunner` threads in the API
server (the embedded default) or in ``belcheer worker`` processes sharing the catalog.

A job row's ``result["done"]`` lists the stages already finished, so a job resumed after a
restart, or claimed from a dead worker, goes on from its first unfinished stage.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from belcheer import pipeline
from belcheer.api.messages import LANGS, error_text, error_texts, t
from belcheer.catalog import Job
from belcheer.errors import BelcheerError, CatalogUnavailableError, ConfigError, JobLostError
from belcheer.workspace import Workspace

log = logging.getLogger(__name__)

PIPELINE_KIND = "pipeline"
#: job params key saying the frames were uploaded into the job's own folder
UPLOADED = "uploaded_frames"
#: state of a job that is not to run until started (frames still arriving, or start=false)
WAITING = "waiting"
#: write progress to the catalog at most this often, seconds (SQLite is shared by everyone)
_PROGRESS_EVERY = 0.5


def job_frames_dir(ws: Workspace, job_id: str) -> Path:
    """Where an upload job's frames are streamed: ``jobs/<id>/frames`` in the workspace."""
    d = ws.path("jobs", job_id, "frames")
    d.mkdir(parents=True, exist_ok=True)
    return d


def job_dict(job: Job) -> dict[str, Any]:
    """A job as the API shows it. ``stage`` is a pipeline stage name (``ingest`` … ``stats``) with
    its words in ``stage_label``; ``message`` is the stage's own English progress note; a failed
    job's ``error`` (English) comes with ``error_code`` and ``error_message`` (by language)."""
    out = {"id": job.id, "kind": job.kind, "state": job.state, "stage": job.stage,
           "stage_label": ({lang: t(f"stage.{job.stage}", lang) for lang in LANGS}
                           if job.stage in pipeline.STAGES else None),
           "progress": round(float(job.progress), 4), "message": job.message,
           "params": dict(job.params), "result": dict(job.result), "error": job.error,
           "error_code": None, "error_message": None,
           "owner": job.owner, "created": job.created, "updated": job.updated}
    if job.error:
        known = job.result.get("error") or {}
        code = known.get("code") or "error.BelcheerError"
        out["error_code"] = code
        out["error_message"] = {lang: error_text(code, lang, job.error, known.get("params"))
                                for lang in LANGS}
    return out


#: seconds between a running job's heartbeats
HEARTBEAT_S = 5.0
#: a running job whose worker sent no heartbeat for this long is presumed dead: claimed again
STALE_AFTER_S = 60.0


def worker_name() -> str:
    """This process's worker id, ``host:pid:tag`` (the tag tells apart two runners in one process)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class JobInterrupted(Exception):
    """Raised inside a running pipeline (at its next progress report) to stop it: the worker
    is shutting down, or the job has been taken over by another worker."""


@dataclass
class _Running:
    job_id: str
    thread: threading.Thread
    #: why it must stop: None while it may go on, else "lost" or "stop"
    stop: str | None = None
    last_beat: float = field(default_factory=time.monotonic)


class JobRunner:
    """Runs pipeline jobs from the catalog's queue in threads of this process.

    Every run begins with :meth:`Catalog.claim_job`, so however many API replicas and
    ``belcheer worker`` processes share a catalog, each job runs in exactly one of them. While a
    job runs, a heartbeat thread renews its claim every ``heartbeat_s``; a job whose worker died
    (SIGKILL, power cut, lost its database) stops being renewed and after ``stale_after_s`` the
    next runner that polls claims it and resumes it from its first unfinished stage. A runner
    that can no longer renew a claim stops that run at its next progress report and writes
    nothing more to the job.

    ``slots`` caps the jobs run at once (None: every started job runs at once, the embedded
    server's way); ``run_jobs=False`` makes an API replica that only queues jobs for workers.
    """

    def __init__(self, ws: Workspace, *, slots: int | None = None, run_jobs: bool = True,
                 heartbeat_s: float = HEARTBEAT_S, stale_after_s: float = STALE_AFTER_S,
                 worker: str | None = None) -> None:
        if stale_after_s <= 2 * heartbeat_s:
            raise ConfigError(f"the stale limit ({stale_after_s} s) must exceed two heartbeats "
                              f"({heartbeat_s} s each), else live jobs would be taken over")
        self.ws = ws
        self.slots = slots
        self.run_jobs = run_jobs
        self.heartbeat_s = float(heartbeat_s)
        self.stale_after_s = float(stale_after_s)
        self.worker = worker or worker_name()
        self._running: dict[str, _Running] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._beat: threading.Thread | None = None

    def params_for(self, job: Job) -> pipeline.PipelineParams:
        params = dict(job.params)
        uploaded = params.pop(UPLOADED, False)
        p = pipeline.PipelineParams.from_dict(params)
        if uploaded:
            p.frames_dir = job_frames_dir(self.ws, job.id)
            p.confine = [p.frames_dir]
        return p

    # -- claiming ------------------------------------------------------------------------
    def _free(self) -> bool:
        return self.slots is None or len(self._running) < self.slots

    def _claim(self, job_id: str | None = None) -> str | None:
        """Claim one job (``job_id``, or the oldest claimable) and start its thread."""
        with self._lock:
            if self._closing.is_set() or not self._free() or (job_id is not None and job_id in self._running):
                return None
            job = self.ws.catalog.claim_job(self.worker, [PIPELINE_KIND], stale_after=self.stale_after_s,
                                            job_id=job_id)
            if job is None:
                return None
            t = threading.Thread(target=self._run, args=(job,), name=f"job-{job.id}", daemon=True)
            self._running[job.id] = _Running(job.id, t)
            self._ensure_heartbeat()
            t.start()
            return job.id

    def start(self, job_id: str) -> bool:
        """Run (or resume) a queued job now if this runner runs jobs and has a free slot; it
        stays queued for another runner otherwise. True if it was claimed here."""
        if not self.run_jobs:
            return False
        return self._claim(job_id) is not None

    def resume(self) -> list[str]:
        """Claim and start every claimable job this runner has room for: queued ones, and
        running ones whose worker is dead (on this host: its process is gone; elsewhere: no
        heartbeat for the stale limit), never a waiting one. Returns their ids."""
        if not self.run_jobs:
            return []
        self._release_dead_local()
        ids = []
        while (job_id := self._claim()) is not None:
            ids.append(job_id)
        return ids

    def _release_dead_local(self) -> None:
        # a worker on this host whose process is gone will never beat again: no need to wait
        # out the stale limit (a server restart resumes its jobs at once)
        host = socket.gethostname()
        for job in self.ws.catalog.jobs("running"):
            if job.kind != PIPELINE_KIND or not job.worker or job.worker == self.worker:
                continue
            w_host, _, rest = job.worker.partition(":")
            pid = rest.partition(":")[0]
            if w_host == host and pid.isdigit() and int(pid) != os.getpid() \
                    and not pipeline.other_process_alive(int(pid)):
                with contextlib.suppress(JobLostError):
                    self.ws.catalog.update_job(job.id, owned_by=job.worker, state="queued", worker=None,
                                               message="re-queued: its worker process is gone")

    def serve(self, poll_s: float = 2.0, *, once: bool = False) -> None:
        """Claim and run jobs until :meth:`close` (or, with ``once``, until no job is left to
        claim and none runs): the loop of a ``belcheer worker`` process."""
        while not self._closing.is_set():
            try:
                self.resume()
            except CatalogUnavailableError as exc:  # wait for the database, do not die
                log.warning("cannot claim jobs: %s", exc)
            if once and not self._running:
                return
            self._closing.wait(poll_s)

    def poll_in_background(self, poll_s: float) -> threading.Thread:
        """:meth:`serve` in a daemon thread (an API server picking up jobs whose worker died)."""
        t = threading.Thread(target=self.serve, args=(poll_s,), name="job-poller", daemon=True)
        t.start()
        return t

    def stop(self, *, requeue: bool = True) -> None:
        """Stop claiming; with ``requeue``, ask the running jobs to stop at their next progress
        report and go back to the queue (another worker resumes them from their last finished
        stage). Returns at once (safe in a signal handler); :meth:`close` also waits."""
        self._closing.set()
        if requeue:
            with self._lock:
                running = list(self._running.values())
            for r in running:
                r.stop = r.stop or "stop"

    def close(self, *, requeue: bool = True, timeout: float = 30.0) -> None:
        """:meth:`stop`, then wait up to ``timeout`` seconds for the running jobs to stop."""
        self.stop(requeue=requeue)
        if not requeue:
            return
        with self._lock:
            running = list(self._running.values())
        deadline = time.monotonic() + timeout
        for r in running:
            r.thread.join(max(0.0, deadline - time.monotonic()))

    def reopen(self) -> None:
        """Claim jobs again after :meth:`close` (an app started a second time)."""
        self._closing.clear()

    def wait(self, job_id: str, timeout: float | None = None) -> None:
        """Wait until the job stops running here (or, if it runs elsewhere or is still queued,
        until it is done, failed or cancelled), at most ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            r = self._running.get(job_id)
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if r is not None:
                r.thread.join(left)
                return
            if self.ws.catalog.job(job_id).state in ("done", "failed", "cancelled", WAITING):
                return
            if left is not None and left <= 0:
                return
            time.sleep(0.2)

    # -- heartbeats ----------------------------------------------------------------------
    def _ensure_heartbeat(self) -> None:
        if self._beat is None or not self._beat.is_alive():
            self._beat = threading.Thread(target=self._heartbeats, name="job-heartbeat", daemon=True)
            self._beat.start()

    def _heartbeats(self) -> None:
        while True:
            time.sleep(self.heartbeat_s)
            with self._lock:
                running = list(self._running.values())
            if not running:
                with self._lock:
                    if not self._running:
                        self._beat = None
                        return
                continue
            for r in running:
                try:
                    held = self.ws.catalog.heartbeat_job(r.job_id, self.worker)
                except Exception as exc:  # the database is unreachable: keep trying until stale
                    log.warning("job %s: heartbeat failed: %s", r.job_id, exc)
                    if time.monotonic() - r.last_beat > self.stale_after_s:
                        r.stop = "lost"
                    continue
                if held:
                    r.last_beat = time.monotonic()
                else:
                    r.stop = "lost"

    # -- running -------------------------------------------------------------------------
    def _run(self, job: Job) -> None:
        try:
            self._run_claimed(job)
        finally:
            with self._lock:
                self._running.pop(job.id, None)
            if not self._closing.is_set() and self.run_jobs:
                # a slot is free: take the next queued job, if any
                with contextlib.suppress(Exception):
                    self.resume()

    def _run_claimed(self, job: Job) -> None:
        cat = self.ws.catalog
        job_id, me = job.id, self.worker
        run = self._running[job_id]
        done = list(job.result.get("done", []))
        stages = dict(job.result.get("stages", {}))
        last = [0.0]
        current = [job.stage if job.stage in pipeline.STAGES else None]

        def check() -> None:
            if run.stop is not None:
                raise JobInterrupted(run.stop)

        def progress(fraction: float, message: str) -> None:
            check()
            # the pipeline announces each stage by its name; sub-steps' notes stay in `message`,
            # so `stage` is always a name the interface has words for
            if message in pipeline.STAGES:
                current[0] = message
            now = time.monotonic()
            if now - last[0] >= _PROGRESS_EVERY or fraction >= 1.0:
                last[0] = now
                try:
                    cat.update_job(job_id, owned_by=me, progress=float(fraction), message=message,
                                   stage=current[0])
                except JobLostError:
                    run.stop = "lost"
                    raise JobInterrupted("lost") from None
                except Exception as exc:  # a progress note is not worth the run: heartbeats decide
                    log.warning("job %s: progress not recorded: %s", job_id, exc)

        def on_stage(name: str, result: dict[str, Any]) -> None:
            done.append(name)
            stages[name] = result
            cat.update_job(job_id, owned_by=me, stage=name, result={"done": done, "stages": stages})

        try:
            params = self.params_for(job)
            cat.update_job(job_id, owned_by=me, error=None, message="resuming" if done else "starting",
                           result={**job.result, "done": done, "stages": stages})
            pipeline.run_pipeline(self.ws, params, done=done, progress=progress, on_stage=on_stage)
        except (JobInterrupted, JobLostError):
            self._interrupted(job_id, run.stop or "lost")
            return
        except CatalogUnavailableError as exc:
            # the job is not at fault: its claim goes stale and a worker resumes it once the
            # database is back (a `failed` written now would end it for good)
            log.warning("job %s: %s", job_id, exc)
            self._interrupted(job_id, "database")
            return
        except BelcheerError as exc:
            log.warning("job %s failed: %s", job_id, exc)
            texts = error_texts(exc)
            self._finish(job_id, state="failed", error=str(exc), message=type(exc).__name__,
                         result={"done": done, "stages": stages,
                                 "error": {"code": texts["code"], "params": texts["params"]}})
            return
        except Exception as exc:  # a bug in a stage: keep the server up, record it on the job
            if run.stop is not None:  # a stage broke because the database went away: not a bug
                self._interrupted(job_id, run.stop)
                return
            log.exception("job %s crashed", job_id)
            self._finish(job_id, state="failed", error=f"{type(exc).__name__}: {exc}",
                         message="internal error",
                         result={"done": done, "stages": stages, "error": {"code": "error.internal"}})
            return
        # a job keeps what succeeded: warnings (e.g. no parcel overlap) end it `done`, not `failed`
        warnings = pipeline.run_warnings(stages)
        try:
            products = [p.name for p in self.ws.catalog.products(params.survey)]
        except BelcheerError:
            products = []
        result: dict[str, Any] = {"done": done, "stages": stages, "warnings": warnings, "products": products}
        rec = cat.calibration(params.survey)
        if rec is not None:
            # the report says how reflectance was made, and what disagreed
            result["calibration"] = pipeline.calibration_report(rec)
        self._finish(job_id, state="done", progress=1.0,
                     message="done with warnings" if warnings else "done", result=result)

    def _finish(self, job_id: str, **fields: Any) -> None:
        try:
            self.ws.catalog.update_job(job_id, owned_by=self.worker, **fields)
        except JobLostError:
            log.warning("job %s was taken over by another worker; its result here is dropped", job_id)
        except Exception as exc:  # the database is gone: the claim goes stale and the job is resumed
            log.error("job %s: could not record its end (%s); another worker will resume it", job_id, exc)

    def _interrupted(self, job_id: str, why: str) -> None:
        if why == "stop":
            log.info("job %s: worker stopping, re-queued", job_id)
            with contextlib.suppress(Exception):
                self.ws.catalog.update_job(job_id, owned_by=self.worker, state="queued", worker=None,
                                           message="re-queued: its worker stopped")
        elif why == "database":
            log.warning("job %s: stopped here, the catalog database is unreachable; a worker resumes it "
                        "from its last finished stage once the database is back", job_id)
        else:
            log.warning("job %s: this worker lost it (no heartbeat recorded for %.0f s); stopped here",
                        job_id, self.stale_after_s)

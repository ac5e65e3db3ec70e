"""Pipeline jobs run in background threads, their state kept in the catalog's job rows.

A job row's ``result["done"]`` lists the stages already finished, so when the server restarts,
:meth:`JobRunner.resume` picks up queued and running jobs from the first unfinished stage.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from belcheer import pipeline
from belcheer.api.messages import LANGS, error_text, error_texts, t
from belcheer.catalog import Job
from belcheer.errors import BelcheerError
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


class JobRunner:
    """Starts pipeline jobs in daemon threads, one thread per job."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def params_for(self, job: Job) -> pipeline.PipelineParams:
        params = dict(job.params)
        uploaded = params.pop(UPLOADED, False)
        p = pipeline.PipelineParams.from_dict(params)
        if uploaded:
            p.frames_dir = job_frames_dir(self.ws, job.id)
            p.confine = [p.frames_dir]
        return p

    def start(self, job_id: str) -> None:
        """Run (or resume) a job in the background; no-op if it is already running here."""
        with self._lock:
            t = self._threads.get(job_id)
            if t is not None and t.is_alive():
                return
            t = threading.Thread(target=self._run, args=(job_id,), name=f"job-{job_id}", daemon=True)
            self._threads[job_id] = t
            t.start()

    def resume(self) -> list[str]:
        """Restart every queued or running job (after a server restart), never a waiting one.
        Returns their ids."""
        ids = [j.id for j in self.ws.catalog.jobs() if j.state in ("queued", "running")
               and j.kind == PIPELINE_KIND]
        for job_id in ids:
            self.start(job_id)
        return ids

    def wait(self, job_id: str, timeout: float | None = None) -> None:
        t = self._threads.get(job_id)
        if t is not None:
            t.join(timeout)

    def _run(self, job_id: str) -> None:
        cat = self.ws.catalog
        job = cat.job(job_id)
        done = list(job.result.get("done", []))
        stages = dict(job.result.get("stages", {}))
        last = [0.0]
        current = [job.stage if job.stage in pipeline.STAGES else None]

        def progress(fraction: float, message: str) -> None:
            # the pipeline announces each stage by its name; sub-steps' notes stay in `message`,
            # so `stage` is always a name the interface has words for
            if message in pipeline.STAGES:
                current[0] = message
            now = time.monotonic()
            if now - last[0] >= _PROGRESS_EVERY or fraction >= 1.0:
                last[0] = now
                cat.update_job(job_id, progress=float(fraction), message=message, stage=current[0])

        def on_stage(name: str, result: dict[str, Any]) -> None:
            done.append(name)
            stages[name] = result
            cat.update_job(job_id, stage=name, result={"done": done, "stages": stages})

        try:
            params = self.params_for(job)
            cat.update_job(job_id, state="running", error=None,
                           message="resuming" if done else "starting")
            pipeline.run_pipeline(self.ws, params, done=done, progress=progress, on_stage=on_stage)
        except BelcheerError as exc:
            log.warning("job %s failed: %s", job_id, exc)
            texts = error_texts(exc)
            cat.update_job(job_id, state="failed", error=str(exc), message=type(exc).__name__,
                           result={"done": done, "stages": stages,
                                   "error": {"code": texts["code"], "params": texts["params"]}})
            return
        except Exception as exc:  # a bug in a stage: keep the server up, record it on the job
            log.exception("job %s crashed", job_id)
            cat.update_job(job_id, state="failed", error=f"{type(exc).__name__}: {exc}",
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
        cat.update_job(job_id, state="done", progress=1.0,
                       message="done with warnings" if warnings else "done", result=result)

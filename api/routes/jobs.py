"""Pipeline jobs: start from uploaded frames or an allowed server folder, poll or stream progress."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from belcheer import pipeline
from belcheer.api import safety, uploads
from belcheer.api.auth import User
from belcheer.api.deps import require, runner, settings, workspace
from belcheer.api.jobs import PIPELINE_KIND, UPLOADED, WAITING, JobRunner, job_dict, job_frames_dir
from belcheer.errors import InputError
from belcheer.fileio import safe_name
from belcheer.workspace import Workspace

router = APIRouter(prefix="/jobs", tags=["jobs"])


class JobRequest(BaseModel):
    """A pipeline run over frames already on the server (inside Settings.allowed_roots) or over an
    already ingested survey (``frames_dir`` omitted)."""

    survey: str = Field(min_length=1, max_length=120)
    frames_dir: str | None = None
    indices: list[str] | None = None
    epsg: int | None = Field(None, ge=1024, le=32767)
    resolution: float | None = Field(None, gt=0, le=100)
    replace: bool = False
    #: the reflectance panel's albedo: one value, one per band (list in the camera's band order,
    #: or band name → value), or a MicaSense panel serial looked up in the shipped table
    panel_albedo: float | list[float] | dict[str, float] | str | None = None
    #: capture ids of the panel captures (replacing detection), e.g. ["IMG_0000"]
    panels: list[str] = Field(default_factory=list, max_length=50)


def _params(survey: str, **kw) -> dict:
    """A job's parameters: a :class:`PipelineParams` (the one description of a pipeline run, as
    the CLI and workers read it), stored as its dict."""
    from belcheer.indices.panel import parse_albedo

    safe_name(survey)
    albedo = parse_albedo(kw.get("panel_albedo"))  # a bad value or unknown serial: 400 now
    params = pipeline.PipelineParams(
        survey=survey, indices=kw.get("indices"), epsg=kw.get("epsg"), resolution=kw.get("resolution"),
        replace=bool(kw.get("replace")), panel_albedo=albedo,
        panels=tuple(p.strip() for p in kw.get("panels") or [] if p.strip()),
        frames_dir=kw.get("frames_dir"), confine=kw.get("confine"))
    return params.to_dict()


@router.post("", status_code=202)
def start_job(req: JobRequest, ws: Workspace = Depends(workspace), user: User = Depends(require("officer")),
              jobs: JobRunner = Depends(runner), cfg=Depends(settings)) -> dict:
    """Start ingest → calibrate → mosaic → indices → stats on a server-side folder (officers)."""
    frames = confine = None
    if req.frames_dir:
        frames = safety.allowed_folder(req.frames_dir, cfg.allowed_roots)
        # ingest re-checks every path it reads against the roots (links may change meanwhile)
        confine = [Path(r).resolve() for r in cfg.allowed_roots]
    params = _params(req.survey, indices=req.indices, epsg=req.epsg, resolution=req.resolution,
                     replace=req.replace, panel_albedo=req.panel_albedo, panels=req.panels,
                     frames_dir=frames, confine=confine)
    job = ws.catalog.add_job(PIPELINE_KIND, params, owner=user.username)
    jobs.start(job.id)
    return job_dict(ws.catalog.job(job.id))


@router.post("/upload", status_code=202)
def upload_job(survey: str = Form(...), files: list[UploadFile] = File(...),
               start: bool = Form(True), epsg: int | None = Form(None),
               panel_albedo: str | None = Form(None), panels: str | None = Form(None),
               ws: Workspace = Depends(workspace), user: User = Depends(require("officer")),
               jobs: JobRunner = Depends(runner), cfg=Depends(settings)) -> dict:
    """Upload a survey's frames (JPEG/TIFF files or zips of them) and start processing them.

    ``panel_albedo``: ``0.49``, ``0.49,0.5,…`` per band, ``blue=0.49,…`` or a panel serial
    ``RP04-…``; ``panels``: comma-separated capture ids of the panel captures."""
    params = {**_params(survey, epsg=epsg, panel_albedo=panel_albedo,
                        panels=(panels or "").replace(" ", ",").split(",")), UPLOADED: True}
    job = ws.catalog.add_job(PIPELINE_KIND, params, owner=user.username)
    # "waiting" until asked to run: a restart must neither run a half-received upload nor a job
    # created with start=false (JobRunner.resume takes queued and running jobs only)
    ws.catalog.update_job(job.id, state=WAITING, message="receiving frames")
    dest = job_frames_dir(ws, job.id)
    try:
        info = uploads.save_frames(ws, cfg, files, dest)
    except Exception as exc:
        uploads.remove_tree(dest.parent)
        ws.catalog.update_job(job.id, state="failed", error=str(exc), message="upload refused")
        raise
    if start:
        ws.catalog.update_job(job.id, state="queued", message=f"{info['files']} frames received")
        jobs.start(job.id)
    else:
        ws.catalog.update_job(job.id, message=f"{info['files']} frames received; start it with "
                                              f"POST /jobs/{job.id}/start")
    return {**job_dict(ws.catalog.job(job.id)), "upload": info}


@router.get("")
def list_jobs(ws: Workspace = Depends(workspace), user: User = Depends(require("officer"))) -> list[dict]:
    """All jobs, oldest first."""
    return [job_dict(j) for j in ws.catalog.jobs()]


@router.get("/{job_id}")
def get_job(job_id: str, ws: Workspace = Depends(workspace),
            user: User = Depends(require("officer"))) -> dict:
    """A job's state, stage, progress (0–1) and result."""
    return job_dict(ws.catalog.job(job_id))


@router.post("/{job_id}/start", status_code=202)
def restart_job(job_id: str, ws: Workspace = Depends(workspace), user: User = Depends(require("officer")),
                jobs: JobRunner = Depends(runner)) -> dict:
    """Start a waiting job (uploaded with start=false), or retry a failed one from its first
    unfinished stage."""
    job = ws.catalog.job(job_id)
    if job.state == "done":
        raise InputError(f"job {job_id} is already done")
    if job.state == "running":
        # already held by a worker; one that died is resumed on its own once its heartbeat is stale
        return job_dict(job)
    if job.state != "queued":
        ws.catalog.update_job(job_id, state="queued", error=None)
    jobs.start(job_id)
    return job_dict(ws.catalog.job(job_id))


@router.get("/{job_id}/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def job_events(job_id: str, request: Request, ws: Workspace = Depends(workspace),
                     user: User = Depends(require("officer"))) -> StreamingResponse:
    """Server-sent events: one ``progress`` event per change, then ``end`` when the job stops."""
    ws.catalog.job(job_id)  # 404 before the stream starts

    async def stream() -> AsyncIterator[str]:
        last = None
        while True:
            job = await asyncio.to_thread(ws.catalog.job, job_id)
            state = (job.state, job.stage, job.progress, job.message, job.updated)
            if state != last:
                last = state
                yield f"event: progress\ndata: {json.dumps(job_dict(job), default=str)}\n\n"
            if job.state in ("done", "failed", "cancelled"):
                yield f"event: end\ndata: {json.dumps({'state': job.state})}\n\n"
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(0.3)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

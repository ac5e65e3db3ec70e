"""The whole job, ingest → mosaic → indices → stats, as one resumable run.

The CLI (``belcheer run``, ``belcheer demo``) and the API's jobs call :func:`run_pipeline`; it only
calls the stages' public functions. Each stage is recorded as finished in the catalog's job row
(``result["done"]``), so a run interrupted by a crash or a server restart resumes from the first
unfinished stage instead of starting again.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from belcheer.errors import BelcheerError, ConfigError, ConflictError, CRSError
from belcheer.models import Survey
from belcheer.progress import ProgressCallback, scaled
from belcheer.workspace import Workspace

log = logging.getLogger(__name__)

STAGES: tuple[str, ...] = ("ingest", "calibrate", "mosaic", "indices", "stats")
#: catalog job kind of command-line runs (the API's job runner never picks these up)
CLI_KIND = "cli-run"
#: indices computed by default: reflectance-based for multispectral, relative for RGB
DEFAULT_MS_INDICES: tuple[str, ...] = ("ndvi", "ndrei", "savi", "msavi", "gndvi")
DEFAULT_RGB_INDICES: tuple[str, ...] = ("vari", "exg", "gli", "ngrdi")
#: share of the run's progress bar given to each stage (mosaicking dominates)
_WEIGHTS = {"ingest": 0.1, "calibrate": 0.05, "mosaic": 0.55, "indices": 0.15, "stats": 0.15}


@dataclass
class PipelineParams:
    """What a pipeline run needs. ``frames_dir`` may be None when the survey is already ingested."""

    survey: str
    frames_dir: Path | None = None
    indices: Sequence[str] | None = None
    epsg: int | None = None
    resolution: float | None = None
    panels: Sequence[str] = ()
    #: one albedo for every band, or band name → albedo (from the panel's calibration sheet)
    panel_albedo: float | Mapping[str, float] | None = None
    parcels: Path | None = None
    scheduler: str | None = None
    replace: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)
    #: read no frame whose real path (symlinks resolved) is outside these folders (API jobs)
    confine: Sequence[Path] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"survey": self.survey, "frames_dir": str(self.frames_dir) if self.frames_dir else None,
                "indices": list(self.indices) if self.indices else None, "epsg": self.epsg,
                "resolution": self.resolution, "panels": list(self.panels),
                "panel_albedo": (dict(self.panel_albedo) if isinstance(self.panel_albedo, Mapping)
                                 else self.panel_albedo),
                "parcels": str(self.parcels) if self.parcels else None,
                "scheduler": self.scheduler, "replace": self.replace, "options": dict(self.options),
                "confine": [str(c) for c in self.confine] if self.confine is not None else None}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PipelineParams:
        return cls(survey=d["survey"], frames_dir=Path(d["frames_dir"]) if d.get("frames_dir") else None,
                   indices=d.get("indices"), epsg=d.get("epsg"), resolution=d.get("resolution"),
                   panels=tuple(d.get("panels") or ()), panel_albedo=d.get("panel_albedo"),
                   parcels=Path(d["parcels"]) if d.get("parcels") else None,
                   scheduler=d.get("scheduler"), replace=bool(d.get("replace")),
                   options=d.get("options") or {},
                   confine=[Path(c) for c in d["confine"]] if d.get("confine") is not None else None)


@dataclass
class _Context:
    """What the stages of one run share: the survey is read from its manifest once (after
    ingest, or at the start of a resumed run) and the calibration made by the calibrate stage
    is the one the mosaic uses, instead of each stage reading them again."""

    ws: Workspace
    params: PipelineParams
    calibration: Any = None
    _survey: Survey | None = None

    @property
    def survey(self) -> Survey:
        if self._survey is None:
            self._survey = self.ws.load_survey(self.params.survey)
        return self._survey


def _ingest(ctx: _Context, progress: ProgressCallback) -> dict[str, Any]:
    from belcheer.ingest import ingest

    p = ctx.params
    if p.frames_dir is None:
        ctx.ws.catalog.survey(p.survey)  # raises NotFoundError naming the known surveys
        return {"skipped": "already ingested"}
    survey = ingest(ctx.ws, p.frames_dir, survey=p.survey, epsg=p.epsg, panels=p.panels,
                    replace=p.replace, progress=progress, confine=p.confine)
    return {"captures": len(survey.captures), "usable": len(survey.flight_captures)}


def _calibrate(ctx: _Context, progress: ProgressCallback) -> dict[str, Any]:
    if not ctx.survey.is_multispectral:
        return {"skipped": "RGB camera: indices are relative"}
    from belcheer.indices.stored import survey_calibration

    ctx.calibration, rec = survey_calibration(ctx.ws, ctx.survey,
                                              panel_albedo=ctx.params.panel_albedo, source="pipeline")
    return calibration_report(rec)


def calibration_report(rec: Any) -> dict[str, Any]:
    """What a run's (and a job's) report says of the survey's calibration: method, id, who made
    it, panel capture and albedos, and the notes (English text; ``note_codes`` for translation)."""
    return {"method": rec.method, "id": rec.id, "source": rec.source,
            "panel_capture": rec.panel_capture, "albedos": dict(rec.albedos),
            "absolute": bool(rec.body.get("absolute", True)),
            "notes": [n["text"] for n in rec.notes], "note_codes": [dict(n) for n in rec.notes]}


def _mosaic(ctx: _Context, progress: ProgressCallback) -> dict[str, Any]:
    from belcheer.orthomosaic import mosaic

    p = ctx.params
    # a multispectral survey is mosaicked with the calibration the calibrate stage made (a
    # resumed run: the stored one, or one made now if that stage was skipped)
    product = mosaic(ctx.ws, ctx.survey, resolution=p.resolution, epsg=p.epsg,
                     correction=ctx.calibration, scheduler=p.scheduler, progress=progress)
    meta = product.metadata
    # what the job report shows of the mosaic: never a silent partial result
    out: dict[str, Any] = {"product": product.name, "uri": product.uri,
                           **{k: meta.get(k) for k in ("frames_used", "frames_gps_only", "frames_dropped",
                                                       "blocks", "reprojection_mean_px", "quality_report",
                                                       "preview")}}
    if "calibration" in meta:
        out["calibration"] = meta["calibration"]["method"]
    return out


def _indices(ctx: _Context, progress: ProgressCallback) -> dict[str, Any]:
    from belcheer.indices import compute_survey

    p = ctx.params
    names = p.indices
    if not names:
        names = DEFAULT_MS_INDICES if ctx.survey.is_multispectral else DEFAULT_RGB_INDICES
    products = compute_survey(ctx.ws, ctx.survey, list(names), scheduler=p.scheduler, progress=progress)
    return {"products": [pr.name for pr in products]}


def _stats(ctx: _Context, progress: ProgressCallback) -> dict[str, Any]:
    from belcheer import zoning

    p = ctx.params
    if p.parcels is not None:
        zoning.import_parcels(ctx.ws, p.parcels)
    if ctx.ws.catalog.current_parcel_version() is None:
        return {"skipped": "no parcels imported"}
    try:
        table = zoning.survey_stats(ctx.ws, p.survey, scheduler=p.scheduler, progress=progress)
    except CRSError as exc:
        # the flight lies outside the parcel layer: mosaic and indices are still good products,
        # so the job keeps them and says why there are no parcel statistics
        log.warning("pipeline %s: %s", p.survey, exc)
        return {"parcels": 0, "warnings": [no_overlap_warning(str(exc))]}
    return {"parcels": int(len(table))}


def no_overlap_warning(detail: str) -> dict[str, str]:
    """The warning (Mongolian and English) of a flight that overlaps no parcel."""
    return {"code": "no_parcel_overlap",
            "mn": "Нислэг талбайн давхаргатай давхцахгүй байна: ортомозайк, индекс бэлэн, "
                  "харин талбайн үзүүлэлт тооцоогүй. Зөв талбайн давхарга оруулна уу.",
            "en": "The flight does not overlap the parcel layer: the orthomosaic and indices are "
                  "ready, but no parcel statistics were computed. Import the parcels it covers.",
            "detail": detail}


def run_warnings(results: Mapping[str, Any]) -> list[dict[str, str]]:
    """Every warning the stages of a run returned, in stage order."""
    return [w for name in STAGES for w in (results.get(name) or {}).get("warnings", [])]


_RUNNERS: dict[str, Callable[[_Context, ProgressCallback], dict[str, Any]]] = {
    "ingest": _ingest, "calibrate": _calibrate, "mosaic": _mosaic, "indices": _indices, "stats": _stats,
}


def run_pipeline(ws: Workspace, params: PipelineParams, *, done: Sequence[str] = (),
                 progress: ProgressCallback | None = None,
                 on_stage: Callable[[str, dict[str, Any]], None] | None = None,
                 stages: Sequence[str] = STAGES) -> dict[str, Any]:
    """Run the pipeline's ``stages`` in order, skipping those listed in ``done``.

    ``on_stage(name, result)`` is called after each stage finishes, so a caller can persist the
    run's state (the API writes it to the job row). Returns ``{stage: result}`` for the stages run.
    """
    unknown = [s for s in stages if s not in _RUNNERS]
    if unknown:
        raise ConfigError(f"unknown pipeline stage(s) {unknown}; stages are {', '.join(STAGES)}")
    ctx = _Context(ws=ws, params=params)
    results: dict[str, Any] = {}
    todo = [s for s in stages if s not in set(done)]
    total = sum(_WEIGHTS[s] for s in todo) or 1.0
    start = 0.0
    for name in todo:
        stop = start + _WEIGHTS[name] / total
        cb = scaled(progress, start, stop)
        cb(0.0, name)
        log.info("pipeline %s: %s", params.survey, name)
        results[name] = _RUNNERS[name](ctx, cb)
        cb(1.0, name)
        if on_stage is not None:
            on_stage(name, results[name])
        start = stop
    return results


def other_process_alive(pid: object) -> bool:
    """Whether ``pid`` is a live process on this host other than this one (False for
    anything that is not a positive int)."""
    if not isinstance(pid, int) or pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_resumable(ws: Workspace, params: PipelineParams, *, progress: ProgressCallback | None = None,
                  kind: str = CLI_KIND) -> tuple[dict[str, Any], list[str]]:
    """:func:`run_pipeline` recorded in a catalog job row, so that the same run started again
    after a crash, a ``kill -9`` or a failure resumes at its first unfinished stage, as API jobs do.

    "The same run" is an unfinished job of ``kind`` with identical parameters (``frames_dir`` and
    ``parcels`` compared as absolute paths). Raises ConflictError while another live process is
    running it. Returns the results of the stages run now and the stages that were already done.
    """
    for attr in ("frames_dir", "parcels"):
        value = getattr(params, attr)
        if value is not None:
            setattr(params, attr, Path(value).expanduser().resolve())
    key = json.loads(json.dumps(params.to_dict(), default=str))
    job = next((j for j in reversed(ws.catalog.jobs()) if j.kind == kind and dict(j.params) == key
                and j.state in ("queued", "running", "failed")), None)
    if job is not None and job.state == "running" and other_process_alive(job.result.get("pid")):
        raise ConflictError(f"survey {params.survey!r} is being processed by process {job.result['pid']} "
                            "right now; wait for it to finish or stop it first")
    if job is None:
        job = ws.catalog.add_job(kind, key, owner=os.environ.get("USER"))
    done = list(job.result.get("done", []))
    stages = dict(job.result.get("stages", {}))
    before = list(done)
    ws.catalog.update_job(job.id, state="running", error=None, message="resuming" if done else "starting",
                          result={"done": done, "stages": stages, "pid": os.getpid()})

    def on_stage(name: str, result: dict[str, Any]) -> None:
        done.append(name)
        stages[name] = result
        ws.catalog.update_job(job.id, stage=name, result={"done": done, "stages": stages, "pid": os.getpid()})

    try:
        results = run_pipeline(ws, params, done=before, progress=progress, on_stage=on_stage)
    except BelcheerError as exc:
        ws.catalog.update_job(job.id, state="failed", error=str(exc), message=type(exc).__name__)
        raise
    ws.catalog.update_job(job.id, state="done", progress=1.0, message="done",
                          result={"done": done, "stages": stages})
    return results, before

"""A survey's calibration kept in the catalog, so every path to reflectance uses the same one.

``belcheer calibrate``, ``belcheer run``, API jobs, ``mosaic`` and the Python API all go
through :func:`survey_calibration`: it returns the stored calibration when the survey has one
(and nothing new was asked for), else calibrates — with the panel when a panel capture and its
albedo are known, else the sunlight sensor — stores the record and returns it. The record holds
the full report, from which :meth:`Calibration.from_dict` rebuilds the very same calibration
(JSON keeps every float's bits), so the step-by-step CLI, ``run``, a job and the Python API give
bit-identical reflectance.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from belcheer.catalog import CalibrationRecord, now
from belcheer.indices.calibration import Calibration, Method, calibrate
from belcheer.models import Survey

Albedo = float | Sequence[float] | Mapping[str, float] | None


def record_of(cal: Calibration, survey: str, source: str) -> CalibrationRecord:
    """The catalog record of ``cal`` (its ``id`` a digest of the full report)."""
    body = json.loads(json.dumps(cal.to_dict(), default=_plain))
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
    panel = body.get("panel") or {}
    bands = panel.get("bands") or {}
    irr = dict(cal.panel_irradiance) or {b: v["mean"] for b, v in
                                         (body.get("sensor") or {}).get("irradiance", {}).items()}
    return CalibrationRecord(survey=survey, id=digest, method=cal.method, source=source,
                             panel_capture=panel.get("capture"),
                             albedos={b: v["albedo"] for b, v in bands.items()},
                             irradiances=irr, notes=list(body.get("notes") or []), body=body,
                             created=now().isoformat())


def _plain(v: Any) -> Any:
    try:
        return v.item()  # numpy scalars
    except AttributeError:
        return str(v)


def stored_calibration(ws: Any, survey: str) -> tuple[Calibration, CalibrationRecord] | None:
    """The survey's stored calibration and its record, or None."""
    rec = ws.catalog.calibration(survey)
    if rec is None:
        return None
    return Calibration.from_dict(rec.body), rec


def store_calibration(ws: Any, survey: str, cal: Calibration, source: str) -> CalibrationRecord:
    """Store ``cal`` as the survey's calibration (replacing the earlier one); write the report
    to ``surveys/<survey>/reports/calibration.json``."""
    from belcheer.fileio import write_json_atomic

    rec = record_of(cal, survey, source)
    ws.catalog.put_calibration(rec)
    write_json_atomic(ws.report_dir(survey) / "calibration.json",
                      {**rec.body, "id": rec.id, "source": rec.source})
    return rec


def _same_albedo(rec: CalibrationRecord, albedo: Albedo) -> bool:
    if albedo is None:
        return True
    if not rec.albedos:
        return False
    if isinstance(albedo, int | float):
        return all(v == float(albedo) for v in rec.albedos.values())
    if isinstance(albedo, Mapping):
        return all(rec.albedos.get(k) == float(v) for k, v in albedo.items())
    return sorted(rec.albedos.values()) == sorted(float(v) for v in albedo) and \
        list(rec.albedos.values()) == [float(v) for v in albedo]


def survey_calibration(ws: Any, survey: str | Survey, *, method: Method = "auto", panel_albedo: Albedo = None,
                       panel_region: tuple[int, int, int, int] | None = None,
                       source: str = "automatic", recalibrate: bool = False,
                       ) -> tuple[Calibration, CalibrationRecord]:
    """The survey's calibration: the stored one unless ``recalibrate``, a different albedo, a
    panel region or a method other than ``auto`` asks for a new one; else calibrated now and
    stored (``source`` says by whom). ``survey`` is a survey's name or the survey itself,
    already loaded. Returns the calibration and its record."""
    loaded = survey if isinstance(survey, Survey) else None
    survey = survey if isinstance(survey, str) else survey.name
    have = None if recalibrate or panel_region is not None else stored_calibration(ws, survey)
    if have is not None:
        cal, rec = have
        if (method in ("auto", rec.method)) and _same_albedo(rec, panel_albedo):
            return cal, rec
    cal = calibrate(loaded or ws.load_survey(survey), method=method, panel_albedo=panel_albedo,
                    panel_region=panel_region)
    return cal, store_calibration(ws, survey, cal, source)

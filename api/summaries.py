"""Survey documents, survey summaries, parcel time series and roll-ups, from the catalog and the
zoning stage's parcel report."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from belcheer import zoning
from belcheer.api import data
from belcheer.catalog import STAT_COLUMNS, SurveyRecord
from belcheer.errors import NotFoundError
from belcheer.workspace import Workspace

#: summary keys that name places on the server (folders, frame paths): officers only
_SERVER_PATHS = ("source_dir",)


def public_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """An ingest summary without server paths: no source folder, problems counted but not listed
    (each listed problem names a frame's absolute path)."""
    out = {k: v for k, v in summary.items() if k not in _SERVER_PATHS}
    if isinstance(out.get("problems"), dict):
        out["problems"] = {k: v for k, v in out["problems"].items() if k != "list"}
    return out


def survey_doc(ws: Workspace, rec: SurveyRecord, base: str, internal: bool = False) -> dict[str, Any]:
    """A survey with its products, each with tile, TileJSON and legend URLs. Only ``internal``
    documents (for officers) carry the summary's server paths."""
    products = []
    for p in ws.catalog.products(rec.name):
        products.append({
            "id": p.id, "name": p.name, "kind": p.kind.value, "units": p.units, "relative": p.relative,
            "bands": [b.name for b in p.bands],
            "tiles": f"{base}/tiles/{p.id}/{{z}}/{{x}}/{{y}}.png",
            "tilejson": f"{base}/tiles/{p.id}/tilejson.json", "legend": f"{base}/legend/{p.id}",
        })
    cal = ws.catalog.calibration(rec.name)
    return {"name": rec.name, "date": rec.date, "epsg": rec.epsg, "published": rec.published,
            "created": rec.created, "products": products,
            "summary": dict(rec.summary) if internal else public_summary(dict(rec.summary)),
            "calibration": None if cal is None else {
                "method": cal.method, "source": cal.source, "panel_capture": cal.panel_capture,
                "albedos": dict(cal.albedos), "absolute": bool(cal.body.get("absolute", True)),
                # code + values, so the web map words each note in the reader's language
                "notes": [dict(n) for n in cal.notes]}}


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None


def survey_summary(ws: Workspace, rec: SurveyRecord) -> dict[str, Any]:
    """A survey summed up by the one roll-up (:func:`belcheer.zoning.rollup`): each index's
    surveyed-area-weighted mean, the pasture and cropland split, class counts and capacity."""
    report = data.parcel_report(ws, survey=rec.name)
    out: dict[str, Any] = {"survey": rec.name, "date": rec.date, "parcels": int(len(report)),
                           "indices": {}, "condition_classes": {}}
    if not len(report):
        return out
    whole = zoning.rollup(report.assign(_survey=rec.name), None, "_survey").drop(columns="geometry")
    row = data.feature_properties(whole.iloc[0])
    for col in report.columns:
        if col.endswith("_mean") and not col.startswith(("pasture_", "cropland_", "crop_")):
            out["indices"][col[:-5]] = row.get(col)
    for key in ("pasture", "cropland"):
        out[key] = {k[len(key) + 1:]: v for k, v in row.items() if k.startswith(key + "_")}
    if "condition_class" in report:
        counts = pd.to_numeric(report["condition_class"], errors="coerce").dropna().astype(int)
        counts = counts[counts > 0].value_counts()
        out["condition_classes"] = {str(k): int(v) for k, v in sorted(counts.items())}
    for col in ("area_ha", "surveyed_ha", "capacity_su", "registered_su", "balance_su"):
        if col in row:
            out[col] = _num(row[col])
    return out


def parcel_series(ws: Workspace, parcel_id: str, index: str, surveys: set[str]) -> dict[str, Any]:
    """An index's statistics of a parcel over the given surveys, oldest first, and the latest."""
    rows = [r for r in ws.catalog.stats(parcel_id=parcel_id, index_name=index) if r["survey"] in surveys]
    if not rows:
        known = data.load_parcels(ws)
        if parcel_id not in set(known["parcel_id"].astype(str)):
            raise NotFoundError(f"no parcel with id {parcel_id!r}")
    series = [{"survey": r["survey"], "date": r["date"],
               **{c: _num(r.get(c)) for c in STAT_COLUMNS}} for r in rows]
    series.sort(key=lambda r: (r["date"] or "", r["survey"]))
    return {"parcel_id": parcel_id, "index": index, "latest": series[-1] if series else None,
            "series": series}


def rollup(ws: Workspace, level: str, survey: str | None,
           livestock: pd.DataFrame | None = None) -> list[dict[str, Any]]:
    """Parcels grouped by their ``level`` attribute (soum, aimag, bag) with the one roll-up the
    CLI and the PDF print (:func:`belcheer.zoning.rollup`): pasture and cropland apart,
    capacity, registered livestock, balance and, given ``livestock``, the soum's NSO herd."""
    report = data.parcel_report(ws, survey=survey)
    if report.empty or level not in report:
        return []
    table = zoning.rollup(report, None, level, livestock=livestock)
    return [data.feature_properties(r) for _, r in table.drop(columns="geometry").iterrows()]

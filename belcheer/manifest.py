"""The survey manifest on disk: a GeoParquet table, one row per frame, footprints in the survey CRS.

Nested metadata (intrinsics, pose, radiometry, problems) is stored as JSON text columns so the
file opens in any GIS (QGIS, GDAL ≥ 3.8 read GeoParquet) and round-trips to :class:`Survey`
exactly. Survey-level facts go in the Parquet file's key-value metadata under ``belcheer``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import pyarrow.parquet as pq

from belcheer.errors import InputError
from belcheer.fileio import atomic_path
from belcheer.models import (
    Band,
    Camera,
    Capture,
    Frame,
    Intrinsics,
    Pose,
    Problem,
    Radiometry,
    Severity,
    Survey,
)

MANIFEST_VERSION = 1


def _problem(d: dict[str, Any]) -> Problem:
    return Problem(code=d["code"], message=d["message"], severity=Severity(d["severity"]),
                   path=Path(d["path"]) if d.get("path") else None)


def _dump(obj: Any) -> str | None:
    if obj is None:
        return None
    if dataclasses.is_dataclass(obj):
        obj = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        obj = {k: (dict(v) if k == "extra" else v) for k, v in obj.items()}
    return json.dumps(obj, ensure_ascii=False, default=str)


def _s(v: Any) -> str | None:
    """A text cell, or None for a missing one (pandas ≥ 3 reads missing strings as NaN)."""
    return v if isinstance(v, str) and v else None


def _tuples(d: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def survey_to_frame(survey: Survey) -> gpd.GeoDataFrame:
    """One row per frame; the capture's footprint as geometry (in ``EPSG:survey.epsg``)."""
    rows = []
    for cap in survey.captures:
        for f in cap.frames:
            rows.append({
                "capture_id": cap.id,
                "path": str(f.path),
                "file": f.path.name,
                "uri": f.uri,
                "band": f.band.name,
                "band_index": f.band_index,
                "band_json": _dump(f.band),
                "make": f.camera.make,
                "model": f.camera.model,
                "serial": f.camera.serial,
                "time": f.time.isoformat() if f.time else None,
                "lon": f.pose.lon if f.pose else None,
                "lat": f.pose.lat if f.pose else None,
                "alt_abs_m": f.pose.alt_abs_m if f.pose else None,
                "alt_rel_m": f.pose.alt_rel_m if f.pose else None,
                "pose_json": _dump(f.pose),
                "intrinsics_json": _dump(f.intrinsics),
                "radiometry_json": _dump(f.radiometry),
                "tags_json": json.dumps(dict(f.tags), ensure_ascii=False, default=str),
                "problems_json": json.dumps([p.to_dict() for p in f.problems], ensure_ascii=False),
                "usable": f.usable,
                "is_panel": cap.is_panel,
                "gsd_m": cap.gsd_m,
                "geometry": cap.footprint,
            })
    crs = f"EPSG:{survey.epsg}"
    if not rows:
        return gpd.GeoDataFrame({"capture_id": []}, geometry=[], crs=crs)
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=crs)


def survey_from_frame(gdf: gpd.GeoDataFrame, name: str, epsg: int,
                      meta: dict[str, Any] | None = None) -> Survey:
    """Rebuild a :class:`Survey` from :func:`survey_to_frame`'s table."""
    meta = meta or {}
    captures: list[Capture] = []
    for cap_id, group in gdf.groupby("capture_id", sort=False):
        frames = []
        for r in group.itertuples(index=False):
            rad = json.loads(r.radiometry_json) if _s(r.radiometry_json) else {}
            pose = json.loads(r.pose_json) if _s(r.pose_json) else None
            intr = json.loads(r.intrinsics_json) if _s(r.intrinsics_json) else None
            frames.append(Frame(
                path=Path(r.path), capture_id=str(cap_id), band=Band(**json.loads(r.band_json)),
                band_index=int(r.band_index), camera=Camera(r.make, r.model, _s(r.serial)),
                intrinsics=Intrinsics(**_tuples(intr)) if intr else None,
                pose=Pose(**pose) if pose else None,
                time=datetime.fromisoformat(r.time) if _s(r.time) else None,
                radiometry=Radiometry(**_tuples(rad)) if rad else Radiometry(),
                tags=json.loads(r.tags_json) if r.tags_json else {},
                problems=tuple(_problem(p) for p in json.loads(r.problems_json or "[]")),
                uri=_s(getattr(r, "uri", None)),  # manifests written before frames were stored lack it
            ))
        first = group.iloc[0]
        geom = first.geometry
        captures.append(Capture(
            id=str(cap_id), frames=tuple(frames), is_panel=bool(first["is_panel"]),
            footprint=None if geom is None or geom.is_empty else geom,
            gsd_m=None if first["gsd_m"] is None or first["gsd_m"] != first["gsd_m"] else float(first["gsd_m"]),
        ))
    return Survey(
        name=name, captures=tuple(captures), epsg=epsg,
        source_dir=Path(meta["source_dir"]) if meta.get("source_dir") else None,
        problems=tuple(_problem(p) for p in meta.get("problems", [])),
        created=datetime.fromisoformat(meta["created"]) if meta.get("created") else None,
    )


def write_manifest(survey: Survey, path: str | os.PathLike[str]) -> Path:
    """Write the survey manifest as GeoParquet, atomically. Returns the path."""
    gdf = survey_to_frame(survey)
    meta = {
        "version": MANIFEST_VERSION, "name": survey.name, "epsg": survey.epsg,
        "source_dir": str(survey.source_dir) if survey.source_dir else None,
        "created": survey.created.isoformat() if survey.created else None,
        "problems": [p.to_dict() for p in survey.problems],
    }
    with atomic_path(path, suffix=".parquet") as tmp:
        gdf.to_parquet(tmp, index=False)
        # add our own key-value metadata beside geopandas' "geo" key
        table = pq.read_table(tmp)
        kv = dict(table.schema.metadata or {})
        kv[b"belcheer"] = json.dumps(meta, ensure_ascii=False).encode("utf-8")
        pq.write_table(table.replace_schema_metadata(kv), tmp)
    return Path(path)


def read_manifest(path: str | os.PathLike[str]) -> Survey:
    """Read a manifest written by :func:`write_manifest`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"survey manifest {path} does not exist")
    try:
        kv = pq.read_schema(path).metadata or {}
        meta = json.loads(kv.get(b"belcheer", b"{}"))
        gdf = gpd.read_parquet(path)
    except Exception as exc:
        raise InputError(f"survey manifest {path} is unreadable: {exc}") from exc
    return survey_from_frame(gdf, name=meta.get("name", path.parent.name),
                             epsg=int(meta.get("epsg", 4326)), meta=meta)

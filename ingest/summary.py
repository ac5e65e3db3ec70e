"""The survey summary: what ``belcheer ingest --json`` prints and the catalog stores (JSON-safe)."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from pyproj import Transformer
from shapely.ops import unary_union

from belcheer.models import Severity, Survey


def _round(v: float | None, nd: int = 4) -> float | None:
    return None if v is None else round(float(v), nd)


def _bounds(survey: Survey) -> tuple[list[float] | None, list[float] | None]:
    """(lon/lat bounds, bounds in the survey CRS) of the usable captures' footprints, else positions."""
    geoms = [c.footprint for c in survey.captures if c.footprint is not None and c.usable]
    if geoms and survey.epsg != 4326:
        b = unary_union(geoms).bounds
        to_ll = Transformer.from_crs(survey.epsg, 4326, always_xy=True)
        ll = to_ll.transform_bounds(*b)
        return [round(x, 7) for x in ll], [round(x, 2) for x in b]
    poses = [c.pose for c in survey.captures if c.pose is not None]
    if not poses:
        return None, None
    box = (min(p.lon for p in poses), min(p.lat for p in poses), max(p.lon for p in poses),
           max(p.lat for p in poses))
    if survey.epsg == 4326:
        return [round(x, 7) for x in box], None
    to_utm = Transformer.from_crs(4326, survey.epsg, always_xy=True)
    return [round(x, 7) for x in box], [round(x, 2) for x in to_utm.transform_bounds(*box)]


def _utm_zone(epsg: int) -> str | None:
    if 32601 <= epsg <= 32660:
        return f"{epsg - 32600}N"
    if 32701 <= epsg <= 32760:
        return f"{epsg - 32700}S"
    return None


def _positions(survey: Survey) -> dict[str, Any]:
    """Which position (EXIF GPS or DJI XMP) the frames use where they carry both, and how far
    apart the two are (metres): the choice is reported, never silent."""
    both = [f for f in survey.frames if "belcheer:PositionSource" in f.tags]
    if not both:
        return {"frames_with_both": 0}
    dist = [float(f.tags.get("belcheer:PositionDisagreementM", 0.0)) for f in both]
    return {"frames_with_both": len(both),
            "source": dict(sorted(Counter(str(f.tags["belcheer:PositionSource"]) for f in both).items())),
            "disagreement_m_median": round(statistics.median(dist), 3),
            "disagreement_m_max": round(max(dist), 3)}


def summarize(survey: Survey) -> dict[str, Any]:
    """Survey facts as plain JSON types: counts, cameras, bands (nm), panels, GSD (m/px, median of
    flight captures), bounds (lon/lat and in the survey CRS), UTM zone, date and problems."""
    problems = list(survey.problems) + [p for c in survey.captures for p in c.problems]
    flight = survey.flight_captures
    gsds = [c.gsd_m for c in flight if c.gsd_m]
    heights = [float(h) for c in flight
               if isinstance(h := c.primary.tags.get("belcheer:HeightAboveGround"), (int, float))]
    times = sorted(c.time for c in survey.captures if c.time is not None)
    ll, utm = _bounds(survey)
    return {
        "survey": survey.name,
        "source_dir": str(survey.source_dir) if survey.source_dir else None,
        "frames": len(survey.frames),
        "captures": len(survey.captures),
        "usable_captures": sum(1 for c in survey.captures if c.usable),
        "flight_captures": len(flight),
        "cameras": [{"make": c.make, "model": c.model, "serial": c.serial} for c in survey.cameras],
        "bands": [{"name": b.name, "center_nm": b.center_nm, "bandwidth_nm": b.bandwidth_nm,
                   "label": b.label} for b in survey.bands],
        "multispectral": survey.is_multispectral if survey.captures else False,
        "panel_captures": [c.id for c in survey.panel_captures],
        "gsd_m": _round(statistics.median(gsds), 5) if gsds else None,
        "height_m": _round(statistics.median(heights), 2) if heights else None,
        "bounds_lonlat": ll,
        "bounds_utm": utm if survey.epsg != 4326 else None,
        "epsg": survey.epsg,
        "utm_zone": _utm_zone(survey.epsg),
        "date": times[0].date().isoformat() if times else None,
        "time_start": times[0].isoformat() if times else None,
        "time_end": times[-1].isoformat() if times else None,
        "positions": _positions(survey),
        "problems": {
            "errors": sum(1 for p in problems if p.severity is Severity.ERROR),
            "warnings": sum(1 for p in problems if p.severity is Severity.WARNING),
            "counts": dict(sorted(Counter(p.code for p in problems).items())),
            "list": [p.to_dict() for p in problems],
        },
    }

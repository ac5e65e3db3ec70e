"""The parcel report: one row per parcel with everything a land office decides on — latest
index statistics, recovery class (of the mean, and the share of area in each class), biomass,
carrying capacity and stocking balance. The API, exports and roll-ups read this table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd

from belcheer.errors import NotFoundError

if TYPE_CHECKING:  # pragma: no cover
    from belcheer.workspace import Workspace

#: Statistics of the primary index copied into the report as ``<index>_<stat>``.
PRIMARY_STATS = ("mean", "median", "std", "p10", "p90", "valid_fraction")


def _latest_survey(ws: Workspace) -> str | None:
    for rec in sorted(ws.catalog.surveys(), key=lambda r: (r.date or "", r.created), reverse=True):
        if ws.catalog.stats(survey=rec.name):
            return rec.name
    return None


def parcel_report(ws: Workspace, survey: str | None = None, *, index: str = "ndvi",
                  params: Any = None) -> gpd.GeoDataFrame:
    """One row per current parcel (EPSG:4326): parcel attributes, ``<index>_mean`` etc. of the
    survey (latest survey with statistics by default), ``condition_class`` (1–5 of the mean,
    0 = no data) with Mongolian/English names, ``share_1`` … ``share_5`` (area share per
    class, if a condition raster was made), ``biomass_kg_ha``, ``registered_su``,
    ``su_per_ha``, ``ha_per_su``, ``capacity_su`` and ``balance_su`` (negative = overstocked)."""
    from belcheer.zoning.biomass import load_model
    from belcheer.zoning.capacity import capacity_table
    from belcheer.zoning.condition import ROMAN, class_label, condition_class
    from belcheer.zoning.parcels import load_parcels

    parcels = load_parcels(ws)
    survey = survey or _latest_survey(ws)
    report = parcels.copy()
    report["survey"] = survey
    report["date"] = ws.catalog.survey(survey).date if survey else None
    rows = ws.catalog.stats(survey=survey) if survey else []
    stats = pd.DataFrame(rows)
    names = sorted(set(stats["index_name"])) if not stats.empty else []
    for name in names:
        sub = stats[stats["index_name"] == name].set_index("parcel_id")
        if name == "landcover":
            for col in [c for c in sub.columns if c.startswith("share_")]:
                report[f"landcover_{col}"] = report["parcel_id"].map(sub[col]).astype("float64")
            continue
        if name == "cover":  # fractional cover shares (zoning/cover.py)
            for col in ("green_cover", "dry_cover", "bare_cover", "cover_valid_fraction"):
                if col in sub:
                    report[col] = report["parcel_id"].map(sub[col]).astype("float64")
            continue
        if name == "condition":
            for k in range(1, 6):
                col = f"share_{k}"
                report[col] = report["parcel_id"].map(sub[col]) if col in sub else np.nan
            continue
        wanted = PRIMARY_STATS if name == index else ("mean",)
        for s in wanted:
            if s in sub:
                report[f"{name}_{s}"] = report["parcel_id"].map(sub[s]).astype("float64")
    mean_col = f"{index}_mean"
    if mean_col not in report:
        report[mean_col] = np.nan
    report["condition_class"] = condition_class(report[mean_col], report["eco_zone"].to_numpy(dtype=object))
    report["condition_roman"] = report["condition_class"].map(lambda c: ROMAN.get(int(c), ""))
    report["condition_mn"] = report["condition_class"].map(lambda c: class_label(int(c), "mn"))
    report["condition_en"] = report["condition_class"].map(lambda c: class_label(int(c), "en"))
    if "biomass_mean" in report:
        report["biomass_kg_ha"] = report["biomass_mean"]
        report["biomass_source"] = "raster"
    else:
        try:
            model = load_model(ws, survey, index) if survey else None
        except NotFoundError:
            model = None
        report["biomass_kg_ha"] = model.predict(report[mean_col]) if model else np.nan
        report["biomass_source"] = "model" if model else ""
    report = capacity_table(report, params=params)
    geom = report.pop("geometry")
    report["geometry"] = geom
    return gpd.GeoDataFrame(report, geometry="geometry", crs=4326)

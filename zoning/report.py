"""The parcel report: one row per parcel with everything a land office decides on — latest
index statistics, the surveyed share, and by land use (:mod:`belcheer.zoning.landuse`): for
grazing land the recovery class (of the mean, and the share of area in each class), biomass,
carrying capacity and stocking balance; for cropland the crop indicators (index mean and
uniformity); for both the change since the previous survey. The API, exports, the PDF and
roll-ups read this table."""

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
        if ws.catalog.stats(survey=rec.name, limit=1):
            return rec.name
    return None


def _previous_survey(ws: Workspace, survey: str, index: str) -> str | None:
    """The latest survey dated before ``survey`` that has statistics of ``index``."""
    date = ws.catalog.survey(survey).date or ""
    earlier = [r for r in ws.catalog.surveys() if r.name != survey and (r.date or "") < date]
    for rec in sorted(earlier, key=lambda r: (r.date or "", r.created), reverse=True):
        if ws.catalog.stats(survey=rec.name, index_name=index, limit=1):
            return rec.name
    return None


def _add_previous_change(ws: Workspace, report: pd.DataFrame, survey: str | None, index: str,
                         parcel_ids: list[str] | None = None) -> None:
    """``previous_survey``, ``<index>_delta``, ``class_previous`` and ``change_kind`` (see
    :func:`belcheer.zoning.change.parcel_change`) against the previous survey, in place."""
    from belcheer.zoning.change import parcel_change

    prev = _previous_survey(ws, survey, index) if survey else None
    report["previous_survey"] = prev
    if prev is None:
        report[f"{index}_delta"] = np.nan
        report["class_previous"] = 0
        report["change_kind"] = "no_data"
        return
    a = pd.DataFrame(ws.catalog.stats(survey=prev, index_name=index, parcel_id=parcel_ids),
                     columns=["parcel_id", "mean"])
    b = pd.DataFrame({"parcel_id": report["parcel_id"], "mean": report[f"{index}_mean"]})
    pc = parcel_change(a, b, eco_zone=report.set_index("parcel_id")["eco_zone"],
                       land_use=report.set_index("parcel_id")["land_use"]).set_index("parcel_id")
    report[f"{index}_delta"] = report["parcel_id"].map(pc["delta"]).astype("float64")
    report["class_previous"] = report["parcel_id"].map(pc["class_a"]).fillna(0).astype(int)
    report["change_kind"] = report["parcel_id"].map(pc["change_kind"]).fillna("no_data")


def parcel_report(ws: Workspace, survey: str | None = None, *, index: str = "ndvi",
                  params: Any = None, parcels: gpd.GeoDataFrame | None = None) -> gpd.GeoDataFrame:
    """One row per current parcel (EPSG:4326; only the rows of ``parcels``, a page of the
    current layer from :func:`~belcheer.zoning.parcels.query_parcels`, where given — every
    value is computed from the parcel's own row, so a page's rows equal the whole report's): parcel attributes, ``<index>_mean`` etc. of the
    survey (latest survey with statistics by default), ``use_group`` (pasture | cropland |
    other), ``surveyed_share`` (0…1 of the parcel's area with valid pixels) and
    ``surveyed_ha``; for grazing land ``condition_class`` (1–5, 0 = no data or not grazing
    land: the worse of ``condition_class_index``, the class of the index mean, and
    ``condition_class_bare``, the class of the parcel's bare-ground share where fractional cover
    was computed; ``condition_basis`` says which decided: ``ndvi``, ``ndvi+bare_cover`` (both
    known, the index decided) or ``bare_cover`` (bare ground lowered it)) with Mongolian/English names, ``share_1`` … ``share_5`` (area share per class,
    if a condition raster was made), ``biomass_kg_ha``, ``su_per_ha``, ``ha_per_su``,
    ``capacity_su`` (whole parcel, from its surveyed part), ``capacity_surveyed_su``,
    ``capacity_status`` with notes, ``registered_su`` and ``balance_su`` (negative =
    overstocked); for cropland ``crop_index_mean`` and ``crop_uniformity`` (1 − std/mean, 0…1);
    and ``previous_survey``, ``<index>_delta``, ``class_previous``, ``change_kind``."""
    from belcheer.zoning.biomass import load_model
    from belcheer.zoning.capacity import capacity_table
    from belcheer.zoning.condition import (
        ROMAN,
        bare_ground_class,
        class_label,
        combine_classes,
        condition_class,
    )
    from belcheer.zoning.landuse import use_group
    from belcheer.zoning.parcels import load_parcels

    given = parcels
    parcels = load_parcels(ws) if parcels is None else parcels
    survey = survey or _latest_survey(ws)
    report = parcels.copy()
    report["survey"] = survey
    report["date"] = ws.catalog.survey(survey).date if survey else None
    if not survey or report.empty:
        rows = []
    else:
        # a page of parcels reads only its own statistics
        rows = ws.catalog.stats(survey=survey, parcel_id=None if given is None else
                                report["parcel_id"].astype(str).tolist())
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
    group = use_group(report["land_use"].to_numpy(dtype=object))
    grazed = group == "pasture"
    crop = group == "cropland"
    report["use_group"] = group
    vf = f"{index}_valid_fraction"
    report["surveyed_share"] = (report[vf] if vf in report else pd.Series(np.nan, index=report.index)).astype("float64")
    report["surveyed_ha"] = report["area_ha"].astype("float64") * report["surveyed_share"]
    zones = report["eco_zone"].to_numpy(dtype=object)
    cls = np.where(grazed, condition_class(report[mean_col], zones), 0).astype("uint8")
    bare = (report["bare_cover"] if "bare_cover" in report else pd.Series(np.nan, index=report.index))
    bare_cls = np.where(grazed, bare_ground_class(bare.astype("float64"), zones), 0).astype("uint8")
    # the final class first: exports that shorten column names (shapefile) keep it the short name
    report["condition_class"] = combine_classes(cls, bare_cls)
    report["condition_class_index"] = cls
    report["condition_class_bare"] = bare_cls
    # which measurements decided the class: a reader sees when bare ground lowered it
    report["condition_basis"] = np.select(
        [cls == 0, bare_cls == 0, bare_cls > cls],
        ["", index, "bare_cover"], default=f"{index}+bare_cover")
    for k in range(1, 6):
        if f"share_{k}" in report:
            report.loc[~grazed, f"share_{k}"] = np.nan
    std_col = f"{index}_std"
    mean = report[mean_col].astype("float64")
    report["crop_index_mean"] = mean.where(crop)
    if std_col in report:
        with np.errstate(divide="ignore", invalid="ignore"):
            uni = (1.0 - report[std_col].astype("float64") / mean.abs()).clip(0.0, 1.0)
        report["crop_uniformity"] = uni.where(crop)
    else:
        report["crop_uniformity"] = np.nan
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
    report.loc[~grazed, "biomass_kg_ha"] = np.nan
    report = capacity_table(report, params=params)
    _add_previous_change(ws, report, survey, index,
                         None if given is None else report["parcel_id"].astype(str).tolist())
    geom = report.pop("geometry")
    report["geometry"] = geom
    return gpd.GeoDataFrame(report, geometry="geometry", crs=4326)

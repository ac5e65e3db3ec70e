"""What the API reads from and writes to the workspace, through the stages' public functions.

The zoning stage owns parcels and their statistics (``belcheer.zoning``); until a function of it
exists in this checkout, a minimal equivalent over the catalog is used so the server still works.
"""

from __future__ import annotations

import logging
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from belcheer.api.auth import User

from belcheer.catalog import SurveyRecord
from belcheer.errors import NotFoundError
from belcheer.fileio import atomic_path
from belcheer.models import LIVESTOCK, PARCEL_COLUMNS, Product
from belcheer.workspace import Workspace

log = logging.getLogger(__name__)

#: sheep units per head (Mongolian convention: bod mal → bog mal)
SHEEP_UNITS = {"camel": 5.0, "horse": 7.0, "cattle": 6.0, "sheep": 1.0, "goat": 0.9}


def _zoning(name: str):
    try:
        from belcheer import zoning
    except ImportError:
        return None
    return getattr(zoning, name, None)


# -- surveys ------------------------------------------------------------------------------
def visible_surveys(ws: Workspace, user: User) -> list[SurveyRecord]:
    """Surveys this user may see: officers and admins all, everyone else the published ones."""
    recs = ws.catalog.surveys()
    return recs if user.at_least("officer") else [r for r in recs if r.published]


def visible_survey(ws: Workspace, user: User, name: str) -> SurveyRecord:
    """One survey, or NotFoundError if it does not exist or this user may not see it."""
    for r in visible_surveys(ws, user):
        if r.name == name:
            return r
    raise NotFoundError(f"no survey named {name!r} is visible to you; see /surveys")


def visible_product(ws: Workspace, user: User, product_id: str) -> Product:
    """A product by id, hidden (404) when its survey is not visible to this user."""
    product = ws.catalog.product_by_id(product_id)
    visible_survey(ws, user, product.survey)
    return product


def latest_survey(ws: Workspace, user: User) -> str | None:
    recs = visible_surveys(ws, user)
    return recs[-1].name if recs else None


# -- parcels ------------------------------------------------------------------------------
def _empty_parcels() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({c: pd.Series(dtype="object") for c in PARCEL_COLUMNS},
                            geometry=gpd.GeoSeries([], crs=4326), crs=4326)


def load_parcels(ws: Workspace) -> gpd.GeoDataFrame:
    """The current parcel layer in EPSG:4326 (empty if none was imported)."""
    fn = _zoning("load_parcels")
    if fn is not None:
        try:
            return fn(ws)
        except NotFoundError:
            return _empty_parcels()
    pv = ws.catalog.current_parcel_version()
    if pv is None:
        return _empty_parcels()
    gdf = gpd.read_file(pv.path, engine="pyogrio")
    gdf["parcel_id"] = gdf["parcel_id"].astype(str)
    return gdf.to_crs(4326)


def registered_su(gdf: pd.DataFrame) -> pd.Series:
    """Registered livestock of each parcel in sheep units."""
    total = pd.Series(0.0, index=gdf.index)
    for animal in LIVESTOCK:
        if animal in gdf:
            total += pd.to_numeric(gdf[animal], errors="coerce").fillna(0) * SHEEP_UNITS[animal]
    return total


def parcel_report(ws: Workspace, survey: str | None = None) -> gpd.GeoDataFrame:
    """Parcels with their latest statistics, condition class, capacity and stocking balance (EPSG:4326)."""
    fn = _zoning("parcel_report")
    if fn is not None:
        if ws.catalog.current_parcel_version() is None:
            return _empty_parcels()
        gdf = fn(ws, survey=survey)
        gdf = gdf.to_crs(4326) if gdf.crs is not None and gdf.crs.to_epsg() != 4326 else gdf
        gdf["parcel_id"] = gdf["parcel_id"].astype(str)
        return gdf
    gdf = load_parcels(ws)
    if gdf.empty:
        return gdf
    gdf = gdf.copy()
    rows = ws.catalog.stats(survey=survey)
    if rows:
        df = pd.DataFrame(rows).sort_values(["date", "survey"], na_position="first")
        latest = df.groupby(["parcel_id", "index_name"]).tail(1)
        wide = latest.pivot(index="parcel_id", columns="index_name", values="mean")
        wide.columns = [f"{c}_mean" for c in wide.columns]
        gdf = gdf.merge(wide, left_on="parcel_id", right_index=True, how="left")
        for extra in ("condition_class", "capacity_su"):
            if extra in latest:
                vals = latest.dropna(subset=[extra]).groupby("parcel_id")[extra].last()
                gdf[extra] = gdf["parcel_id"].map(vals)
    gdf["registered_su"] = registered_su(gdf)
    if "capacity_su" in gdf:
        gdf["balance_su"] = pd.to_numeric(gdf["capacity_su"], errors="coerce") - gdf["registered_su"]
    return gdf


def report_for(ws: Workspace, user: User, survey: str | None) -> gpd.GeoDataFrame:
    """The parcel report as this user may see it: of ``survey`` (checked visible), else of the
    latest survey they may see (the public: published surveys only; officers: any)."""
    if survey is not None:
        visible_survey(ws, user, survey)
    elif not user.at_least("officer"):
        hidden = {r.name for r in ws.catalog.surveys()} - {r.name for r in visible_surveys(ws, user)}
        if hidden:
            survey = latest_survey(ws, user)
            if survey is None:
                return load_parcels(ws)  # attributes only: no statistics are public yet
    return parcel_report(ws, survey=survey)


def save_parcels(ws: Workspace, gdf: gpd.GeoDataFrame, source: str, user: User) -> int:
    """Store ``gdf`` as a new version of the parcel layer; returns the version number."""
    fn = _zoning("save_parcels")
    if fn is not None:
        return int(fn(ws, gdf, source=source, user=user.username or None))
    n = len(ws.catalog.parcel_versions()) + 1
    target = ws.path("parcels", f"parcels-v{n}.gpkg")
    with atomic_path(target) as tmp:
        gdf.to_file(tmp, driver="GPKG", engine="pyogrio")
    return ws.catalog.add_parcel_version(target, source, len(gdf), {"by": user.username}).version


def normalise(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """New parcels mapped to the parcel model (coded columns defaulted, area in hectares)."""
    fn = _zoning("normalise_parcels")
    if fn is not None:
        return fn(gdf, source="api").frame
    gdf = gdf.copy()
    gdf["area_ha"] = area_ha(gdf.geometry)
    return gdf


def area_ha(geoms: gpd.GeoSeries) -> pd.Series:
    """Areas in hectares, computed in the local UTM zone."""
    if geoms.empty:
        return pd.Series([], dtype="float64")
    return geoms.to_crs(geoms.estimate_utm_crs()).area / 1e4


def feature_properties(row: pd.Series) -> dict[str, Any]:
    """JSON-safe properties of one report row (NaN → null, numpy → Python)."""
    out: dict[str, Any] = {}
    for k, v in row.items():
        if k == "geometry":
            continue
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, float) and not np.isfinite(v):
            v = None
        elif v is pd.NaT or (not isinstance(v, (list, dict, str)) and pd.isna(v)):
            v = None
        elif hasattr(v, "isoformat"):
            v = v.isoformat()
        out[str(k)] = v
    return out

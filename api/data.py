"""What the API reads from and writes to the workspace, through the stages' public functions.

The zoning stage owns parcels and their statistics: everything parcel-related is delegated to
``belcheer.zoning``; this module adds only who may see what.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from belcheer import zoning
from belcheer.api.auth import User
from belcheer.catalog import SurveyRecord
from belcheer.errors import NotFoundError
from belcheer.models import PARCEL_COLUMNS, Product
from belcheer.workspace import Workspace

log = logging.getLogger(__name__)

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


# -- parcels (owned by the zoning stage) -------------------------------------------------
def load_parcels(ws: Workspace) -> gpd.GeoDataFrame:
    """The current parcel layer in EPSG:4326 (empty if none was imported)."""
    if ws.catalog.current_parcel_version() is None:
        return gpd.GeoDataFrame({c: pd.Series(dtype="object") for c in PARCEL_COLUMNS},
                                geometry=gpd.GeoSeries([], crs=4326), crs=4326)
    return zoning.load_parcels(ws)


def parcel_report(ws: Workspace, survey: str | None = None,
                  parcels: gpd.GeoDataFrame | None = None) -> gpd.GeoDataFrame:
    """Parcels (all, or the rows of ``parcels``) with their latest statistics, condition class,
    capacity and stocking balance (EPSG:4326)."""
    if ws.catalog.current_parcel_version() is None:
        return load_parcels(ws)
    gdf = zoning.parcel_report(ws, survey=survey, parcels=parcels)
    gdf["parcel_id"] = gdf["parcel_id"].astype(str)
    return gdf


def report_for(ws: Workspace, user: User, survey: str | None,
               parcels: gpd.GeoDataFrame | None = None) -> gpd.GeoDataFrame:
    """The parcel report as this user may see it: of ``survey`` (checked visible), else of the
    latest survey they may see (the public: published surveys only; officers: any). Only the
    rows of ``parcels`` (a page from :func:`report_page`) where given."""
    if survey is not None:
        visible_survey(ws, user, survey)
    elif not user.at_least("officer"):
        hidden = {r.name for r in ws.catalog.surveys()} - {r.name for r in visible_surveys(ws, user)}
        if hidden:
            survey = latest_survey(ws, user)
            if survey is None:
                # attributes only: no statistics are public yet
                return load_parcels(ws) if parcels is None else parcels
    return parcel_report(ws, survey=survey, parcels=parcels)


#: pandas dtypes of text columns, which the stores compare as the API does (text equality)
_TEXT_DTYPES = frozenset({"object", "str", "string"})


def report_page(ws: Workspace, user: User, survey: str | None,
                bbox: tuple[float, float, float, float] | None, filters: Mapping[str, str],
                offset: int, limit: int) -> tuple[gpd.GeoDataFrame, int] | None:
    """One page of the parcel report and how many parcels match, the bbox and property filters
    evaluated by the catalog's store (PostGIS, or the GeoPackage's R-tree) and only the page's
    report built. None when a filter names a report column (statistics, condition, capacity)
    or a numeric attribute: those need the whole report (:func:`report_for`)."""
    if ws.catalog.current_parcel_version() is None:
        return None
    columns = zoning.parcel_columns(ws)
    if any(columns.get(k) not in _TEXT_DTYPES for k in filters):
        return None
    page, matched = zoning.query_parcels(ws, bbox=bbox, where=filters, offset=offset, limit=limit)
    return report_for(ws, user, survey, parcels=page), matched


def one_parcel(ws: Workspace, user: User, survey: str | None, parcel_id: str) -> gpd.GeoDataFrame:
    """The report row of one parcel (empty if there is no such parcel), read alone."""
    if ws.catalog.current_parcel_version() is None:
        return load_parcels(ws)
    page, _ = zoning.query_parcels(ws, where={"parcel_id": str(parcel_id)}, limit=1)
    return report_for(ws, user, survey, parcels=page)


def save_parcels(ws: Workspace, gdf: gpd.GeoDataFrame, source: str, user: User) -> int:
    """Store ``gdf`` as a new version of the parcel layer; returns the version number."""
    return int(zoning.save_parcels(ws, gdf, source=source, user=user.username or None))


def normalise(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """New parcels mapped to the parcel model (coded columns defaulted, area in hectares in
    each parcel's own UTM zone)."""
    return zoning.normalise_parcels(gdf, source="api").frame


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

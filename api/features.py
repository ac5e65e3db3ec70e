"""OGC API – Features documents for the parcel layer, and checking parcels users send as GeoJSON.

Coordinates are CRS84 (longitude, latitude, degrees) as the standard's default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import box, mapping, shape

from belcheer.api.data import feature_properties
from belcheer.errors import InputError, NotFoundError
from belcheer.models import PARCEL_COLUMNS
from belcheer.zoning.parcels import check_parcel_id

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
]
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
MAX_LIMIT = 1000
#: query parameters that are not property filters
RESERVED = {"bbox", "limit", "offset", "f", "survey", "lang", "datetime"}


def parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    """``minx,miny,maxx,maxy`` in degrees, validated."""
    if not text:
        return None
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError as exc:
        raise InputError(f"bbox {text!r} must be four numbers: minlon,minlat,maxlon,maxlat") from exc
    if len(vals) != 4 or not (vals[0] <= vals[2] and vals[1] <= vals[3]):
        raise InputError(f"bbox {text!r} must be minlon,minlat,maxlon,maxlat with min ≤ max")
    return vals[0], vals[1], vals[2], vals[3]


def filter_parcels(gdf: gpd.GeoDataFrame, bbox: tuple[float, float, float, float] | None,
                   filters: Mapping[str, str]) -> gpd.GeoDataFrame:
    """Parcels intersecting ``bbox`` whose properties equal every value in ``filters``."""
    out = gdf
    if bbox is not None and not out.empty:
        out = out[out.intersects(box(*bbox))]
    for key, value in filters.items():
        if key not in out.columns or key == "geometry":
            raise InputError(f"unknown property {key!r} to filter on; properties are "
                             f"{', '.join(c for c in gdf.columns if c != 'geometry')}")
        out = out[out[key].astype(str) == str(value)]
    return out


def feature(row: pd.Series) -> dict[str, Any]:
    props = feature_properties(row)
    return {"type": "Feature", "id": props.get("parcel_id"), "properties": props,
            "geometry": mapping(row.geometry) if row.geometry is not None else None}


def _link(base: str, query: Mapping[str, Any], rel: str, title: str | None = None) -> dict[str, Any]:
    q = {k: v for k, v in query.items() if v is not None}
    out = {"href": f"{base}?{urlencode(q)}" if q else base, "rel": rel, "type": "application/geo+json"}
    if title:
        out["title"] = title
    return out


def feature_collection(gdf: gpd.GeoDataFrame, offset: int, limit: int, base: str,
                       query: Mapping[str, Any], matched: int | None = None) -> dict[str, Any]:
    """One page of features with ``numberMatched``, ``numberReturned`` and next/prev links:
    rows ``offset`` to ``offset + limit`` of ``gdf``, or ``gdf`` itself when it is already that
    page of ``matched`` features."""
    if matched is None:
        page, matched = gdf.iloc[offset:offset + limit], len(gdf)
    else:
        page = gdf
    links = [_link(base, {**query, "offset": offset, "limit": limit}, "self")]
    if offset + limit < matched:
        links.append(_link(base, {**query, "offset": offset + limit, "limit": limit}, "next"))
    if offset > 0:
        links.append(_link(base, {**query, "offset": max(0, offset - limit), "limit": limit}, "prev"))
    return {"type": "FeatureCollection", "features": [feature(r) for _, r in page.iterrows()],
            "numberMatched": int(matched), "numberReturned": int(len(page)), "links": links}


def one_feature(gdf: gpd.GeoDataFrame, parcel_id: str) -> dict[str, Any]:
    hit = gdf[gdf["parcel_id"].astype(str) == str(parcel_id)]
    if hit.empty:
        raise NotFoundError(f"no parcel with id {parcel_id!r}")
    return feature(hit.iloc[0])


def collection_doc(gdf: gpd.GeoDataFrame, base: str) -> dict[str, Any]:
    bounds = [float(v) for v in gdf.total_bounds] if not gdf.empty else [-180.0, -90.0, 180.0, 90.0]
    return {
        "id": "parcels", "title": "Parcels", "itemType": "feature",
        "description": "Pasture, hayfield and cropland parcels with their latest statistics, "
                       "condition class, carrying capacity and stocking balance",
        "extent": {"spatial": {"bbox": [bounds], "crs": CRS84}},
        "crs": [CRS84],
        "links": [
            {"href": f"{base}/collections/parcels", "rel": "self", "type": "application/json"},
            {"href": f"{base}/collections/parcels/items", "rel": "items", "type": "application/geo+json"},
            {"href": f"{base}/collections/parcels/items?f=html", "rel": "items", "type": "text/html"},
        ],
    }


def parcels_from_geojson(doc: Any) -> gpd.GeoDataFrame:
    """Parcels a user sent as a GeoJSON Feature or FeatureCollection (CRS84), checked.

    Raises InputError (422) naming what is wrong: not GeoJSON, a missing ``parcel_id``, a geometry
    that is not a valid polygon, coordinates that are not degrees.
    """
    if not isinstance(doc, dict) or doc.get("type") not in ("Feature", "FeatureCollection"):
        raise InputError("send a GeoJSON Feature or FeatureCollection (\"type\" is missing or wrong)")
    feats = [doc] if doc["type"] == "Feature" else doc.get("features")
    if not isinstance(feats, list) or not feats:
        raise InputError("the FeatureCollection has no \"features\" list")
    records, geoms = [], []
    for i, f in enumerate(feats):
        if not isinstance(f, dict) or f.get("type") != "Feature":
            raise InputError(f"feature {i} is not a GeoJSON Feature")
        props = f.get("properties") or {}
        if not isinstance(props, dict):
            raise InputError(f"feature {i}: \"properties\" must be an object")
        pid = props.get("parcel_id", f.get("id"))
        if pid in (None, ""):
            raise InputError(f"feature {i} has no parcel_id (in properties or as the feature id)")
        try:
            geom = shape(f.get("geometry"))
        except Exception as exc:  # shapely raises several types for bad input
            raise InputError(f"feature {i} ({pid}): the geometry is not valid GeoJSON: {exc}") from exc
        if geom.geom_type not in ("Polygon", "MultiPolygon") or geom.is_empty:
            raise InputError(f"feature {i} ({pid}): a parcel must be a Polygon or MultiPolygon, "
                             f"not {geom.geom_type}")
        if not np.isfinite(shapely.get_coordinates(geom)).all():
            raise InputError(f"feature {i} ({pid}): coordinates must be finite numbers (NaN or Infinity found)",
                             code="error.parcels.nonfinite", index=i, parcel_id=str(pid))
        minx, miny, maxx, maxy = geom.bounds
        if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
            raise InputError(f"feature {i} ({pid}): coordinates are not longitude/latitude degrees "
                             "(GeoJSON is CRS84)")
        if not geom.is_valid:
            reason = shapely.is_valid_reason(geom)
            raise InputError(f"feature {i} ({pid}): invalid polygon ({reason}); fix it and resend")
        rec = {c: props[c] for c in PARCEL_COLUMNS if c in props and c != "area_ha"}
        rec["parcel_id"] = check_parcel_id(str(pid))
        records.append(rec)
        geoms.append(geom)
    gdf = gpd.GeoDataFrame(records, geometry=geoms, crs=4326)
    if gdf["parcel_id"].duplicated().any():
        dup = gdf.loc[gdf["parcel_id"].duplicated(), "parcel_id"].iloc[0]
        raise InputError(f"parcel_id {dup!r} appears twice in the upload")
    return gdf

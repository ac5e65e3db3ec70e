"""Parcels as OGC API – Features, and parcel edits with their audit trail (wiring only)."""

from __future__ import annotations

import json
from typing import Any, Literal

import pandas as pd
from fastapi import APIRouter, Body, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse

from belcheer.api import data, features
from belcheer.api.auth import User
from belcheer.api.deps import base_url, current_user, require, settings, workspace
from belcheer.api.pages import templates
from belcheer.errors import ConflictError, InputError, PermissionDeniedError
from belcheer.workspace import Workspace

router = APIRouter(tags=["features"])
GEOJSON = "application/geo+json"


@router.get("/conformance")
def conformance() -> dict:
    """OGC API conformance classes this server implements."""
    return {"conformsTo": features.CONFORMANCE}


@router.get("/collections")
def collections(request: Request, ws: Workspace = Depends(workspace)) -> dict:
    """The feature collections (one: parcels)."""
    base = base_url(request)
    return {"collections": [features.collection_doc(data.load_parcels(ws), base)],
            "links": [{"href": f"{base}/collections", "rel": "self", "type": "application/json"}]}


@router.get("/collections/parcels")
def parcels_collection(request: Request, ws: Workspace = Depends(workspace)) -> dict:
    """The parcels collection: extent, CRS and links."""
    return features.collection_doc(data.load_parcels(ws), base_url(request))


def _report(ws: Workspace, user: User, survey: str | None):
    return data.report_for(ws, user, survey)


@router.get("/collections/parcels/items", responses={200: {"content": {GEOJSON: {}, "text/html": {}}}})
def parcel_items(request: Request, bbox: str | None = Query(None, description="minlon,minlat,maxlon,maxlat"),
                 limit: int = Query(100, ge=1, le=features.MAX_LIMIT), offset: int = Query(0, ge=0),
                 f: Literal["json", "html"] = "json", survey: str | None = None,
                 lang: Literal["mn", "en"] = "mn", ws: Workspace = Depends(workspace),
                 user: User = Depends(current_user)) -> Any:
    """Parcels with their latest statistics, condition and capacity; filter by bbox or any
    property (``?soum=…``), page with limit/offset."""
    filters = {k: v for k, v in request.query_params.items() if k not in features.RESERVED}
    box = features.parse_bbox(bbox)
    # filters on the parcels' own attributes run in the store and only the page is reported;
    # one on a report column (condition, capacity…) needs the whole report
    paged = data.report_page(ws, user, survey, box, filters, offset, limit)
    if paged is not None:
        gdf, matched = paged
    else:
        gdf, matched = features.filter_parcels(_report(ws, user, survey), box, filters), None
    query = {k: v for k, v in request.query_params.items() if k not in ("offset", "limit")}
    doc = features.feature_collection(gdf, offset, limit, f"{base_url(request)}/collections/parcels/items",
                                      query, matched)
    if f == "html":
        return templates.TemplateResponse(request, "items.html", {"doc": doc, "lang": lang})
    return JSONResponse(doc, media_type=GEOJSON)


@router.get("/collections/parcels/items/{parcel_id}", responses={200: {"content": {GEOJSON: {}}}})
def parcel_item(parcel_id: str, request: Request, survey: str | None = None,
                ws: Workspace = Depends(workspace), user: User = Depends(current_user)) -> JSONResponse:
    """One parcel with its latest statistics, condition class, capacity and stocking balance."""
    doc = features.one_feature(data.one_parcel(ws, user, survey, parcel_id), parcel_id)
    doc["links"] = [{"href": f"{base_url(request)}/collections/parcels/items/{parcel_id}", "rel": "self",
                     "type": GEOJSON}]
    return JSONResponse(doc, media_type=GEOJSON)


# -- edits --------------------------------------------------------------------------------
def _may_edit(user: User, row: pd.Series | dict) -> None:
    """Herders touch their own group's parcels, officers their soum's, admins any."""
    if user.at_least("admin"):
        return
    if user.role == "officer":
        if user.soum and str(row.get("soum") or "") != user.soum:
            raise PermissionDeniedError(f"officer {user.username!r} edits parcels of soum {user.soum!r} only")
        return
    if user.role == "herder":
        if not user.group or str(row.get("user_group") or "") != user.group:
            raise PermissionDeniedError(f"herder {user.username!r} adds parcels of user group "
                                        f"{user.group!r} only")
        return
    raise PermissionDeniedError("this role cannot edit parcels")


def _props(row: pd.Series) -> dict:
    out = data.feature_properties(row)
    out["geometry_wkt"] = row.geometry.wkt if row.geometry is not None else None
    return out


@router.post("/collections/parcels/items", status_code=201)
def add_parcels(doc: dict = Body(..., description="GeoJSON Feature or FeatureCollection (CRS84)"),
                ws: Workspace = Depends(workspace), user: User = Depends(require("herder"))) -> dict:
    """Add parcels (herders: their group's; officers: their soum's). Each addition is audited."""
    new = features.parcels_from_geojson(doc)
    if user.role == "herder" and user.group:
        new["user_group"] = new["user_group"].fillna(user.group) if "user_group" in new else user.group
    new = data.normalise(new)
    for _, row in new.iterrows():
        _may_edit(user, row)
    current = data.load_parcels(ws)
    clash = set(new["parcel_id"]) & set(current["parcel_id"].astype(str))
    if clash:
        raise ConflictError(f"parcel id(s) {sorted(clash)[:5]} already exist; edit them with PUT instead")
    merged = pd.concat([current, new.to_crs(current.crs or 4326)], ignore_index=True)
    version = data.save_parcels(ws, merged.set_crs(4326, allow_override=True), source="api", user=user)
    for _, row in new.iterrows():
        ws.catalog.audit(user.username, "parcel.add", f"parcel:{row['parcel_id']}", None, _props(row))
    return {"version": version, "added": list(new["parcel_id"])}


@router.put("/collections/parcels/items/{parcel_id}")
def edit_parcel(parcel_id: str, doc: dict = Body(..., description="GeoJSON Feature"),
                ws: Workspace = Depends(workspace), user: User = Depends(require("herder"))) -> dict:
    """Replace one parcel's attributes and geometry; the audit log keeps before and after."""
    new = features.parcels_from_geojson({**doc, "properties": {**(doc.get("properties") or {}),
                                                               "parcel_id": parcel_id}}
                                        if isinstance(doc, dict) else doc)
    if len(new) != 1:
        raise InputError("send exactly one Feature to edit a parcel")
    current = data.load_parcels(ws)
    hit = current.index[current["parcel_id"].astype(str) == parcel_id]
    if len(hit) == 0:
        from belcheer.errors import NotFoundError

        raise NotFoundError(f"no parcel with id {parcel_id!r}")
    before = current.loc[hit[0]]
    _may_edit(user, before)
    row = new.iloc[0]
    _may_edit(user, row)
    updated = current.copy()
    sent = set((doc.get("properties") or {}) if isinstance(doc, dict) else {})
    for col in new.columns:
        if col in sent and col not in ("geometry", "parcel_id", "area_ha"):
            updated.loc[hit[0], col] = row[col]
    updated.loc[hit[0], "geometry"] = row.geometry
    updated.loc[hit[0], "area_ha"] = float(data.normalise(new)["area_ha"].iloc[0])
    version = data.save_parcels(ws, updated, source="api", user=user)
    ws.catalog.audit(user.username, "parcel.edit", f"parcel:{parcel_id}", _props(before),
                     _props(updated.loc[hit[0]]))
    return {"version": version, "edited": parcel_id}


@router.get("/parcels/{parcel_id}/audit")
def parcel_audit(parcel_id: str, ws: Workspace = Depends(workspace),
                 user: User = Depends(require("officer"))) -> list[dict]:
    """Who changed a parcel, when, and what it was before and after."""
    rows = ws.catalog.audit_log(f"parcel:{parcel_id}")
    for r in rows:
        for k in ("before", "after"):
            r[k] = json.loads(r[k]) if r[k] else None
    return rows


@router.post("/parcels/upload", status_code=201)
def upload_parcels(file: UploadFile = File(..., description="GeoPackage, GeoJSON, zipped Shapefile, "
                                                       "FlatGeobuf, KML or CSV with a WKT column"),
                   layer: str | None = Form(None), id_field: str | None = Form(None),
                   mode: Literal["replace", "merge"] = Form("replace", description=(
                       "replace: the file replaces the parcels of the upload's soum (the whole layer "
                       "for an admin naming no soum); merge: it adds parcels and replaces those with "
                       "the same ids")),
                   soum: str | None = Form(None, description="admins: the soum the upload replaces; "
                                                             "officers: their own soum only"),
                   ws: Workspace = Depends(workspace), user: User = Depends(require("officer")),
                   cfg=Depends(settings)) -> dict:
    """Import a parcel layer file as a new version. An officer's file replaces (or merges into)
    their own soum's parcels only; the audit log records the scope and counts."""
    from belcheer.api.uploads import receive_parcel_file

    return receive_parcel_file(ws, cfg, file, user, layer=layer, id_field=id_field, mode=mode, soum=soum)

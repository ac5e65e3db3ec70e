"""Parcels as OGC API – Features, and parcel edits with their audit trail (wiring only)."""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse

from belcheer.api import data, features, parcel_edits
from belcheer.api.auth import User
from belcheer.api.deps import base_url, current_user, require, settings, workspace
from belcheer.api.pages import templates
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
@router.post("/collections/parcels/items", status_code=201)
def add_parcels(doc: dict = Body(..., description="GeoJSON Feature or FeatureCollection (CRS84)"),
                ws: Workspace = Depends(workspace), user: User = Depends(require("herder"))) -> dict:
    """Add parcels (herders: their group's; officers: their soum's). Each addition is audited."""
    return parcel_edits.add_parcels(ws, user, doc)


@router.put("/collections/parcels/items/{parcel_id}")
def edit_parcel(parcel_id: str, doc: dict = Body(..., description="GeoJSON Feature"),
                ws: Workspace = Depends(workspace), user: User = Depends(require("herder"))) -> dict:
    """Replace one parcel's attributes and geometry; the audit log keeps before and after."""
    return parcel_edits.edit_parcel(ws, user, parcel_id, doc)


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

"""The web map, the herders' page, the OGC landing page and the message catalogue (wiring only)."""

from __future__ import annotations

from typing import Literal

import geopandas as gpd
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from belcheer.api import data, snapshot
from belcheer.api.auth import User
from belcheer.api.deps import base_url, current_user, workspace
from belcheer.api.messages import catalogue, lang_or_default
from belcheer.api.pages import VENDOR_DIR, templates
from belcheer.api.responses import attachment
from belcheer.errors import NotFoundError
from belcheer.workspace import Workspace

router = APIRouter(tags=["pages"])


def landing(base: str) -> dict:
    """The OGC API landing page document."""
    return {
        "title": "belcheer", "description": "Drone maps, parcel statistics and carrying capacity of "
                                            "Mongolian pasture and cropland",
        "links": [
            {"href": f"{base}/?f=json", "rel": "self", "type": "application/json"},
            {"href": f"{base}/", "rel": "alternate", "type": "text/html", "title": "web map"},
            {"href": f"{base}/openapi.json", "rel": "service-desc",
             "type": "application/vnd.oai.openapi+json;version=3.0"},
            {"href": f"{base}/docs", "rel": "service-doc", "type": "text/html"},
            {"href": f"{base}/conformance", "rel": "conformance", "type": "application/json"},
            {"href": f"{base}/collections", "rel": "data", "type": "application/json"},
            {"href": f"{base}/stac", "rel": "data", "type": "application/json", "title": "STAC"},
        ],
    }


@router.get("/", response_class=HTMLResponse, responses={200: {"content": {"application/json": {}}}})
def index(request: Request, f: Literal["html", "json"] | None = None,
          lang: Literal["mn", "en"] | None = None) -> Response:
    """The land officers' web map (HTML), or the OGC API landing page (``f=json``)."""
    accept = request.headers.get("accept", "")
    if f == "json" or (f is None and "application/json" in accept and "text/html" not in accept):
        return JSONResponse(landing(base_url(request)))
    return map_page(request, lang)


@router.get("/map", response_class=HTMLResponse)
def map_page(request: Request, lang: Literal["mn", "en"] | None = None) -> HTMLResponse:
    """The land officers' web map."""
    lang = lang_or_default(lang)
    return templates.TemplateResponse(request, "map.html", {
        "lang": lang, "messages": catalogue()[lang], "vendor": (VENDOR_DIR / "maplibre-gl.js").exists()})


@router.get("/herder", response_class=HTMLResponse)
@router.get("/m", response_class=HTMLResponse, include_in_schema=False)
def herder_page(request: Request, lang: Literal["mn", "en"] | None = None,
                parcel: str | None = None) -> HTMLResponse:
    """The herders' phone page: their pasture's condition, capacity and a shareable map."""
    lang = lang_or_default(lang)
    from belcheer.zoning.capacity import coefficients

    return templates.TemplateResponse(request, "herder.html", {
        "lang": lang, "messages": catalogue()[lang], "parcel": parcel or "", "coefficients": coefficients()})


@router.get("/boundaries/{level}.geojson", responses={200: {"content": {"application/geo+json": {}}}})
def boundaries(level: Literal["soum", "aimag"], ws: Workspace = Depends(workspace)) -> Response:
    """Administrative boundaries for the map, if the workspace has them
    (``boundaries/soum.geojson`` / ``boundaries/aimag.geojson``, EPSG:4326)."""
    path = ws.path("boundaries", f"{level}.geojson")
    if not path.is_file():
        raise NotFoundError(f"no {level} boundaries in this workspace; copy a GeoJSON to {path}")
    return Response(path.read_bytes(), media_type="application/geo+json",
                    headers={"Cache-Control": "public, max-age=86400"})


@router.get("/messages.json")
def messages() -> dict:
    """Every user-facing string, Mongolian (``mn``) and English (``en``)."""
    return catalogue()


@router.get("/herder/share.png", response_class=Response, responses={200: {"content": {"image/png": {}}}})
def share_png(parcel: str, lang: Literal["mn", "en"] = "mn", survey: str | None = None,
              ws: Workspace = Depends(workspace), user: User = Depends(current_user)) -> Response:
    """A PNG map of one parcel with its condition in words and a legend, for sharing."""
    report = data.report_for(ws, user, survey)
    hit = report[report["parcel_id"].astype(str) == parcel]
    if hit.empty:
        raise NotFoundError(f"no parcel with id {parcel!r}")
    name = survey or (str(hit["survey"].iloc[0]) if "survey" in hit and hit["survey"].iloc[0] else None)
    product = snapshot.pick_product(ws.catalog.products(name)) if name else None
    props = data.feature_properties(hit.iloc[0])
    png = snapshot.parcel_png(gpd.GeoSeries(hit.geometry.values, crs=4326), props, product, ws.stores, lang)
    return Response(png, media_type="image/png",
                    headers={"Content-Disposition": attachment(f"belcheer-{parcel}.png"),
                             "Cache-Control": "private, max-age=600"})


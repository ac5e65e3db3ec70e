"""Exports for planners: parcels with statistics, rasters clipped to a parcel, prescription maps."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Response

from belcheer.api import data, exports, tiles
from belcheer.api.auth import User
from belcheer.api.deps import current_user, settings, workspace
from belcheer.api.responses import attachment
from belcheer.api.routes.features import _report
from belcheer.errors import InputError, NotFoundError
from belcheer.workspace import Workspace

router = APIRouter(prefix="/export", tags=["exports"])
Fmt = Literal["shp", "gpkg", "geojson", "fgb", "csv", "kml"]


def _send(exp: exports.Export) -> Response:
    return Response(exp.content, media_type=exp.media_type,
                    headers={"Content-Disposition": attachment(exp.filename)})


def _epsg(ws: Workspace, crs: str, survey: str | None) -> int:
    if crs == "4326":
        return 4326
    if survey is None:
        recs = ws.catalog.surveys()
        if not recs:
            raise InputError("crs=utm needs a survey (its UTM zone); pass ?survey=NAME")
        return recs[-1].epsg
    return ws.catalog.survey(survey).epsg


@router.get("/parcels.{fmt}", response_class=Response)
def export_parcels(fmt: Fmt, crs: Literal["4326", "utm"] = "4326", survey: str | None = None,
                   soum: str | None = None, ws: Workspace = Depends(workspace),
                   user: User = Depends(current_user)) -> Response:
    """Parcels with their statistics as Shapefile (zip), GeoPackage, GeoJSON, FlatGeobuf, CSV or KML,
    in EPSG:4326 or the survey's UTM zone."""
    gdf = _report(ws, user, survey)
    if soum is not None:
        gdf = gdf[gdf["soum"].astype(str) == soum]
    return _send(exports.export_parcels(gdf, fmt, _epsg(ws, crs, survey)))


@router.get("/report.pdf", response_class=Response, responses={200: {"content": {"application/pdf": {}}}})
def export_report(survey: str | None = None, soum: str | None = None, lang: Literal["mn", "en"] = "mn",
                  ws: Workspace = Depends(workspace), user: User = Depends(current_user),
                  cfg=Depends(settings)) -> Response:
    """The soum report to print: an A4 PDF (Mongolian by default) with the condition map,
    a table per parcel, the soum roll-up against the NSO-registered herd, method and sources."""
    return _send(exports.soum_report_pdf(ws, _report(ws, user, survey), soum=soum, lang=lang,
                                         nso_data=cfg.nso_data))


@router.get("/raster/{product_id}.tif", response_class=Response,
            responses={200: {"content": {"image/tiff": {}}}})
def export_raster(product_id: str, parcel: str, ws: Workspace = Depends(workspace),
                  user: User = Depends(current_user)) -> Response:
    """A product cut to one parcel, as a Cloud-Optimized GeoTIFF in the product's CRS."""
    product = data.visible_product(ws, user, product_id)
    parcels = data.load_parcels(ws)
    hit = parcels[parcels["parcel_id"].astype(str) == parcel]
    if hit.empty:
        raise NotFoundError(f"no parcel with id {parcel!r}")
    return _send(exports.clip_to_cog(product, ws.stores, hit.geometry.iloc[0], 4326))


@router.get("/zones/{product_id}.{fmt}", response_class=Response)
def export_zones(product_id: str, fmt: Fmt, n_zones: int = Query(3, ge=2, le=9),
                 method: Literal["kmeans", "jenks", "quantile"] = "kmeans",
                 crs: Literal["4326", "utm"] = "4326",
                 mmu_m2: float = Query(100.0, ge=0, le=1e6, description="Minimum part area, m²"),
                 rates: str | None = Query(None, description="Rate per zone, lowest first: 120,100,80"),
                 ws: Workspace = Depends(workspace),
                 user: User = Depends(current_user), cfg=Depends(settings)) -> Response:
    """A management-zone prescription map of an index product: polygons with zone id, mean value
    and hectares (Shapefile zip for machinery terminals, or any other vector format); no part
    below ``mmu_m2``; ``rates`` adds a ``rate`` column."""
    from belcheer.zoning.zones import parse_rates

    rate_list = parse_rates(rates)
    if rate_list is not None and len(rate_list) != n_zones:
        raise InputError(f"rates gives {len(rate_list)} value(s) for {n_zones} zones; give one per zone")
    product = data.visible_product(ws, user, product_id)
    if product.kind.value not in ("index", "biomass"):
        raise InputError(f"zones are made from an index or biomass product, not {product.kind.value!r}")
    tiles.check_product(product, ws.stores, cfg.max_raster_bytes)
    zones = exports.prescription_zones(product, ws.stores, n_zones, method, mmu_m2=mmu_m2, rates=rate_list)
    epsg = 4326 if crs == "4326" else product.epsg
    return _send(exports.export_parcels(zones, fmt, epsg, name=f"zones-{product.name}"))

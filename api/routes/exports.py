"""Exports for planners: parcels with statistics, rasters clipped to a parcel, prescription maps."""

from __future__ import annotations

from typing import Literal

from belcheer.api import data, exports
from belcheer.api.auth import User
from belcheer.api.deps import current_user, workspace
from belcheer.api.routes.features import _report
from fastapi import APIRouter, Depends, Response

from belcheer.errors import InputError, NotFoundError
from belcheer.workspace import Workspace

router = APIRouter(prefix="/export", tags=["exports"])
Fmt = Literal["shp", "gpkg", "geojson", "fgb", "csv", "kml"]


def _send(exp: exports.Export) -> Response:
    return Response(exp.content, media_type=exp.media_type,
                    headers={"Content-Disposition": f'attachment; filename="{exp.filename}"'})


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
    return _send(exports.clip_to_cog(product, ws.root, hit.geometry.iloc[0], 4326))


@router.get("/zones/{survey}.{fmt}", response_class=Response)
def export_zones(survey: str, fmt: Fmt, n_zones: int = 3, index: str = "ndvi",
                 crs: Literal["4326", "utm"] = "utm", ws: Workspace = Depends(workspace),
                 user: User = Depends(current_user)) -> Response:
    """Management zones of a survey as a prescription map (polygons with zone ids)."""
    data.visible_survey(ws, user, survey)
    fn = data._zoning("management_zones")
    if fn is None:
        raise NotFoundError("management zones are not available in this installation yet")
    zones = fn(ws, survey, index=index, n_zones=n_zones)
    if not hasattr(zones, "geometry"):
        raise NotFoundError("the zoning stage returned no zone polygons for this survey")
    return _send(exports.export_parcels(zones, fmt, _epsg(ws, crs, survey), name=f"zones-{survey}"))

"""The workspace as a STAC catalogue: one Collection per survey, one Item per raster product.

Items carry the projection extension (EPSG, shape, transform, bbox in the product's CRS), the
raster extension (data type, nodata, unit per band) and, for spectral products, the electro-optical
extension (band common names, centre wavelengths in µm). Built with pystac on each request.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pystac
from pystac.extensions.eo import Band as EOBand
from pystac.extensions.eo import EOExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension
from rasterio.warp import transform_bounds
from shapely.geometry import box, mapping

from belcheer.catalog import SurveyRecord
from belcheer.models import Product, ProductKind
from belcheer.storage import Stores

COG = "image/tiff; application=geotiff; profile=cloud-optimized"
_COMMON = {"blue", "green", "red", "rededge", "nir"}
_DATATYPES = {d.value for d in DataType}


def _survey_datetime(rec: SurveyRecord) -> datetime:
    if rec.date:
        return datetime.fromisoformat(rec.date).replace(tzinfo=UTC)
    return datetime.fromisoformat(rec.created)


def product_item(product: Product, rec: SurveyRecord, stores: Stores, base: str) -> pystac.Item:
    """A STAC Item for one product COG; asset hrefs point at this server."""
    with stores.open_raster(product) as ds:
        west, south, east, north = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
        shape, transform, native_bbox = [ds.height, ds.width], list(ds.transform)[:6], list(ds.bounds)
        dtypes, nodata, res = ds.dtypes, ds.nodata, abs(ds.transform.a)
    item = pystac.Item(id=product.id, geometry=mapping(box(west, south, east, north)),
                       bbox=[west, south, east, north], datetime=_survey_datetime(rec),
                       properties={"title": f"{rec.name} — {product.name}", "belcheer:kind": product.kind.value,
                                   "belcheer:relative": product.relative, "gsd": res},
                       collection=rec.name)
    href = f"{base}/products/{product.id}/download"
    roles = ["data"]
    asset = pystac.Asset(href=href, media_type=COG, title=product.name, roles=roles)
    item.add_asset("data", asset)
    item.add_asset("tiles", pystac.Asset(href=f"{base}/tiles/{product.id}/tilejson.json",
                                         media_type="application/json", title="TileJSON",
                                         roles=["tiles"]))
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    proj.epsg = product.epsg
    proj.shape = shape
    proj.transform = transform
    proj.bbox = native_bbox
    rbands = []
    for dt in dtypes:
        nd = None if nodata is None else ("nan" if np.isnan(nodata) else float(nodata))
        rbands.append(RasterBand.create(nodata=nd, data_type=DataType(dt) if dt in _DATATYPES else None,
                                        spatial_resolution=res, unit=product.units))
    RasterExtension.ext(asset, add_if_missing=True).bands = rbands
    spectral = [b for b in product.bands if b.center_nm]
    if spectral and product.kind in (ProductKind.ORTHOMOSAIC, ProductKind.REFLECTANCE):
        EOExtension.ext(asset, add_if_missing=True).bands = [
            EOBand.create(name=b.name, common_name=b.name if b.name in _COMMON else None,
                          center_wavelength=b.center_nm / 1000.0,
                          full_width_half_max=(b.bandwidth_nm / 1000.0) if b.bandwidth_nm else None)
            for b in product.bands]
    item.extra_fields["_links"] = [
        _link("self", f"{base}/stac/collections/{rec.name}/items/{product.id}", "application/geo+json"),
        _link("collection", f"{base}/stac/collections/{rec.name}"), _link("parent", f"{base}/stac/collections/{rec.name}"),
        _link("root", f"{base}/stac")]
    return item


def survey_collection(rec: SurveyRecord, items: list[pystac.Item], base: str) -> pystac.Collection:
    """A STAC Collection for one survey, its extent the union of its items."""
    if items:
        bbox = [min(i.bbox[0] for i in items), min(i.bbox[1] for i in items),
                max(i.bbox[2] for i in items), max(i.bbox[3] for i in items)]
    else:
        bbox = [-180.0, -90.0, 180.0, 90.0]
    when = _survey_datetime(rec)
    coll = pystac.Collection(
        id=rec.name, description=f"Drone survey {rec.name} (EPSG:{rec.epsg}) and its products",
        extent=pystac.Extent(pystac.SpatialExtent([bbox]), pystac.TemporalExtent([[when, when]])),
        license="other", title=rec.name)
    coll.extra_fields["_links"] = [
        _link("self", f"{base}/stac/collections/{rec.name}"), _link("root", f"{base}/stac"),
        _link("parent", f"{base}/stac"), _link("items", f"{base}/stac/collections/{rec.name}/items",
                                               "application/geo+json"),
        *[_link("item", f"{base}/stac/collections/{rec.name}/items/{it.id}", "application/geo+json")
          for it in items]]
    return coll


def root_catalog(recs: list[SurveyRecord], base: str) -> dict[str, Any]:
    cat = pystac.Catalog(id="belcheer", title="belcheer surveys",
                         description="Drone surveys of Mongolian pasture and cropland and their products")
    cat.extra_fields["_links"] = [_link("self", f"{base}/stac"), _link("root", f"{base}/stac"),
                                  *[_link("child", f"{base}/stac/collections/{r.name}") for r in recs]]
    return to_dict(cat)


def _link(rel: str, href: str, media_type: str = "application/json") -> dict[str, str]:
    return {"rel": rel, "href": href, "type": media_type}


def to_dict(obj: pystac.STACObject) -> dict[str, Any]:
    """The object's JSON with this server's absolute links (pystac's own link handling assumes files)."""
    links = obj.extra_fields.pop("_links", [])
    d = obj.to_dict(include_self_link=False, transform_hrefs=False)
    d["links"] = links
    d.pop("_links", None)
    return d

"""Files for planners: parcels with statistics as Shapefile, GeoPackage, GeoJSON, FlatGeobuf, CSV
and KML (pyogrio), and rasters clipped to a parcel as Cloud-Optimized GeoTIFF.

Vector exports are in EPSG:4326 or the survey's UTM zone. Shapefile field names are cut to ten
characters; the zip carries ``fields.csv`` mapping each short name to the full one, a ``.prj``
and a ``.cpg`` saying UTF-8, so Cyrillic names survive GDAL, QGIS and ArcGIS.
"""

from __future__ import annotations

import csv
import io
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import rasterio
import rasterio.mask
from rasterio.io import MemoryFile
from shapely.geometry import box, mapping
from shapely.geometry.base import BaseGeometry

from belcheer.cog import to_cog
from belcheer.errors import InputError
from belcheer.models import Product
from belcheer.storage import Stores
from belcheer.workspace import Workspace

#: format → (GDAL driver, file suffix, media type)
VECTOR_FORMATS: dict[str, tuple[str, str, str]] = {
    "shp": ("ESRI Shapefile", ".shp", "application/zip"),
    "gpkg": ("GPKG", ".gpkg", "application/geopackage+sqlite3"),
    "geojson": ("GeoJSON", ".geojson", "application/geo+json"),
    "fgb": ("FlatGeobuf", ".fgb", "application/flatgeobuf"),
    "csv": ("CSV", ".csv", "text/csv; charset=utf-8"),
    "kml": ("KML", ".kml", "application/vnd.google-earth.kml+xml"),
}


@dataclass(frozen=True)
class Export:
    """A file to send: its bytes, media type and suggested name."""

    content: bytes
    media_type: str
    filename: str


def short_field_names(columns: list[str], width: int = 10) -> dict[str, str]:
    """Unique field names of at most ``width`` bytes for each column (Shapefile's dBase limit)."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for col in columns:
        base = col.encode("utf-8")[:width].decode("utf-8", "ignore") or "field"
        name, n = base, 1
        while name.lower() in used:
            suffix = f"_{n}"
            name = base.encode("utf-8")[:width - len(suffix)].decode("utf-8", "ignore") + suffix
            n += 1
        used.add(name.lower())
        out[col] = name
    return out


def _plain(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Drop columns GDAL cannot write (lists, dicts) as JSON text; keep numbers as numbers."""
    gdf = gdf.copy()
    for col in gdf.columns:
        if col == gdf.geometry.name:
            continue
        if gdf[col].dtype == object and gdf[col].map(lambda v: isinstance(v, (list, dict))).any():
            gdf[col] = gdf[col].map(lambda v: None if v is None else str(v))
    return gdf


def export_parcels(gdf: gpd.GeoDataFrame, fmt: str, epsg: int = 4326, name: str = "parcels") -> Export:
    """Parcels (any CRS) written as ``fmt`` in EPSG ``epsg``; KML is always EPSG:4326."""
    if fmt not in VECTOR_FORMATS:
        raise InputError(f"export format {fmt!r} is not offered; choose {', '.join(VECTOR_FORMATS)}")
    driver, suffix, media = VECTOR_FORMATS[fmt]
    if fmt == "kml":
        epsg = 4326
    gdf = _plain(gdf.to_crs(epsg))
    with tempfile.TemporaryDirectory(prefix="belcheer-export-") as tmp:
        path = Path(tmp) / f"{name}{suffix}"
        if fmt == "shp":
            mapping_ = short_field_names([c for c in gdf.columns if c != gdf.geometry.name])
            gdf = gdf.rename(columns=mapping_)
            pyogrio.write_dataframe(gdf, path, driver=driver, encoding="UTF-8")
            with open(Path(tmp) / "fields.csv", "w", encoding="utf-8", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["short", "full"])
                w.writerows([(s, f) for f, s in mapping_.items()])
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                for f in sorted(Path(tmp).iterdir()):
                    zf.write(f, f.name)
            return Export(buf.getvalue(), media, f"{name}.zip")
        if fmt == "csv":
            pyogrio.write_dataframe(gdf, path, driver=driver, layer_options={"GEOMETRY": "AS_WKT"})
        elif fmt == "kml":
            pyogrio.write_dataframe(gdf, path, driver=driver, layer_options={"NameField": "name"}
                                    if "name" in gdf else None)
        else:
            pyogrio.write_dataframe(gdf, path, driver=driver, layer=name)
        return Export(path.read_bytes(), media, path.name)


def clip_to_cog(product: Product, stores: Stores, geometry: BaseGeometry, geometry_crs: int = 4326) -> Export:
    """A product cut to a polygon (pixels touching it kept, the rest nodata) as a COG (read with
    range requests when the product is in S3)."""
    with stores.open_raster(product) as src:
        shape = gpd.GeoSeries([geometry], crs=geometry_crs).to_crs(src.crs).iloc[0]
        if not shape.intersects(box(*src.bounds)):
            raise InputError(f"the parcel does not overlap product {product.name!r}")
        nodata = src.nodata
        if nodata is None:
            nodata = np.nan if np.issubdtype(np.dtype(src.dtypes[0]), np.floating) else 0
        data, transform = rasterio.mask.mask(src, [mapping(shape)], crop=True, all_touched=True,
                                             nodata=nodata)
        profile = src.profile.copy()
    profile.update(driver="GTiff", height=data.shape[1], width=data.shape[2], transform=transform,
                   nodata=nodata, tiled=False, compress=None)
    profile.pop("blockxsize", None)
    profile.pop("blockysize", None)
    with tempfile.TemporaryDirectory(prefix="belcheer-clip-") as tmp:
        out = Path(tmp) / "clip.tif"
        with MemoryFile() as mem:
            with mem.open(**profile) as ds:
                ds.write(data)
            with mem.open() as ds:
                to_cog(ds, out)
        return Export(out.read_bytes(), "image/tiff; application=geotiff; profile=cloud-optimized",
                      f"{product.name}-clip.tif")


def prescription_zones(product: Product, stores: Stores, n_zones: int = 3, method: str = "kmeans",
                       max_pixels: int = 2048 * 2048, mmu_m2: float = 100.0,
                       rates: list[float] | None = None) -> gpd.GeoDataFrame:
    """Management-zone polygons of one index product (zoning stage), in the product's CRS.

    Large rasters are read from an overview so at most ``max_pixels`` are classified: zones for
    machinery are tens of metres wide, far coarser than drone pixels. No part is smaller than
    ``mmu_m2`` (m²); ``rates`` (one per zone, lowest first) add a ``rate`` column.
    """
    import math

    from belcheer.zoning import management_zones, zone_polygons
    from belcheer.zoning.zones import zone_rates

    with stores.open_raster(product) as src:
        scale = max(1.0, (src.width * src.height / max_pixels) ** 0.5)
        shape = (max(1, int(src.height / scale)), max(1, int(src.width / scale)))
        values = src.read(1, out_shape=shape, masked=True).astype("float64").filled(np.nan)
        transform = src.transform * src.transform.scale(src.width / shape[1], src.height / shape[0])
        crs = src.crs
    px_m2 = abs(transform.a * transform.e)
    zones = management_zones(values, method=method, n_classes=n_zones, mask=np.isfinite(values),
                             mmu_pixels=math.ceil(mmu_m2 / px_m2 - 1e-9) if mmu_m2 > 0 else 0)
    return zone_rates(zone_polygons(zones, values, transform, crs, mmu_m2=mmu_m2), rates)


def report_table(gdf: gpd.GeoDataFrame) -> pd.DataFrame:
    """The attribute table without geometry (for summaries)."""
    return pd.DataFrame(gdf.drop(columns=gdf.geometry.name))


def soum_report_pdf(ws: Workspace, report: gpd.GeoDataFrame, *, soum: str | None, lang: str,
                    nso_data: Path | None) -> Export:
    """The soum report (zoning stage) of an already visibility-checked parcel report, as a PDF."""
    from belcheer.zoning.pdf import render_workspace_report
    from belcheer.zoning.registry import livestock_or_none

    survey = str(report["survey"].iloc[0]) if "survey" in report and len(report) and report["survey"].iloc[0] \
        else None
    buf = io.BytesIO()
    render_workspace_report(ws, report, buf, soum=soum, lang=lang, livestock=livestock_or_none(nso_data))
    name = f"report-{soum or survey or 'soum'}-{lang}.pdf"
    return Export(buf.getvalue(), "application/pdf", name)

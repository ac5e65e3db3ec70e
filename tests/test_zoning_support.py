"""Synthetic pasture scenes for the zoning tests (helpers, no tests of their own).

A scene is a few rectangular/irregular parcels in UTM 48N (EPSG:32648) placed inside a real
soum, each with a known NDVI. The raster is rendered at 4× supersampling and averaged to the
output pixels, so each pixel holds the area-weighted mix of what lies in it: the true mean of a
parcel is exactly its NDVI value (plus the known gradient's mean over the polygon).
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from affine import Affine
from rasterio.features import rasterize

from belcheer.models import Product, ProductKind
from belcheer.zoning.rasterout import write_array_cog

EPSG = 32648


def scene_parcels(origin: tuple[float, float], *, n: int = 6, size_m: float = 300.0) -> gpd.GeoDataFrame:
    """``n`` parcels in a row starting at ``origin`` (UTM 48N metres), with Cyrillic names,
    eco zones and livestock; geometry is EPSG:32648."""
    x0, y0 = origin
    geoms, rows = [], []
    zones = ["steppe", "steppe", "desert_steppe", "forest_steppe", "gobi", "steppe"]
    seasons = ["winter", "summer", "spring", "autumn", "all", "winter"]
    for i in range(n):
        x = x0 + i * (size_m + 60.0)
        # an irregular pentagon so edge pixels are partly covered
        g = shapely.Polygon([(x, y0), (x + size_m, y0 + 13.7), (x + size_m - 21.3, y0 + size_m),
                             (x + 0.4 * size_m, y0 + size_m + 37.1), (x + 9.2, y0 + 0.6 * size_m)])
        geoms.append(g)
        rows.append({"parcel_id": f"P{i + 1:02d}", "name": f"Бэлчээр №{i + 1} — Хөх нуур",
                     "land_use": "pasture", "season": seasons[i % len(seasons)],
                     "eco_zone": zones[i % len(zones)], "user_group": "Малчдын бүлэг Алтан",
                     "camel": i, "horse": 10 + i, "cattle": 5, "sheep": 200 + 10 * i, "goat": 150})
    return gpd.GeoDataFrame(rows, geometry=geoms, crs=EPSG)


def render_ndvi(parcels: gpd.GeoDataFrame, values: dict[str, float], *, res: float = 2.0,
                background: float = 0.12, gradient: float = 0.0, pad: float = 100.0,
                nan_box: tuple[float, float, float, float] | None = None,
                ) -> tuple[np.ndarray, Affine]:
    """NDVI array (float32, NaN nodata) on a ``res`` m grid: each parcel its value plus
    ``gradient`` per km eastwards, the background elsewhere; rendered at 4× and averaged."""
    minx, miny, maxx, maxy = parcels.total_bounds
    left, top = np.floor((minx - pad) / res) * res, np.ceil((maxy + pad) / res) * res
    w = int(np.ceil((maxx + pad - left) / res))
    h = int(np.ceil((top - (miny - pad)) / res))
    ss = 4
    fine_t = Affine(res / ss, 0, left, 0, -res / ss, top)
    ids = rasterize([(g, i + 1) for i, g in enumerate(parcels.geometry)], out_shape=(h * ss, w * ss),
                    transform=fine_t, fill=0, dtype="int32")
    lut = np.array([background] + [values[p] for p in parcels["parcel_id"]], dtype="float64")
    fine = lut[ids]
    if gradient:
        xs = left + (np.arange(w * ss) + 0.5) * res / ss
        fine = fine + (ids > 0) * (gradient * (xs - left) / 1000.0)[None, :]
    arr = fine.reshape(h, ss, w, ss).mean(axis=(1, 3)).astype("float32")
    t = Affine(res, 0, left, 0, -res, top)
    if nan_box is not None:
        c0, r0 = ~t @ (nan_box[0], nan_box[3])
        c1, r1 = ~t @ (nan_box[2], nan_box[1])
        arr[int(r0):int(r1), int(c0):int(c1)] = np.nan
    return arr, t


def true_means(parcels: gpd.GeoDataFrame, values: dict[str, float], gradient: float, left: float) -> dict[str, float]:
    """Exact mean NDVI of each parcel: its value + gradient × mean easting (km) over the polygon."""
    out = {}
    for pid, g in zip(parcels["parcel_id"], parcels.geometry, strict=True):
        out[pid] = values[pid] + gradient * (g.centroid.x - left) / 1000.0
    return out


def add_survey(ws, name: str, date: str, arr: np.ndarray, transform: Affine, *, index: str = "ndvi") -> Product:
    """Register a survey (no frames) with one INDEX product written as a COG."""
    manifest = ws.manifest_path(name)
    ws.catalog.add_survey(name, manifest, EPSG, date, {"synthetic": True}, replace=True)
    path = Path(ws.product_path(name, index))
    write_array_cog(arr, path, transform=transform, crs=f"EPSG:{EPSG}", dtype="float32", nodata=float("nan"))
    return ws.add_product(Product(id="", survey=name, kind=ProductKind.INDEX, name=index, uri=path,
                                  epsg=EPSG, units="", metadata={"synthetic": True}))

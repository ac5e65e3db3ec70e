"""Writing the ground truth: COGs, tables and vector layers a test compares products against.

All outputs are in EPSG:32648 (UTM 48N) metres unless a column says lon/lat (WGS 84 degrees).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
from exactextract import exact_extract
from odc.geo.geobox import GeoBox
from shapely.geometry import Polygon, box

from belcheer.cog import cog_writer
from belcheer.fileio import atomic_path
from belcheer.simulate.flight import LonLatOf
from belcheer.simulate.spectra import BANDS, WAVELENGTHS_NM, Cover, ndvi

#: biomass–NDVI relation of the simulated field quadrats, kg dry matter per hectare:
#: ``B = BIOMASS_A · exp(BIOMASS_B · NDVI)``, measured with multiplicative log-normal noise
#: of σ ``BIOMASS_NOISE`` (clipping, drying and weighing error).
BIOMASS_A = 90.0
BIOMASS_B = 3.6
BIOMASS_NOISE = 0.12


def biomass_from_ndvi(ndvi_value: np.ndarray | float) -> np.ndarray | float:
    """True dry biomass (kg DM/ha) of the simulated steppe at a given NDVI."""
    return BIOMASS_A * np.exp(BIOMASS_B * np.asarray(ndvi_value))


#: GDAL block cache while writing, MB: GDAL's default (5 % of RAM) balloons memory on big hosts
_GDAL_ENV = {"GDAL_CACHEMAX": 64}


@contextlib.contextmanager
def _cog_writer(path: Path, geobox: GeoBox, count: int, dtype: str, nodata=None) -> Iterator:
    """Yield an open, tiled GeoTIFF dataset on ``geobox``; on exit it becomes the COG ``path``
    (ZSTD level 1: the truth rasters are large and only read back by tests and benchmarks)."""
    h, w = geobox.shape
    profile = {"width": w, "height": h, "count": count, "dtype": dtype, "crs": str(geobox.crs),
               "transform": geobox.transform, "nodata": nodata}
    with rasterio.Env(**_GDAL_ENV), cog_writer(path, profile, compress="ZSTD", level=1, predictor=False,
                                               overview_resampling=None) as dst:
        yield dst


def write_reflectance_cog(path: Path, reflectance_u16: np.ndarray, geobox: GeoBox, scale: float) -> Path:
    """Five-band float32 reflectance COG (band descriptions blue…nir, ``wavelength_nm`` tags)."""
    with _cog_writer(path, geobox, len(BANDS), "float32") as dst:
        for i, b in enumerate(BANDS, 1):
            dst.write(reflectance_u16[i - 1] / np.float32(scale), i)
            dst.set_band_description(i, b)
            dst.update_tags(i, name=b, wavelength_nm=WAVELENGTHS_NM[b], units="reflectance")
        dst.update_tags(kind="reflectance", source="belcheer.simulate truth",
                        bands=",".join(BANDS),
                        wavelengths_nm=",".join(f"{WAVELENGTHS_NM[b]:g}" for b in BANDS))
    return path


def write_cover_cog(path: Path, cover_u16: np.ndarray, geobox: GeoBox, scale: float,
                    nodata_u16: int) -> Path:
    """Three-band float32 fractional-cover COG (green, dry, bare; 0…1, NaN where the ground is
    not vegetation or soil: water, gers, roofs, targets)."""
    names = ("green", "dry", "bare")
    with _cog_writer(path, geobox, 3, "float32", float("nan")) as dst:
        for i, name in enumerate(names, 1):
            band = cover_u16[i - 1]
            dst.write(np.where(band == nodata_u16, np.float32(np.nan), band / np.float32(scale)), i)
            dst.set_band_description(i, name)
        dst.update_tags(kind="cover", source="belcheer.simulate truth", bands=",".join(names),
                        units="fraction of the pixel")
    return path


def ndvi_of_truth(reflectance_u16: np.ndarray, scale: float, block_rows: int = 512) -> np.ndarray:
    """Per-pixel NDVI of the truth, float32 (computed in row blocks to bound temporaries)."""
    red, nir = reflectance_u16[BANDS.index("red")], reflectance_u16[BANDS.index("nir")]
    out = np.empty(red.shape, np.float32)
    for r0 in range(0, red.shape[0], block_rows):
        sl = slice(r0, r0 + block_rows)
        out[sl] = ndvi(red[sl] / np.float32(scale), nir[sl] / np.float32(scale))
    return out


def write_single_cog(path: Path, data: np.ndarray, geobox: GeoBox, description: str, nodata=None,
                     **tags) -> Path:
    """One-band COG of ``data`` on ``geobox`` with a band description and dataset tags."""
    with _cog_writer(path, geobox, 1, str(data.dtype), nodata) as dst:
        dst.write(data, 1)
        dst.set_band_description(1, description)
        dst.update_tags(**{k: str(v) for k, v in tags.items()})
    return path


def parcel_truth(parcels: gpd.GeoDataFrame, reflectance_path: Path, ndvi_path: Path,
                 degraded_ids: tuple[str, ...], cover_path: Path | None = None) -> pd.DataFrame:
    """Exact area-weighted mean reflectance per band and mean NDVI per parcel (exactextract:
    each pixel weighted by the fraction of it inside the parcel); with ``cover_path`` also
    ``green_cover``, ``dry_cover``, ``bare_cover``: shares (0…1) of the parcel's ground-cover
    area (water, gers, roofs and targets left out)."""
    # a small read window keeps memory modest (exactextract's default holds 30 M cells)
    kw = {"include_cols": ["parcel_id"], "output": "pandas", "max_cells_in_memory": 2_000_000}
    refl = exact_extract(str(reflectance_path), parcels, ["mean"], **kw)
    nd = exact_extract(str(ndvi_path), parcels, ["mean"], **kw)
    out = pd.DataFrame({"parcel_id": parcels.parcel_id.to_numpy(), "name": parcels.name.to_numpy(),
                        "land_use": parcels.land_use.to_numpy(),
                        "area_ha": parcels.geometry.area.to_numpy() / 1e4})
    for i, b in enumerate(BANDS, 1):
        col = f"band_{i}_mean" if f"band_{i}_mean" in refl else f"{b}_mean"
        out[b] = refl[col].to_numpy()
    out["ndvi"] = nd["mean"].to_numpy()
    if cover_path is not None:
        cov = exact_extract(str(cover_path), parcels, ["mean"], **kw)
        for i, name in enumerate(("green", "dry", "bare"), 1):
            col = f"band_{i}_mean" if f"band_{i}_mean" in cov else f"{name}_mean"
            out[f"{name}_cover"] = cov[col].to_numpy()
    out["degraded"] = out.parcel_id.isin(degraded_ids)
    return out


def quadrats(parcels: gpd.GeoDataFrame, ndvi_img: np.ndarray, landcover: np.ndarray,
             geobox: GeoBox, n: int, rng: np.random.Generator, lonlat_of: LonLatOf,
             within: Polygon | None = None) -> pd.DataFrame:
    """Field biomass samples: 1 m × 1 m quadrats on pasture, aligned to the truth grid, with the
    quadrat's true mean NDVI, true biomass and the 'measured' (noisy) dry weight, kg DM/ha.
    Quadrats lie ``within`` (the flown square; default the truth grid): pastures reach beyond."""
    res = float(geobox.resolution.x)
    left, top = geobox.transform.c, geobox.transform.f
    k = int(round(1.0 / res))
    area = within if within is not None else box(left, top - geobox.shape[0] * res,
                                                 left + geobox.shape[1] * res, top)
    past = parcels[parcels.land_use == "pasture"].clip(area)
    minx, miny, maxx, maxy = past.total_bounds
    rows: list[dict[str, object]] = []
    tries = 0
    while len(rows) < n and tries < 50 * n:
        tries += 1
        x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        c0 = int((x - left) / res)
        r0 = int((top - y) / res)
        x0, y1 = left + c0 * res, top - r0 * res
        sq = box(x0, y1 - k * res, x0 + k * res, y1)
        hit = past[past.contains(sq)]
        if hit.empty:
            continue
        lc = landcover[r0:r0 + k, c0:c0 + k]
        if not np.all(lc == Cover.PASTURE):
            continue
        nd = float(np.nanmean(ndvi_img[r0:r0 + k, c0:c0 + k]))
        true_b = float(biomass_from_ndvi(nd))
        cxq, cyq = x0 + k * res / 2, y1 - k * res / 2
        lon, lat = lonlat_of(cxq, cyq)
        rows.append({"quadrat_id": f"Q{len(rows) + 1:02d}", "parcel_id": hit.parcel_id.iloc[0],
                     "x": cxq, "y": cyq, "lon": lon, "lat": lat, "size_m": k * res,
                     "ndvi_true": nd, "biomass_true_kg_ha": true_b,
                     "dry_weight_kg_ha": true_b * float(np.exp(rng.normal(0, BIOMASS_NOISE)))})
    return pd.DataFrame(rows)


def write_csv(path: Path, df: pd.DataFrame) -> Path:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.12g")
    return path


def write_gpkg(path: Path, gdf: gpd.GeoDataFrame, layer: str) -> Path:
    with atomic_path(path) as tmp:
        gdf.to_file(tmp, layer=layer, driver="GPKG", engine="pyogrio")
    return path

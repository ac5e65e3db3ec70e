"""Management zones within crop fields: k-means, Jenks natural breaks or equal-area (quantile)
classes on one or more indices, a minimum mapping unit, and smoothed polygons exported as a
prescription Shapefile (zip) for variable-rate machinery.

Zone ids run 1…n from the lowest to the highest mean of the first index; 0 = no data.
"""

from __future__ import annotations

import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import rasterio
import shapely
from rasterio.features import geometry_mask, shapes, sieve

from belcheer.errors import InputError, ProcessingError
from belcheer.fileio import atomic_path

METHODS = ("kmeans", "jenks", "quantile")
#: Pixels used to fit k-means (all pixels are then labelled).
FIT_SAMPLE = 100_000
#: Jenks breaks are fitted on this many evenly spaced quantiles of the values: Fisher-Jenks is
#: O(n²k) and mapclassify runs it in pure Python without numba.
JENKS_SAMPLE = 256


def management_zones(values: Any, *, method: str = "kmeans", n_classes: int = 5, mask: Any = None,
                     mmu_pixels: int = 0, seed: int = 0) -> np.ndarray:
    """Zone id per pixel (uint8, 1…n_classes, 0 = no data) of ``values`` — a 2-D array of one
    index or a 3-D (index, row, col) stack. ``jenks`` and ``quantile`` use the first index;
    ``kmeans`` uses all (standardised). Regions smaller than ``mmu_pixels`` are merged into
    their largest neighbour (rasterio sieve)."""
    if method not in METHODS:
        raise InputError(f"unknown zoning method {method!r}; use one of {', '.join(METHODS)}")
    if not 2 <= n_classes <= 32:
        raise InputError(f"n_classes must be between 2 and 32, got {n_classes}")
    stack = np.asarray(values, dtype="float64")
    if stack.ndim == 2:
        stack = stack[None]
    if stack.ndim != 3:
        raise InputError(f"values must be 2-D or 3-D, got shape {stack.shape}")
    valid = np.all(np.isfinite(stack), axis=0)
    if mask is not None:
        valid &= np.asarray(mask, dtype=bool)
    n_valid = int(valid.sum())
    if n_valid < n_classes:
        raise ProcessingError(f"only {n_valid} valid pixel(s) for {n_classes} zones; use fewer classes "
                              "or a larger field")
    feats = stack[:, valid].T  # (pixels, indices)
    rng = np.random.default_rng(seed)
    sample = feats[rng.choice(len(feats), min(FIT_SAMPLE, len(feats)), replace=False)]
    if method == "kmeans":
        # imported here, not at module level: scikit-learn and mapclassify (which pulls in
        # matplotlib) take ≈ 2 s to import, a cost `import belcheer.zoning` should not carry
        from sklearn.cluster import KMeans

        mu, sd = sample.mean(axis=0), sample.std(axis=0)
        sd[sd == 0] = 1.0
        km = KMeans(n_clusters=n_classes, n_init=4, random_state=seed).fit((sample - mu) / sd)
        labels = km.predict((feats - mu) / sd)
        centre = km.cluster_centers_[:, 0] * sd[0] + mu[0]
        order = np.argsort(np.argsort(centre))  # rank of each cluster by its first-index centre
        zone = order[labels] + 1
    else:
        import mapclassify  # lazily, see the k-means branch

        x = feats[:, 0]
        if method == "jenks":
            qs = np.quantile(x, np.linspace(0.0, 1.0, JENKS_SAMPLE), method="inverted_cdf")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "Numba not installed"
                bins = np.asarray(mapclassify.FisherJenks(qs, k=n_classes).bins)
            # split halfway between a class's top sample and the next class's bottom sample,
            # so pixels between sampled quantiles go to the nearer class
            breaks = [(b + qs[qs > b].min()) / 2 if (qs > b).any() else b for b in bins[:-1]]
        else:
            breaks = list(np.asarray(mapclassify.Quantiles(x, k=n_classes).bins)[:-1])
        zone = np.searchsorted(np.asarray(breaks), x, side="left") + 1
    out = np.zeros(valid.shape, dtype="uint8")
    out[valid] = zone.astype("uint8")
    if mmu_pixels > 1:
        out = sieve(out, size=int(mmu_pixels), mask=valid, connectivity=8)
        out[~valid] = 0
    return out


def zone_polygons(zones: np.ndarray, values: Any, transform: Any, crs: Any, *,
                  smooth: float | None = None) -> gpd.GeoDataFrame:
    """Polygons of each zone (dissolved per zone id) with the zone's mean of each index
    (``mean`` for the first, ``mean_<i>`` for others), area in hectares (CRS must be metric)
    and geometry simplified by ``smooth`` (CRS units; default half a pixel) to remove the
    pixel staircase."""
    stack = np.asarray(values, dtype="float64")
    if stack.ndim == 2:
        stack = stack[None]
    polys = [(shapely.geometry.shape(g), int(v))
             for g, v in shapes(zones, mask=zones > 0, transform=transform, connectivity=8)]
    if not polys:
        return gpd.GeoDataFrame({"zone": [], "mean": [], "area_ha": []}, geometry=[], crs=crs)
    frame = gpd.GeoDataFrame({"zone": [v for _, v in polys]}, geometry=[g for g, _ in polys], crs=crs)
    frame = frame.dissolve(by="zone", as_index=False)
    tol = smooth if smooth is not None else abs(transform.a) / 2
    frame["geometry"] = frame.geometry.simplify(tol, preserve_topology=True)
    for i in range(stack.shape[0]):
        col = "mean" if i == 0 else f"mean_{i}"
        frame[col] = [float(np.nanmean(stack[i][zones == z])) for z in frame["zone"]]
    frame["area_ha"] = frame.geometry.area / 1e4
    return frame


def parcel_zones(raster: str | Path, parcels: gpd.GeoDataFrame, *, method: str = "kmeans",
                 n_classes: int = 5, mmu_m2: float = 0.0, land_use: str | None = "cropland",
                 bands: tuple[int, ...] = (1,), seed: int = 0) -> gpd.GeoDataFrame:
    """Management zones inside each field (parcels with ``land_use`` — all if None) of a
    raster (index bands ``bands``): polygons with parcel_id, zone, means and area (ha), in the
    raster's CRS. ``mmu_m2`` is the minimum mapping unit in m²."""
    sel = parcels if land_use is None else parcels[parcels["land_use"] == land_use]
    out = []
    with rasterio.open(raster) as src:
        local = sel.to_crs(src.crs.to_wkt())
        px_area = abs(src.transform.a * src.transform.e)
        for pid, geom in zip(local["parcel_id"], local.geometry, strict=True):
            win = rasterio.windows.from_bounds(*geom.bounds, transform=src.transform).round_offsets().round_lengths()
            win = win.intersection(rasterio.windows.Window(0, 0, src.width, src.height))
            if win.width < 1 or win.height < 1:
                continue
            arr = np.ma.filled(src.read(list(bands), window=win, masked=True).astype("float64"), np.nan)
            t = src.window_transform(win)
            inside = geometry_mask([geom], out_shape=arr.shape[1:], transform=t, invert=True)
            try:
                z = management_zones(arr, method=method, n_classes=n_classes, mask=inside,
                                     mmu_pixels=int(round(mmu_m2 / px_area)), seed=seed)
            except ProcessingError:
                continue
            polys = zone_polygons(z, arr, t, src.crs.to_wkt())
            polys["geometry"] = polys.geometry.intersection(geom)
            polys.insert(0, "parcel_id", pid)
            out.append(polys)
        crs = src.crs.to_wkt()
    if not out:
        return gpd.GeoDataFrame({"parcel_id": [], "zone": [], "mean": [], "area_ha": []}, geometry=[], crs=crs)
    return gpd.GeoDataFrame(pd.concat(out, ignore_index=True), geometry="geometry", crs=crs)


def export_prescription(zones: gpd.GeoDataFrame, path: str | Path, *, layer: str = "zones") -> Path:
    """Write zone polygons as a zipped Shapefile (UTF-8 .cpg, WGS 84) for machinery terminals."""
    path = Path(path)
    frame = zones.to_crs(4326)
    with tempfile.TemporaryDirectory() as tmpdir:
        shp = Path(tmpdir) / f"{layer}.shp"
        pyogrio.write_dataframe(frame, shp, driver="ESRI Shapefile", encoding="UTF-8")
        with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for f in sorted(Path(tmpdir).iterdir()):
                zf.write(f, arcname=f.name)
    return path

"""Management zones within crop fields: k-means, Jenks natural breaks or equal-area (quantile)
classes on one or more indices, a minimum mapping unit, and smoothed polygons exported as a
prescription Shapefile (zip) for variable-rate machinery.

Zone ids run 1…n from the lowest to the highest mean of the first index; 0 = no data.
"""

from __future__ import annotations

import math
import tempfile
import warnings
import zipfile
from collections.abc import Sequence
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
        # 8-connected: with 4-connectivity GDAL's sieve leaves speckle whose neighbours are all
        # small; regions that only touch diagonally are merged as polygons in zone_polygons
        out = sieve(out, size=int(mmu_pixels), mask=valid, connectivity=8)
        # then 4-connected, as zone_polygons traces regions: pieces joined only at a corner
        # now have large neighbours to merge into
        out = sieve(out, size=int(mmu_pixels), mask=valid, connectivity=4)
        out[~valid] = 0
    return out


#: Vertices allowed per zone feature (all its parts and holes): machinery terminals choke on
#: staircase outlines with thousands of points; simplification is coarsened until zones fit.
MAX_VERTICES = 2000


def _merge_small_parts(parts: gpd.GeoDataFrame, mmu: float) -> tuple[gpd.GeoDataFrame, int]:
    """Merge every part smaller than ``mmu`` (CRS units²) into the neighbour it shares the
    longest edge with (taking that neighbour's zone); parts with no neighbour are dropped.
    Returns the parts and how many were dropped. Parts must form a coverage (no overlaps).

    Works in rounds, each merging all small parts at once (one union per receiving part), so a
    large part taking many slivers is rebuilt once per round, not once per sliver."""
    geoms = np.asarray(parts.geometry.to_numpy(), dtype=object)
    zone = parts["zone"].to_numpy()
    keep = ~(shapely.is_empty(geoms) | shapely.is_missing(geoms))
    geoms, zone = geoms[keep], zone[keep]
    dropped = 0
    while True:
        area = shapely.area(geoms)
        small = np.flatnonzero(area < mmu)
        if small.size == 0:
            break
        tree = shapely.STRtree(geoms)
        src, dst = tree.query(geoms[small], predicate="intersects")
        src = small[src]
        pairs = src != dst
        src, dst = src[pairs], dst[pairs]
        shared = shapely.length(shapely.intersection(shapely.boundary(geoms[src]),
                                                     shapely.boundary(geoms[dst])))
        target = np.full(len(geoms), -1)
        best = np.zeros(len(geoms))
        is_small = area < mmu
        # a small part goes to its longest-edge neighbour; small-to-small only when it has no
        # large neighbour, and then only into a part that is not itself moving this round
        for prefer_large in (True, False):
            for a, b, ln in zip(src, dst, shared, strict=True):
                if ln <= 0 or (prefer_large and is_small[b]) or (target[a] >= 0 and prefer_large is False):
                    continue
                if not prefer_large and target[b] >= 0:
                    continue
                if ln > best[a]:
                    best[a], target[a] = ln, b
        moving = small[target[small] >= 0]
        lonely = small[target[small] < 0]
        # small parts that only touch other small parts that are moving wait for the next round
        lonely = np.array([i for i in lonely if not any(shared[(src == i)] > 0)], dtype=int)
        dropped += len(lonely)
        if moving.size == 0 and lonely.size == 0:
            break
        groups: dict[int, list[int]] = {}
        for i in moving:
            groups.setdefault(int(target[i]), []).append(int(i))
        for t, members in groups.items():
            merged = shapely.union_all(geoms[[t, *members]])
            if merged.geom_type != "Polygon":  # float noise may split off a speck: keep the body
                merged = max(merged.geoms, key=lambda g: g.area)
            geoms[t] = merged
        alive = np.ones(len(geoms), bool)
        alive[moving] = False
        alive[lonely] = False
        geoms, zone = geoms[alive], zone[alive]
    out = gpd.GeoDataFrame({"zone": zone}, geometry=list(geoms), crs=parts.crs)
    return out, dropped


def _simplify(geoms: np.ndarray, tol: float) -> np.ndarray:
    """Topology-preserving simplification of a polygon coverage: neighbours keep one shared
    edge (no gaps, no overlaps). GEOS's coverage simplifier where shapely has it (≥ 2.1),
    else each polygon on its own with ``preserve_topology``."""
    if tol <= 0:
        return geoms
    if hasattr(shapely, "coverage_simplify"):
        # coverage_simplify takes the square root of the removed triangles' area; a pixel
        # staircase is removed at about this value for the same tolerance
        return np.asarray(shapely.coverage_simplify(geoms, tol, simplify_boundary=True))
    return np.asarray(shapely.simplify(geoms, tol, preserve_topology=True))


def zone_polygons(zones: np.ndarray, values: Any, transform: Any, crs: Any, *,
                  smooth: float | None = None, mmu_m2: float = 0.0, clip: Any = None,
                  max_vertices: int = MAX_VERTICES) -> gpd.GeoDataFrame:
    """Polygons of each zone (one feature per zone id) with the zone's mean of each index
    (``mean`` for the first, ``mean_<i>`` for others), area in hectares, ``parts`` and
    ``vertices``; the CRS must be metric (metres).

    Raster regions (4-connected, as sieved) become polygons, cut by ``clip`` (a polygon in the
    same CRS) when given; every part smaller than ``mmu_m2`` (m²) is merged into the
    neighbour it shares the longest edge with, or dropped when it has none (count in
    ``attrs["dropped_parts"]``), so no part of the result is below the minimum mapping unit.
    Outlines are simplified as a coverage (shared edges stay shared) by ``smooth`` metres
    (default half a pixel), coarser if needed until no feature has more than ``max_vertices``."""
    stack = np.asarray(values, dtype="float64")
    if stack.ndim == 2:
        stack = stack[None]
    polys = [(shapely.geometry.shape(g), int(v))
             for g, v in shapes(zones, mask=zones > 0, transform=transform, connectivity=4)]
    cols = {"zone": [], "mean": [], "area_ha": [], "parts": [], "vertices": []}
    if not polys:
        return gpd.GeoDataFrame(cols, geometry=[], crs=crs)
    parts = gpd.GeoDataFrame({"zone": [v for _, v in polys]}, geometry=[g for g, _ in polys], crs=crs)
    if clip is not None:
        parts["geometry"] = parts.geometry.intersection(clip)
        parts = parts[~parts.geometry.is_empty].explode(index_parts=False)
        parts = parts[parts.geom_type == "Polygon"].reset_index(drop=True)
    mmu = float(mmu_m2)
    dropped = 0
    if mmu > 0:
        parts, dropped = _merge_small_parts(parts, mmu)
    base = parts.geometry.to_numpy()
    tol = smooth if smooth is not None else abs(transform.a) / 2
    last = None
    for _ in range(6):
        simple = gpd.GeoDataFrame({"zone": parts["zone"].to_numpy()}, geometry=_simplify(base, tol),
                                  crs=crs)
        simple = simple[~simple.geometry.is_empty & simple.geometry.notna()]
        if mmu > 0:  # simplification moves edges: a part may now be a little under the MMU
            simple, more = _merge_small_parts(simple.reset_index(drop=True), mmu)
            dropped += more
        frame = simple.dissolve(by="zone", as_index=False)
        nverts = shapely.get_num_coordinates(frame.geometry.to_numpy())
        worst = int(nverts.max(initial=0))
        # many parts (no MMU) cannot be simplified away: stop once doubling stops helping
        if worst <= max_vertices or tol <= 0 or (last is not None and worst > 0.9 * last):
            break
        last, tol = worst, tol * 2
    frame["geometry"] = shapely.make_valid(frame.geometry.to_numpy())
    for i in range(stack.shape[0]):
        col = "mean" if i == 0 else f"mean_{i}"
        frame[col] = [float(np.nanmean(stack[i][zones == z])) for z in frame["zone"]]
    frame["area_ha"] = frame.geometry.area / 1e4
    frame["parts"] = shapely.get_num_geometries(frame.geometry.to_numpy())
    frame["vertices"] = shapely.get_num_coordinates(frame.geometry.to_numpy())
    frame.attrs["dropped_parts"] = dropped
    return frame


def zone_rates(zones: gpd.GeoDataFrame, rates: Sequence[float] | None) -> gpd.GeoDataFrame:
    """Add a ``rate`` column (application rate per zone, in the user's unit, e.g. kg/ha) from
    ``rates`` listed for zones 1…n in order (zone 1 = lowest index mean). ``None`` → unchanged."""
    if rates is None:
        return zones
    rates = [float(r) for r in rates]
    n = int(zones["zone"].max()) if len(zones) else 0
    if len(rates) < n:
        raise InputError(f"{len(rates)} rate(s) given for {n} zones; give one rate per zone, "
                         "lowest zone first (e.g. --rates 120,100,80)")
    out = zones.copy()
    out["rate"] = [rates[int(z) - 1] for z in out["zone"]]
    return out


def parse_rates(text: str | None) -> list[float] | None:
    """``"120,100,80"`` → [120.0, 100.0, 80.0]; blank → None; anything else → InputError."""
    if text is None or not str(text).strip():
        return None
    try:
        rates = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise InputError(f"rates {text!r} are not numbers; give e.g. --rates 120,100,80") from None
    if any(not np.isfinite(r) or r < 0 for r in rates):
        raise InputError(f"rates {text!r} must be finite and ≥ 0")
    return rates


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
                                     mmu_pixels=math.ceil(mmu_m2 / px_area - 1e-9), seed=seed)
            except ProcessingError:
                continue
            polys = zone_polygons(z, arr, t, src.crs.to_wkt(), mmu_m2=mmu_m2, clip=geom)
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

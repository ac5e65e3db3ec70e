"""Exact, coverage-weighted zonal statistics per parcel, with the ``exactextract`` library.

Parcels are reprojected to the raster's CRS, split spatially into groups (by the raster block
of their centroid), and each group is run through exactextract on an in-memory window of the
raster that just covers it. The windows lie on the raster's own pixel grid, so the numbers are
exactly those of one exactextract call over the whole file; memory is bounded by the window
size times the number of workers. Groups run as Dask tasks (threads by default; exactextract
holds the GIL while it computes, so ``scheduler="processes"`` or a distributed cluster is
what gives real parallelism on large jobs).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Any

import dask
import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
from exactextract import exact_extract
from exactextract.raster import NumPyRasterSource
from rasterio.windows import Window

from belcheer.errors import CRSError, InputError, NotFoundError
from belcheer.models import ProductKind
from belcheer.progress import ProgressCallback, no_progress
from belcheer.workspace import Workspace

#: The statistics computed by default (all coverage-weighted; ``count`` is the number of valid
#: pixels weighted by the fraction of each covered by the parcel).
DEFAULT_STATS: tuple[str, ...] = ("mean", "median", "std", "min", "max", "p10", "p25", "p75", "p90",
                                  "count", "valid_fraction")
#: Our stat names → exactextract operations.
_OPS: dict[str, str] = {"mean": "mean", "median": "median", "std": "stdev", "min": "min", "max": "max",
                        "sum": "sum", "count": "count", "majority": "majority", "minority": "minority",
                        "variety": "variety"}
#: Target window edge, pixels, of one group (windows grow to hold the group's largest parcel).
BLOCK_PX = 2048


def _op(stat: str) -> str:
    if stat in _OPS:
        return _OPS[stat]
    if stat.startswith("p") and stat[1:].isdigit() and 0 < int(stat[1:]) < 100:
        return f"quantile(q={int(stat[1:]) / 100})"
    raise InputError(f"unknown statistic {stat!r}; use any of {', '.join(DEFAULT_STATS)}, sum, "
                     "majority, minority, variety or pNN (percentile NN)")


def _column(stat: str) -> str:
    """exactextract's output column for one of our stats."""
    op = _op(stat)
    if op.startswith("quantile"):
        return f"quantile_{int(stat[1:])}"
    return op


def _extract_group(raster: str, band: int, wkb: list[bytes], ids: list[str], window: tuple[int, int, int, int],
                   ops: list[str], categorical: bool) -> pd.DataFrame:
    """Run exactextract for one group of parcels on one raster window (pure of side effects)."""
    col_off, row_off, width, height = window
    with rasterio.open(raster) as src:
        arr = src.read(band, window=Window(col_off, row_off, width, height))
        t = src.window_transform(Window(col_off, row_off, width, height))
        nodata = src.nodata
        wkt = src.crs.to_wkt()
    if nodata is not None and np.issubdtype(arr.dtype, np.integer):
        nodata = int(nodata)  # exactextract wants the nodata value in the raster's own type
    xmin, ymax = t.c, t.f
    xmax, ymin = xmin + width * t.a, ymax + height * t.e
    rsrc = NumPyRasterSource(arr, xmin, ymin, xmax, ymax, nodata=nodata, srs_wkt=wkt)
    feats = gpd.GeoDataFrame({"parcel_id": ids}, geometry=shapely.from_wkb(wkb), crs=wkt)
    all_ops = list(ops) + (["unique", "frac"] if categorical else [])
    return exact_extract(rsrc, feats, all_ops, include_cols=["parcel_id"], output="pandas")


def _groups(geoms: np.ndarray, transform: Any, shape: tuple[int, int],
            block_px: int) -> list[tuple[np.ndarray, tuple[int, int, int, int]]]:
    """Parcels (positions) grouped by the raster block of their centroid, with each group's window."""
    inv = ~transform
    bounds = shapely.bounds(geoms)
    cx = (bounds[:, 0] + bounds[:, 2]) / 2
    cy = (bounds[:, 1] + bounds[:, 3]) / 2
    col, row = inv @ (cx, cy)
    key = (np.floor(np.asarray(row) / block_px).astype(np.int64) * 1_000_003
           + np.floor(np.asarray(col) / block_px).astype(np.int64))
    out = []
    for k in np.unique(key):
        idx = np.flatnonzero(key == k)
        b = bounds[idx]
        # pixel window covering every parcel of the group, clipped to the raster, on its grid
        c0, r0 = inv @ (b[:, 0].min(), b[:, 3].max())
        c1, r1 = inv @ (b[:, 2].max(), b[:, 1].min())
        c0, c1 = sorted((c0, c1))
        r0, r1 = sorted((r0, r1))
        c0 = max(int(math.floor(c0)) - 1, 0)
        r0 = max(int(math.floor(r0)) - 1, 0)
        c1 = min(int(math.ceil(c1)) + 1, shape[1])
        r1 = min(int(math.ceil(r1)) + 1, shape[0])
        if c1 <= c0 or r1 <= r0:
            continue
        out.append((idx, (c0, r0, c1 - c0, r1 - r0)))
    return out


def _compute(tasks: list[Any], scheduler: str | None, workers: int | None = None) -> list[Any]:
    if not tasks:
        return []
    sched = scheduler or "threads"
    if sched.startswith(("tcp://", "tls://", "inproc://")):
        from distributed import Client

        with Client(sched) as client:
            return list(client.gather(client.compute(tasks)))
    kw: dict[str, Any] = {"scheduler": sched}
    if workers:
        kw["num_workers"] = workers
    if sched == "processes" and sys.platform.startswith("linux"):
        # fork: workers start in milliseconds instead of re-importing geopandas & co (spawn);
        # tasks open their own raster handles, so nothing GDAL-held is shared across the fork
        with dask.config.set({"multiprocessing.context": "fork"}):
            return list(dask.compute(*tasks, **kw))
    return list(dask.compute(*tasks, **kw))


def zonal_stats(raster: str | Any, parcels: gpd.GeoDataFrame, *, stats: Sequence[str] = DEFAULT_STATS,
                band: int = 1, categorical: bool = False, scheduler: str | None = None,
                workers: int | None = None, block_px: int = BLOCK_PX) -> pd.DataFrame:
    """Coverage-weighted statistics of ``raster`` (band ``band``) within each parcel.

    Returns one row per parcel (``parcel_id`` first, the order of ``parcels``) with the columns
    named in ``stats``: mean, median, std, min, max, pNN percentiles, count (valid pixels weighted
    by coverage), valid_fraction (share of the parcel's area covered by valid pixels, 0…1). With
    ``categorical=True`` also ``frac_<class>`` columns (share of the valid area in each class)
    and ``majority``. Parcels missing the raster get NaN statistics, count 0, valid_fraction 0.
    Raises CRSError if no parcel overlaps the raster at all (almost always a wrong CRS).
    """
    raster = str(raster)
    if "parcel_id" not in parcels.columns:
        raise InputError("parcels need a parcel_id column (read them with read_parcels)")
    if parcels.crs is None:
        raise CRSError("the parcels have no CRS; set one (read_parcels does) before computing statistics")
    with rasterio.open(raster) as src:
        if src.crs is None:
            raise CRSError(f"raster {raster} has no CRS; it cannot be matched to parcels")
        if not 1 <= band <= src.count:
            raise InputError(f"raster {raster} has {src.count} band(s); band {band} does not exist")
        rcrs, transform, shape, rbounds = src.crs, src.transform, src.shape, src.bounds
        pixel_area = abs(transform.a * transform.e - transform.b * transform.d)
    ids = parcels["parcel_id"].astype(str).to_numpy()
    local = parcels.to_crs(rcrs.to_wkt())
    geoms = local.geometry.values
    rbox = shapely.box(*rbounds)
    hits = shapely.intersects(geoms, rbox) & ~shapely.is_empty(geoms)
    if len(parcels) and not hits.any():
        pb = np.round(local.total_bounds, 3).tolist()
        gb = np.round(parcels.to_crs(4326).total_bounds, 5).tolist()
        raise CRSError(f"no parcel overlaps raster {raster}: raster CRS {rcrs.to_string()} bounds "
                       f"{[round(v, 3) for v in rbounds]}, parcels (CRS {parcels.crs.to_string()}) fall at "
                       f"{pb} in the raster CRS ({gb} lon/lat). Check that both CRSs are declared correctly "
                       "(e.g. --crs when importing parcels) and that the survey covers the parcels")
    ops = list(dict.fromkeys(_op(s) for s in stats if s != "valid_fraction"))
    if "valid_fraction" in stats and "count" not in ops:
        ops.append("count")
    pos = np.flatnonzero(hits)
    groups = _groups(geoms[pos], transform, shape, block_px)
    wkb = shapely.to_wkb(geoms)
    tasks = [dask.delayed(_extract_group)(raster, band, list(wkb[pos[idx]]), list(ids[pos[idx]]),
                                          window, ops, categorical)
             for idx, window in groups]
    parts = _compute(tasks, scheduler, workers)
    raw = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"parcel_id": []})
    result = pd.DataFrame({"parcel_id": ids})
    raw = raw.set_index("parcel_id").reindex(ids)
    for s in stats:
        if s == "valid_fraction":
            continue
        col = _column(s)
        result[s] = raw[col].to_numpy(dtype="float64") if col in raw.columns else np.nan
    if "count" in ops:
        count = (raw["count"].fillna(0).to_numpy(dtype="float64") if "count" in raw.columns
                 else np.zeros(len(ids)))
        if "count" in stats:
            result["count"] = count
        if "valid_fraction" in stats:
            area = shapely.area(geoms)
            with np.errstate(divide="ignore", invalid="ignore"):
                vf = np.where(area > 0, count * pixel_area / area, 0.0)
            result["valid_fraction"] = np.clip(vf, 0.0, 1.0)
    if categorical:
        _class_shares(raw, result)
    return result


def _class_shares(raw: pd.DataFrame, result: pd.DataFrame) -> None:
    """Spread exactextract's (unique, frac) arrays into ``frac_<class>`` columns and ``majority``."""
    classes: set[Any] = set()
    for u in raw.get("unique", pd.Series(dtype=object)).dropna():
        classes.update(np.asarray(u).tolist())
    ordered = sorted(classes)
    for c in ordered:
        name = f"frac_{int(c) if float(c).is_integer() else c}"
        vals = []
        for u, f in zip(raw["unique"], raw["frac"], strict=True):
            if isinstance(u, float) or u is None:
                vals.append(np.nan)
                continue
            m = dict(zip(np.asarray(u).tolist(), np.asarray(f).tolist(), strict=True))
            vals.append(float(m.get(c, 0.0)))
        result[name] = vals
    if "majority" not in result.columns:
        frac_cols = [c for c in result.columns if c.startswith("frac_")]
        if frac_cols:
            sub = result[frac_cols]
            maj = sub.idxmax(axis=1, skipna=True).where(sub.notna().any(axis=1))
            result["majority"] = maj.str.removeprefix("frac_")


def survey_stats(ws: Workspace, survey: str, indices: Sequence[str] | None = None, *,
                 scheduler: str | None = None, progress: ProgressCallback | None = None,
                 parcel_version: int | None = None) -> gpd.GeoDataFrame:
    """Statistics of each of a survey's index products (all INDEX and BIOMASS products by
    default, or those named) for every current parcel, stored in the catalog under the survey's
    date so each parcel gets a time series. Returns a long table: one row per parcel per index
    (``parcel_id``, ``name``, ``index`` and the stats), geometry EPSG:4326."""
    from belcheer.zoning.parcels import load_parcels

    cb = progress or no_progress
    rec = ws.catalog.survey(survey)
    parcels = load_parcels(ws, parcel_version)
    version = parcels.attrs.get("parcel_version")
    products = [p for p in ws.catalog.products(survey)
                if p.kind in (ProductKind.INDEX, ProductKind.BIOMASS)]
    if indices:
        wanted = [i.strip() for i in indices if i.strip()]
        have = {p.name: p for p in products}
        missing = [i for i in wanted if i not in have]
        if missing:
            raise NotFoundError(f"survey {survey!r} has no index product(s) {', '.join(missing)} "
                                f"(it has: {', '.join(have) or 'none'}); run `belcheer indices {survey}` first")
        products = [have[i] for i in wanted]
    if not products:
        raise NotFoundError(f"survey {survey!r} has no index products yet; run `belcheer indices {survey}` first")
    frames = []
    for i, prod in enumerate(products):
        cb(i / len(products), f"statistics: {prod.name}")
        table = zonal_stats(prod.path, parcels, scheduler=scheduler)
        ws.catalog.put_stats(survey, rec.date, prod.name, table.to_dict("records"), parcel_version=version)
        table.insert(1, "index", prod.name)
        frames.append(table)
    cb(1.0, "statistics done")
    long = pd.concat(frames, ignore_index=True)
    geo = parcels[["parcel_id", "name", "geometry"]].merge(long, on="parcel_id", how="right")
    return gpd.GeoDataFrame(geo, geometry="geometry", crs=4326)

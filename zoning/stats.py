"""Exact, coverage-weighted zonal statistics per parcel, with the ``exactextract`` library.

Parcels are reprojected to the raster's CRS (only when the CRSs differ), cut into a few compact
chunks of about equal work (a k-d split of their centres, two per worker), and ordered within
each chunk by the ``block_px`` raster block of their centre (a serpentine over the blocks).
Each chunk is one ``exact_extract`` call that reads the raster itself, parcel by parcel,
through GDAL's block cache: consecutive parcels share compressed tiles, so a tile is decoded
about once, tiles no parcel touches are never decoded, and memory is bounded by the block cache
(capped in each worker process) plus exactextract's own ``max_cells_in_memory`` limit, not by
the raster's size. The numbers are those of one exactextract call over the whole file.

exactextract holds the GIL while it computes, so threads overlap little more than reading; real
parallelism comes from worker processes (forked on Linux: they start in milliseconds and inherit
the parcels instead of receiving them pickled) or a Dask distributed cluster.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
from exactextract import exact_extract
from exactextract.feature import Feature, FeatureSource
from exactextract.raster import RasterioRasterSource, RasterSource
from rasterio.enums import MaskFlags
from rasterio.windows import Window

from belcheer import scheduler as belcheer_scheduler
from belcheer.errors import CRSError, InputError, NotFoundError
from belcheer.models import ProductKind
from belcheer.progress import ProgressCallback, no_progress

if TYPE_CHECKING:  # pragma: no cover
    from belcheer.workspace import Workspace

#: The statistics computed by default (all coverage-weighted; ``count`` is the number of valid
#: pixels weighted by the fraction of each covered by the parcel).
DEFAULT_STATS: tuple[str, ...] = ("mean", "median", "std", "min", "max", "p10", "p25", "p75", "p90",
                                  "count", "valid_fraction")
#: Our stat names → exactextract operations.
_OPS: dict[str, str] = {"mean": "mean", "median": "median", "std": "stdev", "min": "min", "max": "max",
                        "sum": "sum", "count": "count", "majority": "majority", "minority": "minority",
                        "variety": "variety"}
#: Edge, pixels, of the raster blocks that order parcels spatially (consecutive parcels share
#: compressed tiles, so each tile is decoded once while it is still in the block cache).
BLOCK_PX = 2048
#: Jobs whose parcels' bounding boxes cover fewer pixels than this run in the calling process
#: when no scheduler is named: forking workers and collecting their tables costs ≈ 0.1–0.2 s,
#: about what exactextract needs for this many pixels.
PARALLEL_MIN_PX = 2_000_000
#: Chunks per worker process: more than one so a worker slowed by other load on the machine
#: does not leave the other idle at the end; few, because each chunk boundary re-decodes the
#: tiles the two chunks share.
CHUNKS_PER_WORKER = 2
#: GDAL block cache of each worker process, bytes. Parcels arrive in spatial order, so the
#: cache only has to hold the tiles of about one row of blocks (BLOCK_PX × the raster's width);
#: bounded so that workers × cache stays well under the memory target.
WORKER_CACHE_BYTES = 256 * 2**20
#: Per-parcel fixed cost in the work estimate, in pixel equivalents (feature set-up,
#: coverage fractions of the boundary, output row).
_PARCEL_COST_PX = 500


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


class _WkbFeature(Feature):
    """One parcel handed to exactextract as WKB plus its row number. exactextract's GeoDataFrame
    source turns every geometry into a GeoJSON string that C++ parses again; WKB skips that."""

    def __init__(self, row: int | None = None, wkb: bytes | None = None) -> None:
        Feature.__init__(self)
        self._props: dict[str, Any] = {} if row is None else {"_row": row}
        self._wkb = wkb

    def geometry(self) -> bytes | None:
        return self._wkb

    def set_geometry(self, wkb: bytes | None) -> None:
        self._wkb = wkb

    def set_geometry_format(self) -> str:
        return "wkb"

    def get(self, name: str) -> Any:
        return self._props[name]

    def set(self, name: str, value: Any) -> None:
        self._props[name] = value

    def fields(self) -> list[str]:
        return list(self._props)


class _WkbSource(FeatureSource):
    """Parcels (WKB, in the raster's CRS) with their row numbers in the caller's table."""

    def __init__(self, rows: np.ndarray, wkb: np.ndarray, srs_wkt: str) -> None:
        super().__init__()
        self._rows, self._wkb, self._wkt = rows, wkb, srs_wkt

    def count(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[_WkbFeature]:
        for r, w in zip(self._rows.tolist(), self._wkb, strict=True):
            yield _WkbFeature(r, w)

    def srs_wkt(self) -> str:
        return self._wkt


class _PlainSource(RasterSource):
    """A band read as plain arrays, its nodata value given to exactextract. exactextract's own
    RasterioRasterSource reads masked arrays, which costs ≈ 10 % of the whole computation
    (rasterio builds the mask from the nodata value, exactextract then reads the mask) for no
    gain when the mask *is* the nodata value; ``_source`` uses this class only then."""

    def __init__(self, ds: Any, band: int) -> None:
        super().__init__()
        self._ds, self._band = ds, band
        nodata = ds.nodatavals[band - 1]
        # exactextract compares nodata in the raster's own type
        self._nodata = (nodata if nodata is None or ds.dtypes[band - 1].startswith("float")
                        else int(nodata))

    def res(self) -> tuple[float, float]:
        t = self._ds.transform
        return (abs(t.a), abs(t.e))

    def srs_wkt(self) -> str | None:
        return self._ds.crs.to_wkt() if self._ds.crs else None

    def extent(self) -> tuple[float, float, float, float]:
        b = self._ds.bounds
        return (b.left, b.bottom, b.right, b.top)

    def nodata_value(self) -> float | int | None:
        return self._nodata

    def read_window(self, x0: int, y0: int, nx: int, ny: int) -> np.ndarray:
        return self._ds.read(self._band, window=Window(x0, y0, nx, ny))


def _source(ds: Any, band: int) -> RasterSource:
    """The cheapest exactextract raster source that gives exactextract's own results: plain
    reads when the band's validity is its nodata value (or every pixel is valid) and it has no
    scale/offset; otherwise exactextract's RasterioRasterSource (masks, scaling)."""
    flags = set(ds.mask_flag_enums[band - 1])
    plain = flags in ({MaskFlags.nodata}, {MaskFlags.all_valid})
    if plain and ds.scales[band - 1] == 1.0 and ds.offsets[band - 1] == 0.0 and ds.transform.b == 0 \
            and ds.transform.d == 0:
        return _PlainSource(ds, band)
    return RasterioRasterSource(ds, band)


def _extract(raster: str, band: int, rows: np.ndarray, wkb: np.ndarray, ops: list[str],
             categorical: bool) -> pd.DataFrame:
    """One exactextract call over the parcels ``rows`` (their WKB in the raster's CRS).
    Returns exactextract's table with a ``_row`` column."""
    all_ops = list(ops) + (["unique", "frac"] if categorical else [])
    with rasterio.open(raster) as src:
        features = _WkbSource(rows, wkb, src.crs.to_wkt())
        return exact_extract(_source(src, band), features, all_ops, include_cols=["_row"], output="pandas")


#: The job of a pool's workers: set in the parent only while it forks them (so they inherit it
#: without pickling), or by the pool initializer (spawned workers).
_JOB: dict[str, Any] = {}
#: Held while _JOB is set for a fork, so two threads starting pools cannot mix their jobs.
_FORK_LOCK = threading.Lock()


def _init_worker(job: dict[str, Any] | None, cache_bytes: int) -> None:
    # a forked worker inherits the parent's signal handlers: glog's (installed by pycolmap, which
    # the mosaic stage imports) prints a native stack dump on SIGTERM; a worker just exits
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if job is not None:
        _JOB.update(job)
    # the cache, not the raster, bounds a worker's memory (see WORKER_CACHE_BYTES)
    rasterio.env.set_gdal_config("GDAL_CACHEMAX", cache_bytes)


def _run_chunk(span: tuple[int, int]) -> pd.DataFrame:
    a, b = span
    j = _JOB
    return _extract(j["raster"], j["band"], j["rows"][a:b], j["wkb"][a:b], j["ops"], j["categorical"])


def _centres(geoms: np.ndarray, transform: Any) -> tuple[np.ndarray, np.ndarray]:
    """Column and row (pixels) of the centre of each geometry's bounding box."""
    b = shapely.bounds(geoms)
    col, row = ~transform @ ((b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2)
    return np.asarray(col, dtype="float64"), np.asarray(row, dtype="float64")


def _spatial_order(col: np.ndarray, row: np.ndarray, block_px: int) -> np.ndarray:
    """Positions ordered by the ``block_px`` block of their centre: blocks row by row, alternate
    rows right to left (a serpentine, so consecutive blocks are always neighbours), and within
    a block by row then column."""
    brow = np.floor(row / block_px)
    bcol = np.floor(col / block_px)
    bcol = np.where(brow % 2 == 1, -bcol, bcol)
    return np.lexsort((col, row, bcol, brow))


def _bisect(col: np.ndarray, row: np.ndarray, work: np.ndarray, n: int) -> list[np.ndarray]:
    """Split positions into ≤ ``n`` compact parts of about equal total ``work``: halve along the
    longer side of the extent, recursively (a k-d split). Compact parts share few compressed
    tiles along their borders, and a tile that two parts touch is decoded twice."""
    idx = np.arange(len(work))
    if n <= 1 or len(idx) <= 1:
        return [idx] if len(idx) else []
    key = col if np.ptp(col) >= np.ptp(row) else row
    srt = np.argsort(key, kind="stable")
    cum = np.cumsum(work[srt], dtype="float64")
    n1 = n // 2
    cut = int(np.clip(np.searchsorted(cum, cum[-1] * n1 / n, side="right"), 1, len(idx) - 1))
    out = []
    for part, k in ((srt[:cut], n1), (srt[cut:], n - n1)):
        out += [part[sub] for sub in _bisect(col[part], row[part], work[part], k)]
    return out


def _can_fork() -> bool:
    """Forked workers are safe when the parent is single-threaded in practice: another thread
    could hold a lock (GDAL's block cache, a logging handler) that the child would inherit
    locked. The API runs jobs in background threads; scripts and notebooks call from the main
    thread."""
    return sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread()


def _auto_scheduler(raster: str, work_px: float, workers: int) -> str:
    if raster.startswith("/vsimem/") or workers < 2 or work_px < PARALLEL_MIN_PX or not _can_fork():
        return "synchronous"
    return "processes"


def _run_local(scheduler: str, job: dict[str, Any], spans: list[tuple[int, int]],
               workers: int) -> list[pd.DataFrame]:
    if scheduler == "synchronous" or len(spans) == 1:
        return [_extract(job["raster"], job["band"], job["rows"][a:b], job["wkb"][a:b], job["ops"],
                         job["categorical"]) for a, b in spans]
    if scheduler == "threads":
        from concurrent.futures import ThreadPoolExecutor

        # exactextract holds the GIL while it computes; threads only overlap the tile decoding
        # (rasterio releases the GIL there)
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(lambda s: _extract(job["raster"], job["band"], job["rows"][s[0]:s[1]],
                                                    job["wkb"][s[0]:s[1]], job["ops"], job["categorical"]),
                                 spans))
    import multiprocessing

    n = min(workers, len(spans))
    if sys.platform.startswith("linux"):
        # fork: workers start in milliseconds and inherit _JOB instead of re-importing geopandas
        # & co and unpickling the parcels (spawn). Each task opens its own raster handle, so
        # nothing GDAL-held is shared across the fork. Pool() forks all its workers before it
        # returns, so _JOB can be emptied right after.
        with _FORK_LOCK:
            _JOB.update(job)
            try:
                pool = multiprocessing.get_context("fork").Pool(n, initializer=_init_worker,
                                                                initargs=(None, WORKER_CACHE_BYTES))
            finally:
                _JOB.clear()
    else:
        pool = multiprocessing.get_context("spawn").Pool(n, initializer=_init_worker,
                                                         initargs=(job, WORKER_CACHE_BYTES))
    with pool:
        # imap, chunksize 1: chunks go out in order as workers free up
        out = list(pool.imap(_run_chunk, spans, chunksize=1))
        # close + join lets the workers exit on their own; leaving the block would terminate
        # (SIGTERM) them, which is for the error path only
        pool.close()
        pool.join()
    return out


def _run_distributed(spec: str | Any, job: dict[str, Any], spans: list[tuple[int, int]]) -> list[pd.DataFrame]:
    import dask

    tasks = [dask.delayed(_extract)(job["raster"], job["band"], job["rows"][a:b], job["wkb"][a:b],
                                    job["ops"], job["categorical"]) for a, b in spans]
    return list(belcheer_scheduler.compute(*tasks, scheduler=spec))


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

    ``scheduler``: None picks one — worker processes (``workers``, default the number of cores)
    when the job covers ≥ ``PARALLEL_MIN_PX`` pixels, the machine has ≥ 2 cores and the call
    comes from the main thread on Linux; otherwise the calling process. Or name one:
    ``"synchronous"``, ``"threads"``, ``"processes"``, or a ``tcp://`` Dask cluster address.
    ``block_px`` is the edge of the raster blocks that order parcels spatially (pixels).
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
        rcrs, transform, rbounds = src.crs, src.transform, src.bounds
        pixel_area = abs(transform.a * transform.e - transform.b * transform.d)
    ids = parcels["parcel_id"].astype(str).to_numpy()
    ops = list(dict.fromkeys(_op(s) for s in stats if s != "valid_fraction"))
    if "valid_fraction" in stats and "count" not in ops:
        ops.append("count")
    # only the geometries are reprojected (not the attribute table), and only when needed
    geoms = parcels.geometry
    if not geoms.crs.equals(rcrs.to_wkt()):
        geoms = geoms.to_crs(rcrs.to_wkt())
    geoms = np.asarray(geoms.values, dtype=object)
    rbox = shapely.box(*rbounds)
    hits = shapely.intersects(geoms, rbox) & ~shapely.is_empty(geoms)
    if len(parcels) and not hits.any():
        pb = np.round(shapely.total_bounds(geoms), 3).tolist()
        gb = np.round(parcels.to_crs(4326).total_bounds, 5).tolist()
        raise CRSError(f"no parcel overlaps raster {raster}: raster CRS {rcrs.to_string()} bounds "
                       f"{[round(v, 3) for v in rbounds]}, parcels (CRS {parcels.crs.to_string()}) fall at "
                       f"{pb} in the raster CRS ({gb} lon/lat). Check that both CRSs are declared correctly "
                       "(e.g. --crs when importing parcels) and that the survey covers the parcels",
                       code="error.stats.no_overlap", raster=os.path.basename(str(raster)))
    pos = np.flatnonzero(hits)
    bb = shapely.bounds(geoms[pos])
    work = (bb[:, 2] - bb[:, 0]) * (bb[:, 3] - bb[:, 1]) / pixel_area + _PARCEL_COST_PX
    if scheduler is None and belcheer_scheduler.is_distributed(None):
        scheduler = belcheer_scheduler.parse(None)  # BELCHEER_SCHEDULER names a cluster
    parsed = belcheer_scheduler.parse(scheduler) if scheduler is not None else None
    distributed = parsed is not None and parsed.distributed
    sched: Any = (parsed if distributed else parsed.kind if parsed is not None
                  else _auto_scheduler(raster, float(work.sum()), workers or os.cpu_count() or 1))
    local = workers or os.cpu_count() or 1
    n_workers = (workers or belcheer_scheduler.worker_threads(sched, local)) if distributed else local
    if sched == "synchronous":
        n_chunks = 1
    elif sched == "threads":
        # threads take turns in one GIL-bound exactextract: more chunks would only add borders
        n_chunks = n_workers
    else:
        n_chunks = CHUNKS_PER_WORKER * n_workers
    col, row = _centres(geoms[pos], transform)
    # compact chunks, each in serpentine block order, laid end to end: chunk i is spans[i]
    chunks = [c[_spatial_order(col[c], row[c], block_px)] for c in _bisect(col, row, work, n_chunks)]
    order = pos[np.concatenate(chunks)] if chunks else pos
    edges = np.cumsum([0] + [len(c) for c in chunks])
    spans = [(int(a), int(z)) for a, z in zip(edges[:-1], edges[1:], strict=True)]
    job = {"raster": raster, "band": band, "rows": order, "wkb": shapely.to_wkb(geoms[order]),
           "ops": ops, "categorical": categorical}
    if not spans:
        parts: list[pd.DataFrame] = []
    elif distributed:
        parts = _run_distributed(sched, job, spans)
    else:
        parts = _run_local(sched, job, spans, n_workers)
    raw = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"_row": []})
    # exactextract's rows back into the caller's order; parcels off the raster stay NaN
    raw = raw.set_index("_row").reindex(np.arange(len(ids)))
    result = pd.DataFrame({"parcel_id": ids})
    for s in stats:
        if s == "valid_fraction":
            continue
        name = _column(s)
        result[s] = raw[name].to_numpy(dtype="float64") if name in raw.columns else np.nan
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
        with ws.product_file(prod) as raster:
            table = zonal_stats(raster, parcels, scheduler=scheduler)
        ws.catalog.put_stats(survey, rec.date, prod.name, table.to_dict("records"), parcel_version=version)
        table.insert(1, "index", prod.name)
        frames.append(table)
    cb(1.0, "statistics done")
    long = pd.concat(frames, ignore_index=True)
    geo = parcels[["parcel_id", "name", "geometry"]].merge(long, on="parcel_id", how="right")
    return gpd.GeoDataFrame(geo, geometry="geometry", crs=4326)

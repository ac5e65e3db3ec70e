"""Indices over a reflectance/orthomosaic COG: one Dask graph, every band read once, one COG per index.

The source is opened lazily with rioxarray in chunks aligned to its internal tiles. Each index
is a ``map_blocks`` over the band arrays it needs; all indices go to ``dask.array.store`` in one
call, so shared band chunks are read once. Blocks are written by window into a tiled GeoTIFF
(any scheduler: threads, processes or a ``tcp://`` dask.distributed cluster — writes are
serialised with a file lock beside the output), which is then copied to a COG with overviews.
The full raster is never in memory. Outputs are float32 with NaN nodata, in the source's CRS.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import rasterio
import rasterio.shutil
import xarray as xr
from rasterio.windows import Window

from belcheer.errors import BandError, ConfigError, FormulaError, InputError
from belcheer.fileio import atomic_path
from belcheer.indices.catalog import DRONE_BANDS, IndexDef, band_mapping, lookup, require_bands
from belcheer.indices.formula import Formula, parse
from belcheer.models import Band, Product
from belcheer.progress import ProgressCallback, no_progress

#: Dask chunk edge in tiles of the source (2 × 512 px by default): big enough to amortise task
#: overhead, small enough that 5 bands × 2 workers stay in tens of MB
CHUNK_TILES = 2
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_\-]{0,39}")
#: GDAL block cache while computing, MB: the default (5 % of RAM) lets a big raster's decoded
#: blocks pile up to gigabytes; blocks are read once here, so a small cache loses nothing
GDAL_CACHE_MB = 256
#: extra names allowed in user formulas besides the band codes
BAND_ALIASES: dict[str, str] = {v: k for k, v in DRONE_BANDS.items()}


@dataclass(frozen=True)
class IndexJob:
    """One output: a name, its parsed formula, constants and the band codes it reads."""

    name: str
    formula: Formula
    constants: Mapping[str, float]
    codes: tuple[str, ...]
    definition: IndexDef | None = None


def plan(names: Sequence[str], formulas: Mapping[str, str] | None, bands: Sequence[Band]
         ) -> tuple[list[IndexJob], dict[str, int]]:
    """Resolve index names and user formulas against the raster's bands.

    Raises :class:`BandError` for a missing band, :class:`InputError` (with suggestions) for an
    unknown index and :class:`FormulaError` for a formula that is not allowed.
    """
    mapping = band_mapping(bands)
    jobs: list[IndexJob] = []
    for n in names:
        if formulas and n in formulas:
            continue
        d = lookup(n)
        require_bands(d, mapping, bands)
        jobs.append(IndexJob(name=d.name, formula=d.parsed(), constants=dict(d.constants),
                             codes=d.bands, definition=d))
    allowed = set(DRONE_BANDS) | set(BAND_ALIASES)
    for n, text in (formulas or {}).items():
        if not _NAME_RE.fullmatch(n):
            raise FormulaError(f"formula name {n!r} is not allowed: use letters, digits, _ or - "
                               "(≤ 40 characters, starting with a letter); it names the output file")
        f = parse(text, allowed)
        codes = tuple(sorted({BAND_ALIASES.get(x, x) for x in f.names}))
        pseudo = IndexDef(name=n, long_name=f"user formula {text}", formula=text, bands=codes)
        require_bands(pseudo, mapping, bands)
        jobs.append(IndexJob(name=n, formula=f, constants={}, codes=codes))
    if not jobs:
        raise ConfigError("no index requested; give e.g. --index ndvi,savi or --formula NAME=…")
    seen: set[str] = set()
    for j in jobs:
        if j.name.lower() in seen:
            raise ConfigError(f"index {j.name!r} is requested twice")
        seen.add(j.name.lower())
    return jobs, mapping


def evaluate_block(job: IndexJob, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """Evaluate one index on float32 band arrays keyed by code (pure; NaN propagates)."""
    values: dict[str, Any] = dict(job.constants)
    for code in job.codes:
        values[code] = arrays[code]
        values[DRONE_BANDS[code]] = arrays[code]
    return job.formula.evaluate(values).astype(np.float32, copy=False)


def _to_float(block: np.ndarray, nodata: float | None, scale: float) -> np.ndarray:
    out = block.astype(np.float32)
    if nodata is not None and not np.isnan(nodata):
        out[block == nodata] = np.nan
    if scale != 1.0:
        out *= np.float32(scale)
    return out


def _index_block(*blocks: np.ndarray, job: IndexJob, codes: tuple[str, ...],
                 nodata: float | None, scale: float, has_alpha: bool) -> np.ndarray:
    arrays = {c: _to_float(b, nodata, scale) for c, b in zip(codes, blocks, strict=False)}
    out = evaluate_block(job, arrays)
    if has_alpha:
        out = np.where(blocks[-1] == 0, np.float32(np.nan), out)
    return out.astype(np.float32, copy=False)


# -- source ------------------------------------------------------------------------------------

def bands_of_file(path: Path) -> tuple[Band, ...]:
    """Bands of a raster from its band descriptions/tags (``name``, ``center_nm``), or RGB for a
    3/4-band uint8 image without descriptions."""
    with rasterio.open(path) as src:
        out = []
        for i in range(1, src.count + 1):
            tags = src.tags(i)
            desc = (src.descriptions[i - 1] or tags.get("name") or "").strip().lower()
            c = tags.get("center_nm") or tags.get("wavelength_nm") or tags.get("wavelength")
            out.append(Band(name=desc, center_nm=float(c) if c else None))
        if not any(b.name or b.center_nm for b in out) and src.dtypes[0] == "uint8" and src.count in (3, 4):
            return (Band("red", 650, label="R"), Band("green", 550, label="G"),
                    Band("blue", 470, label="B"))
        if not any(b.name or b.center_nm for b in out):
            raise BandError(f"{path.name} does not say which band is which (no band descriptions or "
                            "center_nm tags); write it through belcheer or set band descriptions")
        return tuple(out)


def _alpha_band(path: Path) -> int | None:
    with rasterio.open(path) as src:
        for i, ci in enumerate(src.colorinterp, 1):
            if ci == rasterio.enums.ColorInterp.alpha:
                return i
    return None


def open_source(path: Path) -> tuple[xr.DataArray, dict[str, Any]]:
    """Open a raster lazily as (band, y, x), chunked to whole multiples of its internal tiles."""
    import rioxarray

    with rasterio.open(path) as src:
        by, bx = src.block_shapes[0]
        info = {"nodata": src.nodata, "dtype": src.dtypes[0], "count": src.count,
                "crs": src.crs, "transform": src.transform, "shape": (src.height, src.width),
                "scale": float(src.scales[0] or 1.0)}
    cy, cx = max(by, 256) * CHUNK_TILES, max(bx, 256) * CHUNK_TILES
    arr = rioxarray.open_rasterio(path, chunks={"band": 1, "y": cy, "x": cx}, lock=False,
                                  masked=False, cache=False)
    return arr, info  # type: ignore[return-value]


# -- writing -----------------------------------------------------------------------------------

class WindowWriter:
    """A ``dask.array.store`` target writing blocks into band 1 of an existing tiled GeoTIFF.

    Picklable (holds only paths), so process and distributed workers can write too; writes are
    serialised with an exclusive ``flock`` on a sidecar lock file.
    """

    def __init__(self, path: Path, lock_path: Path) -> None:
        self.path, self.lock_path = str(path), str(lock_path)
        self.shape: tuple[int, int] | None = None
        self.dtype = np.dtype("float32")
        self.ndim = 2

    def __setitem__(self, key: tuple[slice, slice], value: np.ndarray) -> None:
        ys, xs = key
        win = Window(xs.start, ys.start, xs.stop - xs.start, ys.stop - ys.start)
        with open(self.lock_path, "a") as lk:
            fcntl.flock(lk, fcntl.LOCK_EX)
            try:
                with rasterio.open(self.path, "r+") as dst:
                    dst.write(np.asarray(value, dtype=np.float32), 1, window=win)
            finally:
                fcntl.flock(lk, fcntl.LOCK_UN)


def _create_tiled(path: Path, info: Mapping[str, Any]) -> None:
    h, w = info["shape"]
    profile = {"driver": "GTiff", "height": h, "width": w, "count": 1, "dtype": "float32",
               "crs": info["crs"], "transform": info["transform"], "nodata": float("nan"),
               "tiled": True, "blockxsize": 512, "blockysize": 512, "sparse_ok": True,
               "bigtiff": "IF_SAFER"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path, "w", **profile):
            pass


def to_cog(tmp: Path, target: Path, *, description: str, tags: Mapping[str, str]) -> None:
    """Copy a tiled GeoTIFF to a COG (ZSTD level 1 + float predictor, overviews) atomically.

    ZSTD at level 1 compresses about as well as DEFLATE on float rasters at ~4× the speed; every
    GDAL ≥ 2.3 (rasterio, rio-tiler, QGIS) reads it."""
    with rasterio.open(tmp, "r+") as src:
        src.set_band_description(1, description)
        src.update_tags(**{k: str(v) for k, v in tags.items()})
    with atomic_path(target) as out, rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
        rasterio.shutil.copy(tmp, out, driver="COG", COMPRESS="ZSTD", LEVEL=1, PREDICTOR="YES",
                             BLOCKSIZE=512, OVERVIEWS="AUTO", RESAMPLING="AVERAGE",
                             NUM_THREADS=os.environ.get("GDAL_NUM_THREADS", "ALL_CPUS"),
                             BIGTIFF="IF_SAFER")


# -- scheduling --------------------------------------------------------------------------------

@contextlib.contextmanager
def _scheduler(scheduler: str | Any | None) -> Iterator[tuple[str, Any]]:
    """Yield ("local", name) or ("distributed", client) for a scheduler spec."""
    if scheduler is None:
        from belcheer.config import Settings

        scheduler = Settings().scheduler
    if not isinstance(scheduler, str):  # a distributed.Client given by the caller
        yield "distributed", scheduler
        return
    s = scheduler.strip().lower()
    if s in ("threads", "threading", "processes", "multiprocessing", "sync", "synchronous",
             "single-threaded"):
        yield "local", {"threading": "threads", "multiprocessing": "processes",
                        "sync": "synchronous", "single-threaded": "synchronous"}.get(s, s)
        return
    if "://" in s or ":" in s:
        from distributed import Client

        client = Client(scheduler, set_as_default=False, timeout="20s")
        try:
            yield "distributed", client
        finally:
            client.close()
        return
    raise ConfigError(f"unknown scheduler {scheduler!r}: use threads, processes, synchronous or "
                      "tcp://host:8786")


def _run(stored: Any, kind: str, sched: Any, progress: ProgressCallback, message: str) -> None:
    graph: dict[Any, Any] = {}
    for part in (stored if isinstance(stored, tuple | list) else (stored,)):
        graph.update(dict(part.__dask_graph__()))
    store_keys = [k for k in graph if isinstance(k, tuple) and str(k[0]).startswith("store-map")]
    total = max(len(store_keys), 1)
    if kind == "distributed":
        from distributed import wait

        with sched.as_current():  # wait() looks up the current client
            futures = sched.get(graph, store_keys, sync=False)
            pending = set(futures)
            while pending:
                _, pending = wait(list(pending), return_when="FIRST_COMPLETED")
                progress((total - len(pending)) / total, message)
            for f in futures:
                f.result()  # re-raises a worker's error here
        return
    from dask.callbacks import Callback

    done = [0]

    def posttask(key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        if isinstance(key, tuple) and str(key[0]).startswith("store-map"):
            done[0] += 1
            progress(done[0] / total, message)

    import dask.local
    import dask.multiprocessing
    import dask.threaded

    # named directly: dask.base.get_scheduler() would import distributed (~1.5 s) to look for a client
    get = {"threads": dask.threaded.get, "processes": dask.multiprocessing.get,
           "synchronous": dask.local.get_sync}[sched]
    with Callback(posttask=posttask):
        get(graph, store_keys)


# -- public ------------------------------------------------------------------------------------

def compute(source: Product | str | os.PathLike[str] | xr.DataArray, indices: Sequence[str], *,
            out_dir: Path | None = None, formulas: Mapping[str, str] | None = None,
            scheduler: str | Any | None = None, progress: ProgressCallback | None = None,
            relative: bool | None = None) -> dict[str, Path] | dict[str, xr.DataArray]:
    """Compute catalogue ``indices`` and user ``formulas`` (name → text) over a raster.

    ``source``: a Product, a raster path or a (band, y, x) DataArray whose ``band`` coordinate
    holds band names (blue, green, red, rededge, nir) or which has a ``center_nm`` coordinate.
    With ``out_dir`` each index is written to ``<out_dir>/<name lowercase>.tif`` (COG, float32,
    NaN nodata, the source's CRS and grid) and the paths are returned; without it, lazy
    DataArrays are returned. ``relative`` is recorded in the COG tags (RGB-derived indices).
    """
    cb = progress or no_progress
    if isinstance(source, xr.DataArray):
        if out_dir is not None:
            raise ConfigError("write a DataArray to disk with .rio.to_raster(); out_dir is for files")
        return _compute_dataarray(source, indices, formulas)
    if isinstance(source, Product):
        path, bands = Path(source.path), tuple(source.bands) or bands_of_file(Path(source.path))
        relative = source.relative if relative is None else relative
    else:
        path = Path(source)
        bands = bands_of_file(path)
    if not path.is_file():
        raise InputError(f"raster {path} does not exist")
    jobs, mapping = plan(indices, formulas, bands)
    arr, info = open_source(path)
    alpha = _alpha_band(path)
    needed = sorted({c for j in jobs for c in j.codes})
    band_arrays = {c: arr.data[mapping[c]] for c in needed}
    alpha_arr = arr.data[alpha - 1] if alpha else None
    sources = []
    for j in jobs:
        ins = [band_arrays[c] for c in j.codes] + ([alpha_arr] if alpha_arr is not None else [])
        # the catalogue entry (read-only mappings) stays home: workers get a plain, picklable job
        sources.append(da.map_blocks(_index_block, *ins, job=replace(j, definition=None), codes=j.codes, nodata=info["nodata"],
                                     scale=info["scale"], has_alpha=alpha_arr is not None,
                                     dtype=np.float32, meta=np.empty((0, 0), np.float32)))
    if out_dir is None:
        out: dict[str, xr.DataArray] = {}
        tmpl = arr.isel(band=0, drop=True)
        for j, s in zip(jobs, sources, strict=True):
            out[j.name] = xr.DataArray(s, coords=tmpl.coords, dims=tmpl.dims, name=j.name,
                                       attrs={"formula": j.formula.text, "_FillValue": np.nan})
        return out
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmps, targets = [], []
    for j in jobs:
        tmp = out_dir / f".{j.name.lower()}.partial.tif"
        _create_tiled(tmp, info)
        tmps.append(tmp)
        targets.append(WindowWriter(tmp, out_dir / f".{j.name.lower()}.lock"))
    results: dict[str, Path] = {}
    try:
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), _scheduler(scheduler) as (kind, sched):
            stored = da.store(sources, targets, lock=False, compute=False)
            _run(stored, kind, sched, lambda f, m: cb(0.85 * f, m),
                 f"computing {', '.join(j.name for j in jobs)}")
        for i, (j, tmp) in enumerate(zip(jobs, tmps, strict=True)):
            cb(0.85 + 0.15 * i / len(jobs), f"writing {j.name} COG")
            target = out_dir / f"{j.name.lower()}.tif"
            tags = {"formula": j.formula.text, "index": j.name, "relative": str(bool(relative)),
                    "constants": ",".join(f"{k}={v:g}" for k, v in j.constants.items())}
            to_cog(tmp, target, description=j.name, tags=tags)
            results[j.name] = target
    finally:
        for j, tmp in zip(jobs, tmps, strict=True):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            with contextlib.suppress(FileNotFoundError):
                (out_dir / f".{j.name.lower()}.lock").unlink()
    cb(1.0, "indices done")
    return results


def _compute_dataarray(arr: xr.DataArray, indices: Sequence[str],
                       formulas: Mapping[str, str] | None) -> dict[str, xr.DataArray]:
    if "band" not in arr.dims:
        raise InputError("the DataArray needs a 'band' dimension (band, y, x)")
    names = [str(v).lower() for v in arr["band"].values]
    centers = arr["center_nm"].values if "center_nm" in arr.coords else [None] * len(names)
    bands = tuple(Band(name=n if not n.isdigit() else "", center_nm=float(c) if c is not None else None)
                  for n, c in zip(names, centers, strict=True))
    jobs, mapping = plan(indices, formulas, bands)
    out: dict[str, xr.DataArray] = {}
    for j in jobs:
        ins = {c: arr.isel(band=mapping[c], drop=True).astype(np.float32) for c in j.codes}
        tmpl = next(iter(ins.values()))
        if isinstance(tmpl.data, da.Array):
            res = da.map_blocks(lambda *b, _j=j: evaluate_block(_j, dict(zip(_j.codes, b, strict=True))),
                                *[ins[c].data for c in j.codes], dtype=np.float32)
        else:
            res = evaluate_block(j, {c: np.asarray(v.data) for c, v in ins.items()})
        out[j.name] = xr.DataArray(res, coords=tmpl.coords, dims=tmpl.dims, name=j.name,
                                   attrs={"formula": j.formula.text})
    return out



def compute_survey(ws: Any, survey: str, indices: Sequence[str], *,
                   formulas: Mapping[str, str] | None = None, scheduler: str | Any | None = None,
                   progress: ProgressCallback | None = None) -> list[Product]:
    """Compute indices for a survey's ``reflectance`` product (else its ``orthomosaic``) and
    register one INDEX product per index, named by the index in lowercase.

    Indices from an orthomosaic that is not reflectance (RGB or multispectral DN) are flagged
    ``relative``: fine for patterns within one flight, not comparable between dates.
    """
    from belcheer.errors import NotFoundError
    from belcheer.models import ProductKind

    try:
        src = ws.product(survey, "reflectance")
    except NotFoundError:
        try:
            src = ws.product(survey, "orthomosaic")
        except NotFoundError:
            raise NotFoundError(f"survey {survey!r} has no reflectance or orthomosaic product yet; "
                                f"run `belcheer mosaic {survey}` first") from None
    relative = src.kind is not ProductKind.REFLECTANCE or bool(src.relative)
    out_dir = ws.product_path(survey, "ndvi").parent
    paths = compute(src, indices, out_dir=out_dir, formulas=formulas, scheduler=scheduler,
                    progress=progress, relative=relative)
    assert isinstance(paths, dict)
    products: list[Product] = []
    for name, path in paths.items():
        try:
            d = lookup(name) if not (formulas and name in formulas) else None
        except InputError:
            d = None
        meta: dict[str, Any] = {"index": name, "source": src.name,
                                "formula": formulas[name] if formulas and name in formulas
                                else d.formula if d else None}
        if d is not None:
            meta.update(long_name=d.long_name, reference=d.reference, constants=dict(d.constants))
        if "calibration" in src.metadata:
            meta["calibration"] = src.metadata["calibration"]
        products.append(ws.add_product(Product(
            id="", survey=survey, kind=ProductKind.INDEX, name=name.lower(), path=Path(path),
            epsg=src.epsg, bands=(Band(name=name.lower(), label=name),), units=None,
            relative=relative, metadata=meta)))
    return products

"""Indices over a reflectance/orthomosaic COG: one Dask pass, every band read once, one COG per index.

The raster is cut into blocks aligned to the output's 512-px tiles (2048 × 2048 px for a tiled
source). One task per block reads the bands every requested index needs in a single windowed
read, evaluates all the indices in float32, and compresses their tiles and the overview tiles
the block covers (:mod:`belcheer.indices.cog`), so decoding, arithmetic and compression all run
on the scheduler's workers: threads, processes or a ``tcp://`` dask.distributed cluster. The
compressed tiles stream to one :class:`~belcheer.indices.cog.Assembler` per index in the calling
process, which writes the COG (IFDs, overviews, full resolution) once every block is in. The
full raster is never in memory: a few blocks in flight and a row of partial overview tiles.
Outputs are float32 with NaN nodata, in the source's CRS and grid.

Without an output folder, indices come back as lazy DataArrays over the raster opened with
rioxarray (chunks aligned to its tiles).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
from rasterio.windows import Window

from belcheer import scheduler as belcheer_scheduler
from belcheer.errors import BandError, ConfigError, FormulaError, InputError
from belcheer.fileio import atomic_path
from belcheer.indices.catalog import DRONE_BANDS, IndexDef, band_mapping, lookup, require_bands
from belcheer.indices.cog import (
    TILE,
    Assembler,
    compress_tiles,
    decimate,
    overview_shapes,
    template_tags,
)
from belcheer.indices.formula import Formula, parse
from belcheer.models import Band, Product, Survey
from belcheer.progress import ProgressCallback, no_progress

if TYPE_CHECKING:
    import xarray as xr

#: block edge, px (a multiple of the 512-px output tile): 4 × 4 output tiles and whole tiles of
#: the first two overviews per task. Measured against 1024 px: ~9 % less CPU (a quarter of the
#: opens and in-memory GeoTIFFs per pixel) for ~100 MB more per worker (~150 MB each with three
#: indices)
CHUNK_PX = 2048
#: pixels per strip when evaluating formulas: float32 temporaries of 0.5 MB stay in the CPU cache
STRIP_PX = 1 << 17
#: rioxarray chunk edge in tiles of the source, for the lazy DataArray results
CHUNK_TILES = 2
#: blocks in flight per worker when results travel back (processes, distributed): keeps workers
#: busy while the caller stores tiles, and bounds memory however slow the disk is
IN_FLIGHT_PER_WORKER = 2
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_\-]{0,39}")
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
        if not codes:  # a constant is not an index, and there would be no band to read
            raise FormulaError(f"formula {n}={text!r} uses no band; write it with band names, "
                               "e.g. (N-R)/(N+R)")
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


# -- blocks ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BlockPlan:
    """Everything a worker needs to turn one block of the source into compressed tiles.

    Plain and picklable (paths, numbers, parsed formulas), so process and distributed workers
    receive it with each task; they open the source themselves.
    """

    path: str
    read: tuple[int, ...]          # 1-based bands read in one call: one per code, then alpha
    codes: tuple[str, ...]         # band code of each read band (alpha excluded)
    alpha: bool                    # last band read is an alpha mask (0 = outside)
    nodata: float | None
    scale: float
    jobs: tuple[IndexJob, ...]
    levels: tuple[tuple[int, int], ...]   # (height, width) of full resolution and each overview
    chunk: tuple[int, int]         # block height and width, px, multiples of the tile

    def origins(self) -> list[tuple[int, int]]:
        """Top-left corner (row, col) of every block, row-major."""
        (h, w), (cy, cx) = self.levels[0], self.chunk
        return [(y, x) for y in range(0, h, cy) for x in range(0, w, cx)]


#: per index of a block: full tiles (level, tile row, tile col, bytes) and the overview piece
#: (level, row px, col px, float32) too small to be a whole tile, for the assembler to complete
BlockOut = list[tuple[list[tuple[int, int, int, bytes]], tuple[int, int, int, np.ndarray] | None]]


def compute_block(bp: BlockPlan, y: int, x: int) -> BlockOut:
    """Read block (``y``, ``x``), evaluate every index and compress what can be compressed here."""
    (h, w), (cy, cx) = bp.levels[0], bp.chunk
    win = Window(x, y, min(cx, w - x), min(cy, h - y))
    # opened per block: ~2 ms against ~100 ms of work, and no handle outlives the computation
    # (a cached one would keep a replaced mosaic's old inode, and its disk space, alive)
    with rasterio.open(bp.path) as src:
        raw = src.read(list(bp.read), window=win)
    values = [np.empty(raw.shape[1:], np.float32) for _ in bp.jobs]
    # evaluated in strips of rows: a formula's temporaries then stay in the CPU cache, twice as
    # fast as whole-block arrays (same operations in the same order, so the same values)
    step = max(8, STRIP_PX // raw.shape[2])
    for r in range(0, raw.shape[1], step):
        rows = slice(r, r + step)
        arrays = {c: _to_float(raw[i, rows], bp.nodata, bp.scale) for i, c in enumerate(bp.codes)}
        for job, v in zip(bp.jobs, values, strict=True):
            v[rows] = evaluate_block(job, arrays)
            if bp.alpha:
                v[rows][raw[-1, rows] == 0] = np.nan
    out: BlockOut = []
    for v in values:
        out.append(_pyramid(v, y, x, bp.levels))
    return out


def _pyramid(v: np.ndarray, y: int, x: int, levels: Sequence[tuple[int, int]]
             ) -> tuple[list[tuple[int, int, int, bytes]], tuple[int, int, int, np.ndarray] | None]:
    """Compress ``v`` (origin ``y``, ``x``) and its overview levels while they are whole tiles."""
    tiles: list[tuple[int, int, int, bytes]] = []
    lv = 0
    while True:
        (lh, lw), (h, w) = levels[lv], v.shape
        whole = (y % TILE == 0 and x % TILE == 0 and (h % TILE == 0 or y + h == lh)
                 and (w % TILE == 0 or x + w == lw))
        if not whole:  # part of a tile: the assembler pastes it with its neighbours
            return tiles, (lv, y, x, v)
        nx = -(-w // TILE)
        for k, data in enumerate(compress_tiles(v)):
            tiles.append((lv, y // TILE + k // nx, x // TILE + k % nx, data))
        if lv + 1 == len(levels):
            return tiles, None
        v, y, x, lv = decimate(v), y // 2, x // 2, lv + 1


class Sink:
    """The caller's side: hands each block's tiles and pieces to the assemblers (thread-safe)."""

    def __init__(self, assemblers: Sequence[Assembler]) -> None:
        self.assemblers = list(assemblers)

    def push(self, out: BlockOut) -> None:
        for asm, (tiles, piece) in zip(self.assemblers, out, strict=True):
            for lv, ty, tx, data in tiles:
                asm.add_tile(lv, ty, tx, data)
            if piece is not None:
                asm.add_piece(*piece)


def _compute_and_push(bp: BlockPlan, y: int, x: int, sink: Sink) -> None:
    sink.push(compute_block(bp, y, x))


def _chunk(info: Mapping[str, Any]) -> tuple[int, int]:
    """Block shape: tile-aligned, a whole number of the source's tiles where it can be, and the
    full width for a striped source (a strip is decoded whole whatever part is read)."""
    (by, bx), w = info["block"], info["shape"][1]
    up = lambda n: -(-n // TILE) * TILE  # noqa: E731 - round up to whole output tiles
    if bx >= w and w > CHUNK_PX:
        return up(max(by, TILE)), up(w)
    return up(max(by, CHUNK_PX)), up(max(bx, CHUNK_PX))


# -- scheduling --------------------------------------------------------------------------------

@contextlib.contextmanager
def _scheduler(scheduler: str | Any | None) -> Iterator[tuple[str, Any]]:
    """Yield ("local", name) or ("distributed", client) for a scheduler spec."""
    sched = belcheer_scheduler.parse(scheduler)
    if not sched.distributed:
        yield "local", sched.kind
        return
    with belcheer_scheduler.client(sched) as client:
        yield "distributed", client


def _execute(bp: BlockPlan, kind: str, sched: Any, sink: Sink, progress: ProgressCallback,
             message: str) -> None:
    """Run every block. Local threads push their results themselves (no copy); process and
    distributed workers return them, a bounded number in flight, and the caller pushes."""
    origins = bp.origins()
    total = len(origins)
    if kind == "local" and sched in ("threads", "synchronous"):
        import dask.local
        import dask.threaded
        from dask.callbacks import Callback

        graph = {("belcheer-index-block", i): (_compute_and_push, bp, y, x, sink)
                 for i, (y, x) in enumerate(origins)}
        done = [0]

        def posttask(key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
            done[0] += 1
            progress(done[0] / total, message)

        # named directly: dask.base.get_scheduler() would import distributed (~1.5 s) for a client
        get = dask.threaded.get if sched == "threads" else dask.local.get_sync
        with Callback(posttask=posttask):
            get(graph, list(graph))
        return
    if kind == "local":  # processes
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        import dask

        workers = dask.config.get("num_workers", None) or os.cpu_count() or 1
        ctx = multiprocessing.get_context(dask.config.get("multiprocessing.context", "spawn"))
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            _stream(origins, lambda y, x: pool.submit(compute_block, bp, y, x),
                    lambda fs: wait(fs, return_when=FIRST_COMPLETED),
                    IN_FLIGHT_PER_WORKER * workers, sink, progress, message)
        return
    from distributed import wait as dwait

    workers = max(sum(sched.nthreads().values()), 1)
    with sched.as_current():  # wait() looks up the current client
        _stream(origins, lambda y, x: sched.submit(compute_block, bp, y, x, pure=False),
                lambda fs: dwait(fs, return_when="FIRST_COMPLETED"),
                IN_FLIGHT_PER_WORKER * workers, sink, progress, message)


def _stream(origins: Iterable[tuple[int, int]], submit: Callable[[int, int], Any],
            wait_first: Callable[[set[Any]], Any], in_flight: int, sink: Sink,
            progress: ProgressCallback, message: str) -> None:
    """Keep ``in_flight`` blocks submitted; push each result as it arrives (errors re-raised)."""
    todo = list(origins)
    total, done = len(todo), 0
    todo.reverse()
    pending: set[Any] = set()
    while todo or pending:
        while todo and len(pending) < in_flight:
            pending.add(submit(*todo.pop()))
        finished, pending = wait_first(pending)
        pending = set(pending)
        for f in finished:
            sink.push(f.result())  # re-raises a worker's error here
            done += 1
            progress(done / total, message)


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
    if not isinstance(source, Product | str | os.PathLike):
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
    if out_dir is None:
        return _lazy_file(path, jobs, mapping)
    with rasterio.open(path) as src:
        info = {"nodata": src.nodata, "crs": src.crs, "transform": src.transform,
                "shape": (src.height, src.width), "scale": float(src.scales[0] or 1.0),
                "block": src.block_shapes[0]}
    alpha = _alpha_band(path)
    needed = tuple(sorted({c for j in jobs for c in j.codes}))
    h, w = info["shape"]
    bp = BlockPlan(path=str(path), read=tuple(mapping[c] + 1 for c in needed) + ((alpha,) if alpha else ()),
                   codes=needed, alpha=alpha is not None, nodata=info["nodata"], scale=info["scale"],
                   # the catalogue entry (read-only mappings) stays home: workers get plain jobs
                   jobs=tuple(replace(j, definition=None) for j in jobs),
                   levels=((h, w), *overview_shapes(h, w)), chunk=_chunk(info))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    assemblers: list[Assembler] = []
    results: dict[str, Path] = {}
    try:
        assemblers = [Assembler(out_dir, h, w) for _ in jobs]
        with _scheduler(scheduler) as (kind, sched):
            _execute(bp, kind, sched, Sink(assemblers), lambda f, m: cb(0.9 * f, m),
                     f"computing {', '.join(j.name for j in jobs)}")
        for i, (j, asm) in enumerate(zip(jobs, assemblers, strict=True)):
            cb(0.9 + 0.1 * i / len(jobs), f"writing {j.name} COG")
            target = out_dir / f"{j.name.lower()}.tif"
            tags = {"formula": j.formula.text, "index": j.name, "relative": str(bool(relative)),
                    "constants": ",".join(f"{k}={v:g}" for k, v in j.constants.items())}
            with atomic_path(target) as tmp:
                asm.write(tmp, template_tags(h, w, info["crs"], info["transform"], j.name, tags))
            # drop the tiles now: dirty pages of a deleted file are never written back, which
            # leaves the disk to the next COG (at 20000² each holds ~1.7 GB)
            asm.close()
            results[j.name] = target
    finally:
        for asm in assemblers:
            asm.close()
    cb(1.0, "indices done")
    return results


def _lazy_file(path: Path, jobs: Sequence[IndexJob], mapping: Mapping[str, int]
               ) -> dict[str, xr.DataArray]:
    """Lazy DataArrays of the indices over a raster opened with rioxarray."""
    import dask.array as da
    import xarray as xr

    arr, info = open_source(path)
    alpha = _alpha_band(path)
    needed = sorted({c for j in jobs for c in j.codes})
    band_arrays = {c: arr.data[mapping[c]] for c in needed}
    alpha_arr = arr.data[alpha - 1] if alpha else None
    out: dict[str, xr.DataArray] = {}
    tmpl = arr.isel(band=0, drop=True)
    for j in jobs:
        ins = [band_arrays[c] for c in j.codes] + ([alpha_arr] if alpha_arr is not None else [])
        s = da.map_blocks(_index_block, *ins, job=replace(j, definition=None), codes=j.codes,
                          nodata=info["nodata"], scale=info["scale"],
                          has_alpha=alpha_arr is not None, dtype=np.float32,
                          meta=np.empty((0, 0), np.float32))
        out[j.name] = xr.DataArray(s, coords=tmpl.coords, dims=tmpl.dims, name=j.name,
                                   attrs={"formula": j.formula.text, "_FillValue": np.nan})
    return out


def _compute_dataarray(arr: xr.DataArray, indices: Sequence[str],
                       formulas: Mapping[str, str] | None) -> dict[str, xr.DataArray]:
    import dask.array as da
    import xarray as xr

    if not isinstance(arr, xr.DataArray):
        raise InputError(f"source must be a raster path, a Product or a DataArray, not "
                         f"{type(arr).__name__}")
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



def compute_survey(ws: Any, survey: str | Survey, indices: Sequence[str], *,
                   formulas: Mapping[str, str] | None = None, scheduler: str | Any | None = None,
                   progress: ProgressCallback | None = None, relative: bool = False) -> list[Product]:
    """Compute indices for a survey's ``reflectance`` product (else its ``orthomosaic``) and
    register one INDEX product per index, named by the index in lowercase.

    A multispectral survey's indices come from its reflectance mosaic, made with the survey's
    stored calibration (each index product records which, in ``metadata["calibration"]``); a
    reflectance mosaic made with an earlier calibration is refused. Indices from its DN mosaic
    exist only with ``relative=True`` and are flagged ``relative`` with the reason. RGB
    orthomosaics give relative indices: fine for patterns within one flight, not comparable
    between dates. ``survey`` is a survey's name or the survey itself, already loaded.
    """
    from belcheer.errors import NotFoundError, ProcessingError
    from belcheer.models import ProductKind

    multispectral = _is_multispectral(ws, survey)
    survey = survey if isinstance(survey, str) else survey.name
    src = None
    if not relative:
        try:
            src = ws.product(survey, "reflectance")
        except NotFoundError:
            src = None
    if src is not None:
        rec = ws.catalog.calibration(survey)
        made = (src.metadata.get("calibration") or {}).get("id")
        if rec is not None and made and made != rec.id:
            raise ProcessingError(
                f"survey {survey!r} was recalibrated (now {rec.method}, {rec.id}) after its "
                f"reflectance mosaic was made (with {made}); run `belcheer mosaic {survey}` again "
                "so indices use the current calibration")
    else:
        try:
            src = ws.product(survey, "orthomosaic")
        except NotFoundError:
            raise NotFoundError(f"survey {survey!r} has no reflectance or orthomosaic product yet; "
                                f"run `belcheer mosaic {survey}` first") from None
        if multispectral and not relative:
            raise ProcessingError(
                f"survey {survey!r} is multispectral but has only a DN mosaic: indices of DN are "
                f"not reflectance and not comparable between dates. Run `belcheer mosaic {survey}` "
                "(it calibrates the survey first), or give --relative for DN indices flagged as such")
    relative = relative or src.kind is not ProductKind.REFLECTANCE or bool(src.relative)
    products: list[Product] = []
    # a local file of the source (an S3 object is copied once, by ETag) for the block workers;
    # the COGs are written locally and put into the store one by one
    with ws.product_file(src) as local, ws.staging_dir(survey) as out_dir:
        paths = compute(replace(src, uri=local.as_uri()), indices, out_dir=out_dir, formulas=formulas,
                        scheduler=scheduler, progress=progress, relative=relative)
        assert isinstance(paths, dict)
        uris = {name: ws.put_product(Path(path), survey, Path(path).stem) for name, path in paths.items()}
    for name in paths:
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
        if relative:
            meta["relative_reason"] = ("multispectral DN, not reflectance (--relative)" if multispectral
                                       else "RGB: relative, not comparable between dates")
        products.append(ws.add_product(Product(
            id="", survey=survey, kind=ProductKind.INDEX, name=name.lower(), uri=uris[name],
            epsg=src.epsg, bands=(Band(name=name.lower(), label=name),), units=None,
            relative=relative, metadata=meta)))
    return products


def _is_multispectral(ws: Any, survey: str | Survey) -> bool:
    """True when the survey's frames are a multispectral camera's (an imported orthophoto has
    no frames: it is taken as it is)."""
    from belcheer.errors import BelcheerError

    try:
        return bool(ws.load_survey(survey).is_multispectral)
    except BelcheerError:  # no such survey: the product lookup below says so
        return False

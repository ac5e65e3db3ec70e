"""Cloud-Optimized GeoTIFFs: the one way belcheer turns a raster into a COG.

GDAL's own COG driver does it (512 px tiles, internal overviews down to one tile, the layout
readers with range requests expect), written to a temporary file beside the target and renamed
into place, so a failed write leaves nothing. Stages that produce a raster block by block write a
tiled GeoTIFF first (:func:`cog_writer`), since GDAL's COG driver can only copy a finished
raster. The index stage's tile-parallel assembler (``belcheer.indices.cog``) writes the same
layout from tiles compressed on the scheduler's workers.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import rasterio

from belcheer.fileio import atomic_path

#: tile edge of every COG and of its overviews, px
BLOCKSIZE = 512


def to_cog(src: str | Path | Any, out: str | Path, *, compress: str = "DEFLATE", level: int | None = None,
           predictor: bool = True, overview_resampling: str | None = "AVERAGE",
           threads: int = 2) -> Path:
    """Copy ``src`` (a path or an open rasterio dataset) to ``out`` as a COG, atomically.

    ``compress`` is GDAL's codec (DEFLATE, ZSTD, …) at ``level`` (None: GDAL's default);
    ``predictor`` applies the horizontal or floating-point predictor GDAL picks for the data
    type; ``overview_resampling`` is GDAL's resampling for the overviews (AVERAGE for
    continuous values, NEAREST for classes; None: the driver's default). Band descriptions,
    tags, nodata and masks are kept. ``threads`` is GDAL's compression thread count."""
    out = Path(out)
    options: dict[str, Any] = {"BLOCKSIZE": BLOCKSIZE, "COMPRESS": compress, "BIGTIFF": "IF_SAFER",
                               "OVERVIEWS": "IGNORE_EXISTING"}
    if level is not None:
        options["LEVEL"] = level
    if predictor:
        options["PREDICTOR"] = "YES"
    if overview_resampling is not None:
        options["OVERVIEW_RESAMPLING"] = overview_resampling.upper()
    from rasterio.shutil import copy as rio_copy

    with atomic_path(out) as tmp, rasterio.Env(GDAL_NUM_THREADS=str(threads)):
        rio_copy(src, tmp, driver="COG", **options)
    return out


@contextlib.contextmanager
def cog_writer(out: str | Path, profile: Mapping[str, Any], **cog: Any) -> Iterator[Any]:
    """Yield a tiled GeoTIFF opened for writing with ``profile`` (driver, tiling and compression
    are set here); when the block ends without error it becomes the COG ``out``
    (:func:`to_cog` with ``cog``'s options). The staging file lives beside ``out`` (same disk)
    and is removed either way; rasterio's direct COG writing would hold the whole raster in
    memory until it closes. The staging file is ZSTD level 1: it is read once, by the copy, and
    DEFLATE's default level made writing it a third of the simulator's run."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging_profile = {**profile, "driver": "GTiff", "tiled": True, "blockxsize": BLOCKSIZE,
                       "blockysize": BLOCKSIZE, "compress": "zstd", "zstd_level": 1,
                       "BIGTIFF": "IF_SAFER"}
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.stem}.") as tmpdir:
        staging = Path(tmpdir) / "staging.tif"
        with rasterio.open(staging, "w", **staging_profile) as dst:
            yield dst
        to_cog(staging, out, **cog)

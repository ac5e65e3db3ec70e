"""Block-wise raster algebra into a Cloud-Optimized GeoTIFF, memory bounded by the block size.

Inputs are read window by window on the grid of the first input; other inputs on a different
grid are warped onto it on the fly with a rasterio ``WarpedVRT`` (so two surveys of the same
area line up pixel for pixel). The result goes to a tiled temporary GeoTIFF and is then
made a COG by belcheer.cog, atomically.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from belcheer.cog import cog_writer

BLOCK = 1024

BlockFn = Callable[[list[np.ndarray], Window, Any], np.ndarray]


def map_blocks_to_cog(inputs: Sequence[str | Path], out: str | Path, fn: BlockFn, *, dtype: str,
                      nodata: float | int | None, band: int = 1, block: int = BLOCK,
                      resampling: Resampling = Resampling.bilinear,
                      overview_resampling: str = "nearest") -> Path:
    """Apply ``fn(arrays, window, window_transform)`` over blocks of ``inputs`` (band ``band``
    of each, float arrays with nodata as NaN) and write its result as a single-band COG at
    ``out``. The output grid and CRS are those of ``inputs[0]``."""
    out = Path(out)
    with contextlib.ExitStack() as stack:
        first = stack.enter_context(rasterio.open(inputs[0]))
        srcs: list[Any] = [first]
        for p in inputs[1:]:
            s = stack.enter_context(rasterio.open(p))
            same = (s.crs == first.crs and s.transform == first.transform and s.shape == first.shape)
            srcs.append(s if same else stack.enter_context(
                WarpedVRT(s, crs=first.crs, transform=first.transform, width=first.width,
                          height=first.height, resampling=resampling, src_nodata=s.nodata,
                          nodata=np.nan if s.dtypes[0].startswith("float") else s.nodata)))
        profile = {"dtype": dtype, "count": 1, "width": first.width, "height": first.height,
                   "crs": first.crs, "transform": first.transform, "nodata": nodata}
        with cog_writer(out, profile, overview_resampling=overview_resampling) as dst:
            for row in range(0, first.height, block):
                for col in range(0, first.width, block):
                    win = Window(col, row, min(block, first.width - col), min(block, first.height - row))
                    arrays = [_read(s, band, win) for s in srcs]
                    res = fn(arrays, win, first.window_transform(win))
                    dst.write(np.asarray(res, dtype=dtype), 1, window=win)
    return out


def _read(src: Any, band: int, win: Window) -> np.ndarray:
    """A window as float64 with nodata (and masked pixels) as NaN."""
    arr = src.read(band, window=win, masked=True)
    return np.ma.filled(arr.astype("float64"), np.nan)


def write_array_cog(array: np.ndarray, out: str | Path, *, transform: Any, crs: Any, dtype: str,
                    nodata: float | int | None) -> Path:
    """Write one in-memory band as a COG (for arrays that are already in memory)."""
    out = Path(out)
    h, w = array.shape
    profile = {"dtype": dtype, "count": 1, "width": w, "height": h, "crs": crs, "transform": transform,
               "nodata": nodata}
    # classes (integers) keep their values in the overviews; continuous values are averaged
    resampling = "NEAREST" if np.issubdtype(np.dtype(dtype), np.integer) else "AVERAGE"
    with cog_writer(out, profile, overview_resampling=resampling) as dst:
        dst.write(array.astype(dtype), 1)
    return out

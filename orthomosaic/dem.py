"""A surface model (any CRS) resampled onto the output grid with rasterio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from odc.geo.geobox import GeoBox
from rasterio.warp import Resampling, reproject

from belcheer.errors import InputError


def dsm_on_grid(path: Path, geobox: GeoBox) -> np.ndarray:
    """Heights (metres, float32, NaN where the DSM has no data) on ``geobox``'s pixels."""
    try:
        with rasterio.open(path) as src:
            out = np.full(geobox.shape, np.nan, np.float32)
            reproject(rasterio.band(src, 1), out, dst_transform=geobox.affine,
                      dst_crs=geobox.crs.to_wkt(), dst_nodata=np.nan, resampling=Resampling.bilinear)
    except rasterio.RasterioIOError as exc:
        raise InputError(f"cannot read the surface model {path}: {exc}") from exc
    if not np.isfinite(out).any():
        raise InputError(f"the surface model {path} does not cover the survey area")
    return out

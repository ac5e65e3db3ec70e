"""Pixel checks on a cheap, reduced-resolution read: blur, black and saturated frames.

The read is decimated so a 4000 × 2250 JPEG costs ≈ 1/64 of a full decode: Pillow's JPEG draft
mode lets libjpeg scale by 1/2, 1/4 or 1/8 inside the DCT; uncompressed TIFFs (all the
multispectral cameras) are read with tifffile and strided, compressed ones through GDAL with a
smaller ``out_shape`` (GDAL uses overviews when the file has them). The target is a long side of
at least :data:`TARGET_LONG_SIDE` pixels.

**Blur** is the variance of the Laplacian (OpenCV, 3 × 3) of the decimated frame after its
1st–99th percentile range is stretched to 0…1. The stretch removes the camera's bit depth,
exposure and gain; the fixed working resolution removes the sensor's pixel count. A frame is
``blurry`` below :data:`BLUR_THRESHOLD` (sharp real frames measure 0.01–0.12; a Gaussian blur of
one working pixel, ≈ 8 full-resolution pixels on a 4000-px frame, brings them to ≈ 0.002–0.003).

**Black**: the 99th percentile sits within 2 % of full scale above the sensor's black level.
**Saturated**: more than :data:`SATURATED_ERROR` of the pixels at ≥ 98 % of full scale
(error), or more than :data:`SATURATED_WARNING` (warning).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

TARGET_LONG_SIDE = 500
BLUR_THRESHOLD = 0.003
BLACK_FRACTION = 0.02
SATURATED_LEVEL = 0.98
SATURATED_ERROR = 0.5
SATURATED_WARNING = 0.05
#: largest uncompressed TIFF (samples) read whole before striding
MAX_DIRECT_READ_SAMPLES = 60_000_000
#: the decimated read never holds more pixels than this, whatever the frame's declared size
MAX_REDUCED_PIXELS = 4_000_000


@dataclass(frozen=True)
class PixelStats:
    """What the decimated read measured. ``blur`` is the normalised Laplacian variance,
    ``p99`` the 99th percentile in DN, ``saturated_fraction`` the share of pixels at full scale,
    ``full_scale`` the maximum DN of the format, ``shape`` the decimated (rows, cols)."""

    blur: float
    p99: float
    saturated_fraction: float
    full_scale: float
    shape: tuple[int, int]


def _factor(long_side: int, target: int = TARGET_LONG_SIDE) -> int:
    factor = 1
    while factor < 8 and long_side // (factor * 2) >= target:
        factor *= 2
    return factor


def read_decimated_jpeg(path: Path) -> tuple[np.ndarray, float]:
    """Grey-level pixels of a JPEG decoded at 1/2…1/8 scale (libjpeg DCT scaling), and its full scale."""
    from PIL import Image

    with Image.open(path) as im:
        w, h = im.size
        f = _factor(max(w, h))
        _check_reduced(w // f, h // f)
        im.draft("L", (w // f, h // f))
        arr = np.asarray(im.convert("L"), dtype=np.float32)
    return arr, 255.0


def read_decimated_tiff(path: Path) -> tuple[np.ndarray, float]:
    """Mean of the first three bands of a TIFF at reduced resolution, and its full scale.

    Uncompressed TIFFs (every multispectral camera writes them) are read with tifffile and
    strided; compressed ones go through GDAL's decimated read."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        # whole-file reads only for frame-sized images; big rasters go through GDAL's decimation
        if page.compression == 1 and page.size <= MAX_DIRECT_READ_SAMPLES:
            arr = page.asarray()
            axes = page.axes
            if "S" in axes:
                arr = np.moveaxis(arr, axes.index("S"), -1)[..., :3]
            f = _factor(max(arr.shape[:2]))
            arr = arr[::f, ::f]
            full = float(np.iinfo(arr.dtype).max) if arr.dtype.kind in "ui" else float(np.nanmax(arr) or 1.0)
            gray = arr.astype(np.float32)
            return (gray.mean(axis=-1) if gray.ndim == 3 else gray), full
    return _read_decimated_gdal(path)


def _read_decimated_gdal(path: Path) -> tuple[np.ndarray, float]:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    from belcheer.gdalenv import raster_driver

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        # no sibling files (.aux.xml, .ovr) and only the driver the content calls for: a frame
        # is never a VRT or a URL
        with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"), \
                rasterio.open(path, driver=raster_driver(path)) as src:
            f = _factor(max(src.width, src.height))
            out_h, out_w = max(src.height // f, 1), max(src.width // f, 1)
            _check_reduced(out_w, out_h)
            bands = list(range(1, min(src.count, 3) + 1))
            arr = src.read(bands, out_shape=(len(bands), out_h, out_w))
            dtype = np.dtype(src.dtypes[0])
    full = float(np.iinfo(dtype).max) if dtype.kind in "ui" else float(np.nanmax(arr) or 1.0)
    return arr.astype(np.float32).mean(axis=0), full


def _check_reduced(width: int, height: int) -> None:
    if width * height > MAX_REDUCED_PIXELS:
        raise ValueError(f"the reduced read would be {width} × {height} pixels, more than "
                         f"{MAX_REDUCED_PIXELS:,}")


def measure(gray: np.ndarray, full_scale: float) -> PixelStats:
    """Blur, brightness and saturation of a decimated grey image (DN, any bit depth)."""
    finite = gray[np.isfinite(gray)]
    if finite.size == 0:
        return PixelStats(0.0, 0.0, 0.0, full_scale, gray.shape[:2])
    lo, p99 = np.percentile(finite, [1, 99])
    span = max(float(p99 - lo), 1e-6)
    norm = np.clip((np.nan_to_num(gray, nan=float(lo)) - lo) / span, 0.0, 1.0).astype(np.float32)
    blur = float(cv2.Laplacian(norm, cv2.CV_32F, ksize=1).var()) if min(norm.shape) >= 3 else 0.0
    sat = float(np.mean(finite >= SATURATED_LEVEL * full_scale))
    return PixelStats(blur=blur, p99=float(p99), saturated_fraction=sat, full_scale=full_scale,
                      shape=(int(gray.shape[0]), int(gray.shape[1])))


def is_black(stats: PixelStats, black_level: float | None = None) -> bool:
    """True when nearly all pixels sit at the sensor's black level (lens cap, night, dead sensor)."""
    floor = black_level or 0.0
    return stats.p99 <= floor + BLACK_FRACTION * max(stats.full_scale - floor, 1.0)


def is_blurry(stats: PixelStats) -> bool:
    """True below :data:`BLUR_THRESHOLD` (black frames have no texture either: check those first)."""
    return stats.blur < BLUR_THRESHOLD

"""Reading captures as images the mosaic needs: a grey image for features, full band stacks for
rendering (band-aligned, optionally radiometrically corrected), at a chosen decimation.

An RGB capture is one JPEG read as red/green/blue. A multispectral capture is one file per band;
bands are resampled onto the primary band's undistorted grid (see :mod:`.bandalign`), so the
capture then behaves as one distortion-free pinhole camera with the primary band's K.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from belcheer.errors import InputError
from belcheer.models import Band, Camera, Capture, Frame, Intrinsics
from belcheer.orthomosaic.bandalign import (
    BandAlignment,
    align_bands,
    read_band,
    to_uint8,
    warp_maps,
)
from belcheer.orthomosaic.geometry import CameraModel
from belcheer.storage import frame_file
from belcheer.types import FrameCorrection

#: nominal centres of an RGB camera's broad bands, nm
RGB_BANDS: tuple[Band, ...] = (Band("red", 650.0, label="R"), Band("green", 550.0, label="G"),
                               Band("blue", 470.0, label="B"))
_PRIMARY_ORDER = ("green", "red", "rededge", "blue", "nir")


def is_rgb_capture(capture: Capture) -> bool:
    return len(capture.frames) == 1 and capture.frames[0].band.name in {"rgb", "red", "green", "blue"}


def output_bands(capture: Capture) -> tuple[Band, ...]:
    """The bands an orthomosaic of this camera carries, in band order."""
    if is_rgb_capture(capture):
        return RGB_BANDS
    return tuple(f.band for f in sorted(capture.frames, key=lambda f: f.band_index))


def primary_frame(capture: Capture) -> Frame:
    """The band all others are aligned to (green where present: sharp and well lit)."""
    by_name = {f.band.name: f for f in capture.frames}
    for name in _PRIMARY_ORDER:
        if name in by_name:
            return by_name[name]
    return capture.frames[0]


def camera_model(capture: Capture) -> CameraModel:
    """The pinhole model of the capture's working image (full resolution pixels)."""
    fr = primary_frame(capture)
    intr = fr.intrinsics
    if intr is None:
        raise InputError(f"frame {fr.path.name} has no intrinsics (focal length); ingest could not "
                         "read the camera model — add the camera to the camera table")
    cx, cy = intr.principal_point
    dist = tuple(float(v) for v in (tuple(intr.distortion) + (0.0,) * 5)[:5])
    calibrated = any(dist)
    if not is_rgb_capture(capture):
        dist = (0.0,) * 5  # bands are resampled onto the primary's undistorted grid
    return CameraModel(intr.width_px, intr.height_px, float(intr.focal_px), float(cx), float(cy),
                       dist, lens_calibrated=calibrated)  # type: ignore[arg-type]


def scaled_camera(cam: CameraModel, factor: float) -> CameraModel:
    """The camera model of an image decimated by ``factor`` (pixel-centre convention)."""
    if factor == 1:
        return cam
    return replace(cam, width=int(round(cam.width / factor)), height=int(round(cam.height / factor)),
                   f=cam.f / factor, cx=(cam.cx + 0.5) / factor - 0.5, cy=(cam.cy + 0.5) / factor - 0.5)


def _decimate(img: np.ndarray, factor: float) -> np.ndarray:
    if factor <= 1:
        return img
    h, w = img.shape[:2]
    size = (int(round(w / factor)), int(round(h / factor)))
    if img.ndim == 3 and img.shape[2] > 4:
        # OpenCV resizes at most 4 channels at once: a 5- or 10-band capture goes band by band
        return np.dstack([cv2.resize(img[..., i], size, interpolation=cv2.INTER_AREA)
                          for i in range(img.shape[2])])
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


_REDUCED = {1: (cv2.IMREAD_COLOR, cv2.IMREAD_GRAYSCALE),
            2: (cv2.IMREAD_REDUCED_COLOR_2, cv2.IMREAD_REDUCED_GRAYSCALE_2),
            4: (cv2.IMREAD_REDUCED_COLOR_4, cv2.IMREAD_REDUCED_GRAYSCALE_4),
            8: (cv2.IMREAD_REDUCED_COLOR_8, cv2.IMREAD_REDUCED_GRAYSCALE_8)}


def _reduction(frame: Frame, factor: float) -> int:
    """The largest JPEG decoder reduction (1, 2, 4 or 8) not above ``factor`` that divides the
    frame's size exactly, so the reduced pixel grid is the decimated grid (no drift)."""
    intr = frame.intrinsics
    if intr is None or frame.path.suffix.lower() not in (".jpg", ".jpeg"):
        return 1
    for k in (8, 4, 2):
        if k <= factor and intr.width_px % k == 0 and intr.height_px % k == 0:
            return k
    return 1


def read_rgb(frame: Frame, factor: float = 1.0, gray: bool = False) -> np.ndarray:
    """An RGB frame as (H, W, 3) uint8 in red, green, blue order (or (H, W) grey), decimated by
    ``factor``. JPEGs are decoded at 1/2, 1/4 or 1/8 scale where that suffices (the decoder
    skips the fine DCT coefficients: several times faster than decoding everything)."""
    k = _reduction(frame, factor)
    img = cv2.imread(str(frame_file(frame.path, frame.uri)), _REDUCED[k][1 if gray else 0])
    if img is None:
        raise InputError(f"cannot decode {frame.path}: the file is damaged or not an image")
    intr = frame.intrinsics
    if k > 1 and intr is not None and img.shape[:2] != (intr.height_px // k, intr.width_px // k):
        raise InputError(f"{frame.path} is {img.shape[1] * k}×{img.shape[0] * k} pixels but its "
                         f"metadata says {intr.width_px}×{intr.height_px}")
    if not gray:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return _decimate(img, factor / k)


def capture_alignment(capture: Capture, measure: bool = True) -> dict[str, BandAlignment] | None:
    """Band alignment of a multispectral capture (None for RGB)."""
    if is_rgb_capture(capture):
        return None
    frames = {f.band.name: f for f in capture.frames}
    images = {name: read_band(frame_file(f.path, f.uri)) for name, f in frames.items()}
    return align_bands(images, frames, primary_frame(capture).band.name, measure=measure)


def read_capture(capture: Capture, alignment: dict[str, BandAlignment] | None,
                 correction: FrameCorrection | None = None, factor: float = 1.0) -> np.ndarray:
    """The capture as (H, W, B) array in :func:`output_bands` order, decimated by ``factor``.

    RGB without correction stays uint8; anything corrected is float32 (NaN invalid);
    uncorrected multispectral keeps camera DN as float32 with NaN outside the aligned area.
    """
    if is_rgb_capture(capture):
        fr = capture.frames[0]
        if correction is None:
            return read_rgb(fr, factor)
        # a correction is per full-resolution pixel (vignetting, exposure): decode everything
        return _decimate(np.asarray(correction(fr, read_rgb(fr)), dtype=np.float32), factor)
    primary = primary_frame(capture)
    intr = primary.intrinsics
    shape = (intr.height_px, intr.width_px) if intr else read_band(frame_file(primary.path, primary.uri)).shape
    layers = []
    for fr in sorted(capture.frames, key=lambda f: f.band_index):
        raw = read_band(frame_file(fr.path, fr.uri))
        val = np.asarray(correction(fr, raw), dtype=np.float32) if correction else raw.astype(np.float32)
        al = alignment[fr.band.name] if alignment else BandAlignment(fr.band.name, np.eye(3), 0, 0, "none")
        if al.flow is not None:
            # a close-range capture's own parallax field: no other capture shares these maps
            mx, my = warp_maps(al, fr, None, shape)
        else:
            mx, my = _band_maps(al.band, al.homography.tobytes(), fr.intrinsics, shape)
        layers.append(cv2.remap(val, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                borderValue=np.nan))
    return _decimate(np.dstack(layers), factor)


@functools.lru_cache(maxsize=12)
def _band_maps(band: str, homography: bytes, intrinsics: Intrinsics | None,
               shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`warp_maps` cached by band, homography and lens: with one rig alignment per survey
    every capture of a band shares the same maps, which are costly (a projection per pixel)."""
    h = np.frombuffer(homography, dtype=np.float64).reshape(3, 3)
    stub = Frame(path=Path(band), capture_id="", band=Band(band), band_index=0,
                 camera=Camera("", ""), intrinsics=intrinsics, pose=None, time=None)
    return warp_maps(BandAlignment(band, h, 0.0, 0, "cached"), stub, None, shape)


def feature_image(capture: Capture, max_side: int = 1400) -> tuple[np.ndarray, float, dict[str, float]]:
    """Grey uint8 image for feature detection, its decimation factor and simple quality measures.

    Quality: ``mean`` brightness (0–255) and ``sharpness`` (variance of the Laplacian on the
    decimated image) — used to drop black and blurry frames.
    """
    if is_rgb_capture(capture):
        fr = capture.frames[0]
        intr = fr.intrinsics
        factor = max(1.0, max(intr.width_px, intr.height_px) / max_side) if intr else 1.0
        small = read_rgb(fr, factor, gray=True)  # JPEGs decoded at 1/2, 1/4… where that suffices
        if max(small.shape) > max_side:  # no intrinsics to size it by
            factor = max(small.shape) / max_side
            small = _decimate(small, factor)
        mean = float(small.mean())
    else:
        fr = primary_frame(capture)
        raw = read_band(frame_file(fr.path, fr.uri))
        top = float(np.iinfo(raw.dtype).max) if np.issubdtype(raw.dtype, np.integer) else 1.0
        mean = float(np.nanmean(raw) / top * 255)
        intr = fr.intrinsics
        if intr is not None and any(intr.distortion):
            raw = cv2.undistort(raw.astype(np.float32), np.array(intr.matrix()),
                                np.asarray(intr.distortion, dtype=np.float64))
        # bright shrubs and stones set a plain stretch's range and leave the pasture between
        # them flat grey: local contrast equalisation restores the texture SIFT needs, so
        # matches are not left to a few look-alike blobs
        gray = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(8, 8)).apply(to_uint8(raw))
        factor = max(1.0, max(gray.shape) / max_side)
        small = _decimate(gray, factor)
    sharp = float(cv2.Laplacian(small, cv2.CV_64F).var())
    return small, factor, {"mean": mean, "sharpness": sharp}


@dataclass
class FrameCache:
    """A thread-safe LRU cache of decoded, decimated captures, bounded by memory: never all
    frames at once, but enough of them (``budget_mb``, at least ``min_items``) that tiles
    rendered along the flight lines decode each frame about once."""

    loader: Callable[[str, float], np.ndarray]
    budget_mb: float = 400.0
    min_items: int = 4
    _items: OrderedDict = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __getstate__(self) -> dict:
        # shipped to other processes / Dask workers: send the loader, not the decoded frames
        return {"loader": self.loader, "budget_mb": self.budget_mb, "min_items": self.min_items}

    def __setstate__(self, state: dict) -> None:
        self.loader, self.budget_mb, self.min_items = state["loader"], state["budget_mb"], state["min_items"]
        self._items, self._lock = OrderedDict(), threading.Lock()

    def get(self, capture_id: str, factor: float) -> np.ndarray:
        key = (capture_id, factor)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        img = self.loader(capture_id, factor)
        with self._lock:
            self._items[key] = img
            total = sum(v.nbytes for v in self._items.values())
            while len(self._items) > self.min_items and total > self.budget_mb * 1e6:
                total -= self._items.popitem(last=False)[1].nbytes
        return img

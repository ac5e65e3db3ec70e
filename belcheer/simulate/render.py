"""Rendering frames from the truth raster (inverse mapping with ``cv2.remap``).

For each output pixel: its undistorted ray (:func:`cameras.ray_grid`) is rotated into the world
by the shot's *true* attitude, intersected with the flat ground at ``ground_alt_m`` and looked
up (bilinear) in the truth reflectance grid. Rows are done in chunks to keep memory low.
"""

from __future__ import annotations

import cv2
import numpy as np

from belcheer.errors import ConfigError
from belcheer.simulate.cameras import CameraModel, ray_grid, rotation_world_from_camera
from belcheer.simulate.flight import Shot
from belcheer.simulate.scene import SCALE, Truth
from belcheer.simulate.spectra import BANDS, ENDMEMBERS


def ground_points(cam: CameraModel, shot: Shot, ground_alt_m: float,
                  rows: slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
    """UTM easting/northing (metres) where the rays of pixel rows ``rows`` meet the ground."""
    xn, yn = ray_grid(cam)
    xn, yn = xn[rows], yn[rows]
    R = rotation_world_from_camera(shot.yaw, shot.pitch, shot.roll)
    dx = R[0, 0] * xn + R[0, 1] * yn + R[0, 2]
    dy = R[1, 0] * xn + R[1, 1] * yn + R[1, 2]
    dz = R[2, 0] * xn + R[2, 1] * yn + R[2, 2]
    t = (ground_alt_m - shot.alt_abs_m) / dz
    return shot.x + t * dx, shot.y + t * dy


def render_reflectance(truth: Truth, cam: CameraModel, shot: Shot, ground_alt_m: float,
                       chunk_rows: int = 256) -> np.ndarray:
    """Surface reflectance seen by each pixel, float32 (band, row, col) in ``cam.bands`` order
    (RGB cameras get red, green, blue)."""
    gb = truth.geobox
    res = float(gb.resolution.x)
    left, top = gb.transform.c, gb.transform.f
    h, w = gb.shape
    idx = [BANDS.index(b) for b in cam.bands]
    out = np.empty((len(idx), cam.height_px, cam.width_px), np.float32)
    for r0 in range(0, cam.height_px, chunk_rows):
        r1 = min(cam.height_px, r0 + chunk_rows)
        e, n = ground_points(cam, shot, ground_alt_m, slice(r0, r1))
        mx = ((e - left) / res - 0.5).astype(np.float32)
        my = ((top - n) / res - 0.5).astype(np.float32)
        if mx.min() < 0 or my.min() < 0 or mx.max() > w - 1 or my.max() > h - 1:
            raise ConfigError(f"frame {shot.capture_id} sees beyond the simulated scene; "
                              "lower the altitude or enlarge the scene margin")
        for k, bi in enumerate(idx):
            out[k, r0:r1] = cv2.remap(truth.reflectance[bi], mx, my, cv2.INTER_LINEAR,
                                      borderMode=cv2.BORDER_REPLICATE)
    out /= SCALE
    return out


def panel_scene(cam: CameraModel, albedo: dict[str, float], rng: np.random.Generator,
                panel_px: int = 240) -> np.ndarray:
    """Reflectance (band, row, col) of the panel capture: a grey Lambertian panel of known
    ``albedo`` in a black frame, centred, on textured steppe soil, seen from 1 m."""
    h, w = cam.height_px, cam.width_px
    soil = ENDMEMBERS["soil"]
    tex = 1 + 0.05 * cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 2)
    out = np.empty((len(cam.bands), h, w), np.float32)
    y0, x0 = h // 2 - panel_px // 2, w // 2 - panel_px // 2
    for k, b in enumerate(cam.bands):
        img = soil[BANDS.index(b)] * tex
        img[y0 - 30:y0 + panel_px + 30, x0 - 30:x0 + panel_px + 30] = 0.04
        img[y0:y0 + panel_px, x0:x0 + panel_px] = albedo[b]
        out[k] = img
    return out


def panel_box(cam: CameraModel, panel_px: int = 240) -> tuple[int, int, int, int]:
    """(row0, col0, row1, col1) of the panel area in the panel capture, pixels."""
    y0, x0 = cam.height_px // 2 - panel_px // 2, cam.width_px // 2 - panel_px // 2
    return y0, x0, y0 + panel_px, x0 + panel_px

"""Positional accuracy of a mosaic: find surveyed checkerboard targets in it and compare.

Used by the synthetic-survey tests and the benchmark: each checkpoint is a square target
(two black quadrants, north-east and south-west, on white) whose centre has known UTM
coordinates. We locate it by normalised cross-correlation with a drawn template around the
expected position, refined to sub-pixel by a parabola through the correlation peak.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import rasterio
from rasterio.windows import from_bounds


@dataclass(frozen=True)
class CheckpointError:
    name: str
    found_x: float
    found_y: float
    dx: float
    dy: float
    score: float


def _template(size_m: float, res: float) -> np.ndarray:
    s = int(round(size_m / res))
    s += s % 2
    pad = int(round(0.3 / res))
    t = np.full((s + 2 * pad, s + 2 * pad), 255, np.uint8)
    c = pad + s // 2
    t[pad:c, c:pad + s] = 0  # north-east quadrant (rows grow southwards)
    t[c:pad + s, pad:c] = 0  # south-west quadrant
    return t


def _subpixel(r: np.ndarray, y: int, x: int) -> tuple[float, float]:
    def para(a: float, b: float, c: float) -> float:
        den = a - 2 * b + c
        return 0.0 if abs(den) < 1e-12 else 0.5 * (a - c) / den
    dx = para(r[y, x - 1], r[y, x], r[y, x + 1]) if 0 < x < r.shape[1] - 1 else 0.0
    dy = para(r[y - 1, x], r[y, x], r[y + 1, x]) if 0 < y < r.shape[0] - 1 else 0.0
    return y + dy, x + dx


def locate_target(path: Path, x: float, y: float, size_m: float, search_m: float = 6.0
                  ) -> tuple[float, float, float] | None:
    """UTM position (x, y) of the target centre nearest to (x, y) in the mosaic, and the
    correlation score (0–1); None if the search window is outside the mosaic."""
    with rasterio.open(path) as src:
        res = abs(src.transform.a)
        win = from_bounds(x - search_m, y - search_m, x + search_m, y + search_m, src.transform)
        win = win.round_offsets().round_lengths()
        data = src.read(window=win, boundless=True, fill_value=0).astype(np.float32)
        wt = src.window_transform(win)
    grey = data[:3].mean(axis=0) if data.shape[0] >= 3 else data[0]
    grey = cv2.normalize(grey, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    tmpl = _template(size_m, res)
    if grey.shape[0] < tmpl.shape[0] or grey.shape[1] < tmpl.shape[1]:
        return None
    r = cv2.matchTemplate(grey, tmpl, cv2.TM_CCOEFF_NORMED)
    _, score, _, (px, py) = cv2.minMaxLoc(r)
    fy, fx = (float(v) for v in _subpixel(r.astype(np.float64), py, px))
    cy = fy + tmpl.shape[0] / 2.0
    cx = fx + tmpl.shape[1] / 2.0
    gx, gy = wt * (cx, cy)
    return float(gx), float(gy), float(score)


def checkpoint_errors(path: Path, checkpoints: list[tuple[str, float, float, float]],
                      search_m: float = 6.0) -> list[CheckpointError]:
    """Errors (found − surveyed, metres) of checkpoints given as (name, x, y, size_m) in the
    mosaic's CRS."""
    out = []
    for name, x, y, size in checkpoints:
        found = locate_target(path, x, y, size, search_m)
        if found is None:
            continue
        fx, fy, score = found
        out.append(CheckpointError(name, fx, fy, fx - x, fy - y, score))
    return out

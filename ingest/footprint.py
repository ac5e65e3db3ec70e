"""Ground footprints and GSD from the pinhole model: pure maths, no I/O.

The four image corners are cast as rays through the pinhole camera, rotated by the pose
(yaw clockwise from north, DJI pitch with −90° = nadir, roll), and intersected with flat ground
``height_m`` below the camera. Axes: camera x right, y down, z along the optical axis; world
east-north-up with its origin at the camera's ground nadir point. Grid convergence between true
north and UTM grid north (≤ 2° in Mongolia) is ignored: this is an estimate for planning, overlap
checks and the web map, not the orthorectification itself.

Rays at or above the horizon (oblique frames) would meet the ground at infinity; their reach is
capped at :data:`MAX_RANGE_FACTOR` × height.
"""

from __future__ import annotations

import math

import numpy as np
from shapely.geometry import Polygon

from belcheer.models import Intrinsics

#: farthest a corner ray is allowed to reach, as a multiple of the height above ground
MAX_RANGE_FACTOR = 10.0

# camera axes (x right, y down, z forward) of a nadir camera whose image top points north
_NADIR = np.array([[1.0, 0.0, 0.0],
                   [0.0, -1.0, 0.0],
                   [0.0, 0.0, -1.0]])


def rotation(yaw_deg: float | None, pitch_deg: float | None, roll_deg: float | None) -> np.ndarray:
    """3×3 rotation from camera axes to east-north-up. Missing angles mean nadir, image top north."""
    yaw = math.radians(yaw_deg or 0.0)
    tilt = math.radians(90.0 + (pitch_deg if pitch_deg is not None else -90.0))
    roll = math.radians(roll_deg or 0.0)
    cz, sz = math.cos(-yaw), math.sin(-yaw)
    rz = np.array([[cz, -sz, 0.0], [sz, cz, 0.0], [0.0, 0.0, 1.0]])
    ct, st = math.cos(tilt), math.sin(tilt)
    rx = np.array([[1.0, 0.0, 0.0], [0.0, ct, -st], [0.0, st, ct]])  # tilts the view forward
    cr, sr = math.cos(roll), math.sin(roll)
    ry = np.array([[cr, 0.0, sr], [0.0, 1.0, 0.0], [-sr, 0.0, cr]])  # right side down
    return rz @ rx @ ry @ _NADIR


def ground_offsets(intr: Intrinsics, height_m: float, yaw_deg: float | None = None,
                   pitch_deg: float | None = None, roll_deg: float | None = None) -> np.ndarray:
    """East/north offsets (metres, shape 4×2) of the image corners (top-left, top-right,
    bottom-right, bottom-left) on flat ground ``height_m`` below the camera."""
    cx, cy = intr.principal_point
    w, h = intr.width_px, intr.height_px
    px = np.array([[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]])
    rays = np.column_stack([(px[:, 0] - cx) / intr.focal_px, (px[:, 1] - cy) / intr.focal_px, np.ones(4)])
    world = rays @ rotation(yaw_deg, pitch_deg, roll_deg).T
    out = np.empty((4, 2))
    reach = MAX_RANGE_FACTOR * height_m
    for i, (dx, dy, dz) in enumerate(world):
        horiz = math.hypot(dx, dy)
        if dz < 0:
            s = height_m / -dz
            if s * horiz <= reach:
                out[i] = (s * dx, s * dy)
                continue
        out[i] = (dx / horiz * reach, dy / horiz * reach) if horiz > 0 else (0.0, 0.0)
    return out


def footprint(easting: float, northing: float, intr: Intrinsics, height_m: float,
              yaw_deg: float | None = None, pitch_deg: float | None = None,
              roll_deg: float | None = None) -> Polygon:
    """The estimated ground footprint polygon in the projected CRS of ``easting, northing`` (metres)."""
    off = ground_offsets(intr, height_m, yaw_deg, pitch_deg, roll_deg)
    return Polygon([(easting + dx, northing + dy) for dx, dy in off])


def gsd_m(height_m: float, focal_px: float) -> float:
    """Ground sample distance at nadir, metres per pixel: height × pixel pitch / focal = height / focal_px."""
    return height_m / focal_px

"""Camera geometry: gimbal angles → rotation, pinhole + Brown projection, rays onto the ground.

World frame: the survey's UTM easting/northing (metres) minus a local origin, and height in
metres (``z`` up) — a local east-north-up frame, so the numbers stay small for the solver.
Camera frame: OpenCV's (x right, y down, z forward along the optical axis).
Pure functions over NumPy arrays; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.spatial.transform import Rotation

# camera axes (columns) in the world when the camera looks at the horizon towards north, level
_BASE = np.array([[1.0, 0.0, 0.0],
                  [0.0, 0.0, 1.0],
                  [0.0, -1.0, 0.0]])


def rotation_from_gimbal(yaw_deg: float, pitch_deg: float, roll_deg: float = 0.0) -> np.ndarray:
    """World→camera rotation matrix ``R`` (x_cam = R · (X − C)) from DJI-style gimbal angles.

    ``yaw`` is the heading of the optical axis (and of the image's top edge at nadir), degrees
    clockwise from north; ``pitch`` −90° is nadir, 0° the horizon; ``roll`` about the optical axis.
    """
    rz = Rotation.from_euler("z", -yaw_deg, degrees=True).as_matrix()
    rx = Rotation.from_euler("x", pitch_deg, degrees=True).as_matrix()
    rroll = Rotation.from_euler("z", roll_deg, degrees=True).as_matrix()
    r_wc = rz @ rx @ _BASE @ rroll  # columns: camera axes expressed in the world
    return r_wc.T


@dataclass(frozen=True)
class CameraModel:
    """Intrinsics shared by the frames of one camera: focal length and principal point in pixels
    of the full-resolution frame, OpenCV distortion ``(k1, k2, p1, p2, k3)``.

    ``lens_calibrated``: the camera wrote its own lens calibration (MicaSense
    ``PerspectiveDistortion``, DJI ``DewarpData``), applied already or held in ``dist``; the
    adjustment then keeps the radial terms as they are.
    """

    width: int
    height: int
    f: float
    cx: float
    cy: float
    dist: tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0)
    lens_calibrated: bool = False

    def with_params(self, f: float, k1: float, k2: float) -> CameraModel:
        return replace(self, f=float(f), dist=(float(k1), float(k2), *self.dist[2:]))

    def matrix(self) -> np.ndarray:
        return np.array([[self.f, 0, self.cx], [0, self.f, self.cy], [0, 0, 1.0]])


def project(points: np.ndarray, rotvec: np.ndarray, centre: np.ndarray, f: float, cx: float,
            cy: float, dist: np.ndarray | tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Project world points (N, 3) into one camera; returns pixels (N, 2) and depth (N,).

    ``rotvec`` is the world→camera rotation as a rotation vector (radians), ``centre`` the
    projection centre in the world frame (metres). Points behind the camera get depth ≤ 0.
    """
    r = Rotation.from_rotvec(rotvec).as_matrix()
    pc = (points - centre) @ r.T
    return distort_normalised(pc, f, cx, cy, dist)


def distort_normalised(pc: np.ndarray, f, cx, cy,
                       dist: np.ndarray | tuple) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame points (N, 3) → distorted pixels (N, 2) with the Brown–Conrady model.

    ``f``, ``cx``, ``cy`` and the five ``dist`` terms are scalars, or (N,) arrays giving each
    point its own camera (the adjustment's observations)."""
    k1, k2, p1, p2, k3 = (tuple(dist) + (0.0,) * 5)[:5]
    z = pc[..., 2]
    zs = np.where(np.abs(z) < 1e-9, 1e-9, z)
    x = pc[..., 0] / zs
    y = pc[..., 1] / zs
    r2 = x * x + y * y
    radial = 1.0 + k1 * r2 + k2 * r2 * r2 + k3 * r2 * r2 * r2
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return np.stack([f * xd + cx, f * yd + cy], axis=-1), z


def undistort_pixels(px: np.ndarray, cam: CameraModel) -> np.ndarray:
    """Distorted pixels (N, 2) → normalised, undistorted image coordinates (N, 2)."""
    import cv2

    pts = np.ascontiguousarray(px, dtype=np.float64).reshape(-1, 1, 2)
    und = cv2.undistortPoints(pts, cam.matrix(), np.asarray(cam.dist, dtype=np.float64))
    return und.reshape(-1, 2)


def rays_to_plane(px: np.ndarray, rotvec: np.ndarray, centre: np.ndarray, cam: CameraModel,
                  ground_z: float) -> np.ndarray:
    """Intersect the viewing rays of pixels (N, 2) with the horizontal plane ``z = ground_z``.

    Returns world points (N, 3); rays that point upward give NaN.
    """
    norm = undistort_pixels(px, cam)
    d_cam = np.column_stack([norm, np.ones(len(norm))])
    r = Rotation.from_rotvec(rotvec).as_matrix()
    d_world = d_cam @ r  # R^T · d for each row
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (ground_z - centre[2]) / d_world[:, 2]
    t = np.where(t > 0, t, np.nan)
    return centre + d_world * t[:, None]


def triangulate_midpoint(c1: np.ndarray, d1: np.ndarray, c2: np.ndarray, d2: np.ndarray) -> np.ndarray:
    """Midpoints of the shortest segments between ray pairs (centres (3,), directions (N, 3))."""
    w0 = c1 - c2
    a = np.einsum("ij,ij->i", d1, d1)
    b = np.einsum("ij,ij->i", d1, d2)
    c = np.einsum("ij,ij->i", d2, d2)
    d = d1 @ w0
    e = d2 @ w0
    den = a * c - b * b
    den = np.where(np.abs(den) < 1e-12, 1e-12, den)
    s = (b * e - c * d) / den
    t = (a * e - b * d) / den
    return 0.5 * ((c1 + d1 * s[:, None]) + (c2 + d2 * t[:, None]))


def ray_directions(px: np.ndarray, rotvec: np.ndarray, cam: CameraModel) -> np.ndarray:
    """World-frame direction vectors (N, 3) of the rays through distorted pixels (N, 2)."""
    norm = undistort_pixels(px, cam)
    d_cam = np.column_stack([norm, np.ones(len(norm))])
    return d_cam @ Rotation.from_rotvec(rotvec).as_matrix()

"""Camera models of the simulator: geometry (pinhole + Brown distortion), vignetting and the
radiometric constants written to the frames' headers.

Pixel convention: pixel ``(u, v)`` (column, row, integers from 0) covers ``[u, u+1) × [v, v+1)``;
its centre is at ``(u + 0.5, v + 0.5)`` in the continuous image coordinates in which the
principal point ``(cx, cy)`` is given (here the image centre ``(W/2, H/2)``). Distortion is
OpenCV's ``(k1, k2, p1, p2, k3)`` on normalised coordinates; MicaSense XMP writes the same
numbers in its own order ``[k1, k2, k3, p1, p2]``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import cv2
import numpy as np

from belcheer.models import Intrinsics


@dataclass(frozen=True)
class CameraModel:
    """One simulated camera body: size, optics and what its headers say about itself."""

    key: str                       # "rgb" | "rededge"
    make: str
    model: str
    width_px: int
    height_px: int
    focal_mm: float
    pixel_pitch_mm: float
    distortion: tuple[float, float, float, float, float]
    #: file order of the bands (names are the canonical roles)
    bands: tuple[str, ...]
    #: radial vignetting polynomial per band, MicaSense convention: the raw signal is
    #: multiplied by ``p(r) = 1 + Σ c_i r^(i+1)`` (r in pixels from ``vignetting_center``)
    vignetting: tuple[tuple[float, ...], ...] = ()
    vignetting_center: tuple[float, float] = (0.0, 0.0)
    focal_35mm: int | None = None
    serial: str = "SIM-0001"
    #: whose metadata and radiometric model the frames follow: micasense | dji
    vendor: str = "micasense"
    #: DJI multispectral: per band (file order) the vignetting correction k0…k5 that DJI writes
    #: as VignettingData (the DN is *multiplied* by 1 + k0·r + … + k5·r⁶), and each band lens's
    #: principal-point offset (px) from the photo centre: the bands of a DJI rig are separate
    #: cameras, so one ground point sits at different pixels in each band
    dji_vignetting: tuple[tuple[float, ...], ...] = ()
    band_offsets_px: tuple[tuple[float, float], ...] = ()
    #: principal-point offset (px) of this body from the photo centre (one band's camera)
    principal_offset_px: tuple[float, float] = (0.0, 0.0)

    @property
    def focal_px(self) -> float:
        return self.focal_mm / self.pixel_pitch_mm

    @property
    def sensor_mm(self) -> tuple[float, float]:
        return self.width_px * self.pixel_pitch_mm, self.height_px * self.pixel_pitch_mm

    def intrinsics(self) -> Intrinsics:
        w, h = self.sensor_mm
        return Intrinsics(width_px=self.width_px, height_px=self.height_px, focal_mm=self.focal_mm,
                          focal_px=self.focal_px, sensor_width_mm=w, sensor_height_mm=h,
                          cx=self.width_px / 2.0 + self.principal_offset_px[0],
                          cy=self.height_px / 2.0 + self.principal_offset_px[1],
                          distortion=tuple(self.distortion))

    def footprint_m(self, altitude_m: float) -> tuple[float, float]:
        """Ground footprint (across the image width, along its height) at nadir, metres."""
        w, h = self.sensor_mm
        return altitude_m * w / self.focal_mm, altitude_m * h / self.focal_mm

    def gsd_m(self, altitude_m: float) -> float:
        """Ground sample distance at nadir over flat ground, metres per pixel."""
        return altitude_m * self.pixel_pitch_mm / self.focal_mm


def _vig(a: float, b: float, r0: float) -> tuple[float, ...]:
    """Coefficients of ``1 − a (r/r0)² + b (r/r0)⁴`` as MicaSense's six-term polynomial."""
    return (0.0, -a / r0**2, 0.0, b / r0**4, 0.0, 0.0)


#: DJI Phantom 4 Pro camera (FC6310: 1" sensor 13.2×8.8 mm, 8.8 mm lens) rendered at 1600×1067
#: with the pixel pitch enlarged so the field of view is that of the real 5472×3648 sensor. The
#: lens is nearly rectilinear (< 1 px of distortion); its model is written to XMP ``DewarpData``.
FC6310 = CameraModel(
    key="rgb", make="DJI", model="FC6310", width_px=1600, height_px=1067, focal_mm=8.8,
    pixel_pitch_mm=13.2 / 1600, distortion=(-0.006, 0.009, 0.0002, -0.0001, -0.002),
    bands=("red", "green", "blue"), vignetting=(_vig(0.22, 0.03, 960.0),),
    vignetting_center=(800.0, 533.5), focal_35mm=24, serial="0K8TD9A0120123")

#: MicaSense RedEdge-M: 1280×960, 3.75 µm pixels, 5.5 mm lens, five co-registered bands
#: (this simulator has no rig offsets between bands) in file order Blue, Green, Red, NIR, Red edge.
REDEDGE_M = CameraModel(
    key="rededge", make="MicaSense", model="RedEdge-M", width_px=1280, height_px=960,
    focal_mm=5.5, pixel_pitch_mm=0.00375, distortion=(-0.105, 0.13, 0.0003, -0.0002, -0.02),
    bands=("blue", "green", "red", "nir", "rededge"),
    vignetting=tuple(_vig(a, 0.04, 800.0) for a in (0.30, 0.28, 0.27, 0.24, 0.26)),
    vignetting_center=(642.3, 478.6), serial="RX02-2026001-SC")

#: the same camera written at 4248×2832 (12 MP, the size of real survey frames), for measuring
#: time and memory on full-size frames; the ground is no sharper (the truth raster is 8 cm)
FC6310_12MP = replace(FC6310, key="rgb-12mp", width_px=4248, height_px=2832,
                      pixel_pitch_mm=13.2 / 4248, vignetting=(_vig(0.22, 0.03, 960.0 * 4248 / 1600),),
                      vignetting_center=(2124.0, 1416.0))

def _dji_vig(a: float, b: float, r0: float) -> tuple[float, ...]:
    """DJI VignettingData k0…k5 for a correction ``1 + a (r/r0)² + b (r/r0)⁴`` (≥ 1 off-centre)."""
    return (0.0, a / r0**2, 0.0, b / r0**4, 0.0, 0.0)


#: DJI Phantom 4 Multispectral (FC6360): five 1/2.9" band cameras, 5.74 mm lenses, 1600×1300
#: (3.0 µm pixels), rendered at 800×650 with the pixel pitch doubled (the same field of view,
#: four times cheaper), 16-bit TIFFs in file order Blue, Green, Red, Red edge, NIR
#: (``DJI_xxx1.TIF`` … ``DJI_xxx5.TIF``); each band lens a few pixels off the others
P4M = CameraModel(
    key="p4m", make="DJI", model="FC6360", width_px=800, height_px=650, focal_mm=5.74,
    pixel_pitch_mm=0.006, distortion=(-0.045, 0.060, 0.0002, -0.0001, -0.015),
    bands=("blue", "green", "red", "rededge", "nir"),
    vignetting_center=(400.0, 325.0), serial="0RRDF2A0010001", vendor="dji",
    dji_vignetting=tuple(_dji_vig(a, 0.05, 520.0) for a in (0.36, 0.33, 0.31, 0.29, 0.27)),
    band_offsets_px=((2.6, -1.4), (0.0, 0.0), (-1.8, 2.2), (3.1, 1.7), (-2.4, -2.9)))

#: DJI Mavic 3 Multispectral (M3M): four 1/2.8" band cameras (green, red, red edge, NIR;
#: 2592×1944 at 2.16 µm, 4.34 mm lenses) rendered at 1296×972 with the pitch doubled; files
#: ``DJI_<time>_<n>_MS_G.TIF`` … ``_MS_NIR.TIF``
M3M = CameraModel(
    key="m3m", make="DJI", model="M3M", width_px=1296, height_px=972, focal_mm=4.34,
    pixel_pitch_mm=0.00432, distortion=(-0.070, 0.085, 0.0001, 0.0002, -0.025),
    bands=("green", "red", "rededge", "nir"),
    vignetting_center=(648.0, 486.0), serial="1581F5FHD23AB001", vendor="dji",
    dji_vignetting=tuple(_dji_vig(a, 0.06, 810.0) for a in (0.34, 0.32, 0.30, 0.28)),
    band_offsets_px=((0.0, 0.0), (3.4, -2.1), (-2.7, 1.6), (1.9, 3.3)))

CAMERAS: dict[str, CameraModel] = {"rgb": FC6310, "rgb-12mp": FC6310_12MP, "rededge": REDEDGE_M,
                                   "p4m": P4M, "m3m": M3M}


def band_camera(cam: CameraModel, band_index: int) -> CameraModel:
    """The camera of one band of a DJI rig: that band only, its lens offset applied."""
    off = cam.band_offsets_px[band_index] if cam.band_offsets_px else (0.0, 0.0)
    return replace(cam, bands=(cam.bands[band_index],), principal_offset_px=off)


def vignetting_poly(cam: CameraModel, band_index: int) -> np.ndarray:
    """``p(r)`` (≤ 1 off-centre) on the integer pixel grid (row, col), float32: the fraction of
    the light a pixel receives. DJI cameras write its inverse (their correction) as k0…k5.

    As in MicaSense's reference code, ``r`` is measured from integer pixel indices."""
    v, u = np.mgrid[0:cam.height_px, 0:cam.width_px].astype(np.float64)
    r = np.hypot(u - cam.vignetting_center[0], v - cam.vignetting_center[1])
    if cam.vendor == "dji":
        k = cam.dji_vignetting[band_index]
        return (1.0 / np.polynomial.polynomial.polyval(r, (1.0, *k))).astype(np.float32)
    coeffs = cam.vignetting[min(band_index, len(cam.vignetting) - 1)]
    p = np.ones_like(r)
    for i, c in enumerate(coeffs):
        p += c * r ** (i + 1)
    return p.astype(np.float32)


@lru_cache(maxsize=8)
def ray_grid(cam: CameraModel) -> tuple[np.ndarray, np.ndarray]:
    """Undistorted normalised coordinates ``(x, y)`` of every pixel centre (float32, H×W).

    The ray of pixel (u, v) in the camera frame (x right, y down, z forward) is ``(x, y, 1)``.
    """
    K = np.array(cam.intrinsics().matrix(), np.float64)
    # OpenCV puts pixel centres on integers: shift the principal point by half a pixel
    K[0, 2] -= 0.5
    K[1, 2] -= 0.5
    v, u = np.mgrid[0:cam.height_px, 0:cam.width_px].astype(np.float64)
    pts = np.stack([u.ravel(), v.ravel()], axis=1).reshape(-1, 1, 2)
    und = cv2.undistortPoints(pts, K, np.array(cam.distortion, np.float64), None, None, None,
                              (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-12))
    und = und.reshape(cam.height_px, cam.width_px, 2)
    x = und[..., 0].astype(np.float32)
    y = und[..., 1].astype(np.float32)
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def rotation_world_from_camera(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """Rotation taking camera-frame vectors (x right, y down, z optical axis) to world
    (east, north, up).

    ``yaw``: heading of the image's top edge, degrees clockwise from north. ``pitch``: DJI
    gimbal pitch, −90 = nadir; a larger pitch tilts the view toward the image top. ``roll``:
    positive tilts the view toward the image's right edge.
    """
    psi = np.radians(yaw_deg)
    s, c = np.sin(psi), np.cos(psi)
    # columns: the camera's x (image right), y (image down) and z (optical axis) in world axes
    nadir = np.column_stack([[c, -s, 0.0], [-s, -c, 0.0], [0.0, 0.0, -1.0]])
    a = np.radians(pitch_deg + 90.0)
    b = np.radians(roll_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    return nadir @ rx @ ry


def project_to_pixels(cam: CameraModel, position: np.ndarray, rot: np.ndarray,
                      points: np.ndarray) -> np.ndarray:
    """Pixel coordinates (continuous, top-left corner origin) of world points (N×3, UTM metres)."""
    rvec, _ = cv2.Rodrigues(rot.T)
    tvec = -rot.T @ position
    K = np.array(cam.intrinsics().matrix(), np.float64)
    px, _ = cv2.projectPoints(points.astype(np.float64).reshape(-1, 1, 3), rvec, tvec, K,
                              np.array(cam.distortion, np.float64))
    return px.reshape(-1, 2)


def with_vignetting(cam: CameraModel, strength: float) -> CameraModel:
    """``cam`` with every band's vignetting replaced by ``p(r) = 1 − strength · (r/r₀)²``, r₀ the
    half-diagonal (pixels): the signal at the image corners is ``1 − strength`` of the centre's."""
    r0 = float(np.hypot(*cam.vignetting_center)) if any(cam.vignetting_center) else \
        float(np.hypot(cam.width_px, cam.height_px) / 2)
    poly = _vig(float(strength), 0.0, r0)
    return replace(cam, vignetting=tuple(poly for _ in cam.vignetting or (0,)))

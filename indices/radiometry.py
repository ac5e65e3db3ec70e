"""Raw DN → at-sensor radiance per frame, and the sunlight sensor's irradiance per frame.

Pure functions over arrays; the camera's coefficients come from ``Frame.radiometry`` (filled by
ingest from EXIF/XMP) and, for vendor fields it does not model, from ``radiometry.extra`` /
``frame.tags`` under their XMP names.

Camera models
-------------
MicaSense (RedEdge, RedEdge-M/MX, Altum), MicaSense's published model::

    L = V(x, y) · a1/g · (p − p_BL) / (t_e + a2·y − a3·t_e·y) / 2^bits

with ``V = 1 / (1 + k0·r + … + k5·r⁶)`` about the vignetting centre, ``y`` the row, ``t_e`` the
exposure (s), ``g`` the gain (ISO/100) and ``a1, a2, a3`` the RadiometricCalibration.
Units: W m⁻² sr⁻¹ nm⁻¹. The DLS reports W m⁻² nm⁻¹, so reflectance = π·L/E.

Parrot Sequoia (application note SEQ-AN-01)::

    I = f² · (p − B) / (A · t_e · γ + C) / V(x/w, y/h)

with ``A, B, C`` the XMP SensorModel, ``f`` the f-number, ``γ`` the ISO and ``V`` the 2-D
vignetting polynomial on normalised coordinates. ``I`` is in Parrot's arbitrary radiance units;
the sunshine sensor's irradiance (IrradianceList: count / (gain · integration time)) is in
arbitrary units too, so sensor-only Sequoia reflectance ``π·I/E`` is consistent between frames
and dates of one camera but its absolute level needs a panel.

DJI P4 Multispectral (FC6360) / Mavic 3M (M3M), after DJI's "P4 Multispectral Image Processing
Guide" (the Mavic 3M writes the same tags; its sunlight sensor gives a spectral irradiance per
band)::

    X = (p − BlackLevel)/65535 · V(x, y) / (SensorGain · ExposureTime/10⁶) · SensorGainAdjustment
    V = 1 + k0·r + k1·r² + … + k5·r⁶,  r = distance of pixel (x, y) from (CenterX, CenterY)

with ``p`` the 16-bit DN, ``BlackLevel`` on the same 16-bit scale (4096), ``SensorGain`` the
analog gain, ``ExposureTime`` in µs (XMP; EXIF's seconds when it is absent),
``VignettingData`` ``k0…k5`` about ``CalibratedOpticalCenterX/Y`` (the correction multiplies
the DN), and ``SensorGainAdjustment`` (DJI's ``pCam``) the per-band sensitivity relative to
the NIR band. ``X`` is in relative radiance units, matched by the sunlight sensor's XMP
``Irradiance`` (relative too, so sensor-only DJI reflectance ``π·X/Irradiance`` is consistent
between frames and dates of one drone but not absolute — DJI's guide multiplies by the
sunlight sensor's own per-band factor, which the files do not carry; a panel sets the level).
``DewarpData`` (lens distortion) is read at ingest (``belcheer.ingest.frames``). Assumptions
checked only against belcheer's simulator, not against DJI's own software: the vignetting is
applied after the black level is subtracted (as in the formula above), and
``RelativeOpticalCenterX/Y`` (P4M) / ``DewarpHMatrix`` (M3M) are taken as the band's offset
from / homography to the reference band, used only to seed band alignment.

A tag missing or contradicting the others (:func:`model_warnings`) never stops a band: it is
converted with that correction left out (vignetting 1, adjustment 1, EXIF exposure, black level
4096) and the calibration report names the warning.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from belcheer.errors import InputError
from belcheer.models import Frame

#: camera families with a radiometric model here
MICASENSE, SEQUOIA, DJI = "micasense", "sequoia", "dji"
#: what an error about an unsupported multispectral camera lists
SUPPORTED_FAMILIES = ("MicaSense RedEdge / RedEdge-M / RedEdge-MX / Altum, Parrot Sequoia, "
                      "DJI P4 Multispectral (FC6360), DJI Mavic 3 Multispectral (M3M)")
#: DJI's black level when the tag is missing (16-bit scale)
DJI_DEFAULT_BLACK = 4096.0


def camera_family(frame: Frame) -> str | None:
    """``micasense``, ``sequoia``, ``dji`` or None for a camera without a radiometric model."""
    key = frame.camera.key.lower()
    if "micasense" in key or "rededge" in key or "altum" in key:
        return MICASENSE
    if "parrot" in key or "sequoia" in key:
        return SEQUOIA
    if ("dji" in key or "fc6360" in key or "m3m" in key) \
            and frame.band.name in {"blue", "green", "red", "rededge", "nir"}:
        return DJI
    return None


def vendor_value(frame: Frame, *names: str) -> Any:
    """A vendor field from ``radiometry.extra`` or ``tags``, matched by exact key or XMP local name
    (``Camera:IrradianceYaw`` matches ``IrradianceYaw``)."""
    for store in (frame.radiometry.extra, frame.tags):
        for name in names:
            if name in store:
                return store[name]
        for key, value in store.items():
            local = str(key).rsplit(":", 1)[-1].rsplit("}", 1)[-1]
            if local in names:
                return value
    return None


def floats(value: Any) -> tuple[float, ...] | None:
    """Parse a vendor value (number, list, or ``"1,2,3"``/``"1 2 3"`` text) as floats."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return (float(value),)
    if isinstance(value, str):
        parts = value.replace(",", " ").split()
        return tuple(float(p) for p in parts) if parts else None
    if isinstance(value, Iterable):
        out: list[float] = []
        for v in value:
            f = floats(v)
            if f:
                out.extend(f)
        return tuple(out) or None
    return None


def _as_2d(dn: np.ndarray) -> np.ndarray:
    a = np.asarray(dn)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim != 2:
        raise InputError(f"expected one band's 2-D pixel array, got shape {a.shape}")
    return a


# -- MicaSense --------------------------------------------------------------------------------

def radial_vignetting(shape: tuple[int, int], center: tuple[float, float],
                      polynomial: tuple[float, ...]) -> np.ndarray:
    """MicaSense vignetting factor ``V`` (multiply DN by it), float32, for an image of ``shape``.

    Cached per (shape, centre, polynomial): a survey has one per band, and the orthomosaic
    re-reads frames many times. The returned array is read-only."""
    return _radial_vignetting(tuple(shape), tuple(float(c) for c in center),  # type: ignore[arg-type]
                              tuple(float(k) for k in polynomial))


@lru_cache(maxsize=32)
def _radial_vignetting(shape: tuple[int, int], center: tuple[float, float],
                       polynomial: tuple[float, ...]) -> np.ndarray:
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    r = np.hypot(xx - center[0], yy - center[1])
    poly = np.polynomial.polynomial.polyval(r, (1.0, *polynomial))
    v = (1.0 / poly).astype(np.float32)
    v.flags.writeable = False
    return v


def micasense_radiance(dn: np.ndarray, *, black_level: float, exposure_s: float, gain: float,
                       calibration: tuple[float, float, float],
                       vignetting_center: tuple[float, float] | None,
                       vignetting_polynomial: tuple[float, ...] | None,
                       bits: int = 16) -> np.ndarray:
    """MicaSense DN → radiance, W m⁻² sr⁻¹ nm⁻¹ (float32; negative values clipped to 0)."""
    a = _as_2d(dn).astype(np.float32)
    h, w = a.shape
    a1, a2, a3 = calibration
    v = (radial_vignetting((h, w), vignetting_center, vignetting_polynomial)
         if vignetting_center and vignetting_polynomial else np.float32(1.0))
    y = np.arange(h, dtype=np.float64)[:, None]
    # row gradient: the rolling shutter reads later rows after more dark current builds up
    row = (1.0 / (1.0 + a2 * y / exposure_s - a3 * y)).astype(np.float32)
    lin = np.maximum(v * row * (a - np.float32(black_level)), 0.0)
    return (lin * np.float32(a1 / (gain * exposure_s) / 2.0**bits)).astype(np.float32)


# -- Parrot Sequoia ---------------------------------------------------------------------------

def polynomial_2d_vignetting(shape: tuple[int, int], powers: tuple[float, ...],
                             coefficients: tuple[float, ...]) -> np.ndarray:
    """Sequoia vignetting ``V`` (divide DN by it) from (i, j) powers of x/w and y/h, float32."""
    h, w = shape
    x = (np.arange(w, dtype=np.float64) / w)[None, :]
    y = (np.arange(h, dtype=np.float64) / h)[:, None]
    v = np.zeros((h, w), dtype=np.float64)
    for (i, j), c in zip(zip(powers[0::2], powers[1::2], strict=True), coefficients, strict=False):
        v += c * x ** int(i) * y ** int(j)
    return v.astype(np.float32)


def sequoia_radiance(dn: np.ndarray, *, sensor_model: tuple[float, float, float], f_number: float,
                     exposure_s: float, iso: float, vignetting: np.ndarray | None = None) -> np.ndarray:
    """Sequoia DN → radiance in Parrot's arbitrary units (SEQ-AN-01), float32."""
    a = _as_2d(dn).astype(np.float32)
    A, B, C = sensor_model
    if vignetting is not None:
        a = a / vignetting
    out = np.float32(f_number**2) * (a - np.float32(B)) / np.float32(A * exposure_s * iso + C)
    return np.maximum(out, 0.0).astype(np.float32)


# -- DJI multispectral ------------------------------------------------------------------------

def dji_vignetting(shape: tuple[int, int], center: tuple[float, float],
                   polynomial: tuple[float, ...]) -> np.ndarray:
    """DJI's vignetting correction ``V = 1 + k0·r + … + k5·r⁶`` (multiply the DN by it), float32,
    ``r`` in pixels of the integer pixel index (col, row) from ``center``. Cached, read-only."""
    return _dji_vignetting(tuple(shape), tuple(float(c) for c in center),  # type: ignore[arg-type]
                           tuple(float(k) for k in polynomial))


@lru_cache(maxsize=32)
def _dji_vignetting(shape: tuple[int, int], center: tuple[float, float],
                    polynomial: tuple[float, ...]) -> np.ndarray:
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    r = np.hypot(xx - center[0], yy - center[1])
    v = np.polynomial.polynomial.polyval(r, (1.0, *polynomial)).astype(np.float32)
    v.flags.writeable = False
    return v


def dji_radiance(dn: np.ndarray, *, black_level: float, exposure_s: float, gain: float,
                 sensor_gain_adjustment: float, vignetting_center: tuple[float, float] | None,
                 vignetting_polynomial: tuple[float, ...] | None) -> np.ndarray:
    """DJI P4M / Mavic 3M DN → relative radiance ``X`` (module docstring), float32, ≥ 0."""
    a = _as_2d(dn).astype(np.float32)
    lin = (a - np.float32(black_level)) / np.float32(65535.0)
    if vignetting_center and vignetting_polynomial:
        lin = lin * dji_vignetting(a.shape, vignetting_center, vignetting_polynomial)
    out = lin * np.float32(sensor_gain_adjustment / (gain * exposure_s))
    return np.maximum(out, 0.0).astype(np.float32)


@dataclass(frozen=True)
class DJIModel:
    """The DJI coefficients of one frame, after falling back where tags are missing or
    contradictory (``warnings``: (code, text) pairs)."""

    black_level: float
    exposure_s: float | None
    gain: float
    sensor_gain_adjustment: float
    vignetting_center: tuple[float, float] | None
    vignetting_polynomial: tuple[float, ...] | None
    warnings: tuple[tuple[str, str], ...] = ()


def dji_model(frame: Frame) -> DJIModel:
    """Read and check a DJI multispectral frame's radiometric tags (never raises)."""
    r = frame.radiometry
    warn: list[tuple[str, str]] = []
    black = r.black_level if r.black_level is not None else \
        (floats(vendor_value(frame, "BlackLevel")) or (None,))[0]
    if black is None:
        warn.append(("dji_black_level_missing", f"no BlackLevel: {DJI_DEFAULT_BLACK:g} assumed"))
        black = DJI_DEFAULT_BLACK
    elif not 0 <= black < 65535:
        warn.append(("dji_black_level_invalid", f"BlackLevel {black:g} is outside 0…65535: "
                     f"{DJI_DEFAULT_BLACK:g} assumed"))
        black = DJI_DEFAULT_BLACK
    exposure = r.exposure_s
    xmp_us = (floats(vendor_value(frame, "ExposureTime")) or (None,))[0]
    if xmp_us is not None and xmp_us > 0:
        if exposure and abs(xmp_us / 1e6 / exposure - 1.0) > 0.05:
            warn.append(("dji_exposure_contradictory",
                         f"XMP ExposureTime {xmp_us:g} µs contradicts EXIF {exposure * 1e6:g} µs: "
                         "EXIF used"))
        else:
            exposure = xmp_us / 1e6
    gain = r.gain if r.gain is not None else (floats(vendor_value(frame, "SensorGain")) or (None,))[0]
    if gain is None or not math.isfinite(gain) or gain <= 0:
        warn.append(("dji_sensor_gain_missing", "no usable SensorGain: gain 1 assumed"))
        gain = 1.0
    pcam_t = floats(vendor_value(frame, "SensorGainAdjustment"))
    pcam = pcam_t[0] if pcam_t else None
    if pcam is None or not math.isfinite(pcam) or not 0.05 < pcam < 20:
        warn.append(("dji_gain_adjustment_missing",
                     "no usable SensorGainAdjustment: band sensitivity not adjusted (1 assumed)"))
        pcam = 1.0
    center = r.vignetting_center
    if center is None:
        cx = floats(vendor_value(frame, "CalibratedOpticalCenterX"))
        cy = floats(vendor_value(frame, "CalibratedOpticalCenterY"))
        center = (cx[0], cy[0]) if cx and cy else None
    poly = r.vignetting_polynomial or floats(vendor_value(frame, "VignettingData"))
    if poly is None or center is None:
        warn.append(("dji_vignetting_missing", "no VignettingData / optical centre: vignetting "
                     "not corrected"))
        poly, center = None, None
    elif len(poly) != 6 or not all(math.isfinite(k) for k in poly):
        warn.append(("dji_vignetting_invalid", f"VignettingData has {len(poly)} terms (6 "
                     "expected): vignetting not corrected"))
        poly, center = None, None
    elif frame.intrinsics and not (0 <= center[0] <= frame.intrinsics.width_px
                                   and 0 <= center[1] <= frame.intrinsics.height_px):
        warn.append(("dji_vignetting_invalid", f"vignetting centre {center} lies outside the "
                     "frame: vignetting not corrected"))
        poly, center = None, None
    return DJIModel(float(black), exposure, float(gain), float(pcam), center, poly, tuple(warn))


def model_warnings(frame: Frame) -> tuple[tuple[str, str], ...]:
    """(code, text) for each radiometric tag of ``frame`` that is missing or contradictory and
    was left out of its model (DJI: see :func:`dji_model`); empty for a complete frame."""
    if camera_family(frame) == DJI:
        return dji_model(frame).warnings
    return ()


# -- dispatch ---------------------------------------------------------------------------------

def _need(value: Any, what: str, frame: Frame) -> Any:
    if value is None:
        raise InputError(f"frame {frame.path.name} has no {what} in its metadata, so its DN cannot "
                         "be converted to radiance; re-ingest the original camera files (tools that "
                         "strip XMP, e.g. some image editors, lose it)")
    return value


def radiance(frame: Frame, dn: np.ndarray) -> np.ndarray:
    """Raw DN of one frame → radiance, float32 (units per camera family, see module docstring).

    MicaSense: W m⁻² sr⁻¹ nm⁻¹. Sequoia and DJI: the vendor's relative radiance units.
    """
    fam = camera_family(frame)
    r = frame.radiometry
    if fam == MICASENSE:
        black = r.black_level
        if black is None:
            dark = floats(vendor_value(frame, "DarkRowValue"))
            black = float(np.mean(dark)) if dark else 0.0
        cal = _need(r.radiometric_calibration or floats(vendor_value(frame, "RadiometricCalibration")),
                    "MicaSense RadiometricCalibration", frame)
        gain = r.gain if r.gain is not None else (r.iso / 100.0 if r.iso else 1.0)
        return micasense_radiance(
            dn, black_level=float(black), exposure_s=_need(r.exposure_s, "exposure time", frame),
            gain=float(gain), calibration=tuple(cal[:3]),  # type: ignore[arg-type]
            vignetting_center=r.vignetting_center, vignetting_polynomial=r.vignetting_polynomial,
            bits=16 if not r.bits_per_sample or r.bits_per_sample < 12 else r.bits_per_sample)
    if fam == SEQUOIA:
        model = floats(vendor_value(frame, "SensorModel")) or r.radiometric_calibration
        model = _need(model, "Sequoia SensorModel", frame)
        iso = r.iso if r.iso else (r.gain * 100.0 if r.gain else None)
        fnum = floats(vendor_value(frame, "FNumber", "FNumberValue"))
        powers = floats(vendor_value(frame, "VignettingPolynomial2DName"))
        coefs = floats(vendor_value(frame, "VignettingPolynomial2D")) or r.vignetting_polynomial
        a = _as_2d(dn)
        vig = polynomial_2d_vignetting(a.shape, powers, coefs) if powers and coefs else None
        # the Sequoia's aperture is fixed at f/2.2 when EXIF FNumber is absent
        return sequoia_radiance(a, sensor_model=tuple(model[:3]),  # type: ignore[arg-type]
                                f_number=fnum[0] if fnum else 2.2,
                                exposure_s=_need(r.exposure_s, "exposure time", frame),
                                iso=_need(iso, "ISO", frame), vignetting=vig)
    if fam == DJI:
        m = dji_model(frame)
        return dji_radiance(dn, black_level=m.black_level,
                            exposure_s=_need(m.exposure_s, "exposure time", frame),
                            gain=m.gain, sensor_gain_adjustment=m.sensor_gain_adjustment,
                            vignetting_center=m.vignetting_center,
                            vignetting_polynomial=m.vignetting_polynomial)
    raise InputError(f"camera {frame.camera.key!r} ({frame.path.name}, band {frame.band.name}) has "
                     f"no radiometric model; supported: {SUPPORTED_FAMILIES}")


# -- sunlight sensor ---------------------------------------------------------------------------

def sequoia_irradiance_list(encoded: str) -> list[tuple[int, float, float, float]]:
    """Decode Sequoia's base64 ``IrradianceList``: (timestamp µs, count, gain, integration ms)."""
    import base64
    import struct

    data = base64.b64decode(encoded)
    rows = []
    for off in range(0, len(data) - len(data) % 28, 28):
        ts, ch0, _ch1, gain, integ, _y, _p, _r = struct.unpack("<QHHHHfff", data[off:off + 28])
        rows.append((ts, float(ch0), float(gain), float(integ)))
    return rows


def sensor_irradiance(frame: Frame) -> tuple[float, dict[str, Any]] | None:
    """The sunlight sensor's irradiance on a horizontal surface for this frame, and how it was found.

    MicaSense: the DLS 2 horizontal irradiance when the camera computed it (W m⁻² nm⁻¹); for a
    DLS 1, the spectral irradiance corrected for the sensor's tilt against the sun (sun position
    from the frame's time and place; clear sky, direct/diffuse = 6). Sequoia: the latest
    IrradianceList sample, count / (gain · integration time), arbitrary units. DJI: XMP
    ``Irradiance``, relative units. None when the frame carries no sensor reading.
    """
    fam = camera_family(frame)
    r = frame.radiometry
    if fam == MICASENSE:
        # newer firmware states the factor to W m⁻² nm⁻¹; without it the values are taken as SI
        scale = (floats(vendor_value(frame, "IrradianceScaleToSIUnits")) or (1.0,))[0] or 1.0
        if r.horizontal_irradiance and r.horizontal_irradiance > 0:
            return float(r.horizontal_irradiance) * scale, {"source": "dls2_horizontal"}
        spectral = (r.spectral_irradiance or r.irradiance or 0.0) * scale
        if not spectral or spectral <= 0:
            return None
        from belcheer.indices import sun

        ypr = floats(vendor_value(frame, "IrradianceYaw")), floats(vendor_value(frame, "IrradiancePitch")), \
            floats(vendor_value(frame, "IrradianceRoll"))
        if all(ypr):
            yaw, pitch, roll = (v[0] for v in ypr)  # type: ignore[index]
        else:
            dls = [floats(vendor_value(frame, f"DLS:{n}", n)) for n in ("Yaw", "Pitch", "Roll")]
            yaw, pitch, roll = (float(np.degrees(v[0])) if v else 0.0 for v in dls)
        el, az = r.solar_elevation_deg, r.solar_azimuth_deg
        if el is None or az is None:
            if frame.pose is None or frame.time is None:
                return float(spectral), {"source": "dls_uncorrected",
                                         "why": "no position/time for the sun angle"}
            el, az = sun.solar_position(frame.pose.lat, frame.pose.lon, frame.time)
        angle = sun.sun_sensor_angle(el, az, yaw, pitch, roll)
        e = sun.horizontal_irradiance(float(spectral), angle, el)
        return e, {"source": "dls1_sun_corrected", "sun_sensor_angle_deg": round(angle, 2),
                   "solar_elevation_deg": round(el, 2), "sensor_irradiance": float(spectral)}
    if fam == SEQUOIA:
        encoded = vendor_value(frame, "IrradianceList")
        if isinstance(encoded, str) and encoded.strip():
            rows = [row for row in sequoia_irradiance_list(encoded.strip()) if row[2] > 0 and row[3] > 0]
            if rows:
                ts, count, gain, integ = max(rows)
                return count / (gain * integ), {"source": "sequoia_irradiance_list",
                                                "units": "count/(gain·ms), arbitrary"}
        if r.irradiance:
            return float(r.irradiance), {"source": "sequoia_irradiance"}
        return None
    if fam == DJI:
        # the Mavic 3M's sunlight sensor writes each band's spectral irradiance in that band's
        # file, as the P4M does: one Irradiance per frame. Zero is returned (and reported as a
        # faulty reading by the calibration), not hidden
        e = r.irradiance if r.irradiance is not None else \
            (floats(vendor_value(frame, "Irradiance")) or (None,))[0]
        return (float(e), {"source": "dji_irradiance", "units": "relative"}) if e is not None else None
    return None

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

DJI P4 Multispectral / Mavic 3M (DJI's image-processing guide)::

    X = V(x, y) · (p − BlackLevel) / 65535 / (gain · t_e) · SensorGainAdjustment

relative units, matched by DJI's sunlight-sensor ``Irradiance`` (also relative).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import numpy as np

from belcheer.errors import InputError
from belcheer.models import Frame

#: camera families with a radiometric model here
MICASENSE, SEQUOIA, DJI = "micasense", "sequoia", "dji"


def camera_family(frame: Frame) -> str | None:
    """``micasense``, ``sequoia``, ``dji`` or None for a camera without a radiometric model."""
    key = frame.camera.key.lower()
    if "micasense" in key or "rededge" in key or "altum" in key:
        return MICASENSE
    if "parrot" in key or "sequoia" in key:
        return SEQUOIA
    if "dji" in key and frame.band.name in {"blue", "green", "red", "rededge", "nir"}:
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

def dji_radiance(dn: np.ndarray, *, black_level: float, exposure_s: float, gain: float,
                 sensor_gain_adjustment: float, vignetting_center: tuple[float, float] | None,
                 vignetting_polynomial: tuple[float, ...] | None) -> np.ndarray:
    """DJI P4M / Mavic 3M DN → relative radiance (DJI's normalised camera value), float32."""
    a = _as_2d(dn).astype(np.float32)
    h, w = a.shape
    if vignetting_center and vignetting_polynomial:
        # DJI stores the correction itself: multiply by 1 + k0·r + … + k5·r⁶
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        r = np.hypot(xx - vignetting_center[0], yy - vignetting_center[1])
        a = a * np.polynomial.polynomial.polyval(r, (1.0, *vignetting_polynomial)).astype(np.float32)
    out = (a - np.float32(black_level)) / np.float32(65535.0 * gain * exposure_s) \
        * np.float32(sensor_gain_adjustment)
    return np.maximum(out, 0.0).astype(np.float32)


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
        black = r.black_level if r.black_level is not None else \
            (floats(vendor_value(frame, "BlackLevel")) or (4096.0,))[0]
        center = r.vignetting_center
        if center is None:
            cx = floats(vendor_value(frame, "CalibratedOpticalCenterX"))
            cy = floats(vendor_value(frame, "CalibratedOpticalCenterY"))
            center = (cx[0], cy[0]) if cx and cy else None
        poly = r.vignetting_polynomial or floats(vendor_value(frame, "VignettingData"))
        pcam = floats(vendor_value(frame, "SensorGainAdjustment")) or (1.0,)
        gain = r.gain if r.gain is not None else \
            (floats(vendor_value(frame, "SensorGain")) or (1.0,))[0]
        return dji_radiance(dn, black_level=float(black),
                            exposure_s=_need(r.exposure_s, "exposure time", frame),
                            gain=float(gain), sensor_gain_adjustment=pcam[0],
                            vignetting_center=center, vignetting_polynomial=poly)
    raise InputError(f"camera {frame.camera.key!r} ({frame.path.name}) has no radiometric model: "
                     "belcheer calibrates MicaSense, Parrot Sequoia and DJI multispectral frames; "
                     "indices from other cameras are relative")


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
        e = r.irradiance or (floats(vendor_value(frame, "Irradiance")) or (None,))[0]
        return (float(e), {"source": "dji_irradiance", "units": "relative"}) if e else None
    return None

"""Forward radiometric models: surface reflectance → camera digital numbers (DN).

MicaSense (what the indices stage inverts, exactly MicaSense's published model)::

    L      = ρ · E / π                       at-sensor radiance, W m⁻² sr⁻¹ nm⁻¹ (Lambertian
                                             ground, no atmosphere between ground and drone);
                                             E = spectral irradiance, W m⁻² nm⁻¹ (written to
                                             XMP as Irradiance / SpectralIrradiance /
                                             HorizontalIrradiance for that capture)
    p(r)   = 1 + Σ_{i=1..6} c_i r^i          vignetting polynomial (XMP VignettingPolynomial
                                             c_1…c_6, r = distance in pixels of the integer
                                             pixel index (col, row) from VignettingCenter)
    R(y)   = 1 / (1 + a2·y/te − a3·y)        row gradient, y = integer row index
    S      = L · g · te · 2¹⁶ · p(r) / (a1 · R(y))       signal above black, DN
    DN     = BL + 16 · round((S + n) / 16)    n ~ N(0, 12² + 0.4·S): read + shot noise, then
                                             12-bit quantisation stored in 16 bits, clipped
                                             to 0…65520

with a1,a2,a3 = XMP RadiometricCalibration, te = EXIF ExposureTime (s), g = ISO/100,
BL = BlackLevel (4800). Inverting: ``L = (DN − BL) · a1 · R(y) / (g · te · 2¹⁶ · p(r))``, which is
MicaSense's ``V · R · (DN − BL) / (g · te) · a1 / 2¹⁶`` with ``V = 1/p(r)``; ρ = π L / E.

DJI P4 Multispectral / Mavic 3M (the inverse of ``belcheer.indices.radiometry.dji_radiance``,
DJI's "P4 Multispectral Image Processing Guide" model)::

    X      = U · ρ · E / π                   relative radiance (E as above; DJI's units,
                                             U = 1000 per W m⁻² sr⁻¹ nm⁻¹, give
                                             millisecond exposures as real P4M frames have)
    V(r)   = 1 + k0·r + … + k5·r⁶            DJI's vignetting correction (XMP VignettingData,
                                             r from CalibratedOpticalCenterX/Y); the light a
                                             pixel receives is 1/V of the centre's
    S      = X · g · t_µs/10⁶ · 65535 / (pCam · V(r))   signal above black, DN
    DN     = BL + 16 · round((S + n) / 16)    noise as MicaSense's, clipped to 0…65520

with g = XMP SensorGain, t_µs = XMP ExposureTime (µs; EXIF ExposureTime in s), pCam = XMP
SensorGainAdjustment (per-band sensitivity, NIR = 1), BL = BlackLevel 4096. The sunlight
sensor writes ``Irradiance = c · U · E`` with a per-band sensitivity ``c`` of its own (DJI's
relative units): sensor-only reflectance is off by 1/c, and a panel removes it.

DJI RGB (relative, not calibrated; JPEG, sRGB-like)::

    s      = k · x_f · ρ_c · (E_green / E_green,clear) · p(r)   per channel c ∈ (red, green, blue)
    DN_c   = round(255 · clip(s + n, 0, 1)^(1/2.2)),  n ~ N(0, (0.003 + 0.01·s)²), k = 1.7

with ``x_f`` the frame's exposure relative to the flight's nominal one (1 unless the survey is
simulated with ``exposure_jitter``: an auto-exposure that drifts from frame to frame, see
:func:`exposure_gains`; EXIF ExposureTime then carries ``x_f / 800`` s).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLACK_LEVEL = 4800
FULL_SCALE = 2**16
RGB_GAIN = 1.7


@dataclass(frozen=True)
class BandCalibration:
    """MicaSense radiometric constants of one band and the exposure used for the flight."""

    a1: float
    a2: float
    a3: float
    exposure_s: float
    gain: float = 1.0
    black_level: int = BLACK_LEVEL


#: DJI multispectral black level (16-bit scale)
DJI_BLACK_LEVEL = 4096
#: DJI's relative radiance units per W m⁻² sr⁻¹ nm⁻¹ in the simulator
DJI_UNIT = 1000.0


@dataclass(frozen=True)
class DJIBandCalibration:
    """DJI multispectral constants of one band: exposure (µs) and analog gain for the flight,
    the band's SensorGainAdjustment, and the sunlight sensor's own sensitivity in that band."""

    exposure_us: float
    gain: float
    gain_adjustment: float
    sunlight_sensitivity: float
    black_level: int = DJI_BLACK_LEVEL


def dji_dn(reflectance: np.ndarray, irradiance: float, cal: DJIBandCalibration,
           vignette_poly: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Raw 16-bit DN of one DJI band from surface reflectance (row, col) under ``irradiance``;
    ``vignette_poly`` is the light fraction 1/V(r) (:func:`belcheer.simulate.cameras.vignetting_poly`)."""
    x = reflectance.astype(np.float64) * irradiance * DJI_UNIT / np.pi
    signal = x * cal.gain * cal.exposure_us / 1e6 * 65535.0 * vignette_poly / cal.gain_adjustment
    noisy = signal + rng.standard_normal(signal.shape) * np.sqrt(144.0 + 0.4 * np.maximum(signal, 0))
    dn = cal.black_level + 16.0 * np.rint(noisy / 16.0)
    return np.clip(dn, 0, 65520).astype(np.uint16)


def dji_exposure_us(max_reflectance: float, irradiance: float, gain: float, gain_adjustment: float,
                    target_dn: float = 40000.0) -> float:
    """Exposure (µs, whole) putting ``max_reflectance`` at ``target_dn`` above black at the centre."""
    x = max_reflectance * irradiance * DJI_UNIT / np.pi
    return float(round(target_dn * gain_adjustment / (x * gain * 65535.0) * 1e6))


def row_gradient(cal: BandCalibration, height: int) -> np.ndarray:
    """R(y) of MicaSense's model for rows 0…height−1, float64 column vector."""
    y = np.arange(height, dtype=np.float64)[:, None]
    return 1.0 / (1.0 + cal.a2 * y / cal.exposure_s - cal.a3 * y)


def micasense_dn(reflectance: np.ndarray, irradiance: float, cal: BandCalibration,
                 vignette_poly: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Raw 16-bit DN of one band from surface reflectance (row, col) under ``irradiance``."""
    radiance = reflectance.astype(np.float64) * irradiance / np.pi
    signal = radiance * cal.gain * cal.exposure_s * FULL_SCALE * vignette_poly \
        / (cal.a1 * row_gradient(cal, reflectance.shape[0]))
    noisy = signal + rng.standard_normal(signal.shape) * np.sqrt(144.0 + 0.4 * np.maximum(signal, 0))
    dn = cal.black_level + 16.0 * np.rint(noisy / 16.0)
    return np.clip(dn, 0, 65520).astype(np.uint16)


def micasense_radiance(dn: np.ndarray, cal: BandCalibration, vignette_poly: np.ndarray) -> np.ndarray:
    """Inverse of :func:`micasense_dn` without noise: radiance W m⁻² sr⁻¹ nm⁻¹, float64."""
    s = dn.astype(np.float64) - cal.black_level
    return s * cal.a1 * row_gradient(cal, dn.shape[0]) / (
        cal.gain * cal.exposure_s * FULL_SCALE * vignette_poly)


def exposure_for(max_reflectance: float, irradiance: float, a1: float, gain: float = 1.0,
                 target_dn: float = 40000.0) -> float:
    """Exposure time (s, rounded to 1 µs) putting ``max_reflectance`` at ``target_dn`` above black."""
    radiance = max_reflectance * irradiance / np.pi
    return round(target_dn * a1 / (radiance * gain * FULL_SCALE), 6)


def rgb_dn(reflectance: np.ndarray, light: float, vignette_poly: np.ndarray,
           rng: np.random.Generator) -> np.ndarray:
    """8-bit RGB (row, col, 3) from reflectance (3, row, col) in red, green, blue order;
    ``light`` is the irradiance relative to clear sky."""
    s = np.float32(RGB_GAIN * light) * reflectance.astype(np.float32) * vignette_poly[None]
    s += rng.standard_normal(s.shape, dtype=np.float32) * (np.float32(0.003) + np.float32(0.01) * s)
    np.clip(s, 0, 1, out=s)
    v = np.rint(np.float32(255.0) * s ** np.float32(1 / 2.2))
    return v.astype(np.uint8).transpose(1, 2, 0).copy()


def rgb_reflectance(dn: np.ndarray, light: float, vignette_poly: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_dn` without noise: reflectance (3, row, col), float32."""
    s = (dn.astype(np.float32).transpose(2, 0, 1) / 255.0) ** 2.2
    return s / (RGB_GAIN * light * vignette_poly[None])


def exposure_gains(n: int, jitter_ev: float, rng: np.random.Generator) -> np.ndarray:
    """Per-frame exposure ``x_f = 2^e``, ``e ~ N(0, jitter_ev²)`` stops (EV), float64 (n,).

    ``jitter_ev`` 0 gives ones: every frame exposed alike."""
    if jitter_ev <= 0:
        return np.ones(n)
    return 2.0 ** rng.normal(0.0, float(jitter_ev), n)

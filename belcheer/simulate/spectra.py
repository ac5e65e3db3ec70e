"""Surface reflectance of the simulated land covers, and how the season changes them.

Reflectances are hemispherical-directional factors (0…1) in the five MicaSense RedEdge bands
``blue, green, red, rededge, nir`` (475/560/668/717/840 nm). Values are typical of published
field spectra of Mongolian steppe (green grass, standing litter, kastanozem soil), spring
wheat, open water, white felt (ger) and weathered wood; exact values matter less than being
physically sensible, because every accuracy test compares against the truth raster built from
them, not against these numbers.
"""

from __future__ import annotations

import datetime as _dt
import math
from enum import IntEnum

import numpy as np

#: canonical band order of the truth raster
BANDS: tuple[str, ...] = ("blue", "green", "red", "rededge", "nir")
#: centre wavelengths, nm (MicaSense RedEdge-M)
WAVELENGTHS_NM: dict[str, float] = {"blue": 475.0, "green": 560.0, "red": 668.0,
                                    "rededge": 717.0, "nir": 840.0}
#: full width at half maximum, nm (MicaSense RedEdge-M)
FWHM_NM: dict[str, float] = {"blue": 20.0, "green": 20.0, "red": 10.0, "rededge": 10.0, "nir": 40.0}


class Cover(IntEnum):
    """Land-cover codes of the truth class raster (``truth/landcover.tif``)."""

    PASTURE = 1
    CROPLAND = 2
    BARE = 3       # tracks, trampled camp ground, the bare ring round the well
    WATER = 4
    BUILT = 5      # gers, corral fence, shed roof
    TARGET = 6     # checkpoint targets (black/white), counted as built in training data


#: endmember reflectance per band (blue, green, red, rededge, nir)
ENDMEMBERS: dict[str, np.ndarray] = {
    "green_grass": np.array([0.035, 0.085, 0.045, 0.22, 0.44], np.float32),
    "litter": np.array([0.095, 0.140, 0.190, 0.240, 0.300], np.float32),
    "soil": np.array([0.085, 0.125, 0.170, 0.205, 0.245], np.float32),
    "track": np.array([0.130, 0.175, 0.225, 0.255, 0.280], np.float32),
    "crop": np.array([0.030, 0.080, 0.035, 0.260, 0.520], np.float32),
    "water": np.array([0.050, 0.060, 0.040, 0.030, 0.020], np.float32),
    "felt": np.array([0.560, 0.590, 0.610, 0.620, 0.630], np.float32),
    "wood": np.array([0.110, 0.140, 0.170, 0.200, 0.230], np.float32),
    "roof": np.array([0.180, 0.190, 0.200, 0.210, 0.220], np.float32),
    "shrub": np.array([0.025, 0.055, 0.030, 0.170, 0.330], np.float32),
    "stone": np.array([0.280, 0.300, 0.320, 0.330, 0.340], np.float32),
    "target_white": np.array([0.600, 0.610, 0.620, 0.620, 0.620], np.float32),
    "target_black": np.array([0.030, 0.030, 0.030, 0.035, 0.040], np.float32),
}


def green_fraction(date: _dt.date) -> float:
    """Share of the standing vegetation that is green (0…1) on ``date``.

    A Gaussian season peaking on 25 July (day 206), σ 40 days, never below 0.12 (winter
    litter still holds some green bases) — the growing season of the forest steppe.
    """
    doy = date.timetuple().tm_yday
    return 0.12 + 0.88 * math.exp(-(((doy - 206) / 40.0) ** 2))


def crop_cover(date: _dt.date, peak_doy: int) -> float:
    """Green canopy cover (0…1) of a spring-sown crop whose canopy peaks on ``peak_doy``."""
    doy = date.timetuple().tm_yday
    return 0.04 + 0.88 * math.exp(-(((doy - peak_doy) / 32.0) ** 2))


def ndvi(red: np.ndarray, nir: np.ndarray) -> np.ndarray:
    """(NIR − red)/(NIR + red), float32, NaN where both are zero."""
    red = red.astype(np.float32)
    nir = nir.astype(np.float32)
    s = nir + red
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(s > 0, (nir - red) / s, np.nan).astype(np.float32)

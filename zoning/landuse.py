"""Which decisions a parcel gets, by its land use.

Pasture condition (recovery classes), biomass, carrying capacity and degradation alerts are
grazing decisions: they are made only for grazed land — ``pasture``, ``hayfield`` and ``otor``
(reserve pasture moved to in hard winters or droughts, judged like any pasture). Cropland gets
crop indicators instead (index mean, uniformity, management zones) and change that tells a
harvest from degradation. ``other`` land (built-up, water, roads) gets statistics only.

Parcel layers that carry a crop type but no land-use column (field registries such as the Dutch
BRP: ``Grasland``, ``Wintertarwe``, ``Aardappel`` …) get their land use from the crop:
grassland is pasture, any named crop is cropland.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

#: Land uses judged as grazing land.
PASTURE_USES: tuple[str, ...] = ("pasture", "hayfield", "otor")
#: Land uses judged as crop fields.
CROP_USES: tuple[str, ...] = ("cropland",)
#: Group names: what a parcel is assessed as.
GROUPS: tuple[str, ...] = ("pasture", "cropland", "other")

#: Source fields naming a crop type (compared case-insensitively).
CROP_FIELDS: tuple[str, ...] = ("crop", "crop_type", "croptype", "gewas", "gws_gewas", "culture",
                                "тариа", "тариалсан_таримал", "таримал")
#: Crop-type words that mean grassland (lower-case substrings), English, Dutch, Mongolian.
_GRASS_WORDS: tuple[str, ...] = ("grass", "gras", "meadow", "weide", "pasture", "бэлчээр", "хадлан",
                                 "өвс")


def use_group(land_use: Any) -> np.ndarray:
    """``pasture``, ``cropland`` or ``other`` for each land-use code (array of str)."""
    lu = pd.Series(np.atleast_1d(np.asarray(land_use, dtype=object))).astype(str).str.lower()
    out = np.where(lu.isin(PASTURE_USES), "pasture", np.where(lu.isin(CROP_USES), "cropland", "other"))
    return out.astype(object)


def is_grazed(land_use: Any) -> np.ndarray:
    """True where the land use gets grazing decisions (pasture, hayfield, otor)."""
    return use_group(land_use) == "pasture"


def land_use_from_crop(crops: pd.Series) -> pd.Series:
    """Land-use codes from crop-type names: grassland → ``pasture``, any other named crop →
    ``cropland``, empty → None (the importer's default applies)."""
    def one(v: Any) -> str | None:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return None
        s = str(v).strip().lower()
        if not s or s in ("none", "nan"):
            return None
        return "pasture" if any(w in s for w in _GRASS_WORDS) else "cropland"

    return crops.map(one)


def find_crop_field(columns: list[str]) -> str | None:
    """The column naming a crop type, if any."""
    lower = {c.lower().strip(): c for c in columns}
    for cand in CROP_FIELDS:
        if cand in lower:
            return lower[cand]
    return None

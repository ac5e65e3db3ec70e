"""The index catalogue: every Awesome Spectral Indices entry computable from drone bands.

The catalogue (formulas, band codes, constants, references) comes from the JSON that the
``spyndex`` package ships (MIT licence), read offline. Formulas are re-parsed with
:mod:`belcheer.indices.formula`; spyndex's own evaluator (which calls ``eval``) is never used.

Band codes follow the catalogue: ``B`` blue, ``G`` green, ``R`` red, ``RE1`` red edge, ``N`` NIR.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from belcheer.errors import BandError, FormulaError, InputError
from belcheer.indices.formula import Formula, parse
from belcheer.models import Band

#: catalogue band codes a drone camera can provide, with our canonical band names
DRONE_BANDS: dict[str, str] = {"B": "blue", "G": "green", "R": "red", "RE1": "rededge", "N": "nir"}
#: wavelength windows (nm, inclusive) used to map a band with only ``center_nm`` to a code
WAVELENGTH_WINDOWS: dict[str, tuple[float, float]] = {
    "B": (400.0, 510.0), "G": (510.0, 600.0), "R": (600.0, 690.0), "RE1": (690.0, 760.0),
    "N": (760.0, 1000.0),
}
#: catalogue defaults we deliberately override, with the reason in the comment
CONSTANT_OVERRIDES: dict[str, dict[str, float]] = {
    # classic SAVI (Huete 1988) uses L = 0.5; the catalogue's shared L default (1.0) is EVI's
    "SAVI": {"L": 0.5},
}
#: RGB indices: computed from uncalibrated RGB they are flagged ``relative``
RGB_CODES = frozenset({"B", "G", "R"})


@dataclass(frozen=True)
class IndexDef:
    """One spectral index: catalogue short name, formula, band codes and constant values."""

    name: str
    long_name: str
    formula: str
    bands: tuple[str, ...]
    constants: Mapping[str, float] = field(default_factory=dict)
    domain: str = ""
    reference: str = ""
    #: True when only B/G/R are needed (computable from an RGB camera, as a relative index)
    rgb: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "constants", MappingProxyType(dict(self.constants)))

    def parsed(self) -> Formula:
        return parse(self.formula, set(self.bands) | set(self.constants))


def _spyndex_data(name: str) -> Any:
    """One of the JSON files the ``spyndex`` package ships, read without importing spyndex:
    its import pulls in requests and builds objects for every index and band (0.2–0.9 s, the
    largest part of a small ``belcheer indices`` run), where the catalogue needs two files."""
    spec = importlib.util.find_spec("spyndex")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("the spectral-index catalogue needs the 'spyndex' package: pip install spyndex")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / name
    return json.loads(path.read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def _load() -> Mapping[str, IndexDef]:
    consts = {k: float(v["default"]) for k, v in _spyndex_data("constants.json").items()
              if isinstance(v.get("default"), int | float)}
    indices = _spyndex_data("spectral-indices-dict.json")["SpectralIndices"]
    out: dict[str, IndexDef] = {}
    for short, idx in indices.items():
        needed = [b for b in idx["bands"] if b not in consts]
        if not needed or any(b not in DRONE_BANDS for b in needed):
            continue
        cvals = {b: consts[b] for b in idx["bands"] if b in consts}
        cvals.update(CONSTANT_OVERRIDES.get(short, {}))
        # spaces dropped as spyndex does, so formulas read as the catalogue has always shown them
        d = IndexDef(name=short, long_name=idx["long_name"], formula=idx["formula"].replace(" ", ""),
                     bands=tuple(needed), constants=cvals, domain=idx["application_domain"],
                     reference=idx["reference"], rgb=set(needed) <= RGB_CODES)
        try:
            d.parsed()
        except FormulaError:
            continue  # uses something our whitelist refuses: not offered
        out[short] = d
    return MappingProxyType(out)


def catalogue() -> Mapping[str, IndexDef]:
    """All indices computable from drone bands (B, G, R, RE1, N), keyed by catalogue short name."""
    return _load()


def lookup(name: str) -> IndexDef:
    """An index by name, case-insensitive (``ndvi`` → NDVI); unknown names get suggestions."""
    cat = catalogue()
    if name in cat:
        return cat[name]
    lower = {k.lower(): k for k in cat}
    if name.lower() in lower:
        return cat[lower[name.lower()]]
    close = difflib.get_close_matches(name.lower(), list(lower), n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(lower[c] for c in close)}?" if close else \
        "; list them with `belcheer indices --list`"
    raise InputError(f"unknown index {name!r}{hint}")


def band_mapping(bands: Sequence[Band]) -> dict[str, int]:
    """Map catalogue band codes to 0-based positions in ``bands``.

    A band's canonical ``name`` (blue, green, red, rededge, nir) decides first; otherwise its
    ``center_nm`` (nanometres) is placed in :data:`WAVELENGTH_WINDOWS`. The first band found for
    a code wins; the code ``RE1`` prefers the red edge band closest to 717 nm.
    """
    by_name = {v: k for k, v in DRONE_BANDS.items()}
    mapping: dict[str, int] = {}
    for i, b in enumerate(bands):
        code = by_name.get(b.name.lower()) if b.name else None
        if code is None and b.center_nm is not None:
            for c, (lo, hi) in WAVELENGTH_WINDOWS.items():
                if lo <= b.center_nm < hi:
                    code = c
                    break
        if code is not None and code not in mapping:
            mapping[code] = i
    return mapping


def require_bands(index: IndexDef | str, mapping: Mapping[str, int], bands: Sequence[Band]) -> None:
    """Raise :class:`BandError` listing the bands ``index`` needs and the ones present."""
    name, needed = (index.name, index.bands) if isinstance(index, IndexDef) else (index, ())
    missing = [b for b in needed if b not in mapping]
    if missing:
        have = ", ".join(f"{b.name}" + (f" ({b.center_nm:g} nm)" if b.center_nm else "")
                         for b in bands) or "none"
        need = ", ".join(f"{c} ({DRONE_BANDS[c]})" for c in needed)
        raise BandError(f"index {name} needs bands {need}; this raster has {have} — "
                        f"missing {', '.join(DRONE_BANDS.get(m, m) for m in missing)}; use a "
                        "camera with those bands or choose another index")

"""Carrying capacity in sheep units, the way soum land offices compute it.

    usable biomass (kg DM/ha)   = biomass × utilisation share of the recovery class
    demand of one sheep unit    = daily intake of the natural zone (kg DM/day) × grazing days
    capacity (SU/ha)            = usable biomass / demand;   ha/SU = 1 / (SU/ha)
    capacity (SU)               = SU/ha × parcel area (ha)
    stocking balance (SU)       = capacity − registered livestock in SU (negative = overstocked)

Every default (sheep-unit coefficients, utilisation by class, intake by zone, days by season)
is in ``capacity_defaults.json`` beside this module, each with its source; pass
:class:`CapacityParams` to change any of them. Works on scalars, NumPy arrays and pandas
objects alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from belcheer.errors import InputError
from belcheer.models import LIVESTOCK


def _defaults() -> dict[str, Any]:
    with resources.files("belcheer.zoning").joinpath("capacity_defaults.json").open(encoding="utf-8") as fh:
        return json.load(fh)


@dataclass(frozen=True)
class CapacityParams:
    """Coefficients of the carrying-capacity calculation (defaults from capacity_defaults.json)."""

    sheep_units: dict[str, float] = field(default_factory=lambda: dict(_defaults()["sheep_units"]["values"]))
    utilisation_by_class: dict[int, float] = field(default_factory=lambda: {
        int(k): float(v) for k, v in _defaults()["utilisation_by_class"]["values"].items()})
    daily_intake_kg_dm: dict[str, float] = field(
        default_factory=lambda: dict(_defaults()["daily_intake_kg_dm"]["values"]))
    grazing_days: dict[str, float] = field(default_factory=lambda: dict(_defaults()["grazing_days"]["values"]))
    #: share (0…1) of a parcel's area that must be surveyed before its capacity is extrapolated
    min_surveyed_share: float = field(default_factory=lambda: float(_defaults()["min_surveyed_share"]["value"]))
    #: species proportions of the registered herd when only total heads are known (NSO soum table)
    herd_mix: dict[str, float] = field(default_factory=lambda: dict(_defaults()["registered_herd_mix"]["values"]))

    def with_(self, **changes: Any) -> CapacityParams:
        """A copy with some tables replaced or updated (dicts are merged into the defaults)."""
        merged = {k: {**getattr(self, k), **v} if isinstance(v, dict) else v for k, v in changes.items()}
        return replace(self, **merged)


def _lookup(table: dict[Any, float], keys: Any, what: str) -> np.ndarray:
    arr = np.asarray(keys, dtype=object)
    flat = arr.ravel()
    out = np.empty(flat.shape, dtype="float64")
    for i, k in enumerate(flat):
        if k is None or (isinstance(k, float) and np.isnan(k)):
            out[i] = np.nan
            continue
        key = int(k) if what == "class" else str(k)
        if key not in table:
            if what == "class" and key == 0:
                out[i] = np.nan
                continue
            raise InputError(f"no {what} coefficient for {k!r} (known: {', '.join(map(str, table))})")
        out[i] = table[key]
    return out.reshape(arr.shape)


def sheep_units(counts: Any, params: CapacityParams | None = None) -> Any:
    """Registered livestock in sheep units: a mapping/Series/DataFrame with columns camel,
    horse, cattle, sheep, goat (head counts) → SU (scalar or Series)."""
    p = params or CapacityParams()
    total: Any = 0.0
    for sp in LIVESTOCK:
        v = counts[sp] if sp in counts else 0
        total = total + (pd.to_numeric(v, errors="coerce") if isinstance(v, pd.Series) else v) * p.sheep_units[sp]
    return total


def su_per_head(params: CapacityParams | None = None) -> float:
    """Sheep units per head of a herd with the species proportions of ``params.herd_mix``."""
    p = params or CapacityParams()
    total = sum(p.herd_mix.get(sp, 0.0) for sp in LIVESTOCK)
    if total <= 0:
        raise InputError("the registered herd mix has no animals; give species proportions")
    return sum(p.herd_mix.get(sp, 0.0) / total * p.sheep_units[sp] for sp in LIVESTOCK)


def coefficients(params: CapacityParams | None = None) -> list[dict[str, Any]]:
    """The sheep-unit coefficient of each species, with its Mongolian and English name and the
    source of the coefficients (for forms that take a herd as heads per species)."""
    p = params or CapacityParams()
    src = _defaults()["sheep_units"]["source"]
    return [{"species": sp, "mn": SPECIES_NAMES[sp][0], "en": SPECIES_NAMES[sp][1],
             "su_per_head": float(p.sheep_units[sp]), "source": src} for sp in LIVESTOCK]


#: Why a parcel has no capacity: status → (Mongolian, English) text.
CAPACITY_NOTES: dict[str, tuple[str, str]] = {
    "ok": ("", ""),
    "below_min_share": ("зураглагдсан хэсэг {share} нь доод хэмжээ {minimum}-аас бага тул бүх талбайд "
                        "тооцоогүй", "surveyed share {share} is below the minimum {minimum}: not "
                        "extrapolated to the whole parcel"),
    "not_surveyed": ("зураглагдаагүй", "not surveyed"),
    "not_grazing_land": ("бэлчээр биш тул даац тооцохгүй", "not grazing land: no carrying capacity"),
    "no_biomass": ("биомассын загвар алга", "no biomass estimate (calibrate biomass first)"),
}


def capacity_note(status: str, share: float, minimum: float, lang: str = "mn") -> str:
    """Why a parcel's capacity is empty (empty text when it is not)."""
    text = CAPACITY_NOTES.get(status, ("", ""))[0 if lang == "mn" else 1]
    from belcheer.zoning.numbers import share as pct

    return text.format(share=pct(share), minimum=pct(minimum))


#: Species → (Mongolian, English) name.
SPECIES_NAMES: dict[str, tuple[str, str]] = {
    "camel": ("тэмээ", "camel"), "horse": ("адуу", "horse"), "cattle": ("үхэр", "cattle"),
    "sheep": ("хонь", "sheep"), "goat": ("ямаа", "goat"),
}


def carrying_capacity(biomass_kg_ha: Any, condition: Any = 1, *, eco_zone: Any = "steppe",
                      season: Any = "all", area_ha: Any = None, registered_su: Any = None,
                      params: CapacityParams | None = None) -> dict[str, Any]:
    """Carrying capacity from standing biomass (kg DM/ha) and recovery class (1–5).

    Returns a dict of arrays (or scalars): ``usable_kg_ha``, ``demand_kg_su`` (kg DM one sheep
    unit eats over the grazing period), ``su_per_ha``, ``ha_per_su`` and, given ``area_ha``,
    ``capacity_su``; given ``registered_su`` too, ``balance_su`` (capacity − registered,
    negative = overstocked). Arguments broadcast like NumPy arrays.
    """
    p = params or CapacityParams()
    biomass = np.asarray(biomass_kg_ha, dtype="float64")
    util = _lookup(p.utilisation_by_class, condition, "class")
    intake = _lookup(p.daily_intake_kg_dm, eco_zone, "eco zone")
    days = _lookup(p.grazing_days, season, "season")
    usable = np.clip(biomass, 0, None) * util
    demand = intake * days
    su_ha = usable / demand
    with np.errstate(divide="ignore", invalid="ignore"):
        ha_su = np.where(su_ha > 0, 1.0 / su_ha, np.inf)
    ha_su = np.where(np.isnan(su_ha), np.nan, ha_su)
    out: dict[str, Any] = {"usable_kg_ha": usable, "demand_kg_su": demand, "su_per_ha": su_ha,
                           "ha_per_su": ha_su}
    if area_ha is not None:
        out["capacity_su"] = su_ha * np.asarray(area_ha, dtype="float64")
        if registered_su is not None:
            out["balance_su"] = out["capacity_su"] - np.asarray(registered_su, dtype="float64")
    return {k: (v.item() if isinstance(v, np.ndarray) and v.ndim == 0 else v) for k, v in out.items()}


def capacity_table(frame: pd.DataFrame, *, biomass_col: str = "biomass_kg_ha",
                   class_col: str = "condition_class", params: CapacityParams | None = None) -> pd.DataFrame:
    """Add registered_su, usable_kg_ha, su_per_ha, ha_per_su, capacity_su and balance_su to a
    parcel table (needs area_ha, eco_zone, season, livestock columns, biomass and class).

    Capacity is of the **whole parcel** (SU/ha of its surveyed part × its area in ha). With a
    ``surveyed_share`` column (0…1, the share of the parcel's area with valid pixels) parcels
    surveyed less than ``params.min_surveyed_share`` get no capacity, and ``capacity_note`` says
    why; ``capacity_surveyed_su`` is the capacity of the surveyed part alone. Parcels whose
    ``land_use`` is not grazed (see :mod:`belcheer.zoning.landuse`) get no capacity either."""
    from belcheer.zoning.landuse import is_grazed

    p = params or CapacityParams()
    out = frame.copy()
    out["registered_su"] = sheep_units(out, p)
    season = out["season"] if "season" in out else "all"
    eco = out["eco_zone"] if "eco_zone" in out else "steppe"
    cls = out[class_col].where(out[class_col] > 0) if class_col in out else 1
    cc = carrying_capacity(out[biomass_col].to_numpy(dtype="float64"), np.asarray(cls, dtype=object),
                           eco_zone=np.asarray(eco, dtype=object), season=np.asarray(season, dtype=object),
                           area_ha=out["area_ha"].to_numpy(dtype="float64"),
                           registered_su=out["registered_su"].to_numpy(dtype="float64"), params=p)
    for k in ("usable_kg_ha", "su_per_ha", "ha_per_su", "capacity_su", "balance_su"):
        out[k] = cc[k]
    grazed = is_grazed(out["land_use"]) if "land_use" in out else np.ones(len(out), bool)
    share = (pd.to_numeric(out["surveyed_share"], errors="coerce").to_numpy(dtype="float64")
             if "surveyed_share" in out else np.ones(len(out)))
    out["capacity_surveyed_su"] = out["capacity_su"] * np.nan_to_num(share, nan=0.0)
    status = np.full(len(out), "ok", dtype=object)
    status[grazed & ~(share >= p.min_surveyed_share)] = "below_min_share"
    status[grazed & ~(share > 0)] = "not_surveyed"
    status[~grazed] = "not_grazing_land"
    status[(status == "ok") & ~np.isfinite(out["su_per_ha"].to_numpy(dtype="float64"))] = "no_biomass"
    out.loc[status != "ok", ["capacity_su", "balance_su"]] = np.nan
    out.loc[~grazed, ["usable_kg_ha", "su_per_ha", "ha_per_su", "capacity_surveyed_su"]] = np.nan
    out["capacity_status"] = status
    for lang in ("mn", "en"):
        out[f"capacity_note_{lang}"] = [capacity_note(st, sh, p.min_surveyed_share, lang)
                                        for st, sh in zip(status, share, strict=True)]
    return out

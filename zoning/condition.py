"""Pasture condition: Mongolia's rangeland recovery classes I–V from an index or biomass.

The classes follow the national rangeland-health assessment (Densambuu et al. 2015, 2018,
*National report on the rangeland health of Mongolia*, and the state-and-transition models of
Mongolian rangelands): I = unchanged or little changed from the reference state, II = slightly
degraded (recovers within a season or two with good management), III = moderately degraded
(recovers in several years with changed grazing), IV = heavily degraded, V = very heavily
degraded / desertified (needs long rest or restoration). Thresholds per ecological zone are a
documented table, ``condition_thresholds.csv`` beside this module; pass your own to override.
Class codes are 1–5 (uint8), 0 = no data.

The national method reads cover and bare ground beside productivity, and an index alone is
fooled where bare soil sits beside a few vigorous (often unpalatable) plants. So where a parcel's
fractional cover is known (``zoning/cover.py``), its bare-ground share gets a class of its own
from ``condition_bare_thresholds.csv`` (upper bounds of bare share per class and zone) and the
parcel's class is the worse of the two (:func:`combine_classes`): bare ground can only lower a
grade, never raise it, because cover unmixing is the less certain of the two measurements.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd

from belcheer.errors import InputError, NotFoundError
from belcheer.models import ECO_ZONES, Product, ProductKind

if TYPE_CHECKING:  # pragma: no cover
    from belcheer.workspace import Workspace

#: Class code → (Mongolian, English) name.
CLASS_NAMES: dict[int, tuple[str, str]] = {
    1: ("I анги — өөрчлөгдөөгүй, бага өөрчлөгдсөн", "Class I — unchanged or little changed"),
    2: ("II анги — бага зэрэг доройтсон", "Class II — slightly degraded"),
    3: ("III анги — дунд зэрэг доройтсон", "Class III — moderately degraded"),
    4: ("IV анги — их доройтсон", "Class IV — heavily degraded"),
    5: ("V анги — маш их доройтсон, цөлжсөн", "Class V — very heavily degraded (desertified)"),
}
ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV", 5: "V"}
_BOUNDS = ("class_I_min", "class_II_min", "class_III_min", "class_IV_min")
_BARE_BOUNDS = ("class_I_max", "class_II_max", "class_III_max", "class_IV_max")


def load_thresholds(path: str | Path | None = None) -> pd.DataFrame:
    """The threshold table (eco_zone, variable, class_I_min … class_IV_min): the packaged
    default, or a CSV of the same columns. Values at or above ``class_I_min`` are class I, …,
    below ``class_IV_min`` class V."""
    if path is None:
        with resources.files("belcheer.zoning").joinpath("condition_thresholds.csv").open(encoding="utf-8") as fh:
            table = pd.read_csv(fh)
    else:
        table = pd.read_csv(path)
    missing = {"eco_zone", "variable", *_BOUNDS} - set(table.columns)
    if missing:
        raise InputError(f"condition threshold table lacks columns {sorted(missing)}")
    for _, row in table.iterrows():
        b = [row[c] for c in _BOUNDS]
        if not all(b[i] > b[i + 1] for i in range(3)):
            raise InputError(f"thresholds for {row['eco_zone']}/{row['variable']} must decrease from "
                             f"class I to class IV, got {b}")
    return table


def _bounds_for(table: pd.DataFrame, eco_zone: str, variable: str) -> np.ndarray:
    sel = table[(table["eco_zone"] == eco_zone) & (table["variable"] == variable)]
    if sel.empty:
        zones = sorted(set(table.loc[table["variable"] == variable, "eco_zone"]))
        raise InputError(f"no condition thresholds for eco zone {eco_zone!r} and {variable!r} "
                         f"(known zones: {', '.join(zones) or 'none'}; variables: "
                         f"{', '.join(sorted(set(table['variable'])))})")
    return sel.iloc[0][list(_BOUNDS)].to_numpy(dtype="float64")


def condition_class(values: Any, eco_zone: str | Any = "steppe", *, variable: str = "ndvi",
                    thresholds: pd.DataFrame | None = None) -> np.ndarray:
    """Recovery class (uint8 1–5, 0 where the value is NaN) of index or biomass ``values``.

    ``eco_zone`` is one zone name or an array of names broadcastable to ``values``;
    ``variable`` is ``ndvi`` (unitless) or ``biomass`` (kg DM/ha) — any variable in the table.
    """
    table = thresholds if thresholds is not None else load_thresholds()
    # number of class lower bounds the value falls below: 0 → class I … 4 → class V
    return _classify(values, eco_zone, lambda z: _bounds_for(table, z, variable), worse_above=False)


def _classify(values: Any, eco_zone: str | Any, bounds_of: Any, *, worse_above: bool) -> np.ndarray:
    """Class 1–5 (uint8, 0 where NaN) of ``values`` against each eco zone's four class bounds
    (``bounds_of(zone)``): the number of bounds a value is past, plus one — past means below
    for lower bounds (an index), above for upper bounds (bare ground)."""
    v = np.asarray(values, dtype="float64")
    zones = np.broadcast_to(np.asarray(eco_zone, dtype=object), v.shape)
    out = np.zeros(v.shape, dtype="uint8")
    for z in pd.unique(zones.ravel()):
        sel = zones == z
        bounds, vals = bounds_of(str(z)), v[sel]
        past = vals[:, None] > bounds[None, :] if worse_above else vals[:, None] < bounds[None, :]
        out[sel] = np.where(np.isnan(vals), 0, 1 + past.sum(axis=1)).astype("uint8")
    return out


def load_bare_thresholds(path: str | Path | None = None) -> pd.DataFrame:
    """The bare-ground table (eco_zone, class_I_max … class_IV_max, shares 0…1): the packaged
    default, or a CSV of the same columns. A bare share at or below ``class_I_max`` is class I,
    …, above ``class_IV_max`` class V."""
    if path is None:
        with resources.files("belcheer.zoning").joinpath("condition_bare_thresholds.csv").open(
                encoding="utf-8") as fh:
            table = pd.read_csv(fh)
    else:
        table = pd.read_csv(path)
    missing = {"eco_zone", *_BARE_BOUNDS} - set(table.columns)
    if missing:
        raise InputError(f"bare-ground threshold table lacks columns {sorted(missing)}")
    for _, row in table.iterrows():
        b = [float(row[c]) for c in _BARE_BOUNDS]
        if not all(0.0 <= v <= 1.0 for v in b) or not all(b[i] < b[i + 1] for i in range(3)):
            raise InputError(f"bare-ground thresholds for {row['eco_zone']} must be shares 0…1 rising "
                             f"from class I to class IV, got {b}")
    return table


def bare_ground_class(bare: Any, eco_zone: str | Any = "steppe", *,
                      thresholds: pd.DataFrame | None = None) -> np.ndarray:
    """Recovery class (uint8 1–5, 0 where NaN) of bare-ground shares ``bare`` (0…1 of the
    ground) in ``eco_zone`` (one name or an array broadcastable to ``bare``)."""
    table = thresholds if thresholds is not None else load_bare_thresholds()

    def bounds_of(zone: str) -> np.ndarray:
        row = table[table["eco_zone"] == zone]
        if row.empty:
            raise InputError(f"no bare-ground thresholds for eco zone {zone!r} (known zones: "
                             f"{', '.join(sorted(set(table['eco_zone'])))})")
        return row.iloc[0][list(_BARE_BOUNDS)].to_numpy(dtype="float64")

    return _classify(bare, eco_zone, bounds_of, worse_above=True)


def combine_classes(index_class: Any, bare_class: Any) -> np.ndarray:
    """The parcel's class from its index (or biomass) class and its bare-ground class (0 = not
    known): the worse of the two where both are known, the index class where bare ground is not
    known, 0 where the index is not known (cover alone does not grade a parcel)."""
    a = np.asarray(index_class, dtype="uint8")
    b = np.broadcast_to(np.asarray(bare_class, dtype="uint8"), a.shape)
    return np.where(a == 0, 0, np.maximum(a, b)).astype("uint8")


def class_label(code: int, lang: str = "mn") -> str:
    """Display name of a class code ("II анги — бага зэрэг доройтсон"); empty for 0."""
    if code not in CLASS_NAMES:
        return ""
    return CLASS_NAMES[code][0 if lang == "mn" else 1]


def _eco_zone_raster(parcels: gpd.GeoDataFrame | None, shape: tuple[int, int], transform: Any,
                     crs: Any, default: str) -> np.ndarray:
    """Eco-zone index (into ECO_ZONES) per pixel, from the parcels; ``default`` elsewhere."""
    from rasterio.features import rasterize

    base = ECO_ZONES.index(default)
    if parcels is None or len(parcels) == 0 or "eco_zone" not in parcels.columns:
        return np.full(shape, base, dtype="uint8")
    local = parcels.to_crs(crs)
    shapes = [(g, ECO_ZONES.index(z) if z in ECO_ZONES else base)
              for g, z in zip(local.geometry, local["eco_zone"], strict=True) if g is not None]
    return rasterize(shapes, out_shape=shape, transform=transform, fill=base, dtype="uint8")


def condition_raster(ws: Workspace, survey: str, *, index: str = "ndvi", variable: str | None = None,
                     eco_zone: str = "steppe", thresholds: pd.DataFrame | None = None,
                     name: str = "condition", store_stats: bool = True) -> Product:
    """Classify a survey's ``index`` product (or ``biomass``) into recovery classes per pixel,
    each pixel judged by the thresholds of the eco zone of the parcel it lies in (``eco_zone``
    outside parcels); pixels in parcels that are not grazing land (cropland, other) are 0. Writes a uint8 COG (0 = nodata), registers it as a CONDITION product, and
    stores each parcel's class shares in the catalog (index name ``condition``)."""
    from belcheer.zoning.parcels import load_parcels
    from belcheer.zoning.rasterout import map_blocks_to_cog
    from belcheer.zoning.stats import zonal_stats

    if eco_zone not in ECO_ZONES:
        raise InputError(f"unknown eco zone {eco_zone!r}; use one of {', '.join(ECO_ZONES)}")
    src_prod = ws.product(survey, index)
    variable = variable or ("biomass" if src_prod.kind is ProductKind.BIOMASS else "ndvi")
    table = thresholds if thresholds is not None else load_thresholds()
    try:
        parcels = load_parcels(ws)
    except NotFoundError:
        parcels = None
    with ws.open_product(src_prod) as src:
        rcrs = src.crs
    local = parcels.to_crs(rcrs.to_wkt()) if parcels is not None and len(parcels) else None
    zone_names = np.array(ECO_ZONES, dtype=object)

    from belcheer.zoning.landuse import is_grazed

    not_grazed = (local[~is_grazed(local["land_use"].to_numpy(dtype=object))]
                  if local is not None and "land_use" in local else None)

    def classify(arrays: list[np.ndarray], _win: Any, t: Any) -> np.ndarray:
        # eco zone per pixel rasterised block by block: memory stays bounded by the block
        z = _eco_zone_raster(local, arrays[0].shape, t, rcrs.to_wkt(), eco_zone)
        cls = condition_class(arrays[0], zone_names[z], variable=variable, thresholds=table)
        if not_grazed is not None and len(not_grazed):
            # recovery classes judge grazing land only: crop fields and other land stay nodata
            from rasterio.features import geometry_mask

            inside = ~geometry_mask(not_grazed.geometry, out_shape=cls.shape, transform=t)
            cls[inside] = 0
        return cls

    shares = None
    with ws.product_file(src_prod) as source, ws.writing_product(survey, name) as (out, uri):
        map_blocks_to_cog([source], out, classify, dtype="uint8", nodata=0)
        if store_stats and parcels is not None:  # read before the file goes into the store
            shares = zonal_stats(out, parcels, stats=("count", "valid_fraction"), categorical=True)
    product = ws.add_product(Product(
        id="", survey=survey, kind=ProductKind.CONDITION, name=name, uri=uri, epsg=src_prod.epsg,
        units="recovery class 1-5", relative=src_prod.relative,
        metadata={"source": index, "variable": variable, "default_eco_zone": eco_zone,
                  "classes": {str(k): {"mn": v[0], "en": v[1]} for k, v in CLASS_NAMES.items()}}))
    if shares is not None and parcels is not None:
        rows = class_share_rows(shares)
        rec = ws.catalog.survey(survey)
        ws.catalog.put_stats(survey, rec.date, name, rows, parcel_version=parcels.attrs.get("parcel_version"))
    return product


def class_share_rows(shares: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows for the catalog: parcel_id, count, valid_fraction and share_1 … share_5 (0…1)."""
    rows = []
    for rec in shares.to_dict("records"):
        row = {"parcel_id": rec["parcel_id"], "count": rec.get("count"),
               "valid_fraction": rec.get("valid_fraction")}
        for k in range(1, 6):
            v = rec.get(f"frac_{k}")
            row[f"share_{k}"] = 0.0 if v is None or v != v else float(v)
        rows.append(row)
    return rows

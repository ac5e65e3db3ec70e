"""Change between two surveys of the same area: ΔNDVI per pixel, Δmean per parcel, and
degradation alerts (grazing parcels whose recovery class got worse).

What a change means depends on the land use (:mod:`belcheer.zoning.landuse`). On grazing land a
class that falls is degradation and raises an alert. On cropland it never is: an index that
drops to bare-soil level (below :data:`HARVEST_MAX_INDEX`) is a harvest (or a fallow field
ploughed), a smaller significant drop is a crop decline worth a look (stress, lodging,
ripening), and a rise is crop growth.

Survey B is warped onto survey A's grid (rasterio WarpedVRT, bilinear), so the difference is
B − A on A's pixels, in index units.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd

from belcheer.models import Product, ProductKind

if TYPE_CHECKING:  # pragma: no cover
    from belcheer.workspace import Workspace

#: |Δmean| at or above this (index units) is flagged significant by default.
DEFAULT_THRESHOLD = 0.05
#: A crop field whose mean NDVI falls to this or less has been harvested (bare soil and stubble
#: read 0.1–0.3; a standing crop well above).
HARVEST_MAX_INDEX = 0.3
#: change_kind → (Mongolian, English) words.
CHANGE_KINDS: dict[str, tuple[str, str]] = {
    "degradation": ("доройтсон", "degraded"),
    "recovery": ("сайжирсан", "recovered"),
    "stable": ("өөрчлөлтгүй", "stable"),
    "harvest": ("ургац хураасан", "harvested"),
    "crop_decline": ("ургамал суларсан", "crop declined"),
    "crop_growth": ("ургамал өссөн", "crop grew"),
    "no_data": ("хэмжилт алга", "no data"),
}


@dataclass
class ChangeResult:
    """The ΔNDVI product, the per-parcel table and the parcels whose class fell."""

    product: Product | None
    table: pd.DataFrame
    alerts: pd.DataFrame = field(default_factory=pd.DataFrame)


def parcel_change(stats_a: pd.DataFrame, stats_b: pd.DataFrame, *, threshold: float = DEFAULT_THRESHOLD,
                  eco_zone: Any = None, variable: str = "ndvi", thresholds: pd.DataFrame | None = None,
                  land_use: pd.Series | None = None) -> pd.DataFrame:
    """Per-parcel change from two stats tables (parcel_id, mean[, condition_class]):
    ``mean_a``, ``mean_b``, ``delta`` (B − A), ``significant`` (|delta| ≥ threshold),
    ``class_a``, ``class_b`` (0 on land that is not grazed), ``degraded`` (a grazing parcel's
    class got worse) and ``change_kind`` (see :data:`CHANGE_KINDS`). ``land_use`` maps
    parcel_id → land use (all parcels are pasture when not given)."""
    from belcheer.zoning.condition import condition_class
    from belcheer.zoning.landuse import use_group

    a = stats_a[["parcel_id", "mean"]].rename(columns={"mean": "mean_a"})
    b = stats_b[["parcel_id", "mean"]].rename(columns={"mean": "mean_b"})
    t = a.merge(b, on="parcel_id", how="outer")
    t["delta"] = t["mean_b"] - t["mean_a"]
    t["significant"] = (t["delta"].abs() >= threshold).fillna(False).astype(bool)
    zones = eco_zone if eco_zone is not None else "steppe"
    if isinstance(zones, pd.Series):
        zones = t["parcel_id"].map(zones).fillna("steppe").to_numpy(dtype=object)
    t["class_a"] = condition_class(t["mean_a"], zones, variable=variable, thresholds=thresholds)
    t["class_b"] = condition_class(t["mean_b"], zones, variable=variable, thresholds=thresholds)
    lu = t["parcel_id"].map(land_use).fillna("pasture") if land_use is not None else pd.Series("pasture", index=t.index)
    group = use_group(lu.to_numpy(dtype=object))
    grazed = group == "pasture"
    t["land_use"] = lu.to_numpy(dtype=object)
    t.loc[~grazed, ["class_a", "class_b"]] = 0
    t["degraded"] = grazed & (t["class_a"] > 0) & (t["class_b"] > t["class_a"])
    kind = np.full(len(t), "stable", dtype=object)
    recovered = grazed & (t["class_b"] > 0) & (t["class_b"] < t["class_a"])
    kind[recovered.to_numpy()] = "recovery"
    kind[t["degraded"].to_numpy()] = "degradation"
    crop = (group == "cropland") & t["significant"].to_numpy()
    drop = crop & (t["delta"] < 0).to_numpy()
    kind[drop] = "crop_decline"
    kind[drop & (t["mean_b"] <= HARVEST_MAX_INDEX).to_numpy()] = "harvest"
    kind[crop & (t["delta"] > 0).to_numpy()] = "crop_growth"
    kind[t["delta"].isna().to_numpy()] = "no_data"
    t["change_kind"] = kind
    return t


def change(ws: Workspace, survey_a: str, survey_b: str, *, index: str = "ndvi",
           threshold: float = DEFAULT_THRESHOLD, write_raster: bool = True,
           scheduler: str | None = None) -> ChangeResult:
    """Change of ``index`` from survey A to survey B: a ΔNDVI COG on A's grid registered as a
    CHANGE product of survey B (``change-<index>-<A>``), the per-parcel table (see
    :func:`parcel_change`) and the degradation alerts. Parcels are the current version."""
    from belcheer.zoning.parcels import load_parcels
    from belcheer.zoning.rasterout import map_blocks_to_cog
    from belcheer.zoning.stats import zonal_stats

    pa, pb = ws.product(survey_a, index), ws.product(survey_b, index)
    product = None
    with ws.product_file(pa) as path_a, ws.product_file(pb) as path_b:
        if write_raster:
            name = f"change-{index}-{survey_a}"
            with ws.writing_product(survey_b, name) as (out, uri):
                map_blocks_to_cog([path_a, path_b], out, lambda arr, w, t: (arr[1] - arr[0]).astype("float32"),
                                  dtype="float32", nodata=float("nan"), overview_resampling="average")
            product = ws.add_product(Product(
                id="", survey=survey_b, kind=ProductKind.CHANGE, name=name, uri=uri,
                epsg=pa.epsg, units=f"Δ{index}", relative=pa.relative or pb.relative,
                metadata={"from": survey_a, "to": survey_b, "index": index, "grid": survey_a}))
        parcels = load_parcels(ws)
        sa = zonal_stats(path_a, parcels, stats=("mean",), scheduler=scheduler)
        sb = zonal_stats(path_b, parcels, stats=("mean",), scheduler=scheduler)
    eco = parcels.set_index("parcel_id")["eco_zone"] if "eco_zone" in parcels else None
    lu = parcels.set_index("parcel_id")["land_use"] if "land_use" in parcels else None
    table = parcel_change(sa, sb, threshold=threshold, eco_zone=eco, land_use=lu)
    table = parcels[["parcel_id", "name"]].merge(table, on="parcel_id", how="right")
    alerts = table[table["degraded"]].reset_index(drop=True)
    return ChangeResult(product=product, table=table, alerts=alerts)


def change_frame(result: ChangeResult, parcels: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The per-parcel change table with parcel geometry (EPSG:4326), for maps and exports."""
    g = parcels[["parcel_id", "geometry"]].merge(result.table, on="parcel_id", how="right")
    return gpd.GeoDataFrame(g, geometry="geometry", crs=parcels.crs)

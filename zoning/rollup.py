"""Roll parcel results up to bag / soum / aimag with user-provided administrative boundaries.

Each parcel is assigned to the unit that contains its representative point (a point always
inside the polygon). Means are area-weighted by parcel area; class shares are area-weighted;
capacity and registered livestock (sheep units) and the balance are summed.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd

from belcheer.errors import InputError

#: Name columns tried per level when ``name_field`` is not given (OCHA COD-AB names first).
LEVEL_FIELDS: dict[str, tuple[str, ...]] = {
    "aimag": ("ADM1_EN", "aimag", "аймаг", "name", "NAME"),
    "soum": ("ADM2_EN", "soum", "сум", "name", "NAME"),
    "bag": ("ADM3_EN", "bag", "баг", "name", "NAME"),
}
_SUMS = ("area_ha", "capacity_su", "registered_su", "balance_su")


def _name_field(boundaries: gpd.GeoDataFrame, level: str, name_field: str | None) -> str:
    if name_field:
        if name_field not in boundaries.columns:
            raise InputError(f"boundaries have no column {name_field!r}; they have {', '.join(boundaries.columns)}")
        return name_field
    lower = {c.lower(): c for c in boundaries.columns}
    for cand in LEVEL_FIELDS.get(level, ("name", "NAME")):
        if cand.lower() in lower:
            return lower[cand.lower()]
    raise InputError(f"cannot tell which boundary column names the {level}; pass name_field= "
                     f"(columns: {', '.join(boundaries.columns)})")


def _unit_index(parcels: gpd.GeoDataFrame, boundaries: gpd.GeoDataFrame) -> pd.Series:
    """Row label of the boundary unit holding each parcel's representative point (NaN if none)."""
    if boundaries.crs is None or parcels.crs is None:
        raise InputError("parcels and boundaries both need a CRS to be rolled up")
    pts = gpd.GeoDataFrame(geometry=parcels.geometry.representative_point(), crs=parcels.crs,
                           index=parcels.index).to_crs(boundaries.crs)
    joined = gpd.sjoin(pts, boundaries[["geometry"]], how="left", predicate="within")
    joined = joined[~joined.index.duplicated(keep="first")]
    return joined["index_right"].reindex(parcels.index)


def assign_units(parcels: gpd.GeoDataFrame, boundaries: gpd.GeoDataFrame, *, level: str = "soum",
                 name_field: str | None = None) -> pd.Series:
    """Name of the boundary unit holding each parcel's representative point (NaN if none)."""
    field = _name_field(boundaries, level, name_field)
    idx = _unit_index(parcels, boundaries)
    return idx.map(lambda i: boundaries[field].loc[i] if pd.notna(i) else np.nan)


def rollup(parcels_or_report: gpd.GeoDataFrame, boundaries: gpd.GeoDataFrame, level: str = "soum", *,
           name_field: str | None = None) -> gpd.GeoDataFrame:
    """One row per boundary unit holding parcels: parcel count, summed area (ha), capacity,
    registered SU and balance; area-weighted means of every ``*mean*`` column and of
    ``share_1`` … ``share_5``; geometry of the unit (boundaries' CRS)."""
    frame = parcels_or_report.copy()
    if "area_ha" not in frame.columns:
        raise InputError("the parcel table needs an area_ha column (read it with read_parcels)")
    field = _name_field(boundaries, level, name_field)
    # group by the boundary row, not its name: soum names repeat across aimags
    frame["_unit"] = _unit_index(frame, boundaries)
    frame = frame[frame["_unit"].notna()]
    w = frame["area_ha"].astype("float64")
    weighted = [c for c in frame.columns
                if (("mean" in c and c != "mean_count") or c.startswith("share_") or c in ("biomass_kg_ha", "su_per_ha"))
                and pd.api.types.is_numeric_dtype(frame[c])]
    rows = []
    for unit, grp in frame.groupby("_unit", sort=True):
        gw = w.loc[grp.index]
        row: dict[str, object] = {"_unit": unit, "parcels": int(len(grp))}
        for c in _SUMS:
            if c in grp.columns:
                row[c] = float(pd.to_numeric(grp[c], errors="coerce").sum(min_count=1))
        for c in weighted:
            v = pd.to_numeric(grp[c], errors="coerce").to_numpy(dtype="float64")
            ok = np.isfinite(v) & (gw.to_numpy() > 0)
            row[c] = float(np.average(v[ok], weights=gw.to_numpy()[ok])) if ok.any() else np.nan
        if "balance_su" in row:
            row["overstocked"] = bool(row["balance_su"] < 0)
        rows.append(row)
    table = pd.DataFrame(rows, columns=["_unit", "parcels"] if not rows else None)
    attrs = boundaries.drop(columns="geometry").copy()
    if level in attrs.columns:
        attrs = attrs.drop(columns=level)
    attrs.insert(0, level, boundaries[field])
    units = gpd.GeoDataFrame(attrs, geometry=boundaries.geometry, crs=boundaries.crs)
    out = units.merge(table, left_index=True, right_on="_unit", how="inner").drop(columns="_unit")
    return gpd.GeoDataFrame(out.reset_index(drop=True), geometry="geometry", crs=boundaries.crs)

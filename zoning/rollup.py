"""Roll parcel results up to bag / soum / aimag — the one roll-up the CLI, the web API and the
PDF report all print.

Units come either from administrative boundary polygons (each parcel goes to the unit holding
its representative point, a point always inside the polygon) or, without boundaries, from the
parcels' own ``soum`` / ``aimag`` / ``bag`` attribute. Grazing land and cropland are reported
separately (``pasture_*`` and ``cropland_*`` columns, :mod:`belcheer.zoning.landuse`): an
NDVI mean over wheat and steppe together describes neither.

Means (every ``*mean*`` column, ``share_1`` … ``share_5``, biomass, SU/ha, crop uniformity)
are weighted by each parcel's **surveyed** area (``area_ha × surveyed_share``; ``area_ha``
when the table has no surveyed share): a mean of measured pixels, so a parcel the flight only
touched does not weigh like one it covered. Areas, capacity, registered livestock and the
balance are summed; the balance only over parcels whose capacity is known.
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
_SUMS = ("area_ha", "surveyed_ha", "capacity_su", "capacity_surveyed_su", "registered_su", "balance_su")
#: Columns averaged with the surveyed-area weights, besides every ``*mean*`` and ``share_*``.
_WEIGHTED = ("biomass_kg_ha", "su_per_ha", "crop_uniformity", "surveyed_share")


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


def _weighted_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns
            if (("mean" in c and c != "mean_count") or c.startswith("share_") or c in _WEIGHTED)
            and pd.api.types.is_numeric_dtype(frame[c])]


def _wavg(values: pd.Series, weights: np.ndarray) -> float:
    v = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")
    ok = np.isfinite(v) & np.isfinite(weights) & (weights > 0)
    return float(np.average(v[ok], weights=weights[ok])) if ok.any() else np.nan


def _summarise(grp: pd.DataFrame, index: str) -> dict[str, object]:
    """One unit's row: totals, all-land means, and the pasture / cropland split."""
    from belcheer.zoning.landuse import use_group

    area = pd.to_numeric(grp["area_ha"], errors="coerce").to_numpy(dtype="float64")
    share = (pd.to_numeric(grp["surveyed_share"], errors="coerce").to_numpy(dtype="float64")
             if "surveyed_share" in grp else np.ones(len(grp)))
    w = area * share
    row: dict[str, object] = {"parcels": int(len(grp))}
    for c in _SUMS:
        if c in grp.columns:
            row[c] = float(pd.to_numeric(grp[c], errors="coerce").sum(min_count=1))
    for c in _weighted_columns(grp):
        row[c] = _wavg(grp[c], w)
    if "balance_su" in row:
        row["overstocked"] = bool(row["balance_su"] < 0)
    if "capacity_su" in grp:
        row["capacity_parcels"] = int(np.isfinite(pd.to_numeric(grp["capacity_su"], errors="coerce")).sum())
    groups = (use_group(grp["land_use"].to_numpy(dtype=object)) if "land_use" in grp
              else np.full(len(grp), "pasture", dtype=object))
    mean_col = f"{index}_mean"
    for g in ("pasture", "cropland"):
        sel = groups == g
        row[f"{g}_parcels"] = int(sel.sum())
        row[f"{g}_area_ha"] = float(area[sel].sum())
        row[f"{g}_surveyed_ha"] = float(np.nansum(w[sel]))
        row[f"{g}_{mean_col}"] = _wavg(grp[mean_col][sel], w[sel]) if mean_col in grp else np.nan
    if "condition_class" in grp:
        cls = pd.to_numeric(grp["condition_class"], errors="coerce").to_numpy()
        for k in range(1, 6):
            row[f"pasture_class_{k}_ha"] = float(area[(groups == "pasture") & (cls == k)].sum())
    return row


def _nso_columns(row: dict[str, object], unit_name: object, aimag: object, code: object,
                 livestock: pd.DataFrame, params: object) -> None:
    """The soum's registered livestock (NSO) beside its capacity, in place."""
    from belcheer.zoning.capacity import CapacityParams, su_per_head
    from belcheer.zoning.registry import find_soum

    hit = find_soum(livestock, code=code, soum=unit_name, aimag=aimag)
    if hit is None:
        row.update(nso_code=None, nso_soum=None, nso_year=None, nso_heads=np.nan, nso_su_est=np.nan,
                   capacity_share_of_nso=np.nan)
        return
    su = float(hit["heads"]) * su_per_head(params if isinstance(params, CapacityParams) else None)
    cap = row.get("capacity_su")
    row.update(nso_code=str(hit["nso_code"]), nso_soum=hit["soum_mn"], nso_year=int(hit["year"]),
               nso_heads=float(hit["heads"]), nso_su_est=su,
               capacity_share_of_nso=(float(cap) / su if isinstance(cap, float) and su > 0 else np.nan))


def rollup(parcels_or_report: gpd.GeoDataFrame, boundaries: gpd.GeoDataFrame | None = None,
           level: str = "soum", *, name_field: str | None = None, index: str = "ndvi",
           livestock: pd.DataFrame | None = None, params: object = None) -> gpd.GeoDataFrame:
    """One row per unit holding parcels: ``parcels``, summed ``area_ha``, ``surveyed_ha``,
    ``capacity_su`` (SU, whole parcels), ``registered_su`` (the parcels' users' herds, SU) and
    ``balance_su``; surveyed-area-weighted means of every ``*mean*`` column (all land) and of
    ``share_1`` … ``share_5``; ``pasture_*`` and ``cropland_*`` parcels, hectares and
    ``<index>_mean``; ``pasture_class_K_ha``. With ``livestock`` (:func:`registry.read_livestock`)
    also the soum's NSO record: ``nso_code``, ``nso_heads`` (total heads), ``nso_su_est``
    (estimated SU) and ``capacity_share_of_nso`` (capacity ÷ estimated SU).

    ``boundaries`` (polygons, any CRS) give the units and their geometry; without them parcels
    are grouped by their ``level`` column and the unit's geometry is its parcels' union
    (EPSG:4326)."""
    frame = parcels_or_report.copy()
    if "area_ha" not in frame.columns:
        raise InputError("the parcel table needs an area_ha column (read it with read_parcels)")
    if boundaries is None:
        return _rollup_by_attribute(frame, level, index, livestock, params)
    field = _name_field(boundaries, level, name_field)
    # group by the boundary row, not its name: soum names repeat across aimags
    frame["_unit"] = _unit_index(frame, boundaries)
    frame = frame[frame["_unit"].notna()]
    code_col = next((c for c in ("NSO_CODE", "nso_code", "NSO_ADM2_CODE") if c in boundaries.columns), None)
    aimag_col = next((c for c in ("ADM1_MN", "ADM1_EN", "aimag", "аймаг") if c in boundaries.columns), None)
    rows = []
    for unit, grp in frame.groupby("_unit", sort=True):
        row: dict[str, object] = {"_unit": unit, **_summarise(grp, index)}
        if livestock is not None and level == "soum":
            aimag = boundaries[aimag_col].loc[unit] if aimag_col else (
                grp["aimag"].mode().iloc[0] if "aimag" in grp and len(grp["aimag"].dropna()) else None)
            _nso_columns(row, boundaries[field].loc[unit], aimag,
                         boundaries[code_col].loc[unit] if code_col else None, livestock, params)
        rows.append(row)
    table = pd.DataFrame(rows, columns=["_unit", "parcels"] if not rows else None)
    attrs = boundaries.drop(columns="geometry").copy()
    if level in attrs.columns:
        attrs = attrs.drop(columns=level)
    attrs.insert(0, level, boundaries[field])
    units = gpd.GeoDataFrame(attrs, geometry=boundaries.geometry, crs=boundaries.crs)
    out = units.merge(table, left_index=True, right_on="_unit", how="inner").drop(columns="_unit")
    return gpd.GeoDataFrame(out.reset_index(drop=True), geometry="geometry", crs=boundaries.crs)


def _rollup_by_attribute(frame: gpd.GeoDataFrame, level: str, index: str,
                         livestock: pd.DataFrame | None, params: object) -> gpd.GeoDataFrame:
    if level not in frame.columns:
        raise InputError(f"the parcels have no {level!r} column to group by; give boundary polygons")
    keys = frame[level].astype(object).where(frame[level].notna(), "")
    rows, geoms = [], []
    for name, grp in frame.groupby(keys, sort=True):
        row: dict[str, object] = {level: name, **_summarise(grp, index)}
        if level == "bag" and "soum" in grp:
            row["soum"] = grp["soum"].mode().iloc[0] if len(grp["soum"].dropna()) else None
        if level in ("soum", "bag") and "aimag" in grp:
            row["aimag"] = grp["aimag"].mode().iloc[0] if len(grp["aimag"].dropna()) else None
        if livestock is not None and level == "soum":
            code = grp["nso_code"].dropna().iloc[0] if "nso_code" in grp and grp["nso_code"].notna().any() else None
            _nso_columns(row, name, row.get("aimag"), code, livestock, params)
        rows.append(row)
        geoms.append(grp.geometry.union_all() if isinstance(grp, gpd.GeoDataFrame) else None)
    crs = frame.crs if isinstance(frame, gpd.GeoDataFrame) else None
    return gpd.GeoDataFrame(pd.DataFrame(rows), geometry=geoms, crs=crs)

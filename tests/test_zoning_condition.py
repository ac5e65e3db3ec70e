"""Condition classes, carrying capacity (checked by hand), biomass calibration, parcel report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from test_zoning_support import add_survey, render_ndvi, scene_parcels

from belcheer.errors import InputError
from belcheer.models import ProductKind
from belcheer.zoning import (
    CapacityParams,
    calibrate_biomass,
    calibrate_survey,
    capacity_table,
    carrying_capacity,
    condition_class,
    condition_raster,
    load_thresholds,
    normalise_parcels,
    parcel_report,
    save_parcels,
    sheep_units,
    survey_stats,
)

ORIGIN = (600_000.0, 4_850_000.0)


def test_condition_class_thresholds_per_zone() -> None:
    t = load_thresholds()
    steppe = t[(t.eco_zone == "steppe") & (t.variable == "ndvi")].iloc[0]
    b = [steppe[c] for c in ("class_I_min", "class_II_min", "class_III_min", "class_IV_min")]
    vals = np.array([b[0] + 0.01, b[0], b[1] - 1e-6, b[2], b[3] - 0.01, np.nan])
    np.testing.assert_array_equal(condition_class(vals, "steppe"), [1, 1, 3, 3, 5, 0])
    # the same NDVI is a better class in the Gobi than in the forest steppe
    gobi, forest = condition_class([0.25, 0.25], ["gobi", "forest_steppe"])
    assert gobi == 1 and forest == 5
    # biomass thresholds (kg DM/ha)
    assert condition_class(450.0, "steppe", variable="biomass") == 3
    with pytest.raises(InputError, match="tundra"):
        condition_class([0.3], "tundra")


def test_custom_threshold_table(tmp_path: Path) -> None:
    csv = tmp_path / "t.csv"
    csv.write_text("eco_zone,variable,class_I_min,class_II_min,class_III_min,class_IV_min\n"
                   "steppe,ndvi,0.8,0.6,0.4,0.2\n", encoding="utf-8")
    assert condition_class(0.5, "steppe", thresholds=load_thresholds(csv)) == 3
    csv.write_text("eco_zone,variable,class_I_min,class_II_min,class_III_min,class_IV_min\n"
                   "steppe,ndvi,0.2,0.6,0.4,0.8\n", encoding="utf-8")
    with pytest.raises(InputError, match="decrease"):
        load_thresholds(csv)


def test_carrying_capacity_matches_hand_computation() -> None:
    # Parcel A: steppe winter camp, 600 kg DM/ha, class II, 50 ha,
    #   usable = 600 × 0.40 = 240 kg/ha; one SU eats 1.5 kg/day × 135 days = 202.5 kg
    #   SU/ha = 240 / 202.5 = 1.185185…; ha/SU = 0.84375; SU = 59.259…
    #   registered: 2 camels×5 + 10 horses×7 + 5 cattle×6 + 200 sheep×1 + 150 goats×0.9 = 445 SU
    #   balance = 59.259 − 445 = −385.741 (overstocked)
    # Parcel B: desert-steppe summer camp, 300 kg DM/ha, class III, 120 ha,
    #   usable = 300 × 0.30 = 90 kg/ha; one SU eats 1.4 × 90 = 126 kg
    #   SU/ha = 90 / 126 = 0.714286; ha/SU = 1.4; SU = 85.714; registered 50 sheep → +35.714
    frame = pd.DataFrame({
        "parcel_id": ["A", "B"], "eco_zone": ["steppe", "desert_steppe"], "season": ["winter", "summer"],
        "area_ha": [50.0, 120.0], "biomass_kg_ha": [600.0, 300.0], "condition_class": [2, 3],
        "camel": [2, 0], "horse": [10, 0], "cattle": [5, 0], "sheep": [200, 50], "goat": [150, 0]})
    out = capacity_table(frame).set_index("parcel_id")
    assert out.loc["A", "usable_kg_ha"] == pytest.approx(240.0)
    assert out.loc["A", "su_per_ha"] == pytest.approx(1.185185, rel=1e-6)
    assert out.loc["A", "ha_per_su"] == pytest.approx(0.84375, rel=1e-9)
    assert out.loc["A", "capacity_su"] == pytest.approx(59.259259, rel=1e-6)
    assert out.loc["A", "registered_su"] == pytest.approx(445.0)
    assert out.loc["A", "balance_su"] == pytest.approx(-385.740741, rel=1e-6)
    assert out.loc["B", "su_per_ha"] == pytest.approx(0.714286, rel=1e-5)
    assert out.loc["B", "ha_per_su"] == pytest.approx(1.4, rel=1e-9)
    assert out.loc["B", "capacity_su"] == pytest.approx(85.714286, rel=1e-6)
    assert out.loc["B", "balance_su"] == pytest.approx(35.714286, rel=1e-6)
    # plain arrays work too (notebooks), and coefficients are configurable
    cc = carrying_capacity(np.array([600.0, 300.0]), np.array([2, 3]), eco_zone=["steppe", "desert_steppe"],
                           season=["winter", "summer"])
    np.testing.assert_allclose(cc["su_per_ha"], [240 / 202.5, 90 / 126])
    rested = carrying_capacity(600.0, 5, eco_zone="steppe", season="winter")
    assert rested["su_per_ha"] == 0.0 and rested["ha_per_su"] == np.inf
    p = CapacityParams().with_(sheep_units={"goat": 1.0})
    assert sheep_units({"sheep": 10, "goat": 10}, p) == 20.0
    assert sheep_units({"sheep": 10, "goat": 10}) == pytest.approx(19.0)


def test_biomass_calibration_recovers_a_known_line() -> None:
    rng = np.random.default_rng(3)
    ndvi = rng.uniform(0.1, 0.6, 40)
    dry_g = (2500 * ndvi - 100) / 40 + rng.normal(0, 0.5, 40)  # grams per 50×50 cm quadrat
    m = calibrate_biomass(ndvi, dry_g * 40)
    assert m.slope == pytest.approx(2500, rel=0.03) and m.intercept == pytest.approx(-100, abs=20)
    assert m.n == 40 and m.r2 > 0.97 and 10 < m.rmse < 30
    assert m.predict([0.0])[0] == 0.0  # negative predictions clipped


def _workspace_scene(ws, tmp_path: Path):
    parcels = scene_parcels(ORIGIN, n=6)
    # NDVI chosen to land in different classes of each parcel's zone
    values = dict(zip(parcels["parcel_id"], [0.50, 0.30, 0.20, 0.35, 0.05, 0.40], strict=True))
    save_parcels(ws, normalise_parcels(parcels).frame, source="test")
    arr, t = render_ndvi(parcels, values, gradient=0.0)
    add_survey(ws, "Хөх-2026-07", "2026-07-20", arr, t)
    return parcels, values, arr, t


def test_condition_raster_report_and_biomass(workspace, tmp_path: Path) -> None:
    parcels, values, arr, t = _workspace_scene(workspace, tmp_path)
    survey_stats(workspace, "Хөх-2026-07")
    prod = condition_raster(workspace, "Хөх-2026-07")
    assert prod.kind is ProductKind.CONDITION
    with rasterio.open(prod.path) as src:
        cls = src.read(1)
        assert src.dtypes[0] == "uint8" and src.nodata == 0
    from rio_cogeo.cogeo import cog_validate

    assert cog_validate(str(prod.path), quiet=True)[0]
    assert set(np.unique(cls)) <= {0, 1, 2, 3, 4, 5} and len(set(np.unique(cls)) - {0}) >= 3
    # quadrats: biomass = 2000 × NDVI kg/ha at the parcel centres
    cents = parcels.geometry.representative_point().to_crs(4326)
    samples = pd.DataFrame({"lon": cents.x, "lat": cents.y,
                            "dry_g": [2000 * values[p] / 40 for p in parcels["parcel_id"]]})
    csv = tmp_path / "quadrats.csv"
    samples.to_csv(csv, index=False)
    model, bprod = calibrate_survey(workspace, "Хөх-2026-07", csv)
    assert model.slope == pytest.approx(2000, rel=0.02) and model.r2 > 0.99 and model.n == 6
    assert bprod.kind is ProductKind.BIOMASS and bprod.units == "kg DM/ha"
    survey_stats(workspace, "Хөх-2026-07")  # now with biomass
    rep = parcel_report(workspace).set_index("parcel_id")
    expected = condition_class([values[p] for p in parcels["parcel_id"]], parcels["eco_zone"].to_numpy(dtype=object))
    np.testing.assert_array_equal(rep.loc[list(parcels["parcel_id"]), "condition_class"], expected)
    p1 = rep.loc["P01"]
    assert p1["condition_mn"].startswith(("I анги", "II анги", "III анги", "IV анги", "V анги"))
    assert p1["ndvi_mean"] == pytest.approx(0.50, abs=0.01)
    assert p1["biomass_kg_ha"] == pytest.approx(1000, rel=0.03)
    # shares of each class sum to one and the class of the mean holds most of the area
    shares = rep[[f"share_{k}" for k in range(1, 6)]]
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, atol=1e-6)
    for pid, row in rep.iterrows():
        assert row[f"share_{int(row['condition_class'])}"] > 0.8, pid
    # capacity consistent with the capacity module on the report's own numbers
    cc = carrying_capacity(p1["biomass_kg_ha"], int(p1["condition_class"]), eco_zone=p1["eco_zone"],
                           season=p1["season"], area_ha=p1["area_ha"])
    assert p1["capacity_su"] == pytest.approx(cc["capacity_su"])
    assert p1["balance_su"] == pytest.approx(cc["capacity_su"] - p1["registered_su"])
    assert rep.crs.to_epsg() == 4326 and rep.loc["P01", "name"] == "Бэлчээр №1 — Хөх нуур"


def test_bare_ground_class_and_combination(tmp_path: Path) -> None:
    from belcheer.zoning import bare_ground_class, combine_classes, load_bare_thresholds

    t = load_bare_thresholds()
    steppe = t[t.eco_zone == "steppe"].iloc[0]
    b = [steppe[c] for c in ("class_I_max", "class_II_max", "class_III_max", "class_IV_max")]
    vals = np.array([0.0, b[0], b[0] + 1e-6, b[2], b[3] + 0.01, np.nan])
    np.testing.assert_array_equal(bare_ground_class(vals, "steppe"), [1, 1, 2, 3, 5, 0])
    # more bare ground is natural in the Gobi than in the forest steppe
    gobi, forest = bare_ground_class([0.45, 0.45], ["gobi", "forest_steppe"])
    assert gobi == 1 and forest == 4
    # bare ground only lowers a grade; without an index class there is no grade
    np.testing.assert_array_equal(combine_classes([1, 3, 2, 0, 4], [3, 1, 0, 5, 4]), [3, 3, 2, 0, 4])
    csv = tmp_path / "bare.csv"
    csv.write_text("eco_zone,class_I_max,class_II_max,class_III_max,class_IV_max\nsteppe,0.5,0.4,0.6,0.7\n",
                   encoding="utf-8")
    with pytest.raises(InputError, match="rising"):
        load_bare_thresholds(csv)
    with pytest.raises(InputError, match="tundra"):
        bare_ground_class([0.3], "tundra")

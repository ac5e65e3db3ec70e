"""Against the simulator's ground truth: per-parcel NDVI means, biomass calibration, and a
roll-up of the simulated soum (Bayangol, Selenge) with the real boundaries."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from belcheer.zoning import calibrate_biomass, read_parcels, read_samples, rollup, zonal_stats
from belcheer.zoning.biomass import sample_raster


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory):
    from belcheer.simulate import simulate

    return simulate(tmp_path_factory.mktemp("sim"), camera="rgb", area_ha=0.5, altitude_m=40)


@pytest.mark.slow
def test_parcel_means_match_simulator_truth(sim) -> None:
    parcels = read_parcels(sim.parcels_path).frame
    truth = pd.read_csv(sim.parcel_truth_path, dtype={"parcel_id": str}).set_index("parcel_id")
    assert parcels["name"].tolist() == truth.loc[parcels["parcel_id"], "name"].tolist()  # Cyrillic intact
    stats = zonal_stats(sim.ndvi_path, parcels).set_index("parcel_id")
    err = (stats["mean"] - truth["ndvi"]).abs()
    assert err.max() < 0.02, err.sort_values().tail()
    # pasture-use areas reach far beyond the flight: the share of each inside the truth raster
    import rasterio
    import shapely

    with rasterio.open(sim.ndvi_path) as src:
        grid = shapely.box(*src.bounds)
    local = parcels.to_crs(32648).set_index("parcel_id")
    inside = local.geometry.intersection(grid).area / local.geometry.area
    assert stats["valid_fraction"].to_numpy() == pytest.approx(inside.loc[stats.index].to_numpy(), rel=0.02, abs=1e-4)
    assert (local.loc[local["land_use"] == "pasture", "area_ha"] > 5).all() and local["area_ha"].max() > 30
    # quadrats: the fitted line explains most of the variance of the clipped biomass
    q = read_samples(sim.quadrats_path)
    m = calibrate_biomass(sample_raster(sim.ndvi_path, q), q["biomass_kg_ha"])
    assert m.n == len(q) and m.slope > 0 and m.r2 > 0.5


@pytest.mark.slow
def test_landcover_from_simulated_training(sim, workspace) -> None:
    import rasterio
    from test_zoning_support import add_survey

    from belcheer.zoning import import_parcels, landcover_raster, parcel_report

    with rasterio.open(sim.ndvi_path) as src:
        ndvi, t = src.read(1), src.transform
    add_survey(workspace, "sim", str(sim.date), ndvi, t)
    import_parcels(workspace, sim.parcels_path)
    # classified on a ≈0.3 m grid (250k pixels) to keep the test quick
    res = landcover_raster(workspace, "sim", gpd.read_file(sim.training_path), max_pixels=250_000)
    assert res.method == "rf" and res.n_test_polygons >= 1 and 0.0 <= res.accuracy <= 1.0
    assert workspace.product("sim", "landcover").kind.value == "landcover"
    rep = parcel_report(workspace, "sim")
    shares = rep.filter(like="landcover_share_")
    assert len(shares.columns) >= 2
    np.testing.assert_allclose(shares.fillna(0).sum(axis=1), 1.0, atol=1e-6)
    # parcels are pastures: pasture should be the largest class in most of them
    assert (shares.idxmax(axis=1) == "landcover_share_pasture").mean() >= 0.5


@pytest.mark.slow
@pytest.mark.real
def test_simulated_soum_rolls_up_by_name(sim, real_data: Path) -> None:
    parcels = read_parcels(sim.parcels_path).frame
    parcels["ndvi_mean"] = 0.4
    soums = gpd.read_file(real_data / "mongolia_admin" / "adm_2.geojson")
    aimags = gpd.read_file(real_data / "mongolia_admin" / "adm_1.geojson")
    by_soum = rollup(parcels, soums, level="soum")
    assert by_soum["soum"].tolist() == [sim.soum_en] and by_soum["ADM1_EN"].tolist() == [sim.aimag_en]
    assert by_soum.iloc[0]["parcels"] == len(parcels)
    by_aimag = rollup(parcels, aimags, level="aimag")
    assert by_aimag["aimag"].tolist() == [sim.aimag_en]
    assert by_aimag.iloc[0]["area_ha"] == pytest.approx(parcels["area_ha"].sum())


@pytest.mark.slow
def test_land_use_decisions_on_simulated_soum(sim, workspace) -> None:
    """Grazing decisions only for the simulated pastures; crop indicators for its crop fields;
    capacity of each whole pasture from its surveyed part (simulator truth as the index)."""
    import rasterio
    import shapely
    from test_zoning_support import add_survey

    from belcheer.zoning import calibrate_survey, import_parcels, parcel_report
    from belcheer.zoning.capacity import carrying_capacity

    with rasterio.open(sim.ndvi_path) as src:
        ndvi, t, grid = src.read(1), src.transform, shapely.box(*src.bounds)
    add_survey(workspace, "sim", str(sim.date), ndvi, t)
    import_parcels(workspace, sim.parcels_path)
    calibrate_survey(workspace, "sim", sim.quadrats_path)
    from belcheer.zoning import survey_stats

    survey_stats(workspace, "sim", scheduler="synchronous")
    rep = parcel_report(workspace, "sim").set_index("parcel_id")
    truth = pd.read_csv(sim.parcel_truth_path, dtype={"parcel_id": str}).set_index("parcel_id")
    past = rep["land_use"] == "pasture"
    assert set(rep.index[past]) == set(truth.index[truth["land_use"] == "pasture"]) and (~past).sum() >= 2
    assert rep.loc[past, "condition_class"].between(1, 5).all() and (rep.loc[~past, "condition_class"] == 0).all()
    assert rep.loc[~past, "capacity_su"].isna().all() and rep.loc[~past, "biomass_kg_ha"].isna().all()
    # crop fields: the index mean is the truth's, uniformity between 0 and 1
    crop = rep.loc[~past]
    assert crop["crop_index_mean"].to_numpy() == pytest.approx(truth.loc[crop.index, "ndvi"].to_numpy(), abs=0.02)
    assert crop["crop_uniformity"].between(0.0, 1.0).all()
    # the surveyed share is the part of each parcel inside the flown raster
    local = rep.to_crs(32648)
    inside = local.geometry.intersection(grid).area / local.geometry.area
    assert rep["surveyed_share"].to_numpy() == pytest.approx(inside.to_numpy(), rel=0.02, abs=1e-4)
    # each pasture with enough surveyed share: SU/ha of its flown part × its whole area
    ok = past & (rep["surveyed_share"] >= 0.001)
    assert ok.any()
    cc = carrying_capacity(rep.loc[ok, "biomass_kg_ha"].to_numpy(), rep.loc[ok, "condition_class"].to_numpy(),
                           eco_zone="forest_steppe", season=rep.loc[ok, "season"].to_numpy(dtype=object))
    assert rep.loc[ok, "su_per_ha"].to_numpy() == pytest.approx(cc["su_per_ha"])
    assert rep.loc[ok, "capacity_su"].to_numpy() == pytest.approx(cc["su_per_ha"] * rep.loc[ok, "area_ha"].to_numpy())
    low = past & (rep["surveyed_share"] < 0.001)
    assert (rep.loc[low, "capacity_status"] == "below_min_share").all() and rep.loc[low, "capacity_su"].isna().all()

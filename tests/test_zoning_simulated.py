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
    assert (stats["valid_fraction"] > 0.99).all()
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

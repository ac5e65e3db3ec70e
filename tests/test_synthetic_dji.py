"""Simulated DJI P4 Multispectral and Mavic 3M flights end to end against the simulator's truth:
ingest (CaptureUUID, XMP bands) → panel + sunlight-sensor calibration (DJI's model) →
reflectance orthomosaic (band alignment seeded from DJI's band positions) → NDVI.

Small flights (0.12 ha at 50 m: GSD 5.2 cm P4M, 5.0 cm M3M; RTK with an unsurveyed base) keep the runtime modest; radiometry
is judged on the truth moved by the mosaic's common shift (as the RedEdge test does), geometry
band to band on the surveyed targets found in each band.
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from test_synthetic_multispectral import _against_truth, _targets

pytestmark = pytest.mark.slow

#: NDVI is compared on cells of two truth pixels (0.16 m), reflectance on the truth's own 8 cm
#: pixels, as for the RedEdge: the NDVI of a mixed pixel is not the mix of the NDVIs
NDVI_CELL = 2


@pytest.fixture(scope="module", params=["p4m", "m3m"])
def flight(request, tmp_path_factory):
    from belcheer import open_workspace
    from belcheer.indices import compute_survey
    from belcheer.indices.stored import survey_calibration
    from belcheer.ingest import ingest
    from belcheer.orthomosaic import mosaic
    from belcheer.simulate import simulate
    from belcheer.simulate.run import PANEL_ALBEDO

    camera = request.param
    tmp = tmp_path_factory.mktemp(camera)
    sim = simulate(tmp / "sim", camera=camera, seed=2, area_ha=0.12, altitude_m=50, gnss="rtk")
    ws = open_workspace(tmp / "ws")
    survey = ingest(ws, sim.frames_dir, survey="sim", quality=False)
    bands = [b.name for b in survey.bands]
    cal, rec = survey_calibration(ws, "sim", panel_albedo={b: PANEL_ALBEDO[b] for b in bands})
    prod = mosaic(ws, "sim")
    (ndvi,) = compute_survey(ws, "sim", ["ndvi"])
    return camera, sim, survey, rec, prod, ndvi


def test_dji_survey_is_read_as_the_camera_wrote_it(flight):
    camera, sim, survey, rec, prod, _ = flight
    want = ["blue", "green", "red", "rededge", "nir"] if camera == "p4m" else ["green", "red", "rededge", "nir"]
    assert [b.name for b in survey.bands] == want
    assert len(survey.captures) == sim.n_captures  # one capture per CaptureUUID
    assert [c.id for c in survey.panel_captures] == [survey.captures[0].id]
    assert survey.captures[0].frames[0].camera.model == ("FC6360" if camera == "p4m" else "M3M")
    # the panel sets the level, the sunlight sensor (in its own units) follows the cloud
    assert rec.method == "both" and prod.metadata["calibration"]["id"] == rec.id
    assert not any(n["code"].startswith("dji_") for n in rec.notes)  # every tag read


def test_dji_band_alignment(flight):
    camera, sim, _, _, prod, _ = flight
    with rasterio.open(prod.path) as src:
        res, count = abs(src.transform.a), src.count
    per_band = np.stack([_targets(sim, prod.path, b) for b in range(1, count + 1)])
    spread = np.linalg.norm(per_band - per_band.mean(axis=0), axis=2) / res
    assert spread.max() <= 0.5, (camera, spread.round(3))


def test_dji_reflectance_and_ndvi_against_truth(flight):
    camera, sim, _, _, prod, ndvi = flight
    shift = _targets(sim, prod.path).mean(axis=0)
    with rasterio.open(sim.reflectance_path) as tr:
        truth_band = {d: i + 1 for i, d in enumerate(tr.descriptions)}
    for i, band in enumerate(prod.bands, 1):
        rmse, bias = _against_truth(prod.path, i, sim.reflectance_path, truth_band[band.name], shift, 1)
        assert abs(bias) <= 0.003, (camera, band.name, bias)
        assert rmse <= 0.02, (camera, band.name, rmse)
    rmse, bias = _against_truth(ndvi.path, 1, sim.ndvi_path, 1, shift, NDVI_CELL)
    assert abs(bias) <= 0.005 and rmse <= 0.03, (camera, rmse, bias)

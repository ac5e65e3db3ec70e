"""A simulated 5-band RedEdge flight end to end against the simulator's truth: panel
calibration → reflectance orthomosaic → NDVI, with RTK positions offset by an unsurveyed base.

One flight, one mosaic (module fixture); the tests read it. Geometry is judged on the
surveyed targets, radiometry on the truth rasters moved by the mosaic's common shift (the base
offset no adjustment without ground control can know), so each measures one thing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.warp import Resampling, reproject

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def flight(tmp_path_factory):
    from belcheer import open_workspace
    from belcheer.indices import calibrate, compute_survey
    from belcheer.ingest import ingest
    from belcheer.orthomosaic import mosaic
    from belcheer.simulate import simulate
    from belcheer.simulate.run import PANEL_ALBEDO

    tmp = tmp_path_factory.mktemp("ms")
    sim = simulate(tmp / "sim", camera="rededge", seed=1, area_ha=0.3, altitude_m=70, gnss="rtk")
    ws = open_workspace(tmp / "ws")
    survey = ingest(ws, sim.frames_dir, survey="sim", panels=["IMG_0000"], quality=False)
    cal = calibrate(survey, panel_albedo=PANEL_ALBEDO)
    prod = mosaic(ws, "sim", correction=cal)
    (ndvi,) = compute_survey(ws, "sim", ["ndvi"])
    return sim, prod, ndvi


def _targets(sim, path: Path, band: int | None = None):
    """Found − surveyed target positions (n, 2) metres, in one band or the first three."""
    import pandas as pd

    from belcheer.orthomosaic.accuracy import checkpoint_errors

    cp = pd.read_csv(sim.checkpoints_path)
    if band is not None:
        with rasterio.open(path) as src:
            profile = dict(src.profile, count=1)
            one = path.parent / f".band{band}.tif"
            with rasterio.open(one, "w", **profile) as dst:
                dst.write(src.read(band), 1)
        path = one
    errs = checkpoint_errors(path, list(zip(cp.id, cp.x, cp.y, cp.size_m, strict=True)))
    assert len(errs) == len(cp) and min(e.score for e in errs) > 0.7
    return np.array([[e.dx, e.dy] for e in errs])


def test_five_band_checkpoints_and_band_registration(flight):
    sim, prod, _ = flight
    gsd = sim.gsd_m
    d = _targets(sim, prod.path)
    # absolute ≤ the GNSS σ, and the common shift is the RTK base's offset
    assert float(np.sqrt((d ** 2).sum(axis=1).mean())) <= sim.gps_sigma_h_m
    np.testing.assert_allclose(d.mean(axis=0), sim.gps_bias_m[:2], atol=2 * gsd)
    rel = d - d.mean(axis=0)
    # the issue asks ≤ 2 GSD; ≤ 1 GSD holds since the factory lens calibration is kept fixed
    # (free radial terms let the flat, nadir block dome: 1.5 GSD, the map 0.28 % too small)
    assert float(np.sqrt((rel ** 2).sum(axis=1).mean())) <= 1.0 * gsd
    # band to band: each target found in each band alone, within half a pixel of the bands' mean
    with rasterio.open(prod.path) as src:
        res, count = abs(src.transform.a), src.count
        assert [b.lower() for b in src.descriptions] == ["blue", "green", "red", "nir", "rededge"]
    per_band = np.stack([_targets(sim, prod.path, b) for b in range(1, count + 1)])
    spread = np.linalg.norm(per_band - per_band.mean(axis=0), axis=2) / res
    assert spread.max() <= 0.5, spread.round(3)


def _against_truth(path: Path, band: int, truth: Path, truth_band: int, shift: np.ndarray,
                   cell: int) -> tuple[float, float]:
    """RMSE and bias of a mosaic band against the truth on ``cell`` × the truth's 8 cm pixels,
    both averaged onto that grid; the truth moved by the mosaic's common ``shift`` (m)."""
    with rasterio.open(path) as m, rasterio.open(truth) as tr:
        t = Affine.translation(float(shift[0]), float(shift[1])) * tr.transform
        grid = t * Affine.scale(cell)
        shape = (tr.height // cell, tr.width // cell)
        got = np.full(shape, np.nan, np.float32)
        ref = np.full(shape, np.nan, np.float32)
        reproject(m.read(band), got, src_transform=m.transform, src_crs=m.crs, src_nodata=np.nan,
                  dst_transform=grid, dst_crs=m.crs, dst_nodata=np.nan, resampling=Resampling.average)
        reproject(tr.read(truth_band), ref, src_transform=t, src_crs=tr.crs, src_nodata=tr.nodata,
                  dst_transform=grid, dst_crs=m.crs, dst_nodata=np.nan, resampling=Resampling.average)
    ok = np.isfinite(got) & np.isfinite(ref)
    assert ok.sum() > 10_000 // cell ** 2
    diff = got[ok] - ref[ok]
    return float(np.sqrt(np.mean(diff * diff))), float(np.mean(diff))


def test_five_band_reflectance_and_ndvi_against_truth(flight):
    """Panel-calibrated reflectance against the truth's own 8 cm pixels: unbiased (≤ 0.003) and
    within the issue's 0.02 RMSE in every band. NDVI: within the issue's 0.03 on 0.16 m cells
    (two truth pixels, 3 GSD); on single 8 cm pixels ≤ 0.045, because a 5 cm pixel straddling a
    shrub's edge mixes red and NIR, and NDVI of a mix is not the mix of NDVIs."""
    sim, prod, ndvi = flight
    shift = _targets(sim, prod.path).mean(axis=0)
    with rasterio.open(sim.reflectance_path) as tr:
        truth_band = {d: i + 1 for i, d in enumerate(tr.descriptions)}
    for i, band in enumerate(prod.bands, 1):
        rmse, bias = _against_truth(prod.path, i, sim.reflectance_path, truth_band[band.name], shift, 1)
        assert abs(bias) <= 0.003, (band.name, bias)
        assert rmse <= 0.02, (band.name, rmse)
    rmse, bias = _against_truth(ndvi.path, 1, sim.ndvi_path, 1, shift, 2)
    assert abs(bias) <= 0.005 and rmse <= 0.03, (rmse, bias)
    rmse, _ = _against_truth(ndvi.path, 1, sim.ndvi_path, 1, shift, 1)
    assert rmse <= 0.045, rmse


def test_reflectance_mosaic_seam_step_is_measured_not_normalised(flight):
    """Reflectance is never gain-normalised: the quality report carries its seam step as
    measured (calibrated frames agree to a few per cent) and no corrected value."""
    import json

    _, prod, _ = flight
    report = json.loads(Path(prod.metadata["quality_report"]).read_text())
    step = report["seam_step_pct"]
    assert step["corrected"] is None and "not gain-normalised" in step["note"]
    assert step["seam_points"] > 500
    assert 0.0 < step["uncorrected"] <= 3.0, step
    assert report["radiometry"]["method"].startswith("none")

"""Radiometrically seamless RGB mosaics: per-frame exposure and lens vignetting solved from the
overlaps, the seam step before and after, and the simulator's vignetting/exposure survey."""

from __future__ import annotations

import json

import exifread
import numpy as np
import pandas as pd
import pytest
from scipy.spatial.transform import Rotation
from shapely.geometry import box

from belcheer.errors import ConfigError
from belcheer.grid import geobox_for_bounds
from belcheer.orthomosaic.geometry import CameraModel, rotation_from_gimbal
from belcheer.orthomosaic.radiometry import FrameBalance, _robust_fit, seam_step
from belcheer.orthomosaic.render import RenderCamera

# --- pure maths -----------------------------------------------------------------------------------


def test_frame_balance_factor_is_gain_at_centre_and_lifts_the_corners():
    fb = FrameBalance(gain=(0.5, 1.0), flat=((np.log(0.8), 0.0, 0.0), (0.0, 0.0, 0.0)),
                      centre=(199.5, 149.5), r0=250.0)
    f = fb.factor(np.array([199.5, 399.5]), np.array([149.5, 299.5]))
    np.testing.assert_allclose(f[0], [0.5, 1.0], rtol=1e-6)
    # the corner (r = r0) received 0.8 of the centre's light: it is lifted by 1/0.8
    np.testing.assert_allclose(f[1], [0.5 / 0.8, 1.0], rtol=1e-5)
    # the renderer clips points outside a frame to ±10⁶ px: no overflow there (inf × weight 0
    # would be NaN in the blend)
    steep = FrameBalance((1.0,), ((0.0, 0.0, -0.5),), (199.5, 149.5), 250.0)
    assert np.isfinite(steep.factor(np.array([-1e6]), np.array([1e6]))).all()
    tile = steep.factor_on_tile(*np.meshgrid(np.linspace(-1e6, 400, 64, dtype=np.float32),
                                             np.linspace(0, 300, 48, dtype=np.float32)), 1.0)
    assert tile.shape == (48, 64, 1) and np.isfinite(tile).all()
    # decimated by 2: pixel (99.5, 74.5) of the half-size image is the full frame's centre
    np.testing.assert_allclose(fb.factor_decimated(np.float32(99.5), np.float32(74.5), 2.0), [0.5, 1.0],
                               rtol=1e-5)


def test_robust_fit_recovers_gains_and_fall_off_despite_outliers():
    rng = np.random.default_rng(7)
    n_frames, n_pts = 12, 3000
    g_true = rng.normal(0, 0.15, n_frames)
    g_true -= g_true.mean()
    c_true = np.array([-0.18, -0.02, 0.01])
    pid = np.repeat(np.arange(n_pts), 3)
    frame = np.concatenate([rng.choice(n_frames, 3, replace=False) for _ in range(n_pts)])
    s = rng.uniform(0, 1, pid.size)
    u = rng.uniform(3.5, 5.2, n_pts)
    y = u[pid] + g_true[frame] + c_true[0] * s + c_true[1] * s**2 + c_true[2] * s**3
    y += rng.normal(0, 0.003, y.size)
    bad = rng.random(y.size) < 0.05  # parallax, moving cattle: values that do not agree
    y[bad] += rng.choice([-0.4, 0.5], int(bad.sum()))
    g, c, sigma = _robust_fit(pid, frame, np.zeros(pid.size, int), s, y, n_frames, 1, True)
    assert np.abs(g - g_true).max() < 0.004
    assert np.exp(c.sum()) == pytest.approx(np.exp(c_true.sum()), abs=0.004)
    assert sigma < 0.006


def _nadir_camera(cid: str, x: float, origin: tuple[float, float]) -> RenderCamera:
    rv = Rotation.from_matrix(rotation_from_gimbal(0.0, -90.0, 0.0)).as_rotvec()
    model = CameraModel(400, 300, 400.0, 199.5, 149.5)
    # 100 m up, 0.25 m per pixel: a 100 × 75 m footprint
    fp = box(origin[0] + x - 50, origin[1] - 37.5, origin[0] + x + 50, origin[1] + 37.5)
    return RenderCamera(cid, rv, np.array([x, 0.0, 100.0]), model, fp)


def test_seam_step_measured_on_the_seamline_before_and_after_balance():
    origin = (500_000.0, 5_000_000.0)
    cams = [_nadir_camera("A", 0.0, origin), _nadir_camera("B", 30.0, origin)]
    images = {"A": np.full((300, 400, 3), 100, np.uint8), "B": np.full((300, 400, 3), 110, np.uint8)}

    def read(cid: str, factor: float) -> np.ndarray:
        assert factor == 1.0  # a 400-px frame is read as it is
        return images[cid]

    gb = geobox_for_bounds((origin[0] - 40, origin[1] - 30, origin[0] + 70, origin[1] + 30), 32648, 0.5)
    h, w = gb.shape
    x = gb.affine.c + (np.arange(w) + 0.5) * gb.affine.a - origin[0]
    seams = np.broadcast_to(np.where(x < 15.0, 0, 1).astype(np.int32), (h, w)).copy()
    rep = seam_step(cams, origin, 0.0, gb, seams, read)
    assert rep["uncorrected"] == pytest.approx(100 * 10 / 105, abs=0.01)
    assert rep["corrected"] is None and rep["seam_points"] == h
    # B's gain brings it to A's level: no step left
    balanced = [cams[0], RenderCamera(*[getattr(cams[1], f) for f in ("capture_id", "rotvec", "centre",
                                                                        "model", "footprint")],
                                      balance=FrameBalance((100 / 110,) * 3, ((0.0,) * 3,) * 3,
                                                           (199.5, 149.5), 250.0))]
    rep = seam_step(balanced, origin, 0.0, gb, seams, read)
    assert rep["uncorrected"] == pytest.approx(9.52, abs=0.01)
    assert rep["corrected"] == pytest.approx(0.0, abs=0.01)
    # reflectance is never balanced: the step is measured and nothing else; NaN outside the
    # bands' common area (a strip along each frame's edge here) spoils no value beside it
    for cid, value in (("A", 0.20), ("B", 0.22)):
        images[cid] = np.full((300, 400, 5), value, np.float32)
        images[cid][:, :8] = np.nan
    rep = seam_step(balanced, origin, 0.0, gb, seams, read, reflectance=True)
    assert rep["uncorrected"] == pytest.approx(9.52, abs=0.01) and rep["corrected"] is None
    assert rep["seam_points"] == h
    assert "not gain-normalised" in rep["note"]


# --- the simulated vignetting / exposure survey ------------------------------------------------------

VIGNETTING = 0.35
JITTER_EV = 0.3


@pytest.fixture(scope="module")
def patchy_flight(tmp_path_factory):
    """An RGB flight (15 frames) whose lens loses 35 % of the light at the corners and whose
    auto-exposure drifts by σ 0.3 EV from frame to frame — written through the CLI."""
    from belcheer.cli import main
    from belcheer.simulate import load_simulation

    out = tmp_path_factory.mktemp("patchy") / "sim"
    assert main(["simulate", str(out), "--camera", "rgb", "--seed", "3", "--area-ha", "0.3",
                 "--altitude", "60", "--vignetting", str(VIGNETTING), "--exposure-jitter", str(JITTER_EV),
                 "--json"]) == 0
    return load_simulation(out)


def test_simulated_exposure_and_vignetting_are_recorded_as_truth(patchy_flight):
    sim = patchy_flight
    assert sim.vignetting == VIGNETTING and sim.exposure_jitter_ev == JITTER_EV
    poses = pd.read_csv(sim.poses_path)
    ev = np.log2(poses["exposure_gain"])
    assert 0.15 < ev.std() < 0.5 and poses["exposure_gain"].nunique() == len(poses)
    # the camera writes each frame's own exposure time, as an auto-exposure camera does
    first = poses.iloc[0]
    with open(sim.frames_dir / f"{first.capture_id}.JPG", "rb") as fh:
        tags = exifread.process_file(fh, details=False)
    t = tags["EXIF ExposureTime"].values[0]
    assert float(t.num) / float(t.den) == pytest.approx(first.exposure_gain / 800, rel=1e-3)
    params = json.loads(sim.simulation_json.read_text())
    poly = params["camera"]["vignetting_polynomial"][0]
    r0 = np.hypot(*params["camera"]["vignetting_center_px"])
    assert 1 + poly[1] * r0**2 == pytest.approx(1 - VIGNETTING)
    assert params["flight"]["exposure_jitter_ev"] == JITTER_EV


def test_exposure_jitter_is_refused_for_a_calibrated_multispectral_camera(tmp_path):
    from belcheer.simulate import simulate

    with pytest.raises(ConfigError, match="RGB cameras only"):
        simulate(tmp_path / "ms", camera="rededge", exposure_jitter=0.3)
    with pytest.raises(ConfigError, match="vignetting"):
        simulate(tmp_path / "v", camera="rgb", vignetting=0.95)


@pytest.mark.slow
def test_vignetting_and_exposure_survey_is_seamless_after_balance(patchy_flight, tmp_path, artifacts):
    """The issue's acceptance: seam step ≤ 2 % after correction, the uncorrected value
    reported and several times larger; the solved lens and exposures are the simulated ones."""
    from belcheer.ingest import scan
    from belcheer.orthomosaic import build_orthomosaic
    from belcheer.orthomosaic.products import write_report

    sim = patchy_flight
    res = build_orthomosaic(scan(sim.frames_dir), tmp_path / "patchy.tif")
    rep = res.report
    assert len(rep["frames_used"]) == sim.n_captures
    step = rep["seam_step_pct"]
    assert step["seam_points"] > 1000
    assert step["corrected"] <= 2.0, step
    assert step["uncorrected"] >= 5.0 and step["uncorrected"] >= 4 * step["corrected"], step
    rad = rep["radiometry"]
    assert rad["frames_balanced"] == sim.n_captures
    # the JPEG's values are the linear signal to the power 1/2.2: so is the lens's fall-off
    np.testing.assert_allclose(rad["vignetting_at_corners"][0], [(1 - VIGNETTING) ** (1 / 2.2)] * 3, atol=0.02)
    # each frame's brightness: exposure × light under the passing cloud, relative to the mean
    poses = pd.read_csv(sim.poses_path).set_index("capture_id")
    ids = list(rad["exposure_relative"])
    lin = np.log(poses.loc[ids, "exposure_gain"] * poses.loc[ids, "irradiance_green"]) / 2.2
    truth = np.exp(lin - lin.mean())
    solved = np.array([rad["exposure_relative"][c] for c in ids])
    np.testing.assert_allclose(solved, truth, rtol=0.015)
    _, png = write_report(res, tmp_path, "patchy")
    (artifacts / "orthomosaic-balanced-preview.png").write_bytes(png.read_bytes())

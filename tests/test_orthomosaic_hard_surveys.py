"""Issue 18's synthetic acceptance: surveys as real flights come — a lake under part of the
frames, uniform steppe grass, a fixed wing without gimbal, two blocks that share no overlap —
each mosaicked in one run, every frame placed or dropped with a reason, every residual finite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely

pytestmark = pytest.mark.slow

#: the issue's bound on every mean residual (survey and block), pixels
MAX_MEAN_PX = 1.5


def _mosaic(sim, tmp: Path):
    from belcheer.ingest import scan
    from belcheer.orthomosaic import build_orthomosaic

    survey = scan(sim.frames_dir, quality=False)
    return build_orthomosaic(survey, tmp / "mosaic.tif", resolution=0.1)


def _poses(sim) -> pd.DataFrame:
    p = pd.read_csv(sim.poses_path).set_index("capture_id")
    return p[~p.is_panel.astype(bool)]


def _residuals_ok(rep: dict) -> None:
    assert np.isfinite(rep["reprojection_mean_px"]) and rep["reprojection_mean_px"] <= MAX_MEAN_PX, rep[
        "reprojection_mean_px"]
    for b in rep["block_stats"]:
        assert np.isfinite(b["mean_px"]) and b["mean_px"] <= MAX_MEAN_PX, b


def _placed(rep: dict, poses: pd.DataFrame) -> None:
    """Every frame adjusted or placed by GPS (none of these surveys has an unplaceable frame)."""
    status = rep["frame_status"]
    assert set(poses.index) <= set(status), sorted(set(poses.index) - set(status))
    assert {status[c] for c in poses.index} <= {"adjusted", "gps_only"}, status


def test_lake_frames_are_placed_by_gps_within_two_sigma(tmp_path: Path) -> None:
    from belcheer.simulate import simulate

    sim = simulate(tmp_path / "sim", seed=8, camera="rgb", area_ha=0.3, altitude_m=45.0, lake_fraction=0.15)
    poses = _poses(sim)
    over = poses.index[poses.over_water.astype(bool)]
    assert len(over) >= 2
    rep = _mosaic(sim, tmp_path).report
    _placed(rep, poses)
    _residuals_ok(rep)
    status = rep["frame_status"]
    gps_only = [c for c in poses.index if status[c] == "gps_only"]
    # the frames over open water match nothing: placed by GPS, said so, with the expected error;
    # one that still sees a strip of shore may be tied by it (the low-contrast SIFT fallback
    # finds the shore's features), and then it must sit where it truly is
    assert set(gps_only) >= {c for c in over if poses.loc[c, "water_share"] >= 0.999}, (gps_only, list(over))
    for c in over:
        if poses.loc[c, "water_share"] >= 0.95 and status[c] == "adjusted":
            x, y, _ = rep["camera_positions_utm"][c]
            assert np.hypot(x - poses.loc[c, "x"], y - poses.loc[c, "y"]) <= 0.5, c
        elif poses.loc[c, "water_share"] >= 0.95:
            assert status[c] == "gps_only", c
    assert gps_only
    rows = {f["capture"]: f for f in rep["frames"]}
    for c in gps_only:
        assert rows[c]["reason"] and rows[c]["expected_error_m"] > 0
        x, y, _ = rep["camera_positions_utm"][c]
        err = float(np.hypot(x - poses.loc[c, "x"], y - poses.loc[c, "y"]))
        assert err <= 2.0 * np.sqrt(2.0) * sim.gps_sigma_h_m, (c, err)  # 2 σ of the 2-D error


def test_low_texture_steppe_is_mosaicked(tmp_path: Path) -> None:
    from belcheer.simulate import simulate

    sim = simulate(tmp_path / "sim", seed=3, camera="rgb", area_ha=0.1, altitude_m=70.0, texture="low")
    poses = _poses(sim)
    rep = _mosaic(sim, tmp_path).report
    _placed(rep, poses)
    _residuals_ok(rep)
    # uniform grass still ties most frames into the adjustment
    assert len(rep["frames_adjusted"]) >= 0.8 * len(poses), rep["frame_status"]


def test_fixed_wing_without_gimbal_is_mosaicked(tmp_path: Path) -> None:
    from belcheer.simulate import simulate

    sim = simulate(tmp_path / "sim", seed=2, camera="rgb", area_ha=0.1, altitude_m=35.0,
                   platform="fixed-wing")
    poses = _poses(sim)
    rep = _mosaic(sim, tmp_path).report
    _placed(rep, poses)
    _residuals_ok(rep)
    assert len(rep["frames_adjusted"]) >= 0.8 * len(poses), rep["frame_status"]
    # no attitude recorded: headings come from the images (or the track), never from nothing
    assert {f["heading_from"] for f in rep["frames"] if f["status"] != "dropped"} <= {"images", "track"}


def test_two_disconnected_blocks_are_both_rendered(tmp_path: Path) -> None:
    from belcheer.simulate import simulate

    sim = simulate(tmp_path / "sim", seed=5, camera="rgb", area_ha=0.05, altitude_m=35.0, blocks=2)
    poses = _poses(sim)
    res = _mosaic(sim, tmp_path)
    rep = res.report
    _placed(rep, poses)
    _residuals_ok(rep)
    assert len(rep["block_stats"]) == 2, rep["block_stats"]
    # each solved block lies within one flown block and holds most of it; a frame whose tie
    # points the adjustment rejected is placed by GPS and says so; ground under both blocks
    solved = [set(b) for b in rep["blocks"]]
    truth = [set(poses.index[poses.block == b]) for b in (0, 1)]
    status = rep["frame_status"]
    for t in truth:
        mine = [b for b in solved if b & t]
        assert len(mine) == 1 and mine[0] <= t, (mine, t)
        assert len(mine[0]) >= 0.75 * len(t), (mine[0], t)
        assert all(status[c] == "gps_only" for c in t - mine[0]), {c: status[c] for c in t}
    with rasterio.open(res.path) as src:
        for b in (0, 1):
            xy = poses.loc[poses.block == b, ["x", "y"]].to_numpy()
            centre = shapely.MultiPoint(xy).centroid
            vals = np.array(list(src.sample([(centre.x, centre.y)])))
            assert (vals > 0).any(), (b, vals)

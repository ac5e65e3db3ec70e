"""Placing frames before and without the adjustment: the planar start (heading and height from
matches and GPS), the flight track's heading, direct georeferencing, robust statistics."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from belcheer.orthomosaic.geometry import CameraModel, project, rotation_from_gimbal
from belcheer.orthomosaic.pairs import PairMatch
from belcheer.orthomosaic.placement import (
    angle_diff,
    off_nadir_deg,
    planar_solution,
    track_headings,
)

CAM = CameraModel(1600, 1200, 1300.0, 800.0, 600.0)


def _block(yaws, centres, rng, noise_px=0.5, tilt_deg=0.0):
    """Pairwise matches of ground points seen by cameras at ``centres`` with ``yaws``."""
    ground = np.column_stack([rng.uniform(-150, 250, 20000), rng.uniform(-150, 250, 20000),
                              rng.normal(0, 0.5, 20000)])
    rv = [Rotation.from_matrix(rotation_from_gimbal(y, -90.0 + rng.normal(0, tilt_deg),
                                                    rng.normal(0, tilt_deg))).as_rotvec() for y in yaws]
    px, inside = [], []
    for c, r in zip(centres, rv, strict=True):
        p, depth = project(ground, r, c, CAM.f, CAM.cx, CAM.cy, CAM.dist)
        px.append(p)
        inside.append((depth > 0) & (p[:, 0] > 0) & (p[:, 0] < CAM.width) & (p[:, 1] > 0)
                      & (p[:, 1] < CAM.height))
    matches = []
    for i in range(len(centres)):
        for j in range(i + 1, len(centres)):
            both = np.flatnonzero(inside[i] & inside[j])[:120]
            if len(both) >= 30:
                matches.append(PairMatch(i, j, px[i][both] + rng.normal(0, noise_px, (len(both), 2)),
                                         px[j][both] + rng.normal(0, noise_px, (len(both), 2)), len(both)))
    return matches


@pytest.mark.parametrize("yaw_of_line", [(0.0, 180.0), (37.0, 217.0), (90.0, 90.0)])
def test_planar_solution_recovers_heading_and_height_without_attitude(yaw_of_line):
    """Three lines of a serpentine, cameras 80 m above flat ground, GPS σ 3 m, no attitude: the
    headings come back within 3° and the heights within 5 % of the truth."""
    rng = np.random.default_rng(3)
    centres, yaws = [], []
    for li, x in enumerate((0.0, 45.0, 90.0)):
        for y in np.arange(0.0, 120.0, 20.0):
            centres.append([x, y if li % 2 == 0 else 120.0 - y, 80.0 + rng.normal(0, 1.0)])
            yaws.append(yaw_of_line[li % 2] + rng.normal(0, 2.0))
    centres = np.array(centres)
    matches = _block(yaws, centres, rng, tilt_deg=1.0)
    gps = centres + np.column_stack([rng.normal(0, 3.0, (len(centres), 2)), np.zeros(len(centres))])
    sol = planar_solution(matches, gps, [CAM] * len(centres), np.full(len(centres), 3.0))
    assert np.isfinite(sol.heading_deg).all()
    assert np.abs(angle_diff(sol.heading_deg, np.array(yaws))).max() < 3.0
    np.testing.assert_allclose(sol.height_m, centres[:, 2], rtol=0.05)


def test_planar_solution_leaves_unfixable_blocks_and_lone_frames_unsolved():
    """A pair whose GPS baseline is shorter than four σ cannot fix rotation and scale: NaN, as
    for a frame in no pair."""
    rng = np.random.default_rng(5)
    centres = np.array([[0.0, 0.0, 80.0], [0.0, 8.0, 80.0], [500.0, 500.0, 80.0]])
    matches = _block([10.0, 10.0, 10.0], centres, rng)
    sol = planar_solution(matches, centres.copy(), [CAM] * 3, np.full(3, 3.0))
    assert np.isnan(sol.heading_deg).all() and np.isnan(sol.height_m).all()


def test_track_headings_follow_a_serpentine():
    gps = np.array([[0, 0, 0], [0, 10, 0], [0, 20, 0], [10, 20, 0], [10, 10, 0], [10, 0, 0]], float)
    h = track_headings(gps)
    assert h[1] == pytest.approx(0.0) and h[4] == pytest.approx(180.0)
    assert h[2] == pytest.approx(45.0)  # the turn: from line one's middle to line two's start


def test_off_nadir_angle_of_a_banked_camera():
    rv = Rotation.from_matrix(rotation_from_gimbal(30.0, -90.0 + 12.0, 0.0)).as_rotvec()
    assert off_nadir_deg(rv) == pytest.approx(12.0, abs=1e-6)


def test_residual_statistics_leave_out_points_behind_the_camera():
    """A tie point behind (or at) its camera projects anywhere — a mean of 1e25 px came from
    one — and a gross outlier survives the last pass: both are counted and left out."""
    from belcheer.orthomosaic.adjust import statistics_outliers

    rng = np.random.default_rng(7)
    res = np.abs(rng.normal(0, 0.5, 1000))
    depth = rng.uniform(40, 90, 1000)
    res[10], depth[10] = 2.0e25, 1e-12
    res[20], depth[20] = 0.4, -35.0   # mirrored through the camera: a small residual, but behind
    res[30] = 60.0
    out, removed = statistics_outliers(res, depth, 4.0)
    assert removed == {"behind_camera": 2, "beyond_cut": 1, "cut_px": 4.0}
    assert set(np.flatnonzero(out)) == {10, 20, 30}
    assert np.mean(res[~out]) < 0.5

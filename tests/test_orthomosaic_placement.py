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


def _serpentine(rng, yaw_of_line=(0.0, 180.0)):
    centres, yaws = [], []
    for li, x in enumerate((0.0, 45.0, 90.0)):
        for y in np.arange(0.0, 120.0, 20.0):
            centres.append([x, y if li % 2 == 0 else 120.0 - y, 80.0 + rng.normal(0, 1.0)])
            yaws.append(yaw_of_line[li % 2] + rng.normal(0, 2.0))
    return np.array(centres), yaws


def _false_pair(i, k, centres, yaws, shift, turn_deg, rng, n=200):
    """Matches between frames ``i`` and ``k`` that frame ``k`` would see were it ``shift``
    metres away and turned by ``turn_deg``: look-alike ground matched to the wrong place."""
    ground = np.column_stack([rng.uniform(-150, 250, 20000), rng.uniform(-150, 250, 20000),
                              np.zeros(20000)])
    rv_i = Rotation.from_matrix(rotation_from_gimbal(yaws[i], -90.0, 0.0)).as_rotvec()
    rv_v = Rotation.from_matrix(rotation_from_gimbal(yaws[k] + turn_deg, -90.0, 0.0)).as_rotvec()
    pi, di = project(ground, rv_i, centres[i], CAM.f, CAM.cx, CAM.cy, CAM.dist)
    pv, dv = project(ground, rv_v, centres[k] + np.array([*shift, 0.0]), CAM.f, CAM.cx, CAM.cy, CAM.dist)
    ok = np.flatnonzero((di > 0) & (dv > 0) & (pi[:, 0] > 0) & (pi[:, 0] < CAM.width) & (pi[:, 1] > 0)
                        & (pi[:, 1] < CAM.height) & (pv[:, 0] > 0) & (pv[:, 0] < CAM.width)
                        & (pv[:, 1] > 0) & (pv[:, 1] < CAM.height))[:n]
    assert len(ok) >= 50
    return PairMatch(min(i, k), max(i, k), *((pi[ok], pv[ok]) if i < k else (pv[ok], pi[ok])), len(ok))


def test_a_pair_over_look_alike_ground_turns_no_frame():
    """Right headings everywhere, and the strongest pair of one frame matched ground 80 m from
    where it is, turned 180°: no quarter turn makes that pair agree clearly better than another,
    so it decides nothing and no frame is turned."""
    from belcheer.orthomosaic.orientation import _clear_turn, fix_yaw_flips

    rng = np.random.default_rng(7)
    centres, yaws = _serpentine(rng)
    matches = _block(yaws, centres, rng, tilt_deg=0.5)
    i, k = 2, 14
    # frame k "sees" the ground next to frame i, turned: 80 m from where k is
    shift = centres[i, :2] + np.array([15.0, 10.0]) - centres[k, :2]
    false = _false_pair(i, k, centres, yaws, shift, 180.0, rng)
    assert false.inliers > max(m.inliers for m in matches)  # the strongest edge of the graph
    rv = np.array([Rotation.from_matrix(rotation_from_gimbal(y, -90.0, 0.0)).as_rotvec() for y in yaws])
    _, turned = fix_yaw_flips(rv, centres, [CAM] * len(centres), [false] + matches, 0.0)
    assert turned == []
    # a frame whose camera wrote a heading 180° off is still turned by its true pairs
    wrong = rv.copy()
    wrong[k] = Rotation.from_matrix(rotation_from_gimbal(yaws[k] + 180.0, -90.0, 0.0)).as_rotvec()
    _, turned = fix_yaw_flips(wrong, centres, [CAM] * len(centres), matches, 0.0)
    assert turned == [k]
    assert _clear_turn([5.0, 36.0, 54.0, 42.0]) == 0.0
    assert _clear_turn([86.0, 56.8, 85.3, 107.7]) is None
    assert _clear_turn([np.nan] * 4) is None


def test_planar_solution_gives_no_heading_to_a_frame_without_a_similarity():
    """A frame whose only pair fails the similarity checks (ground scales 5× apart) gets no
    heading instead of its block's rotation; the block's frames are still solved."""
    rng = np.random.default_rng(3)
    centres, yaws = _serpentine(rng)
    matches = _block(yaws, centres, rng, tilt_deg=1.0)
    n = len(centres)
    pi = rng.uniform(100, 1100, (150, 2))
    bad = PairMatch(0, n, pi, 0.2 * pi + 300.0, 150)
    allc = np.vstack([centres, [[20.0, 60.0, 80.0]]])
    sol = planar_solution(matches + [bad], allc.copy(), [CAM] * (n + 1), np.full(n + 1, 3.0))
    assert np.isnan(sol.heading_deg[n]) and np.isnan(sol.height_m[n])
    assert np.abs(angle_diff(sol.heading_deg[:n], np.array(yaws))).max() < 3.0


def test_translation_synchronisation_recovers_shifts_and_leaves_false_pairs_out():
    """400 frames on a 20 × 20 grid, each pair to its 4-neighbours, true shifts ±3 m, 0.1 m
    noise and 20 false pairs off by 40 m: the solved shifts (up to their common mean) are
    within 0.1 m (median; 0.5 m at worst: a corner frame with a false pair hangs on one) and every false pair keeps a residual over 30 m."""
    from scipy.sparse import coo_matrix

    from belcheer.orthomosaic.consistency import synchronise_shifts

    rng = np.random.default_rng(11)
    side = 20
    n = side * side
    e = rng.normal(0, 3.0, (n, 2))
    pairs = [(r * side + c, r * side + c + 1) for r in range(side) for c in range(side - 1)]
    pairs += [(r * side + c, (r + 1) * side + c) for r in range(side - 1) for c in range(side)]
    i, j = np.array(pairs).T
    d = e[j] - e[i] + rng.normal(0, 0.1, (len(pairs), 2))
    false = rng.choice(len(pairs), 20, replace=False)
    d[false] += 40.0 / np.sqrt(2.0)
    rows = np.arange(len(pairs))
    inc = coo_matrix((np.r_[np.ones(len(pairs)), -np.ones(len(pairs))], (np.r_[rows, rows], np.r_[j, i])),
                     shape=(len(pairs), n)).tocsr()
    got = synchronise_shifts(inc, d, 1.5)
    err = (got - got.mean(axis=0)) - (e - e.mean(axis=0))
    assert np.abs(err).max() < 0.5 and np.median(np.abs(err)) < 0.1
    resid = np.linalg.norm(inc @ got - d, axis=1)
    assert resid[false].min() > 30.0
    assert np.median(resid) < 0.2


def test_heading_synchronisation_survives_strong_look_alike_pairs():
    """80 frames of a camera that turns freely (a compact camera without gimbal: any heading),
    each paired with its next four, every pair as strong as the matcher reports (inliers
    capped), and one in eight of them matched over look-alike ground at a random angle: in
    each of three such surveys every frame that most of its pairs place rightly (at most a
    quarter wrong) gets a heading within 2° of the truth. A start along a spanning tree of the
    strongest pairs takes one such pair's angle for whole runs of frames (real caliterra: 50 of
    400 pairs left over 20° off, five frames 75–165° wrong)."""
    from belcheer.orthomosaic.placement import _synchronise

    n = 80
    for seed in (5, 6, 17):
        rng = np.random.default_rng(seed)
        truth = rng.uniform(-np.pi, np.pi, n)
        edges, wrong = [], []
        for a in range(n):
            for b in range(a + 1, min(n, a + 5)):
                d = truth[a] - truth[b] + rng.normal(0, np.radians(0.5))
                wrong.append(rng.random() < 0.125)
                if wrong[-1]:
                    d = rng.uniform(-np.pi, np.pi)
                edges.append((a, b, float(d), 120.0))
        i, j = np.array([e[0] for e in edges]), np.array([e[1] for e in edges])
        wrong = np.array(wrong)
        placeable = np.array([wrong[(i == q) | (j == q)].mean() <= 0.25 for q in range(n)])
        assert placeable.sum() >= 60
        got = _synchronise(n, edges, np.zeros(n, int), True)
        err = angle_diff(np.degrees(got - truth), 0.0)
        err = angle_diff(err, np.degrees(np.angle(np.mean(np.exp(1j * np.radians(err[placeable]))))))
        assert np.abs(err[placeable]).max() < 2.0, (seed, np.round(err, 1))


def test_start_shifts_move_frames_to_where_their_pairs_agree():
    """18 frames whose fixes are each off their own way by 15 m (σ) — one of them a stale fix,
    the previous frame's position: the shifts put every start within 0.5 m of the truth (up to
    the block's common offset, which the GPS priors fix in the adjustment); frames in no pair
    are not moved."""
    from belcheer.orthomosaic.consistency import start_shifts

    rng = np.random.default_rng(4)
    centres, yaws = _serpentine(rng)
    n = len(centres)
    matches = _block(yaws, centres, rng)
    fixes = centres.copy()
    fixes[:, :2] += rng.normal(0, 15.0, (n, 2))
    fixes[7, :2] = fixes[6, :2]  # stale: the last frame's fix repeated
    rv = np.array([Rotation.from_matrix(rotation_from_gimbal(y, -90.0, 0.0)).as_rotvec() for y in yaws])
    lone = np.vstack([fixes, [[500.0, 500.0, 80.0]]])
    shift = start_shifts(matches, n + 1, np.vstack([rv, rv[:1]]), lone, [CAM] * (n + 1), 0.0)
    start = lone[:n, :2] - shift[:n]
    err = start - centres[:, :2]
    err -= err.mean(axis=0)
    assert np.abs(err).max() < 0.5, np.round(err, 2)
    assert np.linalg.norm(fixes[:, :2] - centres[:, :2] - (fixes[:, :2] - centres[:, :2]).mean(0), axis=1).max() > 20
    assert np.allclose(shift[n], 0.0) and np.allclose(shift[:n].mean(axis=0), 0.0, atol=1e-3)

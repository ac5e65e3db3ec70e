"""Checks of the match graph against the initial (GPS + attitude) placement of the frames.

Feature matching over repetitive ground (look-alike shrubs, stones, crop rows) can verify a
pair of frames that do not see the same place: the matches are consistent with *some*
epipolar geometry, so RANSAC keeps them. The placement from GPS and attitude tells them apart.
Each frame's placement error is, over the small area it shares with a neighbour, nearly a
shift ``e_k``; a true pair's ground points then disagree by ``e_j − e_i``, a false pair's by
whatever the repeated pattern offers. Solving for the shifts robustly over all pairs (a
translation synchronisation) leaves the false pairs with large residuals.

Also: the ground height from tie points, for cameras that write no height above take-off.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import least_squares
from scipy.sparse import coo_matrix

from belcheer.orthomosaic.geometry import (
    CameraModel,
    ray_directions,
    rays_to_plane,
    triangulate_midpoint,
)
from belcheer.orthomosaic.pairs import PairMatch

#: a pair whose ground disagreement departs from the synchronised shifts by more than this
#: many metres (or more than 4 robust standard deviations, if larger) is rejected
MIN_PAIR_TOLERANCE_M = 3.0


def ground_from_matches(matches: Sequence[PairMatch], rotvecs: np.ndarray, centres: np.ndarray,
                        cam_of: Sequence[CameraModel]) -> float | None:
    """Median height (local frame, metres) of the tie points triangulated from the initial
    poses, or None when too few rays meet in front of the cameras."""
    zs = []
    for m in matches:
        di = ray_directions(m.pi, rotvecs[m.i], cam_of[m.i])
        dj = ray_directions(m.pj, rotvecs[m.j], cam_of[m.j])
        p = triangulate_midpoint(centres[m.i], di, centres[m.j], dj)
        below = (p[:, 2] < centres[m.i][2]) & (p[:, 2] < centres[m.j][2])
        zs.append(p[below, 2])
    z = np.concatenate(zs) if zs else np.zeros(0)
    z = z[np.isfinite(z)]
    return float(np.median(z)) if len(z) >= 20 else None


def pair_shifts(matches: Sequence[PairMatch], rotvecs: np.ndarray, centres: np.ndarray,
                cam_of: Sequence[CameraModel], ground_z: float) -> np.ndarray:
    """(n_pairs, 2) median ground-plane offset (metres, east/north) from frame i's placement of
    each pair's tie points to frame j's."""
    out = np.full((len(matches), 2), np.nan)
    for k, m in enumerate(matches):
        a = rays_to_plane(m.pi, rotvecs[m.i], centres[m.i], cam_of[m.i], ground_z)
        b = rays_to_plane(m.pj, rotvecs[m.j], centres[m.j], cam_of[m.j], ground_z)
        d = b[:, :2] - a[:, :2]
        d = d[np.isfinite(d).all(axis=1)]
        if len(d):
            out[k] = np.median(d, axis=0)
    return out


def inconsistent_pairs(matches: Sequence[PairMatch], n: int, rotvecs: np.ndarray, centres: np.ndarray,
                       cam_of: Sequence[CameraModel], ground_z: float) -> tuple[list[int], np.ndarray]:
    """Indices of pairs whose ground offset the per-frame shifts cannot explain, and every
    pair's residual in metres (translation synchronisation with a Cauchy loss)."""
    d = pair_shifts(matches, rotvecs, centres, cam_of, ground_z)
    ok = np.isfinite(d).all(axis=1)
    idx = np.flatnonzero(ok)
    if len(idx) < 2:
        return [k for k in range(len(matches)) if not ok[k]], np.full(len(matches), np.nan)
    i = np.array([matches[k].i for k in idx])
    j = np.array([matches[k].j for k in idx])
    rows = np.arange(len(idx))
    # D · e (both axes share the incidence matrix); a weak prior e ≈ 0 fixes the gauge
    inc = coo_matrix((np.concatenate([np.ones(len(idx)), -np.ones(len(idx))]),
                      (np.concatenate([rows, rows]), np.concatenate([j, i]))), shape=(len(idx), n)).tocsr()
    prior = 1e-3

    def fun(x):
        e = x.reshape(2, n)
        r = (inc @ e.T) - d[idx]
        return np.concatenate([r.ravel(), prior * x])

    sol = least_squares(fun, np.zeros(2 * n), loss="cauchy", f_scale=MIN_PAIR_TOLERANCE_M / 2, method="trf")
    e = sol.x.reshape(2, n)
    resid = np.full(len(matches), np.nan)
    resid[idx] = np.linalg.norm(inc @ e.T - d[idx], axis=1)
    good = resid[idx]
    mad = 1.4826 * float(np.median(np.abs(good - np.median(good))))
    tol = max(MIN_PAIR_TOLERANCE_M, float(np.median(good)) + 4 * mad)
    bad = [k for k in range(len(matches)) if not ok[k] or resid[k] > tol]
    return bad, resid

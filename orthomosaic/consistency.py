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
from dataclasses import replace

import numpy as np
from scipy.sparse import coo_matrix, diags, identity
from scipy.sparse.linalg import splu

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


def ground_disagreement(m: PairMatch, rotvecs: np.ndarray, centres: np.ndarray,
                        cam_of: Sequence[CameraModel], ground_z: float) -> np.ndarray:
    """(N, 2) east/north offset, metres, from where frame i puts each tie point of pair ``m`` on
    the ground plane to where frame j puts it (NaN where a ray misses the plane)."""
    a = rays_to_plane(m.pi, rotvecs[m.i], centres[m.i], cam_of[m.i], ground_z)
    b = rays_to_plane(m.pj, rotvecs[m.j], centres[m.j], cam_of[m.j], ground_z)
    return b[:, :2] - a[:, :2]


def pair_shifts(matches: Sequence[PairMatch], rotvecs: np.ndarray, centres: np.ndarray,
                cam_of: Sequence[CameraModel], ground_z: float) -> np.ndarray:
    """(n_pairs, 2) median ground-plane offset (metres, east/north) from frame i's placement of
    each pair's tie points to frame j's."""
    out = np.full((len(matches), 2), np.nan)
    for k, m in enumerate(matches):
        d = ground_disagreement(m, rotvecs, centres, cam_of, ground_z)
        d = d[np.isfinite(d).all(axis=1)]
        if len(d):
            out[k] = np.median(d, axis=0)
    return out


def synchronise_shifts(inc, d: np.ndarray, scale_m: float, prior: float = 1e-3,
                       max_iterations: int = 200, tol_m: float = 1e-6) -> np.ndarray:
    """Per-frame shifts ``e`` (n, 2), metres, minimising Σ ρ(D·e − d) + (prior·e)² on each axis,
    ρ Cauchy's loss with scale ``scale_m``; ``inc`` the (pairs × frames) incidence matrix D
    (+1 at j, −1 at i), ``d`` (pairs, 2) the pairs' ground offsets in metres.

    Iteratively reweighted least squares with a sparse direct solve of the weighted graph
    Laplacian (DᵀWD + prior²·I) per step, whose cost grows with the number of pairs; a Krylov
    solver (``least_squares``' LSMR) needs more iterations the longer the block is, so its
    cost grew faster than the survey. The weak prior fixes the gauge.
    """
    n = inc.shape[1]
    reg = prior * prior * identity(n, format="csc")
    out = np.zeros((n, d.shape[1]))
    inc_t = inc.T.tocsr()
    for ax in range(d.shape[1]):
        e = np.zeros(n)
        for _ in range(max_iterations):
            r = inc @ e - d[:, ax]
            w = 1.0 / (1.0 + (r / scale_m) ** 2)
            lap = (inc_t @ diags(w) @ inc).tocsc() + reg
            e_new = splu(lap).solve(inc_t @ (w * d[:, ax]))
            step = float(np.max(np.abs(e_new - e), initial=0.0))
            e = e_new
            if step < tol_m:
                break
        out[:, ax] = e
    return out


def _synchronised(matches: Sequence[PairMatch], n: int, rotvecs: np.ndarray, centres: np.ndarray,
                  cam_of: Sequence[CameraModel], ground_z: float):
    """The pairs' ground offsets ``d``, the indices of those that are finite, their incidence
    matrix and the synchronised per-frame shifts ``e`` (n, 2), metres (zeros: < 2 pairs)."""
    d = pair_shifts(matches, rotvecs, centres, cam_of, ground_z)
    idx = np.flatnonzero(np.isfinite(d).all(axis=1))
    if len(idx) < 2:
        return d, idx, None, np.zeros((n, 2))
    i = np.array([matches[k].i for k in idx])
    j = np.array([matches[k].j for k in idx])
    rows = np.arange(len(idx))
    inc = coo_matrix((np.concatenate([np.ones(len(idx)), -np.ones(len(idx))]),
                      (np.concatenate([rows, rows]), np.concatenate([j, i]))), shape=(len(idx), n)).tocsr()
    return d, idx, inc, synchronise_shifts(inc, d[idx], MIN_PAIR_TOLERANCE_M / 2)


def start_shifts(matches: Sequence[PairMatch], n: int, rotvecs: np.ndarray, centres: np.ndarray,
                 cam_of: Sequence[CameraModel], ground_z: float) -> np.ndarray:
    """Per-frame east/north shift, metres, that makes the start placement agree with the
    verified pairs: ``centres[:, :2] − shift`` puts every pair's tie points in one place (up to
    what the robust synchronisation leaves). Zero mean over each block, zero for frames in no
    pair. A compact camera's fixes can be tens of metres off, each its own way (stale fixes
    repeat the last one): a bundle adjustment started there cuts a frame's tie points as
    outliers before it has moved to where they agree (real caliterra: 7 frames lost all or
    nearly all of theirs)."""
    return _synchronised(matches, n, rotvecs, centres, cam_of, ground_z)[3]


def inconsistent_pairs(matches: Sequence[PairMatch], n: int, rotvecs: np.ndarray, centres: np.ndarray,
                       cam_of: Sequence[CameraModel], ground_z: float) -> tuple[list[int], np.ndarray]:
    """Indices of pairs whose ground offset the per-frame shifts cannot explain, and every
    pair's residual in metres (translation synchronisation with a Cauchy loss)."""
    d, idx, inc, e = _synchronised(matches, n, rotvecs, centres, cam_of, ground_z)
    ok = np.isfinite(d).all(axis=1)
    if len(idx) < 2:
        return [k for k in range(len(matches)) if not ok[k]], np.full(len(matches), np.nan)
    resid = np.full(len(matches), np.nan)
    resid[idx] = np.linalg.norm(inc @ e - d[idx], axis=1)
    good = resid[idx]
    mad = 1.4826 * float(np.median(np.abs(good - np.median(good))))
    tol = max(MIN_PAIR_TOLERANCE_M, float(np.median(good)) + 4 * mad)
    bad = [k for k in range(len(matches)) if not ok[k] or resid[k] > tol]
    return bad, resid


def chain_without_gps(no_gps: Sequence[int], matches: Sequence[PairMatch], rotvecs: np.ndarray,
                      centres: np.ndarray, cam_of: Sequence[CameraModel], ground_z: float,
                      min_inliers: int = 15) -> list[int]:
    """Place frames that have no GPS from their matches with already placed frames.

    The tie points of all its verified pairs with placed frames are put on the ground plane by
    those frames, and the pose is solved from all of them at once with ``cv2.solvePnPRansac``
    (IPPE suits points on a plane): a pair of look-alike ground disagrees with the others and
    falls out as RANSAC outliers. Frames placed this way serve for the next.
    ``rotvecs``/``centres`` are updated in place (local frame). Returns the frames that no
    verified match could place.
    """
    import cv2

    pending = set(no_gps)
    placed = set(range(len(centres))) - pending
    progress = True
    while pending and progress:
        progress = False
        for k in sorted(pending):
            world, pixels = [], []
            for m in matches:
                if m.inliers < min_inliers or k not in (m.i, m.j):
                    continue
                other, px_other, px_k = (m.j, m.pj, m.pi) if m.i == k else (m.i, m.pi, m.pj)
                if other not in placed:
                    continue
                w = rays_to_plane(px_other, rotvecs[other], centres[other], cam_of[other], ground_z)
                ok = np.isfinite(w).all(axis=1)
                world.append(w[ok])
                pixels.append(px_k[ok])
            if not world or sum(len(w) for w in world) < min_inliers:
                continue
            cam = cam_of[k]
            # OpenCV's IPPE wants the plane at z = 0: work about the points' centroid on the ground
            allw = np.vstack(world).astype(np.float64)
            base = np.array([*np.median(allw[:, :2], axis=0), ground_z])
            found, rvec, tvec, inl = cv2.solvePnPRansac(
                allw - base, np.vstack(pixels).astype(np.float64), cam.matrix(),
                np.asarray(cam.dist, np.float64), flags=cv2.SOLVEPNP_IPPE, reprojectionError=4.0,
                iterationsCount=2000)
            if not found or inl is None or len(inl) < min_inliers:
                continue
            # a plane seen from above and its mirror image from below fit equally well: of IPPE's
            # two solutions on the inliers keep the camera above the ground
            wi = (allw - base)[inl.ravel()]
            pi = np.vstack(pixels)[inl.ravel()].astype(np.float64)
            n_sol, rvecs, tvecs, errs = cv2.solvePnPGeneric(wi, pi, cam.matrix(), np.asarray(cam.dist, np.float64),
                                                            flags=cv2.SOLVEPNP_IPPE)
            above = []
            for r, t, e in zip(rvecs[:n_sol], tvecs[:n_sol], np.ravel(errs)[:n_sol], strict=True):
                c = (-cv2.Rodrigues(r)[0].T @ t).ravel() + base
                if c[2] > ground_z:
                    above.append((float(e), r.ravel(), c))
            if not above:
                continue
            _, rvec, centre = min(above, key=lambda a: a[0])
            rotvecs[k] = rvec
            centres[k] = centre
            pending.discard(k)
            placed.add(k)
            progress = True
    return sorted(pending)


def drop_stray_matches(matches: Sequence[PairMatch], rotvecs: np.ndarray, centres: np.ndarray,
                       cam_of: Sequence[CameraModel], ground_z: float, min_tolerance_m: float = 3.0
                       ) -> tuple[list[PairMatch], int]:
    """Within each pair, drop the matches whose ground disagreement departs from the pair's
    median by more than ``min_tolerance_m`` metres (or 5 robust σ of that pair, if larger).

    An epipolar check keeps any wrong match that happens to lie near its epipolar line; on the
    ground plane such a match lands metres away from where its pair's others agree. Removing
    these few gross outliers before the adjustment lets it converge in a few steps instead of
    spending its iterations on them. Returns the filtered pairs and how many matches went.
    """
    out, dropped = [], 0
    for m in matches:
        d = ground_disagreement(m, rotvecs, centres, cam_of, ground_z)
        fin = np.isfinite(d).all(axis=1)
        if fin.sum() < 8:
            out.append(m)
            continue
        dev = np.full(len(d), np.inf)
        dev[fin] = np.linalg.norm(d[fin] - np.median(d[fin], axis=0), axis=1)
        spread = 1.4826 * float(np.median(dev[fin]))
        keep = dev <= max(min_tolerance_m, 5 * spread)
        dropped += int((~keep).sum())
        out.append(replace(m, pi=m.pi[keep], pj=m.pj[keep]) if not keep.all() else m)
    return out, dropped

"""Bundle adjustment: camera poses (6 DOF each), tie-point positions and shared per-camera
intrinsics (focal, k1, k2), with GPS priors weighted by their accuracy and optional GCPs.

Solved with ``scipy.optimize.least_squares`` (trust-region reflective, sparse Jacobian pattern
given through ``jac_sparsity``, robust soft-L1 loss), in a local east-north-up frame (UTM minus
an origin, metres). Reprojection residuals are in full-resolution pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares
from scipy.sparse import lil_matrix
from scipy.spatial.transform import Rotation
from threadpoolctl import threadpool_limits

from belcheer.orthomosaic.geometry import CameraModel, rays_to_plane, triangulate_midpoint
from belcheer.orthomosaic.pairs import PairMatch


@dataclass(frozen=True)
class GroundControl:
    """One GCP observation: world point (local frame, metres) seen at ``px`` in capture ``cam``."""

    cam: int
    world: np.ndarray
    px: np.ndarray
    name: str = ""


@dataclass(frozen=True)
class Adjustment:
    """The solved block: per-capture rotation vectors (world→camera) and centres (local frame),
    refined camera models per group, tie points and residual statistics (full-res pixels)."""

    rotvecs: np.ndarray
    centres: np.ndarray
    models: tuple[CameraModel, ...]
    points: np.ndarray
    residuals_px: np.ndarray
    obs_cam: np.ndarray
    gcp_residuals_px: np.ndarray
    cost: float
    iterations: int

    @property
    def mean_px(self) -> float:
        return float(np.mean(self.residuals_px)) if self.residuals_px.size else float("nan")

    @property
    def p95_px(self) -> float:
        return float(np.percentile(self.residuals_px, 95)) if self.residuals_px.size else float("nan")


def _project(points: np.ndarray, rv: np.ndarray, c: np.ndarray, intr: np.ndarray,
             fixed: np.ndarray) -> np.ndarray:
    """Per-row projection; ``intr`` rows (f, k1, k2), ``fixed`` rows (cx, cy, p1, p2, k3)."""
    pc = Rotation.from_rotvec(rv).apply(points - c)
    z = np.where(np.abs(pc[:, 2]) < 1e-6, 1e-6, pc[:, 2])
    x, y = pc[:, 0] / z, pc[:, 1] / z
    r2 = x * x + y * y
    f, k1, k2 = intr[:, 0], intr[:, 1], intr[:, 2]
    cx, cy, p1, p2, k3 = fixed.T
    radial = 1 + k1 * r2 + k2 * r2 * r2 + k3 * r2 ** 3
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return np.column_stack([f * xd + cx, f * yd + cy])


def initial_points(matches: Sequence[PairMatch], rotvecs: np.ndarray, centres: np.ndarray,
                   models: Sequence[CameraModel], group: np.ndarray, ground_z: float) -> np.ndarray:
    """Start positions of tie points: the mean of both rays' intersections with the ground plane."""
    pts = []
    for m in matches:
        a = rays_to_plane(m.pi, rotvecs[m.i], centres[m.i], models[group[m.i]], ground_z)
        b = rays_to_plane(m.pj, rotvecs[m.j], centres[m.j], models[group[m.j]], ground_z)
        p = np.nanmean(np.stack([a, b]), axis=0)
        p[~np.isfinite(p).all(axis=1)] = [centres[m.i][0], centres[m.i][1], ground_z]
        pts.append(p)
    return np.vstack(pts) if pts else np.zeros((0, 3))


def bundle_adjust(rotvecs0: np.ndarray, centres0: np.ndarray, gps: np.ndarray,
                  models: Sequence[CameraModel], group: np.ndarray, matches: Sequence[PairMatch],
                  ground_z: float, *, sigma_h: float = 3.0, sigma_v: float = 6.0,
                  gcps: Sequence[GroundControl] = (), refine_intrinsics: bool = True,
                  outlier_px: float = 4.0, max_nfev: int = 30,
                  sigma_attitude_deg: float = 15.0) -> Adjustment:
    """Solve poses, tie points and intrinsics from pairwise matches.

    ``gps`` (n, 3) local-frame positions, NaN rows for captures without GPS (they are placed by
    tie points alone). ``sigma_h``/``sigma_v`` GPS standard deviations in metres. Two passes:
    the second drops observations whose residual exceeds ``outlier_px`` after the first.
    """
    n = len(rotvecs0)
    g = len(models)
    obs_cam = np.concatenate([np.concatenate([np.full(m.inliers, m.i), np.full(m.inliers, m.j)])
                              for m in matches]) if matches else np.zeros(0, int)
    pt0 = initial_points(matches, rotvecs0, centres0, models, group, ground_z)
    offs = np.cumsum([0] + [m.inliers for m in matches])
    obs_pt = np.concatenate([np.concatenate([np.arange(offs[k], offs[k + 1])] * 2)
                             for k, _ in enumerate(matches)]) if matches else np.zeros(0, int)
    obs_px = np.concatenate([np.vstack([m.pi, m.pj]) for m in matches]) if matches else np.zeros((0, 2))
    keep = np.ones(len(obs_cam), bool)
    intr0 = np.array([[mo.f, mo.dist[0], mo.dist[1]] for mo in models])
    fixed_g = np.array([[mo.cx, mo.cy, mo.dist[2], mo.dist[3], mo.dist[4]] for mo in models])
    has_gps = np.isfinite(gps).all(axis=1)
    r0_inv = Rotation.from_rotvec(rotvecs0).inv()
    sig_att = np.deg2rad(sigma_attitude_deg)
    sig = np.array([sigma_h, sigma_h, sigma_v])

    # fixed intrinsics = priors so tight the solver cannot move them
    prior_f, prior_k = (0.05, 0.2) if refine_intrinsics else (1e-6, 1e-6)
    x = np.concatenate([np.hstack([rotvecs0, centres0]).ravel(), intr0.ravel(), pt0.ravel()])
    result = None
    schedule = ((50.0, 3.0), (5.0, 1.5), (2.0, 0.0))  # (robust scale px, outlier × median)
    # the closures below are used only within their own iteration (B023 is a false alarm)
    for _pass, (f_scale, k_med) in enumerate(schedule):
        oc, op, opx = obs_cam[keep], obs_pt[keep], obs_px[keep]
        n_pts = len(pt0)
        n_obs = len(oc)
        gps_idx = np.flatnonzero(has_gps)
        gcp_cam = np.array([gc.cam for gc in gcps], dtype=int)
        gcp_world = np.array([gc.world for gc in gcps]).reshape(-1, 3)
        gcp_px = np.array([gc.px for gc in gcps]).reshape(-1, 2)

        def unpack(x):
            cams = x[: n * 6].reshape(n, 6)
            intr = x[n * 6: n * 6 + g * 3].reshape(g, 3)
            pts = x[n * 6 + g * 3:].reshape(n_pts, 3)  # noqa: B023
            return cams, intr, pts

        def fun(x):
            cams, intr, pts = unpack(x)
            gi = group[oc]  # noqa: B023
            proj = _project(pts[op], cams[oc, :3], cams[oc, 3:], intr[gi], fixed_g[gi])  # noqa: B023
            parts = [(proj - opx).ravel()]  # noqa: B023
            parts.append(((cams[gps_idx, 3:] - gps[gps_idx]) / sig).ravel())  # noqa: B023
            if len(gcp_cam):  # noqa: B023
                gg = group[gcp_cam]  # noqa: B023
                pg = _project(gcp_world, cams[gcp_cam, :3], cams[gcp_cam, 3:], intr[gg], fixed_g[gg])  # noqa: B023
                parts.append((pg - gcp_px).ravel())  # noqa: B023
            # weak attitude prior: a weakly tied frame cannot spin away on a few bad matches
            parts.append((r0_inv * Rotation.from_rotvec(cams[:, :3])).as_rotvec().ravel() / sig_att)
            # weak priors keep the intrinsics physical when the block is flat and small
            parts.append((intr[:, 0] - intr0[:, 0]) / (prior_f * intr0[:, 0]))
            parts.append((intr[:, 1:] - intr0[:, 1:]).ravel() / prior_k)
            return np.concatenate(parts)

        n_res = 2 * n_obs + 3 * len(gps_idx) + 2 * len(gcp_cam) + 3 * n + 3 * g
        n_par = len(x)
        sp = lil_matrix((n_res, n_par), dtype=np.int8)
        r = np.arange(n_obs)
        for k in range(6):
            sp[2 * r, oc * 6 + k] = 1
            sp[2 * r + 1, oc * 6 + k] = 1
        for k in range(3):
            sp[2 * r, n * 6 + g * 3 + op * 3 + k] = 1
            sp[2 * r + 1, n * 6 + g * 3 + op * 3 + k] = 1
            sp[2 * r, n * 6 + group[oc] * 3 + k] = 1
            sp[2 * r + 1, n * 6 + group[oc] * 3 + k] = 1
        row = 2 * n_obs
        for c in gps_idx:
            for k in range(3):
                sp[row, c * 6 + 3 + k] = 1
                row += 1
        for c in gcp_cam:
            for k in range(6):
                sp[row, c * 6 + k] = 1
                sp[row + 1, c * 6 + k] = 1
            for k in range(3):
                sp[row, n * 6 + group[c] * 3 + k] = 1
                sp[row + 1, n * 6 + group[c] * 3 + k] = 1
            row += 2
        for c in range(n):  # attitude priors
            for k in range(3):
                for kk in range(3):
                    sp[row + k, c * 6 + kk] = 1
            row += 3
        for gidx in range(g):  # focal priors
            sp[row, n * 6 + gidx * 3] = 1
            row += 1
        for gidx in range(g):  # k1, k2 priors
            sp[row, n * 6 + gidx * 3 + 1] = 1
            sp[row + 1, n * 6 + gidx * 3 + 2] = 1
            row += 2
        # one BLAS thread: LSMR does many tiny dot products and threaded BLAS spin-waits on them
        with threadpool_limits(limits=1, user_api="blas"):
            result = least_squares(fun, x, jac_sparsity=sp.tocsr(), method="trf", loss="soft_l1",
                                   f_scale=f_scale, x_scale="jac", tr_solver="lsmr",
                                   max_nfev=max_nfev, ftol=1e-6, xtol=1e-8)
        x = result.x
        cams, intr, pts = unpack(x)
        gi = group[oc]
        res = np.linalg.norm(_project(pts[op], cams[oc, :3], cams[oc, 3:], intr[gi], fixed_g[gi]) - opx,
                             axis=1)
        if k_med > 0:
            thr = max(outlier_px, k_med * float(np.median(res)))
            bad = np.zeros(len(obs_cam), bool)
            bad[np.flatnonzero(keep)[res > thr]] = True
            # drop both observations of a point whose either end is an outlier
            keep &= ~np.isin(obs_pt, np.unique(obs_pt[bad]))
    cams, intr, pts = unpack(x)
    oc, op, opx = obs_cam[keep], obs_pt[keep], obs_px[keep]
    gi = group[oc]
    res = np.linalg.norm(_project(pts[op], cams[oc, :3], cams[oc, 3:], intr[gi], fixed_g[gi]) - opx, axis=1)
    gres = np.zeros(0)
    if gcps:
        gcp_cam = np.array([gc.cam for gc in gcps], dtype=int)
        gg = group[gcp_cam]
        gres = np.linalg.norm(_project(np.array([gc.world for gc in gcps]), cams[gcp_cam, :3],
                                       cams[gcp_cam, 3:], intr[gg], fixed_g[gg])
                              - np.array([gc.px for gc in gcps]), axis=1)
    new_models = tuple(mo.with_params(*intr[k]) for k, mo in enumerate(models))
    used = np.unique(op)
    return Adjustment(cams[:, :3].copy(), cams[:, 3:].copy(), new_models, pts[used], res, oc, gres,
                      float(result.cost) if result is not None else 0.0,
                      int(result.nfev) if result is not None else 0)


__all__ = ["Adjustment", "GroundControl", "bundle_adjust", "initial_points", "triangulate_midpoint"]

"""Bundle adjustment: camera poses (6 DOF each), tie-point positions and shared per-camera
intrinsics (focal, k1, k2), with GPS priors weighted by their accuracy and optional GCPs.

Solved with ``scipy.optimize.least_squares`` (trust-region reflective, sparse Jacobian pattern
given through ``jac_sparsity``, robust soft-L1 loss), in a local east-north-up frame (UTM minus
an origin, metres). Reprojection residuals are in full-resolution pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import least_squares
from scipy.sparse import coo_matrix
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
    #: offset of the GNSS positions from the ground control's frame, common to all cameras
    #: (GNSS = camera + offset; metres east/north/up), solved when GCPs are given
    gnss_shift: np.ndarray = field(default_factory=lambda: np.zeros(3))

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


class _Problem:
    """Residuals and their analytic sparse Jacobian for one pass of the adjustment.

    Parameters: per capture (rotation vector, centre), per camera group (f, k1, k2), per tie
    point (x, y, z). Residual blocks in order: reprojection (px), GPS priors (σ units), GCP
    reprojection (px), attitude priors, focal and k1/k2 priors. The projection derivatives come
    from ``cv2.projectPoints`` (the same Brown model as :func:`_project`); finite differences
    would need about a hundred residual evaluations per iteration.
    """

    def __init__(self, n, g, n_pts, group, fixed_g, oc, op, opx, gps, gps_idx, sig, gcp_cam,
                 gcp_world, gcp_px, r0_inv, sig_att, intr0, prior_f, prior_k, shift_sigma=None):
        self.n, self.g, self.n_pts = n, g, n_pts
        self.group, self.fixed_g = group, fixed_g
        self.oc, self.op, self.opx = oc, op, opx
        self.gps, self.gps_idx, self.sig = gps, gps_idx, sig
        self.gcp_cam, self.gcp_world, self.gcp_px = gcp_cam, gcp_world, gcp_px
        self.r0_inv, self.sig_att = r0_inv, sig_att
        self.intr0, self.prior_f, self.prior_k = intr0, prior_f, prior_k
        # with ground control, one GNSS offset common to all positions (an RTK base on an
        # unsurveyed point, a datum difference) is solved too, with a weak prior of this σ
        self.shift_sigma = shift_sigma
        self.n_shift = 3 if shift_sigma is not None else 0
        self.n_par = n * 6 + g * 3 + n_pts * 3 + self.n_shift
        # observations grouped by capture, for one projectPoints call per capture
        order = np.argsort(oc, kind="stable")
        bounds = np.searchsorted(oc[order], np.arange(n + 1))
        self.by_cam = [order[bounds[c]:bounds[c + 1]] for c in range(n)]
        gorder = np.argsort(gcp_cam, kind="stable") if len(gcp_cam) else np.zeros(0, int)
        gb = np.searchsorted(gcp_cam[gorder], np.arange(n + 1)) if len(gcp_cam) else np.zeros(n + 1, int)
        self.gcp_by_cam = [gorder[gb[c]:gb[c + 1]] for c in range(n)]

    def unpack(self, x):
        n, g = self.n, self.g
        cams = x[: n * 6].reshape(n, 6)
        intr = x[n * 6: n * 6 + g * 3].reshape(g, 3)
        pts = x[n * 6 + g * 3: n * 6 + g * 3 + 3 * self.n_pts].reshape(self.n_pts, 3)
        return cams, intr, pts

    def shift(self, x) -> np.ndarray:
        return x[-3:] if self.n_shift else np.zeros(3)

    def residuals(self, x):
        cams, intr, pts = self.unpack(x)
        oc, op, group, fixed_g = self.oc, self.op, self.group, self.fixed_g
        gi = group[oc]
        proj = _project(pts[op], cams[oc, :3], cams[oc, 3:], intr[gi], fixed_g[gi])
        parts = [(proj - self.opx).ravel()]
        b = self.shift(x)
        parts.append(((cams[self.gps_idx, 3:] + b - self.gps[self.gps_idx]) / self.sig[self.gps_idx]).ravel())
        if len(self.gcp_cam):
            gg = group[self.gcp_cam]
            pg = _project(self.gcp_world, cams[self.gcp_cam, :3], cams[self.gcp_cam, 3:], intr[gg], fixed_g[gg])
            parts.append((pg - self.gcp_px).ravel())
        # weak attitude prior: a weakly tied frame cannot spin away on a few bad matches
        parts.append(self._attitude(cams[:, :3]).ravel() / self.sig_att)
        # weak priors keep the intrinsics physical when the block is flat and small
        parts.append((intr[:, 0] - self.intr0[:, 0]) / (self.prior_f * self.intr0[:, 0]))
        parts.append((intr[:, 1:] - self.intr0[:, 1:]).ravel() / self.prior_k)
        if self.n_shift:
            parts.append(b / self.shift_sigma)
        return np.concatenate(parts)

    def _attitude(self, rv: np.ndarray) -> np.ndarray:
        return (self.r0_inv * Rotation.from_rotvec(rv)).as_rotvec()

    def _projection_blocks(self, cams, intr, points, cam_idx):
        """For observations of one capture: residual-row Jacobians w.r.t. rotation vector (2m, 3),
        centre (2m, 3), intrinsics f/k1/k2 (2m, 3) and the world point (2m, 3)."""
        rv, c = cams[cam_idx, :3], cams[cam_idx, 3:]
        gidx = self.group[cam_idx]
        f, k1, k2 = intr[gidx]
        cx, cy, p1, p2, k3 = self.fixed_g[gidx]
        k = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1.0]])
        q = (points - c).reshape(-1, 1, 3)
        # tvec = 0 and object points (X − C): the rotation-vector derivative is then ours exactly
        _, jac = cv2.projectPoints(q, rv.astype(np.float64), np.zeros(3), k,
                                   np.array([k1, k2, p1, p2, k3], np.float64))
        rot = cv2.Rodrigues(rv.astype(np.float64))[0]
        j_rv = jac[:, 0:3]
        j_pt = jac[:, 3:6] @ rot  # d(pixel)/d(camera-frame point) · d(point_cam)/d(X)
        j_intr = np.column_stack([jac[:, 6] + jac[:, 7], jac[:, 10], jac[:, 11]])
        return j_rv, -j_pt, j_intr, j_pt

    def jacobian(self, x):
        cams, intr, pts = self.unpack(x)
        n, g = self.n, self.g
        rows, cols, vals = [], [], []

        def put(r, c, v):
            rows.append(r.ravel())
            cols.append(c.ravel())
            vals.append(v.ravel())

        base_intr, base_pt = n * 6, n * 6 + g * 3
        r3 = np.arange(3)
        for cam in range(n):
            idx = self.by_cam[cam]
            if not len(idx):
                continue
            j_rv, j_c, j_intr, j_pt = self._projection_blocks(cams, intr, pts[self.op[idx]], cam)
            rr = (2 * idx[:, None] + np.arange(2)[None, :]).ravel()[:, None]  # (2m, 1)
            put(np.broadcast_to(rr, j_rv.shape), np.broadcast_to(cam * 6 + r3, j_rv.shape), j_rv)
            put(np.broadcast_to(rr, j_c.shape), np.broadcast_to(cam * 6 + 3 + r3, j_c.shape), j_c)
            put(np.broadcast_to(rr, j_intr.shape),
                np.broadcast_to(base_intr + self.group[cam] * 3 + r3, j_intr.shape), j_intr)
            pc = base_pt + 3 * np.repeat(self.op[idx], 2)[:, None] + r3[None, :]
            put(np.broadcast_to(rr, j_pt.shape), pc, j_pt)
        row = 2 * len(self.oc)
        gi = self.gps_idx
        if len(gi):
            rr = row + 3 * np.arange(len(gi))[:, None] + r3[None, :]
            put(rr, gi[:, None] * 6 + 3 + r3[None, :], 1.0 / self.sig[gi])
            if self.n_shift:
                put(rr, np.broadcast_to(self.n_par - 3 + r3[None, :], rr.shape), 1.0 / self.sig[gi])
            row += 3 * len(gi)
        if len(self.gcp_cam):
            for cam in range(n):
                idx = self.gcp_by_cam[cam]
                if not len(idx):
                    continue
                j_rv, j_c, j_intr, _ = self._projection_blocks(cams, intr, self.gcp_world[idx], cam)
                rr = row + (2 * idx[:, None] + np.arange(2)[None, :]).ravel()[:, None]
                put(np.broadcast_to(rr, j_rv.shape), np.broadcast_to(cam * 6 + r3, j_rv.shape), j_rv)
                put(np.broadcast_to(rr, j_c.shape), np.broadcast_to(cam * 6 + 3 + r3, j_c.shape), j_c)
                put(np.broadcast_to(rr, j_intr.shape),
                    np.broadcast_to(base_intr + self.group[cam] * 3 + r3, j_intr.shape), j_intr)
            row += 2 * len(self.gcp_cam)
        # attitude priors: 3×3 blocks by central differences, all captures at once (cheap)
        rv = cams[:, :3]
        h = 1e-6
        block = np.empty((n, 3, 3))
        for k in range(3):
            d = np.zeros(3)
            d[k] = h
            block[:, :, k] = (self._attitude(rv + d) - self._attitude(rv - d)) / (2 * h * self.sig_att)
        rr = row + 3 * np.arange(n)[:, None, None] + r3[None, :, None]
        cc = 6 * np.arange(n)[:, None, None] + r3[None, None, :]
        put(np.broadcast_to(rr, block.shape), np.broadcast_to(cc, block.shape), block)
        row += 3 * n
        gidx = np.arange(g)
        put(row + gidx, base_intr + gidx * 3, 1.0 / (self.prior_f * self.intr0[:, 0]))
        row += g
        rr = row + 2 * gidx[:, None] + np.arange(2)[None, :]
        put(rr, base_intr + gidx[:, None] * 3 + 1 + np.arange(2)[None, :], np.full((g, 2), 1.0 / self.prior_k))
        row += 2 * g
        if self.n_shift:
            put(row + r3, self.n_par - 3 + r3, np.full(3, 1.0 / self.shift_sigma))
            row += 3
        return coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(row, self.n_par)).tocsr()


def bundle_adjust(rotvecs0: np.ndarray, centres0: np.ndarray, gps: np.ndarray,
                  models: Sequence[CameraModel], group: np.ndarray, matches: Sequence[PairMatch],
                  ground_z: float, *, gps_sigma: np.ndarray | None = None,
                  sigma_h: float = 3.0, sigma_v: float = 6.0,
                  gcps: Sequence[GroundControl] = (), refine_intrinsics: bool = True,
                  outlier_px: float = 4.0, max_nfev: int = 30,
                  sigma_attitude_deg: float = 15.0, gnss_shift_sigma: float = 10.0) -> Adjustment:
    """Solve poses, tie points and intrinsics from pairwise matches.

    ``gps`` (n, 3) local-frame positions, NaN rows for captures without GPS (they are placed by
    tie points alone). ``gps_sigma`` (n, 3) per-capture 1σ of those positions in metres (east,
    north, up); where None, ``sigma_h``/``sigma_v`` for all. Three passes with a shrinking
    robust scale; after each of the first two, observations whose residual exceeds
    ``outlier_px`` (or a multiple of the median residual) are dropped. With ``gcps`` a GNSS
    offset shared by all positions is solved as well (prior σ ``gnss_shift_sigma`` metres):
    control points fix where the block is, GNSS how it is shaped.
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
    sig = (np.asarray(gps_sigma, float) if gps_sigma is not None
           else np.tile([sigma_h, sigma_h, sigma_v], (n, 1)))

    # fixed intrinsics = priors so tight the solver cannot move them
    prior_f, prior_k = (0.05, 0.2) if refine_intrinsics else (1e-6, 1e-6)
    shift_sigma = gnss_shift_sigma if len(gcps) else None
    x = np.concatenate([np.hstack([rotvecs0, centres0]).ravel(), intr0.ravel(), pt0.ravel(),
                        np.zeros(3 if shift_sigma is not None else 0)])
    result = None
    schedule = ((50.0, 3.0), (5.0, 1.5), (2.0, 0.0))  # (robust scale px, outlier × median)
    gps_idx = np.flatnonzero(has_gps)
    gcp_cam = np.array([gc.cam for gc in gcps], dtype=int)
    gcp_world = np.array([gc.world for gc in gcps]).reshape(-1, 3)
    gcp_px = np.array([gc.px for gc in gcps]).reshape(-1, 2)
    n_pts = len(pt0)
    for _pass, (f_scale, k_med) in enumerate(schedule):
        problem = _Problem(n, g, n_pts, group, fixed_g, obs_cam[keep], obs_pt[keep], obs_px[keep],
                           gps, gps_idx, sig, gcp_cam, gcp_world, gcp_px, r0_inv, sig_att, intr0,
                           prior_f, prior_k, shift_sigma)
        # one BLAS thread: LSMR does many tiny dot products and threaded BLAS spin-waits on them
        with threadpool_limits(limits=1, user_api="blas"):
            result = least_squares(problem.residuals, x, jac=problem.jacobian, method="trf",
                                   loss="soft_l1", f_scale=f_scale, x_scale="jac", tr_solver="lsmr",
                                   max_nfev=max_nfev, ftol=1e-6, xtol=1e-8)
        x = result.x
        cams, intr, pts = problem.unpack(x)
        oc, op, opx = problem.oc, problem.op, problem.opx
        gi = group[oc]
        res = np.linalg.norm(_project(pts[op], cams[oc, :3], cams[oc, 3:], intr[gi], fixed_g[gi]) - opx,
                             axis=1)
        if k_med > 0:
            thr = max(outlier_px, k_med * float(np.median(res)))
            bad = np.zeros(len(obs_cam), bool)
            bad[np.flatnonzero(keep)[res > thr]] = True
            # drop both observations of a point whose either end is an outlier
            keep &= ~np.isin(obs_pt, np.unique(obs_pt[bad]))
    cams, intr, pts = problem.unpack(x)
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
                      int(result.nfev) if result is not None else 0, problem.shift(x).copy())


__all__ = ["Adjustment", "GroundControl", "bundle_adjust", "initial_points", "triangulate_midpoint"]

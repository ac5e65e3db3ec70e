"""Bundle adjustment: camera poses (6 DOF each), tie-point positions and shared per-camera
intrinsics (focal, k1, k2), with GPS priors weighted by their accuracy and optional GCPs.

The engine is COLMAP's Ceres bundle adjuster (pycolmap): its reprojection costs, quaternion
manifolds and Schur-complement solvers (dense up to 50 frames, sparse beyond), so the solve
grows with the number of frames, not with the cube of the tie points. belcheer adds only what
COLMAP's adjuster does not know, as extra Ceres residual blocks on the same problem: GNSS
position priors with each frame's own accuracy (and the GNSS offset shared by all frames when
GCPs are given), a weak attitude prior and priors on the intrinsics. Everything is in a local
east-north-up frame (UTM minus an origin, metres); reprojection residuals in full-resolution
pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyceres
from scipy.spatial.transform import Rotation

from belcheer.orthomosaic.geometry import (
    CameraModel,
    distort_normalised,
    rays_to_plane,
    triangulate_midpoint,
)
from belcheer.orthomosaic.pairs import PairMatch

if TYPE_CHECKING:  # imported where used: pycolmap takes ~0.35 s to load
    import pycolmap

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
    #: observations left out of the residual statistics: behind a camera, beyond the cut (px)
    removed: dict = field(default_factory=lambda: {"behind_camera": 0, "beyond_cut": 0, "cut_px": None})

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
    cx, cy, p1, p2, k3 = fixed.T
    px, _ = distort_normalised(pc, intr[:, 0], cx, cy, (intr[:, 1], intr[:, 2], p1, p2, k3))
    return px


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


def _quat_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrix of a unit quaternion (x, y, z, w) — Eigen's order, which COLMAP stores."""
    x, y, z, w = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def _quat_matrix_derivatives(q: np.ndarray) -> tuple[np.ndarray, ...]:
    """dR/dx, dR/dy, dR/dz, dR/dw of :func:`_quat_matrix` (exact on the tangent space of the
    unit sphere, which is all Ceres' quaternion manifold uses)."""
    x, y, z, w = q
    return (2 * np.array([[0, y, z], [y, -2 * x, -w], [z, w, -2 * x]]),
            2 * np.array([[-2 * y, x, w], [x, 0, z], [-w, z, -2 * y]]),
            2 * np.array([[-2 * z, -w, x], [w, -2 * z, y], [x, y, 0]]),
            2 * np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]]))


class GnssPrior(pyceres.CostFunction):
    """Residual (C + b − GNSS) / σ of one frame: C = −Rᵀt its projection centre from COLMAP's
    ``rig_from_world`` parameters (qx, qy, qz, qw, tx, ty, tz), b the optional GNSS offset
    shared by all frames (a second parameter block of 3), σ the frame's own 1σ per axis (m)."""

    def __init__(self, gnss: np.ndarray, sigma: np.ndarray, with_offset: bool = False):
        super().__init__()
        self.gnss = np.asarray(gnss, float)
        self.inv_sigma = 1.0 / np.asarray(sigma, float)
        self.with_offset = with_offset
        self.set_num_residuals(3)
        self.set_parameter_block_sizes([7, 3] if with_offset else [7])

    def Evaluate(self, parameters, residuals, jacobians):  # noqa: N802 (Ceres' name)
        q, t = parameters[0][:4], parameters[0][4:]
        rot = _quat_matrix(q)
        centre = -rot.T @ t
        offset = parameters[1] if self.with_offset else 0.0
        residuals[:] = (centre + offset - self.gnss) * self.inv_sigma
        if jacobians is not None:
            if jacobians[0] is not None:
                jac = np.empty((3, 7))
                for k, d in enumerate(_quat_matrix_derivatives(q)):
                    jac[:, k] = -(d.T @ t)
                jac[:, 4:] = -rot.T
                jacobians[0][:] = (jac * self.inv_sigma[:, None]).ravel()
            if self.with_offset and jacobians[1] is not None:
                jacobians[1][:] = np.diag(self.inv_sigma).ravel()
        return True


#: COLMAP's FULL_OPENCV camera: fx, fy, cx, cy, k1, k2, p1, p2, k3, k4, k5, k6 — with k4..k6 = 0
#: it is the Brown model of :class:`CameraModel`; only fx = fy, k1 and k2 are refined
_FIXED_INTRINSICS = [2, 3, 6, 7, 8, 9, 10, 11]
#: a camera with its own lens calibration keeps k1 and k2 too: over flat ground seen straight
#: down, free radial terms trade off against the block's shape (the "doming" of James & Robson,
#: 2014), which on a simulated RedEdge flight shrank the map by 0.28 % about its centre
_FIXED_CALIBRATED = sorted(_FIXED_INTRINSICS + [4, 5])


def _colmap_camera(model: CameraModel, camera_id: int) -> pycolmap.Camera:
    import pycolmap

    k1, k2, p1, p2, k3 = model.dist
    return pycolmap.Camera(camera_id=camera_id, model="FULL_OPENCV", width=model.width,
                           height=model.height, params=[model.f, model.f, model.cx, model.cy,
                                                        k1, k2, p1, p2, k3, 0.0, 0.0, 0.0])


def _intrinsics_prior(model: CameraModel, prior_f: float, prior_k: float) -> pyceres.CostFunction:
    """Normal prior on a FULL_OPENCV parameter block: focal ± ``prior_f`` (relative), k1/k2 ±
    ``prior_k``; fx and fy are tied (σ of their difference 0.01 px) because belcheer's camera
    model has one focal length."""
    mean = np.array(_colmap_camera(model, 1).params, float)
    var_f = (prior_f * model.f) ** 2
    cov = np.eye(12)
    cov[0, 0] = cov[1, 1] = var_f
    cov[0, 1] = cov[1, 0] = var_f - 0.5 * 0.01 ** 2
    cov[4, 4] = cov[5, 5] = prior_k ** 2
    return pyceres.factors.NormalPrior(mean, cov)


def _attitude_prior(params0: np.ndarray, sigma_rad: float) -> pyceres.CostFunction:
    """Weak normal prior on the quaternion of a ``rig_from_world`` block (|Δq| ≈ angle / 2);
    the translation part gets no weight."""
    sq = np.sin(sigma_rad / 2.0)
    return pyceres.factors.NormalPrior(np.asarray(params0, float),
                                       np.diag([sq * sq] * 4 + [1e12] * 3))


def bundle_adjust(rotvecs0: np.ndarray, centres0: np.ndarray, gps: np.ndarray,
                  models: Sequence[CameraModel], group: np.ndarray, matches: Sequence[PairMatch],
                  ground_z: float, *, gps_sigma: np.ndarray | None = None,
                  sigma_h: float = 3.0, sigma_v: float = 6.0,
                  gcps: Sequence[GroundControl] = (), refine_intrinsics: bool = True,
                  outlier_px: float = 4.0, max_iterations: int = 50,
                  sigma_attitude_deg: float = 15.0, gnss_shift_sigma: float = 10.0,
                  ) -> Adjustment:
    """Solve poses, tie points and intrinsics from pairwise matches (COLMAP's Ceres adjuster).

    ``gps`` (n, 3) local-frame positions, NaN rows for captures without GPS (they are placed by
    tie points alone). ``gps_sigma`` (n, 3) per-capture 1σ of those positions in metres (east,
    north, up); where None, ``sigma_h``/``sigma_v`` for all. Three passes with a shrinking
    robust (soft-L1) scale of 50, 5 and 2 px; after each of the first two, tie points with an
    observation whose residual exceeds ``outlier_px`` (or a multiple of the median residual)
    are removed. With ``gcps`` a GNSS offset shared by all positions is solved as well (prior σ
    ``gnss_shift_sigma`` metres): control points fix where the block is, GNSS how it is
    shaped. A GCP seen in a single frame cannot be a COLMAP track and is left out.
    """
    import pycolmap

    n, g = len(rotvecs0), len(models)
    group = np.asarray(group, int)
    obs_cam = np.concatenate([np.concatenate([np.full(m.inliers, m.i), np.full(m.inliers, m.j)])
                              for m in matches]) if matches else np.zeros(0, int)
    pt0 = initial_points(matches, rotvecs0, centres0, models, group, ground_z)
    offs = np.cumsum([0] + [m.inliers for m in matches])
    obs_pt = np.concatenate([np.concatenate([np.arange(offs[k], offs[k + 1])] * 2)
                             for k, _ in enumerate(matches)]) if matches else np.zeros(0, int)
    obs_px = np.concatenate([np.vstack([m.pi, m.pj]) for m in matches]) if matches else np.zeros((0, 2))
    sig = (np.asarray(gps_sigma, float) if gps_sigma is not None
           else np.tile([sigma_h, sigma_h, sigma_v], (n, 1)))
    has_gps = np.isfinite(gps).all(axis=1)
    fixed_g = np.array([[mo.cx, mo.cy, mo.dist[2], mo.dist[3], mo.dist[4]] for mo in models])
    # σ of the focal length (relative) and of k1, k2 around the metadata's values
    prior_f, prior_k = 0.05, 0.2

    # GCP observations grouped into one constant COLMAP point per control point
    by_gcp: dict[tuple, list[int]] = {}
    for k, gc in enumerate(gcps):
        by_gcp.setdefault((gc.name, *np.round(gc.world, 4)), []).append(k)
    gcp_used = [k for ks in by_gcp.values() if len({gcps[q].cam for q in ks}) >= 2 for k in ks]

    rec = pycolmap.Reconstruction()
    for k, mo in enumerate(models):
        rec.add_camera_with_trivial_rig(_colmap_camera(mo, k + 1))
    kp_index = np.empty(len(obs_cam), int)
    gcp_kp = {}
    for c in range(n):
        idx = np.flatnonzero(obs_cam == c)
        kp_index[idx] = np.arange(len(idx))
        extra = [k for k in gcp_used if gcps[k].cam == c]
        for q, k in enumerate(extra):
            gcp_kp[k] = len(idx) + q
        kps = np.vstack([obs_px[idx].reshape(-1, 2)] + [gcps[k].px.reshape(1, 2) for k in extra])
        rot = Rotation.from_rotvec(rotvecs0[c]).as_matrix()
        rec.add_image_with_trivial_frame(
            pycolmap.Image(name=str(c), keypoints=kps, camera_id=int(group[c]) + 1, image_id=c + 1),
            pycolmap.Rigid3d(pycolmap.Rotation3d(rot), -rot @ centres0[c]))
    # every pairwise tie point is a track of two observations
    first = np.zeros(len(pt0), int)
    second = np.zeros(len(pt0), int)
    seen = np.zeros(len(pt0), bool)
    for o, p in enumerate(obs_pt):
        if seen[p]:
            second[p] = o
        else:
            first[p], seen[p] = o, True
    point_id = np.empty(len(pt0), int)
    for p in range(len(pt0)):
        track = pycolmap.Track()
        for o in (first[p], second[p]):
            track.add_element(int(obs_cam[o]) + 1, int(kp_index[o]))
        point_id[p] = rec.add_point3D(pt0[p], track)
    config = pycolmap.BundleAdjustmentConfig()
    for c in range(n):
        config.add_image(c + 1)
    for ks in by_gcp.values():
        ks = [k for k in ks if k in gcp_kp]
        if not ks:
            continue
        track = pycolmap.Track()
        for k in ks:
            track.add_element(gcps[k].cam + 1, gcp_kp[k])
        config.add_constant_point(rec.add_point3D(gcps[ks[0]].world, track))

    params0 = {c: np.array(rec.frame(c + 1).rig_from_world.params) for c in range(n)}
    observed = np.bincount(obs_cam, minlength=n) > 0
    for k in gcp_used:
        observed[gcps[k].cam] = True
    offset = np.zeros(3)
    keep = np.ones(len(obs_cam), bool)
    summary = None
    costs: list = []  # Python cost functions must outlive the solve
    schedule = ((50.0, 3.0), (5.0, 1.5), (2.0, 0.0))  # (robust scale px, outlier × median)
    for f_scale, k_med in schedule:
        # intrinsics are refined in the last pass only: over flat ground focal length and flying
        # height trade off along a long shallow valley that costs many iterations and does not
        # change which observations are outliers
        refine = refine_intrinsics and k_med == 0
        opts = pycolmap.BundleAdjustmentOptions()
        opts.print_summary = False
        opts.refine_principal_point = False
        opts.refine_focal_length = opts.refine_extra_params = refine
        opts.ceres.loss_function_type = pycolmap.LossFunctionType.SOFT_L1
        opts.ceres.loss_function_scale = f_scale
        so = opts.ceres.solver_options
        so.max_num_iterations = max_iterations
        # relative cost change: past it, over flat ground, the solver creeps along the valley where
        # focal length, flying height and tie-point heights trade off, which moves nothing on the
        # map; Powell's dogleg crosses that valley in a few steps where Levenberg-Marquardt crawls
        so.function_tolerance = 1e-4
        so.trust_region_strategy_type = pyceres.TrustRegionStrategyType.DOGLEG
        # one thread: pycolmap's solve holds the GIL, which the Python prior costs need
        so.num_threads = 1
        adjuster = pycolmap.create_default_ceres_bundle_adjuster(opts, config, rec)
        problem = adjuster.problem
        for k in range(g):
            block = rec.camera(k + 1).params
            if not problem.has_parameter_block(block):
                continue
            if refine:
                fixed = _FIXED_CALIBRATED if models[k].lens_calibrated else _FIXED_INTRINSICS
                problem.set_manifold(block, pyceres.SubsetManifold(12, fixed))
                costs.append(_intrinsics_prior(models[k], prior_f, prior_k))
                problem.add_residual_block(costs[-1], None, [block])
        if len(gcp_used):
            problem.add_parameter_block(offset, 3)
            costs.append(pyceres.factors.NormalPrior(np.zeros(3), np.eye(3) * gnss_shift_sigma ** 2))
            problem.add_residual_block(costs[-1], None, [offset])
        for c in range(n):
            pose = rec.frame(c + 1).rig_from_world.params
            if not observed[c] or not problem.has_parameter_block(pose):
                continue  # a frame with no observation left keeps its initial pose
            costs.append(_attitude_prior(params0[c], np.deg2rad(sigma_attitude_deg)))
            problem.add_residual_block(costs[-1], None, [pose])
            if has_gps[c]:
                costs.append(GnssPrior(gps[c], sig[c], with_offset=bool(gcp_used)))
                problem.add_residual_block(costs[-1], None, [pose, offset] if gcp_used else [pose])
        summary = adjuster.solve()
        costs.clear()
        if k_med > 0:
            res = _residuals(rec, n, point_id, obs_cam, obs_pt, obs_px, keep, group, fixed_g)
            thr = max(outlier_px, k_med * float(np.median(res)))
            live = np.flatnonzero(keep)
            bad_pts = np.unique(obs_pt[live[res > thr]])
            for p in bad_pts:
                rec.delete_point3D(int(point_id[p]))
            # both observations of a point go when either end is an outlier
            keep &= ~np.isin(obs_pt, bad_pts)
    res, depth = _residuals(rec, n, point_id, obs_cam, obs_pt, obs_px, keep, group, fixed_g,
                            with_depth=True)
    # the statistics leave out what no solver should be judged on: a point behind (or at) a
    # camera projects anywhere (one such made a mean of 1e25 px), and gross outliers left by the
    # last pass; both are counted
    out, removed = statistics_outliers(res, depth, outlier_px)
    live = np.flatnonzero(keep)
    bad_pts = np.unique(obs_pt[live[out]])
    keep &= ~np.isin(obs_pt, bad_pts)
    res = _residuals(rec, n, point_id, obs_cam, obs_pt, obs_px, keep, group, fixed_g)
    rotvecs, centres = _poses(rec, n)
    intr = _intrinsics(rec, g)
    gres = np.zeros(0)
    if len(gcp_used):
        gcp_cam = np.array([gcps[k].cam for k in gcp_used], int)
        gg = group[gcp_cam]
        gres = np.linalg.norm(_project(np.array([gcps[k].world for k in gcp_used]), rotvecs[gcp_cam],
                                       centres[gcp_cam], intr[gg], fixed_g[gg])
                              - np.array([gcps[k].px for k in gcp_used]).reshape(-1, 2), axis=1)
    used = np.unique(obs_pt[keep])
    points = np.array([rec.point3D(int(point_id[p])).xyz for p in used]).reshape(-1, 3)
    new_models = tuple(mo.with_params(*intr[k]) for k, mo in enumerate(models))
    return Adjustment(rotvecs, centres, new_models, points, res, obs_cam[keep], gres,
                      0.5 * float(np.sum(res ** 2)), _iterations(summary), offset.copy(), removed)


def statistics_outliers(res: np.ndarray, depth: np.ndarray, outlier_px: float = 4.0
                        ) -> tuple[np.ndarray, dict]:
    """Observations to leave out of the residual statistics: behind (or at) their camera
    (``depth`` ≤ 0, metres), or with a residual (px) beyond ``outlier_px`` or three times the
    median of the rest. Returns the mask and the counts with the cut used."""
    behind = ~(depth > 1e-6)
    ok = ~behind & np.isfinite(res)
    cut = max(outlier_px, 3.0 * float(np.median(res[ok]))) if ok.any() else outlier_px
    beyond = ~behind & ~(res <= cut)
    return behind | beyond, {"behind_camera": int(behind.sum()), "beyond_cut": int(beyond.sum()),
                             "cut_px": round(float(cut), 3)}


def _poses(rec: pycolmap.Reconstruction, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Rotation vectors (world→camera) and projection centres of images 1..n."""
    rot = np.empty((n, 3, 3))
    centres = np.empty((n, 3))
    for c in range(n):
        pose = rec.frame(c + 1).rig_from_world
        rot[c] = pose.rotation.matrix()
        centres[c] = -rot[c].T @ pose.translation
    return Rotation.from_matrix(rot).as_rotvec(), centres


def _intrinsics(rec: pycolmap.Reconstruction, g: int) -> np.ndarray:
    """(g, 3) focal (mean of the tied fx, fy), k1, k2 per camera group."""
    out = np.empty((g, 3))
    for k in range(g):
        prm = rec.camera(k + 1).params
        out[k] = [(prm[0] + prm[1]) / 2.0, prm[4], prm[5]]
    return out


def _residuals(rec, n, point_id, obs_cam, obs_pt, obs_px, keep, group, fixed_g, with_depth=False):
    """Reprojection residual norms (px) of the kept observations, in the Brown model (and
    with ``with_depth`` each point's depth in front of its camera, metres)."""
    rotvecs, centres = _poses(rec, n)
    intr = _intrinsics(rec, len(fixed_g))
    live = np.flatnonzero(keep)
    pts = np.array([rec.point3D(int(point_id[p])).xyz for p in obs_pt[live]]).reshape(-1, 3)
    oc = obs_cam[live]
    gi = group[oc]
    res = np.linalg.norm(_project(pts, rotvecs[oc], centres[oc], intr[gi], fixed_g[gi])
                         - obs_px[live], axis=1)
    if not with_depth:
        return res
    rot = Rotation.from_rotvec(rotvecs[oc]).as_matrix()
    depth = np.einsum("nj,nj->n", rot[:, 2, :], pts - centres[oc])
    return res, depth


def _iterations(summary) -> int:
    """Ceres steps (successful + unsuccessful) of the last pass."""
    ceres = getattr(summary, "ceres_summary", None)
    return int(ceres.num_successful_steps + ceres.num_unsuccessful_steps) if ceres is not None else 0


__all__ = ["Adjustment", "GnssPrior", "GroundControl", "bundle_adjust", "initial_points",
           "statistics_outliers", "triangulate_midpoint"]

"""Where frames stand before (and without) the bundle adjustment: heading and height above
ground from the matches and the GPS fixes, the flight track's heading, and the direct
georeferencing of frames that match nothing.

Seen from above, a frame of flat ground is a similarity from its pixels to the ground: a shift
(its nadir), a rotation (its heading) and a scale (height / focal length). Tie points ask two
frames to put a point in the same place, GPS fixes ask each nadir to lie at its fix: one
sparse linear least-squares problem for all frames at once. It needs no recorded attitude and
no ground height, so frames from compact cameras without gimbal tags, fixed-wing drones and
autopilots that write a wrong heading all start close to where they are, and it tells how
high above the ground each camera flew, which GPS altitudes (drifting, jumping) cannot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from belcheer.orthomosaic.geometry import CameraModel
from belcheer.orthomosaic.pairs import PairMatch


def _bearing(east: np.ndarray, north: np.ndarray) -> np.ndarray:
    return np.degrees(np.arctan2(east, north)) % 360.0


def circular_mean(deg: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Mean direction of angles in degrees (NaN for none)."""
    deg = np.asarray(deg, float)
    if deg.size == 0:
        return float("nan")
    w = np.ones_like(deg) if weights is None else np.asarray(weights, float)
    r = np.radians(deg)
    return float(np.degrees(np.arctan2(np.sum(w * np.sin(r)), np.sum(w * np.cos(r)))) % 360.0)


def angle_diff(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """Signed difference a − b wrapped to [−180, 180) degrees."""
    return (np.asarray(a, float) - np.asarray(b, float) + 180.0) % 360.0 - 180.0


@dataclass(frozen=True)
class PlanarSolution:
    """Each matched frame as a similarity from its pixels to the ground: ``heading_deg`` of the
    image's top edge (degrees clockwise from north), ``height_m`` of the camera above the
    ground (metres), ``nadir`` the ground point under the principal point (local east/north
    metres; NaN: not solved), ``rms_m`` how far the block's GPS baselines depart from the solved
    geometry (metres, robust RMS); NaN for frames in no pair or in a block its GPS cannot fix."""

    heading_deg: np.ndarray
    height_m: np.ndarray
    nadir: np.ndarray
    rms_m: np.ndarray
    #: per input match: how far its own similarity departs from the solved frames' (metres on
    #: the ground, NaN where not solved) — large for a pair over look-alike ground
    pair_residual_m: np.ndarray | None = None
    #: per frame: how much worse than their stated σ the block's GPS fixes are (≥ 1)
    gps_sigma_scale: np.ndarray | None = None


#: the most two frames' ground sample distances may differ for their pair to place them (a
#: drone survey's heights above ground vary far less; more means mismatched points)
MAX_PAIR_SCALE = 3.0


def _pair_similarity(m: PairMatch, ci: CameraModel, cj: CameraModel
                     ) -> tuple[complex, complex, int] | None:
    """The similarity ``w_j = mult · w_i + shift`` between two frames' complex pixel offsets
    from their principal points (image up imaginary), from the pair's tie points (RANSAC)."""
    import cv2

    wi = np.column_stack([m.pi[:, 0] - ci.cx, -(m.pi[:, 1] - ci.cy)])
    wj = np.column_stack([m.pj[:, 0] - cj.cx, -(m.pj[:, 1] - cj.cy)])
    sim, inl = cv2.estimateAffinePartial2D(wi, wj, method=cv2.RANSAC, ransacReprojThreshold=8.0)
    if sim is None or inl is None or int(inl.sum()) < 8:
        return None
    mult = complex(sim[0, 0], sim[1, 0])
    if not np.isfinite(mult) or abs(mult) < 1e-3:
        return None
    # the ground scale ratio of two frames of one survey: beyond a few times, the points are
    # not ground seen twice (a sliver of shore, clustered tie points) and would wreck the
    # scale of every frame synchronised through them
    ratio = abs(mult) * ci.f / cj.f
    if not 1.0 / MAX_PAIR_SCALE <= ratio <= MAX_PAIR_SCALE:
        return None
    return mult, complex(sim[0, 2], sim[1, 2]), int(inl.sum())


#: components up to this many frames get a dense eigen-solve, larger ones ARPACK's
_DENSE_EIGEN_MAX = 400


def spectral_angles(n: int, i: np.ndarray, j: np.ndarray, d: np.ndarray, w: np.ndarray,
                    comp: np.ndarray) -> np.ndarray:
    """Angles ``x`` (radians) with ``x_i − x_j ≈ d`` over the edges (i, j, d, weight ``w``), one
    arbitrary zero per connected component ``comp``: the eigenvector method of angular
    synchronisation (Singer 2011), the leading eigenvector of the degree-normalised Hermitian
    matrix ``H_ij = w·exp(i·d_ij)``. It sees every pair at once, so no chain of pairs decides
    a frame: a spanning-tree start passes one look-alike pair's wrong angle to every frame
    beyond it, and with residuals near ±180° a local refinement cannot bring those back."""
    from scipy.sparse import coo_matrix, diags
    from scipy.sparse.linalg import eigsh

    x = np.zeros(n)
    for c in np.unique(comp):
        members = np.flatnonzero(comp == c)
        if len(members) < 2:
            continue
        local = np.full(n, -1)
        local[members] = np.arange(len(members))
        sel = (local[i] >= 0) & (local[j] >= 0)
        if not sel.any():
            continue
        a, b, dd, ww = local[i[sel]], local[j[sel]], d[sel], w[sel]
        m = len(members)
        h = coo_matrix((np.concatenate([ww * np.exp(1j * dd), ww * np.exp(-1j * dd)]),
                        (np.concatenate([a, b]), np.concatenate([b, a]))), shape=(m, m)).tocsr()
        deg = np.asarray(abs(h).sum(axis=1)).ravel()
        scale = diags(1.0 / np.sqrt(np.maximum(deg, 1e-12)))
        hn = scale @ h @ scale
        if m <= _DENSE_EIGEN_MAX:
            v = np.linalg.eigh(hn.toarray())[1][:, -1]
        else:
            v = eigsh(hn, k=1, which="LA")[1][:, 0]
        v = v / np.sqrt(np.maximum(deg, 1e-12))
        ang = np.angle(v)
        x[members] = ang - ang[0]
    return x


def _synchronise(n: int, edges: list[tuple[int, int, float, float]], comp: np.ndarray,
                 wrap: bool) -> np.ndarray:
    """Solve x_i − x_j = d_ij over the edges (i, j, d, weight) by robust least squares, one
    zero-gauge per connected component ``comp``; ``wrap`` treats x and d as angles (radians)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import breadth_first_order, minimum_spanning_tree
    from scipy.sparse.linalg import lsqr

    x = np.zeros(n)
    if not edges:
        return x
    i = np.array([e[0] for e in edges])
    j = np.array([e[1] for e in edges])
    d = np.array([e[2] for e in edges])
    w = np.array([e[3] for e in edges])
    if wrap:
        x = spectral_angles(n, i, j, d, w, comp)
    else:
        # start from a maximum spanning tree (strongest pairs)
        g = coo_matrix((1.0 / (1.0 + w), (i, j)), shape=(n, n)).tocsr()
        tree = minimum_spanning_tree(g + g.T)
        tree = tree + tree.T
        lookup = {}
        for a, b, dd in zip(i, j, d, strict=True):
            lookup[(a, b)] = dd
            lookup[(b, a)] = -dd
        done = np.zeros(n, bool)
        for root in range(n):
            if done[root]:
                continue
            order, pred = breadth_first_order(tree, root, directed=False)
            done[order] = True
            for k in order[1:]:
                p = pred[k]
                x[k] = x[p] - lookup[(k, p)] if (k, p) in lookup else x[p] + lookup[(p, k)]
    rows = np.arange(len(edges))
    gauge = np.unique(comp, return_index=True)[1]
    a_mat = coo_matrix((np.concatenate([np.ones(len(edges)), -np.ones(len(edges)), np.ones(len(gauge))]),
                        (np.concatenate([rows, rows, len(edges) + np.arange(len(gauge))]),
                         np.concatenate([i, j, gauge]))), shape=(len(edges) + len(gauge), n)).tocsr()
    wt = np.sqrt(w)
    # angles start from the global (spectral) solution, tens of degrees off where pairs are
    # wrong, and are refined with a redescending (Cauchy) loss whose scale shrinks from 40° to
    # the residuals' own spread: Huber's lets every wrong pair pull with a bounded force (a
    # frame with two wrong pairs stays 10-30° off), and a tight Cauchy scale from the start
    # cuts right pairs loose along with the wrong ones
    floors = (40.0, 30.0, 20.0, 15.0, 10.0, 7.0, 5.0, 3.0, 2.0, 1.0, 0.0, 0.0, 0.0) if wrap else (0.0,) * 4
    for floor_deg in floors:
        r = d - (x[i] - x[j])
        if wrap:
            r = (r + np.pi) % (2 * np.pi) - np.pi
        mad = 1.4826 * float(np.median(np.abs(r))) + 1e-9
        if wrap:
            hub = 1.0 / (1.0 + (r / max(2 * mad, np.radians(floor_deg))) ** 2)
        else:
            hub = np.where(np.abs(r) > 2 * mad, 2 * mad / np.maximum(np.abs(r), 1e-12), 1.0)
        ww = np.concatenate([wt * np.sqrt(hub), np.ones(len(gauge))])
        rhs = np.concatenate([r, -x[gauge]])
        dx = lsqr(a_mat.multiply(ww[:, None]).tocsr(), rhs * ww, atol=1e-12, btol=1e-12)[0]
        x = x + dx
    return x


def planar_solution(matches: Sequence[PairMatch], gps: np.ndarray, cam_of: Sequence[CameraModel],
                    gps_sigma_h: np.ndarray, *, min_inliers: int = 15) -> PlanarSolution:
    """Heading and height above ground of every matched frame (see the module docstring).

    Each verified pair's tie points give the similarity between the two frames; their
    rotations and scales are synchronised over each block of connected frames (robust least
    squares in log-scale and angle), which fixes every frame up to one rotation and scale per
    block. Those come from the GPS: the ground vector between two fixes is the image vector
    between the two principal points, rotated and scaled. A block with fewer than two pairs
    whose baseline is over four times the fixes' combined σ gets NaN (its GPS cannot fix it).
    ``gps`` (n, 3) local metres, NaN rows without a fix; ``gps_sigma_h`` (n,) metres.
    """
    from belcheer.orthomosaic.pairs import blocks

    n = len(cam_of)
    heading = np.full(n, np.nan)
    height = np.full(n, np.nan)
    nadir = np.full((n, 2), np.nan)
    rms = np.full(n, np.nan)
    sims = []
    sim_of = []
    for q, m in enumerate(matches):
        if m.inliers < min_inliers:
            continue
        s = _pair_similarity(m, cam_of[m.i], cam_of[m.j])
        if s is not None:
            sims.append((m.i, m.j, *s))
            sim_of.append(q)
    pair_res = np.full(len(matches), np.nan)
    sigma_scale = np.ones(n)
    comp = np.zeros(n, int)
    # blocks of the pairs that gave a similarity: a frame whose matches all failed the
    # similarity checks is in no block here, and gets no heading (a block's rotation given to
    # it would be a guess — over look-alike ground, 180° off)
    for c, members in enumerate(blocks(n, [matches[q] for q in sim_of], min_inliers)):
        comp[members] = c
    # z_i / z_j = mult (ground = t + z·w for both frames)
    log_s = _synchronise(n, [(i, j, float(np.log(abs(mu))), float(q)) for i, j, mu, _, q in sims], comp, False)
    ang = _synchronise(n, [(i, j, float(np.angle(mu)), float(q)) for i, j, mu, _, q in sims], comp, True)
    zeta = np.exp(log_s + 1j * ang)
    for c in np.unique(comp):
        members = np.flatnonzero(comp == c)
        if len(members) < 2:
            continue
        us, ds, ws = [], [], []
        for i, j, _mu, shift, _ in sims:
            if comp[i] != c or not (np.isfinite(gps[i, :2]).all() and np.isfinite(gps[j, :2]).all()):
                continue
            d = complex(gps[i, 0] - gps[j, 0], gps[i, 1] - gps[j, 1])
            if abs(d) < 4.0 * float(np.hypot(gps_sigma_h[i], gps_sigma_h[j])):
                continue
            # frame i's principal point sits at ``shift`` in frame j: the ground vector j → i
            us.append(zeta[j] * shift)
            ds.append(d)
            ws.append(1.0)
        if len(us) < 2:
            continue
        u, d, w = np.array(us), np.array(ds), np.array(ws)
        # start from the median of the pairs' own rotation-scales: one wrong pair (a frame that
        # matched on a sliver of shore) can have a huge |u| and would steer a least-squares
        # start to z ≈ 0 — every frame at height zero — and then keep itself as the only fit
        big_z = _median_rotation_scale(d / np.where(np.abs(u) > 0, u, np.nan))
        for _ in range(4):
            r = np.abs(d - big_z * u)
            mad = 1.4826 * float(np.median(r)) + 1e-9
            # Huber weights, but pairs far beyond the spread get none: a leverage point's
            # down-weighted residual would otherwise still pull the solution its way
            w = np.where(r > 2 * mad, 2 * mad / np.maximum(r, 1e-12), 1.0) * (r <= 6 * mad)
            big_z = np.sum(w * np.conj(u) * d) / np.sum(w * np.abs(u) ** 2)
        r = np.abs(d - big_z * u)
        z = big_z * zeta[members]
        heading[members] = (-np.degrees(np.angle(z))) % 360.0
        height[members] = np.abs(z) * np.array([cam_of[k].f for k in members])
        rms[members] = float(np.sqrt(np.median(r ** 2)))
        zz = np.full(n, np.nan, complex)
        zz[members] = z
        in_block = [q for q, (i, _j, *_rest) in enumerate(sims) if comp[i] == c]
        t, res_m, inflate = _nadirs(n, members, [sims[q] for q in in_block], zz, gps,
                                    gps_sigma_h, height)
        nadir[members] = t[members]
        sigma_scale[members] = inflate
        pair_res[[sim_of[q] for q in in_block]] = res_m
    return PlanarSolution(heading, height, nadir, rms, pair_res, sigma_scale)


def _median_rotation_scale(z: np.ndarray) -> complex:
    """Robust centre of complex rotation-scales ``z`` (NaN ignored): the median log-magnitude
    and the median angle about their circular mean."""
    z = z[np.isfinite(z)]
    if z.size == 0:
        return complex(1.0, 0.0)
    mag = float(np.exp(np.median(np.log(np.abs(z)))))
    mean_dir = np.angle(np.sum(z / np.abs(z)))
    ang = mean_dir + float(np.median(np.angle(z * np.exp(-1j * mean_dir))))
    return complex(mag * np.exp(1j * ang))


def _nadirs(n: int, members: np.ndarray, sims: list, z: np.ndarray, gps: np.ndarray,
            gps_sigma_h: np.ndarray, height: np.ndarray, pair_sigma_m: float = 1.0,
            tilt_deg: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Nadir points of one block's frames (complex east + i·north, metres) with the rotations
    and scales ``z`` known: each pair says ``t_i − t_j = z_j · shift_ij`` (σ ``pair_sigma_m``),
    each fix ``t_k = gps_k`` (its σ and a ``tilt_deg`` tilt at its height); Huber-reweighted.
    Returns (n, 2) nadirs (NaN outside the block) and each pair's residual in metres."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import lsqr

    col = {int(k): q for q, k in enumerate(members)}
    rows, cols, vals, rhs, sig = [], [], [], [], []
    r = 0
    for i, j, _mu, shift, _q in sims:
        rows += [r, r]
        cols += [col[i], col[j]]
        vals += [1.0, -1.0]
        rhs.append(z[j] * shift)
        sig.append(pair_sigma_m)
        r += 1
    n_pairs = r
    for k in members:
        if np.isfinite(gps[k, :2]).all():
            rows.append(r)
            cols.append(col[int(k)])
            vals.append(1.0)
            rhs.append(complex(gps[k, 0], gps[k, 1]))
            sig.append(float(np.hypot(gps_sigma_h[k], height[k] * np.tan(np.radians(tilt_deg)))))
            r += 1
    a = coo_matrix((vals, (rows, cols)), shape=(r, len(members))).tocsr()
    b = np.array(rhs)
    sig = np.array(sig)
    is_fix = np.arange(r) >= n_pairs
    w = 1.0 / sig
    t = np.zeros(len(members), complex)
    inflate = 1.0
    for it in range(6):
        aw = a.multiply(w[:, None]).tocsr()
        t = (lsqr(aw, (b * w).real, atol=1e-12, btol=1e-12)[0]
             + 1j * lsqr(aw, (b * w).imag, atol=1e-12, btol=1e-12)[0])
        res = np.abs(a @ t - b) / sig
        if it == 1 and is_fix.sum() >= 5:
            # fixes far worse than their stated σ (a compact camera's GPS): scale every fix's
            # σ to what the frames' own geometry shows, per axis (|2-D residual| / √2)
            inflate = max(1.0, 1.4826 * float(np.median(res[is_fix])) / np.sqrt(2.0) / 0.8326)
            sig = np.where(is_fix, sig * inflate, sig)
            res = np.abs(a @ t - b) / sig
        w = np.where(res > 2.0, np.sqrt(2.0 / np.maximum(res, 1e-12)), 1.0) / sig
    out = np.full((n, 2), np.nan)
    out[members, 0], out[members, 1] = t.real, t.imag
    return out, np.abs(a @ t - b)[:n_pairs], inflate


def track_headings(gps: np.ndarray, order: Sequence[int] | None = None) -> np.ndarray:
    """Heading of the flight at each frame (degrees clockwise from north, NaN without GPS), from
    its neighbours in capture order: the direction from the previous fix to the next."""
    n = len(gps)
    order = list(range(n)) if order is None else list(order)
    ok = [k for k in order if np.isfinite(gps[k, :2]).all()]
    out = np.full(n, np.nan)
    for pos, k in enumerate(ok):
        a = gps[ok[max(pos - 1, 0)], :2]
        b = gps[ok[min(pos + 1, len(ok) - 1)], :2]
        d = b - a
        if np.hypot(*d) > 1e-6:
            out[k] = _bearing(d[0], d[1])
    return out




@dataclass(frozen=True)
class StartPoses:
    """Where the adjustment starts (local frame; see :mod:`.orientation`): rotation vectors and
    centres, GPS positions and 1σ as the adjustment should trust them (vertical σ inflated
    where GPS altitude is not to be trusted), the ground height and where it came from, and
    per frame how its heading was found (``camera``, ``images``, ``track``) and its height
    above the ground from the image scale (metres, NaN where no pair told)."""

    rotvecs: np.ndarray
    centres: np.ndarray
    gps: np.ndarray
    gps_sigma: np.ndarray
    ground_z: float
    ground_source: str
    heading_deg: np.ndarray
    heading_from: tuple[str, ...]
    heading_changed: tuple[int, ...]
    height_m: np.ndarray
    attitude_recorded: np.ndarray
    altitude_trusted: bool
    altitude_note: str
    #: frames whose GPS σ was widened to what their block's geometry shows
    gps_sigma_widened: np.ndarray | None = None

    @property
    def solved_heading(self) -> set[int]:
        return {k for k, src in enumerate(self.heading_from) if src != "camera"}


#: a recorded heading further than this from the one the images and GPS give is replaced
HEADING_OVERRIDE_DEG = 45.0
#: frames whose recorded attitude is further than this from nadir are not in the planar start
PLANAR_MAX_TILT_DEG = 20.0


def _tilt_deg(pitch_deg: float, roll_deg: float) -> float:
    """Angle of the optical axis from nadir, degrees, for a gimbal pitch (−90 = nadir) and roll."""
    p, r = np.radians(pitch_deg + 90.0), np.radians(roll_deg)
    return float(np.degrees(np.arccos(np.clip(np.cos(p) * np.cos(r), -1.0, 1.0))))
#: GPS altitudes are not trusted when the ground heights they imply (altitude − height above
#: ground from the image scale) spread over more than this share of the flying height, or
#: this many metres, whichever is larger (p10–p90)
ALTITUDE_SPREAD_SHARE, ALTITUDE_SPREAD_M = 0.3, 10.0
#: the most a block's geometry may widen the GPS σ of a camera that states none
GPS_SIGMA_SCALE_MAX = 20.0
#: σ that takes the vertical GPS prior out of the adjustment (metres)
UNTRUSTED_SIGMA_M = 1.0e3


def _heading_from_neighbours(k: int, known: np.ndarray, track: np.ndarray, reference: np.ndarray,
                             n_near: int = 6) -> float:
    """``reference[k]`` plus the circular mean of ``known − reference`` over the nearest frames
    in capture order that fly the same way (track within 45°); NaN where no frame tells."""
    cand = np.flatnonzero(np.isfinite(known) & np.isfinite(reference))
    if cand.size == 0 or not np.isfinite(reference[k]):
        return float("nan")
    if np.isfinite(track[k]):
        same = cand[np.isfinite(track[cand]) & (np.abs(angle_diff(track[cand], track[k])) < 45.0)]
        cand = same if same.size else cand
    near = cand[np.argsort(np.abs(cand - k), kind="stable")[:n_near]]
    return float((reference[k] + circular_mean(angle_diff(known[near], reference[near]))) % 360.0)


def start_poses(captures: Sequence, io, cam_of: Sequence[CameraModel],
                matches: Sequence[PairMatch]) -> StartPoses:
    """Start poses of every capture from GPS, the recorded attitude and the matches.

    Heading: the camera's own where it wrote one that the images do not contradict by more than
    :data:`HEADING_OVERRIDE_DEG`; else the planar solution's; for frames in no pair, the flight
    track's plus the offset their nearest same-way neighbours show (or the camera's own, turned
    as those neighbours' were). Roll and pitch: recorded, else level and nadir (solved in the
    adjustment). Heights: where the camera wrote no height above take-off, the ground comes from
    the image scale; GPS altitudes whose implied ground spreads too far (drift, jumps) are
    replaced by ground + image height and given no weight in the adjustment.
    """
    from scipy.spatial.transform import Rotation

    from belcheer.orthomosaic.geometry import rotation_from_gimbal

    n = len(captures)
    poses = [c.pose for c in captures]
    meta = np.array([p.yaw if p is not None and p.yaw is not None else np.nan for p in poses], float)
    pitch = [p.pitch if p is not None and p.pitch is not None else -90.0 for p in poses]
    roll = [p.roll if p is not None and p.roll is not None else 0.0 for p in poses]
    attitude = np.array([p is not None and p.pitch is not None for p in poses])
    gps = io.gps.copy()
    sigma = io.gps_sigma.copy()
    # the planar model holds for near-nadir views only: frames an attitude records as oblique
    # keep their own heading and stay out of the synchronisation (their image similarities
    # would skew their neighbours')
    oblique = np.array([bool(attitude[k]) and _tilt_deg(pitch[k], roll[k]) > PLANAR_MAX_TILT_DEG
                        for k in range(n)], bool)
    planar = planar_solution([m for m in matches if not (oblique[m.i] or oblique[m.j])],
                             gps, cam_of, sigma[:, 0])
    # a camera that states no accuracy gets the σ its block's geometry shows, if worse than the
    # default (a compact camera's GPS can be off by tens of metres)
    stated = np.array([p is not None and bool(p.gps_sigma_h_m) for p in poses])
    scale = np.clip(np.nan_to_num(planar.gps_sigma_scale, nan=1.0), 1.0, GPS_SIGMA_SCALE_MAX)
    widened = ~stated & (scale > 1.5)
    sigma[widened, :2] *= scale[widened, None]
    track = track_headings(gps)
    heading = meta.copy()
    source = ["camera"] * n
    changed = []
    for k in range(n):
        h = planar.heading_deg[k]
        if not np.isfinite(h):
            continue
        if not np.isfinite(meta[k]):
            heading[k], source[k] = h, "images"
        elif abs(float(angle_diff(h, meta[k]))) > HEADING_OVERRIDE_DEG:
            heading[k], source[k] = h, "images"
            changed.append(k)
    solved = np.where(np.isfinite(planar.heading_deg), heading, np.nan)
    for k in range(n):
        if np.isfinite(planar.heading_deg[k]) or (oblique[k] and np.isfinite(meta[k])):
            continue
        if np.isfinite(meta[k]):
            # turned like the neighbours were, if they were (a flipped heading on this line)
            turned = _heading_from_neighbours(k, solved, track, meta)
            if np.isfinite(turned) and abs(float(angle_diff(turned, meta[k]))) > HEADING_OVERRIDE_DEG:
                heading[k], source[k] = turned, "track"
                changed.append(k)
        else:
            h = _heading_from_neighbours(k, solved, track, track)
            heading[k] = h if np.isfinite(h) else (track[k] if np.isfinite(track[k]) else 0.0)
            source[k] = "track"
    rotvecs = np.array([Rotation.from_matrix(rotation_from_gimbal(heading[k], pitch[k], roll[k])).as_rotvec()
                        for k in range(n)]).reshape(n, 3)

    centres = io.centres.copy()
    ground, ground_src = io.ground_z, "cameras' height above take-off"
    trusted, note = True, "GPS altitudes used as priors"
    height = planar.height_m
    est = gps[:, 2] - height
    ok = np.isfinite(est)
    if not io.ground_known and ok.sum() >= 3:
        h_med = float(np.median(height[ok]))
        spread = float(np.subtract(*np.percentile(est[ok], [90, 10])))
        ground = float(np.median(est[ok]))
        ground_src = "GPS altitude less the height above ground from the image scale"
        if spread > max(ALTITUDE_SPREAD_M, ALTITUDE_SPREAD_SHARE * h_med):
            trusted = False
            note = (f"GPS altitudes not trusted: the ground heights they imply spread over "
                    f"{spread:.0f} m (p10–p90) at a flying height of {h_med:.0f} m (drift or "
                    "jumps); heights above ground from the image scale used, no vertical GPS prior")
            fill = np.where(np.isfinite(height), height, h_med)
            has = np.isfinite(gps).all(axis=1)
            centres[has, 2] = ground + fill[has]
            gps[has, 2] = centres[has, 2]
            sigma[:, 2] = UNTRUSTED_SIGMA_M
    elif not io.ground_known:
        ground_src = "assumed 100 m below the cameras (too few matches to measure it)"
    return StartPoses(rotvecs, centres, gps, sigma, ground, ground_src, heading, tuple(source),
                      tuple(sorted(changed)), height, attitude, trusted, note, widened)


def place_by_gps(frames: Sequence[int], adjusted: Sequence[int], start: StartPoses,
                 rotvecs: np.ndarray, centres: np.ndarray, ground_z: float) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Direct georeferencing of frames that match nothing: the GPS position and the start
    attitude; where GPS altitude is not trusted, the flying height of the nearest adjusted
    frames in capture order above ``ground_z``. Returns {frame: (rotvec, centre)}."""
    out = {}
    adj = np.asarray(sorted(adjusted), int)
    for k in frames:
        c = start.centres[k].copy()
        if not start.altitude_trusted:
            if adj.size:
                near = adj[np.argsort(np.abs(adj - k), kind="stable")[:4]]
                c[2] = ground_z + float(np.median(centres[near, 2] - ground_z))
        out[k] = (start.rotvecs[k].copy(), c)
    return out


def expected_error_m(height_m: float, gps_sigma_h: float, attitude_recorded: bool) -> float:
    """1σ horizontal error (metres) of a frame placed by GPS alone: its fix's, and the tilt's
    (2° where the gimbal wrote its attitude, 5° where level was assumed) at its flying height."""
    tilt = np.radians(2.0 if attitude_recorded else 5.0)
    return float(np.hypot(gps_sigma_h, height_m * np.tan(tilt)))


def off_nadir_deg(rotvec: np.ndarray) -> float:
    """Angle between a camera's optical axis and the vertical, degrees."""
    from scipy.spatial.transform import Rotation

    r = Rotation.from_rotvec(rotvec).as_matrix()
    return float(np.degrees(np.arccos(np.clip(-r[2, 2], -1.0, 1.0))))


__all__ = ["PlanarSolution", "StartPoses", "angle_diff", "circular_mean", "expected_error_m",
           "off_nadir_deg", "place_by_gps", "planar_solution", "spectral_angles", "start_poses",
           "track_headings"]

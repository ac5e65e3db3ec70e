"""Initial exterior orientation from GPS and gimbal attitude, in a local UTM-based frame.

The local frame is the survey's UTM easting/northing minus ``origin`` (metres), with height in
metres: the absolute altitude the camera wrote where present (so a DSM's heights apply
directly), else the altitude relative to take-off.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pyproj import Transformer
from scipy.spatial.transform import Rotation
from shapely.geometry import Polygon

from belcheer.models import Capture
from belcheer.orthomosaic.geometry import CameraModel, rays_to_plane, rotation_from_gimbal


@dataclass(frozen=True)
class InitialOrientation:
    """Local frame origin (UTM metres), per-capture rotation vectors and centres, GPS positions
    (NaN rows where missing), their 1σ (east, north, up; metres; the camera's own figure where
    it writes one, else the defaults) and the take-off ground height in the local frame's datum."""

    epsg: int
    origin: tuple[float, float]
    rotvecs: np.ndarray
    centres: np.ndarray
    gps: np.ndarray
    ground_z: float
    uses_absolute_altitude: bool
    gps_sigma: np.ndarray
    #: True when the ground height came from the cameras' heights above take-off; False when it
    #: is a guess (100 m below the cameras) to be replaced by triangulated tie points
    ground_known: bool = True


#: assumed 1σ of an autonomous GPS fix where the camera does not say (horizontal per axis,
#: vertical), metres: consumer receivers' typical figures
DEFAULT_GPS_SIGMA_M = (3.0, 6.0)
#: no prior is trusted beyond this, metres: it keeps the adjustment well conditioned when a
#: camera reports millimetres
MIN_GPS_SIGMA_M = 0.01


def gps_sigmas(captures: Sequence[Capture], default: tuple[float, float] = DEFAULT_GPS_SIGMA_M
               ) -> np.ndarray:
    """(n, 3) per-axis 1σ of each capture's GPS position in metres (east, north, up), from the
    accuracy the camera wrote (RTK standard deviations, MicaSense GPS accuracy), else ``default``.
    With relative altitudes (no absolute height) the vertical σ is the default."""
    out = np.empty((len(captures), 3))
    for k, c in enumerate(captures):
        p = c.pose
        h = p.gps_sigma_h_m if p is not None and p.gps_sigma_h_m else default[0]
        v = p.gps_sigma_v_m if p is not None and p.gps_sigma_v_m else default[1]
        out[k] = (h, h, v)
    return np.maximum(out, MIN_GPS_SIGMA_M)


def initial_orientation(captures: Sequence[Capture], epsg: int) -> InitialOrientation:
    """GPS + gimbal angles → rotation vectors and centres for every capture.

    Missing yaw defaults to 0° (north up), missing pitch to −90° (nadir). Captures without GPS
    get NaN centres; the caller chains them to their neighbours.
    """
    to_utm = Transformer.from_crs(4326, epsg, always_xy=True)
    poses = [c.pose for c in captures]
    absolute = all(p is None or p.alt_abs_m is not None for p in poses) and any(
        p is not None and p.alt_abs_m is not None for p in poses)
    gps = np.full((len(captures), 3), np.nan)
    rotvecs = np.zeros((len(captures), 3))
    grounds = []
    for k, p in enumerate(poses):
        yaw = p.yaw if p is not None and p.yaw is not None else 0.0
        pitch = p.pitch if p is not None and p.pitch is not None else -90.0
        roll = p.roll if p is not None and p.roll is not None else 0.0
        rotvecs[k] = Rotation.from_matrix(rotation_from_gimbal(yaw, pitch, roll)).as_rotvec()
        if p is None or not np.isfinite([p.lon, p.lat]).all():
            continue
        x, y = to_utm.transform(p.lon, p.lat)
        if absolute:
            z = float(p.alt_abs_m)
            if p.alt_rel_m is not None:
                grounds.append(z - float(p.alt_rel_m))
        else:
            z = float(p.alt_rel_m) if p.alt_rel_m is not None else 100.0
            grounds.append(0.0)
        gps[k] = (x, y, z)
    ok = np.isfinite(gps).all(axis=1)
    origin = (float(np.round(np.mean(gps[ok, 0]))), float(np.round(np.mean(gps[ok, 1])))) if ok.any() \
        else (0.0, 0.0)
    gps[:, 0] -= origin[0]
    gps[:, 1] -= origin[1]
    if grounds:
        ground = float(np.median(grounds))
    elif ok.any():
        ground = float(np.median(gps[ok, 2])) - 100.0  # no relative height: assume ~100 m AGL
    else:
        ground = 0.0
    sigma = gps_sigmas(captures)
    if not absolute:
        sigma[:, 2] = DEFAULT_GPS_SIGMA_M[1]
    return InitialOrientation(epsg, origin, rotvecs, gps.copy(), gps, ground, absolute, sigma,
                              ground_known=bool(grounds))


def footprint(rotvec: np.ndarray, centre: np.ndarray, cam: CameraModel, ground_z: float,
              origin: tuple[float, float] = (0.0, 0.0), steps: int = 4) -> Polygon | None:
    """The ground outline of a frame on the plane ``z = ground_z``, in UTM metres (origin added).

    Edges are sampled ``steps`` times so lens distortion bends them as it should.
    """
    w, h = cam.width, cam.height
    t = np.linspace(0, 1, steps + 1)[:-1]
    edge = np.concatenate([
        np.column_stack([t * (w - 1), np.zeros_like(t)]),
        np.column_stack([np.full_like(t, w - 1), t * (h - 1)]),
        np.column_stack([(1 - t) * (w - 1), np.full_like(t, h - 1)]),
        np.column_stack([np.zeros_like(t), (1 - t) * (h - 1)]),
    ])
    pts = rays_to_plane(edge, rotvec, centre, cam, ground_z)
    if not np.isfinite(pts).all():
        return None
    poly = Polygon(pts[:, :2] + np.asarray(origin))
    return poly if poly.is_valid and poly.area > 0 else poly.buffer(0) or None


def _turned(rotvec: np.ndarray, turn: float) -> np.ndarray:
    """Turn a camera about the world vertical by ``turn`` degrees: R' = R · Rz(turn)ᵀ."""
    r = Rotation.from_rotvec(rotvec).as_matrix()
    rz = Rotation.from_euler("z", turn, degrees=True).as_matrix()
    return Rotation.from_matrix(r @ rz.T).as_rotvec()


QUARTER_TURNS = (0.0, 90.0, 180.0, 270.0)
#: a pair decides a frame's turn only when the best turn leaves at most this share of the next
#: best's ground disagreement (a true pair: ~0.1; one over look-alike ground: 0.7–0.9)
CLEAR_TURN_RATIO = 0.5


def _clear_turn(errs: Sequence[float]) -> float | None:
    """The quarter turn whose median ground disagreement (metres) clearly beats the others',
    else None."""
    e = np.asarray(errs, float)
    if not np.isfinite(e).any():
        return None
    order = np.argsort(np.where(np.isfinite(e), e, np.inf))
    best, second = e[order[0]], e[order[1]]
    if np.isfinite(second) and best > CLEAR_TURN_RATIO * second:
        return None
    return QUARTER_TURNS[int(order[0])]


def fix_yaw_flips(rotvecs: np.ndarray, centres: np.ndarray, cam_of: Sequence[CameraModel],
                  matches: Sequence, ground_z: float, min_inliers: int = 15) -> tuple[np.ndarray, list[int]]:
    """Correct gross heading errors (90°/180°/270°) of the recorded attitude using the matches.

    Some autopilots write a heading the image does not have (Phantom 3 frames on return lines
    say −132° yet look north-east like the outbound ones). Along a maximum spanning tree of the
    match graph (strongest pairs first), each capture gets the quarter-turn that makes its tie
    points land where its placed neighbour puts them on the ground plane; a pair where no turn
    clearly beats the others (:data:`CLEAR_TURN_RATIO`: repetitive ground matched to the wrong
    place) decides nothing. Of the four possible turns of the starting capture, the solution
    that turns the fewest captures wins (most metadata is right). Returns corrected rotation vectors and the indices of turned captures.
    """
    good = sorted((m for m in matches if m.inliers >= min_inliers), key=lambda m: -m.inliers)
    if not good:
        return rotvecs.copy(), []

    def place(root: int, root_turn: float) -> dict[int, float]:
        turns = {root: root_turn}
        useless: set[int] = set()
        grown = True
        while grown:
            grown = False
            for q, m in enumerate(good):  # Prim-like: strongest edge leaving the placed set
                if q in useless or (m.i in turns) == (m.j in turns):
                    continue
                cur, new = (m.i, m.j) if m.i in turns else (m.j, m.i)
                ref_px, new_px = (m.pi, m.pj) if cur == m.i else (m.pj, m.pi)
                a = rays_to_plane(ref_px, _turned(rotvecs[cur], turns[cur]), centres[cur], cam_of[cur],
                                  ground_z)
                errs = []
                for turn in QUARTER_TURNS:
                    b = rays_to_plane(new_px, _turned(rotvecs[new], turn), centres[new], cam_of[new],
                                      ground_z)
                    d = np.linalg.norm(a - b, axis=1)
                    errs.append(np.nanmedian(d) if np.isfinite(d).any() else np.nan)
                turn = _clear_turn(errs)
                if turn is None:
                    # no ray meets the plane, or no turn makes the pair agree much better than
                    # the others: a pair over look-alike ground, no evidence either way
                    useless.add(q)
                    continue
                turns[new] = turn
                grown = True
                break
        return turns

    root = good[0].i
    best: dict[int, float] | None = None
    for root_turn in (0.0, 90.0, 180.0, 270.0):
        turns = place(root, root_turn)
        if best is None or sum(t != 0 for t in turns.values()) < sum(t != 0 for t in best.values()):
            best = turns
    out = rotvecs.copy()
    turned = []
    for k, t in (best or {}).items():
        if t:
            out[k] = _turned(rotvecs[k], t)
            turned.append(int(k))
    return out, sorted(turned)

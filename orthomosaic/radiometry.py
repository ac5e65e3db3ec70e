"""Radiometric balance of RGB frames and the seam step that measures it.

An RGB camera's JPEGs differ from frame to frame (auto-exposure, white balance, light under
passing clouds) and darken towards their corners (vignetting); mosaicked as they are, every
frame shows as a patch. Both effects are multiplicative on the recorded values, so on a
logarithmic scale a ground point ``p`` seen by frame ``k`` at normalised radius ``r`` reads::

    log v = u_p + g_k + h(r²),   h(s) = c₁ s + c₂ s² + c₃ s³   (per band, per lens)

with ``u_p`` the point's true (unknown) value, ``g_k`` the frame's gain and ``h`` the lens's
fall-off, ``h(0) = 0`` at the principal point and ``r`` in units of the half-diagonal. The
survey's own overlaps determine ``g`` and ``h``: ground points on a regular grid are projected
into every frame that sees them (through the adjusted cameras), and robust (Huber) least squares
fits the model with the ``u_p`` eliminated; the gains' mean is fixed at zero so the mosaic keeps
the survey's average exposure. This is the flat field "from many frames" estimated jointly with
exposure, as in Goldman & Chen's vignetting and exposure calibration from image sequences.

JPEG cameras write no lens fall-off model that applies to their tone-mapped values (DJI and
MicaSense vignetting tags describe raw, linear sensor values and are applied by the
reflectance calibration in ``indices/radiometry.py``), so for RGB the fall-off is always
estimated. Reflectance mosaics are never balanced: their values are measurements; only their
seam step is measured.

The correction is applied in the tile renderer (:func:`.render.render_tile`) to each resampled
frame sample, through the frame's :class:`FrameBalance`: frames themselves are never held or
rewritten, so memory stays bounded however large the survey.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np
import scipy.sparse as sp
from odc.geo.geobox import GeoBox

from belcheer.orthomosaic.geometry import CameraModel, project
from belcheer.orthomosaic.render import RenderCamera, seam_grid_step

#: frames are read for radiometry with their long side near this many pixels (a power-of-two
#: decimation, which JPEG decoders do for free)
RADIOMETRY_SIDE_PX = 400
#: cv2.remap's limit on a map's width (SHRT_MAX), less a margin
REMAP_MAX_COLS = 32000
#: ground sample points per frame footprint on the balancing grid
POINTS_PER_FRAME = 1500
#: most points on the balancing grid, and most seam points measured (bounded time and memory)
MAX_POINTS = 60_000
MAX_SEAM_POINTS = 20_000
#: 8-bit values outside this range are clipped or in the sensor's noise: not used
DN_RANGE = (10.0, 240.0)
#: a fitted fall-off outside this range at the corners is not a lens: the fit is refused
CORNER_RANGE = (0.3, 1.05)


@dataclass(frozen=True)
class FrameBalance:
    """Multiplicative correction of one frame's values (per band): ``v · gain_b · exp(−h_b(r²))``.

    ``gain`` per band (dimensionless); ``flat`` per band the coefficients ``(c₁, c₂, c₃)`` of the
    log fall-off ``h``; ``centre`` the principal point and ``r0`` the half-diagonal, full-
    resolution pixels of the frame (pixel-centre = integer convention of :func:`.geometry.project`).
    """

    gain: tuple[float, ...]
    flat: tuple[tuple[float, float, float], ...]
    centre: tuple[float, float]
    r0: float

    def factor(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Correction factors (..., bands) float32 at full-resolution pixel coordinates ``u, v``."""
        s = ((np.asarray(u, np.float32) - np.float32(self.centre[0])) ** 2
             + (np.asarray(v, np.float32) - np.float32(self.centre[1])) ** 2) / np.float32(self.r0**2)
        # the fit holds inside the frame (s ≤ 1); points far outside (the renderer clips them
        # to ±10⁶ px) must not overflow the polynomial into inf, which times a weight of 0 is NaN
        s = np.minimum(s, np.float32(1.0))
        out = np.empty((*s.shape, len(self.gain)), np.float32)
        for b, (g, (c1, c2, c3)) in enumerate(zip(self.gain, self.flat, strict=True)):
            h = s * (np.float32(c1) + s * (np.float32(c2) + s * np.float32(c3)))
            out[..., b] = np.float32(g) * np.exp(-h)
        return out

    def factor_decimated(self, mx: np.ndarray, my: np.ndarray, factor: float) -> np.ndarray:
        """:meth:`factor` at pixel coordinates of the frame decimated by ``factor``."""
        f = np.float32(factor)
        return self.factor((mx + np.float32(0.5)) * f - np.float32(0.5),
                           (my + np.float32(0.5)) * f - np.float32(0.5))

    def factor_on_tile(self, mx: np.ndarray, my: np.ndarray, factor: float) -> np.ndarray:
        """:meth:`factor_decimated` for a whole (H, W) tile of sample maps, evaluated on every
        fourth pixel and interpolated: the flat field changes by far less than 0.1 % over four
        pixels, and evaluating it everywhere cost as much as the resampling itself."""
        h, w = mx.shape
        if min(h, w) < 16:
            return self.factor_decimated(mx, my, factor)
        sub = self.factor_decimated(mx[2::4, 2::4], my[2::4, 2::4], factor)
        out = cv2.resize(sub, (w, h), interpolation=cv2.INTER_LINEAR)
        return out if out.ndim == 3 else out[..., None]


@dataclass(frozen=True)
class Balance:
    """The solved balance of a survey: one :class:`FrameBalance` per capture id (none when it
    could not be solved) and what the quality report says about it."""

    frames: dict[str, FrameBalance] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)

    def cameras(self, cams: Sequence[RenderCamera]) -> list[RenderCamera]:
        """``cams`` with their balance attached (unchanged where none was solved)."""
        return [replace(c, balance=self.frames.get(c.capture_id)) for c in cams]


def radiometry_factor(model: CameraModel) -> float:
    """Decimation (a power of two ≥ 1) bringing a frame's long side near RADIOMETRY_SIDE_PX."""
    side = max(model.width, model.height)
    return float(2 ** max(0, int(np.floor(np.log2(max(side / RADIOMETRY_SIDE_PX, 1.0))))))


def _r0(model: CameraModel) -> float:
    return float(np.hypot(model.width / 2.0, model.height / 2.0))


def _lens_key(model: CameraModel) -> tuple:
    return (model.width, model.height, round(model.f, 1))


def _sample(cam: RenderCamera, pts: np.ndarray, read: Callable[[str, float], np.ndarray]
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Values (n, bands) float32 of the frame at local ground points (n, 3), smoothed over 3×3
    pixels of the radiometry scale (about 1 m: sensor noise and sub-pixel misregistration must
    not read as a difference), with full-resolution pixel coordinates u, v; NaN outside."""
    m = cam.model
    n = len(pts)
    px, depth = project(pts, cam.rotvec, cam.centre, m.f, m.cx, m.cy, m.dist)
    fac = radiometry_factor(m)
    img = read(cam.capture_id, fac)
    if img.ndim == 2:
        img = img[..., None]
    ih, iw = img.shape[:2]
    mx = ((px[:, 0] + 0.5) / fac - 0.5).astype(np.float32)
    my = ((px[:, 1] + 0.5) / fac - 0.5).astype(np.float32)
    inside = (depth > 0) & (mx >= 1) & (my >= 1) & (mx <= iw - 2) & (my <= ih - 2)
    vals = np.full((n, img.shape[2]), np.nan, np.float32)
    if inside.any():
        f: np.ndarray = np.asarray(img, np.float32)
        valid: np.ndarray = np.isfinite(f).all(axis=-1).astype(np.float32)
        # a box filter's running sums would carry one NaN along whole rows: filter the valid
        # values and the validity, and keep only pixels whose whole 3×3 window is valid
        smooth = cv2.blur(np.where(valid[..., None] > 0, f, 0.0).astype(np.float32), (3, 3))
        if smooth.ndim == 2:
            smooth = smooth[..., None]
        smooth[cv2.blur(valid, (3, 3)) < 0.999] = np.nan
        gx, gy = mx[inside], my[inside]
        # cv2.remap takes maps under 32767 columns: sample in rows of at most that many points
        got = [cv2.remap(smooth, gx[None, a:a + REMAP_MAX_COLS], gy[None, a:a + REMAP_MAX_COLS],
                         cv2.INTER_LINEAR).reshape(-1, img.shape[2])
               for a in range(0, gx.size, REMAP_MAX_COLS)]
        vals[inside] = np.concatenate(got, axis=0)
    return vals, px[:, 0], px[:, 1]


def _grid(cams: Sequence[RenderCamera], origin: tuple[float, float], ground_z: float) -> np.ndarray:
    """Local ground points (n, 3) on a square grid over the footprints: about
    POINTS_PER_FRAME per footprint, at most MAX_POINTS."""
    fps = [c.footprint for c in cams]
    x0 = min(f.bounds[0] for f in fps)
    y0 = min(f.bounds[1] for f in fps)
    x1 = max(f.bounds[2] for f in fps)
    y1 = max(f.bounds[3] for f in fps)
    spacing = float(np.sqrt(np.median([f.area for f in fps]) / POINTS_PER_FRAME))
    spacing = max(spacing, float(np.sqrt((x1 - x0) * (y1 - y0) / MAX_POINTS)), 1e-3)
    gx, gy = np.meshgrid(np.arange(x0 + spacing / 2, x1, spacing), np.arange(y0 + spacing / 2, y1, spacing))
    return np.column_stack([gx.ravel() - origin[0], gy.ravel() - origin[1],
                            np.full(gx.size, float(ground_z))])


def _robust_fit(pid: np.ndarray, frame: np.ndarray, lens: np.ndarray, s: np.ndarray, y: np.ndarray,
                n_frames: int, n_lens: int, with_flat: bool, iterations: int = 6
                ) -> tuple[np.ndarray, np.ndarray, float]:
    """Gains g (n_frames,) and fall-off coefficients (n_lens, 3) of ``y = u_p + g_k + h(s)``, by
    Huber-weighted least squares with each point's ``u_p`` eliminated (values centred on their
    point's weighted mean). Returns g, c and the robust residual σ (log units)."""
    n = len(y)
    n_par = n_frames + (3 * n_lens if with_flat else 0)
    rows = np.arange(n)
    cols = [frame]
    data = [np.ones(n)]
    if with_flat:
        for j in range(3):
            cols.append(n_frames + 3 * lens + j)
            data.append(s ** (j + 1))
    a0 = sp.csr_matrix((np.concatenate(data), (np.tile(rows, len(cols)), np.concatenate(cols))),
                       shape=(n, n_par))
    n_pts = int(pid.max()) + 1
    member = sp.csr_matrix((np.ones(n), (rows, pid)), shape=(n, n_pts))
    w = np.ones(n)
    g = np.zeros(n_frames)
    c = np.zeros((n_lens, 3))
    sigma = float("nan")
    for _ in range(iterations):
        wsum = np.asarray(member.T @ w).ravel()
        inv = 1.0 / np.maximum(wsum, 1e-12)
        # centring operator applied to the design and the data: x − mean_p(x), weighted
        mean_a = sp.diags(inv) @ (member.T @ sp.diags(w) @ a0)
        ac = (a0 - member @ mean_a).tocsr()
        yc = y - member @ (inv * (member.T @ (w * y)))
        aw = sp.diags(w) @ ac
        normal = (ac.T @ aw).toarray()
        rhs = aw.T @ yc
        # gauge: the gains sum to zero; a tiny ridge settles what no overlap ties down (frames
        # without observations, the relative level of disconnected blocks)
        scale = n / max(n_frames, 1)
        normal[:n_frames, :n_frames] += scale * (np.ones((n_frames, n_frames)) + 1e-6 * np.eye(n_frames))
        sol = np.linalg.solve(normal, rhs)
        res = yc - ac @ sol
        sigma = float(1.4826 * np.median(np.abs(res[w > 0]))) if np.any(w > 0) else float("nan")
        delta = 1.5 * max(sigma, 1e-4)
        w = np.minimum(1.0, delta / np.maximum(np.abs(res), 1e-12))
        g = sol[:n_frames]
        if with_flat:
            c = sol[n_frames:].reshape(n_lens, 3)
    return g, c, sigma


def balance_frames(cams: Sequence[RenderCamera], origin: tuple[float, float], ground_z: float,
                   read: Callable[[str, float], np.ndarray]) -> Balance:
    """Solve each frame's gain and each lens's vignetting from the overlaps (see the module).

    ``cams`` are the adjusted cameras (local frame ``origin``, ground plane height ``ground_z``
    in local metres); ``read(capture_id, factor)`` returns an 8-bit RGB frame decimated by
    ``factor``. Never fails: when the overlaps cannot determine the balance the result carries
    no correction and the report says why.
    """
    pts = _grid(cams, origin, ground_z)
    keys = sorted({_lens_key(c.model) for c in cams})
    lens_of = np.array([keys.index(_lens_key(c.model)) for c in cams])
    obs_pid, obs_frame, obs_s, obs_val = [], [], [], []
    n_bands = 0
    for k, cam in enumerate(cams):
        fp = cam.footprint.bounds
        near = np.flatnonzero((pts[:, 0] >= fp[0] - origin[0]) & (pts[:, 0] <= fp[2] - origin[0])
                              & (pts[:, 1] >= fp[1] - origin[1]) & (pts[:, 1] <= fp[3] - origin[1]))
        if near.size == 0:
            continue
        vals, u, v = _sample(cam, pts[near], read)
        n_bands = vals.shape[1]
        ok = np.all((vals >= DN_RANGE[0]) & (vals <= DN_RANGE[1]), axis=1)
        r0 = _r0(cam.model)
        obs_pid.append(near[ok])
        obs_frame.append(np.full(int(ok.sum()), k))
        obs_s.append((((u - cam.model.cx) ** 2 + (v - cam.model.cy) ** 2) / r0**2)[ok])
        obs_val.append(vals[ok])
    method = ("per-frame gains and a radial vignetting flat field per lens and band, fitted to the "
              "overlaps (robust least squares on log values at ground points seen by several frames)")
    if not obs_pid:
        return Balance({}, {"method": "none", "reason": "no frame saw usable ground values"})
    pid = np.concatenate(obs_pid)
    frame = np.concatenate(obs_frame)
    s = np.concatenate(obs_s)
    val = np.concatenate(obs_val)
    seen = np.bincount(pid, minlength=len(pts))
    keep = seen[pid] >= 2
    pid, frame, s, val = pid[keep], frame[keep], s[keep], val[keep]
    n_points = int(np.count_nonzero(seen >= 2))
    if n_points < 50:
        return Balance({}, {"method": "none", "reason": f"only {n_points} ground points are seen by two "
                            "frames with usable values: too little overlap to balance the frames"})
    _, pid = np.unique(pid, return_inverse=True)
    n_lens = len(keys)
    gains = np.zeros((len(cams), n_bands))
    flats = np.zeros((n_lens, n_bands, 3))
    sigmas = []
    flat_refused = False
    for b in range(n_bands):
        y = np.log(val[:, b].astype(np.float64))
        g, c, sigma = _robust_fit(pid, frame, lens_of[frame], s, y, len(cams), n_lens, True)
        corner = np.exp(c.sum(axis=1))  # fall-off at r = r0 (s = 1)
        if not np.all((corner >= CORNER_RANGE[0]) & (corner <= CORNER_RANGE[1])):
            # the overlaps do not pin down a lens (too few frames, too little overlap):
            # exposure alone is still safe to balance
            flat_refused = True
            g, c, sigma = _robust_fit(pid, frame, lens_of[frame], s, y, len(cams), n_lens, False)
        gains[:, b] = g
        flats[:, b] = c
        sigmas.append(sigma)
    observed = np.bincount(frame, minlength=len(cams)) > 0
    per_frame = {}
    for k, cam in enumerate(cams):
        if not observed[k]:
            continue
        per_frame[cam.capture_id] = FrameBalance(
            tuple(float(np.exp(-gains[k, b])) for b in range(n_bands)),
            tuple(tuple(float(x) for x in flats[lens_of[k], b]) for b in range(n_bands)),  # type: ignore[misc]
            (float(cam.model.cx), float(cam.model.cy)), _r0(cam.model))
    exposure = np.exp(gains[observed].mean(axis=1))
    report = {
        "method": method + ("; vignetting not estimated (the fit was not a plausible lens)"
                            if flat_refused else ""),
        "frames_balanced": int(observed.sum()),
        "ground_points": n_points,
        "observations": int(len(pid)),
        "exposure_relative_range": [round(float(exposure.min()), 3), round(float(exposure.max()), 3)],
        # each frame's brightness relative to the survey's (geometric) mean, before balancing
        "exposure_relative": {cams[int(k)].capture_id: round(float(e), 4)
                              for k, e in zip(np.flatnonzero(observed), exposure, strict=True)},
        "vignetting_at_corners": [[round(float(np.exp(flats[li, b].sum())), 3) for b in range(n_bands)]
                                  for li in range(n_lens)],
        "residual_log_sigma": round(float(np.mean(sigmas)), 4),
    }
    return Balance(per_frame, report)


def _seam_points(geobox: GeoBox, seams: np.ndarray, origin: tuple[float, float]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local ground points (n, 2) half-way between neighbouring cells of the seam-label image
    whose labels differ, and the labels (n,) on either side."""
    step = seam_grid_step(geobox.shape)
    s = np.asarray(seams)
    rows, cols, la, lb = [], [], [], []
    h = (s[:, :-1] != s[:, 1:]) & (s[:, :-1] >= 0) & (s[:, 1:] >= 0)
    r, c = np.nonzero(h)
    rows.append(r.astype(float))
    cols.append(c + 0.5)
    la.append(s[r, c])
    lb.append(s[r, c + 1])
    v = (s[:-1, :] != s[1:, :]) & (s[:-1, :] >= 0) & (s[1:, :] >= 0)
    r, c = np.nonzero(v)
    rows.append(r + 0.5)
    cols.append(c.astype(float))
    la.append(s[r, c])
    lb.append(s[r + 1, c])
    rr, cc = np.concatenate(rows), np.concatenate(cols)
    a, b = np.concatenate(la), np.concatenate(lb)
    if len(rr) > MAX_SEAM_POINTS:
        pick = np.linspace(0, len(rr) - 1, MAX_SEAM_POINTS).astype(int)
        rr, cc, a, b = rr[pick], cc[pick], a[pick], b[pick]
    # seam cell (i, j) holds output pixel (i·step, j·step), whose centre is at +0.5
    pr, pc = rr * step + 0.5, cc * step + 0.5
    aff = geobox.affine
    x = aff.c + pc * aff.a + pr * aff.b - origin[0]
    y = aff.f + pc * aff.d + pr * aff.e - origin[1]
    return np.column_stack([x, y]), a, b


def seam_step(cams: Sequence[RenderCamera], origin: tuple[float, float], ground_z: float,
              geobox: GeoBox, seams: np.ndarray, read: Callable[[str, float], np.ndarray],
              *, reflectance: bool = False) -> dict[str, Any]:
    """The seam step: median absolute difference of the two frames' values along the
    seamlines, in % of their mean value, before and after each frame's :class:`FrameBalance`.

    ``seams`` is the seam-label image :func:`.render.render_mosaic` returned for ``cams``
    (labels index ``cams``) on ``geobox``; values are compared over all bands, smoothed over
    about a metre (see :func:`_sample`). ``reflectance`` mosaics are never balanced: only the
    measured value is given. Returns ``{"uncorrected": %, "corrected": % or None,
    "seam_points": n}`` (percentages None when no seam was measurable).
    """
    xy, la, lb = _seam_points(geobox, seams, origin)
    n = len(xy)
    pts = np.column_stack([xy, np.full(n, float(ground_z))])
    out: dict[str, Any] = {"uncorrected": None, "corrected": None, "seam_points": 0}
    if n == 0:
        return out | {"note": "no seamline: a single frame or frames that do not meet"}
    # both sides of every seam point at once: each frame is read once
    side_pts = np.concatenate([pts, pts])
    side_lab = np.concatenate([la, lb])
    raw_all: np.ndarray | None = None
    cor_all: np.ndarray | None = None
    for k in np.unique(side_lab):
        idx = np.flatnonzero(side_lab == k)
        cam = cams[int(k)]
        vals, u, v = _sample(cam, side_pts[idx], read)
        if raw_all is None or cor_all is None:
            raw_all = np.full((2 * n, vals.shape[1]), np.nan, np.float32)
            cor_all = raw_all.copy()
        raw_all[idx] = vals
        balanced = cam.balance is not None and not reflectance
        cor_all[idx] = vals * cam.balance.factor(u, v) if cam.balance is not None and balanced else vals
    assert raw_all is not None and cor_all is not None
    raw = (raw_all[:n], raw_all[n:])
    cor = (cor_all[:n], cor_all[n:])
    ok = np.all(np.isfinite(raw[0]) & np.isfinite(raw[1]), axis=1)
    if not reflectance:
        # clipped 8-bit values hide the step they are part of
        ok &= np.all((raw[0] < 250) & (raw[1] < 250) & (raw[0] > 5) & (raw[1] > 5), axis=1)
    if not ok.any():
        return out | {"note": "no seam point with valid values on both sides"}

    def pct(a: np.ndarray, b: np.ndarray) -> float:
        mean = float(np.mean((a[ok] + b[ok]) / 2))
        return round(100.0 * float(np.median(np.abs(a[ok] - b[ok]))) / max(abs(mean), 1e-12), 2)

    out["seam_points"] = int(ok.sum())
    out["uncorrected"] = pct(raw[0], raw[1])
    if reflectance:
        out["note"] = "reflectance as calibrated: not gain-normalised, the step is only measured"
    elif any(c.balance is not None for c in cams):
        out["corrected"] = pct(cor[0], cor[1])
    else:
        out["note"] = "frames not balanced"
    return out

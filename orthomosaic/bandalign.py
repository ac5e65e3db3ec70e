"""Band-to-band alignment inside one multispectral capture (MicaSense, Sequoia …).

Each band of a multispectral rig is a separate camera a few centimetres from the others, so the
band images are offset by tens of pixels. We align every band to a primary band with a
homography: initialised from the MicaSense ``RigRelatives`` angles where the camera wrote them
(infinite homography K_ref · R · K⁻¹) or DJI's calibrated band positions (P4 Multispectral
``RelativeOpticalCenterX/Y``, Mavic 3M ``DewarpHMatrix``), else from phase correlation, then refined with OpenCV's
ECC on gradient magnitude (contrast differs between bands; edges do not) over an image pyramid.
The residual is measured independently, by phase correlation of the gradient magnitudes in
windows over the whole frame, in full-resolution pixels.

A homography is exact only for a flat scene or a distant one. Held close to plants (< 1 m) the
lenses' few centimetres of baseline give tens of pixels of parallax that changes with depth;
there each band also gets a dense displacement field on top of its homography (OpenCV's DIS
optical flow on gradient magnitude, median filtered and capped), kept where it lowers the band's
residual. At flight height the parallax is far below a pixel and the homography alone is used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from belcheer.models import Frame

#: a capture whose bands' median homography residual exceeds this (px) was taken close to its
#: subject: its bands get a dense parallax field. Simulated flights at 70 m stay far below it
#: (blue, red, red edge 0.02–0.09 px) even where one cross-spectral NIR band measures 1.4–2.8 px,
#: which is why the whole capture decides, not each band
FLOW_TRIGGER_PX = 1.0
#: largest parallax (fraction of the longer image side) the dense field may add: a 5 cm lens
#: baseline seen from about 1 m with a MicaSense's field of view
FLOW_CAP = 0.05


@dataclass(frozen=True)
class BandAlignment:
    """Homography mapping pixels of ``band`` onto the primary band's pixel grid, and its quality.

    ``flow`` (close-range captures only) is a dense (H, W, 2) field of pixel displacements on the
    primary's undistorted grid applied before the homography: primary pixel ``x`` takes the band
    at ``H⁻¹ · (x + flow[x])``.
    """

    band: str
    homography: np.ndarray
    #: median misregistration (px) by windowed phase correlation after alignment; NaN if unmeasured
    residual_px: float
    matches: int
    method: str
    flow: np.ndarray | None = None


def _gradient(img: np.ndarray) -> np.ndarray:
    """Gradient magnitude of an image normalised to 0…1 (float32), robust to band contrast."""
    f = img.astype(np.float32)
    lo, hi = np.percentile(f, (1, 99))
    f = np.clip((f - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32)
    f = cv2.GaussianBlur(f, (0, 0), 1.0)
    gx = cv2.Sobel(f, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(f, cv2.CV_32F, 0, 1, ksize=3)
    g = cv2.magnitude(gx, gy)
    return (g / max(float(np.percentile(g, 99.5)), 1e-6)).astype(np.float32)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Stretch any-dtype single-band image to uint8 with a 1–99 % percentile stretch."""
    f = img.astype(np.float32)
    finite = f[np.isfinite(f)]
    if finite.size == 0:
        return np.zeros(f.shape, np.uint8)
    lo, hi = np.percentile(finite, (1, 99))
    f = np.nan_to_num((f - lo) / max(hi - lo, 1e-6), nan=0.0)
    return (np.clip(f, 0, 1) * 255).astype(np.uint8)


def rig_relatives(frame: Frame) -> tuple[tuple[float, float, float], int] | None:
    """MicaSense ``Camera:RigRelatives`` (roll, pitch, yaw degrees) and its reference rig index.

    Read from the frame's tags if ingest kept them, else from the file's XMP packet.
    """
    text = None
    for key, value in frame.tags.items():
        if key.lower().endswith("rigrelatives"):
            text = str(value)
    ref = None
    for key, value in frame.tags.items():
        if key.lower().endswith("rigrelativesreferencerigcameraindex"):
            ref = int(value)
    if text is None:
        try:
            with open(frame.path, "rb") as fh:
                head = fh.read(16 * 1024 * 1024)
        except OSError:
            return None
        m = re.search(rb"RigRelatives>\s*([-0-9.eE, ]+)<", head) or re.search(
            rb'RigRelatives="([-0-9.eE, ]+)"', head)
        if not m:
            return None
        text = m.group(1).decode()
        r = re.search(rb"RigRelativesReferenceRigCameraIndex>\s*(\d+)<", head)
        ref = int(r.group(1)) if r else None
    try:
        vals = tuple(float(v) for v in text.replace(",", " ").split())
    except ValueError:
        return None
    if len(vals) != 3:
        return None
    return (vals[0], vals[1], vals[2]), (ref if ref is not None else -1)


def rig_homography(band: Frame, primary: Frame) -> np.ndarray | None:
    """Initial band→primary homography from both frames' RigRelatives (infinite homography)."""
    rb, rp = rig_relatives(band), rig_relatives(primary)
    if rb is None or rp is None or band.intrinsics is None or primary.intrinsics is None:
        return None

    def rot(angles: tuple[float, float, float]) -> np.ndarray:
        # MicaSense: roll, pitch, yaw of the band relative to the reference rig camera
        return Rotation.from_euler("ZYX", [angles[2], angles[1], angles[0]], degrees=True).as_matrix()

    kb = np.array(band.intrinsics.matrix())
    kp = np.array(primary.intrinsics.matrix())
    r_rel = rot(rp[0]).T @ rot(rb[0])
    h = kp @ r_rel.T @ np.linalg.inv(kb)
    return h / h[2, 2]


def _dji_to_reference(frame: Frame) -> np.ndarray | None:
    """This DJI band's homography onto its rig's reference band, from its XMP: the Mavic 3M's
    ``DewarpHMatrix`` (row-major 3×3) or the P4 Multispectral's ``RelativeOpticalCenterX/Y``
    (pixel offset of this band's optical centre from the reference band's: a translation)."""
    from belcheer.ingest.xmp import number, numbers

    tags = frame.tags
    h = numbers(tags.get("drone-dji:DewarpHMatrix"))
    if h is not None and len(h) == 9 and np.isfinite(h).all() and abs(h[8]) > 1e-9:
        return np.array(h, dtype=np.float64).reshape(3, 3) / h[8]
    rx = number(tags.get("drone-dji:RelativeOpticalCenterX"))
    ry = number(tags.get("drone-dji:RelativeOpticalCenterY"))
    if rx is None or ry is None or not (np.isfinite(rx) and np.isfinite(ry)):
        return None
    return np.array([[1.0, 0.0, -rx], [0.0, 1.0, -ry], [0.0, 0.0, 1.0]])


def dji_rig_homography(band: Frame, primary: Frame) -> np.ndarray | None:
    """Initial band→primary homography from DJI's calibrated band positions (both frames' XMP),
    ``H_primary⁻¹ · H_band`` with ``H`` each band's homography onto the rig's reference band."""
    hb, hp = _dji_to_reference(band), _dji_to_reference(primary)
    if hb is None or hp is None:
        return None
    h = np.linalg.inv(hp) @ hb
    return h / h[2, 2]


def _phase_init(mov: np.ndarray, ref: np.ndarray) -> np.ndarray:
    (dx, dy), _ = cv2.phaseCorrelate(ref.astype(np.float64), mov.astype(np.float64))
    return np.array([[1, 0, -dx], [0, 1, -dy], [0, 0, 1]], dtype=np.float64)


def ecc_homography(mov: np.ndarray, ref: np.ndarray, init: np.ndarray | None = None,
                   levels: int = 3) -> np.ndarray:
    """Homography mapping ``mov`` pixels onto ``ref`` pixels, by ECC on gradient magnitude.

    Solved coarse to fine over ``levels`` pyramid levels; ``init`` is a starting guess.
    """
    return _ecc_refine(_gradient(mov), _gradient(ref), init, levels)


def _ecc_refine(gm: np.ndarray, gr: np.ndarray, init: np.ndarray | None, levels: int) -> np.ndarray:
    """:func:`ecc_homography` on gradient magnitudes already computed (``gm`` moving, ``gr``
    reference): a capture's reference gradient then serves every band."""
    h = init.copy() if init is not None else _phase_init(gm, gr)
    # ECC's warp maps template (ref) coordinates to input (mov) coordinates: use the inverse
    warp = np.linalg.inv(h).astype(np.float32)
    warp /= warp[2, 2]
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 40, 1e-5)
    for lvl in range(levels - 1, -1, -1):
        s = 2.0 ** lvl
        scale = np.diag([1 / s, 1 / s, 1.0]).astype(np.float32)
        w = scale @ warp @ np.linalg.inv(scale)
        size = (int(gr.shape[1] / s), int(gr.shape[0] / s))
        a = cv2.resize(gr, size, interpolation=cv2.INTER_AREA)
        b = cv2.resize(gm, size, interpolation=cv2.INTER_AREA)
        try:
            _, w = cv2.findTransformECC(a, b, w.astype(np.float32), cv2.MOTION_HOMOGRAPHY, criteria,
                                        None, 5)
        except cv2.error:
            continue  # keep the previous level's estimate
        warp = np.linalg.inv(scale) @ w @ scale
    h = np.linalg.inv(warp.astype(np.float64))
    return h / h[2, 2]


def _ecc_score(gm: np.ndarray, gr: np.ndarray, homography: np.ndarray) -> float:
    """ECC correlation (−1…1) of gradient magnitudes once ``gm`` is warped onto ``gr`` by
    ``homography``, over the pixels both cover: the criterion :func:`ecc_homography` maximises."""
    size = (gr.shape[1], gr.shape[0])
    warped = cv2.warpPerspective(gm, homography, size, flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.ones(gm.shape, np.uint8), homography, size, flags=cv2.INTER_NEAREST)
    mask = cv2.erode(mask, np.ones((5, 5), np.uint8))
    if mask.sum() < 0.1 * mask.size:
        return -1.0
    return float(cv2.computeECC(gr, warped, mask))


def alignment_residual(aligned: np.ndarray, ref: np.ndarray, grid: int = 5, window: int = 160,
                       min_response: float = 0.05) -> tuple[float, int]:
    """Median misregistration (px) of two already aligned images, and how many windows measured it.

    Measured independently of how the alignment was found: phase correlation of the gradient
    magnitudes (robust to the bands' different contrast) in a ``grid`` × ``grid`` array of
    ``window``-pixel windows, each giving a sub-pixel shift. Feature matches are not used:
    on repetitive ground (look-alike shrubs) they pair look-alikes and invent misalignment.
    Windows with a weak correlation peak (flat ground, no edges) are left out; NaN if none
    is left.
    """
    ga, gb = _gradient(aligned), _gradient(ref)
    h, w = gb.shape
    win = int(min(window, h // 2, w // 2))
    if win < 16:
        return float("nan"), 0
    hann = cv2.createHanningWindow((win, win), cv2.CV_64F)
    shifts = []
    for cy in np.linspace(win / 2, h - win / 2, grid):
        for cx in np.linspace(win / 2, w - win / 2, grid):
            r0, c0 = int(cy - win / 2), int(cx - win / 2)
            a = ga[r0:r0 + win, c0:c0 + win].astype(np.float64)
            b = gb[r0:r0 + win, c0:c0 + win].astype(np.float64)
            if not (np.isfinite(a).all() and np.isfinite(b).all()) or a.std() < 1e-6 or b.std() < 1e-6:
                continue
            (dx, dy), resp = cv2.phaseCorrelate(b, a, hann)
            if resp >= min_response:
                shifts.append(np.hypot(dx, dy))
    if not shifts:
        return float("nan"), 0
    return float(np.median(shifts)), len(shifts)


def _flow_image(img: np.ndarray) -> np.ndarray:
    """Gradient magnitude as uint8, the image DIS optical flow matches: the bands' intensities
    disagree (leaves bright in NIR, dark in blue and red), their edges much less."""
    return (np.clip(_gradient(img), 0, 1) * 255).astype(np.uint8)


def _cap(field: np.ndarray, cap_px: float) -> np.ndarray:
    """``field`` with every displacement longer than ``cap_px`` pixels shortened to it."""
    mag = np.hypot(field[..., 0], field[..., 1])
    return (field * np.minimum(1.0, cap_px / np.maximum(mag, 1e-6))[..., None]).astype(np.float32)


def _smooth(field: np.ndarray, cap_px: float) -> np.ndarray:
    """``field`` median filtered over about 10 px and capped at ``cap_px`` pixels.

    Parallax changes smoothly except at depth edges: a lone vector (a patch locked onto a
    look-alike edge) is outvoted by its neighbours instead of tearing the image.
    """
    h, w = field.shape[:2]
    half = cv2.resize(field, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    # OpenCV's float median is limited to 5 × 5: at half resolution that spans ~10 px
    half = np.dstack([cv2.medianBlur(np.ascontiguousarray(half[..., i]), 5) for i in range(2)])
    return _cap(cv2.resize(half, (w, h), interpolation=cv2.INTER_LINEAR), cap_px)


def _compose(step: np.ndarray, field: np.ndarray) -> np.ndarray:
    """The field ``x ↦ x + step(x) + field(x + step(x))``: ``step`` measured on an image already
    resampled by ``field``, folded into one field on the primary grid."""
    h, w = field.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    moved = cv2.remap(field, xx + step[..., 0], yy + step[..., 1], cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_REPLICATE)
    return step + moved


def _band_points(homography: np.ndarray, field: np.ndarray | None,
                 shape: tuple[int, int]) -> np.ndarray:
    """The band-ideal pixel (2, H·W) each primary-ideal pixel takes: H⁻¹ · (x + field(x))."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    if field is not None:
        if field.shape[:2] != (h, w):
            raise ValueError(f"dense field is {field.shape[:2]}, the primary grid {(h, w)}")
        xx += field[..., 0]
        yy += field[..., 1]
    q = np.linalg.inv(homography) @ np.stack([xx.ravel(), yy.ravel(), np.ones(xx.size)])
    return q[:2] / q[2]


def warp_ideal(ideal: np.ndarray, homography: np.ndarray, field: np.ndarray | None,
               shape: tuple[int, int], border: int = cv2.BORDER_CONSTANT) -> np.ndarray:
    """An undistorted band image resampled onto the primary's undistorted grid of ``shape``
    (pixels): by ``homography``, and by the dense ``field`` first where there is one."""
    if field is None:
        return cv2.warpPerspective(ideal, homography, (shape[1], shape[0]), flags=cv2.INTER_LINEAR,
                                   borderMode=border)
    q = _band_points(homography, field, shape).astype(np.float32)
    return cv2.remap(ideal, q[0].reshape(shape), q[1].reshape(shape), cv2.INTER_LINEAR,
                     borderMode=border)


def apply_alignment(ideal: np.ndarray, alignment: BandAlignment,
                    shape: tuple[int, int]) -> np.ndarray:
    """An undistorted band image aligned onto the primary's undistorted grid, as measured."""
    return warp_ideal(ideal, alignment.homography, alignment.flow, shape)


def parallax_field(mov: np.ndarray, ref: np.ndarray, homography: np.ndarray,
                   passes: int = 2) -> np.ndarray:
    """Dense field (H, W, 2) in pixels on ``ref``'s grid taking ``mov``, already mapped by
    ``homography``, onto ``ref``: the depth-dependent parallax one homography leaves.

    DIS optical flow on gradient magnitude, at full resolution (the preset stops at half, and
    the target is 1 px). Each pass is median filtered and capped at :data:`FLOW_CAP` of the
    image; the second runs on the band re-warped by the first and mops up what is left.
    """
    shape = ref.shape[:2]
    cap = FLOW_CAP * max(shape)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    dis.setFinestScale(0)
    ref8 = _flow_image(ref)
    field = np.zeros((*shape, 2), np.float32)
    for _ in range(passes):
        # replicate the border: the band's empty corners would be edges the primary does not have
        warped = warp_ideal(mov, homography, field, shape, border=cv2.BORDER_REPLICATE)
        step = _smooth(dis.calc(ref8, _flow_image(warped), None), cap)
        field = _cap(_compose(step, field), cap)
    return field


def _close_range(alignments: dict[str, BandAlignment], primary: str) -> bool:
    """Whether a capture's homographies leave more than :data:`FLOW_TRIGGER_PX` in its median
    band: parallax, not one hard-to-measure band."""
    res = [a.residual_px for n, a in alignments.items()
           if n != primary and np.isfinite(a.residual_px)]
    return bool(res) and float(np.median(res)) > FLOW_TRIGGER_PX


def _band_features(img: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """SIFT keypoints (N, 2) and descriptors on the gradient magnitude of one band image."""
    kp, desc = cv2.SIFT_create(nfeatures=4000).detectAndCompute(to_uint8(_gradient(img)), None)
    return np.float32([k.pt for k in kp]).reshape(-1, 2), desc


def _feature_homography(fa: tuple[np.ndarray, np.ndarray | None],
                        fb: tuple[np.ndarray, np.ndarray | None],
                        shape: tuple[int, int]) -> np.ndarray | None:
    """Homography a→b from SIFT matches (Lowe ratio + MAGSAC), None if too few or implausible."""
    (pa, da), (pb, db) = fa, fb
    if da is None or db is None or len(pa) < 8 or len(pb) < 8:
        return None
    knn = cv2.BFMatcher(cv2.NORM_L2).knnMatch(da, db, k=2)
    good = [m[0] for m in knn if len(m) == 2 and m[0].distance < 0.8 * m[1].distance]
    if len(good) < 12:
        return None
    h, mask = cv2.findHomography(pa[[m.queryIdx for m in good]], pb[[m.trainIdx for m in good]],
                                 cv2.USAC_MAGSAC, 2.0)
    if h is None or mask is None or mask.sum() < 15:
        return None
    h = h / h[2, 2]
    # bands of one rig differ by a small shift and almost no scale: refuse wild solutions
    if abs(np.linalg.det(h[:2, :2]) - 1) > 0.1 or np.abs(h[:2, 2]).max() > 0.2 * max(shape):
        return None
    return h


def _k_dist(frame: Frame | None, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    if frame is None or frame.intrinsics is None:
        h, w = shape
        f = float(max(h, w))
        return np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]]), np.zeros(5)
    return np.array(frame.intrinsics.matrix()), np.asarray(frame.intrinsics.distortion, dtype=np.float64)


def undistort_band(img: np.ndarray, frame: Frame | None) -> np.ndarray:
    """The band image resampled to an ideal pinhole camera with the band's own K (no distortion)."""
    k, dist = _k_dist(frame, img.shape[:2])
    if not np.any(dist):
        return img.astype(np.float32)
    return cv2.undistort(img.astype(np.float32), k, dist)


def warp_maps(alignment: BandAlignment, frame: Frame | None, primary: Frame | None,
              shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``cv2.remap`` maps taking a raw band image onto the primary band's *undistorted* grid.

    Composes the alignment's dense field (if any), the inverse homography and the band's own
    lens distortion, so each band is resampled once.
    """
    h, w = shape
    kb, db = _k_dist(frame, shape)
    q = _band_points(alignment.homography, alignment.flow, shape)  # primary-ideal → band-ideal
    norm = np.linalg.inv(kb) @ np.vstack([q, np.ones(q.shape[1])])
    obj = np.column_stack([norm[0], norm[1], np.ones(q.shape[1])])
    px, _ = cv2.projectPoints(obj, np.zeros(3), np.zeros(3), kb, db)
    px = px.reshape(h, w, 2).astype(np.float32)
    return px[..., 0], px[..., 1]


def align_bands(images: dict[str, np.ndarray], frames: dict[str, Frame], primary: str,
                measure: bool = True) -> dict[str, BandAlignment]:
    """Align every band image of one capture onto ``primary``'s undistorted pixel grid.

    ``images`` maps band name → raw 2-D array (any dtype); ``frames`` the matching Frame objects
    (lens distortion, RigRelatives). Each band is first undistorted with its own lens model, then
    a homography to the undistorted primary is initialised (SIFT on gradient magnitude, else
    RigRelatives or phase correlation) and refined with ECC, kept only where it raises the
    bands' ECC correlation. When ``measure`` finds the capture close-range (median band residual
    above :data:`FLOW_TRIGGER_PX`), each band also gets a dense parallax field, kept where it
    lowers that band's residual. Returns band → alignment.
    """
    out: dict[str, BandAlignment] = {primary: BandAlignment(primary, np.eye(3), 0.0, 0, "reference")}
    ideal = {name: undistort_band(img, frames.get(name)) for name, img in images.items()}
    ref = ideal[primary]
    pending = [n for n in images if n != primary]
    solved: dict[str, np.ndarray] = {primary: np.eye(3)}
    methods: dict[str, str] = {}
    for name in pending:
        # DJI writes each band's calibrated position in the rig: a seed ECC refines below
        seed = dji_rig_homography(frames[name], frames[primary]) if (
            name in frames and primary in frames) else None
        if seed is not None:
            solved[name], methods[name] = seed, "dji_xmp"
    feats = {name: _band_features(img) for name, img in ideal.items()
             if name == primary or name not in solved}
    for name in pending:
        if name in solved:
            continue
        h = _feature_homography(feats[name], feats[primary], ref.shape)
        if h is not None:
            solved[name], methods[name] = h, "sift"
    for name in pending:
        if name in solved:
            continue
        # NIR often shares too few edges with the visible primary: chain through a solved band
        # (red edge resembles NIR), H(name→primary) = H(k→primary) · H(name→k)
        for k in [b for b in solved if b != primary and b in feats] + [primary]:
            h = _feature_homography(feats[name], feats[k], ref.shape) if k != primary else None
            if h is not None:
                solved[name], methods[name] = solved[k] @ h, f"sift via {k}"
                break
        else:
            init = rig_homography(frames[name], frames[primary]) if (
                name in frames and primary in frames) else None
            method = "rig_relatives+ecc" if init is not None else "phase+ecc"
            solved[name], methods[name] = ecc_homography(ideal[name], ref, init, levels=2), method
    grad_ref = _gradient(ref)
    for name in pending:
        if methods[name].endswith("+ecc"):
            continue
        # SIFT on a handful of cross-spectral matches (NIR against green) leaves the homography
        # a pixel or more off; ECC uses every edge of the image and brings it under 0.2 px
        grad = _gradient(ideal[name])
        refined = _ecc_refine(grad, grad_ref, solved[name], levels=2)
        if _ecc_score(grad, grad_ref, refined) > _ecc_score(grad, grad_ref, solved[name]):
            solved[name], methods[name] = refined, methods[name] + "+ecc"
    for name in pending:
        h = solved[name] / solved[name][2, 2]
        res, n = float("nan"), 0
        if measure:
            res, n = alignment_residual(warp_ideal(ideal[name], h, None, ref.shape), ref)
        out[name] = BandAlignment(name, h, res, n, methods[name])
    # unmeasured (a survey's rig alignment) means a flight: nothing to decide the field on
    if measure and _close_range(out, primary):
        for name in pending:
            al = out[name]
            field = parallax_field(ideal[name], ref, al.homography)
            aligned = warp_ideal(ideal[name], al.homography, field, ref.shape)
            res, n = alignment_residual(aligned, ref)
            # the field could also bend flat ground onto look-alike edges: it has to earn its place
            if res < al.residual_px:
                out[name] = replace(al, residual_px=res, matches=n, method=al.method + "+flow",
                                    flow=field)
    return out


def read_band(path: Path) -> np.ndarray:
    """Read a single-band frame file (16-bit TIFF, JPEG …) as a 2-D array, unchanged dtype."""
    if Path(path).suffix.lower() in {".tif", ".tiff"}:
        import tifffile  # reads vendor TIFFs quietly (OpenCV warns on every private tag)

        img = tifffile.imread(path)
    else:
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise OSError(f"cannot decode image {path}")
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    return img

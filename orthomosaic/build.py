"""build_orthomosaic: frames of a Survey → georeferenced COG + quality report.

Steps: initial orientation (GPS + gimbal) → SIFT features (Dask) → candidate pairs from
footprints (STRtree) → matching (ratio test + USAC) → heading sanity check → bundle adjustment
(GPS priors, GCPs) → ground plane / DSM → tile rendering (Dask) → COG.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from odc.geo.geobox import GeoBox
from shapely.ops import unary_union

from belcheer.errors import NoUsableFramesError, ProcessingError
from belcheer.grid import geobox_for_bounds
from belcheer.memory import trim_memory
from belcheer.models import Band, Capture, Survey
from belcheer.orthomosaic import frames as fr
from belcheer.orthomosaic.adjust import bundle_adjust
from belcheer.orthomosaic.consistency import (
    chain_without_gps,
    drop_stray_matches,
    inconsistent_pairs,
    start_shifts,
)
from belcheer.orthomosaic.features import MIN_FEATURES, detect_all
from belcheer.orthomosaic.gcp import read_gcps
from belcheer.orthomosaic.orientation import fix_yaw_flips, footprint, initial_orientation
from belcheer.orthomosaic.pairs import blocks, candidate_pairs, match_all
from belcheer.orthomosaic.placement import (
    expected_error_m,
    off_nadir_deg,
    place_by_gps,
    start_poses,
)
from belcheer.orthomosaic.radiometry import Balance, balance_frames, seam_step
from belcheer.orthomosaic.render import Ground, RenderCamera, render_mosaic
from belcheer.progress import ProgressCallback, scaled
from belcheer.types import FrameCorrection

#: frames whose optical axis is further than this from the vertical are oblique (degrees)
OBLIQUE_DEG = 20.0
#: without a DSM, frames further than this from the vertical are not used at all (degrees)
OBLIQUE_MAX_DEG = 45.0
MIN_INLIERS = 15
#: seamline penalties, in multiples of the median flying height added to a frame's distance
#: from its nadir: a frame placed by GPS alone fills only what adjusted frames do not see
#: steeply enough; a frame far from nadir only what nothing else sees
GPS_ONLY_PENALTY = 0.5
OBLIQUE_PENALTY = 100.0


@dataclass(frozen=True)
class MosaicResult:
    """The written COG, its grid, its bands, and the quality report (JSON-serialisable dict)."""

    path: Path
    geobox: GeoBox
    bands: tuple[Band, ...]
    report: dict[str, Any] = field(default_factory=dict)


def _drop(reason: str, cap: Capture, dropped: list[dict[str, Any]]) -> None:
    dropped.append({"capture": cap.id, "files": [f.path.name for f in cap.frames], "reason": reason})


def select_captures(survey: Survey, dsm: Path | None) -> tuple[list[Capture], list[dict[str, Any]]]:
    """Captures to mosaic and the dropped ones with reasons (validation errors, panels, frames
    too oblique to use, frames without GPS when no frame has GPS).

    Without a DSM, frames more than :data:`OBLIQUE_DEG` off nadir are kept as tie frames beside
    near-nadir ones (rendered only where nothing more vertical sees the ground) up to
    :data:`OBLIQUE_MAX_DEG`; beyond that, or when every frame is oblique, a flat-ground map of
    them would be badly distorted: dropped, or a ProcessingError naming them if all are.
    """
    dropped: list[dict[str, Any]] = []
    keep: list[Capture] = []
    oblique: list[Capture] = []
    no_gps: list[Capture] = []
    for cap in survey.captures:
        if cap.is_panel:
            _drop("calibration panel capture", cap, dropped)
            continue
        errors = [p for p in cap.problems if p.severity.value == "error"]
        if errors:
            _drop("; ".join(sorted({f"{p.code}: {p.message}" for p in errors})), cap, dropped)
            continue
        off = cap.pose.off_nadir_deg if cap.pose else None
        if (off is not None and off > OBLIQUE_DEG) or any(p.code == "oblique" for p in cap.problems):
            oblique.append(cap)
            if dsm is None:
                continue
        if cap.pose is None or cap.pose.lon is None or not np.isfinite([cap.pose.lon, cap.pose.lat]).all():
            no_gps.append(cap)  # chained to the georeferenced frames by image matching
            continue
        keep.append(cap)
    if oblique and dsm is None:
        names = ", ".join(f.path.name for c in oblique for f in c.frames[:1])
        if not keep:
            raise ProcessingError(
                f"all {len(oblique)} frames are oblique (camera tilted more than {OBLIQUE_DEG:g}° from "
                f"nadir): {names}. A flat-ground orthomosaic of oblique frames would be badly "
                "distorted; fly with the gimbal at −90°, or give a surface model with --dsm FILE")
        for cap in oblique:
            off = cap.pose.off_nadir_deg if cap.pose else None
            has_gps = cap.pose is not None and cap.pose.lon is not None and np.isfinite(
                [cap.pose.lon, cap.pose.lat]).all()
            if off is not None and off <= OBLIQUE_MAX_DEG and has_gps:
                keep.append(cap)  # a tie frame; rendering prefers every more vertical view
            else:
                _drop(f"oblique (more than {OBLIQUE_MAX_DEG:g}° off nadir, or no GPS) and no --dsm "
                      "given", cap, dropped)
        order = {c.id: k for k, c in enumerate(survey.captures)}
        keep.sort(key=lambda c: order[c.id])
    keep = _drop_far_frames(_drop_duplicates(keep, dropped), dropped)
    if keep:
        keep.extend(no_gps)
    else:
        for cap in no_gps:
            _drop("no GPS position and no frame with GPS to chain it to: cannot be georeferenced",
                  cap, dropped)
    if not keep:
        raise NoUsableFramesError(f"survey {survey.name!r} has no usable frames to mosaic: "
                                  + "; ".join(f"{d['capture']}: {d['reason']}" for d in dropped[:10]))
    return keep, dropped


#: a pair with at least this many verified tie points is not rejected on the start placement
#: alone: over real ground with poor GPS the start can be metres off where the matches are not
STRONG_PAIR_INLIERS = 60
#: ... as long as its offset is within this many σ of the two frames' GPS fixes
SPARE_SIGMAS = 4.0


def _spare_strong_and_lone(matches: list, bad: list[int], n: int, offset_m: np.ndarray,
                           gps_sigma_m: np.ndarray) -> list[int]:
    """Of the pairs the placement check rejects, keep the strong ones whose offset the two
    fixes' errors can explain (within :data:`SPARE_SIGMAS` σ: a poor GPS, not a wrong match)
    and, for a frame that would lose every pair, its strongest: the adjustment's robust loss
    and outlier passes judge them with everything else in view, and no frame is cut off by the
    start's errors. Repetitive ground (crop rows) matched many metres away under an accurate
    GNSS stays rejected however many inliers it has."""
    def plausible(k: int) -> bool:
        m = matches[k]
        sigma = float(np.hypot(gps_sigma_m[m.i, 0], gps_sigma_m[m.j, 0]))
        return not np.isfinite(offset_m[k]) or float(offset_m[k]) <= SPARE_SIGMAS * sigma

    bad = [k for k in bad if matches[k].inliers < STRONG_PAIR_INLIERS or not plausible(k)]
    kept = set(range(len(matches))) - set(bad)
    linked = {f for k in kept for f in (matches[k].i, matches[k].j)}
    spare = set()
    for f in range(n):
        if f in linked:
            continue
        own = [k for k in bad if f in (matches[k].i, matches[k].j)]
        if own:
            spare.add(max(own, key=lambda k: matches[k].inliers))
    return [k for k in bad if k not in spare]


def _drop_duplicates(caps: list[Capture], dropped: list[dict[str, Any]]) -> list[Capture]:
    """The same trigger copied twice (same camera, time, position and file size): one kept."""
    seen: dict[tuple, str] = {}
    keep = []
    for c in caps:
        p = c.pose
        key = (c.camera.key, c.time, round(p.lon, 7), round(p.lat, 7),
               tuple(f.path.stat().st_size if f.path.exists() else None for f in c.frames))
        if c.time is not None and key in seen:
            _drop(f"duplicate of {seen[key]} (same camera, time, position and file size)", c, dropped)
            continue
        seen.setdefault(key, c.id)
        keep.append(c)
    return keep


#: a frame further than this from the survey's median position, and further than 20 times
#: the median frame's distance from it, belongs to another flight (metres)
FAR_FRAME_M = 5000.0


def _drop_far_frames(caps: list[Capture], dropped: list[dict[str, Any]]) -> list[Capture]:
    """Frames of another flight mixed into the folder (GPS kilometres from all the others)."""
    if len(caps) < 3:
        return caps
    lon = np.array([c.pose.lon for c in caps], float)
    lat = np.array([c.pose.lat for c in caps], float)
    mlon, mlat = float(np.median(lon)), float(np.median(lat))
    # equirectangular distance: ample to tell kilometres from metres
    d = 6371000.0 * np.hypot(np.radians(((lon - mlon + 180) % 360) - 180) * np.cos(np.radians(mlat)),
                             np.radians(lat - mlat))
    limit = max(FAR_FRAME_M, 20.0 * float(np.median(d)))
    keep = []
    for c, dist in zip(caps, d, strict=True):
        if dist > limit:
            _drop(f"GPS position {dist / 1000:.0f} km from the rest of the survey: a frame of "
                  "another flight", c, dropped)
        else:
            keep.append(c)
    return keep


def build_orthomosaic(survey: Survey, out_path: Path, *, resolution: float | None = None,
                      epsg: int | None = None, dsm: Path | None = None, gcp: Path | None = None,
                      correction: FrameCorrection | None = None, scheduler: str | None = None,
                      progress: ProgressCallback | None = None) -> MosaicResult:
    """Build an orthomosaic COG of ``survey`` at ``out_path`` (written atomically).

    ``resolution`` metres per pixel (default: the median GSD of the frames); ``epsg`` output CRS
    (default the survey's UTM zone). ``dsm`` a surface model in any CRS (heights in the same
    datum as the cameras' absolute altitude); ``gcp`` an OpenDroneMap ``gcp_list.txt``.
    ``correction`` converts frames to reflectance first (float32 output).

    Every frame that can be placed is: each connected block of matched frames is adjusted with
    its GPS priors (and GCPs); a frame that matches nothing but has GPS is placed by direct
    georeferencing (GPS + attitude, the heading from the flight track where the camera wrote
    none) and flagged ``gps_only`` with its expected position error; a frame that cannot be
    placed is dropped with the reason. The only refusal: no frame can be placed at all.
    Returns the result with the quality report (per-frame status, blocks, residuals in px with
    what the statistics left out, GSD, shift between solved and GPS positions, hectares).
    """
    out_path = Path(out_path)
    epsg = epsg or survey.epsg
    prog = scaled(progress, 0.0, 1.0)
    caps, dropped = select_captures(survey, dsm)
    prog(0.02, "initial orientation")
    io = initial_orientation(caps, epsg)
    base_models = [fr.camera_model(c) for c in caps]
    keys = sorted({(m.width, m.height, round(m.f, 3), c.camera.key) for m, c in zip(base_models, caps, strict=True)})
    group = np.array([keys.index((m.width, m.height, round(m.f, 3), c.camera.key))
                      for m, c in zip(base_models, caps, strict=True)])
    models = [base_models[int(np.flatnonzero(group == g)[0])] for g in range(len(keys))]
    cam_of = [models[g] for g in group]
    fps = [footprint(io.rotvecs[k], io.centres[k], cam_of[k], io.ground_z, io.origin) for k in range(len(caps))]

    alignment: dict[str, dict] = {}
    band_residuals: dict[str, dict[str, float]] = {}
    if not fr.is_rgb_capture(caps[0]):
        prog(0.03, "aligning bands")
        from belcheer.orthomosaic.rig import rig_alignment

        if len(caps) == 1:
            # a lone capture is often taken by hand close to its subject: its own alignment, with
            # the dense parallax field where the homography leaves more than a pixel
            own = fr.capture_alignment(caps[0]) or {}
            alignment = {caps[0].id: own}
            band_residuals = {caps[0].id: {b: round(a.residual_px, 3) for b, a in own.items()}}
        else:
            # one rigid rig: solved on a sample of captures, used for all (see orthomosaic/rig.py)
            rig, band_residuals = rig_alignment(caps, scheduler=scheduler)
            alignment = {c.id: rig for c in caps}

    prog(0.1, "detecting features")
    feats = detect_all(caps, scheduler=scheduler) if len(caps) > 1 else []
    # black and blurry frames go; featureless ones (water, uniform grass) match nothing but are
    # still placed by their GPS
    keep_idx = list(range(len(caps)))
    unmatched_reason: dict[str, str] = {}
    if feats:
        sharp = np.array([f.quality["sharpness"] for f in feats])
        med = float(np.median(sharp))
        for k, f in enumerate(feats):
            reason = None
            if f.quality["mean"] < 8:
                reason = "black frame (mean brightness below 8/255)"
            elif sharp[k] < 0.15 * med:
                reason = f"blurry (sharpness {sharp[k]:.0f} vs survey median {med:.0f})"
            elif len(f.points) < MIN_FEATURES:
                unmatched_reason[caps[k].id] = (
                    f"too few features ({len(f.points)}, also at SIFT contrast threshold "
                    f"{f.quality.get('contrast_threshold', 0.04):g}: water, uniform ground or "
                    "over-exposed)")
            if reason:
                _drop(reason, caps[k], dropped)
                keep_idx.remove(k)
    if not keep_idx:
        raise NoUsableFramesError("no frame passed the image quality checks: "
                                  + "; ".join(f"{d['capture']}: {d['reason']}" for d in dropped))
    if len(keep_idx) < len(caps):
        caps = [caps[k] for k in keep_idx]
        feats = [feats[k] for k in keep_idx]
        fps = [fps[k] for k in keep_idx]
        cam_of = [cam_of[k] for k in keep_idx]
        group = group[keep_idx]
        io = initial_orientation(caps, epsg)
    n = len(caps)
    has_gps = np.isfinite(io.gps).all(axis=1)
    pairs_report: list[dict[str, Any]] = []
    matches = []
    if n > 1:
        prog(0.3, "matching pairs")
        # frames without GPS have no footprint yet: they are tried against every frame
        pairs = candidate_pairs(fps, always=[k for k in range(n) if not has_gps[k]])
        matches = match_all(feats, pairs, scheduler=scheduler)
        feats = []  # descriptors are not needed after matching
        trim_memory()
        pairs_report = [{"a": caps[m.i].id, "b": caps[m.j].id, "candidates": m.candidates,
                         "inliers": m.inliers} for m in matches]
    good = [m for m in matches if m.inliers >= MIN_INLIERS]
    prog(0.42, "placing frames")
    start = start_poses(caps, io, cam_of, good)
    ground0, ground_source = start.ground_z, start.ground_source
    centres0, rotvecs0 = start.centres, start.rotvecs
    gps, gps_sigma = start.gps, start.gps_sigma
    no_gps = [k for k in range(n) if not has_gps[k]]
    unplaced: list[int] = []
    if no_gps:
        unplaced = chain_without_gps(no_gps, good, rotvecs0, centres0, cam_of, ground0)
    rotvecs, turned = fix_yaw_flips(rotvecs0, centres0, cam_of,
                                    [m for m in good if m.i not in start.solved_heading
                                     and m.j not in start.solved_heading], ground0)
    turned = sorted(set(turned) | set(start.heading_changed))
    rejected: list[dict[str, Any]] = []
    if len(good) > 2:
        bad, resid = inconsistent_pairs(good, n, rotvecs, centres0, cam_of, ground0)
        rejected_by = {k: {"a": caps[good[k].i].id, "b": caps[good[k].j].id, "inliers": good[k].inliers,
                           "offset_m": None if not np.isfinite(resid[k]) else round(float(resid[k]), 2),
                           "reason": "matches disagree with the GPS/attitude placement of both frames "
                                     "(repetitive ground matched to the wrong place)"} for k in bad}
        bad = _spare_strong_and_lone(good, bad, n, resid, gps_sigma)
        rejected = [rejected_by[k] for k in sorted(set(bad))]
        good = [m for k, m in enumerate(good) if k not in set(bad)]
    good, stray = drop_stray_matches(good, rotvecs, centres0, cam_of, ground0) if good else (good, 0)

    # who is adjusted, who is placed by GPS alone, who cannot be placed
    comps = blocks(n, good, MIN_INLIERS)
    block_of = np.zeros(n, int)
    for b, comp in enumerate(comps):
        block_of[comp] = b
    status: dict[int, str] = {}
    reason: dict[int, str] = {}
    for comp in comps:
        with_gps = [k for k in comp if has_gps[k]]
        extent = (float(np.ptp(gps[with_gps, :2], axis=0).max()) if len(with_gps) >= 2 else 0.0)
        # judged on the fixes' own accuracy (stated, else the default): σ widened from the
        # start's geometry weights the priors, but a few wrong matches can inflate it
        fixable = len(comp) >= 2 and len(with_gps) >= 2 and extent >= 3.0 * float(
            np.median(io.gps_sigma[with_gps, 0]))
        for k in comp:
            if k in unplaced:
                status[k], reason[k] = "dropped", (
                    f"no GPS position and no verified match (≥ {MIN_INLIERS} inliers) with a "
                    "georeferenced frame: cannot be placed")
            elif fixable:
                status[k] = "adjusted"
            elif not has_gps[k]:
                status[k], reason[k] = "dropped", ("no GPS position, and its block has too few GPS "
                                                   "fixes to be georeferenced")
            else:
                status[k] = "gps_only"
                reason[k] = (unmatched_reason.get(caps[k].id)
                             or (f"no verified match (≥ {MIN_INLIERS} inliers) with any neighbour"
                                 if len(comp) == 1 else
                                 f"block of {len(comp)} frames whose GPS cannot fix its scale and "
                                 "rotation: placed by GPS"))
    adj_idx = [k for k in range(n) if status[k] == "adjusted"]
    gps_idx = [k for k in range(n) if status[k] == "gps_only"]
    for k in range(n):
        if status[k] == "dropped":
            _drop(reason[k], caps[k], dropped)
    if not adj_idx and not gps_idx:
        raise NoUsableFramesError(
            f"survey {survey.name!r}: no frame can be placed: "
            + "; ".join(f"{d['capture']}: {d['reason']}" for d in dropped[:10]))

    prog(0.45, "adjusting the blocks")
    gcps = read_gcps(gcp, caps, epsg, io.origin) if gcp else []
    final_rot = rotvecs.copy()
    final_cen = centres0.copy()
    adj_models = tuple(models)
    removed = {"behind_camera": 0, "beyond_cut": 0, "cut_px": None}
    adj = None
    if adj_idx:
        pos = {k: q for q, k in enumerate(adj_idx)}
        sub = [replace(m, i=pos[m.i], j=pos[m.j]) for m in good if m.i in pos and m.j in pos]
        sub_gcps = [replace(g, cam=pos[g.cam]) for g in gcps if g.cam in pos]
        if sub or sub_gcps:
            # started where the verified pairs agree rather than at the fixes (start_shifts)
            start_c = centres0[adj_idx].copy()
            if sub:
                start_c[:, :2] -= start_shifts(sub, len(adj_idx), rotvecs[adj_idx], start_c,
                                               [cam_of[k] for k in adj_idx], ground0)
            adj = bundle_adjust(rotvecs[adj_idx], start_c, gps[adj_idx], models,
                                group[adj_idx], sub, ground0, gcps=sub_gcps,
                                gps_sigma=gps_sigma[adj_idx])
            final_rot[adj_idx] = adj.rotvecs
            final_cen[adj_idx] = adj.centres
            adj_models = adj.models
            removed = adj.removed
    cam_of = [adj_models[g] for g in group]
    ground_z = float(np.median(adj.points[:, 2])) if adj is not None and len(adj.points) >= 20 else ground0
    # a weakly tied frame the adjustment threw far from its fix: its GPS places it better
    solved_idx = list(adj_idx)  # the adjustment's cameras, in its order
    for k in _thrown(adj_idx, final_cen, gps, gps_sigma):
        status[k], reason[k] = "gps_only", (
            f"the adjustment moved it {np.hypot(*(final_cen[k, :2] - gps[k, :2])):.0f} m from its GPS "
            "fix, far beyond its neighbours (weakly tied): placed by GPS")
        gps_idx.append(k)
    # a frame whose tie points the adjustment rejected almost all of is held by its priors and
    # a handful of points: its solved pose means nothing (one over a lake kept 3 points and
    # came out 58° off nadir); its GPS places it better
    if adj is not None:
        kept = np.bincount(adj.obs_cam, minlength=len(solved_idx))
        for q, k in enumerate(solved_idx):
            if status[k] != "adjusted" or kept[q] >= MIN_INLIERS:
                continue
            if has_gps[k]:
                status[k], reason[k] = "gps_only", (
                    f"only {kept[q]} of its tie-point observations passed the adjustment (fewer than "
                    f"{MIN_INLIERS}): too weakly tied, placed by GPS")
                gps_idx.append(k)
            else:
                # nothing else can place it: rendered from a meaningless pose it would paste its
                # image somewhere on the map
                status[k], reason[k] = "dropped", (
                    f"no GPS position, and only {kept[q]} of its tie-point observations passed the "
                    f"adjustment (fewer than {MIN_INLIERS}): cannot be placed")
                _drop(reason[k], caps[k], dropped)
    adj_idx = [k for k in adj_idx if status[k] == "adjusted"]
    gps_idx.sort()
    heights = final_cen[:, 2] - ground_z
    # frames placed by GPS alone: GPS position, the start attitude (heading from the track
    # where the camera wrote none), flying height from their neighbours where GPS altitude is
    # not trusted
    if gps_idx:
        placed = place_by_gps(gps_idx, adj_idx, start, final_rot, final_cen, ground_z)
        for k, (rv, c) in placed.items():
            final_rot[k], final_cen[k] = rv, c
    shift = np.linalg.norm(final_cen[:, :2] - io.gps[:, :2], axis=1)

    # output grid
    used = adj_idx + gps_idx
    fps = [footprint(final_rot[k], final_cen[k], cam_of[k], ground_z, io.origin, steps=8)
           if k in used else None for k in range(n)]
    for k in list(used):
        if fps[k] is None or final_cen[k, 2] <= ground_z:
            reason[k] = ("does not see the ground plane once placed (camera pointing at the horizon, "
                         "or below the ground); give --dsm")
            _drop(reason[k], caps[k], dropped)
            status[k] = "dropped"
    used = sorted(k for k in used if status[k] != "dropped")
    if not used:
        raise ProcessingError("no placed frame sees the ground plane (cameras pointing at the "
                              "horizon?); give --dsm")
    heights = final_cen[:, 2] - ground_z
    gsds = np.array([heights[k] / cam_of[k].f for k in used])
    gsd = float(np.median(gsds))
    res = float(resolution) if resolution else float(f"{gsd:.2g}")
    area = unary_union([fps[k] for k in used])
    geobox = geobox_for_bounds(area.bounds, epsg, res)

    ground = Ground(ground_z)
    if dsm is not None:
        from belcheer.orthomosaic.dem import dsm_on_grid

        ground = Ground(ground_z, dsm_on_grid(Path(dsm), geobox))

    bands = fr.output_bands(caps[0])
    rgb = fr.is_rgb_capture(caps[0])
    dtype = "float32" if correction is not None else ("uint8" if rgb else "float32")
    factor = max(1.0, float(np.floor(res / gsd))) if gsd > 0 else 1.0
    by_id = {c.id: c for c in caps}
    cache = fr.FrameCache(lambda cid, f: fr.read_capture(by_id[cid], alignment.get(cid), correction, f))
    off_nadir = {k: off_nadir_deg(final_rot[k]) for k in used}
    h_med = float(np.median([heights[k] for k in used]))
    rcams = []
    for k in used:
        penalty = 0.0
        if status[k] == "gps_only":
            penalty += GPS_ONLY_PENALTY * h_med
        if off_nadir[k] > OBLIQUE_DEG:
            penalty += OBLIQUE_PENALTY * h_med
        rcams.append(RenderCamera(caps[k].id, final_rot[k], final_cen[k], cam_of[k], fps[k],
                                  distance_scale=h_med / max(heights[k], 1e-3), penalty_m=penalty))
    # RGB frames are balanced (exposure, vignetting); reflectance and DN are measurements
    balance = balance_frames(rcams, io.origin, ground_z, cache.loader) if rgb and correction is None \
        else Balance({}, {"method": "none: reflectance and camera DN are not gain-normalised"})
    rcams = balance.cameras(rcams)
    prog(0.55, "rendering")
    seams = render_mosaic(geobox, io.origin, rcams, ground, cache.get, factor, bands, dtype, out_path,
                          scheduler=scheduler, progress=scaled(progress, 0.55, 0.97))
    seam = seam_step(rcams, io.origin, ground_z, geobox, seams, cache.loader, reflectance=correction is not None)
    report = _report(survey, epsg, dsm, caps, used, status, reason, block_of, comps, adj, adj_idx,
                     gps_idx, start, final_cen, io, shift, removed, dropped, pairs_report, rejected,
                     turned, no_gps, stray, gcps, gsd, res, ground_z, ground_source, adj_models,
                     area, band_residuals, fps, off_nadir, heights, solved_idx)
    report["radiometry"] = balance.report
    report["seam_step_pct"] = seam
    return MosaicResult(out_path, geobox, bands, report | {"_seams": seams})


def _thrown(adjusted: list[int], centres: np.ndarray, gps: np.ndarray, sigma: np.ndarray) -> list[int]:
    """Adjusted frames whose solved position departs from their GPS fix by more than five σ of
    the fix and far more than the other frames' departures (median + 6 robust σ)."""
    k = np.array([q for q in adjusted if np.isfinite(gps[q]).all()], int)
    if k.size < 5:
        return []
    d = np.hypot(*(centres[k, :2] - gps[k, :2]).T)
    med = float(np.median(d))
    mad = 1.4826 * float(np.median(np.abs(d - med)))
    return [int(q) for q, dd in zip(k, d, strict=True)
            if dd > max(5.0 * float(sigma[q, 0]), med + 6.0 * mad)]


def _robust(values: np.ndarray) -> tuple[float | None, float | None]:
    if not values.size:
        return None, None
    return round(float(np.mean(values)), 3), round(float(np.percentile(values, 95)), 3)


def _report(survey, epsg, dsm, caps, used, status, reason, block_of, comps, adj, adj_idx, gps_idx,
            start, centres, io, shift, removed, dropped, pairs_report, rejected, turned, no_gps,
            stray, gcps, gsd, res, ground_z, ground_source, models, area, band_residuals, fps,
            off_nadir, heights, solved_idx) -> dict[str, Any]:
    """The quality report (JSON-ready): per frame, per block and for the survey."""
    n = len(caps)
    per_frame_res: dict[int, np.ndarray] = {}
    if adj is not None and adj.residuals_px.size:
        cams = np.asarray(solved_idx)[adj.obs_cam]
        for k in adj_idx:
            per_frame_res[k] = adj.residuals_px[cams == k]
    adjusted_blocks = sorted({int(block_of[k]) for k in adj_idx if status[k] == "adjusted"})
    block_ids = {b: q for q, b in enumerate(adjusted_blocks)}
    frames = []
    for k in range(n):
        st = status.get(k, "dropped")
        r = per_frame_res.get(k, np.zeros(0))
        row: dict[str, Any] = {"capture": caps[k].id, "status": st,
                               "block": block_ids.get(int(block_of[k])) if st == "adjusted" else None,
                               "heading_from": start.heading_from[k]}
        if st == "adjusted":
            row["residual_px"] = round(float(np.mean(r)), 3) if r.size else None
            row["observations"] = int(r.size)
        if st == "gps_only":
            row["expected_error_m"] = round(expected_error_m(float(heights[k]), float(io.gps_sigma[k, 0]),
                                                             bool(start.attitude_recorded[k])), 2)
        if k in off_nadir:
            row["off_nadir_deg"] = round(off_nadir[k], 1)
            if off_nadir[k] > OBLIQUE_DEG:
                row["rendered"] = "only where no more vertical frame sees the ground"
        if k in reason:
            row["reason"] = reason[k]
        frames.append(row)
    for d in dropped:  # dropped before matching (panels, validation, quality)
        if not any(f["capture"] == d["capture"] for f in frames):
            frames.append({"capture": d["capture"], "status": "dropped", "block": None,
                           "reason": d["reason"]})
    block_stats = []
    for b in adjusted_blocks:
        members = [k for k in adj_idx if block_of[k] == b]
        r = np.concatenate([per_frame_res.get(k, np.zeros(0)) for k in members]) if members else np.zeros(0)
        mean, p95 = _robust(r)
        block_stats.append({"block": block_ids[b], "frames": len(members), "mean_px": mean, "p95_px": p95,
                            "captures": [caps[k].id for k in members]})
    all_res = adj.residuals_px if adj is not None else np.zeros(0)
    mean, p95 = _robust(all_res)
    return {
        "survey": survey.name,
        "epsg": epsg,
        "method": "SIFT + USAC matching, planar start (headings, heights), bundle adjustment "
                  "(poses, tie points, focal/k1/k2) with GPS priors per block, direct GPS "
                  "georeferencing of frames that match nothing, "
                  + ("DSM" if dsm else "ground plane") + " orthorectification, most-vertical-view seamlines",
        "frames_used": [caps[k].id for k in used],
        "frames_adjusted": [caps[k].id for k in used if status[k] == "adjusted"],
        "frames_gps_only": [caps[k].id for k in used if status[k] == "gps_only"],
        "frames_dropped": dropped,
        "frames": frames,
        "frame_status": {f["capture"]: f["status"] for f in frames},
        "pairs": pairs_report,
        "pairs_rejected": rejected,
        "blocks": [s["captures"] for s in block_stats],
        "block_stats": [{k: v for k, v in s.items() if k != "captures"} for s in block_stats],
        "georeferencing": "GPS priors + tie points" + (" + GCPs" if gcps else "")
                          + ("" if len(block_stats) <= 1 else "; disconnected blocks each georeferenced by their own GPS")
                          + (f"; {len(gps_idx)} frames placed by GPS alone" if gps_idx else ""),
        "heading_corrected": [caps[k].id for k in turned],
        "heading_from_images": [caps[k].id for k in range(n) if start.heading_from[k] == "images"],
        "gps_altitude": {"trusted": start.altitude_trusted, "note": start.altitude_note},
        "chained_without_gps": [caps[k].id for k in no_gps if status.get(k) == "adjusted"],
        "reprojection_mean_px": mean,
        "reprojection_p95_px": p95,
        "observations": int(all_res.size),
        "observations_removed": removed,
        "tie_points": int(len(adj.points)) if adj is not None else 0,
        "stray_matches_dropped": stray,
        "gcp_residual_mean_px": (float(np.mean(adj.gcp_residuals_px))
                                 if adj is not None and adj.gcp_residuals_px.size else None),
        "gcp_observations": len(gcps),
        "gnss_shift_m": [round(float(v), 3) for v in adj.gnss_shift] if gcps and adj is not None else None,
        "gsd_m": round(gsd, 5),
        "resolution_m": res,
        "gps_sigma_m": {"horizontal_median": round(float(np.median(start.gps_sigma[:, 0])), 3),
                        "vertical_median": round(float(np.median(start.gps_sigma[:, 2])), 3),
                        "source": ("camera metadata" if any(c.pose and c.pose.gps_sigma_h_m for c in caps)
                                   else "default (the camera writes no accuracy)")
                                  + ("; widened to what the frames' geometry shows for "
                                     f"{int(np.sum(start.gps_sigma_widened))} frames"
                                     if start.gps_sigma_widened is not None and start.gps_sigma_widened.any()
                                     else "")},
        "camera_shift_from_gps_m": {caps[k].id: round(float(shift[k]), 3) if np.isfinite(shift[k]) else None
                                    for k in used},
        "camera_shift_from_gps_mean_m": (round(float(np.nanmean(shift[used])), 3)
                                         if np.isfinite(shift[used]).any() else None),
        "ground_height_m": round(ground_z, 3),
        "initial_ground_height_from": ground_source,
        "camera_positions_utm": {caps[k].id: [round(float(centres[k][0] + io.origin[0]), 3),
                                              round(float(centres[k][1] + io.origin[1]), 3),
                                              round(float(centres[k][2]), 3)] for k in used},
        "intrinsics": [{"f_px": m.f, "k1": m.dist[0], "k2": m.dist[1]} for m in models],
        "covered_area_ha": round(area.area / 1e4, 4),
        "band_alignment_px": band_residuals,
        "footprints_wkt": {caps[k].id: fps[k].wkt for k in used},
        "nadir_points_utm": {caps[k].id: [float(centres[k][0] + io.origin[0]),
                                          float(centres[k][1] + io.origin[1])] for k in used},
    }

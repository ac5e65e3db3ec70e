"""build_orthomosaic: frames of a Survey → georeferenced COG + quality report.

Steps: initial orientation (GPS + gimbal) → SIFT features (Dask) → candidate pairs from
footprints (STRtree) → matching (ratio test + USAC) → heading sanity check → bundle adjustment
(GPS priors, GCPs) → ground plane / DSM → tile rendering (Dask) → COG.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
from belcheer.orthomosaic.adjust import Adjustment, bundle_adjust
from belcheer.orthomosaic.consistency import (
    chain_without_gps,
    drop_stray_matches,
    ground_from_matches,
    inconsistent_pairs,
)
from belcheer.orthomosaic.features import detect_all
from belcheer.orthomosaic.gcp import read_gcps
from belcheer.orthomosaic.orientation import fix_yaw_flips, footprint, initial_orientation
from belcheer.orthomosaic.pairs import blocks, candidate_pairs, match_all
from belcheer.orthomosaic.radiometry import Balance, balance_frames, seam_step
from belcheer.orthomosaic.render import Ground, RenderCamera, render_mosaic
from belcheer.progress import ProgressCallback, scaled
from belcheer.types import FrameCorrection

#: frames whose optical axis is further than this from the vertical are oblique (degrees)
OBLIQUE_DEG = 20.0
MIN_INLIERS = 15


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
    """Captures to mosaic and the dropped ones with reasons (validation errors, panels, oblique
    frames without a DSM, no GPS). Raises a ProcessingError naming oblique frames if all are."""
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
            _drop(f"oblique (more than {OBLIQUE_DEG:g}° off nadir) and no --dsm given", cap, dropped)
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


def build_orthomosaic(survey: Survey, out_path: Path, *, resolution: float | None = None,
                      epsg: int | None = None, dsm: Path | None = None, gcp: Path | None = None,
                      correction: FrameCorrection | None = None, scheduler: str | None = None,
                      progress: ProgressCallback | None = None) -> MosaicResult:
    """Build an orthomosaic COG of ``survey`` at ``out_path`` (written atomically).

    ``resolution`` metres per pixel (default: the median GSD of the frames); ``epsg`` output CRS
    (default the survey's UTM zone). ``dsm`` a surface model in any CRS (heights in the same
    datum as the cameras' absolute altitude); ``gcp`` an OpenDroneMap ``gcp_list.txt``.
    ``correction`` converts frames to reflectance first (float32 output). Returns the result
    with the quality report (frames used/dropped, matches per pair, residuals in px, GSD, shift
    between solved and GPS positions, area in hectares, blocks).
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
    # black, blurry, featureless frames
    keep_idx = list(range(len(caps)))
    if feats:
        sharp = np.array([f.quality["sharpness"] for f in feats])
        med = float(np.median(sharp))
        for k, f in enumerate(feats):
            reason = None
            if f.quality["mean"] < 8:
                reason = "black frame (mean brightness below 8/255)"
            elif sharp[k] < 0.15 * med:
                reason = f"blurry (sharpness {sharp[k]:.0f} vs survey median {med:.0f})"
            elif len(f.points) < 50:
                reason = "too few features (featureless or over-exposed)"
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
    no_gps = [k for k in range(n) if not np.isfinite(io.gps[k]).all()]
    pairs_report: list[dict[str, Any]] = []
    matches = []
    comps = [[k] for k in range(n)]
    if n > 1:
        prog(0.3, "matching pairs")
        # frames without GPS have no footprint yet: they are tried against every frame
        pairs = candidate_pairs(fps, always=no_gps)
        matches = match_all(feats, pairs, scheduler=scheduler)
        feats = []  # descriptors are not needed after matching
        trim_memory()
        pairs_report = [{"a": caps[m.i].id, "b": caps[m.j].id, "candidates": m.candidates,
                         "inliers": m.inliers} for m in matches]
        comps = blocks(n, matches, MIN_INLIERS)
        isolated = [caps[c[0]].id for c in comps if len(c) == 1]
        if isolated:
            raise ProcessingError(
                f"too little overlap: frames {', '.join(isolated)} did not connect to any other frame "
                f"(fewer than {MIN_INLIERS} verified matches with every neighbour). Fly with ≥ 70 % "
                "front and ≥ 60 % side overlap, or remove these frames")
    good = [m for m in matches if m.inliers >= MIN_INLIERS]
    prog(0.45, "adjusting the block")
    ground0, ground_source = io.ground_z, "cameras' height above take-off"
    if not io.ground_known and good:
        # the camera wrote no height above take-off: triangulate the tie points instead
        z = ground_from_matches(good, io.rotvecs, io.centres, cam_of)
        if z is not None:
            ground0, ground_source = z, "triangulated tie points"
    centres0, rotvecs0 = io.centres.copy(), io.rotvecs.copy()
    if no_gps:
        unplaced = chain_without_gps(no_gps, good, rotvecs0, centres0, cam_of, ground0)
        if unplaced:
            raise ProcessingError(
                f"frames {', '.join(caps[k].id for k in unplaced)} have no GPS position and no verified "
                f"match (≥ {MIN_INLIERS} inliers) with a georeferenced frame, so they cannot be placed; "
                "remove them or add their positions")
    rotvecs, turned = fix_yaw_flips(rotvecs0, centres0, cam_of, good, ground0)
    rejected: list[dict[str, Any]] = []
    if len(good) > 2:
        bad, resid = inconsistent_pairs(good, n, rotvecs, centres0, cam_of, ground0)
        rejected = [{"a": caps[good[k].i].id, "b": caps[good[k].j].id, "inliers": good[k].inliers,
                     "offset_m": None if not np.isfinite(resid[k]) else round(float(resid[k]), 2),
                     "reason": "matches disagree with the GPS/attitude placement of both frames "
                               "(repetitive ground matched to the wrong place)"} for k in bad]
        good = [m for k, m in enumerate(good) if k not in set(bad)]
        comps = blocks(n, good, MIN_INLIERS)
        isolated = [caps[c[0]].id for c in comps if len(c) == 1]
        if isolated:
            raise ProcessingError(
                f"too little overlap: frames {', '.join(isolated)} kept no verified match with any "
                "neighbour once pairs that disagree with their GPS/attitude placement were removed. "
                "Fly with ≥ 70 % front and ≥ 60 % side overlap, or remove these frames")
    good, stray = drop_stray_matches(good, rotvecs, centres0, cam_of, ground0) if good else (good, 0)
    gcps = read_gcps(gcp, caps, epsg, io.origin) if gcp else []
    if good or gcps:
        adj = bundle_adjust(rotvecs, centres0, io.gps, models, group, good, ground0, gcps=gcps,
                            gps_sigma=io.gps_sigma)
    else:
        adj = Adjustment(rotvecs, centres0, tuple(models), np.zeros((0, 3)), np.zeros(0),
                         np.zeros(0, int), np.zeros(0), 0.0, 0)
    shift = np.linalg.norm(adj.centres[:, :2] - io.gps[:, :2], axis=1)
    ground_z = float(np.median(adj.points[:, 2])) if len(adj.points) >= 20 else ground0
    cam_of = [adj.models[g] for g in group]

    # output grid
    fps = [footprint(adj.rotvecs[k], adj.centres[k], cam_of[k], ground_z, io.origin, steps=8)
           for k in range(n)]
    if any(f is None for f in fps):
        bad = [caps[k].id for k, f in enumerate(fps) if f is None]
        raise ProcessingError(f"frames {', '.join(bad)} do not see the ground plane after adjustment "
                              "(camera pointing at the horizon?); remove them or give --dsm")
    gsds = np.array([(adj.centres[k][2] - ground_z) / cam_of[k].f for k in range(n)])
    gsd = float(np.median(gsds))
    res = float(resolution) if resolution else float(f"{gsd:.2g}")
    area = unary_union(fps)
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
    rcams = [RenderCamera(c.id, adj.rotvecs[k], adj.centres[k], cam_of[k], fps[k]) for k, c in enumerate(caps)]
    # RGB frames are balanced (exposure, vignetting); reflectance and DN are measurements
    balance = balance_frames(rcams, io.origin, ground_z, cache.loader) if rgb and correction is None \
        else Balance({}, {"method": "none: reflectance and camera DN are not gain-normalised"})
    rcams = balance.cameras(rcams)
    prog(0.55, "rendering")
    seams = render_mosaic(geobox, io.origin, rcams, ground, cache.get, factor, bands, dtype, out_path,
                          scheduler=scheduler, progress=scaled(progress, 0.55, 0.97))
    seam = seam_step(rcams, io.origin, ground_z, geobox, seams, cache.loader, reflectance=correction is not None)
    report = {
        "survey": survey.name,
        "epsg": epsg,
        "method": "SIFT + USAC matching, bundle adjustment (poses, tie points, focal/k1/k2) with GPS "
                  "priors, " + ("DSM" if dsm else "ground plane") + " orthorectification, nadir seamlines",
        "frames_used": [c.id for c in caps],
        "frames_dropped": dropped,
        "pairs": pairs_report,
        "pairs_rejected": rejected,
        "blocks": [[caps[k].id for k in comp] for comp in comps],
        "georeferencing": "GPS priors + tie points" + (" + GCPs" if gcps else "")
                          + ("" if len(comps) <= 1 else "; disconnected blocks each georeferenced by GPS only"),
        "heading_corrected": [caps[k].id for k in turned],
        "chained_without_gps": [caps[k].id for k in no_gps],
        "reprojection_mean_px": round(adj.mean_px, 3) if adj.residuals_px.size else None,
        "reprojection_p95_px": round(adj.p95_px, 3) if adj.residuals_px.size else None,
        "observations": int(adj.residuals_px.size),
        "tie_points": int(len(adj.points)),
        "stray_matches_dropped": stray,
        "gcp_residual_mean_px": float(np.mean(adj.gcp_residuals_px)) if adj.gcp_residuals_px.size else None,
        "gcp_observations": len(gcps),
        "gnss_shift_m": [round(float(v), 3) for v in adj.gnss_shift] if gcps else None,
        "gsd_m": round(gsd, 5),
        "resolution_m": res,
        "gps_sigma_m": {"horizontal_median": round(float(np.median(io.gps_sigma[:, 0])), 3),
                        "vertical_median": round(float(np.median(io.gps_sigma[:, 2])), 3),
                        "source": "camera metadata" if any(c.pose and c.pose.gps_sigma_h_m for c in caps)
                                  else "default (the camera writes no accuracy)"},
        "camera_shift_from_gps_m": {c.id: round(float(shift[k]), 3) if np.isfinite(shift[k]) else None
                                    for k, c in enumerate(caps)},
        "camera_shift_from_gps_mean_m": round(float(np.nanmean(shift)), 3) if np.isfinite(shift).any() else None,
        "ground_height_m": round(ground_z, 3),
        "initial_ground_height_from": ground_source,
        "camera_positions_utm": {c.id: [round(float(adj.centres[k][0] + io.origin[0]), 3),
                                        round(float(adj.centres[k][1] + io.origin[1]), 3),
                                        round(float(adj.centres[k][2]), 3)] for k, c in enumerate(caps)},
        "intrinsics": [{"f_px": m.f, "k1": m.dist[0], "k2": m.dist[1]} for m in adj.models],
        "covered_area_ha": round(area.area / 1e4, 4),
        "band_alignment_px": band_residuals,
        "radiometry": balance.report,
        "seam_step_pct": seam,
        "footprints_wkt": {c.id: fps[k].wkt for k, c in enumerate(caps)},
        "nadir_points_utm": {c.id: [float(adj.centres[k][0] + io.origin[0]),
                                    float(adj.centres[k][1] + io.origin[1])] for k, c in enumerate(caps)},
    }
    return MosaicResult(out_path, geobox, bands, report | {"_seams": seams})

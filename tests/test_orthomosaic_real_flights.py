"""Real flights as they come: a whole real survey from a compact camera without gimbal tags,
foreign frames mixed into a folder, frames that match nothing — placed, flagged or dropped with
reasons, never a refused job."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rio_cogeo.cogeo import cog_validate

from belcheer.ingest import scan
from tests.conftest import real_dataset


def _check_report(report: dict) -> None:
    """What every quality report must hold: a status per frame, finite robust statistics."""
    statuses = {f["status"] for f in report["frames"]}
    assert statuses <= {"adjusted", "gps_only", "dropped"}
    for f in report["frames"]:
        if f["status"] == "dropped":
            assert f["reason"]
        if f["status"] == "gps_only":
            assert f["reason"] and f["expected_error_m"] > 0
    for b in report["block_stats"]:
        assert np.isfinite(b["mean_px"]) and np.isfinite(b["p95_px"]) and b["frames"] >= 2
    if report["block_stats"]:
        assert np.isfinite(report["reprojection_mean_px"])
    assert set(report["observations_removed"]) == {"behind_camera", "beyond_cut", "cut_px"}


@pytest.mark.real
@pytest.mark.slow
def test_caliterra_whole_real_survey_in_one_run(real_data, workspace, artifacts):
    """75 Canon frames with GPS in EXIF only (no XMP, no attitude, altitude above sea level that
    drifts by over 100 m through the flight): one run places every frame (at least 74
    of 75 adjusted by the images), the COG is in UTM 14N
    and holds every frame's GPS position, the report has per-block residuals."""
    from belcheer.orthomosaic import mosaic

    folder = real_dataset(real_data, "caliterra_rgb")
    survey = scan(folder).replace(name="caliterra")
    assert len(survey.captures) == 75
    workspace.save_survey(survey)
    product = mosaic(workspace, "caliterra", resolution=0.1)
    report = json.loads(Path(product.metadata["quality_report"]).read_text())
    _check_report(report)
    status = report["frame_status"]
    assert len(status) == 75
    assert all(s in ("adjusted", "gps_only") for s in status.values()), status
    # the camera turns freely between frames and its fixes are tens of metres off, each its own
    # way: headings synchronised over all pairs at once and a start where the pairs agree let
    # the adjustment keep the tie points of every frame (COLMAP's SfM registers all 75 too);
    # "adjusted" means at least 15 tie-point observations kept, else it says "placed by GPS"
    assert len(report["frames_adjusted"]) >= 74
    for f in report["frames"]:
        if f["status"] == "gps_only":
            assert "placed by GPS" in f["reason"], f
    assert report["reprojection_mean_px"] <= 1.0
    assert report["block_stats"] and report["block_stats"][0]["frames"] >= 74
    # the camera wrote no heading: it came from the images
    assert len(report["heading_from_images"]) >= 70
    assert report["gps_altitude"]["trusted"] is False
    assert cog_validate(product.path)[0]
    # the Canon's GPS disagrees with its own images by tens of metres (stale fixes: IMG_9370 and
    # IMG_9371 share one position although the frames differ): the report says so by widening σ
    sigma = report["gps_sigma_m"]["horizontal_median"]
    assert "widened" in report["gps_sigma_m"]["source"] and 8.0 < sigma < 40.0
    with rasterio.open(product.path) as src:
        assert src.crs.to_epsg() == 32614
        mask = src.dataset_mask()
        b = src.bounds
        for cid, (x, y, _z) in report["camera_positions_utm"].items():
            r, c = src.index(x, y)
            assert mask[r, c] > 0, cid  # every placed camera stands over mapped ground
        to_utm = Transformer.from_crs(4326, 32614, always_xy=True)
        for cap in survey.captures:
            # every GPS fix lies within the map or within three of its widened σ of it
            x, y = to_utm.transform(cap.pose.lon, cap.pose.lat)
            assert b.left - 3 * sigma < x < b.right + 3 * sigma, cap.id
            assert b.bottom - 3 * sigma < y < b.top + 3 * sigma, cap.id
    shutil.copy(product.metadata["preview"], artifacts / "caliterra-preview.png")


@pytest.mark.real
@pytest.mark.slow
def test_brighton_with_foreign_frames_mixed_in(real_data, tmp_path, workspace):
    """Brighton's 18 frames plus 3 frames of another flight (P4P, China) copied into one
    folder: the run succeeds, the foreign frames are dropped with a reason, Brighton's 18 are
    adjusted as before (mean ≤ 0.5 px) in Brighton's UTM zone."""
    from belcheer.orthomosaic import mosaic

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for f in sorted(real_dataset(real_data, "brighton_beach_rgb").glob("*.JPG")):
        (mixed / f.name).symlink_to(f)
    foreign = sorted((real_dataset(real_data, "p4p_tuniu") / "odm" / "images").glob("*"))[:3]
    for f in foreign:
        shutil.copy(f, mixed / f.name)
    survey = scan(mixed).replace(name="mixed")
    assert survey.epsg == 32615
    workspace.save_survey(survey)
    product = mosaic(workspace, "mixed", resolution=0.1)
    report = json.loads(Path(product.metadata["quality_report"]).read_text())
    _check_report(report)
    status = report["frame_status"]
    names = {f.stem for f in foreign}
    for cid, st in status.items():
        if cid in names:
            assert st in ("dropped", "gps_only")
        else:
            assert st == "adjusted", (cid, st)
    reasons = {f["capture"]: f.get("reason", "") for f in report["frames"]}
    assert all(reasons[n] for n in names)
    assert len(report["frames_adjusted"]) == 18
    assert report["reprojection_mean_px"] <= 0.5


@pytest.mark.real
def test_frames_that_do_not_overlap_are_placed_by_gps(real_data, tmp_path):
    """Two Brighton frames with no common ground: each is placed by its GPS and flagged with
    the reason and expected error, the map has both (no refusal)."""
    from belcheer.orthomosaic import build_orthomosaic

    survey = scan(real_dataset(real_data, "brighton_beach_rgb"))
    by_id = {c.id: c for c in survey.captures}
    apart = survey.replace(captures=(by_id["DJI_0018"], by_id["DJI_0035"]))
    res = build_orthomosaic(apart, tmp_path / "o.tif", resolution=0.25)
    rep = res.report
    _check_report(rep)
    assert rep["frame_status"] == {"DJI_0018": "gps_only", "DJI_0035": "gps_only"}
    for f in rep["frames"]:
        assert "no verified match" in f["reason"]
        # σ 3 m fix (the camera writes no accuracy) and 2° of gimbal tilt at 40 m
        assert f["expected_error_m"] == pytest.approx(np.hypot(3.0, 39.8 * np.tan(np.radians(2.0))), rel=0.05)
    assert rep["blocks"] == [] and rep["reprojection_mean_px"] is None
    with rasterio.open(res.path) as src:
        mask = src.dataset_mask()
        to_utm = Transformer.from_crs(4326, src.crs.to_epsg(), always_xy=True)
        for cap in apart.captures:
            r, c = src.index(*to_utm.transform(cap.pose.lon, cap.pose.lat))
            assert mask[r, c] > 0

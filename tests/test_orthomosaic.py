"""Orthomosaic stage: geometry, band alignment, georeferenced COG output, refusals, products."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rio_cogeo.cogeo import cog_validate
from scipy.spatial.transform import Rotation

from belcheer.errors import ProcessingError
from belcheer.orthomosaic.geometry import CameraModel, project, rays_to_plane, rotation_from_gimbal
from tests.conftest import real_dataset

# --- pure geometry ------------------------------------------------------------------------------


def test_nadir_rotation_points_image_top_along_heading():
    # a camera 100 m above ground, heading 90° (east): the image's top edge must look east
    rv = Rotation.from_matrix(rotation_from_gimbal(90.0, -90.0, 0.0)).as_rotvec()
    cam = CameraModel(1000, 800, 1000.0, 500.0, 400.0)
    top_centre = rays_to_plane(np.array([[500.0, 0.0]]), rv, np.array([0.0, 0.0, 100.0]), cam, 0.0)[0]
    centre = rays_to_plane(np.array([[500.0, 400.0]]), rv, np.array([0.0, 0.0, 100.0]), cam, 0.0)[0]
    assert centre[:2] == pytest.approx([0.0, 0.0], abs=1e-6)
    assert top_centre[0] == pytest.approx(40.0, rel=1e-6)  # 400 px · 100 m / 1000 px, eastwards
    assert abs(top_centre[1]) < 1e-6


def test_projection_and_ray_casting_are_inverse_with_distortion():
    rv = Rotation.from_matrix(rotation_from_gimbal(33.0, -80.0, 2.0)).as_rotvec()
    cam = CameraModel(4000, 3000, 3000.0, 1990.0, 1510.0, (-0.1, 0.05, 0.001, -0.0005, 0.0))
    c = np.array([10.0, -5.0, 120.0])
    px = np.array([[100.0, 200.0], [2000.0, 1500.0], [3900.0, 2900.0]])
    ground = rays_to_plane(px, rv, c, cam, 3.0)
    back, depth = project(ground, rv, c, cam.f, cam.cx, cam.cy, cam.dist)
    assert np.all(depth > 0)
    assert np.abs(back - px).max() < 0.01
    assert ground[:, 2] == pytest.approx([3.0] * 3)


# --- real data ------------------------------------------------------------------------------------


def _scan(folder: Path):
    from belcheer.ingest import scan

    return scan(folder)


@pytest.mark.real
@pytest.mark.parametrize("dataset,capture", [("rededge_tutorial", "IMG_0001"),
                                             ("rededge_mx_slovakia", "IMG_0000")])
def test_band_alignment_real_rededge_below_one_pixel(real_data, dataset, capture):
    from belcheer.orthomosaic.frames import capture_alignment

    survey = _scan(real_dataset(real_data, dataset))
    al = capture_alignment(survey.capture(capture))
    assert set(al) == {"blue", "green", "red", "nir", "rededge"}
    for name, a in al.items():
        if name == "green":
            continue  # the primary band
        assert a.matches >= 20, (name, a)
        assert a.residual_px <= 1.0, (name, a)
        # the bands really were offset before alignment (several pixels), so this is not a no-op
    assert max(np.abs(a.homography[:2, 2]).max() for a in al.values()) > 3


@pytest.mark.real
def test_oblique_frames_are_refused_with_their_names(real_data, tmp_path):
    from belcheer.orthomosaic import build_orthomosaic

    survey = _scan(real_dataset(real_data, "p4p_tuniu") / "odm" / "images")
    with pytest.raises(ProcessingError) as exc:
        build_orthomosaic(survey, tmp_path / "o.tif")
    msg = str(exc.value)
    assert "oblique" in msg and "--dsm" in msg
    for cap in survey.captures:
        assert cap.frames[0].path.name in msg
    assert not (tmp_path / "o.tif").exists()


@pytest.mark.real
def test_single_frame_is_orthorectified_and_georeferenced(real_data, tmp_path, workspace):
    from belcheer.orthomosaic import build_orthomosaic, import_ortho, merge_rasters

    survey = _scan(real_dataset(real_data, "brighton_beach_rgb"))
    one = survey.replace(captures=survey.captures[:1])
    out = tmp_path / "one.tif"
    res = build_orthomosaic(one, out, resolution=0.1)
    assert cog_validate(out)[0]
    with rasterio.open(out) as src:
        assert src.crs.to_epsg() == survey.epsg == 32615
        assert src.count == 3 and src.dtypes[0] == "uint8"
        assert src.descriptions == ("red", "green", "blue")
        assert src.tags(1)["center_nm"] == "650"
        assert src.overviews(1)  # 0.1 m over a ~68 m frame: larger than one block
        mask = src.dataset_mask()
        assert 0.3 < (mask > 0).mean() < 1.0  # the rotated frame leaves nodata corners
        # the GPS position of the frame lies on valid pixels of the mosaic
        pose = one.captures[0].pose
        x, y = Transformer.from_crs(4326, src.crs.to_epsg(), always_xy=True).transform(pose.lon, pose.lat)
        r, c = src.index(x, y)
        assert mask[r, c] > 0
    # GSD estimated from the relative altitude: 39.8 m × 6.17 mm / 4000 px / 3.61 mm
    assert res.report["gsd_m"] == pytest.approx(39.8 * 6.17 / 4000 / 3.61, rel=0.2)
    assert res.report["frames_used"] == [one.captures[0].id]
    # footprint ≈ 4000 × 2250 px at ~1.7 cm: ≈ 0.26 ha
    assert res.report["covered_area_ha"] == pytest.approx(4000 * 2250 * (39.8 * 6.17 / 4000 / 3.61) ** 2 / 1e4,
                                                          rel=0.1)

    merged = merge_rasters([out, out], tmp_path / "merged.tif")
    assert cog_validate(merged.path)[0]
    assert merged.geobox.shape == res.geobox.shape

    prod = import_ortho(workspace, out, survey="imported")
    assert prod.path.is_file() and prod.epsg == 32615
    assert [b.name for b in prod.bands] == ["red", "green", "blue"]
    assert workspace.product("imported", "orthomosaic").path == prod.path
    assert out.is_file()  # the input is left in place


@pytest.mark.real
def test_frames_that_do_not_overlap_are_named(real_data, tmp_path):
    from belcheer.orthomosaic import build_orthomosaic

    survey = _scan(real_dataset(real_data, "brighton_beach_rgb"))
    by_id = {c.id: c for c in survey.captures}
    # first frame of the first line and last frame of the last line: no common ground
    apart = survey.replace(captures=(by_id["DJI_0018"], by_id["DJI_0035"]))
    with pytest.raises(ProcessingError) as exc:
        build_orthomosaic(apart, tmp_path / "o.tif")
    assert "DJI_0018" in str(exc.value) and "DJI_0035" in str(exc.value)
    assert "overlap" in str(exc.value)


@pytest.mark.real
@pytest.mark.slow
def test_brighton_beach_mosaic(real_data, workspace, artifacts):
    from belcheer.orthomosaic import mosaic

    survey = _scan(real_dataset(real_data, "brighton_beach_rgb")).replace(name="brighton")
    workspace.save_survey(survey)
    product = mosaic(workspace, "brighton", resolution=0.05)
    report = json.loads(Path(product.metadata["quality_report"]).read_text())
    assert len(report["frames_used"]) == 18 and report["frames_dropped"] == []
    assert len(report["blocks"]) == 1
    assert report["reprojection_mean_px"] <= 1.5
    assert report["gsd_m"] == pytest.approx(39.8 * 6.17 / 4000 / 3.61, rel=0.2)
    assert report["camera_shift_from_gps_mean_m"] < 5.0
    assert all(p["inliers"] >= 0 for p in report["pairs"]) and len(report["pairs"]) >= 17
    assert cog_validate(product.path)[0]
    to_utm = Transformer.from_crs(4326, 32615, always_xy=True)
    with rasterio.open(product.path) as src:
        assert src.crs.to_epsg() == 32615 and src.overviews(1)
        scale = 8
        mask = src.dataset_mask(out_shape=(src.height // scale, src.width // scale))
        t = src.transform * src.transform.scale(src.width / mask.shape[1], src.height / mask.shape[0])
        for cap in survey.captures:
            x, y = to_utm.transform(cap.pose.lon, cap.pose.lat)
            col, row = ~t * (x, y)
            assert mask[int(row), int(col)] > 0, cap.id
    covered = sum(1 for _ in report["footprints_wkt"])
    assert covered == 18
    preview = Path(product.metadata["preview"])
    assert preview.stat().st_size > 10_000
    (artifacts / "orthomosaic-brighton-preview.png").write_bytes(preview.read_bytes())


@pytest.mark.slow
def test_synthetic_survey_checkpoints_against_truth(tmp_path):
    """A simulated RGB flight with known truth: tie-point geometry, camera positions and the
    surveyed checkerboard targets found in the mosaic."""
    import cv2
    import pandas as pd

    from belcheer.ingest import scan
    from belcheer.orthomosaic import build_orthomosaic
    from belcheer.orthomosaic.accuracy import checkpoint_errors
    from belcheer.simulate import simulate

    sim = simulate(tmp_path / "sim", camera="rgb", seed=1, area_ha=0.3, altitude_m=60)
    survey = scan(sim.frames_dir)
    res = build_orthomosaic(survey, tmp_path / "sim.tif")
    rep = res.report
    assert len(rep["frames_used"]) == sim.n_captures and len(rep["blocks"]) == 1
    assert rep["reprojection_mean_px"] <= 0.5
    assert rep["gsd_m"] == pytest.approx(sim.gsd_m, rel=0.1)
    gps_sigma = 2.0  # the simulator's horizontal GPS σ per axis, metres
    poses = pd.read_csv(sim.poses_path).set_index("capture_id")
    solved = np.array([rep["camera_positions_utm"][c][:2] for c in poses.index if c in rep["camera_positions_utm"]])
    true = poses.loc[[c for c in poses.index if c in rep["camera_positions_utm"]], ["x", "y"]].to_numpy()
    gps = poses.loc[[c for c in poses.index if c in rep["camera_positions_utm"]], ["gps_x", "gps_y"]].to_numpy()
    cam_err = np.linalg.norm(solved - true, axis=1)
    # the adjustment is much closer to the truth than the GPS it started from
    assert cam_err.mean() < 0.5 * np.linalg.norm(gps - true, axis=1).mean()
    # solved positions scatter about the truth: bound their RMSE by the GPS σ (the worst single
    # camera of a small block is a noisy statistic, seen at 2.07 m once)
    assert float(np.sqrt((cam_err ** 2).mean())) <= gps_sigma

    cp = pd.read_csv(sim.checkpoints_path)
    errs = checkpoint_errors(res.path, list(zip(cp.id, cp.x, cp.y, cp.size_m, strict=True)))
    assert len(errs) == len(cp) and min(e.score for e in errs) > 0.7
    d = np.array([[e.dx, e.dy] for e in errs])
    abs_rmse = float(np.sqrt((d ** 2).sum(axis=1).mean()))
    assert abs_rmse <= gps_sigma
    # internal geometry: after removing the block's similarity (shift, rotation, scale — what
    # GPS-only georeferencing of a small block cannot pin down), targets agree within 2 GSD
    found = np.array([[e.found_x, e.found_y] for e in errs])
    truth = found - d
    o = truth.mean(axis=0)
    a, _ = cv2.estimateAffinePartial2D(found - o, truth - o, method=cv2.LMEDS)
    fit = (found - o) @ a[:, :2].T + a[:, 2]
    rel_rmse = float(np.sqrt(((fit - (truth - o)) ** 2).sum(axis=1).mean()))
    assert rel_rmse <= 2 * sim.gsd_m


def _tiny_ortho(path: Path, x0: float, value: int) -> Path:
    from affine import Affine

    data = np.full((3, 600, 600), value, np.uint8)
    with rasterio.open(path, "w", driver="GTiff", width=600, height=600, count=3, dtype="uint8",
                       crs="EPSG:32648", transform=Affine(0.1, 0, x0, 0, -0.1, 5421700.0)) as dst:
        dst.write(data)
    return path


def test_cli_merge_and_import_register_products(tmp_path, monkeypatch):
    from belcheer import open_workspace
    from belcheer.cli import main

    a = _tiny_ortho(tmp_path / "a.tif", 584900.0, 100)
    b = _tiny_ortho(tmp_path / "b.tif", 584950.0, 200)  # 60 m wide, 50 m east: 10 m overlap
    ws_dir = tmp_path / "ws"
    monkeypatch.setenv("BELCHEER_WORKSPACE", str(ws_dir))
    assert main(["mosaic", "--from-rasters", str(a), "--from-rasters", str(b), "--survey", "merged"]) == 0
    ws = open_workspace(ws_dir)
    prod = ws.product("merged", "orthomosaic")
    assert cog_validate(prod.path)[0]
    with rasterio.open(prod.path) as src:
        assert src.crs.to_epsg() == 32648
        assert src.width == 1100 and src.height == 600  # 584900 … 585010 m at 0.1 m
        assert src.read(1, window=((0, 1), (0, 1)))[0, 0] == 100
        assert src.read(1, window=((0, 1), (1099, 1100)))[0, 0] == 200
    assert ws.survey("merged").captures == ()  # minimal survey record created for the import
    assert main(["import-ortho", str(a), "--survey", "other"]) == 0
    assert ws.product("other", "orthomosaic").epsg == 32648
    # a raster without a CRS is refused with a message saying how to fix it
    with rasterio.open(tmp_path / "nocrs.tif", "w", driver="GTiff", width=10, height=10, count=1,
                       dtype="uint8") as dst:
        dst.write(np.zeros((1, 10, 10), np.uint8))
    assert main(["import-ortho", str(tmp_path / "nocrs.tif")]) != 0


@pytest.mark.real
def test_black_and_blurry_frames_are_dropped_with_reasons(real_data, tmp_path):
    import cv2

    from belcheer.orthomosaic import build_orthomosaic

    survey = _scan(real_dataset(real_data, "brighton_beach_rgb"))
    by_id = {c.id: c for c in survey.captures}
    a, b, c = by_id["DJI_0019"], by_id["DJI_0020"], by_id["DJI_0021"]
    img = cv2.imread(str(c.frames[0].path))
    black = tmp_path / "black.jpg"
    cv2.imwrite(str(black), np.zeros_like(img))
    blurry = tmp_path / "blurry.jpg"
    cv2.imwrite(str(blurry), cv2.GaussianBlur(img, (0, 0), 25))

    def moved(cap, path, cid):
        fr = cap.frames[0]
        return cap.__class__(id=cid, frames=(fr.__class__(**{**fr.__dict__, "path": path, "capture_id": cid}),),
                             footprint=cap.footprint, gsd_m=cap.gsd_m)

    bad = survey.replace(captures=(a, b, moved(c, black, "BLACK"), moved(c, blurry, "BLURRY")))
    res = build_orthomosaic(bad, tmp_path / "o.tif", resolution=0.25)
    reasons = {d["capture"]: d["reason"] for d in res.report["frames_dropped"]}
    assert set(reasons) == {"BLACK", "BLURRY"}
    assert "black" in reasons["BLACK"] and "blurry" in reasons["BLURRY"]
    assert res.report["frames_used"] == ["DJI_0019", "DJI_0020"]
    assert res.report["reprojection_mean_px"] <= 1.5


@pytest.mark.real
@pytest.mark.slow
def test_oblique_frames_with_dsm_match_opendronemap_cameras(real_data, tmp_path):
    import pandas as pd

    from belcheer.orthomosaic import build_orthomosaic

    root = real_dataset(real_data, "p4p_tuniu")
    survey = _scan(root / "odm" / "images")
    res = build_orthomosaic(survey, tmp_path / "p4p.tif", dsm=root / "odm" / "odm_dem" / "dsm.tif",
                            resolution=0.2)
    rep = res.report
    assert len(rep["frames_used"]) == 4 and len(rep["blocks"]) == 1
    assert rep["reprojection_mean_px"] <= 1.5
    assert cog_validate(res.path)[0]
    odm = pd.read_csv(root / "io" / "odm_lla_rpy.csv", sep=" ")
    to_utm = Transformer.from_crs(4326, survey.epsg, always_xy=True)
    diffs = []
    for _, row in odm.iterrows():
        x, y = to_utm.transform(row.longitude, row.latitude)
        px, py, pz = rep["camera_positions_utm"][Path(row.filename).stem]
        diffs.append((np.hypot(px - x, py - y), abs(pz - row.altitude)))
    diffs = np.array(diffs)
    # within consumer-GPS error of OpenDroneMap's independent solution (σ ≈ 2–5 m)
    assert diffs[:, 0].max() < 3.0 and diffs[:, 1].max() < 5.0


@pytest.mark.real
@pytest.mark.slow
def test_multispectral_capture_with_correction_gives_float_bands(real_data, tmp_path):
    from belcheer.orthomosaic import build_orthomosaic

    survey = _scan(real_dataset(real_data, "rededge_tutorial"))

    def to_unit(frame, arr):  # stands in for the indices stage's DN → reflectance calibration
        return arr.astype(np.float32) / 65535.0

    res = build_orthomosaic(survey, tmp_path / "ms.tif", correction=to_unit)
    rep = res.report
    assert rep["frames_used"] == ["IMG_0001"]
    assert [d["capture"] for d in rep["frames_dropped"]] == ["IMG_0000"]  # the panel
    assert all(v <= 1.0 for v in rep["band_alignment_px"]["IMG_0001"].values())
    assert cog_validate(res.path)[0]
    with rasterio.open(res.path) as src:
        assert src.count == 5 and set(src.dtypes) == {"float32"}
        assert src.descriptions == ("blue", "green", "red", "nir", "rededge")
        assert [src.tags(i)["center_nm"] for i in range(1, 6)] == ["475", "560", "668", "840", "717"]
        data = src.read()
    valid = np.isfinite(data).all(axis=0)
    assert 0.3 < valid.mean() < 1.0
    assert np.all((data[:, valid] > 0) & (data[:, valid] < 1))


def test_decimate_handles_more_than_four_bands():
    # a 5-band multispectral capture rendered at ≥ 2 × GSD is decimated before mosaicking
    from belcheer.orthomosaic.frames import _decimate

    img = np.dstack([np.full((40, 60), float(b), np.float32) for b in range(5)])
    small = _decimate(img, 2.0)
    assert small.shape == (20, 30, 5)
    assert [float(small[..., b].mean()) for b in range(5)] == [0.0, 1.0, 2.0, 3.0, 4.0]

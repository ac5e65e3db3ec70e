"""Orthomosaic stage: geometry, band alignment, georeferenced COG output, refusals, products."""

from __future__ import annotations

import json
import platform
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
def test_band_alignment_real_rededge_below_one_pixel(real_data):
    """The tutorial's flight capture: every band within 1 px of the primary, measured by local
    phase correlation over the whole frame (not by the matches the alignment used)."""
    from belcheer.orthomosaic.frames import capture_alignment

    survey = _scan(real_dataset(real_data, "rededge_tutorial"))
    al = capture_alignment(survey.capture("IMG_0001"))
    assert set(al) == {"blue", "green", "red", "nir", "rededge"}
    for name, a in al.items():
        if name == "green":
            continue  # the primary band
        assert a.matches >= 10, (name, a)  # windows with a clear correlation peak, of 25
        assert a.residual_px <= 1.0, (name, a)
    # the bands really were offset before alignment (several pixels), so this is not a no-op
    assert max(np.abs(a.homography[:2, 2]).max() for a in al.values()) > 3


def _local_contrast(img: np.ndarray, sigma: float = 8.0) -> np.ndarray:
    """uint8 image of intensity minus its local mean over its local spread: contrast-normalised
    intensity, not the gradient magnitude that band alignment fits and measures on."""
    import cv2

    f = np.nan_to_num(img.astype(np.float32))
    mean = cv2.GaussianBlur(f, (0, 0), sigma)
    var = cv2.GaussianBlur((f - mean) ** 2, (0, 0), sigma)
    spread = np.sqrt(var + 1e-6 * float(f.var()) + 1e-12)
    return np.clip((f - mean) / spread * 40 + 128, 0, 255).astype(np.uint8)


def _sift_agreement(aligned: np.ndarray, ref: np.ndarray) -> float:
    """Fraction of SIFT matches (Lowe ratio, whole image) between two aligned images that sit
    within 1 px of each other, on locally normalised intensities: a second measure of band
    alignment, independent of the gradient-magnitude phase correlation."""
    import cv2

    sift = cv2.SIFT_create(nfeatures=4000)
    ka, da = sift.detectAndCompute(_local_contrast(aligned), None)
    kb, db = sift.detectAndCompute(_local_contrast(ref), None)
    knn = cv2.BFMatcher(cv2.NORM_L2).knnMatch(da, db, k=2)
    good = [m[0] for m in knn if len(m) == 2 and m[0].distance < 0.8 * m[1].distance]
    assert len(good) >= 50
    pa = np.float32([ka[m.queryIdx].pt for m in good])
    pb = np.float32([kb[m.trainIdx].pt for m in good])
    return float((np.hypot(*(pa - pb).T) <= 1.0).mean())


@pytest.mark.real
@pytest.mark.parametrize("capture_id", ["IMG_0000", "IMG_0010"])
def test_band_alignment_real_slovakia_below_one_pixel_with_parallax_field(real_data, capture_id):
    """Slovakia's captures were taken close to the crop (DLS tilted 47°, GPS accuracy 19 m: held
    by hand): the lenses' few centimetres of baseline give tens of pixels of parallax that no
    single homography removes (1.2–13 px left). A dense field on top of the homography brings
    every band within 1 px of the primary — measured by windowed phase correlation after warping
    with the alignment, and cross-checked with SIFT matches on locally normalised intensities
    (the field is fitted on gradient magnitude, so phase correlation alone would be circular)."""
    from belcheer.orthomosaic.bandalign import (
        alignment_residual,
        apply_alignment,
        read_band,
        undistort_band,
        warp_ideal,
    )
    from belcheer.orthomosaic.frames import capture_alignment, read_capture

    survey = _scan(real_dataset(real_data, "rededge_mx_slovakia"))
    cap = survey.capture(capture_id)
    al = capture_alignment(cap)
    frames = {f.band.name: f for f in cap.frames}
    ref = undistort_band(read_band(frames["green"].path), frames["green"])
    homography_only, sift_before, sift_after = [], [], []
    for name, a in al.items():
        if name == "green":
            continue
        band = undistort_band(read_band(frames[name].path), frames[name])
        before, _ = alignment_residual(warp_ideal(band, a.homography, None, ref.shape), ref)
        aligned = apply_alignment(band, a, ref.shape)
        after, n = alignment_residual(aligned, ref)
        assert a.method.endswith("+flow") and a.flow is not None, (name, a.method)
        assert a.flow.shape == (*ref.shape, 2)
        assert n >= 10, (name, n)  # windows with a clear correlation peak, of 25
        assert after == pytest.approx(a.residual_px, abs=0.01)
        assert after <= 1.0, (name, before, after)
        homography_only.append(before)
        sift_before.append(_sift_agreement(warp_ideal(band, a.homography, None, ref.shape), ref))
        sift_after.append(_sift_agreement(aligned, ref))
    # the homography alone really was far off: the field is doing the work
    assert np.median(homography_only) > 3.0, homography_only
    # independently: no band's SIFT agreement drops, at least half the matches agree to 1 px,
    # and on average the field adds a tenth or more of all matches
    sift = (sift_before, sift_after)
    assert all(a >= b - 0.03 for a, b in zip(sift_after, sift_before, strict=True)), sift
    assert min(sift_after) >= 0.5, sift
    assert np.mean(sift_after) >= np.mean(sift_before) + 0.1, sift
    # a single-capture product is resampled with the same field (lens, field and homography in
    # one remap): its band layers are at least as well aligned as measured (NaN outside a band:
    # 0, as in warp_ideal; the one remap resamples once where the measurement warped twice, so
    # it may come out better — NIR of IMG_0000: 0.34 px against 0.59 px measured)
    stack = read_capture(cap, al)
    order = [f.band.name for f in sorted(cap.frames, key=lambda f: f.band_index)]
    green = stack[..., order.index("green")]
    for k, name in enumerate(order):
        if name != "green":
            res, n = alignment_residual(np.nan_to_num(stack[..., k]), np.nan_to_num(green))
            assert n >= 5 and res <= al[name].residual_px + 0.15, (name, res, al[name].residual_px, n)


def test_band_alignment_dense_field_recovers_close_range_parallax():
    """A synthetic close-range capture: the band sees the primary's texture with a depth-like
    parallax of up to 6 px along the baseline (undulating, so no homography fits it) and its
    contrast reversed (NIR against green). The alignment's per-pixel map must match the true
    one to a fraction of a pixel, and the method say so."""
    import cv2

    from belcheer.orthomosaic.bandalign import (
        align_bands,
        alignment_residual,
        warp_ideal,
        warp_maps,
    )

    h, w = 480, 640
    rng = np.random.default_rng(0)
    fine = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 2.0)
    coarse = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 12.0)
    texture = (fine - fine.mean()) / fine.std() + 2 * (coarse - coarse.mean()) / coarse.std()
    ref = 20000 + 1000 * texture
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    parallax = 6.0 * np.sin(2 * np.pi * xx / 320) * np.sin(2 * np.pi * yy / 240)
    # the band pixel x + parallax(x) shows what the primary sees at x: invert by fixed point
    bx = xx.copy()
    for _ in range(30):
        bx = xx - cv2.remap(parallax, bx, yy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    band = 60000 - cv2.remap(ref, bx, yy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    images = {"green": ref.astype(np.uint16), "nir": band.astype(np.uint16)}
    al = align_bands(images, {}, "green")["nir"]
    homography_only, _ = alignment_residual(warp_ideal(band, al.homography, None, (h, w)), ref)
    assert homography_only > 2.0  # the capture really is beyond one homography
    assert al.method.endswith("+flow") and al.residual_px <= 0.1, al
    mx, my = warp_maps(al, None, None, (h, w))  # the maps read_capture resamples the band with
    err = np.hypot(mx - (xx + parallax), my - yy)[20:-20, 20:-20]
    assert np.median(err) < 0.1 and np.percentile(err, 95) < 0.3, np.percentile(err, [50, 95])


@pytest.mark.slow
def test_band_alignment_flight_altitude_uses_no_dense_field(tmp_path):
    """At flight height (simulated RedEdge, 70 m) the lenses' parallax is far below a pixel:
    every band keeps its homography alone. IMG_0020's NIR band measures 2.8 px against green
    (cross-spectral), which is why one band's residual does not switch the field on."""
    from belcheer.ingest import scan
    from belcheer.orthomosaic.frames import capture_alignment
    from belcheer.simulate import simulate

    sim = simulate(tmp_path / "sim", camera="rededge", seed=1, area_ha=0.3, altitude_m=70,
                   gnss="rtk")
    survey = scan(sim.frames_dir)
    for capture_id in ("IMG_0001", "IMG_0020"):
        al = capture_alignment(survey.capture(capture_id))
        assert len(al) == 5
        for name, a in al.items():
            assert a.flow is None and "flow" not in a.method, (capture_id, name, a.method)
        assert np.median([a.residual_px for n, a in al.items() if n != "green"]) < 0.2


@pytest.mark.real
def test_lone_close_range_capture_is_mosaicked_with_its_own_alignment(real_data, tmp_path):
    """A survey of one hand-held capture (Slovakia IMG_0010, all five bands) is orthorectified
    with that capture's own alignment, parallax field included — not a rig median — and its
    report carries every band within the issue's 1 px (0.07–0.15 px measured)."""
    from belcheer.orthomosaic import build_orthomosaic

    src = real_dataset(real_data, "rededge_mx_slovakia")
    one = tmp_path / "one"
    one.mkdir()
    for f in sorted(src.glob("IMG_0010_*.tif")):
        (one / f.name).symlink_to(f)
    res = build_orthomosaic(_scan(one), tmp_path / "one.tif")
    bands = res.report["band_alignment_px"]["IMG_0010"]
    assert set(bands) == {"blue", "green", "red", "nir", "rededge"}
    assert max(bands.values()) <= 1.0, bands
    assert cog_validate(res.path)[0]


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


@pytest.fixture(scope="module")
def rtk_flight(tmp_path_factory):
    """A simulated RGB flight with RTK positions (σ 2 cm) offset by an unsurveyed base."""
    from belcheer.simulate import simulate

    return simulate(tmp_path_factory.mktemp("rtk") / "sim", camera="rgb", seed=1, area_ha=0.3,
                    altitude_m=60, gnss="rtk")


def _target_errors(sim, path, ids=None):
    """(ids, errors found − surveyed (n, 2) metres) of the simulator's targets in a mosaic."""
    import pandas as pd

    from belcheer.orthomosaic.accuracy import checkpoint_errors

    cp = pd.read_csv(sim.checkpoints_path)
    if ids is not None:
        cp = cp[cp.id.isin(ids)]
    errs = checkpoint_errors(path, list(zip(cp.id, cp.x, cp.y, cp.size_m, strict=True)))
    assert len(errs) == len(cp) and min(e.score for e in errs) > 0.7
    return [e.name for e in errs], np.array([[e.dx, e.dy] for e in errs])


@pytest.mark.slow
def test_synthetic_rtk_survey_checkpoints_against_truth(rtk_flight, tmp_path):
    """Checkpoints of the issue: relative RMSE ≤ 2 GSD after removing only the common shift,
    absolute ≤ the GNSS σ — and the common shift is exactly the RTK base's offset, which no
    adjustment without ground control can know."""
    import pandas as pd

    from belcheer.ingest import scan
    from belcheer.orthomosaic import build_orthomosaic

    sim = rtk_flight
    res = build_orthomosaic(scan(sim.frames_dir), tmp_path / "sim.tif")
    rep = res.report
    assert len(rep["frames_used"]) == sim.n_captures and len(rep["blocks"]) == 1
    assert rep["reprojection_mean_px"] <= 0.5
    assert rep["gsd_m"] == pytest.approx(sim.gsd_m, rel=0.1)
    # the GPS priors are weighted by the accuracy the frames carry (RtkStdLon/Lat/Hgt)
    assert rep["gps_sigma_m"]["horizontal_median"] == pytest.approx(0.02)
    assert rep["gps_sigma_m"]["source"] == "camera metadata"
    _, d = _target_errors(sim, res.path)
    gsd = sim.gsd_m
    assert float(np.sqrt((d ** 2).sum(axis=1).mean())) <= sim.gps_sigma_h_m
    np.testing.assert_allclose(d.mean(axis=0), sim.gps_bias_m[:2], atol=2 * gsd)
    rel = d - d.mean(axis=0)
    assert float(np.sqrt((rel ** 2).sum(axis=1).mean())) <= 2 * gsd
    # solved cameras: the truth plus the base offset, to a few centimetres
    poses = pd.read_csv(sim.poses_path).set_index("capture_id")
    ids = list(rep["camera_positions_utm"])
    solved = np.array([rep["camera_positions_utm"][c] for c in ids])
    truth = poses.loc[ids, ["x", "y", "alt_abs_m"]].to_numpy() + np.array(sim.gps_bias_m)
    assert float(np.sqrt(((solved - truth)[:, :2] ** 2).sum(axis=1).mean())) <= 0.05


@pytest.mark.slow
def test_ground_control_points_remove_the_base_offset(rtk_flight, tmp_path):
    """Three of the five targets as GCPs (ODM gcp_list.txt): the two others, never seen by the
    adjustment, land within 2 GSD of their surveyed position, and the solved GNSS offset is
    the base's."""
    import pandas as pd

    from belcheer.ingest import scan
    from belcheer.orthomosaic import build_orthomosaic
    from belcheer.simulate import write_gcp_list

    sim = rtk_flight
    ids = sorted(pd.read_csv(sim.checkpoints_path).id)
    control, check = ids[:3], ids[3:]
    gcp = write_gcp_list(sim, tmp_path / "gcp_list.txt", targets=control)
    assert gcp.read_text().splitlines()[0] == "EPSG:32648"
    res = build_orthomosaic(scan(sim.frames_dir), tmp_path / "gcp.tif", gcp=gcp)
    rep = res.report
    assert "GCPs" in rep["georeferencing"] and rep["gcp_observations"] >= 6
    assert rep["gcp_residual_mean_px"] <= 1.0
    np.testing.assert_allclose(rep["gnss_shift_m"][:2], sim.gps_bias_m[:2], atol=2 * sim.gsd_m)
    _, d = _target_errors(sim, res.path, check)
    assert np.linalg.norm(d, axis=1).max() <= 2 * sim.gsd_m


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


@pytest.mark.parametrize("with_offset", [False, True])
def test_gnss_prior_jacobian_matches_finite_differences(with_offset):
    """The GNSS prior's analytic Jacobian equals central differences along the quaternion
    manifold's tangent directions (what Ceres uses) and along the translation and offset."""
    from scipy.spatial.transform import Rotation

    from belcheer.orthomosaic.adjust import GnssPrior

    rng = np.random.default_rng(5)
    rot = Rotation.from_euler("zyx", [37.0, 3.0, 178.0], degrees=True)
    centre = np.array([12.0, -40.0, 85.0])
    params = np.concatenate([rot.as_quat(), -rot.as_matrix() @ centre])
    offset = np.array([0.4, -0.3, 1.2])
    cost = GnssPrior(centre + rng.normal(0, 2, 3), np.array([0.5, 0.7, 1.5]), with_offset)
    blocks = [params, offset] if with_offset else [params]

    def evaluate(bl, want_jac):
        res = np.zeros(3)
        jac = [np.zeros(3 * len(b)) for b in bl] if want_jac else None
        assert cost.Evaluate(bl, res, jac)
        return res, jac

    _, jac = evaluate(blocks, True)
    j_pose = jac[0].reshape(3, 7)
    q = params[:4]
    h = 1e-6
    for axis in range(3):  # rotate by ±h about each axis: a unit-quaternion tangent step
        turn = Rotation.from_rotvec(np.eye(3)[axis] * h)
        plus = (rot * turn).as_quat()
        minus = (rot * turn.inv()).as_quat()
        plus, minus = (plus if plus @ q > 0 else -plus), (minus if minus @ q > 0 else -minus)
        num = (evaluate([np.concatenate([plus, params[4:]])] + blocks[1:], False)[0]
               - evaluate([np.concatenate([minus, params[4:]])] + blocks[1:], False)[0]) / (2 * h)
        np.testing.assert_allclose(j_pose[:, :4] @ ((plus - minus) / (2 * h)), num, rtol=1e-5, atol=1e-6)
    for k in range(3):
        d = np.zeros(7)
        d[4 + k] = h
        num = (evaluate([params + d] + blocks[1:], False)[0] - evaluate([params - d] + blocks[1:], False)[0]) / (2 * h)
        np.testing.assert_allclose(j_pose[:, 4 + k], num, rtol=1e-6, atol=1e-8)
    if with_offset:
        np.testing.assert_allclose(jac[1].reshape(3, 3), np.diag(1 / np.array([0.5, 0.7, 1.5])))


def test_bundle_adjust_recovers_a_simulated_block():
    """A 3×3 block with distortion, perturbed poses and focal: COLMAP's FULL_OPENCV projection is
    the same Brown model belcheer renders with (residuals fall to the noise), and the solved
    centres, focal and k1 land on the truth."""
    from scipy.spatial.transform import Rotation

    from belcheer.orthomosaic.adjust import _project, bundle_adjust
    from belcheer.orthomosaic.geometry import CameraModel, rotation_from_gimbal
    from belcheer.orthomosaic.pairs import PairMatch

    rng = np.random.default_rng(11)
    truth = CameraModel(1200, 900, 1000.0, 600.0, 450.0, (-0.08, 0.02, 2e-4, -1e-4, 0.0))
    centres = np.array([[x, y, 60.0] for y in (0.0, 20.0, 40.0) for x in (0.0, 25.0, 50.0)])
    centres[:, 2] += rng.normal(0, 0.5, 9)
    rv = np.array([Rotation.from_matrix(rotation_from_gimbal(yaw, -89.0, 0.5)).as_rotvec()
                   for yaw in rng.uniform(-3, 3, 9)])
    ground = np.column_stack([rng.uniform(-20, 70, 4000), rng.uniform(-15, 55, 4000),
                              rng.normal(0, 1.5, 4000)])
    intr = np.array([[truth.f, truth.dist[0], truth.dist[1]]])
    fixed = np.array([[truth.cx, truth.cy, *truth.dist[2:]]])
    px = [_project(ground, np.tile(rv[c], (len(ground), 1)), np.tile(centres[c], (len(ground), 1)),
                   np.tile(intr, (len(ground), 1)), np.tile(fixed, (len(ground), 1))) for c in range(9)]
    inside = [(p[:, 0] > 0) & (p[:, 0] < 1200) & (p[:, 1] > 0) & (p[:, 1] < 900) for p in px]
    matches = []
    for i in range(9):
        for j in range(i + 1, 9):
            both = np.flatnonzero(inside[i] & inside[j])[:150]
            if len(both) >= 20:
                matches.append(PairMatch(i, j, px[i][both] + rng.normal(0, 0.3, (len(both), 2)),
                                         px[j][both] + rng.normal(0, 0.3, (len(both), 2)), len(both)))
    start = CameraModel(1200, 900, 1040.0, 600.0, 450.0, (0.0, 0.0, 2e-4, -1e-4, 0.0))
    gps = centres + rng.normal(0, 0.03, centres.shape)
    adj = bundle_adjust(rv + rng.normal(0, 0.01, rv.shape), gps + rng.normal(0, 0.5, gps.shape), gps,
                        [start], np.zeros(9, int), matches, 0.0, gps_sigma=np.full((9, 3), 0.03))
    assert len(matches) >= 16
    assert adj.mean_px < 0.5  # 0.3 px noise per axis: ≈ 0.38 px mean norm
    assert np.abs(adj.centres - centres).max() < 0.1
    # over near-flat ground focal and flying height trade off; the 5 % focal prior around the
    # 4 %-wrong start keeps part of the error
    assert abs(adj.models[0].f - truth.f) < 20.0
    assert abs(adj.models[0].dist[0] - truth.dist[0]) < 0.01
    assert adj.models[0].dist[2:] == truth.dist[2:]  # tangential and k3 stay as given


def test_render_tile_interpolated_maps_equal_exact_projection(monkeypatch):
    """Rendering projects a coarse grid and interpolates the maps, and skips frames that carry
    no weight: the result equals projecting every pixel through every frame."""
    import cv2
    from rasterio.windows import Window
    from scipy.spatial.transform import Rotation
    from shapely.geometry import box

    from belcheer.grid import geobox_for_bounds
    from belcheer.orthomosaic import render
    from belcheer.orthomosaic.geometry import CameraModel, rotation_from_gimbal

    rng = np.random.default_rng(2)
    img = cv2.GaussianBlur(rng.uniform(0, 255, (600, 800, 3)).astype(np.float32), (0, 0), 3)
    model = CameraModel(800, 600, 700.0, 400.0, 300.0, (-0.12, 0.05, 1e-3, -5e-4, 0.0))
    cams = [render.RenderCamera(f"c{k}", Rotation.from_matrix(rotation_from_gimbal(yaw, -88.0, 1.5)).as_rotvec(),
                                np.array([x, y, 60.0]), model, box(-200, -200, 200, 200))
            for k, (x, y, yaw) in enumerate([(0.0, 0.0, 3.0), (25.0, 4.0, 181.0), (-30.0, 10.0, 0.0)])]
    geobox = geobox_for_bounds((-40.0, -30.0, 40.0, 30.0), 32648, 0.1)
    win = Window(0, 0, geobox.shape[1], geobox.shape[0])

    def run(step):
        monkeypatch.setattr(render, "MAP_STEP", step)
        return render.render_tile(win, geobox, (0.0, 0.0), cams, render.Ground(0.0),
                                  lambda cid, f: img, 1.0, 3, 3.0)

    fast, exact = run(16), run(1)
    assert (fast[1] == exact[1]).mean() > 0.999 and exact[1].mean() > 0.8
    both = fast[1] & exact[1]
    diff = np.abs(fast[0] - exact[0]).max(axis=0)[both]  # grey levels of 0…255
    # only where a frame's edge falls between map nodes can a pixel's set of frames differ
    assert np.percentile(diff, 99.9) < 0.2 and (diff > 0.5).mean() < 1e-4
    assert (fast[2] == exact[2]).mean() > 0.999
    assert len(np.unique(exact[2][exact[1]])) == 3


def _strip_gps(src: Path, dst: Path) -> None:
    """Copy a DJI JPEG without any position: EXIF GPS IFD removed, XMP GpsLatitude/Longtitude
    blanked (same length, so the JPEG segment stays valid)."""
    import re

    import piexif

    data = src.read_bytes()
    data = re.sub(rb'drone-dji:GpsL(?:atitude|ongtitude)="[^"]*"', lambda m: b" " * len(m.group(0)), data)
    dst.write_bytes(data)
    exif = piexif.load(str(dst))
    exif["GPS"] = {}
    piexif.insert(piexif.dump(exif), str(dst))


@pytest.mark.slow
def test_frames_without_gps_are_chained_to_georeferenced_ones(rtk_flight, tmp_path):
    """Two frames lose their position: they are placed by image matching (solvePnP on their
    neighbours' tie points, then the adjustment) and land where the GPS-carrying ones put them."""
    import shutil

    import pandas as pd

    from belcheer.ingest import scan
    from belcheer.orthomosaic import build_orthomosaic

    sim = rtk_flight
    frames = tmp_path / "frames"
    shutil.copytree(sim.frames_dir, frames)
    lost = ["DJI_0005", "DJI_0009"]
    for name in lost:
        _strip_gps(sim.frames_dir / f"{name}.JPG", frames / f"{name}.JPG")
    survey = scan(frames)
    assert [c.id for c in survey.captures if c.pose is None] == lost
    res = build_orthomosaic(survey, tmp_path / "m.tif")
    rep = res.report
    assert rep["chained_without_gps"] == lost
    assert len(rep["frames_used"]) == sim.n_captures and len(rep["blocks"]) == 1
    assert rep["camera_shift_from_gps_m"]["DJI_0005"] is None
    poses = pd.read_csv(sim.poses_path).set_index("capture_id")
    for name in lost:
        solved = np.array(rep["camera_positions_utm"][name])
        truth = poses.loc[name, ["x", "y", "alt_abs_m"]].to_numpy(float) + np.array(sim.gps_bias_m)
        assert np.linalg.norm(solved[:2] - truth[:2]) <= 0.1, (name, solved, truth)
    _, d = _target_errors(sim, res.path)
    rel = d - d.mean(axis=0)
    assert float(np.sqrt((rel ** 2).sum(axis=1).mean())) <= 2 * sim.gsd_m


@pytest.mark.parametrize("factor", [2.0, 3.0, 4.0, 6.5])
def test_reduced_jpeg_decoding_matches_area_decimation(tmp_path, factor):
    """Frames decoded by the JPEG decoder at 1/2, 1/4 or 1/8 scale and then resized land on the
    same pixel grid as a full decode decimated by area: same shape, no sub-pixel drift."""
    import cv2

    from belcheer.models import Band, Camera, Frame, Intrinsics
    from belcheer.orthomosaic.frames import _decimate, read_rgb

    rng = np.random.default_rng(3)
    img = cv2.GaussianBlur(rng.uniform(0, 255, (1200, 1600, 3)).astype(np.float32), (0, 0), 6)
    path = tmp_path / "DJI_0001.JPG"
    cv2.imwrite(str(path), np.clip(img, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 95])
    frame = Frame(path=path, capture_id="DJI_0001", band=Band("rgb"), band_index=0,
                  camera=Camera("DJI", "FC6310"), pose=None, time=None,
                  intrinsics=Intrinsics(width_px=1600, height_px=1200, focal_mm=8.8, focal_px=1066.0))
    full = _decimate(read_rgb(frame), factor).astype(np.float32)
    fast = read_rgb(frame, factor).astype(np.float32)
    assert fast.shape == full.shape
    assert float(np.abs(fast - full).mean()) < 1.5  # DN
    win = cv2.createHanningWindow(full.shape[1::-1], cv2.CV_32F)
    (dx, dy), _ = cv2.phaseCorrelate(full[..., 1], fast[..., 1], win)
    assert abs(dx) < 0.05 and abs(dy) < 0.05  # px of the decimated grid
    grey = read_rgb(frame, factor, gray=True)
    assert grey.shape == full.shape[:2]


def test_candidate_pairs_keep_each_frames_largest_overlaps():
    """A 10×6 grid of footprints with 80 % forward and 70 % side overlap: every frame keeps its
    12 largest overlaps, the block stays connected, and the pair count grows with the frames."""
    from shapely.geometry import box

    from belcheer.orthomosaic.pairs import PairMatch, blocks, candidate_pairs

    fps = [box(x * 10.0, y * 21.0, x * 10.0 + 50.0, y * 21.0 + 70.0) for y in range(6) for x in range(10)]
    every = candidate_pairs(fps, max_neighbours=None)
    kept = candidate_pairs(fps)
    assert set(kept) < set(every)
    per_frame = np.bincount(np.array(kept).ravel(), minlength=len(fps))
    assert per_frame.max() <= 2 * 12 and per_frame.min() >= 5
    # the strongest neighbours (next along the line, next across) are never dropped
    assert (0, 1) in kept and (0, 10) in kept and (44, 45) in kept and (44, 54) in kept
    fake = [PairMatch(i, j, np.zeros((30, 2)), np.zeros((30, 2)), 30) for i, j in kept]
    assert len(blocks(len(fps), fake, 15)) == 1
    # with unknown positions a frame is tried against every other
    assert sum(1 for p in candidate_pairs(fps, always=[3]) if 3 in p) == len(fps) - 1


def test_match_all_equals_pairwise_matching(tmp_path):
    """Matching each frame's pairs against one shared descriptor index gives the same matches
    as matching pair by pair."""
    import cv2

    from belcheer.orthomosaic.features import Features
    from belcheer.orthomosaic.pairs import match_all, match_pair

    rng = np.random.default_rng(4)
    scene = cv2.GaussianBlur(rng.uniform(0, 255, (700, 1100)).astype(np.float32), (0, 0), 2.5).astype(np.uint8)
    sift = cv2.SIFT_create(nfeatures=1500)
    feats = []
    for k in range(3):
        view = scene[50:650, 100 + 150 * k: 500 + 150 * k]
        kp, desc = sift.detectAndCompute(view, None)
        feats.append(Features(f"c{k}", np.float64([p.pt for p in kp]) + [100 + 150 * k, 50], desc,
                              {"factor": 1.0}))
    pairs = [(0, 1), (0, 2), (1, 2)]
    together = match_all(feats, pairs, scheduler="synchronous")
    for m, (i, j) in zip(together, pairs, strict=True):
        single = match_pair(feats[i], feats[j], i, j)
        assert (m.i, m.j, m.candidates) == (i, j, single.candidates)
        np.testing.assert_array_equal(m.pi, single.pi)
        assert m.inliers >= 20
        # the views are crops of one image: matched points are the same scene point
        assert np.abs(m.pi - m.pj).max() < 2.0


def _textured_views(amplitude: float, shift: tuple[int, int] = (130, 45)):
    """Two overlapping grey views (600×900) of one fine random texture of ``amplitude`` grey
    levels about 92, the second shifted by ``shift`` (x, y) pixels."""
    import cv2

    rng = np.random.default_rng(18)
    tex = cv2.GaussianBlur(rng.standard_normal((700, 1100)).astype(np.float32), (0, 0), 1.5)
    scene = np.clip(92 + amplitude * tex / tex.std(), 0, 255).astype(np.uint8)
    dx, dy = shift
    return scene[20:620, 20:920], scene[20 + dy:620 + dy, 20 + dx:920 + dx]


def _detect_view(monkeypatch, view: np.ndarray, name: str):
    from types import SimpleNamespace

    from belcheer.orthomosaic import features

    monkeypatch.setattr(features, "feature_image",
                        lambda capture, max_side: (view, 1.0, {"mean": float(view.mean()), "sharpness": 1.0}))
    return features.detect(SimpleNamespace(id=name))


def test_low_contrast_texture_is_detected_again_at_lower_contrast_and_matches(monkeypatch):
    """A crop field's canopy seen from 60 m: textured but faint (σ 3 grey levels). OpenCV's
    default contrast threshold finds (almost) nothing in it; the fallback thresholds find
    enough, and they are true features: two overlapping views match at their real shift."""
    import cv2

    from belcheer.orthomosaic.build import MIN_INLIERS
    from belcheer.orthomosaic.features import FALLBACK_BELOW, MIN_FEATURES
    from belcheer.orthomosaic.pairs import match_pair

    a, b = _textured_views(3.0)
    assert len(cv2.SIFT_create(nfeatures=5000).detect(a, None)) < MIN_FEATURES  # the old detector
    fa, fb = _detect_view(monkeypatch, a, "a"), _detect_view(monkeypatch, b, "b")
    for f in (fa, fb):
        assert len(f.points) >= FALLBACK_BELOW
        assert f.quality["contrast_threshold"] < 0.04
    m = match_pair(fa, fb, 0, 1)
    assert m.inliers >= MIN_INLIERS
    off = m.pi - m.pj - np.array([130.0, 45.0])  # a point at x in a is at x − shift in b
    assert np.mean(np.hypot(*off.T) < 1.0) >= 0.9


def test_normal_texture_takes_the_default_detector_only(monkeypatch):
    """Frames with ordinary contrast are detected exactly as before: one SIFT pass at OpenCV's
    default contrast threshold, the same keypoints."""
    import cv2

    from belcheer.orthomosaic.features import FALLBACK_BELOW

    a, _ = _textured_views(25.0)
    kps = cv2.SIFT_create(nfeatures=5000).detect(a, None)
    assert len(kps) >= FALLBACK_BELOW
    f = _detect_view(monkeypatch, a, "a")
    assert f.quality["contrast_threshold"] == 0.04
    np.testing.assert_allclose(f.points, np.float64([k.pt for k in kps]), atol=1e-3)


def test_many_queries_matched_to_one_keypoint_count_once():
    """A frame of faint ground keeps a few distinct keypoints (a target) among thousands of
    noise-like ones: the ratio test sends crowds of another frame's keypoints to those few.
    Each keypoint of the second frame is matched at most once (by its nearest query), so such
    a crowd cannot pass USAC as a pair's "inliers"."""
    from belcheer.orthomosaic.features import Features
    from belcheer.orthomosaic.pairs import match_pair

    rng = np.random.default_rng(5)

    def sift_like(n):
        d = rng.uniform(0, 1, (n, 128)).astype(np.float32)
        return d / np.linalg.norm(d, axis=1, keepdims=True) * 512

    hub = sift_like(1)
    crowd = hub + rng.normal(0, 2, (40, 128)).astype(np.float32)
    fa = Features("a", rng.uniform(0, 1000, (40, 2)), crowd, {"factor": 1.0})
    fb = Features("b", rng.uniform(0, 1000, (601, 2)), np.vstack([hub, sift_like(600)]), {"factor": 1.0})
    m = match_pair(fa, fb, 0, 1)
    assert m.candidates == 1 and m.inliers == 0


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="malloc_trim is glibc's")
def test_trim_memory_returns_freed_thread_memory():
    """Buffers a worker thread allocated and freed stay in its arena until trimmed. Measured in
    a fresh interpreter: in the test process, earlier tests decide what the arenas hold."""
    import subprocess
    import sys

    code = """
import threading
from belcheer.memory import trim_memory

def rss_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024

def churn():
    keep = [bytearray(64 * 1024) for _ in range(4000)]  # 250 MB in 64 kB blocks
    del keep[:-1]  # the last block pins the top of the heap: no automatic return

t = threading.Thread(target=churn)
t.start()
t.join()
before = rss_mb()
assert trim_memory()
print(before - rss_mb())
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) > 100  # MB given back to the system


def test_frame_cache_is_bounded_by_memory():
    """The frame cache keeps the most recently used frames within its memory budget (never
    fewer than ``min_items``) and decodes a frame again only after it was evicted."""
    from belcheer.orthomosaic.frames import FrameCache

    loads: list[str] = []

    def load(cid: str, factor: float) -> np.ndarray:
        loads.append(cid)
        return np.zeros((1000, 1000, 3), np.uint8)  # 3 MB

    cache = FrameCache(load, budget_mb=10.0, min_items=2)
    for cid in ["a", "b", "c", "a", "d", "e", "a", "b"]:
        assert cache.get(cid, 1.0).shape == (1000, 1000, 3)
    # 3 frames fit in 10 MB: "a" stays hot, "b" was evicted by "d"/"e"
    assert loads == ["a", "b", "c", "d", "e", "b"]
    big = FrameCache(lambda cid, f: np.zeros((3000, 3000, 3), np.uint8), budget_mb=10.0, min_items=2)
    for cid in "xyz":
        big.get(cid, 1.0)
    assert len(big._items) == 2  # over budget, but at least min_items


@pytest.mark.slow
def test_a_frame_without_gps_that_keeps_too_few_tie_points_is_dropped_with_the_reason(
        rtk_flight, tmp_path, monkeypatch):
    """A frame without GPS whose tie points the adjustment nearly all rejects (here: all but 5
    cut from the adjustment's result) has nothing else to place it: it is dropped with the
    reason, not rendered from a meaningless pose nor reported adjusted; the rest is mapped."""
    import shutil
    from dataclasses import replace

    import belcheer.orthomosaic.build as build
    from belcheer.ingest import scan

    sim = rtk_flight
    frames = tmp_path / "frames"
    shutil.copytree(sim.frames_dir, frames)
    _strip_gps(sim.frames_dir / "DJI_0005.JPG", frames / "DJI_0005.JPG")
    survey = scan(frames)
    real_adjust = build.bundle_adjust

    def weak(*args, **kwargs):
        adj = real_adjust(*args, **kwargs)
        # the one camera of the adjustment without a GPS prior
        (q,) = np.flatnonzero(~np.isfinite(args[2]).all(axis=1))
        mine = np.flatnonzero(adj.obs_cam == q)
        assert len(mine) > 100
        keep = np.ones(len(adj.obs_cam), bool)
        keep[mine[5:]] = False
        return replace(adj, obs_cam=adj.obs_cam[keep], residuals_px=adj.residuals_px[keep])

    monkeypatch.setattr(build, "bundle_adjust", weak)
    res = build.build_orthomosaic(survey, tmp_path / "m.tif")
    rep = res.report
    frame = next(f for f in rep["frames"] if f["capture"] == "DJI_0005")
    assert frame["status"] == "dropped"
    assert "no GPS position, and only 5 of its tie-point observations" in frame["reason"]
    assert rep["frame_status"]["DJI_0005"] == "dropped" and rep["chained_without_gps"] == []
    assert "DJI_0005" not in rep["camera_positions_utm"]
    assert len(rep["frames_adjusted"]) == sim.n_captures - 1

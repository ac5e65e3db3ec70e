"""The synthetic flight simulator: determinism, headers, forward model, ground truth, ingest."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math

import cv2
import exifread
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
import tifffile
from defusedxml import ElementTree as ET
from rasterio.mask import mask as rio_mask
from shapely.geometry import Point

from belcheer.models import PARCEL_COLUMNS
from belcheer.simulate import simulate
from belcheer.simulate.cameras import CAMERAS, rotation_world_from_camera
from belcheer.simulate.spectra import Cover
from belcheer.simulate.truth import biomass_from_ndvi

# small, cheap flights: altitude_m also shrinks the scene margin
RGB_KW = {"camera": "rgb", "area_ha": 0.1, "altitude_m": 70.0}
MS_KW = {"camera": "rededge", "area_ha": 0.08, "altitude_m": 100.0}
GPS_SIGMA = 2.0


@pytest.fixture(scope="module")
def rgb_sim(tmp_path_factory):
    return simulate(tmp_path_factory.mktemp("rgb") / "sim", seed=3, **RGB_KW)


@pytest.fixture(scope="module")
def ms_sim(tmp_path_factory):
    return simulate(tmp_path_factory.mktemp("ms") / "sim", seed=4, **MS_KW)


def _xmp(data: bytes) -> dict[str, str]:
    """XMP packet → {local name: text or attribute value} (lists joined by commas)."""
    start, end = data.find(b"<x:xmpmeta"), data.find(b"</x:xmpmeta>")
    root = ET.fromstring(data[start:end + len(b"</x:xmpmeta>")])
    out: dict[str, str] = {}
    for el in root.iter():
        for k, v in el.attrib.items():
            out[k.split("}")[-1]] = v
        name = el.tag.split("}")[-1]
        items = [li.text for li in el.iter() if li.tag.endswith("}li")]
        if items and name not in ("Seq", "li"):
            out[name] = ",".join(items)
        elif el.text and el.text.strip():
            out[name] = el.text.strip()
    return out


def _poses(sim) -> pd.DataFrame:
    return pd.read_csv(sim.poses_path).set_index("capture_id")


def _frame_bytes(sim) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(sim.frames_dir.iterdir())}


# -- determinism and scenes ---------------------------------------------------------------------

def test_same_seed_same_bytes_and_other_seed_same_place(rgb_sim, tmp_path, capsys):
    from belcheer.cli import main

    # the same survey again, through the command line
    assert main(["simulate", str(tmp_path / "again"), "--camera", "rgb", "--seed", "3",
                 "--area-ha", str(RGB_KW["area_ha"]), "--altitude", str(RGB_KW["altitude_m"]),
                 "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n_captures"] == rgb_sim.n_captures and info["soum_en"] == "Bayangol"
    again = tmp_path / "again"
    assert {p.name: p.read_bytes() for p in sorted((again / "frames").iterdir())} == _frame_bytes(rgb_sim)
    with rasterio.open(info["reflectance_path"]) as a, rasterio.open(rgb_sim.reflectance_path) as b:
        assert np.array_equal(a.read(), b.read())
    assert (again / "truth" / "poses.csv").read_bytes() == rgb_sim.poses_path.read_bytes()
    assert (again / "truth" / "parcel_truth.csv").read_bytes() == rgb_sim.parcel_truth_path.read_bytes()

    # another flight seed and a later, degraded survey of the same scene
    later = simulate(tmp_path / "later", seed=5, scene_seed=3, degradation=0.8,
                     date=dt.date(2026, 7, 25), **RGB_KW)
    fa, fb = _frame_bytes(later), _frame_bytes(rgb_sim)
    assert fa.keys() == fb.keys() and all(fa[k] != fb[k] for k in fa)
    moved = _poses(later)[["gps_x", "gps_y"]].to_numpy() - _poses(rgb_sim)[["gps_x", "gps_y"]].to_numpy()
    assert np.abs(moved).max() > 0.5
    p0, p1 = gpd.read_file(rgb_sim.parcels_path), gpd.read_file(later.parcels_path)
    assert list(p0.parcel_id) == list(p1.parcel_id)
    assert all(a.equals_exact(b, 1e-9) for a, b in zip(p0.geometry, p1.geometry, strict=True))
    with rasterio.open(rgb_sim.landcover_path) as a, rasterio.open(later.landcover_path) as b:
        la, lb = a.read(1), b.read(1)
    fixed = (la != Cover.PASTURE) & (la != Cover.BARE)
    assert np.array_equal(la[fixed], lb[fixed])          # crops, water, camp, targets stay put
    t0 = pd.read_csv(rgb_sim.parcel_truth_path).set_index("parcel_id")
    t1 = pd.read_csv(later.parcel_truth_path).set_index("parcel_id")
    d = t1.ndvi - t0.ndvi
    deg = t1.degraded & (t1.land_use == "pasture")
    ok = ~t1.degraded & (t1.land_use == "pasture")
    assert deg.any() and ok.any()
    assert d[deg].max() < -0.05
    assert d[deg].max() < d[ok].min() - 0.03


# -- headers ------------------------------------------------------------------------------------

def test_dji_exif_and_xmp_read_back(rgb_sim):
    poses = _poses(rgb_sim)
    cam = CAMERAS["rgb"]
    files = sorted(rgb_sim.frames_dir.glob("DJI_*.JPG"))
    assert len(files) == rgb_sim.n_captures == len(poses)
    for f in files:
        with open(f, "rb") as fh:
            tags = exifread.process_file(fh, details=False)
        row = poses.loc[f.stem]
        assert str(tags["Image Make"]) == "DJI" and str(tags["Image Model"]) == "FC6310"
        lat = [float(x) for x in tags["GPS GPSLatitude"].values]
        lon = [float(x) for x in tags["GPS GPSLongitude"].values]
        assert lat[0] + lat[1] / 60 + lat[2] / 3600 == pytest.approx(row.gps_lat, abs=1e-7)
        assert lon[0] + lon[1] / 60 + lon[2] / 3600 == pytest.approx(row.gps_lon, abs=1e-7)
        assert float(tags["GPS GPSAltitude"].values[0]) == pytest.approx(row.gps_alt_abs_m, abs=1e-3)
        assert float(tags["EXIF FocalLength"].values[0]) == pytest.approx(8.8)
        assert int(str(tags["EXIF FocalLengthIn35mmFilm"])) == 24
        w = int(str(tags["EXIF ExifImageWidth"]))
        assert (w, int(str(tags["EXIF ExifImageLength"]))) == (1600, 1067)
        # focal plane resolution (px/cm) must give the real 13.2 mm sensor width
        fpx = float(tags["EXIF FocalPlaneXResolution"].values[0])
        assert w / fpx * 10 == pytest.approx(13.2, abs=0.01)
        local = dt.datetime.fromisoformat(row.time_utc) + dt.timedelta(hours=8)
        assert str(tags["EXIF DateTimeOriginal"]) == local.strftime("%Y:%m:%d %H:%M:%S")
        x = _xmp(f.read_bytes()[:200_000])
        assert float(x["RelativeAltitude"]) == pytest.approx(row.gps_alt_rel_m, abs=0.006)
        assert float(x["AbsoluteAltitude"]) == pytest.approx(row.gps_alt_abs_m, abs=0.006)
        assert float(x["GimbalPitchDegree"]) == pytest.approx(row.rec_pitch, abs=0.006)
        assert float(x["GimbalYawDegree"]) % 360 == pytest.approx(row.rec_yaw % 360, abs=0.006)
        dewarp = [float(v) for v in x["DewarpData"].split(";")[1].split(",")]
        assert dewarp[0] == pytest.approx(cam.focal_px, abs=1e-5)
        assert dewarp[4:] == pytest.approx(list(cam.distortion), abs=1e-9)
    assert b'xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/"' in files[0].read_bytes()[:200_000]
    assert cam.focal_px == pytest.approx(1066.667, abs=1e-3)


def test_micasense_tiffs_read_back(ms_sim):
    poses = _poses(ms_sim)
    assert poses.is_panel.iloc[0] and poses.index[0] == "IMG_0000"
    for cid in poses.index:
        names, waves = [], []
        for b in range(1, 6):
            path = ms_sim.frames_dir / f"{cid}_{b}.tif"
            with tifffile.TiffFile(path) as t:
                page = t.pages[0]
                assert page.shape == (960, 1280) and page.dtype == np.uint16
                assert page.tags["Make"].value == "MicaSense" and page.tags["Model"].value == "RedEdge-M"
                assert tuple(page.tags["BlackLevel"].value) == (4800,) * 4
                gps = page.tags["GPSTag"].value
                x = _xmp(page.tags["XMP"].value)
                assert b"np." not in bytes(page.tags["XMP"].value)      # plain numbers only
            num, den = gps["GPSLatitude"][0::2], gps["GPSLatitude"][1::2]
            lat = sum(n / d / 60**i for i, (n, d) in enumerate(zip(num, den, strict=True)))
            assert lat == pytest.approx(poses.loc[cid, "gps_lat"], abs=1e-8)
            names.append(x["BandName"])
            waves.append(float(x["CentralWavelength"]))
            assert len(x["RadiometricCalibration"].split(",")) == 3
            assert len(x["VignettingPolynomial"].split(",")) == 6
            assert float(x["HorizontalIrradiance"]) > 0.3
        assert names == ["Blue", "Green", "Red", "NIR", "Red edge"]
        assert waves == [475, 560, 668, 840, 717]
    irr = poses.loc[poses.index[1:], "irradiance_red"]
    assert irr.max() / irr.min() > 1.01            # the passing cloud is seen by the DLS


# -- forward model ------------------------------------------------------------------------------

def _truth_bilinear(src, xs: np.ndarray, ys: np.ndarray, band: int) -> np.ndarray:
    arr = src.read(band)
    col = (xs - src.transform.c) / src.transform.a - 0.5
    row = (src.transform.f - ys) / -src.transform.e - 0.5
    return cv2.remap(arr, col.astype(np.float32), row.astype(np.float32), cv2.INTER_LINEAR)


def _window_ground_points(cam, row, u0: int, v0: int, half: int = 6):
    """Pixel indices of a (2·half+1)² window and the ground points (UTM) of their centres,
    from the true pose, through OpenCV's own undistortion (not the renderer's ray grid)."""
    vv, uu = np.mgrid[v0 - half:v0 + half + 1, u0 - half:u0 + half + 1]
    K = np.array(cam.intrinsics().matrix())
    pts = np.stack([uu.ravel() + 0.5, vv.ravel() + 0.5], 1).reshape(-1, 1, 2).astype(np.float64)
    rays = cv2.undistortPoints(pts, K, np.array(cam.distortion)).reshape(-1, 2)
    R = rotation_world_from_camera(row.yaw, row.pitch, row.roll)
    d = R @ np.vstack([rays.T, np.ones(len(rays))])
    t = (925.0 - row.alt_abs_m) / d[2]
    return vv, uu, row.x + t * d[0], row.y + t * d[1]


WINDOWS = ((640, 480), (160, 820), (1150, 120))   # centre, and corners where vignetting,
                                                  # distortion and the row gradient are strong


def test_frame_pixels_invert_to_truth_reflectance(ms_sim):
    """DN → radiance with the constants parsed from each file's own headers → reflectance
    (π L / E) equals the truth at the ground points of those pixels (true pose), within noise."""
    cam = CAMERAS["rededge"]
    poses = _poses(ms_sim)
    errors = []
    with rasterio.open(ms_sim.reflectance_path) as truth:
        order = list(truth.descriptions)
        for cid, row in poses[~poses.is_panel].iterrows():
            wins = [_window_ground_points(cam, row, u, v) for u, v in WINDOWS]
            for b, name in enumerate(cam.bands, 1):
                with tifffile.TiffFile(ms_sim.frames_dir / f"{cid}_{b}.tif") as tf:
                    page = tf.pages[0]
                    dn = page.asarray()
                    x = _xmp(page.tags["XMP"].value)
                    exif = page.tags["ExifTag"].value
                a1, a2, a3 = (float(v) for v in x["RadiometricCalibration"].split(","))
                te = exif["ExposureTime"][0] / exif["ExposureTime"][1]
                gain = exif["ISOSpeed"] / 100
                coeffs = [float(c) for c in x["VignettingPolynomial"].split(",")]
                cx, cy = (float(c) for c in x["VignettingCenter"].split(","))
                for vv, uu, gx, gy in wins:
                    r = np.hypot(uu - cx, vv - cy)
                    poly = 1 + sum(c * r ** (i + 1) for i, c in enumerate(coeffs))
                    row_gain = 1.0 / (1.0 + a2 * vv / te - a3 * vv)
                    rad = (1 / poly) * row_gain * (dn[vv, uu] - 4800.0) / (gain * te) * a1 / 2**16
                    refl = math.pi * rad / float(x["HorizontalIrradiance"])
                    want = _truth_bilinear(truth, gx, gy, order.index(name) + 1)
                    errors.append(refl.mean() / want.mean() - 1)
    errors = np.abs(errors)
    assert np.median(errors) < 0.01 and errors.max() < 0.03, errors


def test_indices_stage_inverts_the_simulated_camera(ms_sim):
    """The project's own chain — ingest headers, indices radiometry, sunlight sensor — turns
    simulated DN back into the true reflectance at the image centre."""
    from belcheer.indices.radiometry import radiance, sensor_irradiance
    from belcheer.ingest import scan

    survey = scan(ms_sim.frames_dir, quality=False)
    poses = _poses(ms_sim)
    cam = CAMERAS["rededge"]
    errors = []
    with rasterio.open(ms_sim.reflectance_path) as truth:
        order = list(truth.descriptions)
        for cap in survey.flight_captures:
            vv, uu, gx, gy = _window_ground_points(cam, poses.loc[cap.id], 640, 480)
            for f in cap.frames:
                dn = tifffile.imread(f.path)
                refl = math.pi * radiance(f, dn)[vv, uu] / sensor_irradiance(f)[0]
                want = _truth_bilinear(truth, gx, gy, order.index(f.band.name) + 1)
                errors.append(refl.mean() / want.mean() - 1)
    assert len(errors) == 5 * (ms_sim.n_captures - 1)
    assert np.median(np.abs(errors)) < 0.01 and np.max(np.abs(errors)) < 0.03, errors


# -- ground truth -------------------------------------------------------------------------------

def test_truth_rasters(rgb_sim):
    from rio_cogeo.cogeo import cog_validate

    with rasterio.open(rgb_sim.reflectance_path) as src:
        assert src.count == 5 and src.dtypes[0] == "float32" and src.crs.to_epsg() == 32648
        assert src.descriptions == ("blue", "green", "red", "rededge", "nir")
        assert [float(src.tags(i)["wavelength_nm"]) for i in range(1, 6)] == [475, 560, 668, 717, 840]
        red, nir = src.read(3), src.read(5)
    assert cog_validate(str(rgb_sim.reflectance_path))[0]
    with rasterio.open(rgb_sim.ndvi_path) as src:
        nd = src.read(1)
    assert np.allclose(nd, (nir - red) / (nir + red), atol=1e-6)
    cps = pd.read_csv(rgb_sim.checkpoints_path)
    assert len(cps) >= 5
    with rasterio.open(rgb_sim.reflectance_path) as src:
        for _, cp in cps.iterrows():
            ne, nw = (v[0] for v in src.sample([(cp.x + 0.3, cp.y + 0.3), (cp.x - 0.3, cp.y + 0.3)], 2))
            assert ne < 0.1 < 0.4 < nw                # black/white checker corner at the point
    # fractional cover truth: green + dry + bare = 1 on ground, NaN on water, gers, targets
    with rasterio.open(rgb_sim.cover_path) as src:
        assert src.descriptions == ("green", "dry", "bare")
        cov = src.read()
    ground = np.isfinite(cov[0])
    assert 0.9 < ground.mean() < 1.0
    assert np.allclose(cov[:, ground].sum(axis=0), 1.0, atol=3e-4)
    pt = pd.read_csv(rgb_sim.parcel_truth_path)
    assert np.allclose(pt[["green_cover", "dry_cover", "bare_cover"]].sum(axis=1), 1.0, atol=1e-3)
    past = pt[pt.land_use == "pasture"]
    assert (past["dry_cover"] > 0).all() and (past["green_cover"] > past["dry_cover"]).all()  # July


def test_parcels_and_parcel_truth(rgb_sim):
    parcels = gpd.read_file(rgb_sim.parcels_path)
    assert parcels.crs.to_epsg() == 32648
    assert set(PARCEL_COLUMNS) <= set(parcels.columns)
    assert 8 <= len(parcels) <= 15 and 2 <= (parcels.land_use == "cropland").sum() <= 4
    assert parcels.is_valid.all() and parcels.parcel_id.is_unique
    assert "Хужирт" in set(parcels.name) or any("Шар нуруу" == n for n in parcels.name) or \
        all(any("\u0400" <= ch <= "\u04ff" for ch in n) for n in parcels.name)
    assert set(parcels.soum) == {"Баянгол"} and set(parcels.aimag) == {"Сэлэнгэ"}
    assert parcels.area_ha.to_numpy() == pytest.approx(parcels.geometry.area.to_numpy() / 1e4)
    truth = pd.read_csv(rgb_sim.parcel_truth_path)
    assert list(truth.name) == list(parcels.name)            # Cyrillic intact through CSV too
    with rasterio.open(rgb_sim.reflectance_path) as src, rasterio.open(rgb_sim.ndvi_path) as ndsrc:
        refl, nd_all, tr = src.read(), ndsrc.read(1), src.transform
        for (_, p), (_, t) in zip(parcels.iterrows(), truth.iterrows(), strict=True):
            got = np.array([t.blue, t.green, t.red, t.rededge, t.nir, t.ndvi])
            if p.land_use == "cropland":
                # crop fields are axis-aligned rectangles: exact pixel coverage fractions by hand
                x0, y0, x1, y1 = p.geometry.bounds
                px = tr.c + np.arange(refl.shape[2]) * tr.a
                py = tr.f + np.arange(refl.shape[1]) * tr.e           # top edge of each row
                fx = np.clip(np.minimum(px + tr.a, x1) - np.maximum(px, x0), 0, None)
                fy = np.clip(np.minimum(py, y1) - np.maximum(py + tr.e, y0), 0, None)
                wgt = fy[:, None] * fx[None, :]
                want = [float((b * wgt).sum() / wgt.sum()) for b in (*refl, nd_all)]
                assert np.allclose(got, want, atol=1e-5)
            else:  # pixel-centre selection: close to the area-weighted mean of a big polygon
                data, _ = rio_mask(src, [p.geometry], crop=True, filled=False)
                nd, _ = rio_mask(ndsrc, [p.geometry], crop=True, filled=False)
                want = [*data.reshape(5, -1).mean(axis=1), float(nd.mean())]
                assert np.allclose(got, want, atol=4e-3)
    crop = truth[truth.land_use == "cropland"].ndvi
    past = truth[truth.land_use == "pasture"].ndvi
    assert crop.min() > 0.6 and crop.min() > past.median()


def test_quadrats_training_and_landcover(rgb_sim):
    q = pd.read_csv(rgb_sim.quadrats_path)
    assert len(q) >= 12
    with rasterio.open(rgb_sim.ndvi_path) as src:
        for _, r in q.head(5).iterrows():
            half = r.size_m / 2
            win = rasterio.windows.from_bounds(r.x - half, r.y - half, r.x + half, r.y + half,
                                               src.transform)
            assert float(src.read(1, window=win).mean()) == pytest.approx(r.ndvi_true, abs=1e-5)
    assert np.allclose(q.biomass_true_kg_ha, biomass_from_ndvi(q.ndvi_true))
    log_err = np.log(q.dry_weight_kg_ha / q.biomass_true_kg_ha)
    assert 0.04 < log_err.std() < 0.25 and abs(log_err.mean()) < 0.12
    train = gpd.read_file(rgb_sim.training_path)
    assert set(train["class"]) == {"cropland", "pasture", "bare", "water", "built"}
    codes = {"pasture": Cover.PASTURE, "cropland": Cover.CROPLAND, "bare": Cover.BARE,
             "water": Cover.WATER, "built": Cover.BUILT}
    with rasterio.open(rgb_sim.landcover_path) as src:
        for _, t in train.iterrows():
            data, _ = rio_mask(src, [t.geometry], crop=True, filled=False)
            vals = data.compressed()
            assert (vals == codes[t["class"]]).mean() > 0.9, t["class"]
    params = json.loads(rgb_sim.simulation_json.read_text(encoding="utf-8"))
    assert params["simulation"]["seed"] == 3 and params["scene"]["epsg"] == 32648
    from belcheer.simulate import load_simulation

    assert load_simulation(rgb_sim.out_dir) == rgb_sim


# -- through ingest -----------------------------------------------------------------------------

def _horizontal_errors(survey, poses: pd.DataFrame) -> np.ndarray:
    from pyproj import Transformer

    to_utm = Transformer.from_crs(4326, 32648, always_xy=True)
    errs = []
    for c in survey.flight_captures:
        x, y = to_utm.transform(c.pose.lon, c.pose.lat)
        row = poses.loc[c.id]
        assert math.hypot(x - row.gps_x, y - row.gps_y) < 0.01       # headers hold what was written
        errs.append(math.hypot(x - row.x, y - row.y))
    return np.array(errs)


def test_ingest_reads_simulated_rgb(rgb_sim):
    from belcheer.ingest import scan

    s = scan(rgb_sim.frames_dir)
    assert s.epsg == 32648 and len(s.flight_captures) == rgb_sim.n_captures
    assert [b.name for b in s.bands] == ["rgb"]
    errs = _horizontal_errors(s, _poses(rgb_sim))
    assert errs.max() < 4 * GPS_SIGMA
    assert 0.3 * GPS_SIGMA < errs.mean() < 2.5 * GPS_SIGMA * math.sqrt(math.pi / 2)
    gsd = np.median([c.gsd_m for c in s.flight_captures])
    assert gsd == pytest.approx(CAMERAS["rgb"].gsd_m(70.0), rel=0.05)


def test_ingest_reads_simulated_rededge(ms_sim):
    from belcheer.ingest import scan

    s = scan(ms_sim.frames_dir)
    assert [c.id for c in s.panel_captures] == ["IMG_0000"]
    assert len(s.flight_captures) == ms_sim.n_captures - 1
    assert [(b.name, b.center_nm) for b in s.bands] == [
        ("blue", 475), ("green", 560), ("red", 668), ("nir", 840), ("rededge", 717)]
    poses = _poses(ms_sim)
    errs = _horizontal_errors(s, poses)
    assert errs.max() < 4 * GPS_SIGMA
    f = s.flight_captures[0].frame("red")
    assert f.radiometry.horizontal_irradiance == pytest.approx(poses.loc[f.capture_id, "irradiance_red"])
    assert f.intrinsics.distortion == pytest.approx(CAMERAS["rededge"].distortion)


# -- CLI and the real map -----------------------------------------------------------------------

def test_cli_rejects_bad_options(tmp_path):
    from belcheer.cli import main

    assert main(["simulate", str(tmp_path / "x"), "--camera", "sony"]) == 2
    assert main(["simulate", str(tmp_path / "x"), "--date", "15/07/2026"]) == 2
    assert main(["simulate", str(tmp_path / "x"), "--degradation", "2"]) == 2
    assert main(["simulate", str(tmp_path / "x"), "--area-ha", "0.001"]) == 2
    assert main(["simulate", str(tmp_path / "x"), "--lake-fraction", "0.9"]) == 2
    assert main(["simulate", str(tmp_path / "x"), "--texture", "rough"]) == 2
    assert main(["simulate", str(tmp_path / "x"), "--platform", "helicopter"]) == 2
    assert main(["simulate", str(tmp_path / "x"), "--blocks", "3"]) == 2
    # a lake under 60 % of a tiny survey's frames would flood all its pasture
    assert main(["simulate", str(tmp_path / "x"), "--lake-fraction", "0.6", "--area-ha", "0.05",
                 "--altitude", "35"]) == 2
    assert main(["simulate", str(tmp_path / "x"), "--camera", "rededge", "--platform", "fixed-wing"]) == 2
    assert not (tmp_path / "x" / "frames").exists()


def test_consecutive_frames_match(rgb_sim):
    """Frames carry texture enough for feature matching: ORB matches between two overlapping
    frames fit one homography with many inliers."""
    a = cv2.imread(str(rgb_sim.frames_dir / "DJI_0001.JPG"), cv2.IMREAD_GRAYSCALE)
    b = cv2.imread(str(rgb_sim.frames_dir / "DJI_0002.JPG"), cv2.IMREAD_GRAYSCALE)
    orb = cv2.ORB_create(3000)
    ka, da = orb.detectAndCompute(a, None)
    kb, db = orb.detectAndCompute(b, None)
    assert len(ka) > 2000 and len(kb) > 2000
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(da, db)
    src = np.float32([ka[m.queryIdx].pt for m in matches])
    dst = np.float32([kb[m.trainIdx].pt for m in matches])
    H, inl = cv2.findHomography(src, dst, cv2.RANSAC, 3.0)
    assert int(inl.sum()) > 150
    # the second frame is ~17.5 m further north on the same line (image top = north): the
    # ground seen at the first frame's centre appears lower in the second
    cx, cy = cv2.perspectiveTransform(np.float32([[[800, 533]]]), H)[0, 0]
    assert abs(cx - 800) < 60 and 150 < cy - 533 < 330


@pytest.mark.real
def test_scene_centre_lies_in_recorded_soum(real_data):
    from belcheer.simulate import layout

    adm2 = gpd.read_file(real_data / "mongolia_admin" / "adm_2.geojson")
    hit = adm2[adm2.contains(Point(*layout.CENTER_LONLAT))]
    assert len(hit) == 1
    assert hit.ADM2_EN.iloc[0] == layout.SOUM_EN and hit.ADM1_EN.iloc[0] == layout.AIMAG_EN
    from belcheer.crs import utm_epsg

    assert utm_epsg(*layout.CENTER_LONLAT) == layout.EPSG == 32648


def test_radiometric_forward_models_invert():
    """Pure functions: DN from reflectance and back, for both cameras (no files)."""
    from belcheer.simulate.cameras import vignetting_poly
    from belcheer.simulate.radiometry import (
        BandCalibration,
        exposure_for,
        micasense_dn,
        micasense_radiance,
        rgb_dn,
        rgb_reflectance,
    )

    rng = np.random.default_rng(0)
    ms = CAMERAS["rededge"]
    poly = vignetting_poly(ms, 3)
    assert poly[480, 642] == pytest.approx(1.0, abs=1e-4) and poly[0, 0] < 0.85
    rho = np.full((960, 1280), 0.3)
    cal = BandCalibration(2.4e-4, 1e-7, 1.1e-6, exposure_for(0.65, 1.0, 2.4e-4))
    dn = micasense_dn(rho, 1.0, cal, poly, rng)
    assert dn.dtype == np.uint16 and np.all(dn % 16 == 0) and dn[0, 0] < dn[480, 640]
    back = math.pi * micasense_radiance(dn, cal, poly) / 1.0
    assert back.mean() == pytest.approx(0.3, rel=2e-3) and back.std() < 0.01
    rgbcam = CAMERAS["rgb"]
    vp = vignetting_poly(rgbcam, 0)
    refl = np.stack([np.full(vp.shape, v, np.float32) for v in (0.05, 0.09, 0.04)])
    img = rgb_dn(refl, 0.9, vp, rng)
    assert img.shape == (1067, 1600, 3) and img[533, 800, 1] > img[533, 800, 2]
    est = rgb_reflectance(img, 0.9, vp)
    assert np.allclose(est.reshape(3, -1).mean(axis=1), (0.05, 0.09, 0.04), rtol=0.03)


@pytest.mark.parametrize(("camera", "area_ha", "low", "high"),
                         [("rgb", 3.0, 30, 60), ("rededge", 2.0, 30, 60),
                          ("rgb", 10.0, 100, 160), ("rededge", 5.0, 100, 160)])
def test_flight_plan_sizes_and_coverage(camera, area_ha, low, high):
    """Default flights hold 30–60 captures, the benchmark areas ≥ 100, and the nominal
    footprints cover the whole area with the planned overlaps."""
    from shapely.geometry import box
    from shapely.ops import unary_union

    from belcheer.simulate.flight import plan_flight
    from belcheer.simulate.run import DEFAULT_ALTITUDE_M

    cam = CAMERAS[camera]
    alt = DEFAULT_ALTITUDE_M[camera]
    half = math.sqrt(area_ha * 1e4) / 2
    plan = plan_flight((0.0, 0.0), half, cam, alt)
    n = len(plan.line_x) * len(plan.stations)
    assert low <= n <= high
    fw, fh = cam.footprint_m(alt)
    assert np.diff(plan.line_x).max() <= fw * (1 - 0.65) + 1e-9
    assert np.diff(plan.stations).max() <= fh * (1 - 0.75) + 1e-9
    cover = unary_union([box(x - fw / 2, y - fh / 2, x + fw / 2, y + fh / 2)
                         for x in plan.line_x for y in plan.stations])
    assert cover.contains(box(-half, -half, half, half))


# -- harder surveys (issue 18): lake, low texture, fixed wing, two blocks -----------------------

def _sift_features(frames_dir, names=None):
    """SIFT keypoints and descriptors of the frames (all, or the capture ids ``names``)."""
    sift = cv2.SIFT_create()
    files = sorted(frames_dir.glob("*.JPG")) if names is None else [frames_dir / f"{n}.JPG" for n in names]
    return [sift.detectAndCompute(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE), None) for f in files]


def _verified_matches(fa, fb) -> int:
    """Ratio-test SIFT matches that fit one fundamental matrix (RANSAC, 2 px)."""
    (ka, da), (kb, db) = fa, fb
    if da is None or db is None or len(ka) < 8 or len(kb) < 8:
        return 0
    good = [m for m, n in cv2.BFMatcher(cv2.NORM_L2).knnMatch(da, db, k=2) if m.distance < 0.8 * n.distance]
    if len(good) < 8:
        return 0
    src = np.float32([ka[m.queryIdx].pt for m in good])
    dst = np.float32([kb[m.trainIdx].pt for m in good])
    _, inl = cv2.findFundamentalMat(src, dst, cv2.FM_RANSAC, 2.0, 0.999)
    return 0 if inl is None else int(inl.sum())


def test_low_texture_steppe_has_few_but_matchable_features(rgb_sim, tmp_path):
    low = simulate(tmp_path / "low", seed=3, texture="low", **RGB_KW)
    assert json.loads(low.simulation_json.read_text())["scene"]["texture"] == "low"
    with rasterio.open(rgb_sim.landcover_path) as a, rasterio.open(low.landcover_path) as b:
        la, lb = a.read(1), b.read(1)
    fixed = (la != Cover.PASTURE) & (la != Cover.BARE)
    assert np.array_equal(la[fixed], lb[fixed])              # the same place, only its texture
    names = ["DJI_0001", "DJI_0002", "DJI_0003", "DJI_0004"]
    normal_f, low_f = _sift_features(rgb_sim.frames_dir, names[:2]), _sift_features(low.frames_dir, names)
    n_normal = np.array([len(k) for k, _ in normal_f])
    n_low = np.array([len(k) for k, _ in low_f])
    assert n_normal.min() > 2500  # ≈ 2 900–3 200 keypoints per normal frame
    assert 150 <= n_low.min() and np.median(n_low) <= 0.2 * np.median(n_normal)
    verified = [_verified_matches(a, b) for a, b in itertools.pairwise(low_f)]
    assert min(verified) >= 15


@pytest.fixture(scope="module")
def lake_sim(tmp_path_factory):
    return simulate(tmp_path_factory.mktemp("lake") / "sim", seed=8, camera="rgb", area_ha=0.3,
                    altitude_m=45.0, lake_fraction=0.15)


def test_lake_lies_under_the_asked_share_of_frames(lake_sim):
    from belcheer.simulate.flight import footprint

    poses = _poses(lake_sim)
    assert len(poses) == lake_sim.n_captures >= 20
    over = poses.over_water.to_numpy(bool)
    assert abs(over.mean() - 0.15) <= 0.08 and over.sum() >= 2
    assert (poses.water_share[over] >= 0.8).all() and (poses.water_share[~over] < 0.8).all()
    params = json.loads(lake_sim.simulation_json.read_text())
    assert params["simulation"]["lake_fraction"] == 0.15
    lake = params["scene"]["lake"]
    assert lake["area_m2"] > 1000
    # the truth raster holds the lake under those frames' footprints, and no target in it
    with rasterio.open(lake_sim.landcover_path) as src:
        lc, transform = src.read(1), src.transform
    cam = CAMERAS["rgb"]
    for row in poses.itertuples():
        fp = footprint(cam, _ShotLike(row), 925.0)
        x0, y0, x1, y1 = fp.bounds
        gx, gy = np.meshgrid(np.linspace(x0, x1, 40), np.linspace(y0, y1, 40))
        inside = shapely.contains_xy(fp, gx.ravel(), gy.ravel())
        r, c = rasterio.transform.rowcol(transform, gx.ravel()[inside], gy.ravel()[inside])
        water = np.mean(lc[np.asarray(r), np.asarray(c)] == Cover.WATER)
        assert water == pytest.approx(row.water_share, abs=0.05), row.Index
    cps = pd.read_csv(lake_sim.checkpoints_path)
    assert len(cps) >= 1
    r, c = rasterio.transform.rowcol(transform, cps.x.to_numpy(), cps.y.to_numpy())
    assert (lc[np.asarray(r), np.asarray(c)] == Cover.TARGET).all()
    # a frame over water is almost blank: a small fraction of a land frame's SIFT features
    wet = max(len(k) for k, _ in _sift_features(lake_sim.frames_dir, poses.index[over]))
    dry = np.median([len(k) for k, _ in _sift_features(lake_sim.frames_dir,
                                                      poses.index[poses.water_share < 0.05][:3])])
    assert wet < 0.4 * dry


class _ShotLike:
    """The true pose of a poses.csv row, as :func:`flight.footprint` reads it."""

    def __init__(self, row):
        self.capture_id, self.x, self.y, self.alt_abs_m = row.Index, row.x, row.y, row.alt_abs_m
        self.yaw, self.pitch, self.roll = row.yaw, row.pitch, row.roll


def test_fixed_wing_without_gimbal(tmp_path, capsys):
    from belcheer.cli import main
    from belcheer.ingest import scan

    out = tmp_path / "fw"
    alt = 35.0
    assert main(["simulate", str(out), "--camera", "rgb", "--seed", "2", "--area-ha", "0.1",
                 "--altitude", str(alt), "--platform", "fixed-wing", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["platform"] == "fixed-wing" and info["n_captures"] == 15
    params = json.loads((out / "truth" / "simulation.json").read_text())
    assert params["flight"]["speed_m_s"] == 16.0
    poses = pd.read_csv(out / "truth" / "poses.csv").set_index("capture_id")
    # written metadata: EXIF GPS only, as a compact camera under a fixed wing
    for f in sorted((out / "frames").glob("*.JPG")):
        data = f.read_bytes()
        assert b"drone-dji" not in data and b"Gimbal" not in data and b"x:xmpmeta" not in data
    s = scan(out / "frames")
    assert len(s.flight_captures) == 15
    for c in s.flight_captures:
        p = c.frames[0].pose
        assert p.yaw is None and p.pitch is None and p.roll is None and p.alt_rel_m is None
        assert p.alt_abs_m == pytest.approx(poses.loc[c.id, "gps_alt_abs_m"], abs=0.01)
    # true attitude: banking at both ends of every line, roll noise within ±10° elsewhere
    n_per_line = params["flight"]["triggers_per_line"]
    pos = np.arange(len(poses)) % n_per_line
    ends = (pos == 0) | (pos == n_per_line - 1)
    roll = poses.roll.to_numpy()
    assert np.all((np.abs(roll[ends]) >= 20) & (np.abs(roll[ends]) <= 30))
    assert np.abs(roll[~ends]).max() <= 10 and np.abs(roll[~ends]).std() > 1.0
    assert np.abs(poses.pitch + 90).max() <= 6
    heading = np.where((np.arange(len(poses)) // n_per_line) % 2 == 0, 0.0, 180.0)
    off = (poses.yaw.to_numpy() - heading + 180) % 360 - 180
    north, south = off[heading == 0], off[heading == 180]
    assert 1.0 < abs(north.mean()) < 8.0 and north.mean() == pytest.approx(-south.mean(), abs=2.0)
    assert poses.rec_roll.isna().all() and poses.gps_alt_rel_m.isna().all()
    # a banked frame looks outward of its turn: its footprint centre lies off the line
    from belcheer.simulate.flight import footprint

    first = poses.iloc[0]
    fp = footprint(CAMERAS["rgb"], _ShotLike(next(poses.iloc[:1].itertuples())), 925.0)
    assert abs(fp.centroid.x - first.x) > alt * math.tan(math.radians(15))


def test_two_blocks_share_no_ground(tmp_path):
    from belcheer.simulate.flight import footprint

    sim = simulate(tmp_path / "two", seed=5, camera="rgb", area_ha=0.05, altitude_m=35.0, blocks=2)
    poses = _poses(sim)
    assert sorted(poses.block.unique()) == [0, 1]
    params = json.loads(sim.simulation_json.read_text())
    assert params["simulation"]["blocks"] == 2 and params["flight"]["line_block"] == [0, 0, 1, 1]
    cam = CAMERAS["rgb"]
    fps = {r.Index: footprint(cam, _ShotLike(r), 925.0) for r in poses.itertuples()}
    blocks = [[fps[c] for c in poses.index[poses.block == b]] for b in (0, 1)]
    assert all(len(b) == 8 for b in blocks)
    west = gpd.GeoSeries(blocks[0]).union_all()
    east = gpd.GeoSeries(blocks[1]).union_all()
    assert not west.intersects(east) and west.distance(east) > 2.0
    # inside each block, neighbours overlap as planned (front ≥ 60 %, across lines ≥ 50 %)
    for b in blocks:
        front = [b[i].intersection(b[i + 1]).area / b[i].area for i in (0, 1, 2, 4, 5, 6)]
        assert min(front) > 0.6
        assert b[0].intersection(b[7]).area / b[0].area > 0.5
    gps = poses.gps_x.groupby(poses.block).agg(["min", "max"])
    assert gps.loc[1, "min"] - gps.loc[0, "max"] > cam.footprint_m(35.0)[0]

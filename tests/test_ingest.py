"""Unit tests of the ingest stage on generated frames and pure functions (no real data)."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from test_ingest_helpers import BOMB_XMP, after_exif, dji_xmp, texture, write_jpeg

from belcheer.cli import main
from belcheer.errors import ConfigError, ConflictError, CRSError, NoUsableFramesError
from belcheer.ingest import ingest, scan, summarize
from belcheer.ingest.cameras import band_role, sensor_size_mm, wavelength_role
from belcheer.ingest.footprint import footprint, ground_offsets, gsd_m
from belcheer.ingest.grouping import parse_name
from belcheer.ingest.panels import Height, detect_panels, heights_above_ground
from belcheer.ingest.quality import measure
from belcheer.ingest.validate import altitude_outliers, duplicate_times, mixed_cameras
from belcheer.ingest.xmp import UnsafeXMPError, numbers, parse_packet
from belcheer.models import Band, Camera, Capture, Frame, Intrinsics, Pose, Severity

SEQUOIA_LIKE = b"""<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:Camera="http://pix4d.com/camera/1.0/" Camera:RigName="Sequoia" Camera:Yaw="-63.5">
<Camera:BandName><rdf:Seq><rdf:li>NIR</rdf:li></rdf:Seq></Camera:BandName>
<Camera:CentralWavelength><rdf:Seq><rdf:li>790.000000</rdf:li></rdf:Seq></Camera:CentralWavelength>
</rdf:Description>
<rdf:Description rdf:about="" xmlns:Camera="http://pix4d.com/1.0"><Camera:Irradiance>1.25</Camera:Irradiance>
<Camera:VignettingCenter><rdf:Seq><rdf:li>640.5</rdf:li><rdf:li>480.25</rdf:li></rdf:Seq></Camera:VignettingCenter>
</rdf:Description></rdf:RDF></x:xmpmeta>"""


# -- XMP -----------------------------------------------------------------------------------------
def test_parse_packet_uses_declared_prefixes_for_attributes_and_sequences():
    dji = parse_packet(dji_xmp(rel_alt=39.8, pitch=-89.9, yaw=45.0))
    assert dji["drone-dji:RelativeAltitude"] == "+39.80"
    assert dji["drone-dji:GimbalPitchDegree"] == "-89.90"
    assert dji["tiff:Model"] == "FC300S"
    seq = parse_packet(SEQUOIA_LIKE)
    # two different pix4d URIs both come out under the declared prefix "Camera"
    assert seq["Camera:BandName"] == ["NIR"]
    assert seq["Camera:Irradiance"] == "1.25"
    assert numbers(seq["Camera:VignettingCenter"]) == (640.5, 480.25)
    assert numbers("0.1, -0.2,3e-3") == (0.1, -0.2, 0.003)


def test_parse_packet_refuses_entity_bomb():
    with pytest.raises(UnsafeXMPError):
        parse_packet(BOMB_XMP)


# -- tables and names ------------------------------------------------------------------------------
@pytest.mark.parametrize("label,nm,role", [("Red edge", 717, "rededge"), ("RedEdge", None, "rededge"),
                                           ("NIR", 840, "nir"), ("Blue", 475, "blue"), ("Red", 668, "red"),
                                           ("Panchro", 634, "pan"), (None, 560, "green"), ("", 790, "nir")])
def test_band_role(label, nm, role):
    assert band_role(label, nm) == role


def test_wavelength_role_and_sensor_table():
    assert [wavelength_role(x) for x in (450, 550, 668, 717, 840, 11000)] == \
        ["blue", "green", "red", "rededge", "nir", "lwir"]
    assert sensor_size_mm("FC300S") == (6.17, 4.55)
    assert sensor_size_mm("FC6310R") == (13.2, 8.8)
    assert sensor_size_mm("RedEdge-M") == (4.8, 3.6)
    assert sensor_size_mm("Sequoia", rgb=True) == (6.17, 4.55)
    assert sensor_size_mm("Unknown cam") is None


@pytest.mark.parametrize("name,cid,index,role", [
    ("IMG_0007_4.tif", "IMG_0007", 4, "nir"),
    ("IMG_180413_080658_0000_REG.TIF", "IMG_180413_080658_0000", 3, "rededge"),
    ("IMG_180413_080658_0000_RGB.JPG", "IMG_180413_080658_0000", 5, "rgb"),
    ("DJI_0013.TIF", "DJI_0010", 3, "red"),
    ("DJI_20230401101010_0001_MS_NIR.TIF", "DJI_20230401101010_0001", 4, "nir"),
    ("DJI_0020.JPG", "DJI_0020", 1, None),
    ("кадр_01.jpg", "кадр_01", 1, None),
])
def test_parse_name(name, cid, index, role):
    info = parse_name(name)
    assert (info.capture_id, info.band_index, info.role) == (cid, index, role)


# -- footprint maths -------------------------------------------------------------------------------
INTR = Intrinsics(width_px=4000, height_px=3000, focal_mm=4.0, focal_px=2000.0)


def test_nadir_footprint_is_height_over_focal_times_pixels():
    fp = footprint(500_000.0, 5_300_000.0, INTR, 100.0, yaw_deg=0.0, pitch_deg=-90.0)
    minx, miny, maxx, maxy = fp.bounds
    assert maxx - minx == pytest.approx(200.0)       # 4000 px × 100 m / 2000 px
    assert maxy - miny == pytest.approx(150.0)
    assert fp.centroid.x == pytest.approx(500_000.0) and fp.centroid.y == pytest.approx(5_300_000.0)
    assert gsd_m(100.0, 2000.0) == pytest.approx(0.05)
    # image top to the east: the long side now runs north-south
    turned = footprint(0.0, 0.0, INTR, 100.0, yaw_deg=90.0, pitch_deg=-90.0).bounds
    assert turned[2] - turned[0] == pytest.approx(150.0) and turned[3] - turned[1] == pytest.approx(200.0)
    # top-left corner of a north-up image is north-west of the camera
    tl = ground_offsets(INTR, 100.0, 0.0, -90.0)[0]
    assert tl[0] == pytest.approx(-100.0) and tl[1] == pytest.approx(75.0)


def test_tilted_footprint_moves_forward_and_grows():
    nadir = footprint(0.0, 0.0, INTR, 100.0, 0.0, -90.0)
    tilted = footprint(0.0, 0.0, INTR, 100.0, 0.0, -60.0)
    # the optical axis meets the ground 100 m × tan 30° ahead (north) of the camera
    assert tilted.centroid.y > 40.0
    assert tilted.area > nadir.area
    # looking east (yaw 90) the shift is to the east
    east = footprint(0.0, 0.0, INTR, 100.0, 90.0, -60.0)
    assert east.centroid.x > 40.0 and abs(east.centroid.y) < 1e-6
    # a ray above the horizon is capped at 10 × height
    horizon = ground_offsets(INTR, 100.0, 0.0, 0.0)
    assert np.all(np.hypot(horizon[:, 0], horizon[:, 1]) <= 1000.0 + 1e-6)


# -- panels, heights and survey checks --------------------------------------------------------------
def _capture(cid: str, *, alt_abs: float | None = None, alt_rel: float | None = None, t: int = 0,
             bands: tuple[str, ...] = ("blue", "nir"), model: str = "RedEdge") -> Capture:
    pose = Pose(lon=106.9, lat=47.9, alt_abs_m=alt_abs, alt_rel_m=alt_rel)
    frames = tuple(Frame(path=Path(f"/x/{cid}_{i}.tif"), capture_id=cid, band=Band(b), band_index=i,
                         camera=Camera("MicaSense", model), intrinsics=None, pose=pose,
                         time=datetime(2026, 7, 1, 10) + timedelta(seconds=t))
                   for i, b in enumerate(bands, 1))
    return Capture(id=cid, frames=frames)


def test_panel_found_by_low_altitude_before_takeoff_and_after_landing():
    caps = [_capture("IMG_0000", alt_abs=1301.0, t=0)] + \
        [_capture(f"IMG_{i:04d}", alt_abs=1380.0 + i % 3, t=10 * i) for i in range(1, 8)] + \
        [_capture("IMG_0008", alt_abs=1302.0, t=200), _capture("IMG_0009", alt_abs=1303.0, t=210)]
    heights = heights_above_ground(caps)
    assert heights["IMG_0000"] == Height(1.0, "ground")
    assert heights["IMG_0001"].metres == pytest.approx(81.0)
    assert detect_panels(caps, heights) == {"IMG_0000": "altitude", "IMG_0008": "altitude",
                                            "IMG_0009": "altitude"}
    # a low capture in the middle of the flight is not a panel
    mid = caps[:4] + [_capture("IMG_0050", alt_abs=1301.5, t=45)] + caps[4:8]
    mid.sort(key=lambda c: c.time)
    assert "IMG_0050" not in detect_panels(mid, heights_above_ground(mid))
    # explicit ids win; an unknown explicit id is refused
    assert detect_panels(caps, heights, ["IMG_0003"]) == {"IMG_0003": "explicit"}
    with pytest.raises(ConfigError, match="IMG_9999"):
        detect_panels(caps, heights, ["IMG_9999"])


def test_no_panel_when_the_whole_flight_is_at_one_height():
    caps = [_capture(f"IMG_{i:04d}", alt_abs=146.0 + 0.5 * i, t=i) for i in range(2)]
    heights = heights_above_ground(caps)
    assert {h.source for h in heights.values()} == {"assumed"}
    assert heights["IMG_0000"].metres == pytest.approx(100.0)
    assert detect_panels(caps, heights) == {}


def test_altitude_outlier_duplicate_time_and_mixed_cameras():
    caps = [_capture(f"DJI_{i:04d}", alt_rel=80.0 + (i % 2) * 0.4, t=i * 2) for i in range(8)]
    caps.append(_capture("DJI_0100", alt_rel=140.0, t=100))
    caps.append(_capture("DJI_0101", alt_rel=80.0, t=100, model="Altum"))
    heights = heights_above_ground(caps)
    out = altitude_outliers(caps, heights)
    flagged = {Path(k).name.split("_")[1] for k in out}
    assert flagged == {"0100"}
    dup = duplicate_times(caps)
    assert {Path(k).name.rsplit("_", 1)[0] for k in dup} == {"DJI_0100", "DJI_0101"}
    mixed = mixed_cameras(caps)
    assert len(mixed) == 1 and "MicaSense Altum" in mixed[0].message


# -- pixel checks ----------------------------------------------------------------------------------
def test_blur_metric_separates_sharp_from_smoothed_and_is_scale_free():
    import cv2

    sharp = texture(480, 640).mean(axis=2).astype(np.float32)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 3)
    a, b = measure(sharp, 255.0), measure(blurred, 255.0)
    assert a.blur > 10 * b.blur
    # the same picture in 16-bit DN measures the same sharpness (normalised by its range)
    c = measure(sharp * 257.0, 65535.0)
    assert c.blur == pytest.approx(a.blur, rel=1e-3)


# -- scanning generated frames ---------------------------------------------------------------------
def _flight(folder: Path, n: int = 6) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        write_jpeg(folder / f"DJI_{i:04d}.JPG", texture(seed=i), lat=47.9 + i * 1e-4, lon=106.9,
                   time=datetime(2026, 7, 1, 10, 0, 2 * i), xmp=dji_xmp(rel_alt=80.0, yaw=0.0))
    return folder


def test_scan_generated_flight_validates_each_frame(tmp_path):
    folder = _flight(tmp_path / "flight")
    write_jpeg(folder / "DJI_0100.JPG", np.zeros((600, 800, 3), np.uint8), time=datetime(2026, 7, 1, 10, 1),
               xmp=dji_xmp(rel_alt=80.0))
    flat = np.full((600, 800, 3), 120, np.uint8)
    flat[:, :400] = 121  # almost no texture: blurred/featureless
    write_jpeg(folder / "DJI_0101.JPG", flat, time=datetime(2026, 7, 1, 10, 2), xmp=dji_xmp(rel_alt=80.0))
    write_jpeg(folder / "DJI_0102.JPG", texture(seed=9), time=datetime(2026, 7, 1, 10, 3),
               xmp=dji_xmp(rel_alt=80.0, pitch=-45.0))
    write_jpeg(folder / "DJI_0103.JPG", texture(seed=10), lat=None, lon=None,
               time=datetime(2026, 7, 1, 10, 4), xmp=dji_xmp(rel_alt=80.0))
    (folder / "notes.txt").write_text("flight log")
    s = scan(folder)
    codes = {c.id: sorted(p.code for p in c.problems) for c in s.captures}
    assert codes["DJI_0000"] == []
    assert codes["DJI_0100"] == ["black"]
    assert codes["DJI_0101"] == ["blurry"]
    assert codes["DJI_0102"] == ["oblique"]
    assert codes["DJI_0103"] == ["no_gps"]
    assert s.epsg == 32648  # 106.9° E → UTM 48N
    # black dropped; blurry, oblique and no-GPS kept as warnings (the mosaic chains a frame
    # without GPS to the others by image matching)
    assert len(s.flight_captures) == 9
    assert s.capture("DJI_0103").problems[0].severity is Severity.WARNING
    cap = s.capture("DJI_0000")
    # 800 px wide frame of an FC300S (6.17 mm wide sensor) at 3.61 mm: GSD = 80 × 6.17/800 / 3.61
    assert cap.gsd_m == pytest.approx(80.0 * 6.17 / 800 / 3.61, rel=1e-6)
    assert cap.footprint.area == pytest.approx((800 * cap.gsd_m) * (600 * cap.gsd_m), rel=1e-3)
    fast = scan(folder, quality=False)
    assert sorted(p.code for c in fast.captures for p in c.problems) == ["no_gps", "oblique"]


def test_ingest_saves_manifest_and_summary(tmp_path, workspace):
    folder = _flight(tmp_path / "Сэлэнгэ-2026-07")
    s = ingest(workspace, folder)
    assert s.name == "Сэлэнгэ-2026-07"
    back = workspace.survey(s.name)
    assert [c.id for c in back.captures] == [f"DJI_{i:04d}" for i in range(6)]
    assert back.captures[0].pose.alt_rel_m == pytest.approx(80.0)
    assert back.captures[0].gsd_m == pytest.approx(s.captures[0].gsd_m)
    rec = workspace.catalog.survey(s.name)
    assert rec.epsg == 32648
    report = json.loads((workspace.report_dir(s.name) / "ingest.json").read_text(encoding="utf-8"))
    assert report["survey"] == s.name and report["captures"] == 6
    with pytest.raises(ConflictError):
        ingest(workspace, folder)
    again = ingest(workspace, folder, replace=True, epsg=32647)
    assert again.epsg == 32647
    with pytest.raises(CRSError):
        scan(folder, epsg=4326)
    summary = summarize(s)
    assert summary["frames"] == 6 and summary["utm_zone"] == "48N"
    assert summary["bands"] == [{"name": "rgb", "center_nm": None, "bandwidth_nm": None, "label": "RGB"}]
    assert summary["bounds_lonlat"][1] < 47.9 < summary["bounds_lonlat"][3]
    json.dumps(summary)  # JSON-safe


def test_cli_ingest_json_and_exit_codes(tmp_path, capsys):
    folder = _flight(tmp_path / "flight", n=3)
    ws = tmp_path / "ws"
    rc = main(["--workspace", str(ws), "ingest", str(folder), "--survey", "f1", "--json", "--no-quality"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["survey"] == "f1" and out["captures"] == 3 and out["epsg"] == 32648
    assert out["cameras"] == [{"make": "DJI", "model": "FC300S", "serial": None}]
    # the same name again: conflict, non-zero
    assert main(["--workspace", str(ws), "ingest", str(folder), "--survey", "f1"]) == ConflictError.exit_code
    # a folder of no frames: NoUsableFramesError's exit code, the JSON summary still printed
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("nothing")
    capsys.readouterr()
    assert main(["--workspace", str(ws), "ingest", str(empty), "--json"]) == NoUsableFramesError.exit_code
    out = json.loads(capsys.readouterr().out)
    assert out["problems"]["counts"] == {"no_frames": 1}
    # human table mode
    assert main(["--workspace", str(ws), "ingest", str(folder), "--survey", "f2", "--no-quality"]) == 0
    assert "FC300S" in capsys.readouterr().out


def test_off_nadir_of_generated_pose():
    assert Pose(0, 0, pitch=-60.0).off_nadir_deg == pytest.approx(30.0)
    assert math.isclose(Pose(0, 0, pitch=-89.9).off_nadir_deg, 0.1, abs_tol=1e-9)


def test_build_frame_maps_dji_multispectral_xmp():
    from belcheer.ingest.exif import ExifInfo
    from belcheer.ingest.frames import build_frame

    xmp = {"Camera:BandName": "RedEdge", "Camera:CentralWavelength": "730", "Camera:WavelengthFWHM": "16",
           "drone-dji:BlackLevel": "4096", "drone-dji:Irradiance": "0.8123",
           "drone-dji:SensorGainAdjustment": "1.0215", "drone-dji:VignettingData": "1.1e-6, 2.2e-9, -3.3e-12",
           "drone-dji:CalibratedOpticalCenterX": "800.5", "drone-dji:CalibratedOpticalCenterY": "650.25",
           "drone-dji:RelativeAltitude": "+60.10", "drone-dji:GimbalPitchDegree": "-90.00",
           "drone-dji:GimbalYawDegree": "+10.00", "drone-dji:GimbalRollDegree": "+0.00",
           "drone-dji:FlightYawDegree": "+12.00"}
    exif = ExifInfo(make="DJI", model="FC6360", lat=47.1, lon=106.2, alt=1400.0, iso=200.0,
                    focal_mm=5.74, focal_plane_res=1 / 0.0032, exposure_s=0.001)
    f = build_frame(Path("/x/DJI_0014.TIF"), parse_name("DJI_0014.TIF"), exif, xmp, 1600, 1300, 16, 1, [])
    assert f.capture_id == "DJI_0010" and f.band_index == 4
    assert f.band.name == "rededge" and f.band.center_nm == 730.0 and f.band.bandwidth_nm == 16.0
    r = f.radiometry
    assert r.black_level == 4096.0 and r.irradiance == pytest.approx(0.8123) and r.gain == 2.0
    assert r.iso == 200.0
    with_gain = build_frame(Path("/x/DJI_0014.TIF"), parse_name("DJI_0014.TIF"), exif,
                            {**xmp, "drone-dji:SensorGain": "1.5"}, 1600, 1300, 16, 1, [])
    assert with_gain.radiometry.gain == 1.5  # the camera's own analog gain wins over ISO/100
    assert r.vignetting_polynomial == (1.1e-6, 2.2e-9, -3.3e-12)
    assert r.vignetting_center == (800.5, 650.25)
    assert r.extra["drone-dji:SensorGainAdjustment"] == "1.0215"
    assert f.tags["drone-dji:FlightYawDegree"] == "+12.00"
    assert f.pose.alt_rel_m == pytest.approx(60.1) and f.pose.yaw == 10.0
    assert f.intrinsics.focal_px == pytest.approx(5.74 / 0.0032)
    assert f.intrinsics.sensor_width_mm == pytest.approx(1600 * 0.0032)
    assert f.usable


#: an FC6310R frame as captured (5472×3648): EXIF focal 8.8 mm over 13.2 mm / 5472 px = 3648 px
_P4P_DEWARP = "2018-09-07;3657.02,3650.62,-4.03,23.10,-0.267098,0.111977,0.000924881,0.0000882056,-0.0331614"
_P4P_XMP = {"drone-dji:DewarpData": _P4P_DEWARP, "drone-dji:DewarpFlag": "0",
            "drone-dji:CalibratedOpticalCenterX": "2736.000000",
            "drone-dji:CalibratedOpticalCenterY": "1824.000000",
            "drone-dji:CalibratedFocalLength": "3666.666504"}


def _p4p_intrinsics(xmp: dict, width: int = 5472, height: int = 3648) -> Intrinsics:
    from belcheer.ingest.exif import ExifInfo
    from belcheer.ingest.frames import build_frame

    exif = ExifInfo(make="DJI", model="FC6310R", lat=24.68, lon=120.95, alt=186.5, focal_mm=8.8)
    f = build_frame(Path("/x/DJI_0001.JPG"), parse_name("DJI_0001.JPG"), exif, xmp, width, height, 8, 3, [])
    assert f.intrinsics is not None
    return f.intrinsics


def test_dji_dewarp_data_at_the_captured_size():
    intr = _p4p_intrinsics(_P4P_XMP)
    assert intr.focal_px == pytest.approx((3657.02 + 3650.62) / 2)
    assert intr.focal_mm == pytest.approx(intr.focal_px * 13.2 / 5472)
    assert (intr.cx, intr.cy) == pytest.approx((2736 - 4.03, 1824 + 23.10))
    assert intr.distortion == pytest.approx((-0.267098, 0.111977, 0.000924881, 0.0000882056, -0.0331614))
    # without the optical centre (as the simulator writes it) the offsets are from the frame's
    no_centre = {"drone-dji:DewarpData": _P4P_DEWARP}
    assert (_p4p_intrinsics(no_centre).cx, _p4p_intrinsics(no_centre).cy) == pytest.approx(
        (5472 / 2 - 4.03, 3648 / 2 + 23.10))


@pytest.mark.parametrize("change", [
    {"drone-dji:DewarpFlag": "1"},  # undistorted in camera
    {"drone-dji:DewarpData": "2018-09-07;3657.02,3650.62,-4.03,23.10,-0.267098,0.111977,0.000924881"},
    {"drone-dji:DewarpData": _P4P_DEWARP + ",0.5"},
    {"drone-dji:DewarpData": "2018-09-07;3657.02,3650.62,-4.03,23.10,k1,0.111977,0.000924881,0,0"},
    {"drone-dji:DewarpData": "2018-09-07;3657.02,nan,-4.03,23.10,-0.26,0.11,0.0009,0.00008,-0.03"},
    {"drone-dji:DewarpData": "2018-09-07;-3657,-3650,-4.03,23.10,-0.26,0.11,0.0009,0.00008,-0.03"},
    {"drone-dji:DewarpData": ""},
    {"drone-dji:DewarpData": ["2018-09-07;1", "2"]},
    # a 1/4 frame whose XMP lost its optical centre: 3653.8 px on a 1368 px frame is 4× too long
    {"drone-dji:CalibratedOpticalCenterX": None, "drone-dji:CalibratedOpticalCenterY": None, "size": (1368, 912)},
    # cropped to 16:9 after capture: the two axes' scales disagree
    {"size": (5472, 3078)},
])
def test_dji_dewarp_data_ignored_when_applied_or_malformed(change):
    """The EXIF focal (8.8 mm over 13.2 mm) and no lens model instead — never an exception."""
    change = dict(change)
    width, height = change.pop("size", (5472, 3648))
    xmp = {k: v for k, v in {**_P4P_XMP, **change}.items() if v is not None}
    intr = _p4p_intrinsics(xmp, width, height)
    assert intr.focal_px == pytest.approx(8.8 / 13.2 * width)
    assert intr.focal_mm == 8.8
    assert intr.cx is None and intr.cy is None
    assert intr.distortion == (0.0, 0.0, 0.0, 0.0, 0.0)


def test_xmp_found_behind_large_app_segments(tmp_path):
    from belcheer.ingest.frames import read_frame

    path = write_jpeg(tmp_path / "DJI_0001.JPG", xmp=dji_xmp(rel_alt=61.5))
    data = path.read_bytes()
    # 3 × 60 KB APP2 segments (ICC-like) between EXIF and XMP push the XMP past the first 128 KB
    filler = b"".join(b"\xff\xe2" + (60_002).to_bytes(2, "big") + bytes(60_000) for _ in range(3))
    cut = after_exif(data)
    path.write_bytes(data[:cut] + filler + data[cut:])
    f = read_frame(path).frame
    assert f.pose.alt_rel_m == pytest.approx(61.5)
    assert f.usable


def test_multispectral_group_puts_rgb_last_and_rgb_tiffs_stay_alone(tmp_path):
    from belcheer.ingest.exif import ExifInfo
    from belcheer.ingest.frames import build_frame
    from belcheer.ingest.grouping import group_captures

    exif = ExifInfo(make="DJI", model="FC6360", lat=47.1, lon=106.2, alt=1400.0, focal_mm=5.74,
                    focal_plane_res=312.5)
    frames = [build_frame(Path(f"/x/DJI_001{i}.TIF"), parse_name(f"DJI_001{i}.TIF"), exif,
                          {"Camera:BandName": n}, 1600, 1300, 16, 1, [])
              for i, n in ((1, "Blue"), (2, "Green"), (3, "Red"), (4, "RedEdge"), (5, "NIR"))]
    frames.append(build_frame(Path("/x/DJI_0010.JPG"), parse_name("DJI_0010.JPG"), exif, {}, 1600, 1300, 8, 3, []))
    # a 3-sample TIFF named like a P4M band is an ordinary RGB frame
    frames.append(build_frame(Path("/x/DJI_0023.TIF"), parse_name("DJI_0023.TIF"), exif, {}, 1600, 1300, 8, 3, []))
    caps = {c.id: c for c in group_captures(frames, Path("/x"))}
    assert sorted(caps) == ["DJI_0010", "DJI_0023"]
    assert [b.name for b in caps["DJI_0010"].bands] == ["blue", "green", "red", "rededge", "nir", "rgb"]
    assert [f.band_index for f in caps["DJI_0010"].frames] == [1, 2, 3, 4, 5, 6]
    assert caps["DJI_0023"].bands[0].name == "rgb"

"""Ingest on the real drone data (BELCHEER_REAL_DATA): facts read from the files themselves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import real_dataset

from belcheer.cli import main
from belcheer.errors import NoUsableFramesError
from belcheer.ingest import ingest, scan, summarize
from belcheer.models import Severity

pytestmark = pytest.mark.real

_SCANS: dict[str, object] = {}


def _scan(root: Path, name: str, **kw):
    key = name + repr(sorted(kw.items()))
    if key not in _SCANS:
        _SCANS[key] = scan(real_dataset(root, name), **kw)
    return _SCANS[key]


def test_brighton_beach_rgb(real_data):
    s = _scan(real_data, "brighton_beach_rgb")
    assert len(s.frames) == 18 and len(s.captures) == 18
    assert [c.key for c in s.cameras] == ["DJI FC300S"]
    assert [c.id for c in s.captures][:2] == ["DJI_0018", "DJI_0019"]
    assert s.bands[0].name == "rgb" and s.bands[0].label == "RGB"
    assert not s.panel_captures
    assert s.epsg == 32615  # 92.0° W → UTM 15N
    for c in s.captures:
        assert c.usable, c.problems
        assert c.pose.alt_rel_m == pytest.approx(39.8, abs=0.5)
        assert c.pose.pitch == pytest.approx(-89.9, abs=0.2)
        # three parallel lines flown back and forth: the gimbal faces 45° or 45° − 180°
        assert abs((c.pose.yaw - 45.0 + 90.0) % 180.0 - 90.0) < 15.0
        assert 46.83 < c.pose.lat < 46.85 and -92.01 < c.pose.lon < -91.99
    expected_gsd = 39.8 * (6.17 / 4000) / 3.61  # m/px
    gsds = [c.gsd_m for c in s.captures]
    assert all(abs(g - expected_gsd) / expected_gsd < 0.2 for g in gsds)
    # footprint ≈ 4000 × 2250 px at that GSD
    area = s.captures[0].footprint.area
    assert area == pytest.approx(4000 * 2250 * expected_gsd**2, rel=0.05)
    assert s.captures[0].time.isoformat() == "2016-06-23T16:31:59"
    assert not s.problems


def test_rededge_tutorial_bands_and_panel(real_data):
    s = _scan(real_data, "rededge_tutorial")
    assert [c.id for c in s.captures] == ["IMG_0000", "IMG_0001"]
    for c in s.captures:
        assert [f.band_index for f in c.frames] == [1, 2, 3, 4, 5]
        assert [b.center_nm for b in c.bands] == [475, 560, 668, 840, 717]
        assert [b.name for b in c.bands] == ["blue", "green", "red", "nir", "rededge"]
        assert [f.path.name for f in c.frames] == [f"{c.id}_{i}.tif" for i in range(1, 6)]
    # found without --panel: taken near the ground before the flight
    assert [c.id for c in s.panel_captures] == ["IMG_0000"]
    assert [c.id for c in s.flight_captures] == ["IMG_0001"]
    f = s.capture("IMG_0001").frame("nir")
    r = f.radiometry
    assert r.radiometric_calibration and len(r.radiometric_calibration) == 3
    assert r.black_level == pytest.approx(4800)
    assert r.irradiance is not None and r.irradiance > 0
    assert r.vignetting_center and len(r.vignetting_polynomial) == 6
    assert r.bits_per_sample == 16
    assert "DLS:Serial" in r.extra and "MicaSense:CaptureId" in r.extra
    assert f.intrinsics.width_px == 1280 and f.intrinsics.sensor_width_mm == pytest.approx(4.8, abs=0.01)
    assert f.intrinsics.focal_mm == pytest.approx(5.4, abs=0.2)
    assert s.epsg == 32611


def test_sequoia_without_gps_is_reported_not_raised(real_data, workspace):
    s = _scan(real_data, "sequoia_capture")
    assert len(s.captures) == 1
    cap = s.captures[0]
    assert cap.id == "IMG_180413_080658_0000"
    assert [b.name for b in cap.bands] == ["green", "red", "rededge", "nir", "rgb"]
    assert [b.center_nm for b in cap.bands][:4] == [550, 660, 735, 790]
    assert {p.code for p in cap.problems} == {"no_gps"}
    assert all(p.severity is Severity.ERROR for p in cap.problems)
    assert "no_crs" in {p.code for p in s.problems} and s.epsg == 4326
    nir = cap.frame("nir")
    assert nir.camera.model == "Sequoia"
    assert nir.radiometry.radiometric_calibration == (271665.8, 5008.3, 2581.1)  # Camera:SensorModel
    assert "Camera:IrradianceList" in nir.radiometry.extra
    with pytest.raises(NoUsableFramesError, match="no_gps"):
        ingest(workspace, real_dataset(real_data, "sequoia_capture"))
    assert "sequoia_capture" not in workspace.surveys()


def test_p4p_frames_are_oblique(real_data):
    s = _scan(real_data, "p4p_tuniu")
    assert len(s.captures) == 4
    for c in s.captures:
        assert "oblique" in {p.code for p in c.problems}
        assert c.pose.pitch == pytest.approx(-60.0, abs=0.5)
        assert c.camera.model.startswith("FC6310")
        assert c.primary.intrinsics.width_px == 1368
        assert c.primary.intrinsics.sensor_width_mm == pytest.approx(13.2)
        # a P4 RTK: the fix's own standard deviations are the GPS prior's weights
        assert 0.005 < c.pose.gps_sigma_h_m < 0.02 and 0.01 < c.pose.gps_sigma_v_m < 0.05
    # the position comes from the XMP's 8 decimals, not EXIF's 0.01″ rounding
    first = next(c for c in s.captures if c.id.endswith("0142"))
    assert first.pose.lat == pytest.approx(24.67986947, abs=1e-9)
    assert first.pose.gps_sigma_h_m == pytest.approx(0.00944)
    assert first.pose.gps_sigma_v_m == pytest.approx(0.0226)
    # the DSM among the folders is a map, not a frame
    assert [p.code for p in s.problems] == ["not_a_frame"]
    assert s.epsg == 32651


def test_p4p_intrinsics_carry_dji_factory_calibration(real_data):
    """``exiftool -a -G1 100_0005_*.tif`` (all four frames alike): DewarpFlag 0, DewarpData
    ``2018-09-07;3657.02,3650.62,-4.03,23.10,-0.267098,0.111977,0.000924881,0.0000882056,
    -0.0331614``, CalibratedOpticalCenterX/Y 2736/1824, frames 1368×912: ODM stored them at 1/4
    of the 5472×3648 capture the calibration is written for."""
    s = _scan(real_data, "p4p_tuniu")
    for c in s.captures:
        intr = c.primary.intrinsics
        # (fx + fy) / 2 / 4: one focal length, in pixels of the stored frame
        assert intr.focal_px == pytest.approx((3657.02 + 3650.62) / 2 / 4)
        # captured (2736 − 4.03, 1824 + 23.10), pixel centres on integers: (c + ½) / 4 − ½
        assert (intr.cx, intr.cy) == pytest.approx((682.6175, 461.4))
        assert intr.distortion == pytest.approx((-0.267098, 0.111977, 0.000924881, 0.0000882056,
                                                 -0.0331614))
        # within 0.2 % of EXIF's 8.8 mm over the 13.2 mm sensor's 1368 px (912 px)
        assert intr.focal_mm == pytest.approx(8.8, rel=0.002)
    # the FC300S writes no DewarpData: EXIF focal (3.61 mm over 6.17 mm / 4000 px), no lens model
    for c in _scan(real_data, "brighton_beach_rgb").captures:
        intr = c.primary.intrinsics
        assert intr.focal_px == pytest.approx(3.61 / 6.17 * 4000)
        assert intr.cx is None and intr.cy is None and not any(intr.distortion)


def test_rededge_mx_slovakia(real_data):
    s = _scan(real_data, "rededge_mx_slovakia")
    assert [c.id for c in s.captures] == ["IMG_0000", "IMG_0010"]
    assert s.epsg == 32634
    for c in s.captures:
        assert 48.0 < c.pose.lat < 48.2 and 18.1 < c.pose.lon < 18.3
        assert len(c.frames) == 5 and c.usable
        assert c.camera.model == "RedEdge-M"
        # MicaSense writes GPSXYAccuracy as a radius: the per-axis σ is that over √2
        assert 5.0 < c.pose.gps_sigma_h_m < 20.0 and c.pose.gps_sigma_v_m > 5.0
    assert not s.panel_captures
    summary = summarize(s)
    assert summary["utm_zone"] == "34N"
    assert summary["date"] == "2024-08-29"
    assert summary["panel_captures"] == []
    r = s.captures[0].frame("rededge").radiometry
    assert r.horizontal_irradiance is not None and 0 <= r.solar_elevation_deg <= 90


@pytest.mark.parametrize("name", ["farm_parcels_nl", "mongolia_admin"])
def test_folders_without_frames(real_data, workspace, name):
    s = _scan(real_data, name, quality=False)
    assert s.captures == ()
    assert "no_frames" in {p.code for p in s.problems}
    with pytest.raises(NoUsableFramesError, match="no drone frames"):
        ingest(workspace, real_dataset(real_data, name))


def test_cli_ingest_real_tutorial_json(real_data, tmp_path, capsys):
    rc = main(["--workspace", str(tmp_path / "ws"), "ingest",
               str(real_dataset(real_data, "rededge_tutorial")), "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["frames"] == 10 and out["captures"] == 2
    assert out["panel_captures"] == ["IMG_0000"]
    assert [b["center_nm"] for b in out["bands"]] == [475, 560, 668, 840, 717]
    assert out["cameras"][0]["model"] == "RedEdge"
    assert out["epsg"] == 32611 and out["utm_zone"] == "11N"
    assert out["bounds_lonlat"][0] < -119.435 < out["bounds_lonlat"][2]
    assert out["problems"]["errors"] == 0
    # an explicit --panel replaces detection
    rc = main(["--workspace", str(tmp_path / "ws"), "ingest", str(real_dataset(real_data, "rededge_tutorial")),
               "--survey", "t2", "--panel", "IMG_0001", "--json", "--no-quality"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["panel_captures"] == ["IMG_0001"] and out["flight_captures"] == 1

"""DJI P4 Multispectral / Mavic 3M headers → captures, radiometry and calibration, and the
bad input around them (in memory: no pixels are read)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from belcheer.errors import UnsupportedCameraError
from belcheer.ingest.exif import ExifInfo
from belcheer.ingest.frames import build_frame
from belcheer.ingest.grouping import group_captures, parse_name
from belcheer.models import Survey

BANDS = (("Blue", 450), ("Green", 560), ("Red", 650), ("RedEdge", 730), ("NIR", 840))
VIG = "0.0,1.2e-06,0.0,1.7e-12,0.0,0.0"


def _xmp(label: str, nm: float, uuid: str, irradiance: float = 1000.0, **extra: str) -> dict:
    return {"drone-dji:BandName": label, "drone-dji:CentralWavelength": str(nm),
            "drone-dji:CaptureUUID": uuid, "drone-dji:BlackLevel": "4096",
            "drone-dji:SensorGain": "1", "drone-dji:ExposureTime": "2500",
            "drone-dji:SensorGainAdjustment": "1.2", "drone-dji:Irradiance": str(irradiance),
            "drone-dji:CalibratedOpticalCenterX": "800", "drone-dji:CalibratedOpticalCenterY": "650",
            "drone-dji:VignettingData": VIG, "drone-dji:GimbalPitchDegree": "-90.0",
            "drone-dji:RelativeAltitude": "+60.0", **extra}


def _frame(name: str, xmp: dict, model: str = "FC6360", make: str = "DJI"):
    exif = ExifInfo(make=make, model=model, lat=48.94, lon=106.16, alt=985.0, iso=100.0,
                    focal_mm=5.74, focal_plane_res=1 / 0.003, exposure_s=0.0025)
    return build_frame(Path(f"/x/{name}"), parse_name(name), exif, xmp, 1600, 1300, 16, 1, [])


def _capture(n: int, uuid: str, irradiance: float = 1000.0, names=None, drop=(), model="FC6360"):
    names = names or [f"DJI_{n:03d}{i}.TIF" for i in range(1, 6)]
    return [_frame(nm, _xmp(lab, w, uuid, irradiance), model)
            for nm, (lab, w) in zip(names, BANDS, strict=True) if lab not in drop]


def _survey(frames, panels=()):
    caps = [replace(c, is_panel=c.id in panels) for c in group_captures(frames, Path("/x"))]
    return Survey(name="s", captures=tuple(caps), epsg=32648)


def test_renamed_files_grouped_by_capture_uuid_and_bands_from_xmp():
    # renamed copies: neither the number nor the digit says which capture or band a file is
    renamed = ["flight_a.tif", "x_17.tif", "copy (2).tif", "DJI_0999.TIF", "zz.TIF"]
    frames = _capture(1, "UUID-A", names=renamed) + _capture(2, "UUID-B")
    caps = group_captures(frames, Path("/x"))
    assert len(caps) == 2
    a = next(c for c in caps if {f.path.name for f in c.frames} == set(renamed))
    assert [f.band.name for f in a.frames] == ["blue", "green", "red", "rededge", "nir"]
    assert [f.band_index for f in a.frames] == [1, 2, 3, 4, 5]
    assert a.frames[0].band.center_nm == 450.0


def test_dji_radiance_is_the_guides_formula():
    from belcheer.indices.radiometry import dji_radiance, radiance

    f = _frame("DJI_0011.TIF", _xmp("Blue", 450, "U"))
    dn = np.full((1300, 1600), 30000, np.uint16)
    got = radiance(f, dn)
    k = [float(v) for v in VIG.split(",")]
    for (y, x) in ((650, 800), (0, 0), (1299, 1599), (100, 1200)):
        r = np.hypot(x - 800, y - 650)
        v = 1 + sum(c * r ** (i + 1) for i, c in enumerate(k))
        want = (30000 - 4096) / 65535 * v / (1.0 * 2500 / 1e6) * 1.2
        assert got[y, x] == pytest.approx(want, rel=1e-5)
    assert dji_radiance(dn[:2, :2], black_level=4096, exposure_s=0.0025, gain=2.0,
                        sensor_gain_adjustment=1.0, vignetting_center=None,
                        vignetting_polynomial=None)[0, 0] == pytest.approx(25904 / 65535 / 0.005, rel=1e-6)


def test_missing_or_contradictory_tags_fall_back_with_named_warnings():
    from belcheer.indices import calibrate
    from belcheer.indices.radiometry import model_warnings, radiance

    bad = _xmp("NIR", 840, "U", **{"drone-dji:VignettingData": "1e-6,2e-9",  # 2 of 6 terms
                                   "drone-dji:ExposureTime": "9000"})       # EXIF says 2500 µs
    del bad["drone-dji:SensorGainAdjustment"]
    f = _frame("DJI_0015.TIF", bad)
    codes = {c for c, _ in model_warnings(f)}
    assert codes == {"dji_vignetting_invalid", "dji_exposure_contradictory", "dji_gain_adjustment_missing"}
    out = radiance(f, np.full((1300, 1600), 20000, np.uint16))  # no crash: the plain model
    assert out[0, 0] == pytest.approx(out[650, 800]) == pytest.approx((20000 - 4096) / 65535 / 0.0025,
                                                                       rel=1e-5)
    frames = _capture(1, "A")[:4] + [f] + _capture(2, "B")
    cal = calibrate(_survey(frames), method="sensor")
    notes = {n["code"]: n for n in cal.notes}
    assert {"dji_vignetting_invalid", "dji_exposure_contradictory",
            "dji_gain_adjustment_missing"} <= set(notes)
    assert notes["dji_vignetting_invalid"]["band"] == "nir"
    assert "DJI_0015.TIF" in notes["dji_vignetting_invalid"]["text"]


def test_zero_or_absurd_irradiance_skips_that_captures_sensor_correction():
    from belcheer.indices import calibrate

    frames = (_capture(1, "A", 1000.0) + _capture(2, "B", 0.0) + _capture(3, "C", 1.0e7)
              + _capture(4, "D", 900.0) + _capture(5, "E", 1100.0))
    s = _survey(frames)
    cal = calibrate(s, method="sensor")
    skipped = {c["capture"]: c for c in cal.metadata["sensor_skipped"]}
    assert set(skipped) == {"DJI_0020", "DJI_0030"}
    assert skipped["DJI_0020"]["reason"] == "zero or negative"
    assert "off the survey's median" in skipped["DJI_0030"]["reason"]
    (n,) = [n for n in cal.notes if n["code"] == "sensor_skipped"]
    assert n["captures"] == ["DJI_0020", "DJI_0030"]
    # the skipped captures get the survey's median reading; the others their own
    by_id = {c.id: c for c in s.captures}
    assert cal.irradiance(by_id["DJI_0020"].frames[0]) == pytest.approx(1000.0)
    assert cal.irradiance(by_id["DJI_0030"].frames[0]) == pytest.approx(1000.0)
    assert cal.irradiance(by_id["DJI_0040"].frames[0]) == pytest.approx(900.0)
    assert not cal.metadata["absolute"]  # DJI's sensor units are its own


def test_capture_with_a_missing_band_is_dropped_with_the_reason():
    from belcheer.ingest import validate

    frames = _capture(1, "A") + _capture(2, "B", drop=("NIR",)) + _capture(3, "C")
    caps = validate.apply(group_captures(frames, Path("/x")), {})
    by_id = {c.id: c for c in caps}
    assert by_id["DJI_0010"].usable and by_id["DJI_0030"].usable
    bad = by_id["DJI_0020"]
    assert not bad.usable
    (p,) = {p.message for p in bad.problems if p.code == "missing_band"}
    assert "no nir frame" in p and "dropped" in p


def test_unsupported_multispectral_camera_is_named_with_the_supported_families():
    from belcheer.indices import calibrate

    frames = [_frame(f"IMG_{i}.TIF", {"Camera:BandName": lab, "Camera:CentralWavelength": str(w),
                                       "Camera:CaptureUUID": "Q"}, model="6X", make="Sentera")
              for i, (lab, w) in enumerate(BANDS)]
    frames = [replace(f, capture_id="IMG", band_index=i) for i, f in enumerate(frames)]
    with pytest.raises(UnsupportedCameraError) as err:
        calibrate(_survey(frames))
    msg = str(err.value)
    assert "Sentera 6X" in msg and "multispectral" in msg and "RGB" not in msg
    for family in ("MicaSense", "Sequoia", "P4 Multispectral", "Mavic 3"):
        assert family in msg


def test_p4m_rgb_jpeg_riding_along_does_not_stop_calibration():
    """The bug of issue 14: the P4M's RGB JPEG made `calibrate` refuse the camera as "RGB"."""
    from belcheer.indices import calibrate

    exif = ExifInfo(make="DJI", model="FC6360", lat=48.94, lon=106.16, alt=985.0, focal_mm=5.74,
                    focal_plane_res=312.5)
    frames = []
    for n, uuid in ((1, "A"), (2, "B")):
        frames += _capture(n, uuid)
        frames.append(build_frame(Path(f"/x/DJI_{n:03d}0.JPG"), parse_name(f"DJI_{n:03d}0.JPG"),
                                  exif, {"drone-dji:CaptureUUID": uuid}, 1600, 1300, 8, 3, []))
    s = _survey(frames)
    assert [f.band.name for f in s.captures[0].frames][-1] == "rgb"
    cal = calibrate(s, method="sensor")
    assert cal.method == "sensor"
    assert any(n["code"] == "rgb_frames_skipped" for n in cal.notes)

"""Radiometric calibration: real MicaSense/Sequoia frames and synthetic captures with known truth."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from pathlib import Path

import numpy as np
import pytest
import tifffile

from belcheer.errors import InputError, ProcessingError
from belcheer.indices import calibrate, radiance
from belcheer.indices.calibration import read_dn
from belcheer.indices.radiometry import micasense_radiance
from belcheer.indices.sun import horizontal_irradiance, solar_position
from belcheer.ingest import scan
from belcheer.models import Capture, Survey
from tests.conftest import real_dataset

BANDS = ("blue", "green", "red", "nir", "rededge")


# -- pure functions ---------------------------------------------------------------------------

def test_micasense_radiance_matches_hand_computation() -> None:
    dn = np.full((4, 3), 20000, np.uint16)
    a1, a2, a3, te, g = 2e-4, 1e-7, 1e-6, 0.002, 2.0
    out = micasense_radiance(dn, black_level=4800, exposure_s=te, gain=g, calibration=(a1, a2, a3),
                             vignetting_center=(1.0, 0.0), vignetting_polynomial=(1e-3,))
    y, x = 3, 2
    r = math.hypot(x - 1.0, y - 0.0)
    expected = (1 / (1 + 1e-3 * r)) * (1 / (1 + a2 * y / te - a3 * y)) * 15200 * a1 / (g * te) / 65536
    assert out.dtype == np.float32
    assert out[y, x] == pytest.approx(expected, rel=1e-5)


def test_solar_position_and_level_sensor() -> None:
    # March equinox 2024, 12:00 UTC on the equator at Greenwich: sun nearly overhead
    el, _ = solar_position(0.0, 0.0, dt.datetime(2024, 3, 20, 12, 7, tzinfo=dt.UTC))
    assert el > 88.5
    # Ulaanbaatar (47.92 N, 106.92 E), 2026-06-21 04:50 UTC ≈ local solar noon: 90 − 47.92 + 23.44
    el, az = solar_position(47.92, 106.92, dt.datetime(2026, 6, 21, 4, 50, tzinfo=dt.UTC))
    assert el == pytest.approx(65.5, abs=0.6) and az == pytest.approx(180, abs=8)
    # a level sensor under an overhead sun: horizontal = reading / diffuser transmission
    e = horizontal_irradiance(1.0, 0.0, 90.0)
    assert 1.0 < e < 1.1


# -- real data --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tutorial(real_data: Path) -> Survey:
    s = scan(real_dataset(real_data, "rededge_tutorial"), quality=False)
    assert [c.id for c in s.panel_captures] == ["IMG_0000"]
    return s


@pytest.mark.real
def test_tutorial_panel_found_and_calibrated(tutorial: Survey) -> None:
    cal = calibrate(tutorial, panel_albedo=0.49)
    assert cal.method == "both"
    panel = cal.metadata["panel"]
    assert panel["capture"] == "IMG_0000"
    cap = tutorial.capture("IMG_0000")
    for f in cap.frames:
        info = panel["bands"][f.band.name]
        assert info["detected"] and info["cv"] < 0.03
        x, y, w, h = info["region"]
        # the tutorial's panel sits round (730, 535) px in the blue band; ~160 px across
        assert 560 < x + w / 2 < 900 and 400 < y + h / 2 < 700 and 80 < w < 220
        rho = cal(f, read_dn(f))
        assert float(np.nanmean(rho[y:y + h, x:x + w])) == pytest.approx(0.49, abs=0.01)


@pytest.mark.real
def test_tutorial_flight_panel_vs_sensor(tutorial: Survey) -> None:
    panel = calibrate(tutorial, method="panel", panel_albedo=0.49)
    sensor = calibrate(tutorial, method="sensor")
    assert sensor.method == "sensor" and sensor.metadata["absolute"]
    # auto without the panel's albedo: the sensor alone, with a note saying why
    auto = calibrate(tutorial)
    assert auto.method == "sensor" and auto.notes[0]["code"] == "panel_ignored_no_albedo"
    assert "no panel albedo given" in auto.notes[0]["text"]
    # panel and DLS disagree by > 15 % in four bands: the panel wins, and a note says so
    (off,) = [n for n in panel.notes if n["code"] == "panel_sensor_disagree"]
    assert set(off["bands"]) == {"green", "red", "nir", "rededge"} and off["method"] == "panel"
    assert off["bands"]["nir"] == pytest.approx(0.549, abs=0.005)
    assert "nir +55%" in off["text"] and "the panel wins" in off["text"]
    diff = panel.metadata["panel_vs_sensor"]
    assert diff["capture"] == "IMG_0001" and set(diff["bands"]) == set(BANDS)
    cap = tutorial.capture("IMG_0001")
    for f in cap.frames:
        dn = read_dn(f)
        rp, rs = np.nanmean(panel(f, dn)), np.nanmean(sensor(f, dn))
        d = diff["bands"][f.band.name]
        assert d["panel"] == pytest.approx(rp, rel=1e-3) and d["sensor"] == pytest.approx(rs, rel=1e-3)
        assert d["difference"] == pytest.approx(rs - rp, abs=1e-4)
        assert 0.0 < rp < 0.6 and 0.0 < rs < 0.8
        assert d["sensor_source"] == "dls1_sun_corrected"


def _align(moving: np.ndarray, fixed: np.ndarray) -> np.ndarray:
    """Warp one band onto another (the RedEdge's five lenses see slightly different views)."""
    import cv2

    def norm(a: np.ndarray) -> np.ndarray:
        a = np.nan_to_num(a.astype(np.float32))
        return (a - a.mean()) / (a.std() + 1e-9)

    def half(a: np.ndarray) -> np.ndarray:  # ECC at half resolution is 4× cheaper and as good here
        return cv2.resize(norm(a), None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)

    warp = np.eye(2, 3, dtype=np.float32)
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 60, 1e-5)
    _, warp = cv2.findTransformECC(half(fixed), half(moving), warp, cv2.MOTION_AFFINE, crit, None, 5)
    warp[:, 2] *= 2.0
    return cv2.warpAffine(moving, warp, fixed.shape[::-1],
                          flags=cv2.INTER_LINEAR + cv2.WARP_INVERSE_MAP, borderValue=float("nan"))


@pytest.mark.real
def test_tutorial_ndvi_of_vegetation(tutorial: Survey, artifacts: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cal = calibrate(tutorial, panel_albedo=0.49)
    cap = tutorial.capture("IMG_0001")
    red = cal(cap.frame("red"), read_dn(cap.frame("red")))
    nir = _align(cal(cap.frame("nir"), read_dn(cap.frame("nir"))), red)
    with np.errstate(all="ignore"):
        ndvi = (nir - red) / (nir + red)
    valid = np.isfinite(ndvi)
    assert valid.mean() > 0.9
    canopy = valid & (nir > 0.35)           # sunlit tree and vine canopy
    bare = valid & (nir < 0.25) & (red > 0.08)  # the dirt road and bare soil
    assert canopy.sum() > 10_000 and bare.sum() > 10_000
    assert 0.6 < np.median(ndvi[canopy]) < 0.95
    assert -0.1 < np.median(ndvi[bare]) < 0.45
    assert np.nanpercentile(ndvi, 0.5) > -1.0 and np.nanpercentile(ndvi, 99.5) < 1.0
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(ndvi[valid], bins=100, range=(-0.5, 1.0), color="tab:green")
    ax.set_xlabel("NDVI (panel + DLS reflectance)")
    ax.set_ylabel("pixels")
    ax.set_title("rededge_tutorial IMG_0001")
    fig.tight_layout()
    fig.savefig(artifacts / "indices_tutorial_ndvi_histogram.png", dpi=100)
    plt.close(fig)
    assert (artifacts / "indices_tutorial_ndvi_histogram.png").stat().st_size > 5000


def _scaled_capture(cap: Capture, new_id: str, factor: float, out: Path,
                    minutes: float = 25.0) -> Capture:
    """The same panel seen under ``factor`` × the light: DN above black scaled, the sunlight
    sensor's reading scaled, time moved on."""
    frames = []
    out.mkdir(parents=True, exist_ok=True)
    for f in cap.frames:
        r = f.radiometry
        dn = read_dn(f).astype(np.float64)
        scaled = np.clip(r.black_level + (dn - r.black_level) * factor, 0, 65535).astype(np.uint16)
        path = out / f"{new_id}_{f.path.name.rsplit('_', 1)[-1]}"
        tifffile.imwrite(path, scaled)
        rad = dataclasses.replace(r, spectral_irradiance=r.spectral_irradiance * factor,
                                  irradiance=(r.irradiance or 0) * factor)
        frames.append(dataclasses.replace(f, path=path, capture_id=new_id, radiometry=rad,
                                          time=f.time + dt.timedelta(minutes=minutes)))
    return Capture(id=new_id, frames=tuple(frames), is_panel=True)


@pytest.mark.real
def test_two_panel_captures_give_calibration_error(tutorial: Survey, tmp_path: Path) -> None:
    # after the flight a thin cloud: 15 % less light on the panel and on the sensor
    after = _scaled_capture(tutorial.capture("IMG_0000"), "IMG_0002", 0.85, tmp_path)
    survey = tutorial.replace(captures=(*tutorial.captures, after))
    both = calibrate(survey, method="both", panel_albedo=0.49)
    err = both.metadata["calibration_error"]
    assert err["capture"] == "IMG_0002" and set(err["bands"]) == set(BANDS)
    # the sensor followed the dimmer light: the second panel still reads 0.49
    assert err["max_abs"] < 0.01
    panel_only = calibrate(survey, method="panel", panel_albedo=0.49)
    for e in panel_only.metadata["calibration_error"]["bands"].values():
        assert e == pytest.approx(-0.49 * 0.15, abs=0.01)  # without the sensor: 15 % too dark


@pytest.mark.real
def test_no_panel_found_suggests_region(tutorial: Survey) -> None:
    caps = tuple(dataclasses.replace(c, is_panel=(c.id == "IMG_0001")) for c in tutorial.captures)
    wrong = tutorial.replace(captures=caps)
    with pytest.raises(ProcessingError, match="--panel-region"):
        calibrate(wrong, method="panel", panel_albedo=0.49)


@pytest.mark.real
def test_panel_region_fallback_and_uneven_light(tutorial: Survey, tmp_path: Path) -> None:
    cal = calibrate(tutorial, method="panel", panel_albedo=0.49, panel_region=(690, 500, 80, 80))
    assert not cal.metadata["panel"]["bands"]["nir"]["detected"]
    # a shadow edge across the panel: more than 3 % variation → refused
    cap = tutorial.capture("IMG_0000")
    frames = []
    for f in cap.frames:
        dn = read_dn(f).astype(np.float64)
        dn[:, 720:] = 4800 + (dn[:, 720:] - 4800) * 0.8
        path = tmp_path / f.path.name
        tifffile.imwrite(path, dn.astype(np.uint16))
        frames.append(dataclasses.replace(f, path=path))
    shaded = tutorial.replace(captures=(Capture("IMG_0000", tuple(frames), is_panel=True),
                                        tutorial.capture("IMG_0001")))
    with pytest.raises(ProcessingError, match="not uniformly lit"):
        calibrate(shaded, method="panel", panel_albedo=0.49, panel_region=(680, 480, 120, 120))


@pytest.mark.real
def test_slovakia_sensor_only(real_data: Path) -> None:
    s = scan(real_dataset(real_data, "rededge_mx_slovakia"), quality=False)
    assert not s.panel_captures
    cal = calibrate(s)
    assert cal.method == "sensor" and cal.metadata["sensor"]["sources"] == ["dls2_horizontal"]
    for cap in s.captures:
        for f in cap.frames:
            rho = cal(f, read_dn(f))
            ok = np.isfinite(rho) & (rho >= 0) & (rho <= 1.2)
            assert ok.mean() >= 0.99, (cap.id, f.band.name)
    # the camera's own solar elevation (DLS 2) agrees with ours
    f = s.captures[0].frames[0]
    el, _ = solar_position(f.pose.lat, f.pose.lon, f.time)
    assert el == pytest.approx(f.radiometry.solar_elevation_deg, abs=0.6)


@pytest.mark.real
def test_sequoia_sunshine_sensor(real_data: Path) -> None:
    s = scan(real_dataset(real_data, "sequoia_capture"), quality=False)
    cal = calibrate(s)
    assert cal.method == "sensor"
    assert cal.metadata["sensor"]["sources"] == ["sequoia_irradiance_list"]
    assert cal.metadata["absolute"] is False  # Parrot's irradiance is in its own units
    cap = s.captures[0]
    levels = {}
    for f in cap.frames:
        if f.band.name == "rgb":
            with pytest.raises(InputError, match="not a calibrated narrow band"):
                cal(f, np.zeros((2, 2), np.uint16))
            continue
        L = radiance(f, read_dn(f))
        rho = cal(f, read_dn(f))
        assert np.isfinite(rho).mean() > 0.99 and (rho[np.isfinite(rho)] > 0).mean() > 0.95
        # reflectance is radiance over the sunshine sensor's irradiance, π·I/E
        e = cal.metadata["sensor"]["irradiance"][f.band.name]["mean"]
        np.testing.assert_allclose(np.nanmedian(rho), np.pi * np.nanmedian(L) / e, rtol=1e-4)
        levels[f.band.name] = float(np.nanmedian(rho))
    assert set(levels) == {"green", "red", "rededge", "nir"}


# -- synthetic captures with known truth (the simulator's forward model) -------------------------

def _write_capture(folder: Path, cid: str, refl: dict[str, np.ndarray], irr: dict[str, float],
                   when: dt.datetime, seed: int) -> None:
    from belcheer.simulate.cameras import REDEDGE_M, vignetting_poly
    from belcheer.simulate.metadata import micasense_xmp, write_micasense_tiff
    from belcheer.simulate.radiometry import BandCalibration, exposure_for, micasense_dn

    rng = np.random.default_rng(seed)
    cal = {"blue": (1.62e-4, 1.05e-7, 1.3e-6), "green": (1.88e-4, 1.10e-7, 1.2e-6),
           "red": (2.02e-4, 1.15e-7, 1.4e-6), "nir": (2.41e-4, 0.95e-7, 1.1e-6),
           "rededge": (2.12e-4, 1.00e-7, 1.25e-6)}
    centers = {"blue": 475, "green": 560, "red": 668, "nir": 842, "rededge": 717}
    for bi, band in enumerate(REDEDGE_M.bands):
        # auto-exposure: the brightest surface (≤ 0.6) lands well below saturation
        bc = BandCalibration(*cal[band], exposure_s=exposure_for(0.6, irr[band], cal[band][0]))
        dn = micasense_dn(refl[band], irr[band], bc, vignetting_poly(REDEDGE_M, bi), rng)
        xmp = micasense_xmp(REDEDGE_M, band, band.capitalize(), bi, centers[band], 20, bc, irr[band],
                            (math.radians(55), math.radians(170)), f"CAP{cid[-4:]}{bi}",
                            "FLIGHT", 120.0, 400000 + seed, (10.0, 0.0, 0.0))
        write_micasense_tiff(folder / f"{cid}_{bi + 1}.tif", dn, REDEDGE_M, when, 48.94, 106.16,
                             1000.0, bc, xmp)


@pytest.mark.slow
def test_synthetic_reflectance_and_ndvi_against_truth(tmp_path: Path) -> None:
    from belcheer.simulate.cameras import REDEDGE_M
    from belcheer.simulate.render import panel_scene
    from belcheer.simulate.run import PANEL_ALBEDO

    h, w = REDEDGE_M.height_px, REDEDGE_M.width_px
    rng = np.random.default_rng(7)
    cover = np.clip(np.cumsum(rng.normal(0, 0.02, (h, w)), axis=1) % 1.0, 0, 1).astype(np.float32)
    grass = dict(zip(BANDS, (0.035, 0.085, 0.045, 0.44, 0.22), strict=True))
    soil = dict(zip(BANDS, (0.085, 0.125, 0.170, 0.245, 0.205), strict=True))
    truth = {b: (cover * grass[b] + (1 - cover) * soil[b]).astype(np.float32) for b in BANDS}
    t0 = dt.datetime(2026, 7, 15, 3, 0, tzinfo=dt.UTC)
    irr0 = {"blue": 1.2, "green": 1.1, "red": 0.95, "nir": 0.62, "rededge": 0.85}
    panel = panel_scene(REDEDGE_M, PANEL_ALBEDO, np.random.default_rng(1))
    frames = tmp_path / "frames"
    frames.mkdir()
    _write_capture(frames, "IMG_0000", {b: panel[i] for i, b in enumerate(REDEDGE_M.bands)}, irr0, t0, 1)
    # a cloud dims the light by 30 % for the second flight capture
    for k, light in ((1, 1.0), (2, 0.7)):
        _write_capture(frames, f"IMG_000{k}", truth, {b: v * light for b, v in irr0.items()},
                       t0 + dt.timedelta(minutes=k), 1 + k)
    survey = scan(frames, quality=False, panels=["IMG_0000"])
    assert [c.id for c in survey.panel_captures] == ["IMG_0000"]
    cal = calibrate(survey, panel_albedo=PANEL_ALBEDO)
    assert cal.method == "both"
    for cid in ("IMG_0001", "IMG_0002"):
        cap = survey.capture(cid)
        rho = {f.band.name: cal(f, read_dn(f)) for f in cap.frames}
        for b in BANDS:
            rmse = float(np.sqrt(np.nanmean((rho[b] - truth[b]) ** 2)))
            assert rmse <= 0.02, (cid, b, rmse)
        ndvi = (rho["nir"] - rho["red"]) / (rho["nir"] + rho["red"])
        ndvi_t = (truth["nir"] - truth["red"]) / (truth["nir"] + truth["red"])
        assert float(np.sqrt(np.nanmean((ndvi - ndvi_t) ** 2))) <= 0.03

"""``simulate()``: a whole synthetic survey — frames that read like real camera files, and the
ground truth every accuracy test in the project measures against."""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import Transformer

from belcheer.errors import ConfigError, InputError
from belcheer.fileio import atomic_path, write_json_atomic
from belcheer.grid import geobox_for_bounds
from belcheer.progress import ProgressCallback, no_progress
from belcheer.simulate import flight
from belcheer.simulate import layout as lay
from belcheer.simulate import truth as tr
from belcheer.simulate.cameras import (
    CAMERAS,
    CameraModel,
    band_camera,
    vignetting_poly,
    with_vignetting,
)
from belcheer.simulate.flight import (
    FW_SPEED_M_S,
    LOCAL_UTC_OFFSET_H,
    clear_sky_irradiance,
    fly,
    footprint,
    plan_flight,
    solar_position,
)
from belcheer.simulate.metadata import (
    dji_ms_xmp,
    dji_xmp,
    micasense_xmp,
    write_dji_jpeg,
    write_dji_ms_tiff,
    write_micasense_tiff,
)
from belcheer.simulate.radiometry import (
    DJI_UNIT,
    BandCalibration,
    DJIBandCalibration,
    dji_dn,
    dji_exposure_us,
    exposure_for,
    exposure_gains,
    micasense_dn,
    rgb_dn,
)
from belcheer.simulate.render import panel_scene, render_reflectance
from belcheer.simulate.scene import COVER_NODATA, SCALE, render_truth
from belcheer.simulate.spectra import BANDS, FWHM_NM, WAVELENGTHS_NM

#: metres of scene kept round the flight area so every frame sees only simulated ground
MARGIN_M = 90.0
#: truth raster resolution, metres (finer than both cameras' GSD at their default altitude)
TRUTH_RES_M = 0.08
DEFAULT_AREA_HA = {"rgb": 3.0, "rgb-12mp": 3.0, "rededge": 2.0, "p4m": 2.0, "m3m": 2.0}
DEFAULT_ALTITUDE_M = {"rgb": 100.0, "rgb-12mp": 100.0, "rededge": 120.0, "p4m": 80.0, "m3m": 100.0}
#: cameras whose frames are one file per band (a panel capture comes first)
MULTISPECTRAL = frozenset({"rededge", "p4m", "m3m"})
DEFAULT_DATE = _dt.date(2026, 7, 15)
#: take-off time, local (UTC+8)
START_LOCAL = _dt.time(11, 0, 0)
#: reflectance of the calibration panel per band (like a MicaSense RP04 panel's certificate)
PANEL_ALBEDO = {"blue": 0.538, "green": 0.542, "red": 0.541, "rededge": 0.539, "nir": 0.533}
#: MicaSense RadiometricCalibration (a1, a2, a3) per band
_MS_CAL = {"blue": (1.62e-4, 1.05e-7, 1.3e-6), "green": (1.88e-4, 1.10e-7, 1.2e-6),
           "red": (2.02e-4, 1.15e-7, 1.4e-6), "nir": (2.41e-4, 0.95e-7, 1.1e-6),
           "rededge": (2.12e-4, 1.00e-7, 1.25e-6)}
_MS_LABEL = {"blue": "Blue", "green": "Green", "red": "Red", "nir": "NIR", "rededge": "Red edge"}
_DJI_LABEL = {"blue": "Blue", "green": "Green", "red": "Red", "nir": "NIR", "rededge": "RedEdge"}
#: DJI SensorGainAdjustment (pCam: sensitivity relative to NIR) and the sunlight sensor's own
#: per-band sensitivity (its relative units)
_DJI_PCAM = {"blue": 1.412, "green": 1.205, "red": 1.093, "rededge": 1.041, "nir": 1.0}
_DJI_SUNLIGHT = {"blue": 0.83, "green": 0.91, "red": 1.07, "rededge": 1.12, "nir": 1.21}
#: file suffix per band: P4M's last digit of DJI_xxxN.TIF, Mavic 3M's _MS_x
_P4M_DIGIT = {"blue": 1, "green": 2, "red": 3, "rededge": 4, "nir": 5}
_M3M_SUFFIX = {"green": "MS_G", "red": "MS_R", "rededge": "MS_RE", "nir": "MS_NIR"}
GPS_SIGMA_H_M = 2.0
GPS_SIGMA_V_M = 3.0
#: RTK fixed solution: per-fix σ relative to the base (horizontal per axis, vertical), metres
RTK_SIGMA_H_M = 0.02
RTK_SIGMA_V_M = 0.03
#: an RTK base set up over an unsurveyed point takes its own autonomous fix as truth, so every
#: rover position shares that fix's error: σ per horizontal axis and vertical, metres
RTK_BASE_SIGMA_H_M = 1.5
RTK_BASE_SIGMA_V_M = 2.5
ATTITUDE_SIGMA_DEG = 1.0
ATTITUDE_RECORD_SIGMA_DEG = 0.5


@dataclass(frozen=True)
class Simulation:
    """Where a simulated survey was written, and the facts a test needs about it.

    Paths are absolute. ``epsg`` is the truth's CRS (32648); ``gsd_m`` the nominal frame GSD
    at the flight altitude; ``center_lonlat`` WGS 84 degrees.
    """

    out_dir: Path
    frames_dir: Path
    truth_dir: Path
    reflectance_path: Path
    ndvi_path: Path
    landcover_path: Path
    poses_path: Path
    checkpoints_path: Path
    parcels_path: Path
    parcel_truth_path: Path
    quadrats_path: Path
    training_path: Path
    simulation_json: Path
    epsg: int
    gsd_m: float
    soum: str
    aimag: str
    soum_en: str
    aimag_en: str
    center_lonlat: tuple[float, float]
    camera: str
    n_captures: int
    seed: int
    scene_seed: int
    date: _dt.date
    degradation: float
    #: "autonomous" (independent per-fix GPS errors) or "rtk" (cm-level fixes sharing the
    #: unsurveyed base's offset ``gps_bias_m``)
    gnss: str = "autonomous"
    #: σ per horizontal axis of a fix's absolute error, metres (for rtk: the base's)
    gps_sigma_h_m: float = GPS_SIGMA_H_M
    gps_bias_m: tuple[float, float, float] = (0.0, 0.0, 0.0)
    #: scene and flight options of issue 18 (see :func:`simulate`)
    lake_fraction: float = 0.0
    texture: str = "normal"
    platform: str = "multirotor"
    blocks: int = 1
    #: corner fall-off of the lens vignetting (None: the camera's own model, see cameras.py)
    vignetting: float | None = None
    #: σ of the per-frame exposure drift, stops (EV); the truth is poses.csv ``exposure_gain``
    exposure_jitter_ev: float = 0.0
    #: green/dry/bare fractional-cover truth COG (absent in simulations written before it)
    cover_path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: (str(v) if isinstance(v, Path | _dt.date) else v) for k, v in d.items()}


def _capture_ms_calibration(cam: CameraModel, irr0: dict[str, float]) -> dict[str, BandCalibration]:
    """Fixed exposure per band for the flight: 0.65 reflectance reaches 40 000 DN above black
    under the clear sky at take-off (gain 1×, ISO 100)."""
    return {b: BandCalibration(*_MS_CAL[b], exposure_s=exposure_for(0.65, irr0[b], _MS_CAL[b][0]))
            for b in cam.bands}


def _capture_dji_calibration(cam: CameraModel, irr0: dict[str, float]) -> dict[str, DJIBandCalibration]:
    """Auto-exposure fixed for the flight per band: 0.65 reflectance at 40 000 DN above black
    under the clear sky at take-off, gain 1×."""
    return {b: DJIBandCalibration(exposure_us=dji_exposure_us(0.65, irr0[b], 1.0, _DJI_PCAM[b]),
                                  gain=1.0, gain_adjustment=_DJI_PCAM[b],
                                  sunlight_sensitivity=_DJI_SUNLIGHT[b]) for b in cam.bands}


def _dji_name(cam: CameraModel, shot, band: str) -> str:
    if cam.key == "p4m":
        return f"DJI_{shot.index:03d}{_P4M_DIGIT[band]}.TIF"
    when = shot.time_utc + _dt.timedelta(hours=LOCAL_UTC_OFFSET_H)
    return f"DJI_{when:%Y%m%d%H%M%S}_{shot.index:04d}_{_M3M_SUFFIX[band]}.TIF"


def simulate(out_dir: Path, *, camera: Literal["rgb", "rgb-12mp", "rededge", "p4m", "m3m"] = "rgb",
             seed: int = 0,
             area_ha: float | None = None, date: _dt.date | None = None,
             scene_seed: int | None = None, degradation: float = 0.0,
             progress: ProgressCallback | None = None,
             altitude_m: float | None = None,
             gnss: Literal["autonomous", "rtk"] = "autonomous",
             lake_fraction: float = 0.0, texture: Literal["normal", "low"] = "normal",
             platform: Literal["multirotor", "fixed-wing"] = "multirotor",
             blocks: int = 1,
             vignetting: float | None = None, exposure_jitter: float = 0.0) -> Simulation:
    """Simulate one drone survey over a steppe scene in Bayangol soum (Selenge), EPSG:32648.

    ``camera`` "rgb" (DJI FC6310 JPEGs at 1.7 MP), "rgb-12mp" (the same at 12 MP, for time and
    memory on full-size frames), "rededge" (MicaSense RedEdge-M), "p4m" (DJI P4 Multispectral
    FC6360, 5 bands) or "m3m" (DJI Mavic 3M, 4 bands). Writes ``out_dir/frames``
    (DJI JPEGs, or band TIFFs with a panel capture first: MicaSense ``IMG_0000``, P4M
    ``DJI_0001…5.TIF``, Mavic 3M ``DJI_<time>_0000_MS_*.TIF``) and ``out_dir/truth`` (reflectance/NDVI/land-cover COGs, poses, checkpoints,
    parcels, per-parcel truth, biomass quadrats, training polygons, ``simulation.json``).
    ``area_ha`` is the flown square (default 3 ha RGB, 2 ha RedEdge); ``scene_seed`` (default
    ``seed``) fixes the place, ``date`` (default 2026-07-15) the season and ``degradation``
    (0…1) lowers vegetation cover in the parcels marked degraded — the same ``scene_seed`` and
    ``area_ha`` always give the same ground. Deterministic for given arguments.

    ``altitude_m`` (default 100 m RGB, 120 m RedEdge) also shrinks the scene margin when given,
    which makes small test runs cheap (the scene then differs from the default-altitude one).

    ``gnss`` chooses the positioning: "autonomous" GPS (independent errors, σ 2 m per axis) or
    "rtk" (fixes of σ 2 cm relative to a base, all offset by the base's own unsurveyed fix,
    σ 1.5 m per axis; the offset is in ``Simulation.gps_bias_m``). The written metadata carries
    each mode's accuracy as real cameras do.

    Harder surveys (each changes the scene or flight; the defaults give the runs above):
    ``lake_fraction`` (0…0.6) adds a textureless lake under about that share of the frames;
    ``poses.csv`` then gets ``water_share`` (of each footprint) and ``over_water`` (share ≥ 0.8).
    ``texture`` "low" is uniform steppe grass (no shrubs, stones or dung spots, weak tussocks).
    ``platform`` "fixed-wing" (RGB cameras only) flies at 16 m/s without gimbal: roll noise up
    to ±10°, banking 20–30° in the first and last frame of each line, crab, and frames whose
    metadata holds only EXIF GPS (altitude above sea level; no attitude, no relative altitude).
    ``blocks`` 2 flies two blocks of lines (``block`` 0 west, 1 east in ``poses.csv``) with a
    gap wider than the footprint between them, so no frame of one overlaps one of the other.
    With a fixed wing or two blocks the scene grows to hold every frame's footprint.
    ``vignetting`` (0…0.8) replaces the lens's fall-off by ``1 − vignetting · (r/r₀)²`` (r₀ the
    half-diagonal: corners get ``1 − vignetting`` of the centre's light); ``exposure_jitter``
    (RGB only) gives each frame its own exposure, ``2^e`` with ``e ~ N(0, exposure_jitter²)``
    stops, as an auto-exposure does, written to EXIF ExposureTime. Truth: the polynomial in
    ``simulation.json`` (camera.vignetting_polynomial) and each frame's linear exposure factor
    in ``poses.csv`` (``exposure_gain``).
    """
    cb = progress or no_progress
    if camera not in CAMERAS:
        raise ConfigError(f"unknown camera {camera!r}; choose {', '.join(CAMERAS)}")
    if gnss not in ("autonomous", "rtk"):
        raise ConfigError(f"unknown gnss {gnss!r}; choose autonomous or rtk")
    if not 0.0 <= degradation <= 1.0:
        raise ConfigError(f"degradation {degradation} is outside 0…1")
    if not 0.0 <= lake_fraction <= 0.6:
        raise ConfigError(f"lake fraction {lake_fraction} is outside 0…0.6")
    if texture not in ("normal", "low"):
        raise ConfigError(f"unknown texture {texture!r}; choose normal or low")
    if platform not in ("multirotor", "fixed-wing"):
        raise ConfigError(f"unknown platform {platform!r}; choose multirotor or fixed-wing")
    if platform == "fixed-wing" and camera in MULTISPECTRAL:
        raise ConfigError("the fixed-wing platform flies the RGB cameras only; choose rgb or rgb-12mp")
    if blocks not in (1, 2):
        raise ConfigError(f"blocks {blocks}: choose 1 or 2")
    fixed_wing = platform == "fixed-wing"
    # a survey's own footprints set the scene's extent when frames look far beyond the area
    wide = fixed_wing or blocks > 1
    cam = CAMERAS[camera]
    if vignetting is not None:
        if not 0.0 <= vignetting <= 0.8:
            raise ConfigError(f"vignetting {vignetting} is outside 0…0.8 (corner fall-off)")
        if cam.vendor == "dji":
            raise ConfigError(f"--vignetting is not simulated for the {camera} (its lens model is "
                              "the DJI one written to XMP); choose rgb, rgb-12mp or rededge")
        cam = with_vignetting(cam, vignetting)
    if not 0.0 <= exposure_jitter <= 2.0:
        raise ConfigError(f"exposure jitter {exposure_jitter} EV is outside 0…2 stops")
    if exposure_jitter and camera in MULTISPECTRAL:
        raise ConfigError("exposure jitter is simulated for RGB cameras only (a RedEdge records "
                          "its exposure and the reflectance calibration divides it out)")
    area = DEFAULT_AREA_HA[camera] if area_ha is None else float(area_ha)
    if not 0.05 <= area <= 100:
        raise ConfigError(f"--area-ha {area} is outside 0.05…100 ha")
    alt = DEFAULT_ALTITUDE_M[camera] if altitude_m is None else float(altitude_m)
    fw, fh = cam.footprint_m(alt)
    # lines run N–S, so the image's long side lies E–W; add room for tilt and GPS drift
    need = max(fw, fh) / 2 + 0.08 * alt + 5.0
    # at the default altitudes both cameras share one margin, hence one scene per scene_seed
    margin = MARGIN_M if altitude_m is None else float(np.ceil(need / 10.0) * 10.0)
    if need > margin and not wide:
        raise ConfigError(f"altitude {alt} m gives a footprint wider than the simulated margin "
                          f"({margin:.0f} m); fly at most {DEFAULT_ALTITUDE_M[camera]:.0f} m")
    date = date or DEFAULT_DATE
    scene_seed = seed if scene_seed is None else int(scene_seed)
    out_dir = Path(out_dir).resolve()
    frames_dir, truth_dir = out_dir / "frames", out_dir / "truth"
    to_utm = Transformer.from_crs(4326, lay.EPSG, always_xy=True)
    to_ll = Transformer.from_crs(lay.EPSG, 4326, always_xy=True)

    def lonlat_of(x: float, y: float) -> tuple[float, float]:
        lon, lat = to_ll.transform(x, y)
        return float(lon), float(lat)

    cx, cy = (round(v) for v in to_utm.transform(*lay.CENTER_LONLAT))
    half = float(np.sqrt(area * 1e4) / 2)

    cb(0.0, "flight")
    start_local = _dt.datetime.combine(date, START_LOCAL)
    start_utc = start_local - _dt.timedelta(hours=LOCAL_UTC_OFFSET_H)
    plan = plan_flight((cx, cy), half, cam, alt, **({"speed_m_s": FW_SPEED_M_S} if fixed_wing else {}))
    multispectral = camera in MULTISPECTRAL
    dji = cam.vendor == "dji"
    if gnss == "rtk":
        brng = np.random.default_rng([seed, 5])
        bias = (float(brng.normal(0, RTK_BASE_SIGMA_H_M)), float(brng.normal(0, RTK_BASE_SIGMA_H_M)),
                float(brng.normal(0, RTK_BASE_SIGMA_V_M)))
        sig_h, sig_v = RTK_SIGMA_H_M, RTK_SIGMA_V_M
    else:
        bias, sig_h, sig_v = (0.0, 0.0, 0.0), GPS_SIGMA_H_M, GPS_SIGMA_V_M

    def fly_plan(p):
        return fly(p, cam, start_utc, lonlat_of, lay.GROUND_ALT_M, np.random.default_rng([seed, 2]),
                   gps_sigma_h_m=sig_h, gps_sigma_v_m=sig_v, gps_bias_m=bias,
                   attitude_sigma_deg=ATTITUDE_SIGMA_DEG,
                   attitude_record_sigma_deg=ATTITUDE_RECORD_SIGMA_DEG,
                   panel_xy=(cx - half - 8.0, cy - half - 8.0) if multispectral else None,
                   id_format="IMG_{:04d}" if camera == "rededge" else "DJI_{:04d}", platform=platform)

    shots = fly_plan(plan)
    if blocks > 1:
        plan, shots = flight.fly_two_blocks(plan, cam, fly_plan, lay.GROUND_ALT_M)
    fps = [footprint(cam, s, lay.GROUND_ALT_M) for s in shots if not s.is_panel] \
        if wide or lake_fraction > 0 else []
    cb(0.1, "scene")
    bounds = (cx - half - margin, cy - half - margin, cx + half + margin, cy + half + margin)
    if wide:
        bounds = flight.bounds_holding(fps, bounds)
        margin = max(cx - half - bounds[0], cy - half - bounds[1], bounds[2] - cx - half,
                     bounds[3] - cy - half)
    layout = lay.plan_layout((cx, cy), half, margin, np.random.default_rng([scene_seed, 1]))
    if lake_fraction > 0:
        layout = lay.place_lake(layout, fps, lake_fraction, np.random.default_rng([scene_seed, 7]))
    geobox = geobox_for_bounds(bounds, lay.EPSG, TRUTH_RES_M)
    truth = render_truth(layout, geobox, date, degradation, scene_seed, texture=texture)
    cb(0.2, "frames")
    elev0, _ = solar_position(start_utc, *lay.CENTER_LONLAT)
    clear0 = clear_sky_irradiance(elev0)
    ms_cal: dict[str, Any] = (_capture_dji_calibration(cam, clear0) if dji else
                              _capture_ms_calibration(cam, clear0) if multispectral else {})
    vig = [vignetting_poly(cam, i) for i in range(len(cam.dji_vignetting if dji else cam.vignetting))]
    # its own random stream: surveys without jitter keep every other draw unchanged
    gains = exposure_gains(len(shots), exposure_jitter, np.random.default_rng([seed, 6]))
    if multispectral or not exposure_jitter:
        gains = np.ones(len(shots))
    flight_uid = f"SIMFLIGHT{seed:06d}{scene_seed % 1000000:06d}"[:20]

    with atomic_path(frames_dir, suffix="") as tmp_frames:
        tmp_frames.mkdir(parents=True)
        for k, shot in enumerate(shots):
            ll = lonlat_of(shot.gps_x, shot.gps_y)
            noise_rng = np.random.default_rng([seed, 3, k])
            if shot.is_panel:
                refl = panel_scene(cam, PANEL_ALBEDO, noise_rng)
            elif dji:
                # each band is its own camera with its lens offset: one ground point, other pixels
                refl = np.concatenate([render_reflectance(truth, band_camera(cam, bi), shot,
                                                          lay.GROUND_ALT_M)
                                       for bi in range(len(cam.bands))])
            else:
                refl = render_reflectance(truth, cam, shot, lay.GROUND_ALT_M)
            if dji:
                when_local = shot.time_utc + _dt.timedelta(hours=LOCAL_UTC_OFFSET_H)
                uuid = f"{seed:08X}-{scene_seed % 65536:04X}-4{shot.index:03X}-8000-SIMCAPTURE{shot.index:02X}"
                for bi, band in enumerate(cam.bands):
                    c = ms_cal[band]
                    dn = dji_dn(refl[bi], shot.irradiance[band], c, vig[bi], noise_rng)
                    xmp = dji_ms_xmp(cam, bi, _DJI_LABEL[band], WAVELENGTHS_NM[band], when_local,
                                     ll[1], ll[0], shot.gps_alt_abs_m, shot.gps_alt_rel_m,
                                     (shot.rec_yaw, shot.rec_pitch, shot.rec_roll),
                                     (shot.rec_yaw, shot.rec_pitch + 90.0, shot.rec_roll), c,
                                     c.sunlight_sensitivity * DJI_UNIT * shot.irradiance[band], uuid,
                                     (sig_h, sig_h, sig_v) if gnss == "rtk" else None)
                    write_dji_ms_tiff(tmp_frames / _dji_name(cam, shot, band), dn, cam, when_local,
                                      ll[1], ll[0], shot.gps_alt_abs_m, c, xmp)
            elif multispectral:
                elev, az = solar_position(shot.time_utc, ll[0], ll[1])
                for bi, band in enumerate(cam.bands):
                    dn = micasense_dn(refl[bi], shot.irradiance[band], ms_cal[band], vig[bi], noise_rng)
                    xmp = micasense_xmp(
                        cam, band, _MS_LABEL[band], bi, WAVELENGTHS_NM[band], FWHM_NM[band],
                        ms_cal[band], shot.irradiance[band], (np.radians(elev), np.radians(az)),
                        f"SIMCAP{seed % 10000:04d}{shot.index:06d}{bi}"[:20], flight_uid,
                        shot.gps_alt_rel_m, 400000 + int(shot.time_utc.timestamp() % 100000),
                        (shot.rec_yaw, shot.rec_pitch + 90.0, shot.rec_roll),
                        (float(sig_h * np.sqrt(2.0)), sig_v))
                    write_micasense_tiff(tmp_frames / f"{shot.capture_id}_{bi + 1}.tif", dn, cam,
                                         shot.time_utc, ll[1], ll[0], shot.gps_alt_abs_m,
                                         ms_cal[band], xmp)
            else:
                light = shot.irradiance["green"] / clear0["green"]
                rgb = rgb_dn(refl, light * float(gains[k]), vig[0], noise_rng)
                when_local = shot.time_utc + _dt.timedelta(hours=LOCAL_UTC_OFFSET_H)
                xmp = None if fixed_wing else dji_xmp(
                    cam, when_local, shot.gps_alt_abs_m, shot.gps_alt_rel_m, shot.rec_yaw,
                    shot.rec_pitch, shot.rec_roll,
                    (shot.rec_yaw, shot.rec_pitch + 90.0, shot.rec_roll), ll[1], ll[0],
                    (sig_h, sig_h, sig_v) if gnss == "rtk" else None)
                write_dji_jpeg(tmp_frames / f"{shot.capture_id}.JPG", rgb, cam, shot.capture_id,
                               when_local, ll[1], ll[0], shot.gps_alt_abs_m, xmp,
                               exposure_s=float(gains[k]) / 800)
            cb(0.2 + 0.6 * (k + 1) / len(shots), f"frame {shot.capture_id}")

    cb(0.8, "truth")
    truth_dir.mkdir(parents=True, exist_ok=True)
    refl_path = tr.write_reflectance_cog(truth_dir / "reflectance.tif", truth.reflectance, geobox, SCALE)
    nd = tr.ndvi_of_truth(truth.reflectance, SCALE)
    ndvi_path = tr.write_single_cog(truth_dir / "ndvi.tif", nd, geobox, "ndvi", nodata=float("nan"),
                                    kind="index", index="NDVI")
    lc_path = tr.write_single_cog(truth_dir / "landcover.tif", truth.landcover, geobox, "landcover",
                                  nodata=0, kind="landcover",
                                  classes="1=pasture,2=cropland,3=bare,4=water,5=built,6=target")
    cover_path = tr.write_cover_cog(truth_dir / "cover.tif", truth.cover, geobox, SCALE, COVER_NODATA)
    poses = _poses_table(shots, lonlat_of, gains)
    if blocks > 1:
        poses["block"] = [s.block for s in shots]
    if layout.lake is not None:
        share = np.full(len(shots), np.nan)
        share[[not s.is_panel for s in shots]] = lay.water_share(fps, layout.lake)
        poses["water_share"] = np.round(share, 4)
        poses["over_water"] = share >= lay.OVER_WATER_SHARE
    poses_path = tr.write_csv(truth_dir / "poses.csv", poses)
    cps = pd.DataFrame([{"id": k, "x": x, "y": y, "z": lay.GROUND_ALT_M,
                         "lon": lonlat_of(x, y)[0], "lat": lonlat_of(x, y)[1],
                         "size_m": layout.target_size_m}
                        for k, (x, y) in layout.checkpoints.items()],
                       columns=["id", "x", "y", "z", "lon", "lat", "size_m"])
    cp_path = tr.write_csv(truth_dir / "checkpoints.csv", cps)
    cp_gdf = gpd.GeoDataFrame(cps, geometry=gpd.points_from_xy(cps.lon, cps.lat), crs="EPSG:4326")
    with atomic_path(truth_dir / "checkpoints.geojson") as tmp:
        cp_gdf.to_file(tmp, driver="GeoJSON", engine="pyogrio")
    parcels_path = tr.write_gpkg(truth_dir / "parcels.gpkg", layout.parcels, "parcels")
    pt = tr.parcel_truth(layout.parcels, refl_path, ndvi_path, layout.degraded_ids, cover_path)
    pt_path = tr.write_csv(truth_dir / "parcel_truth.csv", pt)
    n_quad = int(np.clip(area * 8, 12, 40))
    q = tr.quadrats(layout.parcels, nd, truth.landcover, geobox, n_quad,
                    np.random.default_rng([seed, 4]), lonlat_of, within=lay.flown_square(layout))
    q_path = tr.write_csv(truth_dir / "quadrats.csv", q)
    training_path = tr.write_gpkg(truth_dir / "training.gpkg", layout.training, "training")

    n_captures = len(shots)
    sim = Simulation(
        out_dir=out_dir, frames_dir=frames_dir, truth_dir=truth_dir, reflectance_path=refl_path,
        ndvi_path=ndvi_path, landcover_path=lc_path, poses_path=poses_path,
        checkpoints_path=cp_path, parcels_path=parcels_path, parcel_truth_path=pt_path,
        quadrats_path=q_path, training_path=training_path,
        simulation_json=truth_dir / "simulation.json", epsg=lay.EPSG, gsd_m=cam.gsd_m(alt),
        soum=lay.SOUM, aimag=lay.AIMAG, soum_en=lay.SOUM_EN, aimag_en=lay.AIMAG_EN,
        center_lonlat=lay.CENTER_LONLAT, camera=camera, n_captures=n_captures, seed=seed,
        scene_seed=scene_seed, date=date, degradation=degradation, gnss=gnss,
        gps_sigma_h_m=sig_h if gnss == "autonomous" else RTK_BASE_SIGMA_H_M, gps_bias_m=bias,
        lake_fraction=float(lake_fraction), texture=texture, platform=platform, blocks=int(blocks),
        vignetting=vignetting, exposure_jitter_ev=float(exposure_jitter),
        cover_path=cover_path)
    write_json_atomic(sim.simulation_json, _parameters(sim, cam, plan, layout, ms_cal, clear0,
                                                       area, alt, start_local, margin))
    cb(1.0, "done")
    return sim


def _poses_table(shots, lonlat_of, gains: np.ndarray) -> pd.DataFrame:
    rows = []
    for s, gain in zip(shots, gains, strict=True):
        lon, lat = lonlat_of(s.x, s.y)
        glon, glat = lonlat_of(s.gps_x, s.gps_y)
        row = {"capture_id": s.capture_id, "is_panel": s.is_panel,
               "time_utc": s.time_utc.isoformat(), "lon": lon, "lat": lat,
               "alt_abs_m": s.alt_abs_m, "alt_rel_m": s.alt_rel_m, "yaw": s.yaw, "pitch": s.pitch,
               "roll": s.roll, "x": s.x, "y": s.y, "gps_lon": glon, "gps_lat": glat,
               "gps_x": s.gps_x, "gps_y": s.gps_y, "gps_alt_abs_m": s.gps_alt_abs_m,
               "gps_alt_rel_m": s.gps_alt_rel_m, "rec_yaw": s.rec_yaw, "rec_pitch": s.rec_pitch,
               "rec_roll": s.rec_roll, "exposure_gain": float(gain)}
        row.update({f"irradiance_{b}": v for b, v in s.irradiance.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def _parameters(sim: Simulation, cam: CameraModel, plan, layout, ms_cal, clear0, area, alt,
                start_local, margin) -> dict[str, Any]:
    """Everything needed to understand (or re-run) the simulation, JSON-ready."""
    out = {
        "simulation": sim.to_dict(),
        "scene": {"epsg": lay.EPSG, "center_utm": layout.center_xy, "area_ha": area,
                  "half_side_m": layout.half_m, "margin_m": margin, "truth_res_m": TRUTH_RES_M,
                  "ground_alt_m": lay.GROUND_ALT_M, "well_xy": layout.well_xy,
                  "camp_xy": layout.camp_xy, "piosphere_m": layout.piosphere_m,
                  "degraded_parcels": list(layout.degraded_ids),
                  "crop_peak_doy": layout.crop_peak_doy,
                  "bands": list(BANDS), "wavelengths_nm": WAVELENGTHS_NM,
                  "reflectance_scale": SCALE,
                  "biomass_relation": {"formula": "B = a * exp(b * NDVI), kg DM/ha", "a": tr.BIOMASS_A,
                                       "b": tr.BIOMASS_B, "lognormal_sigma": tr.BIOMASS_NOISE}},
        "camera": {"key": cam.key, "make": cam.make, "model": cam.model,
                   "width_px": cam.width_px, "height_px": cam.height_px,
                   "focal_mm": cam.focal_mm, "focal_px": cam.focal_px,
                   "pixel_pitch_mm": cam.pixel_pitch_mm, "sensor_mm": cam.sensor_mm,
                   "principal_point_px": [cam.width_px / 2, cam.height_px / 2],
                   "distortion_k1_k2_p1_p2_k3": list(cam.distortion), "bands_file_order": list(cam.bands),
                   "vignetting_center_px": list(cam.vignetting_center),
                   "vignetting_polynomial": [list(v) for v in cam.vignetting],
                   "radiometric_calibration": {b: asdict(c) for b, c in ms_cal.items()},
                   "panel_albedo": ({b: PANEL_ALBEDO[b] for b in cam.bands}
                                    if cam.key in MULTISPECTRAL else None),
                   "band_offsets_px": [list(o) for o in cam.band_offsets_px],
                   "dji_vignetting": [list(v) for v in cam.dji_vignetting]},
        "flight": {"altitude_m": alt, "speed_m_s": plan.speed_m_s,
                   "front_overlap": plan.front_overlap, "side_overlap": plan.side_overlap,
                   "headings_deg": [0, 180], "line_x": list(plan.line_x),
                   "n_lines": len(plan.line_x), "triggers_per_line": len(plan.stations),
                   "start_local": start_local.isoformat(), "utc_offset_h": LOCAL_UTC_OFFSET_H,
                   "gnss": sim.gnss, "gps_bias_m": list(sim.gps_bias_m),
                   "gps_sigma_h_m_per_axis": GPS_SIGMA_H_M if sim.gnss == "autonomous" else RTK_SIGMA_H_M,
                   "gps_sigma_v_m": GPS_SIGMA_V_M if sim.gnss == "autonomous" else RTK_SIGMA_V_M,
                   "attitude_sigma_deg": ATTITUDE_SIGMA_DEG, "yaw_sigma_deg": 2 * ATTITUDE_SIGMA_DEG,
                   "attitude_record_sigma_deg": ATTITUDE_RECORD_SIGMA_DEG,
                   "exposure_jitter_ev": sim.exposure_jitter_ev,
                   "clear_sky_irradiance_at_start": clear0},
        "conventions": {
            "pose": "yaw = heading of the image top, deg clockwise from north; pitch −90 = nadir, "
                    "larger pitch tilts the view toward the image top; roll > 0 tilts it toward the "
                    "image right; true values in poses.csv (yaw/pitch/roll, x/y), written ones rec_*/gps_*",
            "pixels": "pixel (u, v) centre at (u+0.5, v+0.5); principal point at (W/2, H/2)",
            "radiometry": "see belcheer.simulate.radiometry docstring",
            "rgb_bands": "RGB JPEG channels show the red/green/blue truth bands",
            "dji_time": "DJI EXIF times are local (UTC+8); MicaSense times are UTC"},
    }
    out["scene"]["texture"] = sim.texture
    out["scene"]["lake"] = None if layout.lake is None else {
        "fraction_asked": sim.lake_fraction, "area_m2": float(layout.lake.area),
        "bounds_utm": list(layout.lake.bounds), "over_water_share": lay.OVER_WATER_SHARE,
        "checkpoints_kept": sorted(layout.checkpoints)}
    fl = out["flight"]
    fl["platform"], fl["blocks"] = sim.platform, sim.blocks
    fl["line_block"] = list(plan.line_block) or [0] * len(plan.line_x)
    if sim.platform == "fixed-wing":
        fl["fixed_wing"] = flight.fixed_wing_parameters()
    return out


def load_parameters(sim_json: Path) -> dict[str, Any]:
    """Read ``truth/simulation.json``."""
    return json.loads(Path(sim_json).read_text(encoding="utf-8"))


def load_simulation(out_dir: Path) -> Simulation:
    """The :class:`Simulation` of a folder written earlier by :func:`simulate` (no re-run)."""
    path = Path(out_dir) / "truth" / "simulation.json"
    if not path.is_file():
        raise InputError(f"{out_dir} holds no simulated survey (no truth/simulation.json); "
                         "write one with `belcheer simulate`")
    d = dict(load_parameters(path)["simulation"])
    for k, f in Simulation.__dataclass_fields__.items():
        if f.type in ("Path", Path):
            d[k] = Path(d[k])
        elif f.type == "Path | None" and d.get(k):
            d[k] = Path(d[k])
    d["date"] = _dt.date.fromisoformat(d["date"])
    d["center_lonlat"] = tuple(d["center_lonlat"])
    if "gps_bias_m" in d:
        d["gps_bias_m"] = tuple(d["gps_bias_m"])
    return Simulation(**d)

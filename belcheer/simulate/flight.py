"""The flight: a lawnmower plan over the area, true and recorded camera poses, capture times,
and the sunlight reaching the ground during the flight.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import Polygon

from belcheer.errors import ConfigError
from belcheer.simulate.cameras import CameraModel, ray_grid, rotation_world_from_camera

#: top-of-atmosphere-like spectral scale per band, W m⁻² nm⁻¹, times sin(elevation)·τ below
_E_SCALE = {"blue": 2.00, "green": 1.86, "red": 1.55, "rededge": 1.42, "nir": 1.02}
_TAU = 0.78
#: UTM easting/northing (metres) → WGS 84 lon/lat (degrees)
LonLatOf = Callable[[float, float], tuple[float, float]]
#: Mongolia's legal time zone (UTC+8), used for EXIF DateTimeOriginal as drones write local time
LOCAL_UTC_OFFSET_H = 8
#: fixed-wing camera without gimbal: σ of the true roll (clipped at ±ROLL_CLIP), of the pitch
#: (clipped at ±PITCH_CLIP) and of the yaw about the crabbed heading, degrees
FW_ROLL_SIGMA_DEG, FW_ROLL_CLIP_DEG = 5.0, 10.0
FW_PITCH_SIGMA_DEG, FW_PITCH_CLIP_DEG = 2.5, 6.0
FW_YAW_SIGMA_DEG = 1.5
#: bank angle of the first and last frame of each line (the aircraft is still or already in
#: its turn), degrees
FW_BANK_DEG = (20.0, 30.0)
#: crab angle of the airframe against the crosswind, degrees (one wind for the whole flight)
FW_CRAB_DEG = (2.0, 6.0)
FW_SPEED_M_S = 16.0


@dataclass(frozen=True)
class FlightPlan:
    """A serpentine over a square area: flight lines run north–south (heading 0° / 180°)."""

    altitude_m: float
    speed_m_s: float
    front_overlap: float
    side_overlap: float
    line_x: tuple[float, ...]      # UTM easting of each line
    stations: tuple[float, ...]    # UTM northings of the triggers along a line
    #: block index (0, 1, …) of each line; empty = one block
    line_block: tuple[int, ...] = ()


@dataclass(frozen=True)
class Shot:
    """One capture: true pose (what rendered the image) and the pose written to its headers."""

    index: int
    capture_id: str
    time_utc: _dt.datetime
    x: float
    y: float
    alt_abs_m: float               # true, above mean sea level
    alt_rel_m: float               # true, above take-off
    yaw: float
    pitch: float
    roll: float
    gps_x: float
    gps_y: float
    gps_alt_abs_m: float
    gps_alt_rel_m: float
    rec_yaw: float
    rec_pitch: float
    rec_roll: float
    irradiance: dict[str, float]   # true spectral irradiance at the ground, W m⁻² nm⁻¹
    is_panel: bool = False
    block: int = 0                 # flight block (``FlightPlan.line_block``) of the capture


def plan_flight(center_xy: tuple[float, float], half_m: float, cam: CameraModel,
                altitude_m: float, front_overlap: float = 0.75, side_overlap: float = 0.65,
                speed_m_s: float = 8.0) -> FlightPlan:
    """Lines and trigger stations covering ``center ± half_m`` with the given overlaps.

    The image's long side lies across the track, so line spacing uses the footprint width
    and trigger spacing the footprint height.
    """
    fw, fh = cam.footprint_m(altitude_m)
    line_sp = fw * (1.0 - side_overlap)
    trig_sp = fh * (1.0 - front_overlap)
    n_lines = max(2, math.ceil(2 * half_m / line_sp) + 1)
    n_trig = max(3, math.ceil(2 * half_m / trig_sp) + 1)
    cx, cy = center_xy
    xs = np.linspace(cx - half_m, cx + half_m, n_lines)
    ys = np.linspace(cy - half_m, cy + half_m, n_trig)
    return FlightPlan(altitude_m, speed_m_s, front_overlap, side_overlap,
                      tuple(float(x) for x in xs), tuple(float(y) for y in ys))


def split_blocks(plan: FlightPlan, cam: CameraModel, gap_m: float) -> FlightPlan:
    """The plan flown as two blocks that share no ground: a west and an east block of
    ``max(2, ceil(n/2))`` lines each at the plan's line spacing, their facing lines ``gap_m``
    apart (UTM metres; more than the footprint width, so no frame of one block overlaps one of
    the other), centred on the plan's centre."""
    fw, _ = cam.footprint_m(plan.altitude_m)
    if gap_m <= fw:
        raise ConfigError(f"block gap {gap_m:.0f} m is not wider than the footprint ({fw:.0f} m)")
    xs = plan.line_x
    spacing = fw * (1.0 - plan.side_overlap)
    nb = max(2, math.ceil(len(xs) / 2))
    cx = (xs[0] + xs[-1]) / 2
    west = [cx - gap_m / 2 - (nb - 1 - i) * spacing for i in range(nb)]
    east = [cx + gap_m / 2 + i * spacing for i in range(nb)]
    return FlightPlan(plan.altitude_m, plan.speed_m_s, plan.front_overlap, plan.side_overlap,
                      tuple(float(x) for x in west + east), plan.stations,
                      tuple([0] * nb + [1] * nb))


def fly_two_blocks(plan: FlightPlan, cam: CameraModel, fly_plan: Callable[[FlightPlan], list[Shot]],
                   ground_alt_m: float) -> tuple[FlightPlan, list[Shot]]:
    """``plan`` flown (by ``fly_plan``) as two blocks (:func:`split_blocks`), the gap widened
    until no true footprint of one block comes within 2 m of one of the other, tilts and
    banking included."""
    fw, _ = cam.footprint_m(plan.altitude_m)
    gap = 1.2 * fw
    for _ in range(30):
        two = split_blocks(plan, cam, gap)
        shots = fly_plan(two)
        fp = [shapely.union_all([footprint(cam, s, ground_alt_m) for s in shots
                                 if s.block == b and not s.is_panel]) for b in (0, 1)]
        if not fp[0].buffer(2.0).intersects(fp[1]):
            return two, shots
        gap += 0.2 * fw
    raise ConfigError("could not separate the two flight blocks; fly lower or on a multirotor")


def bounds_holding(footprints: list[Polygon], bounds: tuple[float, float, float, float],
                   pad_m: float = 10.0) -> tuple[float, float, float, float]:
    """``bounds`` (UTM metres) grown to hold every footprint plus ``pad_m``, on a 10 m grid."""
    x0, y0, x1, y1 = shapely.total_bounds(np.asarray(footprints, dtype=object))
    return (min(bounds[0], float(np.floor(x0 / 10) * 10 - pad_m)),
            min(bounds[1], float(np.floor(y0 / 10) * 10 - pad_m)),
            max(bounds[2], float(np.ceil(x1 / 10) * 10 + pad_m)),
            max(bounds[3], float(np.ceil(y1 / 10) * 10 + pad_m)))


def fixed_wing_parameters() -> dict[str, object]:
    """The fixed-wing pose model's constants, for ``simulation.json``."""
    return {"roll_sigma_deg": FW_ROLL_SIGMA_DEG, "roll_clip_deg": FW_ROLL_CLIP_DEG,
            "pitch_sigma_deg": FW_PITCH_SIGMA_DEG, "pitch_clip_deg": FW_PITCH_CLIP_DEG,
            "yaw_sigma_deg": FW_YAW_SIGMA_DEG, "bank_line_ends_deg": list(FW_BANK_DEG),
            "crab_deg": list(FW_CRAB_DEG), "speed_m_s": FW_SPEED_M_S,
            "written_metadata": "EXIF GPS only (altitude above sea level); no XMP, no attitude"}


def footprint(cam: CameraModel, shot: Shot, ground_alt_m: float, step_px: int = 40) -> Polygon:
    """Ground seen by a shot's true pose on flat ground at ``ground_alt_m``: the image border's
    rays (every ``step_px`` pixels, lens distortion included) meet the ground, UTM metres."""
    xn, yn = ray_grid(cam)
    h, w = xn.shape
    top = [(0, c) for c in range(0, w, step_px)]
    right = [(r, w - 1) for r in range(0, h, step_px)]
    bottom = [(h - 1, c) for c in range(w - 1, 0, -step_px)]
    left = [(r, 0) for r in range(h - 1, 0, -step_px)]
    rc = np.array(top + right + bottom + left)
    x, y = xn[rc[:, 0], rc[:, 1]].astype(np.float64), yn[rc[:, 0], rc[:, 1]].astype(np.float64)
    R = rotation_world_from_camera(shot.yaw, shot.pitch, shot.roll)
    d = R @ np.vstack([x, y, np.ones_like(x)])
    if np.any(d[2] >= -1e-6):
        raise ConfigError(f"frame {shot.capture_id} looks above the horizon; it has no footprint")
    t = (ground_alt_m - shot.alt_abs_m) / d[2]
    return Polygon(np.column_stack([shot.x + t * d[0], shot.y + t * d[1]]))


def solar_position(when_utc: _dt.datetime, lon: float, lat: float) -> tuple[float, float]:
    """Solar elevation and azimuth (degrees, azimuth clockwise from north), NOAA low-precision
    formulas (±0.5°): enough to set the light level of a simulated flight."""
    doy = when_utc.timetuple().tm_yday
    hour = when_utc.hour + when_utc.minute / 60 + when_utc.second / 3600
    g = 2 * math.pi / 365 * (doy - 1 + (hour - 12) / 24)
    eqt = 229.18 * (0.000075 + 0.001868 * math.cos(g) - 0.032077 * math.sin(g)
                    - 0.014615 * math.cos(2 * g) - 0.040849 * math.sin(2 * g))
    decl = (0.006918 - 0.399912 * math.cos(g) + 0.070257 * math.sin(g) - 0.006758 * math.cos(2 * g)
            + 0.000907 * math.sin(2 * g) - 0.002697 * math.cos(3 * g) + 0.00148 * math.sin(3 * g))
    tst = hour * 60 + eqt + 4 * lon
    ha = math.radians(tst / 4 - 180)
    phi = math.radians(lat)
    cos_z = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(ha)
    zen = math.acos(max(-1.0, min(1.0, cos_z)))
    az = math.degrees(math.atan2(math.sin(ha), math.cos(ha) * math.sin(phi) - math.tan(decl) * math.cos(phi))) + 180
    return 90 - math.degrees(zen), az % 360


def clear_sky_irradiance(elevation_deg: float) -> dict[str, float]:
    """Spectral irradiance on a horizontal surface under a clear sky, W m⁻² nm⁻¹ per band."""
    s = max(math.sin(math.radians(elevation_deg)), 0.05)
    return {b: v * s * _TAU for b, v in _E_SCALE.items()}


def fly(plan: FlightPlan, cam: CameraModel, start_utc: _dt.datetime, lonlat_of: LonLatOf, ground_alt_m: float,
        rng: np.random.Generator, *, gps_sigma_h_m: float = 2.0, gps_sigma_v_m: float = 3.0,
        baro_sigma_m: float = 0.3, attitude_sigma_deg: float = 1.0,
        attitude_record_sigma_deg: float = 0.5, panel_xy: tuple[float, float] | None = None,
        id_format: str = "DJI_{:04d}", first_index: int = 1,
        gps_bias_m: tuple[float, float, float] = (0.0, 0.0, 0.0),
        platform: str = "multirotor") -> list[Shot]:
    """Fly the plan: true poses wobble about the nominal nadir attitude (σ ``attitude_sigma_deg``,
    yaw twice that), recorded angles add ``attitude_record_sigma_deg``; GPS adds independent
    Gaussian errors (σ per horizontal axis ``gps_sigma_h_m``, vertical ``gps_sigma_v_m``), the
    barometric relative altitude ``baro_sigma_m``. ``gps_bias_m`` (east, north, up) is added to
    every fix: the offset an RTK base set up over an unsurveyed point gives the whole flight.
    Light varies as a thin cloud passes.

    With ``panel_xy`` a first, on-ground capture (index 0) of the calibration panel is added,
    taken 1 m above it before take-off.

    ``platform`` "fixed-wing" flies a camera fixed to the airframe, without gimbal: true roll
    σ 5° clipped at ±10°, pitch σ 2.5° clipped at ±6°, yaw along the track plus one crab angle
    (2–6°, against one crosswind) and σ 1.5°; the first and last frame of each line bank 20–30°
    into the turn (the view then tilts away from it). Nothing of the attitude nor a relative
    altitude is recorded: ``rec_*`` and ``gps_alt_rel_m`` are NaN. Turns take 25 s, not 12 s.
    """
    fixed_wing = platform == "fixed-wing"
    if platform not in ("multirotor", "fixed-wing"):
        raise ConfigError(f"unknown platform {platform!r}; choose multirotor or fixed-wing")
    times: list[float] = []
    poses: list[tuple[float, float, float]] = []  # x, y, heading
    #: per pose: line index, and -1 / +1 for a line's first / last frame (else 0)
    where: list[tuple[int, int]] = []
    turn_s = 25.0 if fixed_wing else 12.0
    t = 0.0
    prev = None
    for li, x in enumerate(plan.line_x):
        ys = plan.stations if li % 2 == 0 else plan.stations[::-1]
        heading = 0.0 if li % 2 == 0 else 180.0
        for j, y in enumerate(ys):
            if prev is not None:
                d = math.hypot(x - prev[0], y - prev[1])
                t += d / plan.speed_m_s + (turn_s if prev[2] != heading else 0.0)
            times.append(t)
            poses.append((x, y, heading))
            where.append((li, -1 if j == 0 else (1 if j == len(ys) - 1 else 0)))
            prev = (x, y, heading)
    duration = max(times[-1], 1.0)
    cloud_t = rng.uniform(0.3, 0.7) * duration
    cloud_w = max(0.12 * duration, 10.0)
    depth = rng.uniform(0.15, 0.3)

    def light(ts: float) -> dict[str, float]:
        when = start_utc + _dt.timedelta(seconds=ts)
        lon, lat = lonlat_of(poses[0][0], poses[0][1])
        elev, _ = solar_position(when, lon, lat)
        trans = 1.0 - depth * math.exp(-(((ts - cloud_t) / cloud_w) ** 2))
        return {b: v * trans for b, v in clear_sky_irradiance(elev).items()}

    shots: list[Shot] = []
    if panel_xy is not None:
        ts = -90.0
        shots.append(Shot(0, id_format.format(first_index - 1), start_utc + _dt.timedelta(seconds=ts),
                          panel_xy[0], panel_xy[1], ground_alt_m + 1.0, 1.0, 0.0, -90.0, 0.0,
                          panel_xy[0] + gps_bias_m[0] + rng.normal(0, gps_sigma_h_m),
                          panel_xy[1] + gps_bias_m[1] + rng.normal(0, gps_sigma_h_m),
                          ground_alt_m + 1.0 + gps_bias_m[2] + rng.normal(0, gps_sigma_v_m), 0.0, 0.0, -90.0, 0.0,
                          light(ts), is_panel=True))
    if fixed_wing:
        return shots + _fly_fixed_wing(plan, poses, where, times, start_utc, ground_alt_m, rng, light,
                                       gps_sigma_h_m, gps_sigma_v_m, gps_bias_m, id_format,
                                       first_index, len(shots))
    for i, ((x, y, heading), ts) in enumerate(zip(poses, times, strict=True)):
        yaw = heading + rng.normal(0, 2 * attitude_sigma_deg)
        pitch = -90.0 + rng.normal(0, attitude_sigma_deg)
        roll = rng.normal(0, attitude_sigma_deg)
        alt_rel = plan.altitude_m + rng.normal(0, 0.5)
        tx, ty = x + rng.normal(0, 0.3), y + rng.normal(0, 0.3)   # true position off the plan
        shots.append(Shot(
            len(shots), id_format.format(first_index + i), start_utc + _dt.timedelta(seconds=ts),
            tx, ty, ground_alt_m + alt_rel, alt_rel, yaw % 360.0, pitch, roll,
            tx + gps_bias_m[0] + rng.normal(0, gps_sigma_h_m),
            ty + gps_bias_m[1] + rng.normal(0, gps_sigma_h_m),
            ground_alt_m + alt_rel + gps_bias_m[2] + rng.normal(0, gps_sigma_v_m), alt_rel + rng.normal(0, baro_sigma_m),
            (yaw + rng.normal(0, attitude_record_sigma_deg)) % 360.0,
            pitch + rng.normal(0, attitude_record_sigma_deg), roll + rng.normal(0, attitude_record_sigma_deg),
            light(ts), block=plan.line_block[where[i][0]] if plan.line_block else 0))
    return shots


def _turn_is_right(plan: FlightPlan, line_from: int) -> bool:
    """Whether the turn from line ``line_from`` to the next is a right (clockwise) turn; lines
    beyond either end continue the plan's spacing, as the aircraft turns there all the same."""
    xs = plan.line_x
    n = len(xs)
    step = (xs[-1] - xs[0]) / max(n - 1, 1)

    def x_of(i: int) -> float:
        return xs[i] if 0 <= i < n else (xs[0] + i * step if i < 0 else xs[-1] + (i - n + 1) * step)

    northbound = line_from % 2 == 0
    east = x_of(line_from + 1) > x_of(line_from)
    return northbound == east


def _fly_fixed_wing(plan: FlightPlan, poses, where, times, start_utc: _dt.datetime,
                    ground_alt_m: float, rng: np.random.Generator, light, gps_sigma_h_m: float,
                    gps_sigma_v_m: float, gps_bias_m: tuple[float, float, float], id_format: str,
                    first_index: int, first_shot: int) -> list[Shot]:
    """The shots of a gimbal-less camera on a fixed-wing airframe (see :func:`fly`)."""
    crab = float(rng.uniform(*FW_CRAB_DEG)) * float(rng.choice([-1.0, 1.0]))
    nan = float("nan")
    shots: list[Shot] = []
    for i, ((x, y, heading), ts) in enumerate(zip(poses, times, strict=True)):
        li, end = where[i]
        # one wind for the flight: the nose points to the same side of both headings
        yaw = heading + (crab if heading == 0.0 else -crab) + rng.normal(0, FW_YAW_SIGMA_DEG)
        pitch = -90.0 + float(np.clip(rng.normal(0, FW_PITCH_SIGMA_DEG), -FW_PITCH_CLIP_DEG, FW_PITCH_CLIP_DEG))
        roll = float(np.clip(rng.normal(0, FW_ROLL_SIGMA_DEG), -FW_ROLL_CLIP_DEG, FW_ROLL_CLIP_DEG))
        bank = float(rng.uniform(*FW_BANK_DEG))
        if end != 0:
            # banking right drops the right wing: a camera fixed below the airframe then looks left
            right = _turn_is_right(plan, li if end == 1 else li - 1)
            roll = -bank if right else bank
        alt_rel = plan.altitude_m + rng.normal(0, 2.0)
        tx, ty = x + rng.normal(0, 1.5), y + rng.normal(0, 0.5)
        shots.append(Shot(
            first_shot + i, id_format.format(first_index + i), start_utc + _dt.timedelta(seconds=ts),
            tx, ty, ground_alt_m + alt_rel, alt_rel, yaw % 360.0, pitch, roll,
            tx + gps_bias_m[0] + rng.normal(0, gps_sigma_h_m),
            ty + gps_bias_m[1] + rng.normal(0, gps_sigma_h_m),
            ground_alt_m + alt_rel + gps_bias_m[2] + rng.normal(0, gps_sigma_v_m), nan,
            nan, nan, nan, light(ts), block=plan.line_block[li] if plan.line_block else 0))
    return shots

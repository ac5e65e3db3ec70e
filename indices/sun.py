"""Sun position and sunlight-sensor geometry: pure functions, angles in degrees unless named ``_rad``.

Sun position follows NOAA's solar calculator equations (Meeus-based; better than 0.1° for
1950–2050), which is ample for irradiance cosine corrections. The sunlight-sensor model follows
MicaSense's published DLS model: the sensor sees ``E_direct·cos(θ) + E_diffuse`` through a
diffuser whose transmission falls with incidence angle (Fresnel, air → polycarbonate → PTFE).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np


def solar_position(lat: float, lon: float, when: datetime) -> tuple[float, float]:
    """Sun elevation and azimuth (degrees; azimuth clockwise from north) at WGS 84 lat/lon.

    ``when`` is UTC (a naive datetime is taken as UTC: camera clocks write GPS/UTC time).
    """
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    # Julian day and century
    jd = (when - datetime(2000, 1, 1, 12)).total_seconds() / 86400.0 + 2451545.0
    t = (jd - 2451545.0) / 36525.0
    l0 = (280.46646 + t * (36000.76983 + 0.0003032 * t)) % 360.0
    m = 357.52911 + t * (35999.05029 - 0.0001537 * t)
    e = 0.016708634 - t * (0.000042037 + 0.0000001267 * t)
    mr = math.radians(m)
    c = (math.sin(mr) * (1.914602 - t * (0.004817 + 0.000014 * t))
         + math.sin(2 * mr) * (0.019993 - 0.000101 * t) + math.sin(3 * mr) * 0.000289)
    true_long = l0 + c
    omega = 125.04 - 1934.136 * t
    app_long = true_long - 0.00569 - 0.00478 * math.sin(math.radians(omega))
    eps0 = 23.0 + (26.0 + (21.448 - t * (46.815 + t * (0.00059 - t * 0.001813))) / 60.0) / 60.0
    eps = eps0 + 0.00256 * math.cos(math.radians(omega))
    decl = math.asin(math.sin(math.radians(eps)) * math.sin(math.radians(app_long)))
    y = math.tan(math.radians(eps) / 2.0) ** 2
    l0r = math.radians(l0)
    eq_time = 4.0 * math.degrees(y * math.sin(2 * l0r) - 2 * e * math.sin(mr)
                                 + 4 * e * y * math.sin(mr) * math.cos(2 * l0r)
                                 - 0.5 * y * y * math.sin(4 * l0r) - 1.25 * e * e * math.sin(2 * mr))
    minutes = when.hour * 60.0 + when.minute + (when.second + when.microsecond / 1e6) / 60.0
    true_solar = (minutes + eq_time + 4.0 * lon) % 1440.0
    hour_angle = true_solar / 4.0 - 180.0
    latr, har = math.radians(lat), math.radians(hour_angle)
    cos_zen = (math.sin(latr) * math.sin(decl) + math.cos(latr) * math.cos(decl) * math.cos(har))
    zen = math.acos(max(-1.0, min(1.0, cos_zen)))
    elevation = 90.0 - math.degrees(zen)
    az = math.degrees(math.atan2(math.sin(har),
                                 math.cos(har) * math.sin(latr) - math.tan(decl) * math.cos(latr)))
    return elevation, (az + 180.0) % 360.0


def sun_vector_ned(elevation_deg: float, azimuth_deg: float) -> np.ndarray:
    """Unit vector towards the sun in North-East-Down coordinates."""
    el, az = math.radians(elevation_deg), math.radians(azimuth_deg)
    return np.array([math.cos(az) * math.cos(el), math.sin(az) * math.cos(el), -math.sin(el)])


def sensor_normal_ned(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """Unit normal of an up-looking sensor (body ``[0, 0, -1]``) after yaw/pitch/roll, in NED."""
    y, p, r = (math.radians(-a) for a in (yaw_deg, pitch_deg, roll_deg))
    ryaw = np.array([[math.cos(y), math.sin(y), 0], [-math.sin(y), math.cos(y), 0], [0, 0, 1]])
    rpitch = np.array([[math.cos(p), 0, -math.sin(p)], [0, 1, 0], [math.sin(p), 0, math.cos(p)]])
    rroll = np.array([[1, 0, 0], [0, math.cos(r), math.sin(r)], [0, -math.sin(r), math.cos(r)]])
    return ryaw @ rpitch @ rroll @ np.array([0.0, 0.0, -1.0])


def sun_sensor_angle(elevation_deg: float, azimuth_deg: float, yaw_deg: float, pitch_deg: float,
                     roll_deg: float) -> float:
    """Angle between the sun and the sensor normal, degrees (0 = sun straight onto the sensor)."""
    c = float(np.dot(sun_vector_ned(elevation_deg, azimuth_deg),
                     sensor_normal_ned(yaw_deg, pitch_deg, roll_deg)))
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))


def diffuser_transmission(angle_deg: float, indices: tuple[float, ...] = (1.000277, 1.6, 1.38)) -> float:
    """Fresnel transmission (unpolarised) through the stacked layers, for incidence ``angle_deg``."""
    phi = math.radians(angle_deg)
    total = 1.0
    for n1, n2 in zip(indices[:-1], indices[1:], strict=True):
        phi = math.asin(max(-1.0, min(1.0, math.sin(phi) / n1)))
        f1 = math.cos(phi)
        s = n1 / n2 * math.sin(phi)
        if abs(s) >= 1.0:
            return 0.0
        f2 = math.sqrt(1.0 - s * s)
        rs = ((n1 * f1 - n2 * f2) / (n1 * f1 + n2 * f2)) ** 2
        rp = ((n1 * f2 - n2 * f1) / (n1 * f2 + n2 * f1)) ** 2
        total *= min(max(1.0 - 0.5 * rs - 0.5 * rp, 0.0), 1.0)
    return total


def horizontal_irradiance(sensor_irradiance: float, sun_sensor_angle_deg: float,
                          solar_elevation_deg: float, direct_to_diffuse: float = 6.0) -> float:
    """Irradiance on a horizontal surface from a tilted sensor's reading (same units as the input).

    The reading is divided by the diffuser transmission, split into direct and diffuse light
    (clear sky: direct/diffuse ≈ 6) and re-projected onto the horizontal with the sun elevation.
    """
    t = diffuser_transmission(sun_sensor_angle_deg)
    if t <= 0:
        return float("nan")
    reading = sensor_irradiance / t
    diffuse_frac = 1.0 / direct_to_diffuse
    direct = reading / (diffuse_frac + math.cos(math.radians(sun_sensor_angle_deg)))
    return direct * math.sin(math.radians(solar_elevation_deg)) + direct * diffuse_frac

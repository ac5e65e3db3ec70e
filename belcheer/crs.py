"""Coordinate reference systems used in Mongolia, and picking the right one for a place.

Mongolia spans UTM zones 45N–50N (EPSG:32645–32650); legacy cadastre data comes in
Pulkovo-1942 Gauss-Krüger 6° zones 13–20 with zone-prefixed eastings (EPSG:28413–28420; the
country itself lies in zones 15–20).
"""

from __future__ import annotations

import math

from pyproj import CRS

from belcheer.errors import CRSError

#: UTM zones (north) that cover Mongolia, west to east.
MONGOLIA_UTM_ZONES: tuple[int, ...] = (45, 46, 47, 48, 49, 50)
#: Pulkovo-1942 Gauss-Krüger zones covering Mongolia and their EPSG codes.
MONGOLIA_GK_EPSG: dict[int, int] = {zone: 28400 + zone for zone in range(15, 21)}
#: the same zones without the zone prefix in the eastings (x = 500 000 on the central meridian):
#: "Pulkovo 1942 / Gauss-Kruger CM 87E" … "CM 117E"
MONGOLIA_GK_CM_EPSG: dict[int, int] = {zone: 2490 + zone for zone in range(15, 21)}


def utm_zone(lon: float) -> int:
    """UTM zone number (1–60) of a longitude in degrees (no Norway/Svalbard exceptions needed here)."""
    if not -180.0 <= lon <= 180.0 or math.isnan(lon):
        raise CRSError(f"longitude {lon} is outside −180…180°")
    return min(int((lon + 180.0) // 6.0) + 1, 60)


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS 84 / UTM zone containing (lon, lat) in degrees: 326zz north, 327zz south."""
    if not -90.0 <= lat <= 90.0 or math.isnan(lat):
        raise CRSError(f"latitude {lat} is outside −90…90°")
    return (32600 if lat >= 0 else 32700) + utm_zone(lon)


def is_mongolian_utm(epsg: int) -> bool:
    """True for WGS 84 / UTM 45N–50N."""
    return epsg in {32600 + z for z in MONGOLIA_UTM_ZONES}


def crs_from_user(value: str | int | CRS) -> CRS:
    """Parse a user-given CRS (``32648``, ``"EPSG:28418"``, WKT or PROJ) with a clear error."""
    if isinstance(value, CRS):
        return value
    text = str(value).strip()
    try:
        return CRS.from_epsg(int(text)) if text.isdigit() else CRS.from_user_input(text)
    except Exception as exc:  # pyproj raises CRSError of its own with a terse text
        raise CRSError(f"cannot understand CRS {text!r}: {exc}; give e.g. EPSG:32648") from exc


def epsg_of(crs: CRS | str | int) -> int | None:
    """EPSG code of a CRS if it has one (min confidence 70), else None."""
    return crs_from_user(crs).to_epsg(min_confidence=70)

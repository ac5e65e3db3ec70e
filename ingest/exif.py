"""EXIF headers via ``exifread`` (``details=False``: no maker notes, fast), normalised.

TIFFs that went through GDAL (``gdal_translate`` of a drone JPEG) keep the camera's EXIF only as
``EXIF_*`` items of the GDAL metadata tag (42112); :func:`exif_from_gdal_metadata` reads those into
the same :class:`ExifInfo`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any, BinaryIO

import exifread

# exifread logs every odd tag at WARNING; a scan of a thousand frames must stay quiet
logging.getLogger("exifread").setLevel(logging.ERROR)


@dataclass(frozen=True)
class ExifInfo:
    """The EXIF facts ingest uses. Angles degrees, altitude metres (negative below sea level),
    ``focal_plane_res`` pixels per millimetre, exposure seconds."""

    make: str | None = None
    model: str | None = None
    serial: str | None = None
    software: str | None = None
    width: int | None = None
    height: int | None = None
    bits: int | None = None
    samples: int | None = None
    time: datetime | None = None
    lat: float | None = None
    lon: float | None = None
    alt: float | None = None
    gps_status_void: bool = False
    exposure_s: float | None = None
    f_number: float | None = None
    iso: float | None = None
    focal_mm: float | None = None
    focal_35mm: float | None = None
    focal_plane_res: float | None = None
    black_level: float | None = None
    orientation: int | None = None
    description: str | None = None

    def merged(self, other: ExifInfo) -> ExifInfo:
        """This info with its missing fields taken from ``other``."""
        return replace(self, **{f.name: getattr(other, f.name) for f in fields(self)
                                if getattr(self, f.name) in (None, "") and
                                getattr(other, f.name) not in (None, "")})


def _num(v: Any) -> float | None:
    if v is None:
        return None
    try:
        out = float(v)
    except (TypeError, ValueError, ZeroDivisionError):
        num, den = getattr(v, "num", None), getattr(v, "den", None)
        if num is None or not den:
            return None
        out = num / den
    return out if out == out and abs(out) != float("inf") else None


def _first(tag: Any) -> float | None:
    if tag is None:
        return None
    values = getattr(tag, "values", tag)
    if isinstance(values, (list, tuple)):
        return _num(values[0]) if values else None
    return _num(values)


def _text(tag: Any) -> str | None:
    if tag is None:
        return None
    values = getattr(tag, "values", tag)
    if isinstance(values, (bytes, bytearray)):
        values = values.decode("utf-8", "replace")
    if isinstance(values, (list, tuple)):
        return None
    text = str(values).strip("\x00 ").strip()
    return text or None


def _dms(tag: Any) -> float | None:
    values = getattr(tag, "values", None)
    if not values or len(values) < 3:
        return None
    d, m, s = (_num(v) for v in values[:3])
    if d is None or m is None or s is None:
        return None
    return d + m / 60.0 + s / 3600.0


def _signed(value: float | None, ref: str | None, negative: str) -> float | None:
    if value is None:
        return None
    return -value if (ref or "").upper().startswith(negative) else value


def parse_exif_time(text: str | None, subsec: str | None = None) -> datetime | None:
    """``2016:06:23 16:31:59`` (+ ``SubSecTime`` digits) as a naive datetime, or None if invalid.

    Cameras write local time (DJI) or UTC (MicaSense) without saying which: the value is kept
    naive, as written."""
    if not text:
        return None
    try:
        t = datetime.strptime(text.strip()[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    digits = re.sub(r"\D", "", subsec or "")
    if digits:
        t = t.replace(microsecond=int((digits + "000000")[:6]))
    return t


def _focal_plane_res(tags: dict[str, Any]) -> float | None:
    res = _first(tags.get("EXIF FocalPlaneXResolution"))
    unit = _first(tags.get("EXIF FocalPlaneResolutionUnit"))
    if not res or res <= 0:
        return None
    # EXIF units: 2 inch, 3 cm, 4 mm, 5 µm (4 and 5 are extensions MicaSense and Parrot use)
    per_mm = {2: 1 / 25.4, 3: 0.1, 4: 1.0, 5: 1000.0}.get(int(unit or 2))
    return res * per_mm if per_mm else None


def read_exif(fh: BinaryIO) -> ExifInfo:
    """Read EXIF from an open image file (JPEG or TIFF); an empty :class:`ExifInfo` if none."""
    fh.seek(0)
    tags = exifread.process_file(fh, details=False, extract_thumbnail=False)
    if not tags:
        return ExifInfo()
    g = tags.get
    lat = _signed(_dms(g("GPS GPSLatitude")), _text(g("GPS GPSLatitudeRef")), "S")
    lon = _signed(_dms(g("GPS GPSLongitude")), _text(g("GPS GPSLongitudeRef")), "W")
    alt = _first(g("GPS GPSAltitude"))
    if alt is not None and _first(g("GPS GPSAltitudeRef")) == 1:
        alt = -alt
    black = g("Image BlackLevel")
    black_values = [x for v in getattr(black, "values", []) or [] if (x := _num(v)) is not None]
    time = parse_exif_time(_text(g("EXIF DateTimeOriginal")) or _text(g("Image DateTime")),
                           _text(g("EXIF SubSecTimeOriginal")) or _text(g("EXIF SubSecTime")))
    bits = g("Image BitsPerSample")
    return ExifInfo(
        make=_text(g("Image Make")),
        model=_text(g("Image Model")),
        serial=_text(g("EXIF BodySerialNumber")) or _text(g("Image Tag 0xC62F")),
        software=_text(g("Image Software")),
        width=_int(g("Image ImageWidth")) or _int(g("EXIF ExifImageWidth")),
        height=_int(g("Image ImageLength")) or _int(g("EXIF ExifImageLength")),
        bits=_int(bits),
        samples=_int(g("Image SamplesPerPixel")),
        time=time,
        lat=lat if lat is not None and -90 <= lat <= 90 else None,
        lon=lon if lon is not None and -180 <= lon <= 180 else None,
        alt=alt,
        gps_status_void=(_text(g("GPS GPSStatus")) or "").upper() == "V",
        exposure_s=_first(g("EXIF ExposureTime")),
        f_number=_first(g("EXIF FNumber")),
        iso=_first(g("EXIF ISOSpeedRatings")) or _first(g("EXIF ISOSpeed")),
        focal_mm=_first(g("EXIF FocalLength")),
        focal_35mm=_first(g("EXIF FocalLengthIn35mmFilm")),
        focal_plane_res=_focal_plane_res(tags),
        black_level=sum(black_values) / len(black_values) if black_values else None,
        orientation=_int(g("Image Orientation")),
        description=_text(g("Image ImageDescription")),
    )


def _int(tag: Any) -> int | None:
    v = _first(tag)
    return int(v) if v is not None and v > 0 else None


_GDAL_ITEM = re.compile(r'<Item name="EXIF_([A-Za-z0-9_]+)"[^>]*>([^<]*)</Item>')


def _gdal_nums(text: str | None) -> list[float]:
    return [float(x) for x in re.findall(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", text or "")]


def exif_from_gdal_metadata(xml: str | None) -> ExifInfo:
    """EXIF facts from GDAL's metadata tag (``<Item name="EXIF_GPSLatitude">(24) (40) (47.53)</Item>``).

    GDAL writes these items itself, as plain escaped text; a regular expression reads them
    without handing attacker-controlled XML to a parser."""
    if not xml:
        return ExifInfo()
    items = dict(_GDAL_ITEM.findall(xml))
    if not items:
        return ExifInfo()

    def one(name: str) -> float | None:
        vals = _gdal_nums(items.get(name))
        return vals[0] if vals else None

    def dms(name: str, ref: str, neg: str) -> float | None:
        vals = _gdal_nums(items.get(name))
        if len(vals) < 3:
            return None
        return _signed(vals[0] + vals[1] / 60 + vals[2] / 3600, items.get(ref), neg)

    alt = one("GPSAltitude")
    if alt is not None and items.get("GPSAltitudeRef", "").strip() in {"0x01", "1"}:
        alt = -alt
    unit = one("FocalPlaneResolutionUnit")
    res = one("FocalPlaneXResolution")
    per_mm = {2: 1 / 25.4, 3: 0.1, 4: 1.0, 5: 1000.0}.get(int(unit or 2))
    return ExifInfo(
        make=(items.get("Make") or "").strip() or None,
        model=(items.get("Model") or "").strip() or None,
        serial=(items.get("BodySerialNumber") or "").strip() or None,
        software=(items.get("Software") or "").strip() or None,
        time=parse_exif_time(items.get("DateTimeOriginal") or items.get("DateTime"),
                             items.get("SubSecTimeOriginal")),
        lat=dms("GPSLatitude", "GPSLatitudeRef", "S"),
        lon=dms("GPSLongitude", "GPSLongitudeRef", "W"),
        alt=alt,
        exposure_s=one("ExposureTime"),
        f_number=one("FNumber"),
        iso=one("ISOSpeedRatings"),
        focal_mm=one("FocalLength"),
        focal_35mm=one("FocalLengthIn35mmFilm"),
        focal_plane_res=res * per_mm if res and per_mm else None,
    )


__all__ = ["ExifInfo", "read_exif", "exif_from_gdal_metadata", "parse_exif_time"]

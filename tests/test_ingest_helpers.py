"""Test helpers for the ingest tests: JPEGs with EXIF GPS and XMP laid out like a DJI camera's."""

from __future__ import annotations

import io
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import numpy as np
import piexif
from PIL import Image

XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"


def dji_xmp(rel_alt: float = 50.0, abs_alt: float = 1550.0, pitch: float = -90.0,
            yaw: float = 0.0, roll: float = 0.0, model: str = "FC300S") -> bytes:
    """An XMP packet with DJI's drone-dji attributes, as a Phantom writes it."""
    return f"""<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="DJI Meta Data"
    xmlns:tiff="http://ns.adobe.com/tiff/1.0/"
    xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/"
   tiff:Make="DJI"
   tiff:Model="{model}"
   drone-dji:AbsoluteAltitude="{abs_alt:+.2f}"
   drone-dji:RelativeAltitude="{rel_alt:+.2f}"
   drone-dji:GimbalRollDegree="{roll:+.2f}"
   drone-dji:GimbalYawDegree="{yaw:+.2f}"
   drone-dji:GimbalPitchDegree="{pitch:+.2f}"
   drone-dji:FlightRollDegree="+0.00"
   drone-dji:FlightYawDegree="{yaw:+.2f}"
   drone-dji:FlightPitchDegree="+0.00">
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>""".encode()


BOMB_XMP = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/"
   drone-dji:RelativeAltitude="+50.00" drone-dji:FlightYawDegree="&lol3;"/>
 </rdf:RDF>
</x:xmpmeta>"""


def _dms(value: float) -> tuple[tuple[int, int], ...]:
    value = abs(value)
    d = int(value)
    m = int((value - d) * 60)
    s = Fraction((value - d - m / 60) * 3600).limit_denominator(100000)
    return ((d, 1), (m, 1), (s.numerator, s.denominator))


def texture(h: int = 600, w: int = 800, seed: int = 0) -> np.ndarray:
    """A sharp, textured RGB image (random blocks of 4 px)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(30, 220, size=(h // 4, w // 4, 3), dtype=np.uint8)
    return np.kron(small, np.ones((4, 4, 1), dtype=np.uint8))


def after_exif(data: bytes) -> int:
    """Offset just past the EXIF APP1 segment of a JPEG (after SOI/APP0 if there is none)."""
    pos = 2
    end = 2
    while data[pos] == 0xFF and data[pos + 1] in (0xE0, 0xE1):
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        end = pos + 2 + length
        if data[pos + 1] == 0xE1 and data[pos + 4:pos + 10] == b"Exif\x00\x00":
            return end
        pos = end
    return end


def write_jpeg(path: Path, pixels: np.ndarray | None = None, *, lat: float | None = 47.9,
               lon: float | None = 106.9, abs_alt: float = 1550.0, time: datetime | None = None,
               xmp: bytes | None = None, make: str = "DJI", model: str = "FC300S",
               focal_mm: float = 3.61) -> Path:
    """A JPEG with EXIF (make, model, time, focal length, GPS) and an XMP APP1 segment after it."""
    pixels = texture() if pixels is None else pixels
    time = time or datetime(2026, 7, 1, 10, 0, 0)
    zeroth = {piexif.ImageIFD.Make: make.encode(), piexif.ImageIFD.Model: model.encode()}
    exif_ifd = {piexif.ExifIFD.DateTimeOriginal: time.strftime("%Y:%m:%d %H:%M:%S").encode(),
                piexif.ExifIFD.FocalLength: (int(focal_mm * 100), 100),
                piexif.ExifIFD.PixelXDimension: pixels.shape[1],
                piexif.ExifIFD.PixelYDimension: pixels.shape[0]}
    gps = {}
    if lat is not None and lon is not None:
        gps = {piexif.GPSIFD.GPSLatitudeRef: b"N" if lat >= 0 else b"S",
               piexif.GPSIFD.GPSLatitude: _dms(lat),
               piexif.GPSIFD.GPSLongitudeRef: b"E" if lon >= 0 else b"W",
               piexif.GPSIFD.GPSLongitude: _dms(lon),
               piexif.GPSIFD.GPSAltitudeRef: 0,
               piexif.GPSIFD.GPSAltitude: (int(abs_alt * 1000), 1000)}
    exif = piexif.dump({"0th": zeroth, "Exif": exif_ifd, "GPS": gps})
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=90, exif=exif)
    data = buf.getvalue()
    if xmp is not None:
        # XMP APP1 goes right after the EXIF APP1 segment, as cameras write it
        cut = after_exif(data)
        seg = XMP_HEADER + xmp
        data = data[:cut] + b"\xff\xe1" + (len(seg) + 2).to_bytes(2, "big") + seg + data[cut:]
    path.write_bytes(data)
    return path

"""One file → one :class:`~belcheer.models.Frame`: headers only (plus an optional decimated pixel read).

Every failure becomes a :class:`~belcheer.models.Problem` on the frame, never an exception: a
zero-byte, truncated, non-image or hostile file must not stop the other 999 frames.

Where values go (units as in :mod:`belcheer.models`):

* ``Pose``: EXIF GPS (else DJI's ``drone-dji:GpsLatitude/GpsLongtitude``, else GDAL ``EXIF_*``
  items); ``alt_rel_m`` from ``drone-dji:RelativeAltitude``; yaw/pitch/roll from the DJI gimbal
  (``Gimbal*Degree``), Sequoia's ``Camera:Yaw/Pitch/Roll`` (0 pitch = nadir, converted to DJI's
  −90), MicaSense heading from ``Camera:IrradianceYaw``/``DLS:Yaw`` (pitch/roll left unknown: the
  DLS sits on the airframe, not on the camera).
* ``Intrinsics``: pixel pitch from EXIF ``FocalPlaneXResolution`` else :mod:`cameras`' sensor table;
  MicaSense's calibrated ``PerspectiveFocalLength``, ``PrincipalPoint`` (mm) and
  ``PerspectiveDistortion`` (Pix4D order k1 k2 k3 p1 p2, stored in OpenCV order k1 k2 p1 p2 k3);
  DJI's factory calibration ``drone-dji:DewarpData`` (fx, fy, principal point offset, k1 k2 p1 p2
  k3 in pixels of the photo as captured, scaled to the stored frame) unless ``DewarpFlag`` is 1.
* ``Radiometry``: exposure, ISO (gain = ISO/100), black level, MicaSense ``RadiometricCalibration``
  or Parrot ``SensorModel``, vignetting centre and polynomial (DJI ``VignettingData`` about its
  calibrated optical centre), DLS irradiance (W m⁻² nm⁻¹), solar angles (MicaSense writes radians;
  stored in degrees); every other vendor radiometric field in ``extra`` under its XMP name.
* ``tags``: the remaining XMP fields (flight/capture UUIDs, DJI flight attitude, DewarpData…) and
  a few EXIF facts (``exif:Software`` …).
"""

from __future__ import annotations

import logging
import math
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

from belcheer.ingest import quality as q
from belcheer.ingest.cameras import band_role, native_size_px, sensor_size_mm
from belcheer.ingest.exif import ExifInfo, exif_from_gdal_metadata, read_exif
from belcheer.ingest.grouping import NameInfo, parse_name
from belcheer.ingest.xmp import (
    HEAD_BYTES,
    BadXMPError,
    UnsafeXMPError,
    find_packet,
    jpeg_packet,
    number,
    numbers,
    packet_from_tag,
    parse_packet,
    scalar,
)
from belcheer.models import Band, Camera, Frame, Intrinsics, Pose, Problem, Radiometry, Severity

#: extensions scanned as frames (case-insensitive); other files are counted and skipped
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".tif", ".tiff"})

# tifffile logs odd tags (GDAL_NODATA it cannot cast…) at WARNING: noise in a scan of 1000 frames
logging.getLogger("tifffile").setLevel(logging.ERROR)

#: pixel budget of one frame: the largest aerial survey cameras have ≈ 150 MP; a header declaring
#: more is refused before any pixel is decoded (a 77 KB TIFF can declare 10¹⁰ pixels)
MAX_FRAME_PIXELS = 200_000_000
#: a frame may exceed its camera's native size by this fraction (rounding in resizers) and no more
_NATIVE_SLACK = 0.01

_JPEG_MAGIC = b"\xff\xd8\xff"
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_GEOTIFF_TAGS = (33550, 33922, 34264, 34735)

#: XMP fields too bulky and useless downstream to keep (raw IMU streams)
_DROP = frozenset({"Camera:IMUAngularVelocity", "Camera:IMUSampleSize", "Camera:IMUTimeOffset",
                   "Camera:IMUFrequency"})
#: Camera:* fields that describe geometry or identity (→ tags); every other Camera:* is radiometric
_CAMERA_NOT_RADIOMETRIC = frozenset({
    "BandName", "CentralWavelength", "WavelengthFWHM", "ModelType", "PrincipalPoint",
    "PerspectiveFocalLength", "PerspectiveFocalLengthUnits", "PerspectiveDistortion",
    "FisheyeAffineSymmetric", "FisheyeAffineMatrix", "FisheyePolynomial", "RigName",
    "RigCameraIndex", "RigRelatives", "RigRelativesReferenceRigCameraIndex", "Yaw", "Pitch",
    "Roll", "FlightUUID", "CaptureUUID", "GPSXYAccuracy", "GPSZAccuracy", "LineReadoutTime",
    "CalibrationPicture", "InvalidPixel", "VignettingCenter", "VignettingPolynomial",
})
_DJI_RADIOMETRIC = frozenset({
    "BlackLevel", "Irradiance", "SensorGain", "SensorGainAdjustment", "VignettingData",
    "ExposureTime", "RadiometricCalibration", "SensorIndex", "BandName", "CentralWavelength",
    "WavelengthFWHM",
})
_MAPPED = frozenset({
    "MicaSense:RadiometricCalibration", "Camera:Irradiance", "DLS:SpectralIrradiance",
    "DLS:HorizontalIrradiance", "DLS:SolarElevation", "DLS:SolarAzimuth", "Camera:SensorModel",
    "drone-dji:BlackLevel", "drone-dji:Irradiance", "Camera:VignettingCenter",
    "Camera:VignettingPolynomial",
})


@dataclass(frozen=True)
class ReadResult:
    """A frame, or the reason a file is not one (``skipped``: a map raster, not a camera frame)."""

    frame: Frame | None
    skipped: str | None = None


def _problem(code: str, message: str, path: Path, error: bool = True) -> Problem:
    return Problem(code, message, Severity.ERROR if error else Severity.WARNING, path)


def _bare(path: Path, problems: list[Problem], name: NameInfo | None = None) -> Frame:
    name = name or parse_name(path.name)
    return Frame(path=path, capture_id=name.capture_id, band=Band("unknown"),
                 band_index=name.band_index, camera=Camera("", ""), intrinsics=None, pose=None,
                 time=None, problems=tuple(problems))


@dataclass
class _Tiff:
    width: int | None = None
    height: int | None = None
    bits: int | None = None
    samples: int | None = None
    xmp: bytes | None = None
    gdal: str | None = None
    geotiff: bool = False
    data_end: int = 0


def _read_tiff(fh: BinaryIO) -> _Tiff:
    import tifffile

    fh.seek(0)
    with tifffile.TiffFile(fh) as tif:
        page = tif.pages.first
        tags = page.tags
        xmp_tag = tags.get(700)
        gdal_tag = tags.get(42112)
        ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts, strict=False) if n]
        return _Tiff(
            width=int(page.imagewidth), height=int(page.imagelength),
            bits=int(page.bitspersample), samples=int(page.samplesperpixel),
            xmp=packet_from_tag(xmp_tag.value) if xmp_tag is not None else None,
            gdal=str(gdal_tag.value) if gdal_tag is not None else None,
            geotiff=any(tags.get(code) is not None for code in _GEOTIFF_TAGS),
            data_end=max(ends, default=0),
        )


def _tiff_truncated(head: bytes, size: int) -> bool:
    """A TIFF whose first IFD lies beyond the end of the file was cut short."""
    if len(head) < 8:
        return True
    order: Literal["little", "big"] = "little" if head[:2] == b"II" else "big"
    if head[2:4] in (b"+\x00", b"\x00+"):  # BigTIFF: 8-byte offset at 8
        return len(head) < 16 or int.from_bytes(head[8:16], order) >= size
    return int.from_bytes(head[4:8], order) >= size


def read_frame(path: Path, *, quality: bool = True, position: str = "auto") -> ReadResult:
    """Read one image file's headers (and, with ``quality``, a decimated copy of its pixels);
    ``position`` = auto, exif or xmp (see :func:`choose_position`)."""
    name = parse_name(path.name)
    try:
        st = path.stat()
    except OSError as exc:  # a dangling symlink, a permission problem
        return ReadResult(_bare(path, [_problem("unreadable", f"{path.name} cannot be read: {exc}", path)], name))
    if not stat.S_ISREG(st.st_mode):  # a FIFO named .jpg would block the scan forever
        return ReadResult(_bare(path, [_problem("unreadable", f"{path.name} is not a regular file", path)], name))
    size = st.st_size
    if size == 0:
        return ReadResult(_bare(path, [_problem("zero_byte", f"{path.name} is empty (0 bytes): "
                                                "copy it again from the card", path)], name))
    try:
        return _read(path, size, name, quality, position)
    except Exception as exc:  # the per-file firewall: nothing in one file may stop the scan
        return ReadResult(_bare(path, [_problem("unreadable", f"{path.name} could not be read "
                                                f"({type(exc).__name__}: {exc}); remove or replace it",
                                                path)], name))


def _read(path: Path, size: int, name: NameInfo, quality: bool, position: str = "auto") -> ReadResult:
    problems: list[Problem] = []
    with open(path, "rb") as fh:
        head = fh.read(HEAD_BYTES)
        if head.startswith(_JPEG_MAGIC):
            kind = "jpeg"
        elif head[:4] in _TIFF_MAGIC:
            kind = "tiff"
        else:
            return ReadResult(_bare(path, [_problem(
                "not_an_image", f"{path.name} is not a JPEG or TIFF image (its first bytes are "
                f"{head[:8]!r}); remove it from the frames folder", path)], name))
        tiff = _Tiff()
        packet: bytes | None = None
        if kind == "tiff":
            try:
                tiff = _read_tiff(fh)
            except Exception as exc:
                code = "truncated" if _tiff_truncated(head, size) else "unreadable"
                return ReadResult(_bare(path, [_problem(
                    code, f"{path.name} is a damaged TIFF ({code}: {exc}); copy it again", path)], name))
            if tiff.data_end > size:
                return ReadResult(_bare(path, [_problem(
                    "truncated", f"{path.name} is cut short: its pixels need {tiff.data_end} bytes "
                    f"but the file has {size}; copy it again from the card", path)], name))
            packet = tiff.xmp or find_packet(fh, head=head)
        else:
            fh.seek(max(0, size - 4096))
            # some cameras pad after the end marker with zeros; other trailers end in FFD9 too
            if b"\xff\xd9" not in fh.read().rstrip(b"\x00")[-1024:]:
                problems.append(_problem("truncated", f"{path.name} is cut short (no JPEG end "
                                         "marker); copy it again from the card", path))
            packet = find_packet(fh, head=head) or jpeg_packet(fh)
            try:
                from PIL import Image

                fh.seek(0)
                with Image.open(fh) as im:
                    tiff.width, tiff.height = im.size
                    tiff.samples = len(im.getbands())
                    tiff.bits = 8
            except Exception as exc:
                return ReadResult(_bare(path, problems + [_problem(
                    "truncated" if problems else "unreadable",
                    f"{path.name} is not a readable JPEG ({exc})", path)], name))
        try:
            exif = read_exif(fh)
        except Exception as exc:
            exif = ExifInfo()
            problems.append(_problem("exif_invalid", f"{path.name}: EXIF unreadable ({exc})", path,
                                     error=False))
    if tiff.gdal:
        exif = exif.merged(exif_from_gdal_metadata(tiff.gdal))
    xmp: dict[str, Any] = {}
    if packet:
        try:
            xmp = parse_packet(packet)
        except UnsafeXMPError as exc:
            problems.append(_problem("xmp_unsafe", f"{path.name}: {exc}; no camera writes that, the "
                                     "file was tampered with — remove it", path))
        except BadXMPError as exc:
            problems.append(_problem("xmp_invalid", f"{path.name}: {exc}; its XMP is ignored", path,
                                     error=False))
    if kind == "tiff" and tiff.geotiff and not (exif.make or exif.model or xmp):
        return ReadResult(None, skipped=f"{path.name} is a georeferenced map raster, not a camera frame")
    frame = build_frame(path, name, exif, xmp, tiff.width, tiff.height, tiff.bits, tiff.samples,
                        problems, position)
    oversize = size_problem(frame, tiff.width, tiff.height)
    if oversize is not None:
        return ReadResult(_add(frame, oversize))
    if quality and frame.usable:
        frame = _with_quality(frame, kind)
    return ReadResult(frame)


def size_problem(frame: Frame, width: int | None, height: int | None) -> Problem | None:
    """A ``too_large`` error when the declared size (pixels, from the header) is beyond the pixel
    budget or larger than the frame's camera can take; None when it is plausible."""
    path = frame.path
    if not width or not height:
        return None
    if width * height > MAX_FRAME_PIXELS:
        return _problem("too_large", f"{path.name} declares {width} × {height} pixels "
                        f"({width * height / 1e6:,.0f} MP), more than any drone camera takes "
                        f"({MAX_FRAME_PIXELS / 1e6:.0f} MP budget); it is not a camera frame — remove it",
                        path)
    native = native_size_px(frame.camera.model, rgb=frame.band.name == "rgb")
    if native is not None:
        long_n, short_n = max(native), min(native)
        if max(width, height) > long_n * (1 + _NATIVE_SLACK) or min(width, height) > short_n * (1 + _NATIVE_SLACK):
            return _problem("too_large", f"{path.name} declares {width} × {height} pixels but a "
                            f"{frame.camera.model} takes at most {native[0]} × {native[1]}; the header is "
                            "forged or the file was edited — remove it", path)
    return None


def _with_quality(frame: Frame, kind: str) -> Frame:
    path = frame.path
    try:
        gray, full = (q.read_decimated_jpeg if kind == "jpeg" else q.read_decimated_tiff)(path)
    except Exception as exc:
        return _add(frame, _problem("truncated", f"{path.name}: pixels cannot be decoded ({exc}); "
                                    "copy it again from the card", path))
    if frame.radiometry.bits_per_sample and frame.radiometry.bits_per_sample < 16 and full > 255:
        full = float(2 ** frame.radiometry.bits_per_sample - 1)
    stats = q.measure(gray, full)
    tags = dict(frame.tags)
    tags.update({"belcheer:Sharpness": round(stats.blur, 6),
                 "belcheer:SaturatedFraction": round(stats.saturated_fraction, 4)})
    frame = _replace(frame, tags=tags)
    if q.is_black(stats, frame.radiometry.black_level):
        return _add(frame, _problem("black", f"{path.name} is black (99 % of pixels within 2 % of "
                                    "the black level): lens cap or failed exposure", path))
    if stats.saturated_fraction > q.SATURATED_WARNING:
        error = stats.saturated_fraction > q.SATURATED_ERROR
        frame = _add(frame, _problem("saturated", f"{path.name} is over-exposed: "
                                     f"{stats.saturated_fraction:.0%} of pixels at full scale", path, error))
    if q.is_blurry(stats):
        frame = _add(frame, _problem("blurry", f"{path.name} looks blurred (sharpness {stats.blur:.4f} "
                                     f"< {q.BLUR_THRESHOLD}); check it, the mosaic may smear there",
                                     path, error=False))
    return frame


def _replace(frame: Frame, **changes: Any) -> Frame:
    from dataclasses import replace

    return replace(frame, **changes)


def _add(frame: Frame, problem: Problem) -> Frame:
    return _replace(frame, problems=frame.problems + (problem,))


# -- from header values to the model --------------------------------------------------------------
def _band(name: NameInfo, xmp: dict[str, Any], samples: int | None) -> Band:
    label_raw = xmp.get("Camera:BandName") or xmp.get("drone-dji:BandName")
    label = scalar(label_raw)
    if isinstance(label, list) or (samples or 1) >= 3 or name.role == "rgb":
        return Band("rgb", label="RGB")
    center = number(xmp.get("Camera:CentralWavelength") or xmp.get("drone-dji:CentralWavelength"))
    fwhm = number(xmp.get("Camera:WavelengthFWHM") or xmp.get("drone-dji:WavelengthFWHM"))
    role = band_role(label, center) or name.role
    if center is None:
        center = name.center_nm
    if role is None:
        return Band("pan", center_nm=center, bandwidth_nm=fwhm, label=label or None)
    return Band(role, center_nm=center, bandwidth_nm=fwhm, label=label or name.suffix)


def _pixel_pitch_mm(exif: ExifInfo, model: str, width: int | None, rgb: bool) -> tuple[float | None, float | None, float | None]:
    """(pixel pitch mm, sensor width mm, sensor height mm) from EXIF or the sensor table."""
    if exif.focal_plane_res and width:
        pitch = 1.0 / exif.focal_plane_res
        return pitch, None, None
    size = sensor_size_mm(model, rgb=rgb)
    if size and width:
        return size[0] / width, size[0], size[1]
    return None, None, None


#: fx, fy, cx offset, cy offset, k1, k2, p1, p2, k3 after DewarpData's "date;"
_DEWARP_TERMS = 9
#: DewarpData whose focal differs more than this from the EXIF focal is not in this frame's
#: pixels (a resize or crop the XMP does not know of): the EXIF focal is the safer guess
_DEWARP_FOCAL_TOLERANCE = 0.10


@dataclass(frozen=True)
class _Lens:
    """A calibrated lens in pixels of the stored frame: focal, principal point (pixel-centre
    convention), OpenCV distortion (k1, k2, p1, p2, k3)."""

    focal_px: float
    cx: float
    cy: float
    distortion: tuple[float, float, float, float, float]


def _dewarp_values(value: Any) -> tuple[float, ...] | None:
    """The nine numbers of a ``DewarpData`` value (``"2018-09-07;3657.02,…"``), or None unless
    there are exactly nine finite ones with positive focal lengths."""
    text = scalar(value)
    if not isinstance(text, str):
        return None
    values = numbers(text.rpartition(";")[2])
    if not values or len(values) != _DEWARP_TERMS or not all(math.isfinite(v) for v in values):
        return None
    return values if values[0] > 0 and values[1] > 0 else None


def _captured_centre(xmp: dict[str, Any], width: int, height: int) -> tuple[float, float, float] | None:
    """(centre x, centre y, scale) of the photo as captured, which DewarpData is written in:
    its centre in captured pixels, and frame pixels per captured pixel.

    DJI writes that centre as ``CalibratedOpticalCenterX/Y`` (2736, 1824 on the 5472×3648 FC6310;
    2640, 1978 on the 5280×3956 Mavic 3E; 800, 650 on the P4 Multispectral's 1600×1300 bands), so
    twice it is the captured size: ODM's P4P test frames, stored at 1368×912, are 1/4 of it.
    Without it the frame is taken as captured. None when the two axes disagree by over 1 % (a
    crop: where the calibration's centre fell is unknown)."""
    ocx = _positive(number(xmp.get("drone-dji:CalibratedOpticalCenterX")))
    ocy = _positive(number(xmp.get("drone-dji:CalibratedOpticalCenterY")))
    if ocx is None or ocy is None:
        return width / 2.0, height / 2.0, 1.0
    sx, sy = width / (2.0 * ocx), height / (2.0 * ocy)
    return (ocx, ocy, sx) if abs(sx - sy) <= 0.01 * sx else None


def _dji_lens(xmp: dict[str, Any], width: int, height: int, exif_focal_px: float | None) -> _Lens | None:
    """DJI's factory lens calibration (``drone-dji:DewarpData``) in pixels of this frame, or None
    when it is absent, malformed, already applied in camera or inconsistent with the frame.

    Layout (DJI Mavic 3M / Matrice 4 user manuals, photo metadata table: "fx, fy, cx, cy, k1, k2,
    p1, p2, k3 … cx, cy: calibrated optical center position, unit pixel, origin point: photo
    center"; Orthority's ``param_io._read_exif_int_param`` reads it the same way, scaling by the
    EXIF-tagged image size): focal lengths in pixels of the captured photo, the principal point
    as an offset from its centre ``CalibratedOpticalCenterX/Y``, then OpenCV's distortion order.
    ``CalibratedFocalLength`` is the lens's design value (8.8 mm / 2.4 µm = 3666.67 px on the
    FC6310), not a calibration, and is not used."""
    if number(xmp.get("drone-dji:DewarpFlag")) == 1:
        return None  # the camera already undistorted the JPEG: its pixels have no distortion left
    values = _dewarp_values(xmp.get("drone-dji:DewarpData"))
    centre = _captured_centre(xmp, width, height) if values else None
    if values is None or centre is None:
        return None
    fx, fy, dx, dy, k1, k2, p1, p2, k3 = values
    ox, oy, scale = centre
    # one focal length in the model: fx and fy differ by 0.18 % on the FC6310 (3657.02, 3650.62),
    # ±0.09 % about the mean, 2.4 captured pixels at the frame's left and right edges
    focal_px = (fx + fy) / 2.0 * scale
    if exif_focal_px and abs(focal_px / exif_focal_px - 1.0) > _DEWARP_FOCAL_TOLERANCE:
        return None
    # DJI's calibration is OpenCV's model, whose pixel centres lie on integer coordinates, as in
    # orthomosaic.frames.scaled_camera: a frame decimated by 1/scale maps c → (c + ½)·scale − ½
    return _Lens(focal_px, (ox + dx + 0.5) * scale - 0.5, (oy + dy + 0.5) * scale - 0.5,
                 (k1, k2, p1, p2, k3))


def _intrinsics(exif: ExifInfo, xmp: dict[str, Any], model: str, width: int | None,
                height: int | None, rgb: bool) -> Intrinsics | None:
    if not width or not height:
        return None
    pitch, sw, sh = _pixel_pitch_mm(exif, model, width, rgb)
    focal_mm = exif.focal_mm if exif.focal_mm and 0.5 < exif.focal_mm < 1000 else None
    focal_px: float | None = None
    cx = cy = None
    distortion: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)
    calibrated = number(xmp.get("Camera:PerspectiveFocalLength"))
    perspective = str(scalar(xmp.get("Camera:ModelType")) or "").lower() == "perspective"
    if perspective and calibrated and pitch and "Camera:RigCameraIndex" in xmp:
        # MicaSense: calibrated values; the focal length is in mm only where the units say so
        if str(scalar(xmp.get("Camera:PerspectiveFocalLengthUnits")) or "").lower() == "mm":
            focal_mm = calibrated
        else:
            focal_mm = calibrated * pitch
        pp = numbers(xmp.get("Camera:PrincipalPoint"))
        if pp and len(pp) == 2:
            cx, cy = pp[0] / pitch, pp[1] / pitch
        dist = numbers(xmp.get("Camera:PerspectiveDistortion"))
        if dist and len(dist) == 5:
            k1, k2, k3, p1, p2 = dist
            distortion = (k1, k2, p1, p2, k3)
    if focal_mm and pitch:
        focal_px = focal_mm / pitch
    elif exif.focal_35mm:
        # 35 mm equivalent: focal_px = f35 / 43.27 mm (full-frame diagonal) × image diagonal px
        focal_px = exif.focal_35mm / 43.27 * math.hypot(width, height)
    lens = _dji_lens(xmp, width, height, focal_px)
    if lens is not None:
        focal_px, cx, cy, distortion = lens.focal_px, lens.cx, lens.cy, lens.distortion
        focal_mm = focal_px * pitch if pitch else focal_mm  # the calibrated focal, as MicaSense's
    if not focal_px:
        return None
    if sw is None and pitch:
        sw, sh = pitch * width, pitch * height
    return Intrinsics(width_px=int(width), height_px=int(height), focal_mm=focal_mm,
                      focal_px=float(focal_px), sensor_width_mm=sw,
                      sensor_height_mm=pitch * height if pitch else sh, cx=cx, cy=cy,
                      distortion=distortion)


def _angle(xmp: dict[str, Any], key: str) -> float | None:
    v = number(xmp.get(key))
    return v if v is not None and math.isfinite(v) else None


#: EXIF GPS and DJI XMP positions further apart than this (metres) are reported with the choice
POSITION_DISAGREE_M = 1.0
#: which position a frame uses: "auto" (see :func:`choose_position`), "exif" or "xmp"
POSITION_SOURCES = ("auto", "exif", "xmp")


def _fix(lat: float | None, lon: float | None) -> tuple[float, float] | None:
    """A usable (lat, lon) in degrees, or None ((0, 0) is what cameras write before a fix)."""
    if lat is None or lon is None or not (math.isfinite(lat) and math.isfinite(lon)):
        return None
    if lat == 0.0 and lon == 0.0:
        return None
    return (float(lat), float(lon))


def _distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Ground distance between two (lat, lon) fixes, metres (equirectangular: fixes metres apart)."""
    k = math.radians(1.0) * 6_371_008.8
    return math.hypot((a[0] - b[0]) * k, (a[1] - b[1]) * k * math.cos(math.radians((a[0] + b[0]) / 2)))


def choose_position(exif: tuple[float, float] | None, xmp: tuple[float, float] | None,
                    prefer: str = "auto") -> tuple[tuple[float, float] | None, str | None, float | None, str]:
    """Pick a frame's (lat, lon) from its EXIF GPS and DJI XMP positions.

    Returns the position, its source ("exif"/"xmp"), their distance in metres (None unless both
    exist) and the reason. ``auto``: within ``POSITION_DISAGREE_M`` the XMP copy (8 decimals,
    where EXIF rounds to 0.01″ ≈ 0.3 m); further apart, EXIF — the drone writes both at once, so
    a difference means one was rewritten afterwards, and post-flight tools (PPK, geotagging)
    rewrite EXIF. ``exif``/``xmp`` force a source when it has a position."""
    if prefer not in POSITION_SOURCES:
        raise ValueError(f"position source {prefer!r}: use auto, exif or xmp")
    dist = _distance_m(exif, xmp) if exif and xmp else None
    if exif is None or xmp is None:
        src = "exif" if exif is not None else ("xmp" if xmp is not None else None)
        note = "" if prefer in ("auto", src) or src is None else f"; it has no {prefer.upper()} position"
        return (exif or xmp), src, None, f"only {src.upper() if src else 'no'} position{note}"
    if prefer == "exif":
        return exif, "exif", dist, "EXIF chosen with --position exif"
    if prefer == "xmp":
        return xmp, "xmp", dist, "XMP chosen with --position xmp"
    if dist is not None and dist > POSITION_DISAGREE_M:
        return exif, "exif", dist, ("EXIF was rewritten after the flight (the drone writes both at once; "
                                    "PPK and geotagging tools rewrite EXIF), so EXIF is used")
    return xmp, "xmp", dist, "XMP carries more decimals than EXIF"


def _pose(exif: ExifInfo, xmp: dict[str, Any], position: str = "auto") -> Pose | None:
    xmp_fix = _fix(number(xmp.get("drone-dji:GpsLatitude")),
                   number(xmp.get("drone-dji:GpsLongtitude") or xmp.get("drone-dji:GpsLongitude")))
    fix, _src, _dist, _why = choose_position(_fix(exif.lat, exif.lon), xmp_fix, position)
    lat, lon = fix if fix is not None else (None, None)
    if lat is None or lon is None:
        return None  # (0, 0) is what cameras write before the GPS has a fix
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    alt_abs = exif.alt if exif.alt is not None else number(xmp.get("drone-dji:AbsoluteAltitude"))
    yaw = _angle(xmp, "drone-dji:GimbalYawDegree")
    pitch = _angle(xmp, "drone-dji:GimbalPitchDegree")
    roll = _angle(xmp, "drone-dji:GimbalRollDegree")
    if yaw is None and pitch is None and "Camera:Yaw" in xmp and "Camera:Pitch" in xmp:
        yaw = _angle(xmp, "Camera:Yaw")
        p = _angle(xmp, "Camera:Pitch")
        pitch = None if p is None else -90.0 + p
        roll = _angle(xmp, "Camera:Roll")
    if yaw is None and "Camera:IrradianceYaw" in xmp:
        yaw = _angle(xmp, "Camera:IrradianceYaw")
    elif yaw is None and "DLS:Yaw" in xmp:
        rad = _angle(xmp, "DLS:Yaw")
        yaw = None if rad is None else math.degrees(rad)
    sigma_h, sigma_v = _gps_accuracy(xmp)
    return Pose(lon=float(lon), lat=float(lat), alt_abs_m=alt_abs,
                alt_rel_m=number(xmp.get("drone-dji:RelativeAltitude")), yaw=yaw, pitch=pitch, roll=roll,
                gps_sigma_h_m=sigma_h, gps_sigma_v_m=sigma_v)


def _positive(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) and v > 0 else None


def _gps_accuracy(xmp: dict[str, Any]) -> tuple[float | None, float | None]:
    """Per-axis horizontal and vertical 1σ of the reported position, metres, where the camera
    writes them. DJI RTK drones write per-axis standard deviations (RtkStdLon/Lat/Hgt); MicaSense
    writes GPSXYAccuracy as a horizontal radius, so it is divided by √2 to give a per-axis σ."""
    lon_sd = _positive(number(xmp.get("drone-dji:RtkStdLon")))
    lat_sd = _positive(number(xmp.get("drone-dji:RtkStdLat")))
    if lon_sd is not None or lat_sd is not None:
        return (max(v for v in (lon_sd, lat_sd) if v is not None),
                _positive(number(xmp.get("drone-dji:RtkStdHgt"))))
    xy = _positive(number(xmp.get("Camera:GPSXYAccuracy")))
    return (None if xy is None else xy / math.sqrt(2.0),
            _positive(number(xmp.get("Camera:GPSZAccuracy"))))


def _radiometry(exif: ExifInfo, xmp: dict[str, Any], bits: int | None) -> Radiometry:
    extra: dict[str, Any] = {}
    for key, value in xmp.items():
        prefix, _, local = key.partition(":")
        if key in _MAPPED or key in _DROP:
            continue
        if prefix in ("DLS", "MicaSense") or (prefix == "Camera" and local not in _CAMERA_NOT_RADIOMETRIC) \
                or (prefix == "drone-dji" and local in _DJI_RADIOMETRIC):
            extra[key] = scalar(value)
    calib = numbers(xmp.get("MicaSense:RadiometricCalibration")) or numbers(scalar(xmp.get("Camera:SensorModel")))
    vc = numbers(xmp.get("Camera:VignettingCenter"))
    vp = numbers(xmp.get("Camera:VignettingPolynomial"))
    if vp is None and "drone-dji:VignettingData" in xmp:
        vp = numbers(xmp.get("drone-dji:VignettingData"))
        cx, cy = number(xmp.get("drone-dji:CalibratedOpticalCenterX")), number(xmp.get("drone-dji:CalibratedOpticalCenterY"))
        vc = (cx, cy) if cx is not None and cy is not None else None
    black = number(xmp.get("drone-dji:BlackLevel"))
    elev, azim = number(xmp.get("DLS:SolarElevation")), number(xmp.get("DLS:SolarAzimuth"))
    iso = exif.iso
    return Radiometry(
        bits_per_sample=bits,
        black_level=black if black is not None else exif.black_level,
        exposure_s=exif.exposure_s if exif.exposure_s and exif.exposure_s < 3600 else None,
        # DJI multispectral writes its analog gain itself; elsewhere gain is ISO / 100
        gain=number(xmp.get("drone-dji:SensorGain")) or (iso / 100.0 if iso else None),
        iso=iso,
        radiometric_calibration=calib,
        vignetting_center=tuple(vc[:2]) if vc and len(vc) >= 2 else None,  # type: ignore[arg-type]
        vignetting_polynomial=vp,
        irradiance=number(xmp.get("Camera:Irradiance")) if "Camera:Irradiance" in xmp
        else number(xmp.get("drone-dji:Irradiance")),
        spectral_irradiance=number(xmp.get("DLS:SpectralIrradiance")),
        horizontal_irradiance=number(xmp.get("DLS:HorizontalIrradiance")),
        # MicaSense DLS writes solar angles in radians
        solar_elevation_deg=math.degrees(elev) if elev is not None else None,
        solar_azimuth_deg=math.degrees(azim) if azim is not None else None,
        extra=extra,
    )


def _tags(exif: ExifInfo, xmp: dict[str, Any], radiometry: Radiometry) -> dict[str, Any]:
    tags = {k: scalar(v) for k, v in xmp.items() if k not in _DROP and k not in radiometry.extra
            and k not in _MAPPED}
    for key, value in (("exif:Software", exif.software), ("exif:ImageDescription", exif.description),
                       ("exif:Orientation", exif.orientation), ("exif:FNumber", exif.f_number),
                       ("exif:FocalLengthIn35mmFilm", exif.focal_35mm),
                       ("exif:GPSStatusVoid", exif.gps_status_void or None)):
        if value is not None:
            tags[key] = value
    return tags


def build_frame(path: Path, name: NameInfo, exif: ExifInfo, xmp: dict[str, Any], width: int | None,
                height: int | None, bits: int | None, samples: int | None,
                problems: list[Problem], position: str = "auto") -> Frame:
    """Assemble a :class:`Frame` from parsed headers (pure: no I/O). ``position`` picks between
    EXIF GPS and DJI XMP positions (:func:`choose_position`); when they are more than
    ``POSITION_DISAGREE_M`` apart the frame gets a ``position_choice`` warning saying which was
    used and why, and the tags ``belcheer:PositionSource`` / ``belcheer:PositionDisagreementM``."""
    make = exif.make or str(scalar(xmp.get("tiff:Make")) or "")
    model = exif.model or str(scalar(xmp.get("tiff:Model")) or scalar(xmp.get("Camera:RigName")) or "")
    band = _band(name, xmp, samples)
    rgb = band.name == "rgb"
    intr = _intrinsics(exif, xmp, model, width or exif.width, height or exif.height, rgb)
    pose = _pose(exif, xmp, position)
    problems = list(problems)
    xmp_fix = _fix(number(xmp.get("drone-dji:GpsLatitude")),
                   number(xmp.get("drone-dji:GpsLongtitude") or xmp.get("drone-dji:GpsLongitude")))
    _fix_used, source, dist, why = choose_position(_fix(exif.lat, exif.lon), xmp_fix, position)
    if dist is not None and dist > POSITION_DISAGREE_M:
        other = "xmp" if source == "exif" else "exif"
        problems.append(_problem("position_choice", f"{path.name}: EXIF GPS and DJI XMP positions are "
                                 f"{dist:.1f} m apart; using {source.upper()}: {why} — "
                                 f"`belcheer ingest --position {other}` uses {other.upper()}", path, error=False))
    if pose is None:
        problems.append(_problem("no_gps", f"{path.name} has no GPS position; it cannot be placed "
                                 "on the map — remove it or add positions (geotag the frames)", path))
    radiometry = _radiometry(exif, xmp, bits or exif.bits)
    band_index = name.band_index
    capture_id = name.capture_id
    if name.vendor == "dji-ms" and name.suffix and name.suffix.isdigit() and band.name == "rgb":
        # DJI_0013.TIF from an RGB camera is its own capture, not band 3 of a P4 Multispectral's
        capture_id, band_index = path.stem, 1
    rig = number(xmp.get("Camera:RigCameraIndex"))
    if name.vendor is None and rig is not None:
        band_index = int(rig) + 1
    tags = _tags(exif, xmp, radiometry)
    if dist is not None:  # both positions present: say which one the frame uses
        tags["belcheer:PositionSource"] = source
        tags["belcheer:PositionDisagreementM"] = round(dist, 3)
    return Frame(path=path, capture_id=capture_id, band=band, band_index=band_index,
                 camera=Camera(make.strip(), model.strip(), exif.serial), intrinsics=intr, pose=pose,
                 time=exif.time, radiometry=radiometry, tags=tags,
                 problems=tuple(problems))


__all__ = ["IMAGE_SUFFIXES", "POSITION_DISAGREE_M", "ReadResult", "build_frame", "choose_position", "read_frame"]

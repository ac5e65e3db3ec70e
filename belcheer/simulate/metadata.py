"""Writing frames the way the cameras do: DJI JPEG (EXIF + ``drone-dji`` XMP in APP1) and
MicaSense 16-bit TIFF (EXIF/GPS IFDs, DNG BlackLevel, XMP in tag 700), laid out like the real
files in ``rededge_tutorial``/``rededge_mx_slovakia`` and ``brighton_beach_rgb``.
"""

from __future__ import annotations

import datetime as _dt
from fractions import Fraction
from pathlib import Path

import numpy as np
import piexif
from PIL import Image, TiffImagePlugin
from PIL.TiffImagePlugin import IFDRational

from belcheer.simulate.cameras import CameraModel
from belcheer.simulate.radiometry import BandCalibration, DJIBandCalibration

_XPACKET_BEGIN = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
_XPACKET_END = '\n<?xpacket end="w"?>'


def _dms(value: float, precision: int) -> tuple[tuple[int, int], ...]:
    v = abs(value)
    d = int(v)
    m = int((v - d) * 60)
    s = round(((v - d) * 60 - m) * 60 * precision)
    return (d, 1), (m, 1), (s, precision)


def _signed(v: float, nd: int = 2) -> str:
    return f"{v:+.{nd}f}"


def _angle180(v: float) -> float:
    return (v + 180.0) % 360.0 - 180.0


def _rtk_fields(rtk_std: tuple[float, float, float] | None) -> str:
    if rtk_std is None:
        return ""
    return ('\n   drone-dji:RtkFlag="50"'
            f'\n   drone-dji:RtkStdLon="{rtk_std[0]:.5f}"'
            f'\n   drone-dji:RtkStdLat="{rtk_std[1]:.5f}"'
            f'\n   drone-dji:RtkStdHgt="{rtk_std[2]:.5f}"')


def dji_xmp(cam: CameraModel, when: _dt.datetime, alt_abs: float, alt_rel: float, yaw: float,
            pitch: float, roll: float, flight: tuple[float, float, float],
            lat: float, lon: float, rtk_std: tuple[float, float, float] | None = None) -> bytes:
    """The ``drone-dji`` XMP packet, attribute style, as a DJI FC-series camera writes it;
    with ``rtk_std`` (σ longitude, latitude, height in metres) also the RTK fix fields an
    RTK drone writes (RtkFlag 50 = fixed solution)."""
    fy, fp, fr = flight
    k1, k2, p1, p2, k3 = cam.distortion
    # DJI's layout: calibration date; fx, fy, principal point offset from the image centre (px),
    # then k1, k2, p1, p2, k3 — here in pixels of the written (reduced) image
    dewarp = (f"2026-01-01;{cam.focal_px:.6f},{cam.focal_px:.6f},0.000000,0.000000,"
              f"{k1:.6f},{k2:.6f},{p1:.6f},{p2:.6f},{k3:.6f}")
    text = f"""{_XPACKET_BEGIN}<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="DJI Meta Data"
    xmlns:tiff="http://ns.adobe.com/tiff/1.0/"
    xmlns:exif="http://ns.adobe.com/exif/1.0/"
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/"
    xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/"
   xmp:ModifyDate="{when:%Y-%m-%d}"
   xmp:CreateDate="{when:%Y-%m-%d}"
   tiff:Make="{cam.make}"
   tiff:Model="{cam.model}"
   dc:format="image/jpeg"
   drone-dji:GpsLatitude="{lat:+.8f}"
   drone-dji:GpsLongtitude="{lon:+.8f}"
   drone-dji:AbsoluteAltitude="{_signed(alt_abs)}"
   drone-dji:RelativeAltitude="{_signed(alt_rel)}"
   drone-dji:GimbalRollDegree="{_signed(roll)}"
   drone-dji:GimbalYawDegree="{_signed(_angle180(yaw))}"
   drone-dji:GimbalPitchDegree="{_signed(pitch)}"
   drone-dji:FlightRollDegree="{_signed(fr)}"
   drone-dji:FlightYawDegree="{_signed(_angle180(fy))}"
   drone-dji:FlightPitchDegree="{_signed(fp)}"
   drone-dji:DewarpData="{dewarp}"
   drone-dji:DewarpFlag="0"{_rtk_fields(rtk_std)}
   crs:Version="7.0"
   crs:HasSettings="False"
   crs:HasCrop="False"
   crs:AlreadyApplied="False">
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>{_XPACKET_END}"""
    return text.encode("utf-8")


def write_dji_jpeg(path: Path, rgb: np.ndarray, cam: CameraModel, capture_id: str,
                   when_local: _dt.datetime, lat: float, lon: float, alt_abs: float,
                   xmp: bytes | None, exposure_s: float = 1 / 800) -> None:
    """Save an RGB uint8 (row, col, 3) array as a DJI JPEG with EXIF, GPS and XMP; with
    ``xmp`` None no XMP at all, as a compact camera geotagged by a fixed-wing autopilot writes
    it (EXIF GPS with the altitude above sea level, no attitude, no relative altitude)."""
    stamp = when_local.strftime("%Y:%m:%d %H:%M:%S").encode()
    ex = Fraction(exposure_s).limit_denominator(100000)
    fpr = Fraction(10.0 / cam.pixel_pitch_mm).limit_denominator(1000)   # pixels per cm
    exif = {
        "0th": {piexif.ImageIFD.ImageDescription: f"DCIM\\100MEDIA\\{capture_id}.JPG".encode(),
                piexif.ImageIFD.Make: cam.make.encode(), piexif.ImageIFD.Model: cam.model.encode(),
                piexif.ImageIFD.Orientation: 1, piexif.ImageIFD.XResolution: (72, 1),
                piexif.ImageIFD.YResolution: (72, 1), piexif.ImageIFD.ResolutionUnit: 2,
                piexif.ImageIFD.Software: b"v01.20.5212", piexif.ImageIFD.DateTime: stamp,
                piexif.ImageIFD.YCbCrPositioning: 1},
        "Exif": {piexif.ExifIFD.ExposureTime: (ex.numerator, ex.denominator),
                 piexif.ExifIFD.FNumber: (56, 10), piexif.ExifIFD.ExposureProgram: 2,
                 piexif.ExifIFD.ISOSpeedRatings: 100, piexif.ExifIFD.ExifVersion: b"0230",
                 piexif.ExifIFD.DateTimeOriginal: stamp, piexif.ExifIFD.DateTimeDigitized: stamp,
                 piexif.ExifIFD.SubSecTimeOriginal: f"{when_local.microsecond // 1000:03d}".encode(),
                 piexif.ExifIFD.MeteringMode: 2, piexif.ExifIFD.LightSource: 0,
                 piexif.ExifIFD.Flash: 32,
                 piexif.ExifIFD.FocalLength: (round(cam.focal_mm * 100), 100),
                 piexif.ExifIFD.ColorSpace: 1, piexif.ExifIFD.PixelXDimension: cam.width_px,
                 piexif.ExifIFD.PixelYDimension: cam.height_px,
                 piexif.ExifIFD.FocalPlaneXResolution: (fpr.numerator, fpr.denominator),
                 piexif.ExifIFD.FocalPlaneYResolution: (fpr.numerator, fpr.denominator),
                 piexif.ExifIFD.FocalPlaneResolutionUnit: 3,
                 piexif.ExifIFD.ExposureMode: 0, piexif.ExifIFD.WhiteBalance: 0,
                 piexif.ExifIFD.FocalLengthIn35mmFilm: int(cam.focal_35mm or 0),
                 piexif.ExifIFD.SceneCaptureType: 0, piexif.ExifIFD.BodySerialNumber: cam.serial.encode()},
        "GPS": {piexif.GPSIFD.GPSVersionID: (2, 3, 0, 0),
                piexif.GPSIFD.GPSLatitudeRef: b"N" if lat >= 0 else b"S",
                piexif.GPSIFD.GPSLatitude: _dms(lat, 10000),
                piexif.GPSIFD.GPSLongitudeRef: b"E" if lon >= 0 else b"W",
                piexif.GPSIFD.GPSLongitude: _dms(lon, 10000),
                piexif.GPSIFD.GPSAltitudeRef: 0 if alt_abs >= 0 else 1,
                piexif.GPSIFD.GPSAltitude: (round(abs(alt_abs) * 1000), 1000)},
    }
    extra = {} if xmp is None else {"xmp": xmp}
    Image.fromarray(rgb, "RGB").save(path, "JPEG", quality=92, exif=piexif.dump(exif), **extra)


def _seq(values, fmt: str = "{!r}") -> str:
    items = "".join(f"\n                  <rdf:li>{fmt.format(float(v))}</rdf:li>" for v in values)
    return f"\n               <rdf:Seq>{items}\n               </rdf:Seq>\n            "


def micasense_xmp(cam: CameraModel, band: str, band_label: str, band_index: int, center_nm: float,
                  fwhm_nm: float, cal: BandCalibration, irradiance: float, solar: tuple[float, float],
                  capture_uid: str, flight_uid: str, pressure_alt: float, boot_ms: int,
                  attitude: tuple[float, float, float],
                  gps_accuracy: tuple[float, float] = (2.8, 3.0)) -> bytes:
    """The XMP packet of one MicaSense RedEdge-M band file (``Camera:``, ``MicaSense:``, ``DLS:``
    descriptions), copying the layout of real RedEdge-M frames. Irradiances W m⁻² nm⁻¹; solar
    elevation/azimuth are written in radians as the DLS 2 does; ``gps_accuracy`` (horizontal,
    vertical) metres. Bands are co-registered, so RigRelatives are zero."""
    k1, k2, p1, p2, k3 = cam.distortion
    f_mm = cam.focal_mm
    cx_mm = cam.width_px / 2 * cam.pixel_pitch_mm
    cy_mm = cam.height_px / 2 * cam.pixel_pitch_mm
    vig = cam.vignetting[band_index]
    yaw, pitch, roll = (float(v) for v in attitude)
    el, az = float(solar[0]), float(solar[1])
    irradiance = float(irradiance)
    pressure_alt = float(pressure_alt)
    direct = float(irradiance * 0.8 / max(np.sin(el), 0.05))
    yaw_r, pitch_r, roll_r = (float(np.radians(v)) for v in (yaw, pitch, roll))
    text = f"""{_XPACKET_BEGIN}<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0">
   <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
      <rdf:Description rdf:about="Pix4D Camera Information"
            xmlns:Camera="http://pix4d.com/camera/1.0">
         <Camera:RigName>{cam.model}</Camera:RigName>
         <Camera:BandName>{band_label}</Camera:BandName>
         <Camera:CentralWavelength>{center_nm:g}</Camera:CentralWavelength>
         <Camera:WavelengthFWHM>{fwhm_nm:g}</Camera:WavelengthFWHM>
         <Camera:ModelType>perspective</Camera:ModelType>
         <Camera:PrincipalPoint>{cx_mm:.5f},{cy_mm:.5f}</Camera:PrincipalPoint>
         <Camera:PerspectiveFocalLength>{f_mm!r}</Camera:PerspectiveFocalLength>
         <Camera:PerspectiveFocalLengthUnits>mm</Camera:PerspectiveFocalLengthUnits>
         <Camera:PerspectiveDistortion>{_seq((k1, k2, k3, p1, p2))}</Camera:PerspectiveDistortion>
         <Camera:VignettingCenter>{_seq(cam.vignetting_center)}</Camera:VignettingCenter>
         <Camera:VignettingPolynomial>{_seq(vig)}</Camera:VignettingPolynomial>
         <Camera:BandSensitivity>{cal.a1 * 1000:.6f}</Camera:BandSensitivity>
         <Camera:RigRelatives>0.000000, 0.000000, 0.000000</Camera:RigRelatives>
         <Camera:RigCameraIndex>{band_index}</Camera:RigCameraIndex>
         <Camera:RigRelativesReferenceRigCameraIndex>1</Camera:RigRelativesReferenceRigCameraIndex>
         <Camera:GPSXYAccuracy>{float(gps_accuracy[0])!r}</Camera:GPSXYAccuracy>
         <Camera:GPSZAccuracy>{float(gps_accuracy[1])!r}</Camera:GPSZAccuracy>
         <Camera:Irradiance>{irradiance!r}</Camera:Irradiance>
         <Camera:IrradianceYaw>{yaw!r}</Camera:IrradianceYaw>
         <Camera:IrradiancePitch>{pitch!r}</Camera:IrradiancePitch>
         <Camera:IrradianceRoll>{roll!r}</Camera:IrradianceRoll>
      </rdf:Description>
      <rdf:Description rdf:about="Pix4D Camera Information"
            xmlns:MicaSense="http://micasense.com/MicaSense/1.0/">
         <MicaSense:BootTimestamp>{boot_ms}</MicaSense:BootTimestamp>
         <MicaSense:RadiometricCalibration>{_seq((cal.a1, cal.a2, cal.a3))}</MicaSense:RadiometricCalibration>
         <MicaSense:FlightId>{flight_uid}</MicaSense:FlightId>
         <MicaSense:CaptureId>{capture_uid}</MicaSense:CaptureId>
         <MicaSense:TriggerMethod>1</MicaSense:TriggerMethod>
         <MicaSense:PressureAlt>{pressure_alt!r}</MicaSense:PressureAlt>
         <MicaSense:DarkRowValue>{_seq((cal.black_level,) * 4, "{:.0f}")}</MicaSense:DarkRowValue>
      </rdf:Description>
      <rdf:Description rdf:about="Pix4D Camera Information"
            xmlns:DLS="http://micasense.com/DLS/1.0/">
         <DLS:Serial>DA04-2026001-MS</DLS:Serial>
         <DLS:SwVersion>v1.2.4</DLS:SwVersion>
         <DLS:CenterWavelength>{center_nm:g}</DLS:CenterWavelength>
         <DLS:Bandwidth>{fwhm_nm:g}</DLS:Bandwidth>
         <DLS:TimeStamp>{boot_ms + 11}</DLS:TimeStamp>
         <DLS:SpectralIrradiance>{irradiance!r}</DLS:SpectralIrradiance>
         <DLS:HorizontalIrradiance>{irradiance!r}</DLS:HorizontalIrradiance>
         <DLS:DirectIrradiance>{direct!r}</DLS:DirectIrradiance>
         <DLS:ScatteredIrradiance>{irradiance * 0.2!r}</DLS:ScatteredIrradiance>
         <DLS:SolarElevation>{el!r}</DLS:SolarElevation>
         <DLS:SolarAzimuth>{az!r}</DLS:SolarAzimuth>
         <DLS:Yaw>{yaw_r!r}</DLS:Yaw>
         <DLS:Pitch>{pitch_r!r}</DLS:Pitch>
         <DLS:Roll>{roll_r!r}</DLS:Roll>
      </rdf:Description>
   </rdf:RDF>
</x:xmpmeta>{_XPACKET_END}"""
    return text.encode("utf-8")


def _rat(v: float, den: int) -> IFDRational:
    return IFDRational(round(v * den), den)


def write_micasense_tiff(path: Path, dn: np.ndarray, cam: CameraModel, when_utc: _dt.datetime,
                         lat: float, lon: float, alt_abs: float, cal: BandCalibration,
                         xmp: bytes) -> None:
    """Save one band (uint16 row × col) as a MicaSense TIFF: 100-row strips, EXIF + GPS IFDs,
    BlackLevel, and the XMP packet in tag 700. MicaSense writes UTC times."""
    stamp = when_utc.strftime("%Y:%m:%d %H:%M:%S")
    ti = TiffImagePlugin.ImageFileDirectory_v2()
    ti[254] = 0
    ti[277] = 1
    ti[271] = cam.make
    ti[272] = cam.model
    ti[274] = 1
    ti[305] = "v7.1.3"
    ti[306] = stamp
    ti[0x8769] = {0x829A: _rat(cal.exposure_s, 10**9), 0x829D: IFDRational(28, 10),
                  0x8822: 2, 0x8833: int(round(cal.gain * 100)), 0x9000: b"0230",
                  0x9003: stamp, 0x9004: stamp,
                  0x9207: 4, 0x920A: _rat(cam.focal_mm, 100),
                  0x9290: f"{when_utc.microsecond * 1000:09d}",
                  0xA20E: _rat(1.0 / cam.pixel_pitch_mm, 10**6),
                  0xA20F: _rat(1.0 / cam.pixel_pitch_mm, 10**6), 0xA210: 4,
                  0xA431: cam.serial}
    ti[0x8825] = {0: b"\x02\x02\x00\x00", 1: "N" if lat >= 0 else "S",
                  2: tuple(IFDRational(a, b) for a, b in _dms(lat, 10**7)),
                  3: "E" if lon >= 0 else "W",
                  4: tuple(IFDRational(a, b) for a, b in _dms(lon, 10**7)),
                  5: 0, 6: _rat(alt_abs, 10**6), 11: IFDRational(12, 10)}
    ti[50713] = (2, 2)
    ti.tagtype[50713] = 3
    ti[50714] = (cal.black_level,) * 4
    ti.tagtype[50714] = 3
    ti[700] = xmp
    ti.tagtype[700] = 1
    Image.fromarray(np.ascontiguousarray(dn, dtype=np.uint16)).save(
        path, format="TIFF", tiffinfo=ti, strip_size=100 * cam.width_px * 2)


def dji_ms_xmp(cam: CameraModel, band_index: int, band_label: str, center_nm: float,
               when_local: _dt.datetime, lat: float, lon: float, alt_abs: float, alt_rel: float,
               gimbal: tuple[float, float, float], flight: tuple[float, float, float],
               cal: DJIBandCalibration, irradiance: float, capture_uuid: str,
               rtk_std: tuple[float, float, float] | None = None) -> bytes:
    """The ``drone-dji`` XMP of one DJI P4 Multispectral / Mavic 3M band TIFF: pose, band,
    radiometric calibration (BlackLevel, SensorGain, ExposureTime µs, SensorGainAdjustment,
    VignettingData about CalibratedOpticalCenterX/Y), sunlight-sensor ``Irradiance`` (relative
    units), lens (``DewarpData``: fx, fy, principal-point offset of this band's lens from the
    photo centre, k1 k2 p1 p2 k3, in pixels of the written image) and the band's position in
    the rig: ``RelativeOpticalCenterX/Y`` (P4M: pixel offset of this band's optical centre from
    the reference band's) or ``DewarpHMatrix`` (M3M: homography, row-major, taking this band's
    undistorted pixels onto the reference band's)."""
    yaw, pitch, roll = gimbal
    fy, fp, fr = flight
    k1, k2, p1, p2, k3 = cam.distortion
    dx, dy = cam.band_offsets_px[band_index]
    rx, ry = cam.band_offsets_px[0]  # the rig's reference band: the first in file order
    dewarp = (f"2026-01-01;{cam.focal_px:.6f},{cam.focal_px:.6f},{dx:.6f},{dy:.6f},"
              f"{k1:.6f},{k2:.6f},{p1:.6f},{p2:.6f},{k3:.6f}")
    vig = ",".join(f"{k!r}" for k in cam.dji_vignetting[band_index])
    if cam.model == "M3M":
        h = (1.0, 0.0, -(dx - rx), 0.0, 1.0, -(dy - ry), 0.0, 0.0, 1.0)
        rig = f'\n   drone-dji:DewarpHMatrix="{",".join(f"{v:.6f}" for v in h)}"'
    else:
        rig = (f'\n   drone-dji:RelativeOpticalCenterX="{dx - rx:.6f}"'
               f'\n   drone-dji:RelativeOpticalCenterY="{dy - ry:.6f}"')
    text = f"""{_XPACKET_BEGIN}<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="DJI Meta Data"
    xmlns:tiff="http://ns.adobe.com/tiff/1.0/"
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/"
    xmlns:Camera="http://pix4d.com/camera/1.0/"
   xmp:CreateDate="{when_local:%Y-%m-%dT%H:%M:%S}"
   tiff:Make="{cam.make}"
   tiff:Model="{cam.model}"
   dc:format="image/tiff"
   drone-dji:GpsLatitude="{lat:+.8f}"
   drone-dji:GpsLongtitude="{lon:+.8f}"
   drone-dji:AbsoluteAltitude="{_signed(alt_abs, 3)}"
   drone-dji:RelativeAltitude="{_signed(alt_rel, 3)}"
   drone-dji:GimbalRollDegree="{_signed(roll)}"
   drone-dji:GimbalYawDegree="{_signed(_angle180(yaw))}"
   drone-dji:GimbalPitchDegree="{_signed(pitch)}"
   drone-dji:FlightRollDegree="{_signed(fr)}"
   drone-dji:FlightYawDegree="{_signed(_angle180(fy))}"
   drone-dji:FlightPitchDegree="{_signed(fp)}"
   drone-dji:CaptureUUID="{capture_uuid}"
   drone-dji:BandName="{band_label}"
   drone-dji:CentralWavelength="{center_nm:g}"
   drone-dji:BlackLevel="{cal.black_level}"
   drone-dji:SensorGain="{cal.gain:g}"
   drone-dji:ExposureTime="{cal.exposure_us:g}"
   drone-dji:SensorGainAdjustment="{cal.gain_adjustment!r}"
   drone-dji:Irradiance="{irradiance!r}"
   drone-dji:CalibratedOpticalCenterX="{cam.width_px / 2:.6f}"
   drone-dji:CalibratedOpticalCenterY="{cam.height_px / 2:.6f}"
   drone-dji:VignettingData="{vig}"
   drone-dji:DewarpData="{dewarp}"
   drone-dji:DewarpFlag="0"{rig}{_rtk_fields(rtk_std)}
   Camera:BandName="{band_label}"
   Camera:CentralWavelength="{center_nm:g}">
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>{_XPACKET_END}"""
    return text.encode("utf-8")


def write_dji_ms_tiff(path: Path, dn: np.ndarray, cam: CameraModel, when_local: _dt.datetime,
                      lat: float, lon: float, alt_abs: float, cal: DJIBandCalibration,
                      xmp: bytes) -> None:
    """Save one DJI multispectral band (uint16 row × col) as a TIFF with EXIF + GPS IFDs
    (local time, as DJI writes) and the XMP packet in tag 700."""
    stamp = when_local.strftime("%Y:%m:%d %H:%M:%S")
    ti = TiffImagePlugin.ImageFileDirectory_v2()
    ti[271] = cam.make
    ti[272] = cam.model
    ti[274] = 1
    ti[305] = "v02.03.0111"
    ti[306] = stamp
    ti[0x8769] = {0x829A: _rat(cal.exposure_us / 1e6, 10**9), 0x829D: IFDRational(22, 10),
                  0x8822: 2, 0x8827: int(round(cal.gain * 100)), 0x9000: b"0230",
                  0x9003: stamp, 0x9004: stamp, 0x920A: _rat(cam.focal_mm, 100),
                  0xA20E: _rat(1.0 / cam.pixel_pitch_mm, 10**6),
                  0xA20F: _rat(1.0 / cam.pixel_pitch_mm, 10**6), 0xA210: 4,
                  0xA431: cam.serial}
    ti[0x8825] = {0: b"\x02\x02\x00\x00", 1: "N" if lat >= 0 else "S",
                  2: tuple(IFDRational(a, b) for a, b in _dms(lat, 10**7)),
                  3: "E" if lon >= 0 else "W",
                  4: tuple(IFDRational(a, b) for a, b in _dms(lon, 10**7)),
                  5: 0, 6: _rat(alt_abs, 10**6)}
    ti[700] = xmp
    ti.tagtype[700] = 1
    Image.fromarray(np.ascontiguousarray(dn, dtype=np.uint16)).save(
        path, format="TIFF", tiffinfo=ti, strip_size=64 * cam.width_px * 2)

"""Domain objects the stages exchange: frozen, typed, free of I/O.

A *survey* is one flight. It is made of *captures* (one trigger of the camera: one JPEG for an
RGB camera, one TIFF per band for a multispectral rig), each made of *frames* (one image file of
one *band*). Processing a survey yields *products* (rasters on a GeoBox: orthomosaic,
reflectance, index, class and biomass rasters). Parcels travel as GeoDataFrames whose columns
are described by :data:`PARCEL_COLUMNS`.

Angles are degrees. Positions are WGS 84 (EPSG:4326) longitude/latitude; altitudes are metres
(absolute above the ellipsoid or mean sea level as the camera wrote it, relative above take-off).
Footprints and GSD are in the survey's UTM zone, metres.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

from shapely.geometry.base import BaseGeometry


class FrozenMap(dict[str, Any]):
    """A read-only dict: immutable like ``MappingProxyType`` but picklable, so frames and
    products can be shipped to Dask process and distributed workers."""

    def _read_only(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("this mapping is read-only")

    __setitem__ = __delitem__ = _read_only  # type: ignore[assignment]
    clear = pop = popitem = setdefault = update = _read_only  # type: ignore[assignment]
    __ior__ = _read_only  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenMap, (dict(self),))


def _frozen_map(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return value if isinstance(value, FrozenMap) else FrozenMap(value or {})


class Severity(str, Enum):
    """How bad a validation problem is: ``error`` drops the frame, ``warning`` keeps it."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """One finding of validation: which file, what kind, and a sentence a person can act on.

    ``code`` is a stable identifier (``no_gps``, ``zero_byte``, ``truncated``, ``not_an_image``,
    ``blurry``, ``black``, ``saturated``, ``oblique``, ``mixed_cameras``, ``altitude_outlier``,
    ``duplicate_time``, ``xmp_unsafe`` …) that tests and the API key on.
    """

    code: str
    message: str
    severity: Severity = Severity.WARNING
    path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "severity": self.severity.value,
                "path": str(self.path) if self.path else None}


@dataclass(frozen=True)
class Band:
    """A spectral band. ``name`` is the canonical role: blue, green, red, rededge, nir, or
    ``pan``/``lwir``; RGB cameras have bands ``red``, ``green``, ``blue`` with broad, nominal
    wavelengths. Wavelengths in nanometres."""

    name: str
    center_nm: float | None = None
    bandwidth_nm: float | None = None
    #: the camera's own label ("Blue", "NIR", "GRE"…)
    label: str | None = None


@dataclass(frozen=True)
class Camera:
    """Make and model as written in EXIF, and the body's serial number if present."""

    make: str
    model: str
    serial: str | None = None

    @property
    def key(self) -> str:
        return f"{self.make} {self.model}".strip()


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole camera model of one frame.

    ``focal_mm`` and the sensor size are physical (mm); ``focal_px`` is in pixels of this
    frame; principal point ``cx, cy`` in pixels from the top-left corner; distortion follows
    OpenCV's ``(k1, k2, p1, p2, k3)`` on normalised coordinates.
    """

    width_px: int
    height_px: int
    focal_mm: float | None
    focal_px: float
    sensor_width_mm: float | None = None
    sensor_height_mm: float | None = None
    cx: float | None = None
    cy: float | None = None
    distortion: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)

    @property
    def principal_point(self) -> tuple[float, float]:
        return (self.cx if self.cx is not None else self.width_px / 2.0,
                self.cy if self.cy is not None else self.height_px / 2.0)

    def matrix(self) -> list[list[float]]:
        """The 3×3 camera matrix K as nested lists (OpenCV convention)."""
        cx, cy = self.principal_point
        return [[self.focal_px, 0.0, cx], [0.0, self.focal_px, cy], [0.0, 0.0, 1.0]]


@dataclass(frozen=True)
class Pose:
    """Where a frame was taken and how the camera pointed (gimbal angles where known).

    ``pitch`` follows DJI's gimbal convention: −90° looks straight down (nadir), 0° at the
    horizon. ``yaw`` is the heading of the image's top edge, degrees clockwise from north.
    """

    lon: float
    lat: float
    alt_abs_m: float | None = None
    alt_rel_m: float | None = None
    yaw: float | None = None
    pitch: float | None = None
    roll: float | None = None
    #: 1σ accuracy of the position the receiver reported, metres per horizontal axis and
    #: vertical (MicaSense GPSXYAccuracy/GPSZAccuracy, DJI RtkStdLon/RtkStdLat/RtkStdHgt);
    #: None where the camera does not say
    gps_sigma_h_m: float | None = None
    gps_sigma_v_m: float | None = None

    @property
    def off_nadir_deg(self) -> float | None:
        """Angle between the optical axis and the vertical, degrees (0 = nadir)."""
        if self.pitch is None:
            return None
        tilt = abs(90.0 + self.pitch) if self.pitch <= 0 else 90.0 + self.pitch
        if self.roll is not None:
            tilt = (tilt**2 + self.roll**2) ** 0.5
        return tilt


@dataclass(frozen=True)
class Radiometry:
    """Radiometric metadata of a frame, as the camera wrote it (MicaSense, Sequoia, DJI-M).

    Units: exposure seconds; gain as a multiple of ISO 100; irradiance W m⁻² nm⁻¹;
    ``radiometric_calibration`` the MicaSense ``(a1, a2, a3)`` or DJI/Parrot coefficients;
    ``vignetting_polynomial`` coefficients of the radial polynomial about
    ``vignetting_center`` (pixels). ``extra`` carries vendor fields that do not fit
    (Sequoia's SensorModel, DLS orientation, solar angles…) under their XMP names.
    """

    bits_per_sample: int | None = None
    black_level: float | None = None
    exposure_s: float | None = None
    gain: float | None = None
    iso: float | None = None
    radiometric_calibration: tuple[float, ...] | None = None
    vignetting_center: tuple[float, float] | None = None
    vignetting_polynomial: tuple[float, ...] | None = None
    irradiance: float | None = None
    spectral_irradiance: float | None = None
    horizontal_irradiance: float | None = None
    solar_elevation_deg: float | None = None
    solar_azimuth_deg: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra", _frozen_map(self.extra))


@dataclass(frozen=True)
class Frame:
    """One image file of one band, with everything read from its headers."""

    path: Path
    capture_id: str
    band: Band
    band_index: int
    camera: Camera
    intrinsics: Intrinsics | None
    pose: Pose | None
    time: datetime | None
    radiometry: Radiometry = field(default_factory=Radiometry)
    #: vendor-specific identifiers and values not modelled above (XMP/EXIF names)
    tags: Mapping[str, Any] = field(default_factory=dict)
    problems: tuple[Problem, ...] = ()
    #: the frame's copy in the workspace's object store (``s3://…``) when products go there, so
    #: that a machine without ``path`` (a Dask worker elsewhere) reads it from the store
    uri: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", _frozen_map(self.tags))

    @property
    def usable(self) -> bool:
        return not any(p.severity is Severity.ERROR for p in self.problems)


@dataclass(frozen=True)
class Capture:
    """One trigger of the camera: all bands taken at the same instant."""

    id: str
    frames: tuple[Frame, ...]
    is_panel: bool = False
    #: estimated ground footprint (flat ground at take-off height), in the survey CRS
    footprint: BaseGeometry | None = None
    #: ground sample distance at nadir, metres per pixel
    gsd_m: float | None = None

    @property
    def primary(self) -> Frame:
        return self.frames[0]

    @property
    def time(self) -> datetime | None:
        return self.primary.time

    @property
    def pose(self) -> Pose | None:
        return self.primary.pose

    @property
    def camera(self) -> Camera:
        return self.primary.camera

    @property
    def bands(self) -> tuple[Band, ...]:
        return tuple(f.band for f in self.frames)

    @property
    def usable(self) -> bool:
        return all(f.usable for f in self.frames)

    @property
    def problems(self) -> tuple[Problem, ...]:
        return tuple(p for f in self.frames for p in f.problems)

    def frame(self, band: str) -> Frame:
        for f in self.frames:
            if f.band.name == band:
                return f
        raise KeyError(f"capture {self.id} has no band {band!r}; it has "
                       f"{', '.join(b.name for b in self.bands)}")


@dataclass(frozen=True)
class Survey:
    """An ingested flight: its captures, CRS and validation report (the survey manifest)."""

    name: str
    captures: tuple[Capture, ...]
    epsg: int
    source_dir: Path | None = None
    #: survey-level problems (mixed cameras, no usable frames…) besides the per-frame ones
    problems: tuple[Problem, ...] = ()
    created: datetime | None = None

    @property
    def frames(self) -> tuple[Frame, ...]:
        return tuple(f for c in self.captures for f in c.frames)

    @property
    def flight_captures(self) -> tuple[Capture, ...]:
        """Usable, non-panel captures: what the orthomosaic is built from."""
        return tuple(c for c in self.captures if c.usable and not c.is_panel)

    @property
    def panel_captures(self) -> tuple[Capture, ...]:
        return tuple(c for c in self.captures if c.is_panel)

    @property
    def cameras(self) -> tuple[Camera, ...]:
        seen: dict[str, Camera] = {}
        for c in self.captures:
            seen.setdefault(c.camera.key, c.camera)
        return tuple(seen.values())

    @property
    def bands(self) -> tuple[Band, ...]:
        """Bands of the first usable capture (all captures of one camera share them)."""
        for c in self.captures:
            if c.usable:
                return c.bands
        return self.captures[0].bands if self.captures else ()

    @property
    def is_multispectral(self) -> bool:
        return len(self.bands) > 3 or any(b.name in {"nir", "rededge"} for b in self.bands)

    @property
    def date(self) -> datetime | None:
        times = [c.time for c in self.captures if c.time is not None]
        return min(times) if times else None

    def capture(self, capture_id: str) -> Capture:
        for c in self.captures:
            if c.id == capture_id:
                return c
        raise KeyError(capture_id)

    def replace(self, **changes: Any) -> Survey:
        return dataclasses.replace(self, **changes)


class ProductKind(str, Enum):
    """What a raster product holds."""

    ORTHOMOSAIC = "orthomosaic"     # RGB uint8, or per-band DN/radiance for multispectral
    REFLECTANCE = "reflectance"     # multispectral surface reflectance, float32 0…1
    INDEX = "index"                 # one vegetation index, float32, NaN nodata
    CONDITION = "condition"         # pasture recovery class 1…5, uint8, 0 nodata
    BIOMASS = "biomass"             # kg dry matter per hectare, float32
    LANDCOVER = "landcover"         # land-cover class codes, uint8
    COVER = "cover"                 # green/dry/bare fractional cover, 3 × float32 0…1
    ZONES = "zones"                 # management zone ids, uint8
    CHANGE = "change"               # difference between two surveys, float32
    DSM = "dsm"                     # surface model, metres


@dataclass(frozen=True)
class Product:
    """A raster product registered in the workspace: a COG on a grid, with its meaning.

    ``uri`` says where its COG is: ``file:///abs/path.tif`` or ``s3://bucket/key`` (open it with
    :meth:`belcheer.Workspace.open_product`, which works for either). ``name`` is the product's short name within its survey
    (``orthomosaic``, ``reflectance``, ``ndvi`` …). ``relative`` is True for indices computed
    from uncalibrated RGB (not comparable between dates). ``metadata`` holds stage-specific
    facts (calibration method, quality report path, formula…), JSON-serialisable.
    """

    id: str
    survey: str
    kind: ProductKind
    name: str
    uri: str
    epsg: int
    bands: tuple[Band, ...] = ()
    units: str | None = None
    relative: bool = False
    created: datetime | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata", _frozen_map(self.metadata))
        uri = self.uri
        if isinstance(uri, Path) or "://" not in str(uri):  # a local path (old catalog rows too)
            uri = Path(uri).absolute().as_uri()
        object.__setattr__(self, "uri", str(uri))

    @property
    def path(self) -> Path:
        """The local file of a product stored as a file (read-only, for notebooks and older
        code); StorageError for a product in object storage, whose readers use the store."""
        from belcheer.storage import uri_path

        return uri_path(self.uri)

    @property
    def local(self) -> bool:
        """True if the product is a local file (``file://`` URI)."""
        return self.uri.startswith("file://")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "survey": self.survey, "kind": self.kind.value, "name": self.name,
            # "path": the local file, kept for readers of older output; None in object storage
            "uri": self.uri, "path": str(self.path) if self.local else None, "epsg": self.epsg,
            "bands": [dataclasses.asdict(b) for b in self.bands], "units": self.units,
            "relative": self.relative,
            "created": self.created.isoformat() if self.created else None,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Product:
        return cls(
            id=d["id"], survey=d["survey"], kind=ProductKind(d["kind"]), name=d["name"],
            # rows written before object storage hold a plain local path: a file URI now
            uri=d.get("uri") or Path(d["path"]).as_uri(), epsg=int(d["epsg"]),
            bands=tuple(Band(**b) for b in d.get("bands") or ()), units=d.get("units"),
            relative=bool(d.get("relative", False)),
            created=datetime.fromisoformat(d["created"]) if d.get("created") else None,
            metadata=d.get("metadata") or {},
        )


#: Parcel table columns (a GeoDataFrame). ``parcel_id`` is unique; names keep Cyrillic intact.
#: ``land_use``: pasture | hayfield | cropland | otor | other.
#: ``season``: winter | spring | summer | autumn | all (seasonal camp use of a pasture).
#: ``eco_zone``: forest_steppe | steppe | desert_steppe | gobi | high_mountain.
#: Livestock columns are head counts registered for the parcel's users.
PARCEL_COLUMNS: dict[str, str] = {
    "parcel_id": "str",
    "name": "str",
    "land_use": "str",
    "season": "str",
    "user_group": "str",
    "aimag": "str",
    "soum": "str",
    "bag": "str",
    "eco_zone": "str",
    "camel": "int",
    "horse": "int",
    "cattle": "int",
    "sheep": "int",
    "goat": "int",
    "area_ha": "float",
}

LAND_USES: tuple[str, ...] = ("pasture", "hayfield", "cropland", "otor", "other")
SEASONS: tuple[str, ...] = ("winter", "spring", "summer", "autumn", "all")
ECO_ZONES: tuple[str, ...] = ("forest_steppe", "steppe", "desert_steppe", "gobi", "high_mountain")
LIVESTOCK: tuple[str, ...] = ("camel", "horse", "cattle", "sheep", "goat")

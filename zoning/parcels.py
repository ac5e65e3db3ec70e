"""Parcel layers: reading any common vector format, mapping attributes to the parcel model,
checking geometry, and keeping every imported version in the workspace.

Parcels travel as GeoDataFrames in EPSG:4326 with the columns of
:data:`belcheer.models.PARCEL_COLUMNS` first, then any unmapped source attributes unchanged.
Areas are hectares computed in each parcel's own UTM zone (so a layer spanning two zones is
measured correctly in both).
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS

from belcheer import gdalenv
from belcheer.crs import MONGOLIA_GK_CM_EPSG, MONGOLIA_GK_EPSG, crs_from_user, utm_epsg
from belcheer.errors import (
    ConflictError,
    CRSError,
    InputError,
    NotFoundError,
    TooLargeError,
    UnsafePathError,
)
from belcheer.fileio import atomic_path
from belcheer.models import ECO_ZONES, LAND_USES, LIVESTOCK, PARCEL_COLUMNS, SEASONS
from belcheer.zoning.landuse import find_crop_field, land_use_from_crop

if TYPE_CHECKING:  # pragma: no cover
    from belcheer.workspace import Workspace

#: A single parcel with more vertices than this is refused (a parcel boundary digitised by a
#: person never needs it; such a geometry is almost always a raster trace or a broken file).
MAX_VERTICES = 1_000_000
#: Overlaps smaller than this (m²) are reported as slivers, larger ones as overlaps.
SLIVER_AREA_M2 = 100.0
#: Parcels thinner than this Polsby–Popper compactness (4πA/P²) are reported as slivers.
SLIVER_COMPACTNESS = 0.05

# Recognised source field names (compared case-insensitively, after trimming), English and Mongolian.
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "parcel_id": ("parcel_id", "parcelid", "id", "fid_parcel", "code", "parcel", "plot_id", "field_id",
                  "дугаар", "код", "нэгж_талбарын_дугаар", "талбайн_дугаар", "id_"),
    "name": ("name", "parcel_name", "field_name", "нэр", "нэрс", "талбайн_нэр", "газрын_нэр", "naam"),
    "land_use": ("land_use", "landuse", "use", "lu", "газар_ашиглалт", "ашиглалт", "зориулалт"),
    "season": ("season", "seasonal_use", "camp", "улирал", "улирлын_ашиглалт", "бууц"),
    "user_group": ("user_group", "pug", "group", "household", "herder", "user", "owner",
                   "малчдын_бүлэг", "бүлэг", "өрх", "малчин", "эзэмшигч", "ашиглагч"),
    "aimag": ("aimag", "aimak", "province", "adm1", "adm1_en", "аймаг"),
    "soum": ("soum", "sum", "district", "adm2", "adm2_en", "сум"),
    "bag": ("bag", "bagh", "adm3", "баг"),
    "eco_zone": ("eco_zone", "ecozone", "ecological_zone", "natural_zone", "zone_eco",
                 "бүс", "экологийн_бүс", "байгалийн_бүс"),
    "camel": ("camel", "camels", "тэмээ"),
    "horse": ("horse", "horses", "адуу"),
    "cattle": ("cattle", "cow", "cows", "үхэр"),
    "sheep": ("sheep", "хонь"),
    "goat": ("goat", "goats", "ямаа"),
}

# Values of the coded columns, English and Mongolian (lower-cased, trimmed).
_LAND_USE_VALUES = {
    "pasture": "pasture", "бэлчээр": "pasture", "rangeland": "pasture", "grazing": "pasture",
    "hayfield": "hayfield", "hay": "hayfield", "хадлан": "hayfield", "хадлангийн талбай": "hayfield",
    "cropland": "cropland", "crop": "cropland", "arable": "cropland", "тариалан": "cropland",
    "тариалангийн талбай": "cropland", "otor": "otor", "otor reserve": "otor", "отор": "otor",
    "отрын бэлчээр": "otor", "other": "other", "бусад": "other",
}
_SEASON_VALUES = {
    "winter": "winter", "өвөл": "winter", "өвөлжөө": "winter",
    "spring": "spring", "хавар": "spring", "хаваржаа": "spring",
    "summer": "summer", "зун": "summer", "зуслан": "summer",
    "autumn": "autumn", "fall": "autumn", "намар": "autumn", "намаржаа": "autumn",
    "all": "all", "year-round": "all", "жилийн турш": "all",
}
_ECO_VALUES = {
    "forest_steppe": "forest_steppe", "forest-steppe": "forest_steppe", "forest steppe": "forest_steppe",
    "ойт хээр": "forest_steppe", "steppe": "steppe", "хээр": "steppe", "тал хээр": "steppe",
    "desert_steppe": "desert_steppe", "desert-steppe": "desert_steppe", "desert steppe": "desert_steppe",
    "цөлөрхөг хээр": "desert_steppe", "gobi": "gobi", "desert": "gobi", "говь": "gobi", "цөл": "gobi",
    "high_mountain": "high_mountain", "high mountain": "high_mountain", "өндөр уул": "high_mountain",
}
_CODED = {"land_use": (_LAND_USE_VALUES, "other", LAND_USES),
          "season": (_SEASON_VALUES, "all", SEASONS),
          "eco_zone": (_ECO_VALUES, "steppe", ECO_ZONES)}


#: longest parcel id accepted (cadastral codes are ≈ 20 characters)
MAX_ID_LENGTH = 120


def check_parcel_id(pid: str) -> str:
    """``pid`` if it is usable as a parcel id: 1–120 characters, no control characters (a CR/LF
    in an id would end up in URLs, file names and HTTP headers). InputError otherwise."""
    if not pid or len(pid) > MAX_ID_LENGTH or any(ord(c) < 32 or 0x7f <= ord(c) < 0xa0 for c in pid):
        raise InputError(f"parcel id {pid[:40]!r} is not usable: give 1–{MAX_ID_LENGTH} characters "
                         "without line breaks or other control characters", code="error.parcels.bad_id",
                         parcel_id=pid[:40], max=MAX_ID_LENGTH)
    return pid


@dataclass
class ParcelImport:
    """The result of reading a parcel layer: the normalised frame and what was found on the way."""

    frame: gpd.GeoDataFrame
    report: dict[str, Any] = field(default_factory=dict)
    version: int | None = None


# -- reading -------------------------------------------------------------------------------

#: the only GDAL vector drivers a parcel file is opened with; which one is decided by the file's
#: content (not its name), and GDAL must then agree, so a ``.geojson`` holding a GDALG pipeline or
#: a ``.shp`` holding an OGR VRT is refused before anything is read
VECTOR_DRIVERS: tuple[str, ...] = ("GeoJSON", "GPKG", "ESRI Shapefile", "FlatGeobuf", "KML", "CSV")
#: bytes of a file looked at to recognise its format
_SNIFF_BYTES = 64 * 1024
# (LIBKML, when present, opens KML in place of the KML driver; it resolves no links by default)
_SUFFIX_DRIVER = {".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GPKG", ".shp": "ESRI Shapefile",
                  ".fgb": "FlatGeobuf", ".kml": "KML", ".csv": "CSV"}
# a GeoJSON "crs" member is small: what GDAL would fetch (a link, a URL name) sits in its first bytes
_CRS_MEMBER = re.compile(rb'"crs"\s*:\s*\{')
_CRS_FETCH = re.compile(rb'"type"\s*:\s*"link"|"href"\s*:|"(?:https?|ftp)://(?!www\.opengis\.net/def/crs/)',
                        re.IGNORECASE)
_GDALG = re.compile(rb'"type"\s*:\s*"gdal_streamed_alg"')


def sniff_vector_driver(head: bytes, name: str) -> str:
    """The GDAL driver for a vector file, from its first bytes (``name`` only tells a CSV from
    other text). Raises InputError for anything that is not one of :data:`VECTOR_DRIVERS`, naming
    what it looks like when that is a GDAL virtual format (VRT, GDALG)."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"SQLite format 3\x00"):
        return "GPKG"
    if head.startswith(b"fgb\x03"):
        return "FlatGeobuf"
    if head.startswith(b"\x00\x00\x27\x0a"):  # big-endian 9994, the Shapefile main-file code
        return "ESRI Shapefile"
    low = text[:4096].lower()
    if b"<ogrvrtdatasource" in low or b"<vrtdataset" in low or _GDALG.search(head):
        raise InputError(f"{name} is a GDAL virtual dataset (VRT or GDALG pipeline), which can read "
                              "other files and URLs; export the parcels themselves as GeoPackage, "
                              "GeoJSON or Shapefile", code="error.parcels.virtual", name=name)
    if text.startswith(b"{"):
        return "GeoJSON"
    if text.startswith(b"<") and b"<kml" in low:
        return "KML"
    if name.lower().endswith(".csv") and not text.startswith(b"<") and b"\x00" not in head:
        return "CSV"
    raise InputError(f"{name} is not a parcel layer this reader opens (GeoPackage, GeoJSON, Shapefile, "
                     "FlatGeobuf, KML or CSV with a WKT column)", code="error.parcels.format", name=name)


def check_geojson_crs(data: bytes, name: str) -> None:
    """Refuse a GeoJSON whose ``crs`` member GDAL would resolve over the network (a ``link``
    CRS, an ``href``, a URL that is not an OGC CRS name)."""
    for m in _CRS_MEMBER.finditer(data):
        if _CRS_FETCH.search(data, m.end(), m.end() + 2048):
            raise InputError(f"{name} declares its CRS as a link to fetch; this server reads no "
                                  "URLs: give the CRS by name (\"EPSG:4326\") or leave it out (CRS84)",
                             code="error.parcels.crs_link", name=name)


def _check_content(path: Path, member: str | None = None) -> str:
    """The driver for ``path`` (or ``member`` of the zip ``path``) from its content, checked."""
    name = member or path.name
    if member is None:
        with open(path, "rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    else:
        with zipfile.ZipFile(path) as zf, zf.open(member) as fh:
            head = fh.read(_SNIFF_BYTES)
    driver = sniff_vector_driver(head, name)
    expected = _SUFFIX_DRIVER.get(PurePosixPath(name).suffix.lower())
    if expected is not None and expected != driver:
        raise InputError(f"{name} is named like {expected} but its content is {driver}; rename it "
                         "or export it again", code="error.parcels.mismatch", name=name, expected=expected,
                         driver=driver)
    if driver == "GeoJSON":
        if member is None:
            data = path.read_bytes()
        else:
            with zipfile.ZipFile(path) as zf:
                data = zf.read(member)
        check_geojson_crs(data, name)
    return driver


def _check_zip(path: Path) -> list[str]:
    """Member names of a zip, refusing absolute paths and ``..`` (zip-slip) before GDAL sees it."""
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    for n in names:
        p = PurePosixPath(n.replace("\\", "/"))
        if p.is_absolute() or ".." in p.parts or re.match(r"^[A-Za-z]:", n):
            raise UnsafePathError(f"archive {path.name} holds an unsafe member path {n!r}; "
                                  "re-create the zip with relative paths only")
    return names


def _dbf_encoding(dbf: bytes, has_cpg: bool) -> str | None:
    """Encoding for a Shapefile's DBF: leave it to GDAL when a .cpg or language id says it;
    otherwise UTF-8 if the bytes decode as UTF-8, else CP1251 (Mongolian Cyrillic legacy files)."""
    if has_cpg or len(dbf) < 32:
        return None
    ldid = dbf[29]
    if ldid == 0xC9:  # DBF language driver id for Windows-1251
        return None
    header_len = int.from_bytes(dbf[8:10], "little")
    body = dbf[header_len:]
    if all(b < 0x80 for b in body):
        return None
    try:
        body.decode("utf-8")
        return "UTF-8"
    except UnicodeDecodeError:
        return "CP1251"


def _source(path: Path) -> tuple[str, dict[str, Any], str]:
    """The GDAL path to open, extra read options (encoding, CSV geometry column) and the one
    driver GDAL must open it with."""
    if not path.exists():
        raise NotFoundError(f"parcel file {path} does not exist")
    suffix = path.suffix.lower()
    opts: dict[str, Any] = {}
    if suffix == ".zip":
        names = _check_zip(path)
        shps = [n for n in names if n.lower().endswith(".shp")]
        others = [n for n in names if n.lower().endswith((".gpkg", ".geojson", ".json", ".kml", ".fgb"))]
        if not shps and not others:
            raise InputError(f"archive {path.name} holds no .shp, .gpkg, .geojson, .kml or .fgb file")
        member = (shps or others)[0]
        driver = _check_content(path, member)
        if shps:
            stem = member[:-4]
            with zipfile.ZipFile(path) as zf:
                lower = {n.lower(): n for n in zf.namelist()}
                dbf_name = lower.get((stem + ".dbf").lower())
                has_cpg = (stem + ".cpg").lower() in lower
                if dbf_name:
                    with zf.open(dbf_name) as fh:
                        enc = _dbf_encoding(fh.read(), has_cpg)
                        if enc:
                            opts["encoding"] = enc
        return f"/vsizip/{path.resolve()}/{member}", opts, driver
    driver = _check_content(path)
    if suffix == ".shp":
        dbf = next((p for p in (path.with_suffix(".dbf"), path.with_suffix(".DBF")) if p.exists()), None)
        has_cpg = path.with_suffix(".cpg").exists() or path.with_suffix(".CPG").exists()
        if dbf is not None:
            enc = _dbf_encoding(dbf.read_bytes(), has_cpg)
            if enc:
                opts["encoding"] = enc
    if suffix == ".csv":
        # GDAL's CSV driver: geometry as WKT in a column named wkt/geometry/geom
        opts.update(GEOM_POSSIBLE_NAMES="wkt,WKT,geometry,geom,the_geom", KEEP_GEOM_COLUMNS="NO")
    if driver in ("GeoJSON", "CSV"):
        # these two drivers take a "DRIVER:" prefix that keeps every other driver off the file
        return f"{driver}:{path}", opts, driver
    return str(path), opts, driver


def _find_field(frame: pd.DataFrame, columns: list[str], target: str,
                explicit: str | None = None) -> str | None:
    """The source column for a model column: the explicit one, else the first recognised name
    that holds any value (KML, for one, brings empty Name/Description columns of its own)."""
    if explicit:
        if explicit not in columns:
            raise InputError(f"field {explicit!r} is not in the parcel file; it has: {', '.join(columns)}")
        return explicit
    lower = {c.strip().lower(): c for c in columns}
    found = [lower[a] for a in FIELD_ALIASES[target] if a in lower]
    for col in found:
        vals = frame[col].dropna()
        if len(vals) and (vals.astype(str).str.strip() != "").any():
            return col
    return found[0] if found else None


def _code(value: Any, table: dict[str, str], allowed: tuple[str, ...]) -> str | None:
    """The model's code for a coded value (English or Mongolian), None if blank or unknown."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip() == "":
        return None
    text = str(value).strip().lower()
    if text in allowed:
        return text
    return table.get(text, table.get(text.replace("_", " ")))


#: Mongolia's extent, degrees (west, south, east, north), with a margin: a hinted CRS must
#: put the parcels inside it
_MONGOLIA_LONLAT = (87.0, 41.0, 120.5, 52.5)


def _lands_in(epsg: int, bounds: np.ndarray) -> bool:
    """True when ``bounds`` read in ``epsg`` fall inside that CRS's area of use and Mongolia."""
    from pyproj import Transformer

    crs = CRS.from_epsg(epsg)
    area = crs.area_of_use
    lon, lat = Transformer.from_crs(crs, 4326, always_xy=True).transform(
        [bounds[0], bounds[2], bounds[0], bounds[2]], [bounds[1], bounds[1], bounds[3], bounds[3]])
    lon, lat = np.asarray(lon), np.asarray(lat)
    if not (np.all(np.isfinite(lon)) and np.all(np.isfinite(lat))):
        return False
    w, so, e, n = _MONGOLIA_LONLAT
    inside = bool(np.all((lon >= w) & (lon <= e) & (lat >= so) & (lat <= n)))
    if area is not None:
        # half a degree of slack: parcels straddling a zone edge are still in that zone's system
        inside &= bool(np.all((lon >= area.west - 0.5) & (lon <= area.east + 0.5)))
    return inside


def _gk_hint(bounds: np.ndarray, declared: int | None = None) -> str:
    """A hint naming only CRSs that put the coordinates where they belong.

    Zone-prefixed eastings (18 500 000 → zone 18) name their Gauss-Krüger zone exactly. Eastings
    without the prefix under a declared GK zone are that zone's prefix-free twin (EPSG:25zz:
    Gauss-Kruger CM …E) — not UTM, whose 0.9996 scale puts them ≈ 2 km off at Mongolian
    northings. With no CRS at all, prefix-free eastings fit UTM and prefix-free GK alike; both
    families are named with the ≈ 2 km difference between them, never a guess of one."""
    minx = bounds[0]
    zone = int(minx // 1_000_000)
    if zone in MONGOLIA_GK_EPSG and 1e5 < bounds[1] < 1e7 and _lands_in(MONGOLIA_GK_EPSG[zone], bounds):
        return (f"; the eastings ({minx:,.0f}…) look like Pulkovo-1942 Gauss-Krüger zone {zone} with the "
                f"zone prefix: try --crs EPSG:{MONGOLIA_GK_EPSG[zone]}")
    if not (1e5 < minx < 1e6 and 4e6 < bounds[1] < 6e6):
        return ""
    if declared in MONGOLIA_GK_EPSG.values():
        gz = declared - 28400
        twin = MONGOLIA_GK_CM_EPSG[gz]
        if _lands_in(twin, bounds):
            return (f"; the eastings ({minx:,.0f}…) lack the zone prefix {gz}: the same Gauss-Krüger zone "
                    f"without it is --crs EPSG:{twin} (Pulkovo 1942 / Gauss-Kruger CM {6 * gz - 3}E); "
                    f"do not use UTM, it would put the parcels about 2 km off")
        return ""
    utm = [e for e in (32600 + z for z in range(45, 51)) if _lands_in(e, bounds)]
    gk = [MONGOLIA_GK_CM_EPSG[z] for z in MONGOLIA_GK_CM_EPSG if _lands_in(MONGOLIA_GK_CM_EPSG[z], bounds)]
    if not utm and not gk:
        return ""
    return ("; the coordinates look like metres in a transverse Mercator zone without a zone prefix: "
            "WGS 84 / UTM (--crs EPSG:32645…32650, the zone of the parcels' longitude) or Pulkovo-1942 "
            "Gauss-Krüger without prefix (--crs EPSG:2505…2510, 'Gauss-Kruger CM 87E…117E'); the two differ "
            "by about 2 km here (scale 0.9996 vs 1), so use the one the data was made in")


def _resolve_crs(frame: gpd.GeoDataFrame, crs: str | int | None, source: str) -> tuple[gpd.GeoDataFrame, str]:
    bounds = np.asarray(frame.total_bounds)
    if crs is not None:
        user = crs_from_user(crs)
        frame = frame.set_crs(user, allow_override=True)
    elif frame.crs is None:
        raise CRSError(f"{source} has no coordinate reference system; give it with --crs "
                       f"(e.g. --crs EPSG:32648){_gk_hint(bounds)}")
    pcrs = CRS(frame.crs)
    epsg = pcrs.to_epsg(min_confidence=70)
    # Gauss-Krüger with zone prefix: eastings must carry the zone's millions digit(s)
    if epsg in MONGOLIA_GK_EPSG.values():
        zone = epsg - 28400
        if not (zone * 1e6 < bounds[0] < (zone + 1) * 1e6):
            raise CRSError(f"{source} is declared EPSG:{epsg} (Gauss-Krüger zone {zone}, eastings "
                           f"{zone}xxxxxx m) but its eastings are {bounds[0]:,.0f}…{bounds[2]:,.0f}; give the "
                           f"CRS that matches the coordinates{_gk_hint(bounds, epsg)}")
    if pcrs.is_geographic and (abs(bounds[[0, 2]]).max() > 180 or abs(bounds[[1, 3]]).max() > 90):
        raise CRSError(f"{source} claims geographic coordinates ({pcrs.name}) but holds values like "
                       f"{bounds[0]:,.0f}, {bounds[1]:,.0f}; give the projected CRS with --crs{_gk_hint(bounds)}")
    return frame, (f"EPSG:{epsg}" if epsg else pcrs.to_string())


def _polygonal(geom: Any) -> Any:
    """Keep only the polygonal parts of a geometry (collections from make_valid, mixed layers)."""
    if geom is None or geom.is_empty:
        return None
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    if not parts:
        return None
    merged = shapely.union_all(parts)
    return merged if not merged.is_empty else None


def areas_ha(frame: gpd.GeoDataFrame) -> pd.Series:
    """Area of each polygon in hectares, computed in the UTM zone of its own centroid."""
    geo = frame.to_crs(4326)
    cent = shapely.centroid(geo.geometry.values)
    zones = np.array([utm_epsg(p.x, p.y) if p is not None and not p.is_empty else 32648
                      for p in cent])
    out = pd.Series(np.nan, index=frame.index, dtype="float64")
    for epsg in np.unique(zones):
        sel = zones == epsg
        out[sel] = geo.geometry[sel].to_crs(int(epsg)).area.to_numpy() / 1e4
    return out


def _geometry_checks(frame: gpd.GeoDataFrame, ids: pd.Series, report: dict[str, Any]) -> gpd.GeoDataFrame:
    geoms = frame.geometry.values
    nverts = shapely.get_num_coordinates(geoms)
    big = np.flatnonzero(nverts > MAX_VERTICES)
    if big.size:
        raise TooLargeError(f"parcel(s) {', '.join(map(str, ids.iloc[big][:10]))} have more than "
                            f"{MAX_VERTICES:,} vertices (limit); simplify them (e.g. ogr2ogr -simplify 0.5)")
    has_z = shapely.has_z(geoms)
    if has_z.any():
        report["z_dropped"] = int(has_z.sum())
    geoms = shapely.force_2d(geoms)  # also drops M
    # NaN or Infinity in a vertex: GEOS cannot repair or measure such a polygon; drop the parcel
    coords, which = shapely.get_coordinates(geoms, return_index=True)
    nonfinite = np.zeros(len(geoms), dtype=bool)
    nonfinite[which[~np.isfinite(coords).all(axis=1)]] = True
    report["nonfinite"] = [str(ids.iloc[i]) for i in np.flatnonzero(nonfinite)]
    geoms[nonfinite] = None
    invalid = ~shapely.is_valid(geoms) & ~shapely.is_missing(geoms)
    repaired = []
    if invalid.any():
        for i in np.flatnonzero(invalid):
            repaired.append({"parcel_id": str(ids.iloc[i]), "reason": shapely.is_valid_reason(geoms[i])})
        geoms[invalid] = shapely.make_valid(geoms[invalid])
    report["repaired"] = repaired
    kept = np.array([_polygonal(g) for g in geoms], dtype=object)
    report["collections_reduced"] = [
        str(ids.iloc[i]) for i, g in enumerate(geoms)
        if g is not None and not g.is_empty and g.geom_type not in ("Polygon", "MultiPolygon")
        and kept[i] is not None]
    empty = np.array([g is None for g in kept], dtype=bool)
    report["dropped"] = [{"parcel_id": str(ids.iloc[i]),
                          "reason": "NaN or infinite coordinates" if nonfinite[i] else
                          "empty, unreadable or not polygonal"}
                         for i in np.flatnonzero(empty)]
    frame = frame.set_geometry(gpd.GeoSeries(kept, index=frame.index, crs=frame.crs))
    return frame.loc[~empty]


def _overlaps_and_slivers(frame: gpd.GeoDataFrame, report: dict[str, Any]) -> None:
    """Pairs of parcels that overlap (area, m², in a local UTM zone) and thin parcels."""
    if len(frame) == 0:
        report["overlaps"], report["slivers"] = [], []
        return
    c = frame.to_crs(4326).union_all().centroid
    metric = frame.to_crs(utm_epsg(c.x, c.y))
    geoms = metric.geometry.values
    left, right = metric.sindex.query(geoms, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    overlaps, slivers = [], []
    if left.size:
        inter = shapely.area(shapely.intersection(geoms[left], geoms[right]))
        pid = metric["parcel_id"].to_numpy()
        for a, b, area in zip(left, right, inter, strict=True):
            if area <= 1e-6:
                continue  # touching edges only
            item = {"a": str(pid[a]), "b": str(pid[b]), "area_m2": round(float(area), 2)}
            (slivers if area < SLIVER_AREA_M2 else overlaps).append(item)
    area = shapely.area(geoms)
    perim = shapely.length(geoms)
    compact = np.where(perim > 0, 4 * np.pi * area / np.maximum(perim, 1e-12) ** 2, 0)
    for pid_, a, cp in zip(metric["parcel_id"], area, compact, strict=True):
        if a < SLIVER_AREA_M2 or cp < SLIVER_COMPACTNESS:
            slivers.append({"parcel": str(pid_), "area_m2": round(float(a), 2),
                            "compactness": round(float(cp), 4)})
    report["overlaps"], report["slivers"] = overlaps, slivers


def normalise_parcels(frame: gpd.GeoDataFrame, *, id_field: str | None = None,
                      source: str = "parcels", report: dict[str, Any] | None = None) -> ParcelImport:
    """Map a GeoDataFrame (with a CRS) to the parcel model: columns, codes, checked geometry,
    EPSG:4326, hectares. Raises ConflictError on duplicate ids, InputError on no features."""
    report = dict(report or {})
    if len(frame) == 0:
        raise InputError(f"{source} has 0 features; export the layer with its parcels, or pick the "
                         "right layer with --layer")
    columns = [c for c in frame.columns if c != frame.geometry.name]
    mapping: dict[str, str] = {}
    for target in PARCEL_COLUMNS:
        if target == "area_ha":
            continue
        src = _find_field(frame, columns, target, id_field if target == "parcel_id" else None)
        if src is not None and src not in mapping.values():
            mapping[target] = src
    report["field_map"] = dict(mapping)
    crop_field = None if "land_use" in mapping else find_crop_field(columns)
    if crop_field is not None:
        # a field registry without land use: grassland is pasture, any named crop is cropland
        frame = frame.copy()
        frame["_land_use_from_crop"] = land_use_from_crop(frame[crop_field])
        mapping["land_use"] = "_land_use_from_crop"
        report["land_use_from_crop"] = crop_field
    out = pd.DataFrame(index=frame.index)
    if "parcel_id" in mapping:
        raw = frame[mapping["parcel_id"]]
        ids = raw.map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else
                      (str(int(v)) if isinstance(v, float) and float(v).is_integer() else str(v).strip()))
        if ids.isna().any():
            raise InputError(f"{int(ids.isna().sum())} parcel(s) in {source} have no id in field "
                             f"{mapping['parcel_id']!r}; fill them or choose another --id-field")
    else:
        ids = pd.Series([f"P{i + 1:05d}" for i in range(len(frame))], index=frame.index)
        report["ids_generated"] = True
    for pid in ids:
        check_parcel_id(str(pid))
    dup = ids[ids.duplicated(keep=False)]
    if len(dup):
        listed = sorted(set(dup))
        raise ConflictError(f"{source} has duplicate parcel ids: {', '.join(listed[:20])}"
                            f"{' …' if len(listed) > 20 else ''}; make them unique or choose another --id-field")
    out["parcel_id"] = ids.astype(str)
    for target, kind in PARCEL_COLUMNS.items():
        if target in ("parcel_id", "area_ha"):
            continue
        src = mapping.get(target)
        if target in _CODED:
            table, default, allowed = _CODED[target]
            vals = frame[src] if src else pd.Series([None] * len(frame), index=frame.index)
            codes = [_code(v, table, allowed) for v in vals]
            unknown = sorted({str(v) for v, c in zip(vals, codes, strict=True)
                              if c is None and v is not None and str(v).strip() not in ("", "nan")})
            if unknown:
                report.setdefault("unknown_values", {})[target] = unknown[:20]
            if any(c is None for c in codes):
                report.setdefault("defaulted", {})[target] = {"value": default,
                                                              "count": sum(c is None for c in codes)}
            out[target] = [c or default for c in codes]
        elif kind == "int":
            vals = pd.to_numeric(frame[src], errors="coerce") if src else pd.Series(0, index=frame.index)
            out[target] = vals.fillna(0).round().astype("int64")
        else:
            out[target] = (frame[src].astype("string").fillna("") if src else "")
            out[target] = out[target].astype(object)
    extra = [c for c in columns if c not in mapping.values() or c == crop_field]
    for c in extra:
        # a source column named like a model column we compute (area_ha) is kept beside it
        name = c if c not in out.columns and c not in PARCEL_COLUMNS else f"src_{c}"
        if name in out.columns or name in columns and name != c:
            continue  # re-normalising a normalised table: its old area_ha is recomputed, not kept twice
        out[name] = frame[c]
    gdf = gpd.GeoDataFrame(out, geometry=frame.geometry.values, crs=frame.crs)
    gdf = _geometry_checks(gdf, gdf["parcel_id"], report)
    if len(gdf) == 0:
        raise InputError(f"{source} has no polygon parcels: all {len(frame)} features are empty, null, "
                         "points or lines, or have NaN/infinite coordinates; export the parcel polygons",
                         code="error.parcels.no_polygons", source=source, count=len(frame))
    gdf = gdf.to_crs(4326)
    gdf.insert(len(PARCEL_COLUMNS) - 1, "area_ha", areas_ha(gdf).round(4))
    _overlaps_and_slivers(gdf, report)
    report["feature_count"] = int(len(gdf))
    report["area_ha"] = round(float(gdf["area_ha"].sum()), 4)
    return ParcelImport(frame=gdf.reset_index(drop=True), report=report)


def read_parcels(path: Path, *, layer: str | None = None, id_field: str | None = None,
                 crs: str | int | None = None) -> ParcelImport:
    """Read a parcel layer (GeoJSON, GeoPackage, Shapefile or zipped Shapefile, KML, FlatGeobuf,
    CSV with a WKT column) into the parcel model, EPSG:4326, with a report of what was repaired,
    dropped, overlapping or thin. ``crs`` overrides or supplies the layer's CRS."""
    path = Path(path)
    src, opts, driver = _source(path)
    gdalenv.lock_drivers()
    try:
        opened = pyogrio.read_info(src, layer=layer, **opts)["driver"]
        if opened != driver and not (driver == "KML" and opened == "LIBKML"):
            raise InputError(f"{path.name} looked like {driver} but GDAL opens it as {opened}; "
                             f"parcel files are read with {', '.join(VECTOR_DRIVERS)} only",
                             code="error.parcels.driver", name=path.name, driver=driver, opened=opened)
        # a geometry GEOS cannot build (a ring left open by a NaN vertex) becomes null and is
        # reported as dropped, instead of failing the whole layer
        frame = pyogrio.read_dataframe(src, layer=layer, on_invalid="ignore", **opts)
    except pyogrio.errors.DataSourceError as exc:
        raise InputError(f"cannot read parcel file {path.name}: {exc}") from exc
    except pyogrio.errors.DataLayerError as exc:
        layers = ", ".join(str(x[0]) for x in pyogrio.list_layers(src)) if layer else "?"
        raise InputError(f"cannot read layer {layer!r} of {path.name} (layers: {layers}): {exc}") from exc
    if not isinstance(frame, gpd.GeoDataFrame) or frame.geometry is None:
        raise InputError(f"{path.name} has no geometry column; CSV files need a WKT column named 'wkt' or 'geometry'")
    report: dict[str, Any] = {"source": path.name, "layer": layer, "encoding": opts.get("encoding", "auto")}
    if len(frame) == 0:
        raise InputError(f"{path.name} has 0 features; export the layer with its parcels, or pick the "
                         "right layer with --layer")
    frame, report["source_crs"] = _resolve_crs(frame, crs, path.name)
    return normalise_parcels(frame, id_field=id_field, source=path.name, report=report)


# -- versions in the workspace ---------------------------------------------------------------

def save_parcels(ws: Workspace, frame: gpd.GeoDataFrame, *, source: str, user: str | None = None,
                 report: dict[str, Any] | None = None) -> int:
    """Store ``frame`` as a new parcel version (``parcels/parcels-v<N>.gpkg``); returns N.

    On a PostGIS catalog the layer goes into its ``parcels`` table (geometry in EPSG:4326), no
    file. Earlier versions are closed (``valid_to`` set) but never overwritten."""
    if "parcel_id" not in frame.columns:
        raise InputError("the parcel table has no parcel_id column; normalise it with read_parcels first")
    dup = frame["parcel_id"][frame["parcel_id"].duplicated()]
    if len(dup):
        raise ConflictError(f"duplicate parcel ids: {', '.join(map(str, sorted(set(dup))[:20]))}")
    from belcheer.catalog import ParcelLayerStore  # not at import: zonal_stats never needs it

    if isinstance(ws.catalog, ParcelLayerStore):  # PostGIS: geometry rows, no file
        pv = ws.catalog.add_parcel_layer(frame.to_crs(4326), source, report or {})
        ws.catalog.audit(user, "parcels.import", f"parcels-v{pv.version}",
                         after={"source": source, "features": len(frame), "file": None})
        return pv.version
    versions = ws.catalog.parcel_versions()
    n = (versions[-1].version if versions else 0) + 1
    target = ws.path("parcels", f"parcels-v{n}.gpkg")
    while target.exists():  # never overwrite; a leftover file from a failed run gets a new number
        n += 1
        target = ws.path("parcels", f"parcels-v{n}.gpkg")
    frame = frame.to_crs(4326)
    with atomic_path(target) as tmp:
        pyogrio.write_dataframe(frame, tmp, layer="parcels", driver="GPKG")
    pv = ws.catalog.add_parcel_version(target, source, len(frame), report or {})
    ws.catalog.audit(user, "parcels.import", f"parcels-v{pv.version}",
                     after={"source": source, "features": len(frame), "file": target.name})
    return pv.version


def import_parcels(ws: Workspace, path: Path, *, layer: str | None = None, id_field: str | None = None,
                   crs: str | int | None = None, user: str | None = None) -> ParcelImport:
    """Read a parcel file and store it as the workspace's new current parcel version."""
    result = read_parcels(path, layer=layer, id_field=id_field, crs=crs)
    result.version = save_parcels(ws, result.frame, source=Path(path).name, user=user, report=result.report)
    result.report["version"] = result.version
    return result


def load_parcels(ws: Workspace, version: int | None = None) -> gpd.GeoDataFrame:
    """A stored parcel version (the current one by default), EPSG:4326."""
    if version is None:
        pv = ws.catalog.current_parcel_version()
        if pv is None:
            raise NotFoundError("no parcels imported in this workspace; run `belcheer parcels import FILE`")
    else:
        pv = next((v for v in ws.catalog.parcel_versions() if v.version == version), None)
        if pv is None:
            have = ", ".join(str(v.version) for v in ws.catalog.parcel_versions()) or "none"
            raise NotFoundError(f"no parcel version {version} (versions: {have})")
    from belcheer.catalog import IN_CATALOG_PREFIX, ParcelLayerStore

    if str(pv.path).startswith(IN_CATALOG_PREFIX) and isinstance(ws.catalog, ParcelLayerStore):
        frame = ws.catalog.parcel_layer(pv.version)
    else:
        frame = pyogrio.read_dataframe(pv.path, layer="parcels")
    return _as_loaded(frame, pv.version)


def _as_loaded(frame: gpd.GeoDataFrame, version: int) -> gpd.GeoDataFrame:
    frame["parcel_id"] = frame["parcel_id"].astype(str)
    for col in LIVESTOCK:
        if col in frame.columns:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").fillna(0).astype("int64")
    frame.attrs["parcel_version"] = version
    return frame


def _current_version(ws: Workspace):
    pv = ws.catalog.current_parcel_version()
    if pv is None:
        raise NotFoundError("no parcels imported in this workspace; run `belcheer parcels import FILE`")
    return pv


def _in_catalog(ws: Workspace, pv) -> bool:
    from belcheer.catalog import IN_CATALOG_PREFIX, ParcelLayerStore

    return str(pv.path).startswith(IN_CATALOG_PREFIX) and isinstance(ws.catalog, ParcelLayerStore)


def parcel_columns(ws: Workspace) -> dict[str, str]:
    """The current parcel layer's attribute columns and their pandas dtypes, in layer order
    (``object`` for text), read from the layer's schema, not its rows."""
    pv = _current_version(ws)
    if _in_catalog(ws, pv):
        return ws.catalog.parcel_columns(pv.version)
    info = pyogrio.read_info(pv.path, layer="parcels")
    return {str(f): str(d) for f, d in zip(info["fields"], info["dtypes"], strict=True)}


def query_parcels(ws: Workspace, *, bbox: tuple[float, float, float, float] | None = None,
                  where: Mapping[str, str] | None = None, offset: int = 0,
                  limit: int | None = None) -> tuple[gpd.GeoDataFrame, int]:
    """One page of the current parcel layer (EPSG:4326, layer order) and how many parcels
    match: geometry intersecting ``bbox`` (lon/lat degrees) and properties whose text equals
    each value of ``where``. The store evaluates the filters: PostgreSQL (GiST index) for a
    PostGIS catalog, OGR's SQL and the GeoPackage's R-tree for the embedded one; only the page
    is read. Unknown properties raise InputError."""
    pv = _current_version(ws)
    where = dict(where or {})
    columns = parcel_columns(ws)
    unknown = [k for k in where if k not in columns]
    if unknown:
        raise InputError(f"unknown parcel property {unknown[0]!r}; properties are {', '.join(columns)}")
    if _in_catalog(ws, pv):
        frame, matched = ws.catalog.query_parcel_layer(pv.version, bbox=bbox, where=where,
                                                       offset=offset, limit=limit)
        return _as_loaded(frame, pv.version), matched
    sql = " AND ".join('"{}" = \'{}\''.format(k.replace('"', '""'), str(v).replace("'", "''"))
                       for k, v in where.items()) or None
    mask = shapely.box(*bbox) if bbox is not None else None
    fids = pyogrio.read_dataframe(pv.path, layer="parcels", columns=[], read_geometry=False,
                                  where=sql, mask=mask, fid_as_index=True).index.to_numpy()
    fids = np.sort(fids)
    page = fids[offset:] if limit is None else fids[offset:offset + limit]
    if len(page):
        frame = pyogrio.read_dataframe(pv.path, layer="parcels", fids=page)
    else:
        # the layer's columns and types, no rows (max_features=0 would mean no limit)
        frame = pyogrio.read_dataframe(pv.path, layer="parcels", max_features=1).iloc[:0]
    return _as_loaded(frame, pv.version), int(len(fids))

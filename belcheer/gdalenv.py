"""GDAL and PROJ configured so that a reader touches only the file it was asked to open.

GDAL opens far more than rasters and vector layers: a ``.geojson`` that is really a GDALG pipeline,
a ``.shp`` that is an OGR VRT, a VRT naming ``/etc/passwd`` or ``/vsicurl/http://…``, a GeoJSON
whose ``crs`` is a link GDAL fetches. rasterio and pyogrio each bundle their own GDAL (and PROJ),
so every option is set in the process environment, which both libraries' ``CPLGetConfigOption``
and PROJ read, before either opens anything:

* ``GDAL_SKIP=GDALG OGR_VRT`` — the two drivers that turn a file into reads of other files or
  URLs are not registered (belcheer writes neither). The raster ``VRT`` driver stays, because
  rasterio and rio-tiler build in-memory VRTs themselves; a raster a user supplied is opened with
  the one driver its first bytes call for (:func:`raster_driver`: GTiff or JPEG), so GDAL never
  tries VRT (or any other driver) on it.
* ``CPL_VSIL_CURL_ALLOWED_FILENAME`` set to a name no URL can have — ``/vsicurl/`` and the
  file systems built on it (``/vsis3/``, ``/vsigs/``, ``/vsiaz/``…) refuse every URL before
  connecting. The one exception is the S3 product store
  (:mod:`belcheer.storage_s3`): reading a product sets this option, in a thread-local
  ``rasterio.Env``, to that one ``/vsis3/`` object.
* ``GDAL_HTTP_PROXY``/``GDAL_HTTPS_PROXY`` point at a closed loopback port — any other HTTP GDAL
  tries (a GeoJSON linked CRS, a WMS/WFS source) fails to connect. (libcurl bypasses a proxy for
  hosts in ``no_proxy``; the readers also refuse linked CRSs themselves.)
* ``GDAL_VRT_ENABLE_PYTHON=NO`` — no Python pixel functions in a VRT;
  ``GDAL_VRT_ENABLE_RAWRASTERBAND=NO`` — no raw reads of local files inside a VRT (GDAL ≥ 3.12:
  pyogrio's; rasterio's GDAL 3.10 predates the option, which is why user rasters never reach
  its VRT driver).
* ``OGR_SQLITE_ALLOW_EXTERNAL_ACCESS=NO`` — a GeoPackage's SQL cannot attach other databases.
* ``PROJ_NETWORK=OFF`` — PROJ never downloads transformation grids.

Deprecated GDAL drivers stay disabled (no ``GDAL_ENABLE_DEPRECATED_DRIVER_*`` is set here).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from belcheer.errors import InputError

#: drivers that read other files or URLs named inside a file; never registered
SKIPPED_DRIVERS: tuple[str, ...] = ("GDALG", "OGR_VRT")
#: a proxy nothing listens on (port 1 is privileged and unassigned on servers)
DEAD_PROXY = "127.0.0.1:1"
#: the only /vsicurl/ name GDAL may open: none is ever this
NO_URL = "/belcheer/network-disabled"

#: option → value, forced (an operator's environment cannot loosen them)
OPTIONS: dict[str, str] = {
    "CPL_VSIL_CURL_ALLOWED_FILENAME": NO_URL,
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".belcheer-network-disabled",
    "GDAL_HTTP_PROXY": DEAD_PROXY,
    "GDAL_HTTPS_PROXY": DEAD_PROXY,
    "GDAL_HTTP_CONNECTTIMEOUT": "1",
    "GDAL_HTTP_MAX_RETRY": "0",
    "GDAL_VRT_ENABLE_PYTHON": "NO",
    "GDAL_VRT_ENABLE_RAWRASTERBAND": "NO",
    "OGR_SQLITE_ALLOW_EXTERNAL_ACCESS": "NO",
    "PROJ_NETWORK": "OFF",
}

#: first bytes of the rasters a user may hand in → the one GDAL driver that opens them
RASTER_MAGIC: dict[bytes, str] = {b"II*\x00": "GTiff", b"MM\x00*": "GTiff", b"II+\x00": "GTiff",
                                  b"MM\x00+": "GTiff", b"\xff\xd8\xff": "JPEG"}
#: the raster drivers a user's file may be opened with (GeoTIFF/COG are read by GTiff)
RASTER_DRIVERS: tuple[str, ...] = tuple(dict.fromkeys(RASTER_MAGIC.values()))

_locked = False


def raster_driver(path: str | os.PathLike[str]) -> str:
    """The GDAL driver for a user-supplied raster, from its first bytes; InputError when the file
    is not a TIFF (GeoTIFF, COG) or JPEG. Pass it as ``rasterio.open(path, driver=…)``."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    for magic, driver in RASTER_MAGIC.items():
        if head.startswith(magic):
            return driver
    raise InputError(f"{Path(path).name} is not a raster this server reads (GeoTIFF, COG or JPEG); "
                     f"its first bytes are {head!r}", code="error.raster.format", name=Path(path).name)


def apply_environment() -> None:
    """Put :data:`OPTIONS` and ``GDAL_SKIP`` into ``os.environ`` (cheap; run at import of belcheer)."""
    os.environ.update(OPTIONS)
    skip = os.environ.get("GDAL_SKIP", "").replace(",", " ").split()
    os.environ["GDAL_SKIP"] = " ".join(dict.fromkeys(skip + list(SKIPPED_DRIVERS)))


def lock_drivers() -> None:
    """Make sure the skipped drivers are gone from both bundled GDALs and PROJ is offline, even
    if rasterio or pyogrio were imported before belcheer (their driver lists are built at import).

    Idempotent and cheap after the first call; readers of user files call it before opening.
    """
    global _locked
    if _locked:
        return
    apply_environment()
    import pyogrio

    if any(d in pyogrio.list_drivers() for d in SKIPPED_DRIVERS):
        # GDALAllRegister() re-reads GDAL_SKIP and unloads the drivers it names
        pyogrio.set_gdal_config_options({"GDAL_SKIP": os.environ["GDAL_SKIP"]})
        from pyogrio import _ogr

        _ogr._register_drivers()
    if "rasterio" in sys.modules:
        from rasterio.env import set_gdal_config

        for key, value in OPTIONS.items():
            set_gdal_config(key, value)
    import pyproj.network

    pyproj.network.set_network_enabled(False)
    _locked = True


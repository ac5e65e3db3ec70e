"""Bring your own index: register an index raster made elsewhere (OpenDroneMap, Pix4D, DJI
Terra, Sentinel-2 …) as a survey's INDEX product, so statistics, condition and change use it
like one belcheer computed.

The file is copied into the workspace as a float32 COG with NaN nodata on the file's own grid
and CRS (the input is only read); its nodata (and mask) become NaN and ``scale``/``offset``
(default: the file's own) are applied, so stored values are in index units.
"""

from __future__ import annotations

import datetime as _dt
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import rasterio

from belcheer.errors import ConflictError, CRSError, InputError, NotFoundError
from belcheer.models import Product, ProductKind, Survey

if TYPE_CHECKING:  # pragma: no cover
    from belcheer.workspace import Workspace

#: a catalogue index whose 99th percentile of |value| exceeds this is taken to be scaled
#: (e.g. NDVI × 10000 as int16): no drone vegetation index comes near it
PLAUSIBLE_ABS = 5.0


def _catalogue_name(index: str) -> str | None:
    from belcheer.indices.catalog import lookup

    try:
        return lookup(index).name
    except InputError:
        return None


def import_index(ws: Workspace, path: str | Path, *, index: str, survey: str,
                 date: str | _dt.date | None = None, band: int = 1, scale: float | None = None,
                 offset: float | None = None) -> Product:
    """Register band ``band`` of the index raster ``path`` as the INDEX product ``index``
    (lower case) of ``survey``, returning the product.

    The survey is created (no frames, the raster's EPSG, ``date`` as ISO date) when missing.
    ``scale``/``offset`` convert stored numbers to index units (value = stored × scale +
    offset; default the file's own, e.g. 0.0001 for NDVI × 10000). A catalogue index whose
    values are far outside any index's range raises :class:`InputError` naming ``--scale``.
    The raster must have a CRS with an EPSG code (any; parcels are reprojected to it)."""
    from belcheer.zoning.rasterout import map_blocks_to_cog

    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"index raster {path} does not exist")
    name = str(index).strip().lower()
    if not name:
        raise InputError("give the index's name with --index (e.g. ndvi)")
    day = _iso_date(date)
    try:
        with rasterio.open(path) as src:
            if src.crs is None:
                raise CRSError(f"{path.name} has no CRS; georeference it first (gdal_translate -a_srs EPSG:…)")
            epsg = src.crs.to_epsg()
            if not 1 <= band <= src.count:
                raise InputError(f"{path.name} has {src.count} band(s); --band {band} does not exist")
            file_scale, file_offset = float(src.scales[band - 1] or 1.0), float(src.offsets[band - 1] or 0.0)
            sample = src.read(band, masked=True, out_shape=(min(src.height, 512), min(src.width, 512)))
    except rasterio.RasterioIOError as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    if epsg is None:
        raise CRSError(f"{path.name}: its CRS has no EPSG code; reproject it (gdalwarp -t_srs EPSG:…)")
    k = file_scale if scale is None else float(scale)
    b = file_offset if offset is None else float(offset)
    values = np.ma.filled(sample.astype("float64"), np.nan) * k + b
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise InputError(f"{path.name} band {band} holds no valid values (all nodata)")
    canonical = _catalogue_name(name)
    p99 = float(np.quantile(np.abs(values), 0.99))
    if canonical is not None and p99 > PLAUSIBLE_ABS:
        raise InputError(f"{path.name}: {canonical} values reach {p99:,.0f}, outside any index's range; "
                         f"the file is probably scaled — give --scale (e.g. --scale 0.0001 for ×10000)")

    if survey not in ws.surveys():
        manifest = ws.save_survey(Survey(name=survey, captures=(), epsg=epsg, source_dir=path.parent),
                                  {"imported_index": str(path)})
        if day is not None:
            ws.catalog.add_survey(survey, manifest, epsg, day, {"imported_index": str(path)}, replace=True)
    elif day is not None:
        rec = ws.catalog.survey(survey)
        if rec.date and str(rec.date)[:10] != day:
            raise ConflictError(f"survey {survey!r} is dated {str(rec.date)[:10]}, not {day}; "
                                "import into another --survey or leave out --date")
        if not rec.date:
            ws.catalog.add_survey(survey, rec.manifest, rec.epsg, day, rec.summary, replace=True)

    def _scaled(arrays: list[np.ndarray], _win: object, _t: object) -> np.ndarray:
        return (arrays[0] * k + b).astype("float32")

    with ws.writing_product(survey, name) as (out, uri):
        map_blocks_to_cog([path], out, _scaled, dtype="float32", nodata=float("nan"), band=band,
                          overview_resampling="average")
    return ws.add_product(Product(
        id="", survey=survey, kind=ProductKind.INDEX, name=name, uri=uri, epsg=int(epsg),
        units="", relative=False, created=datetime.now(UTC),
        metadata={"method": "imported", "source": str(path), "band": band, "scale": k, "offset": b,
                  "index": canonical or name, "formula": "imported"}))


def _iso_date(date: str | _dt.date | None) -> str | None:
    if date is None or str(date).strip() == "":
        return None
    if isinstance(date, _dt.date):
        return date.isoformat()[:10]
    try:
        return _dt.date.fromisoformat(str(date).strip()[:10]).isoformat()
    except ValueError:
        raise InputError(f"date {date!r} is not an ISO date; write it as 2026-07-15") from None

"""Workspace-level verbs: mosaic a survey, merge rasters, import an existing orthophoto; and
writing the quality report (JSON + PNG preview with footprints and seamlines)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from belcheer.cog import to_cog
from belcheer.errors import ConfigError, CRSError, InputError, NotFoundError
from belcheer.fileio import atomic_path, write_json_atomic
from belcheer.grid import geobox_of_file
from belcheer.models import Band, Product, ProductKind, Survey
from belcheer.orthomosaic.build import MosaicResult, build_orthomosaic
from belcheer.progress import ProgressCallback
from belcheer.types import FrameCorrection
from belcheer.workspace import Workspace


def write_report(result: MosaicResult, report_dir: Path, stem: str = "orthomosaic") -> tuple[Path, Path]:
    """Write ``<stem>-quality.json`` and ``<stem>-preview.png`` (mosaic, footprints, seamlines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from shapely import wkt

    report = {k: v for k, v in result.report.items() if not k.startswith("_")}
    json_path = write_json_atomic(report_dir / f"{stem}-quality.json", report)
    png_path = report_dir / f"{stem}-preview.png"
    with rasterio.open(result.path) as src:
        scale = max(1, int(max(src.width, src.height) / 1200))
        shape = (src.count, max(1, src.height // scale), max(1, src.width // scale))
        data = src.read(out_shape=shape).astype(np.float32)
        mask = src.dataset_mask(out_shape=shape[1:]) > 0
        b = src.bounds
    img = np.moveaxis(data[:3] if data.shape[0] >= 3 else np.repeat(data[:1], 3, 0), 0, -1)
    lo, hi = np.nanpercentile(img[mask], (1, 99)) if mask.any() else (0, 1)
    img = np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1)
    img = np.dstack([np.nan_to_num(img), mask.astype(np.float32)])
    fig, ax = plt.subplots(figsize=(9, 9 * (b.top - b.bottom) / max(b.right - b.left, 1e-6) + 0.5))
    ax.imshow(img, extent=(b.left, b.right, b.bottom, b.top))
    seams = result.report.get("_seams")
    if seams is not None and np.asarray(seams).size:
        s = np.asarray(seams)
        edge = np.zeros(s.shape, bool)
        edge[:, 1:] |= s[:, 1:] != s[:, :-1]
        edge[1:, :] |= s[1:, :] != s[:-1, :]
        edge &= s >= 0
        ov = np.zeros((*s.shape, 4), np.float32)
        ov[edge] = (1.0, 1.0, 0.0, 1.0)
        ax.imshow(ov, extent=(b.left, b.right, b.bottom, b.top), interpolation="nearest")
    from shapely.ops import unary_union

    status = report.get("frame_status", {})
    colours = {"adjusted": "cyan", "gps_only": "orange"}
    polys = {cid: wkt.loads(text) for cid, text in report.get("footprints_wkt", {}).items()}
    for cid, poly in polys.items():
        x, y = poly.exterior.xy
        ax.plot(x, y, color=colours.get(status.get(cid, "adjusted"), "cyan"), lw=0.6)
    for cid, (x, y) in report.get("nadir_points_utm", {}).items():
        ax.plot(x, y, "+", color="red" if status.get(cid, "adjusted") == "adjusted" else "orange", ms=5)
    # each adjusted block outlined, numbered as in the report's block_stats
    for b, members in enumerate(report.get("blocks", [])):
        outline = unary_union([polys[c] for c in members if c in polys])
        for part in getattr(outline, "geoms", [outline]):
            if part.is_empty or not hasattr(part, "exterior"):
                continue
            x, y = part.exterior.xy
            ax.plot(x, y, color="magenta", lw=1.4)
        if not outline.is_empty:
            pt = outline.representative_point()
            ax.annotate(f"block {b}", (pt.x, pt.y), color="magenta", fontsize=8)
    n_gps = len(report.get("frames_gps_only", []))
    ax.set_title(f"{report.get('survey', '')}: {len(report.get('frames_used', []))} frames "
                 f"({n_gps} by GPS only), mean residual {report.get('reprojection_mean_px')} px — "
                 "adjusted (cyan), GPS only (orange), blocks (magenta), seams (yellow)", fontsize=8)
    ax.set_xlabel(f"EPSG:{report.get('epsg')} easting (m)")
    ax.set_ylabel("northing (m)")
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return json_path, png_path


def _survey_correction(ws: Workspace, survey: str, correction: FrameCorrection | None,
                       relative: bool, sv: Survey) -> tuple[FrameCorrection | None, dict[str, Any] | None]:
    """The correction to mosaic with, and the calibration summary the product records.

    A multispectral survey is always calibrated (the stored calibration, else one made now)
    unless ``relative`` asks for a DN mosaic; an explicit ``correction`` that is a belcheer
    :class:`~belcheer.indices.Calibration` becomes the survey's stored calibration, so the
    indices made from this mosaic know which one it was."""
    if correction is not None and relative:
        raise ConfigError("give either a correction (reflectance) or relative=True (DN mosaic), not both")
    if relative or not sv.is_multispectral:
        return correction, None
    from belcheer.indices import Calibration
    from belcheer.indices.stored import store_calibration, survey_calibration

    if correction is None:
        cal, rec = survey_calibration(ws, survey, source="automatic")
        return cal, rec.summary()
    if isinstance(correction, Calibration):
        have = ws.catalog.calibration(survey)
        rec = have if have is not None and Calibration.from_dict(have.body).to_dict() == \
            correction.to_dict() else store_calibration(ws, survey, correction, "python")
        return correction, rec.summary()
    return correction, {"method": "custom correction", "source": "python", "notes": []}


def _narrow_bands(sv: Survey) -> Survey:
    """The survey with a multispectral rig's RGB frames (P4M JPEG, Sequoia RGB, Mavic 3M
    ``_D.JPG``) left out of its captures: the mosaic carries the narrow bands, and an RGB
    frame of another size and lens would be neither calibrated nor aligned."""
    import dataclasses

    caps = []
    for c in sv.captures:
        narrow = tuple(f for f in c.frames if f.band.name != "rgb")
        caps.append(dataclasses.replace(c, frames=narrow) if narrow and len(narrow) < len(c.frames)
                    else c)
    return dataclasses.replace(sv, captures=tuple(caps))


def mosaic(ws: Workspace, survey: str | Survey, *, resolution: float | None = None, epsg: int | None = None,
           dsm: Path | None = None, gcp: Path | None = None, correction: FrameCorrection | None = None,
           relative: bool = False, scheduler: str | None = None,
           progress: ProgressCallback | None = None) -> Product:
    """Mosaic a workspace survey and register the product.

    A multispectral survey is mosaicked as reflectance (product ``reflectance``, kind
    REFLECTANCE, float32) with its stored calibration — calibrated now and stored when it has
    none (the product's ``metadata["calibration"]`` says how) — or with ``correction`` when
    given. ``relative=True`` gives its DN mosaic instead (product ``orthomosaic``, flagged
    relative). RGB: product ``orthomosaic`` (uint8, relative). ``survey`` is a survey's name
    or the survey itself, already loaded.
    """
    sv: Survey = ws.load_survey(survey)
    survey = sv.name
    correction, calibration = _survey_correction(ws, survey, correction, relative, sv)
    if sv.is_multispectral:
        sv = _narrow_bands(sv)
    name = "reflectance" if correction is not None else "orthomosaic"
    with ws.writing_product(survey, name) as (out, uri):  # put into the store when finished
        result = build_orthomosaic(sv, out, resolution=resolution, epsg=epsg, dsm=dsm, gcp=gcp,
                                   correction=correction, scheduler=scheduler, progress=progress)
        json_path, png_path = write_report(result, ws.report_dir(survey), name)
    rep = result.report
    meta: dict[str, Any] = {
        "quality_report": str(json_path), "preview": str(png_path), "method": rep.get("method"),
        "resolution_m": rep.get("resolution_m"), "gsd_m": rep.get("gsd_m"),
        "frames_used": len(rep.get("frames_used", [])), "frames_dropped": len(rep.get("frames_dropped", [])),
        "frames_gps_only": len(rep.get("frames_gps_only", [])),
        "reprojection_mean_px": rep.get("reprojection_mean_px"), "blocks": len(rep.get("blocks", [])),
        "covered_area_ha": rep.get("covered_area_ha"),
    }
    if calibration is not None:
        meta["calibration"] = calibration
    if relative and sv.is_multispectral:
        meta["relative_reason"] = "multispectral DN mosaic (relative=True): not reflectance"
    kind = ProductKind.REFLECTANCE if correction is not None else ProductKind.ORTHOMOSAIC
    return ws.add_product(Product(id="", survey=survey, kind=kind, name=name, uri=uri,
                                  epsg=epsg or sv.epsg, bands=result.bands,
                                  units="reflectance" if correction is not None else "DN",
                                  relative=not sv.is_multispectral or correction is None,
                                  created=datetime.now(UTC), metadata=meta))


def merge_rasters(paths: Sequence[Path], out_path: Path, *, resolution: float | None = None,
                  epsg: int | None = None) -> MosaicResult:
    """Merge already georeferenced rasters (same CRS and bands) into one COG with ``rasterio.merge``.

    ``epsg`` must match the inputs' CRS (reproject them first otherwise).
    """
    from rasterio.merge import merge

    if not paths:
        raise InputError("no rasters given to merge")
    srcs = [rasterio.open(p) for p in paths]
    try:
        crs = {s.crs.to_string() if s.crs else None for s in srcs}
        if len(crs) != 1 or None in crs:
            raise CRSError(f"rasters to merge must share one CRS, got {sorted(map(str, crs))}; "
                           "reproject them with gdalwarp first")
        if epsg and srcs[0].crs.to_epsg() != epsg:
            raise CRSError(f"rasters are in {srcs[0].crs}, not EPSG:{epsg}")
        data, transform = merge(srcs, res=resolution)
        prof = srcs[0].profile.copy()
        descs = srcs[0].descriptions
        tags = [srcs[0].tags(i) for i in range(1, srcs[0].count + 1)]
    finally:
        for s in srcs:
            s.close()
    tmp = Path(out_path).with_name(f".{Path(out_path).stem}.merge.tif")
    prof.update(driver="GTiff", height=data.shape[1], width=data.shape[2], transform=transform,
                tiled=True, blockxsize=512, blockysize=512, compress="deflate")
    try:
        with rasterio.open(tmp, "w", **prof) as dst:
            dst.write(data)
            for i, d in enumerate(descs, 1):
                if d:
                    dst.set_band_description(i, d)
                dst.update_tags(i, **tags[i - 1])
        to_cog(tmp, Path(out_path))
    finally:
        tmp.unlink(missing_ok=True)
    bands = tuple(Band(d or f"band{i}") for i, d in enumerate(descs, 1))
    return MosaicResult(Path(out_path), geobox_of_file(out_path), bands, {"inputs": [str(p) for p in paths]})


def import_ortho(ws: Workspace, path: Path, survey: str | None = None) -> Product:
    """Register an existing georeferenced orthophoto as a survey's ``orthomosaic`` product.

    The file is converted to a COG inside the workspace (the input is never modified). When the
    survey does not exist, a minimal survey record (no captures, the raster's EPSG) is created
    so the product can be registered; its name defaults to the file's stem.
    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"orthophoto {path} does not exist")
    try:
        with rasterio.open(path) as src:
            if src.crs is None:
                raise CRSError(f"{path.name} has no CRS; georeference it (gdal_translate -a_srs) first")
            epsg = src.crs.to_epsg()
            count, dtype = src.count, src.dtypes[0]
            descs = src.descriptions
            tags = [src.tags(i) for i in range(1, count + 1)]
    except rasterio.RasterioIOError as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    if epsg is None:
        raise CRSError(f"{path.name}: its CRS has no EPSG code; reproject to the survey's UTM zone")
    name = survey or path.stem
    if name not in ws.surveys():
        ws.save_survey(Survey(name=name, captures=(), epsg=epsg, source_dir=path.parent),
                       {"imported_orthophoto": str(path)})
    with ws.writing_product(name, "orthomosaic") as (out, uri):
        to_cog(path, out)
    defaults = ("red", "green", "blue") if count >= 3 and dtype == "uint8" else ()
    bands = []
    for i in range(count):
        nm = descs[i] or (defaults[i] if i < len(defaults) else f"band{i + 1}")
        c = tags[i].get("center_nm") or tags[i].get("wavelength")
        bands.append(Band(nm, float(c) if c else {"red": 650.0, "green": 550.0, "blue": 470.0}.get(nm)))
    return ws.add_product(Product(id="", survey=name, kind=ProductKind.ORTHOMOSAIC, name="orthomosaic",
                                  uri=uri, epsg=epsg, bands=tuple(bands), units="DN", relative=True,
                                  created=datetime.now(UTC),
                                  metadata={"method": "imported", "source": str(path)}))

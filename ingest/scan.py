"""Scan a folder of frames into a :class:`~belcheer.models.Survey`; ingest it into a workspace.

The walk follows folder symlinks (cards are often mounted through links) but remembers every
real folder it entered, so a link back up the tree is reported once (``symlink_loop``) and not
followed. With ``confine`` (the server's allowed roots) every folder and file is resolved, links
included, and anything that lands outside those roots is reported (``outside_allowed_roots``)
and never read. Hidden files (``.…``, e.g. macOS ``._IMG_0001.tif``) are ignored; files without an
image extension are counted as skipped. Inputs are only ever opened for reading.

CRS: the UTM zone of the centroid of the frames' positions (:func:`belcheer.crs.utm_epsg`), or
``epsg`` when given (it must be a projected CRS in metres). A survey in which no frame has GPS
gets EPSG:4326 as a placeholder — no footprints, no GSD — and a ``no_crs`` warning.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from pyproj import CRS, Transformer

from belcheer.crs import utm_epsg
from belcheer.errors import (
    ConflictError,
    CRSError,
    InputError,
    NoUsableFramesError,
    UnsafePathError,
)
from belcheer.fileio import safe_name, write_json_atomic
from belcheer.ingest import validate
from belcheer.ingest.footprint import footprint, gsd_m
from belcheer.ingest.frames import IMAGE_SUFFIXES, POSITION_SOURCES, read_frame
from belcheer.ingest.grouping import group_captures
from belcheer.ingest.panels import Height, detect_panels, heights_above_ground
from belcheer.ingest.summary import summarize
from belcheer.models import Capture, Frame, Problem, Severity, Survey
from belcheer.progress import ProgressCallback, track
from belcheer.workspace import Workspace

#: EPSG code stored when no frame has a position (no projected CRS can be chosen)
NO_CRS_EPSG = 4326
#: files read at once
READ_WORKERS = min(4, os.cpu_count() or 1)


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    real = path.resolve()
    return any(real.is_relative_to(r) for r in roots)


def _outside(path: Path) -> Problem:
    return Problem("outside_allowed_roots", f"{path} leads outside the folders this server may read "
                   "(a symlink out of the allowed roots); not read", Severity.ERROR, path)


def walk_images(folder: Path, confine: Sequence[Path] | None = None) -> tuple[list[Path], list[Problem], int]:
    """Image files below ``folder`` (sorted, links followed once), survey problems, skipped count.

    With ``confine``, folders and files whose real path (symlinks resolved) is outside every one of
    those roots are reported and left out."""
    files: list[Path] = []
    problems: list[Problem] = []
    skipped = 0
    seen: set[tuple[int, int]] = set()
    roots = [Path(r).resolve() for r in confine] if confine is not None else None
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        here = Path(dirpath)
        if roots is not None and not _inside(here, roots):
            problems.append(_outside(here))
            dirnames[:] = []
            continue
        try:
            st = here.stat()
        except OSError:
            dirnames[:] = []
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:
            problems.append(Problem("symlink_loop", f"{here} leads back to a folder already scanned "
                                    "(a symlink loop); not followed", Severity.WARNING, here))
            dirnames[:] = []
            continue
        seen.add(key)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = here / name
            if roots is not None and not _inside(path, roots):
                problems.append(_outside(path))
            elif path.suffix.lower() in IMAGE_SUFFIXES:
                files.append(path)
            else:
                skipped += 1
    return files, problems, skipped


def _projected_epsg(epsg: int) -> int:
    try:
        crs = CRS.from_epsg(int(epsg))
    except Exception as exc:
        raise CRSError(f"--epsg {epsg} is not a known EPSG code ({exc}); give e.g. 32648") from exc
    if not crs.is_projected or (crs.axis_info and crs.axis_info[0].unit_name not in ("metre", "meter")):
        raise CRSError(f"EPSG:{epsg} ({crs.name}) is not a projected CRS in metres; footprints and GSD "
                       "need one — give a UTM zone such as 32648 or leave --epsg out")
    return int(epsg)


def _choose_epsg(frames: Sequence[Frame], epsg: int | None) -> int | None:
    if epsg is not None:
        return _projected_epsg(epsg)
    poses = [f.pose for f in frames if f.pose is not None and f.usable]
    if not poses:
        return None
    # the median: a few frames of another flight in the folder must not move the zone
    lon = statistics.median(p.lon for p in poses)
    lat = statistics.median(p.lat for p in poses)
    return utm_epsg(lon, lat)


def _place(captures: list[Capture], heights: dict[str, Height], epsg: int) -> list[Capture]:
    """Footprints (EPSG:epsg) and nadir GSD of every capture with pose, height and intrinsics."""
    to_utm = Transformer.from_crs(4326, epsg, always_xy=True)
    out = []
    for c in captures:
        f, h = c.primary, heights.get(c.id)
        if f.pose is None or h is None or f.intrinsics is None or h.metres <= 0:
            out.append(c)
            continue
        e, n = to_utm.transform(f.pose.lon, f.pose.lat)
        fp = footprint(e, n, f.intrinsics, h.metres, f.pose.yaw, f.pose.pitch, f.pose.roll)
        tags = dict(f.tags)
        tags.update({"belcheer:HeightAboveGround": round(h.metres, 3), "belcheer:HeightSource": h.source})
        frames = (replace(f, tags=tags),) + c.frames[1:]
        out.append(replace(c, frames=frames, footprint=fp, gsd_m=gsd_m(h.metres, f.intrinsics.focal_px)))
    return out


def scan(folder: Path | str, *, survey: str | None = None, epsg: int | None = None,
         panels: Sequence[str] = (), progress: ProgressCallback | None = None,
         quality: bool = True, position: str = "auto",
         confine: Sequence[Path] | None = None) -> Survey:
    """Read the headers of every frame below ``folder``, group them into captures, validate them,
    find panel captures, pick the UTM zone (or use ``epsg``) and estimate footprints (metres in
    that CRS) and nadir GSD (m/px). ``quality`` adds the decimated pixel checks (blur, black,
    saturated). ``position`` (auto, exif, xmp) picks between EXIF GPS and DJI XMP positions
    (:func:`belcheer.ingest.frames.choose_position`). ``confine``: read nothing whose real path is
    outside these folders (the API's allowed roots). Never raises for a bad frame: problems are
    recorded on the frames and survey."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise InputError(f"frames folder {folder} does not exist or is not a folder")
    folder = folder.resolve()
    if confine is not None and not _inside(folder, [Path(r).resolve() for r in confine]):
        raise UnsafePathError(f"frames folder {folder} is outside the folders this server may read")
    name = safe_name(survey or folder.name)
    if epsg is not None:
        _projected_epsg(epsg)
    if position not in POSITION_SOURCES:
        raise InputError(f"--position {position!r}: use auto, exif or xmp")
    files, survey_problems, skipped = walk_images(folder, confine)
    frames: list[Frame] = []
    # threads overlap file I/O and the pixel decodes (libjpeg and GDAL release the GIL)
    with ThreadPoolExecutor(max_workers=READ_WORKERS) as pool:
        results = pool.map(partial(read_frame, quality=quality, position=position), files)
        pairs = list(track(zip(files, results, strict=True), len(files),
                           f"reading {len(files)} frames", progress))
    for path, result in pairs:
        if result.frame is not None:
            frames.append(result.frame)
        elif result.skipped:
            skipped += 1
            survey_problems.append(Problem("not_a_frame", result.skipped, Severity.WARNING, path))
    captures = group_captures(frames, root=folder)
    heights = heights_above_ground([c for c in captures if c.usable])
    found = detect_panels(captures, heights, panels)
    captures = [replace(c, is_panel=c.id in found) for c in captures]
    captures = validate.apply(captures, heights, list(found))
    survey_problems.extend(validate.mixed_cameras(captures))
    chosen = _choose_epsg(frames, epsg)
    if chosen is not None:
        captures = _place(captures, heights, chosen)
    elif frames:
        survey_problems.append(Problem("no_crs", "no frame has a GPS position, so no UTM zone can be "
                                       "chosen (stored as EPSG:4326, no footprints); geotag the "
                                       "frames", Severity.WARNING))
    if not frames:
        survey_problems.append(Problem("no_frames", f"no JPEG or TIFF camera frames found in {folder} "
                                       f"({skipped} other files skipped)", Severity.ERROR, folder))
    captures = [_tag_panel(c, found.get(c.id)) for c in captures]
    return Survey(name=name, captures=tuple(captures), epsg=chosen or NO_CRS_EPSG, source_dir=folder,
                  problems=tuple(survey_problems), created=datetime.now(UTC).replace(microsecond=0))


def _tag_panel(c: Capture, how: str | None) -> Capture:
    if how is None:
        return c
    tags = dict(c.primary.tags)
    tags["belcheer:PanelDetection"] = how
    return replace(c, frames=(replace(c.primary, tags=tags),) + c.frames[1:])


def _no_usable_message(s: Survey) -> str:
    where = s.source_dir or s.name
    if not s.captures:
        return (f"no drone frames found in {where}: it holds no JPEG/TIFF camera frames "
                "(maps, vectors and other files are skipped); point ingest at the folder of frames")
    counts: dict[str, int] = {}
    for p in s.problems + tuple(p for c in s.captures for p in c.problems):
        if p.severity is Severity.ERROR:
            counts[p.code] = counts.get(p.code, 0) + 1
    detail = ", ".join(f"{n} {code}" for code, n in sorted(counts.items())) or "only panel captures"
    return (f"no usable frames in {where}: {len(s.frames)} frames read, none usable for mapping "
            f"({detail}); see `belcheer ingest --json` for the list and fix or remove those frames")


def ingest(ws: Workspace, folder: Path | str, *, survey: str | None = None, epsg: int | None = None,
           panels: Sequence[str] = (), replace: bool = False,
           progress: ProgressCallback | None = None, quality: bool = True,
           position: str = "auto", confine: Sequence[Path] | None = None) -> Survey:
    """:func:`scan` the folder and save the survey manifest and its summary into the workspace
    (catalog, ``surveys/<name>/manifest.parquet`` and ``surveys/<name>/reports/ingest.json``).

    Raises :class:`ConflictError` if the survey exists (unless ``replace``) and
    :class:`NoUsableFramesError` when no flight capture is usable (nothing is saved then)."""
    name = safe_name(survey or Path(folder).expanduser().resolve().name)
    if not replace and name in ws.surveys():
        raise ConflictError(f"survey {name!r} already exists in {ws.root}; choose another --survey "
                            "name or pass --replace")
    s = scan(folder, survey=name, epsg=epsg, panels=panels, progress=progress, quality=quality,
             position=position, confine=confine)
    if not s.flight_captures:
        exc = NoUsableFramesError(_no_usable_message(s))
        exc.summary = summarize(s)  # type: ignore[attr-defined]  # for `ingest --json` to print
        raise exc
    summary = summarize(s)
    s = ws.store_frames(s, Path(folder))  # with an object store: workers elsewhere read them there
    ws.save_survey(s, summary, replace=replace)
    # the full validation report beside the manifest, for people and the web map
    write_json_atomic(ws.report_dir(s.name) / "ingest.json", summary)
    return s

"""Survey-level validation: checks that need more than one frame (pure functions).

Severities (``error`` drops the frame from the mosaic, ``warning`` keeps it):

==================  ========  ==========================================================
code                severity  rule
==================  ========  ==========================================================
zero_byte           error     the file is empty
truncated           error     the file ends before its own headers/pixels say it should
unreadable          error     the file cannot be parsed at all
not_an_image        error     an image extension on something that is not JPEG/TIFF
xmp_unsafe          error     the XMP declares a DTD/entities (XML bomb): tampered file
no_gps              error/w.  no position: an error when no frame of the survey has one; a warning
                              when others do (the mosaic places it by image matching)
black               error     99 % of pixels at the black level
saturated           error/w.  > 50 % (error) or > 5 % (warning) of pixels at full scale
duplicate_band      error     a second frame of one band in one capture
missing_band        error     a multispectral capture lacks a band the survey's other captures
                              have (a file lost or not copied): the capture is dropped
blurry              warning   normalised Laplacian variance below the threshold
oblique             warning   the camera looked more than 15° away from nadir
altitude_outlier    warning   height more than 3.5 robust σ (MAD) from the flight's median
duplicate_time      warning   two captures with the same timestamp
mixed_cameras       warning   (survey) more than one camera model in one folder
symlink_loop        warning   (survey) a folder link pointing back up the tree, not followed
not_a_frame         warning   (survey) a georeferenced map raster among the frames, skipped
no_frames           error     (survey) no image frame in the folder at all
==================  ========  ==========================================================
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

from belcheer.ingest.panels import Height
from belcheer.models import Capture, Problem, Severity

OBLIQUE_DEG = 15.0
MAD_K = 3.5
#: robust σ never below this (m): a survey flown at a steady height must not flag 0.3 m wobbles
MIN_SIGMA_M = 1.0


def _with(capture: Capture, problem_for: dict[str, list[Problem]]) -> Capture:
    if not any(problem_for.get(str(f.path)) for f in capture.frames):
        return capture
    frames = tuple(replace(f, problems=f.problems + tuple(problem_for.get(str(f.path), ())))
                   for f in capture.frames)
    return replace(capture, frames=frames)


def oblique_problems(captures: Sequence[Capture], limit_deg: float = OBLIQUE_DEG) -> dict[str, list[Problem]]:
    """Frames whose camera pointed more than ``limit_deg`` from nadir (where the pitch is known)."""
    out: dict[str, list[Problem]] = defaultdict(list)
    for c in captures:
        for f in c.frames:
            tilt = f.pose.off_nadir_deg if f.pose else None
            if tilt is not None and tilt > limit_deg:
                out[str(f.path)].append(Problem(
                    "oblique", f"{f.path.name} looks {tilt:.0f}° away from nadir (limit {limit_deg:.0f}°): "
                    "its footprint and GSD are rough; fine for 3-D, poor for an orthomosaic",
                    Severity.WARNING, f.path))
    return out


def altitude_outliers(captures: Sequence[Capture], heights: dict[str, Height],
                      panels: Sequence[str] = ()) -> dict[str, list[Problem]]:
    """Flight captures whose height is more than :data:`MAD_K` robust σ from the median height."""
    flight = [(c, heights[c.id].metres) for c in captures if c.id in heights and c.id not in set(panels)]
    out: dict[str, list[Problem]] = defaultdict(list)
    if len(flight) < 3:
        return out
    values = [h for _, h in flight]
    med = statistics.median(values)
    mad = statistics.median(abs(v - med) for v in values)
    sigma = max(1.4826 * mad, MIN_SIGMA_M, 0.02 * abs(med))
    for c, h in flight:
        if abs(h - med) > MAD_K * sigma:
            for f in c.frames:
                out[str(f.path)].append(Problem(
                    "altitude_outlier", f"capture {c.id} was taken {h:.1f} m above ground, the flight "
                    f"median is {med:.1f} m: check it belongs to this survey", Severity.WARNING, f.path))
    return out


def duplicate_times(captures: Sequence[Capture]) -> dict[str, list[Problem]]:
    """Captures sharing one timestamp (a copied file, or two cameras' folders mixed)."""
    by_time: dict[object, list[Capture]] = defaultdict(list)
    for c in captures:
        if c.time is not None:
            by_time[c.time].append(c)
    out: dict[str, list[Problem]] = defaultdict(list)
    for t, group in by_time.items():
        if len(group) < 2:
            continue
        ids = ", ".join(c.id for c in group)
        for c in group:
            for f in c.frames:
                out[str(f.path)].append(Problem(
                    "duplicate_time", f"captures {ids} share the timestamp {t}: a duplicated frame "
                    "or two flights mixed", Severity.WARNING, f.path))
    return out


def mixed_cameras(captures: Sequence[Capture]) -> list[Problem]:
    """One survey-level warning when the captures come from more than one camera model."""
    keys = sorted({c.camera.key for c in captures if c.camera.key})
    if len(keys) < 2:
        return []
    return [Problem("mixed_cameras", f"frames from {len(keys)} cameras in one survey ({', '.join(keys)}): "
                    "ingest each camera's folder as its own survey", Severity.WARNING)]


#: narrow bands of a multispectral rig (a rig's RGB frame is not required)
_NARROW = frozenset({"blue", "green", "red", "rededge", "nir", "lwir", "pan"})


def missing_bands(captures: Sequence[Capture]) -> dict[str, list[Problem]]:
    """Multispectral captures lacking a band that most of the survey's captures have: an error
    on each of their frames, naming the band (the capture is left out of the mosaic)."""
    sets = [frozenset(f.band.name for f in c.frames if f.band.name in _NARROW) for c in captures]
    multi = [b for b in sets if len(b) > 1]
    if not multi:
        return {}
    full = max(set(multi), key=lambda b: (multi.count(b), len(b)))
    out: dict[str, list[Problem]] = defaultdict(list)
    for c, have in zip(captures, sets, strict=True):
        lacking = sorted(full - have)
        if not have or not lacking or len(have) > len(full):
            continue
        for f in c.frames:
            out[str(f.path)].append(Problem(
                "missing_band", f"capture {c.id} has no {', '.join(lacking)} frame (the survey's "
                f"captures have {', '.join(sorted(full))}): dropped from the mosaic — copy the "
                "missing file from the card or leave the capture out", Severity.ERROR, f.path))
    return out


def apply(captures: Sequence[Capture], heights: dict[str, Height],
          panels: Sequence[str] = ()) -> list[Capture]:
    """The captures with the missing-band, oblique, altitude-outlier and duplicate-time
    problems added."""
    merged: dict[str, list[Problem]] = defaultdict(list)
    for found in (missing_bands(captures), oblique_problems(captures),
                  altitude_outliers(captures, heights, panels), duplicate_times(captures)):
        for key, probs in found.items():
            merged[key].extend(probs)
    return chainable_without_gps([_with(c, merged) for c in captures])


def chainable_without_gps(captures: Sequence[Capture]) -> list[Capture]:
    """Frames without a position become warnings when other captures of the survey have one:
    the orthomosaic chains them to those by image matching (and names them if it cannot)."""
    if not any(c.pose is not None for c in captures):
        return list(captures)

    def soften(p: Problem) -> Problem:
        if p.code != "no_gps":
            return p
        return replace(p, severity=Severity.WARNING,
                       message=p.message.split(";")[0] + "; the mosaic places it by matching it to "
                       "the frames that have one")

    return [replace(c, frames=tuple(replace(f, problems=tuple(soften(p) for p in f.problems))
                                    for f in c.frames))
            if any(p.code == "no_gps" for p in c.problems) else c for c in captures]

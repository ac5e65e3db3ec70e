"""Grouping frames into captures: file-name conventions of the multispectral rigs, and unique ids.

=====================  ==================================  =====================
camera                 files of one capture                capture id
=====================  ==================================  =====================
MicaSense RedEdge/Altum ``IMG_0007_1.tif`` … ``_5.tif``      ``IMG_0007``
Parrot Sequoia          ``IMG_180413_080658_0000_GRE.TIF``,   ``IMG_180413_080658_0000``
                        ``_RED``, ``_REG``, ``_NIR``, ``_RGB.JPG``
DJI P4 Multispectral    ``DJI_0011.TIF`` … ``DJI_0015.TIF``   ``DJI_0010``
DJI Mavic 3M            ``DJI_20230401101010_0001_MS_G.TIF``,  ``DJI_20230401101010_0001``
                        ``_MS_R``, ``_MS_RE``, ``_MS_NIR``, ``_D.JPG``
anything else           one file                            the file's stem
=====================  ==================================  =====================

The same number restarts in each MicaSense ``SET`` folder, so ids are made unique by prefixing
the folder (relative to the scanned root, ``/`` → ``_``) only when they would collide.

DJI multispectral frames carry ``drone-dji:CaptureUUID``, shared by the band files (and the RGB
JPEG) of one capture: where it is written it groups the files, whatever they are called (file
numbers are not reliable: renamed or re-numbered copies happen), and the band order comes
from the band (XMP ``BandName`` / ``CentralWavelength``), not the file name.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from belcheer.ingest.cameras import MAVIC3M_SUFFIX, MICASENSE_NUMBER, P4M_DIGIT, SEQUOIA_SUFFIX
from belcheer.models import Capture, Frame, Problem, Severity


@dataclass(frozen=True)
class NameInfo:
    """What a file name says: capture id, band index within the capture, and (fallback) band
    role and centre wavelength (nm) when the headers do not say."""

    capture_id: str
    band_index: int
    vendor: str | None = None
    role: str | None = None
    center_nm: float | None = None
    suffix: str | None = None


_MICASENSE = re.compile(r"^(IMG_\d{4})_(\d{1,2})\.tiff?$", re.IGNORECASE)
_SEQUOIA = re.compile(r"^(IMG_\d{6}_\d{6}_\d{4})_(GRE|RED|REG|NIR|RGB)\.(tiff?|jpe?g)$", re.IGNORECASE)
_MAVIC3M = re.compile(r"^(DJI_\d{14}_\d{4})_(MS_G|MS_R|MS_RE|MS_NIR|D)\.(tiff?|jpe?g)$", re.IGNORECASE)
_P4M = re.compile(r"^DJI_(\d{3})([1-5])\.tiff?$", re.IGNORECASE)


def parse_name(name: str) -> NameInfo:
    """The capture id and band index a file name implies (see the module table)."""
    if m := _MICASENSE.match(name):
        number = int(m.group(2))
        role, nm = MICASENSE_NUMBER.get(number, (None, None))
        return NameInfo(m.group(1), number, "micasense", role, nm)
    if m := _SEQUOIA.match(name):
        suffix = m.group(2).upper()
        role, index, nm = SEQUOIA_SUFFIX[suffix]
        return NameInfo(m.group(1), index, "parrot", role, nm, suffix)
    if m := _MAVIC3M.match(name):
        suffix = m.group(2).upper()
        role, index, nm = MAVIC3M_SUFFIX[suffix]
        return NameInfo(m.group(1), index, "dji-ms", role, nm, suffix)
    if m := _P4M.match(name):
        digit = int(m.group(2))
        role, nm = P4M_DIGIT[digit]
        return NameInfo(f"DJI_{m.group(1)}0", digit, "dji-ms", role, nm, str(digit))
    return NameInfo(Path(name).stem, 1)


def _folder_key(frame: Frame, root: Path | None) -> str:
    parent = frame.path.parent
    if root is not None:
        try:
            parent = parent.relative_to(root)
        except ValueError:
            pass
    return parent.as_posix()


#: band order of a DJI multispectral capture (P4M file digits 1…5; the Mavic 3M has no blue)
DJI_BAND_ORDER = {"blue": 1, "green": 2, "red": 3, "rededge": 4, "nir": 5}
_UUID_KEY = "drone-dji:CaptureUUID"


def by_capture_uuid(frames: Iterable[Frame]) -> list[Frame]:
    """Frames sharing a ``drone-dji:CaptureUUID`` given one capture id (the file names' usual id,
    else the smallest) and DJI band indices; other frames unchanged."""
    frames = list(frames)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, f in enumerate(frames):
        uid = f.tags.get(_UUID_KEY)
        if isinstance(uid, str) and uid.strip():
            groups[uid.strip()].append(i)
    for members in groups.values():
        ids = [frames[i].capture_id for i in members]
        chosen = max(sorted(set(ids)), key=ids.count)
        for i in members:
            f = frames[i]
            index = DJI_BAND_ORDER.get(f.band.name, f.band_index)
            frames[i] = replace(f, capture_id=chosen, band_index=index)
    return frames


def group_captures(frames: Iterable[Frame], root: Path | None = None) -> list[Capture]:
    """Group frames into captures by (folder, capture id) — DJI multispectral frames by their
    ``CaptureUUID`` — bands in band-index order, captures in time order (then id). A second
    frame of the same band in one capture is an error."""
    groups: dict[tuple[str, str], list[Frame]] = defaultdict(list)
    for f in by_capture_uuid(frames):
        groups[(_folder_key(f, root), f.capture_id)].append(f)
    ids_in_folders: dict[str, set[str]] = defaultdict(set)
    for folder, cid in groups:
        ids_in_folders[cid].add(folder)
    captures: list[Capture] = []
    for (folder, cid), members in groups.items():
        unique = cid
        if len(ids_in_folders[cid]) > 1 and folder not in ("", "."):
            unique = f"{folder.replace('/', '_')}_{cid}"
        # an RGB frame riding along with band frames (Sequoia, P4M, Mavic 3M) goes last, so the
        # capture's primary frame is a band frame of the multispectral rig
        mixed = any(f.band.name != "rgb" for f in members)
        members.sort(key=lambda f: (mixed and f.band.name == "rgb", f.band_index, f.path.name))
        if mixed:
            last = max(f.band_index for f in members if f.band.name != "rgb")
            members = [replace(f, band_index=last + 1) if f.band.name == "rgb" else f for f in members]
        seen: set[str] = set()
        out: list[Frame] = []
        for f in members:
            problems = f.problems
            if f.band.name in seen and f.band.name != "unknown":
                problems += (Problem("duplicate_band", f"{f.path.name} is a second {f.band.name} "
                                     f"frame in capture {unique}; remove the copy",
                                     Severity.ERROR, f.path),)
            seen.add(f.band.name)
            out.append(replace(f, capture_id=unique, problems=problems))
        captures.append(Capture(id=unique, frames=tuple(out)))
    captures.sort(key=lambda c: (c.time is None, c.time or 0, c.id))
    return captures

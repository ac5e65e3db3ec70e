"""Ground control points in OpenDroneMap's ``gcp_list.txt`` format.

First line: the CRS (``EPSG:32648``, ``WGS84 UTM 48N`` or a PROJ string); then one line per
observation: ``geo_x geo_y geo_z im_x im_y image_name [gcp_name]`` (pixels of the original image).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pyproj import CRS, Transformer

from belcheer.errors import InputError
from belcheer.models import Capture
from belcheer.orthomosaic.adjust import GroundControl


def _crs(line: str) -> CRS:
    text = line.strip()
    if text.upper().startswith("WGS84 UTM"):
        zone = text.split()[-1]
        return CRS.from_epsg((32600 if zone[-1].upper() == "N" else 32700) + int(zone[:-1]))
    return CRS.from_user_input(text)


def read_gcps(path: Path, captures: Sequence[Capture], epsg: int,
              origin: tuple[float, float]) -> list[GroundControl]:
    """GCP observations of the given captures, world points moved into the local frame."""
    lines = [ln for ln in Path(path).read_text(encoding="utf-8").splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise InputError(f"GCP file {path} is empty; expected a CRS line then 'x y z px py image'")
    try:
        tr = Transformer.from_crs(_crs(lines[0]), epsg, always_xy=True)
    except Exception as exc:
        raise InputError(f"GCP file {path}: cannot read the CRS line {lines[0]!r}: {exc}") from exc
    index = {f.path.name: k for k, c in enumerate(captures) for f in c.frames}
    out = []
    for n, ln in enumerate(lines[1:], 2):
        parts = ln.split()
        if len(parts) < 6:
            raise InputError(f"GCP file {path} line {n}: expected 'x y z px py image', got {ln!r}")
        x, y, z, px, py = (float(v) for v in parts[:5])
        if parts[5] not in index:
            continue
        ex, ny = tr.transform(x, y)
        out.append(GroundControl(index[parts[5]], np.array([ex - origin[0], ny - origin[1], z]),
                                 np.array([px, py]), parts[6] if len(parts) > 6 else ""))
    return out

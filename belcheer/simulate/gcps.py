"""Ground control from a simulated survey: its surveyed targets written as an OpenDroneMap
``gcp_list.txt``, each target observed in the frames that see it (true poses, true camera).

Pixel coordinates follow OpenSfM/ODM: the centre of the top-left pixel is (0, 0), so the
simulator's corner-origin coordinates are moved by half a pixel.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from belcheer.fileio import atomic_path
from belcheer.simulate.cameras import CAMERAS, project_to_pixels, rotation_world_from_camera
from belcheer.simulate.run import Simulation

#: observations closer than this to the image edge are left out, pixels (edge targets are
#: the ones a surveyor's operator would skip)
EDGE_PX = 40


def write_gcp_list(sim: Simulation, path: Path, targets: Sequence[int] | None = None,
                   max_frames_per_target: int = 6) -> Path:
    """Write ``path`` in ODM's gcp_list.txt format (CRS line ``EPSG:<sim.epsg>``, then
    ``x y z px py image name``, UTM metres and pixels) for the checkpoints ``targets``
    (default all), each in at most ``max_frames_per_target`` frames nearest to nadir over it.
    Multispectral captures are observed in their first band's file."""
    cam = CAMERAS[sim.camera]
    cps = pd.read_csv(sim.checkpoints_path)
    if targets is not None:
        cps = cps[cps.id.isin(list(targets))]
    poses = pd.read_csv(sim.poses_path)
    poses = poses[~poses.is_panel.astype(bool)]
    suffix = "_1.tif" if sim.camera == "rededge" else ".JPG"
    lines = [f"EPSG:{sim.epsg}"]
    for cp in cps.itertuples():
        world = np.array([[cp.x, cp.y, cp.z]])
        seen = []
        for p in poses.itertuples():
            rot = rotation_world_from_camera(p.yaw, p.pitch, p.roll)
            px = project_to_pixels(cam, np.array([p.x, p.y, p.alt_abs_m]), rot, world)[0]
            if EDGE_PX <= px[0] <= cam.width_px - EDGE_PX and EDGE_PX <= px[1] <= cam.height_px - EDGE_PX:
                seen.append((float(np.hypot(p.x - cp.x, p.y - cp.y)), p.capture_id, px))
        for _, cid, px in sorted(seen)[:max_frames_per_target]:
            lines.append(f"{cp.x:.3f} {cp.y:.3f} {cp.z:.3f} {px[0] - 0.5:.2f} {px[1] - 0.5:.2f} {cid}{suffix} gcp{cp.id}")
    with atomic_path(Path(path)) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Path(path)

"""Zonal-statistics worker processes exit quietly, even when the parent has imported pycolmap
(whose glog signal handler prints a native stack dump for every SIGTERM a worker receives)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

_RUN = """
import sys
import numpy as np, rasterio, geopandas as gpd
from rasterio.transform import from_origin
from shapely.geometry import box
import pycolmap  # noqa: F401  (installs glog's failure signal handler, as the mosaic stage does)
from belcheer.zoning import zonal_stats

path = sys.argv[1]
with rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=1, dtype="float32",
                   crs="EPSG:32648", transform=from_origin(500000, 5300000, 1, 1)) as ds:
    ds.write(np.arange(64 * 64, dtype="float32").reshape(1, 64, 64))
parcels = gpd.GeoDataFrame({"parcel_id": [f"p{i}" for i in range(8)]},
                           geometry=[box(500000 + 8 * i, 5299940, 500008 + 8 * i, 5299990) for i in range(8)],
                           crs=32648)
t = zonal_stats(path, parcels, scheduler="processes", workers=2, block_px=8)
print("rows", len(t), round(float(t["mean"].sum()), 1))
"""


def test_worker_processes_exit_without_stack_dumps(tmp_path: Path):
    out = subprocess.run([sys.executable, "-c", _RUN, str(tmp_path / "r.tif")], capture_output=True,
                         text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    # 8 parcels of 8×50 px; the means are those of their pixel values (row-major arange)
    expected = sum(float((10 + r) * 64 + 8 * i + c) for i in range(8) for r in range(50)
                   for c in range(8)) / 400
    assert out.stdout.split() == ["rows", "8", f"{expected:.1f}"]
    assert "SIGTERM" not in out.stderr and "stack trace" not in out.stderr, out.stderr[-2000:]

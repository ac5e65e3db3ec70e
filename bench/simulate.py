"""Benchmark: the synthetic flight simulator at benchmark size (≥ 100 frames/captures).

Times ``belcheer.simulate.simulate`` for the RGB camera over 10 ha (8 lines × 14 = 112 frames)
and the RedEdge-M over 5 ha (≈ 104 captures × 5 bands + panel), and prints wall time, frames
per second and the peak resident memory of each run (separate processes). The folders are
kept with ``--keep`` so the pipeline benchmarks can reuse them.

Usage: ``python bench/simulate.py [--out DIR] [--keep] [--camera rgb rededge]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

AREAS = {"rgb": 10.0, "rededge": 5.0}

_CHILD = """
import json, resource, sys, time
from pathlib import Path
from belcheer.simulate import simulate
t = time.perf_counter()
sim = simulate(Path(sys.argv[1]), camera=sys.argv[2], seed=0, area_ha=float(sys.argv[3]))
dt = time.perf_counter() - t
print(json.dumps({"captures": sim.n_captures, "seconds": dt,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--camera", nargs="+", default=["rgb", "rededge"])
    args = ap.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="belcheer-bench-sim-"))
    try:
        for cam in args.camera:
            out = root / cam
            res = subprocess.run([sys.executable, "-c", _CHILD, str(out), cam, str(AREAS[cam])],
                                 check=True, capture_output=True, text=True)
            r = json.loads(res.stdout.strip().splitlines()[-1])
            size = sum(p.stat().st_size for p in (out / "frames").iterdir()) / 1e6
            print(f"{cam:8s} {AREAS[cam]:5.1f} ha  {r['captures']:4d} captures  "
                  f"{r['seconds']:7.1f} s  {r['captures'] / r['seconds']:5.2f} captures/s  "
                  f"peak {r['peak_mb']:6.0f} MB  frames {size:6.0f} MB")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: belcheer.indices.compute against gdal_calc.py and a plain rasterio window loop.

A 5-band uint16 reflectance-like raster (tiled 512, DEFLATE, scale 1/10000, written window by
window so generation never holds it in memory) is generated in a temporary folder for each
``--sizes`` edge, then timed in separate processes (peak RSS measured per process):

* ``belcheer``: NDVI alone, and NDVI+SAVI+NDREI in one graph (threads, all cores), COGs with
  overviews as outputs;
* ``belcheer 1 worker``: the same NDVI+SAVI+NDREI with Dask and GDAL limited to one thread
  (speed-up 1 → 2 workers);
* ``read+write``: the same pipeline with the trivial formula ``N+R`` — reading the bands and
  writing the COGs, almost no arithmetic: the I/O limit;
* ``gdal_calc.py``: NDVI (and the three indices, one call each, as gdal_calc computes one output
  per call) with ``--co COMPRESS=DEFLATE --co TILED=YES --co NUM_THREADS=ALL_CPUS``
  (Debian: ``apt-get install gdal-bin python3-gdal``), nodata -9999: with ``--NoDataValue=nan``
  gdal_calc up to GDAL 3.6 (Debian 12) writes NaN everywhere, as it masks by
  ``keep * result + nodata * mask`` and ``nan * 0`` is NaN — an empty raster that costs nothing
  to compress;
* ``rasterio loop``: a plain single-threaded block loop writing a tiled DEFLATE GeoTIFF.

Every tool's outputs are checked against each other on sample windows (NaN and -9999 as nodata;
max difference ≤ 1e-5) so a peer that computes the wrong thing cannot look fast.
Throughput is megapixels per second of output raster; ratios are printed against gdal_calc.
Every line also gives the CPU seconds (user + system) and the load average when it started: on
a shared machine other jobs inflate wall time far more than CPU time. ``--repeat N`` runs all
configurations in N alternating rounds and takes each one's fastest run for the ratios.

``--accuracy`` instead runs the whole chain on a simulated RedEdge-M survey — simulate → ingest →
calibrate (panel + DLS) → orthomosaic with the calibration as per-frame correction →
compute_survey — and prints the reflectance RMSE per band and the NDVI RMSE against the
simulator's truth (targets ≤ 0.02 and ≤ 0.03). Too slow for the test suite (minutes).

Usage: ``python bench/indices.py [--sizes 10000 20000] [--repeat N] [--keep] [--skip-peers]
[--accuracy]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported where used: the runner starts quickly without it
    import numpy as np

PY = sys.executable

GENERATE = r"""
import sys, numpy as np, rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window
path, n = sys.argv[1], int(sys.argv[2])
prof = dict(driver="GTiff", height=n, width=n, count=5, dtype="uint16", crs="EPSG:32648",
            transform=from_origin(600000, 5420000, 0.05, 0.05), tiled=True, blockxsize=512,
            blockysize=512, compress="deflate", predictor=2, nodata=0, bigtiff="yes",
            num_threads="all_cpus")
rng = np.random.default_rng(0)
base = rng.integers(200, 6000, (5, 512, 512), dtype=np.uint16)   # one tile of texture per band
names = ["blue", "green", "red", "nir", "rededge"]; centers = [475, 560, 668, 840, 717]
with rasterio.open(path, "w", **prof) as dst:
    for i in range(5):
        dst.set_band_description(i + 1, names[i]); dst.update_tags(i + 1, center_nm=centers[i])
    dst.scales = [1e-4] * 5
    for r in range(0, n, 512):
        h = min(512, n - r)
        block = np.tile(base[:, :h, :], (1, 1, (n + 511) // 512))[:, :, :n]
        block = block + np.uint16(r // 512 % 97)          # vary tiles so DEFLATE cannot cheat
        dst.write(block, window=Window(0, r, n, h))
"""

BELCHEER = r"""
import sys, json, dask
from pathlib import Path
src, out, names, formulas, workers = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
if workers: dask.config.set(num_workers=workers)
from belcheer.indices import compute
compute(Path(src), [n for n in names.split(",") if n], out_dir=Path(out),
        formulas=json.loads(formulas) or None, scheduler="threads")
"""

LOOP = r"""
import sys, numpy as np, rasterio
src, out = sys.argv[1], sys.argv[2]
with rasterio.open(src) as s:
    prof = dict(driver="GTiff", height=s.height, width=s.width, count=1, dtype="float32", crs=s.crs,
                transform=s.transform, tiled=True, blockxsize=512, blockysize=512, compress="deflate",
                predictor=3, nodata=float("nan"), bigtiff="yes")
    with rasterio.open(out, "w", **prof) as d:
        for _, w in s.block_windows(1):
            r = s.read(3, window=w).astype(np.float32); n = s.read(4, window=w).astype(np.float32)
            with np.errstate(all="ignore"):
                v = (n - r) / (n + r)
            v[(r == 0) | (n == 0)] = np.nan
            d.write(v, 1, window=w)
"""

GDAL_INDICES = {
    "ndvi": ("(B.astype(float32)-A)/(B.astype(float32)+A)", {"A": 3, "B": 4}),
    "savi": ("1.5*(B.astype(float32)-A)*1e-4/((B.astype(float32)+A)*1e-4+0.5)", {"A": 3, "B": 4}),
    "ndrei": ("(B.astype(float32)-A)/(B.astype(float32)+A)", {"A": 5, "B": 4}),
}


#: outputs of each tool, by index: name of the file a run leaves in its output folder
OUTPUT_INDEX = {"ndvi.tif": "ndvi", "savi.tif": "savi", "ndrei.tif": "ndrei", "loop.tif": "ndvi",
                "ndvi_gdal.tif": "ndvi", "savi_gdal.tif": "savi", "ndrei_gdal.tif": "ndrei"}


def sample_outputs(out: Path) -> dict[str, np.ndarray]:
    """Index → values of a few fixed 512 × 512 windows (corner, centre, far edge) of each output
    in ``out``, nodata (NaN or -9999) as NaN."""
    import numpy as np
    import rasterio
    from rasterio.windows import Window

    found = {}
    for path in sorted(out.glob("*.tif")):
        name = OUTPUT_INDEX.get(path.name)
        if name is None:
            continue
        with rasterio.open(path) as src:
            h, w = src.height, src.width
            wins = [Window(0, 0, 512, 512), Window(w // 2, h // 2, 512, 512),
                    Window(w - 300, h - 300, 300, 300)]
            v = np.concatenate([src.read(1, window=win).ravel() for win in wins]).astype(np.float64)
        v[v == -9999] = np.nan
        found[name] = v
    return found


def check_outputs(samples: dict[str, dict[str, np.ndarray]], tol: float = 1e-5) -> None:
    """Every tool's output of an index equals the first tool's within ``tol`` (exit otherwise)."""
    import numpy as np

    by_index: dict[str, list[tuple[str, np.ndarray]]] = {}
    for label, found in samples.items():
        for name, v in found.items():
            by_index.setdefault(name, []).append((label, v))
    for name, runs in by_index.items():
        (ref_label, ref), *others = runs
        for label, v in others:
            nan_differs = int((np.isnan(ref) != np.isnan(v)).sum())
            both = ~np.isnan(ref) & ~np.isnan(v)
            diff = float(np.abs(ref[both] - v[both]).max()) if both.any() else float("nan")
            ok = nan_differs == 0 and both.any() and diff <= tol
            print(f"  check {name}: {label} vs {ref_label}: max |Δ| {diff:.1e}, nodata differs "
                  f"at {nan_differs} px — {'same' if ok else 'DIFFERENT'}")
            if not ok:
                sys.exit(f"{label} and {ref_label} disagree on {name}: benchmark void")


def run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system, all threads) and peak RSS (MB) of one command
    in a fresh wrapper process. CPU time is what other jobs on a shared machine cannot inflate
    much, so it is printed beside the wall time."""
    wrapper = ("import resource, subprocess, sys, time, json; t = time.perf_counter(); "
               "rc = subprocess.run(sys.argv[1:]).returncode; dt = time.perf_counter() - t; "
               "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
               "print(json.dumps([rc, dt, u.ru_utime + u.ru_stime, u.ru_maxrss]))")
    res = subprocess.run([PY, "-c", wrapper, *cmd], capture_output=True, text=True,
                         env={**os.environ, **(env or {})})
    rc, dt, cpu, rss = json.loads(res.stdout.strip().splitlines()[-1])
    if rc != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{res.stderr[-2000:]}")
    return dt, cpu, rss / 1024.0


def gdal_calc(src: Path, out: Path, name: str) -> list[str]:
    expr, bands = GDAL_INDICES[name]
    args = ["gdal_calc.py", "--quiet", "--overwrite", "--type=Float32", "--NoDataValue=-9999",
            f"--calc={expr}", f"--outfile={out / (name + '_gdal.tif')}",
            "--co", "COMPRESS=DEFLATE", "--co", "TILED=YES", "--co", "NUM_THREADS=ALL_CPUS",
            "--co", "BIGTIFF=YES"]
    for letter, b in bands.items():
        args += [f"-{letter}", str(src), f"--{letter}_band={b}"]
    return args


@dataclass
class Row:
    """One configuration's runs: wall and CPU seconds, peak RSS (MB), load average at start."""

    label: str
    outputs: int
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)

    @property
    def wall(self) -> float:  # the least disturbed run: other jobs only ever add time
        return min(self.walls)

    @property
    def cpu(self) -> float:
        return min(self.cpus)


def bench(n: int, tmp: Path, skip_peers: bool = False, repeat: int = 1) -> dict[str, Row]:
    """Time every configuration ``repeat`` times, in alternating rounds, so a burst of load from
    other jobs lands on all of them rather than on one."""
    src = tmp / f"cube_{n}.tif"
    t = time.perf_counter()
    subprocess.run([PY, "-c", GENERATE, str(src), str(n)], check=True)
    print(f"generated {n}×{n}×5 uint16 in {time.perf_counter() - t:.1f} s "
          f"({src.stat().st_size / 1e9:.2f} GB)", flush=True)
    mp = n * n / 1e6
    b = [PY, "-c", BELCHEER, str(src), "@OUT"]
    configs: list[tuple[str, list[str], int, dict[str, str] | None]] = [
        ("belcheer ndvi", [*b, "ndvi", "{}", "0"], 1, None),
        ("belcheer ndvi+savi+ndrei", [*b, "ndvi,savi,ndrei", "{}", "0"], 3, None),
        ("belcheer ndvi+savi+ndrei, 1 worker", [*b, "ndvi,savi,ndrei", "{}", "1"], 3,
         {"GDAL_NUM_THREADS": "1"}),
        ("read+write only (N+R), 1 output", [*b, "", json.dumps({"rw": "N+R"}), "0"], 1, None),
        ("read+write only (N+R ×3), 3 outputs",
         [*b, "", json.dumps({"rw1": "N+R", "rw2": "N+R+1", "rw3": "N+RE1"}), "0"], 3, None),
    ]
    if not skip_peers:
        configs.append(("rasterio window loop ndvi", [PY, "-c", LOOP, str(src), "@OUT/loop.tif"], 1,
                        None))
        if shutil.which("gdal_calc.py"):
            configs.append(("gdal_calc.py ndvi", gdal_calc(src, Path("@OUT"), "ndvi"), 1, None))
            three = " && ".join(" ".join(f"'{a}'" for a in gdal_calc(src, Path("@OUT"), k))
                                for k in GDAL_INDICES)
            configs.append(("gdal_calc.py ndvi+savi+ndrei (3 calls)", ["bash", "-c", three], 3,
                            None))
        else:
            print("  gdal_calc.py not found: apt-get install gdal-bin python3-gdal")
    rows = {label: Row(label, outputs) for label, _, outputs, _ in configs}
    samples: dict[str, dict[str, object]] = {}
    for r in range(repeat):
        if repeat > 1:
            print(f" round {r + 1}/{repeat}", flush=True)
        for label, cmd, outputs, env in configs:
            out = tmp / "out"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            load = os.getloadavg()[0]
            dt, cpu, rss = run([c.replace("@OUT", str(out)) for c in cmd], env)
            row = rows[label]
            row.walls.append(dt)
            row.cpus.append(cpu)
            row.rss.append(rss)
            row.loads.append(load)
            if r == 0:
                samples[label] = sample_outputs(out)
            print(f"  {label:40s} {dt:7.1f} s  {mp * outputs / dt:7.1f} MPx/s  CPU {cpu:7.1f} s  "
                  f"peak RSS {rss:6.0f} MB  (load {load:4.1f})", flush=True)
    check_outputs(samples)
    shutil.rmtree(tmp / "out", ignore_errors=True)
    src.unlink()
    return rows


def accuracy(tmp: Path, seed: int = 3, area_ha: float = 0.3) -> None:
    """Reflectance and NDVI of the mosaic against the simulator's truth, on the mosaic's grid."""
    import numpy as np
    import rasterio
    from rasterio.warp import Resampling, reproject

    from belcheer import open_workspace
    from belcheer.indices import calibrate, compute_survey
    from belcheer.ingest import ingest
    from belcheer.orthomosaic import mosaic
    from belcheer.simulate import simulate
    from belcheer.simulate.run import PANEL_ALBEDO

    t = time.perf_counter()
    sim = simulate(tmp / "sim", camera="rededge", seed=seed, area_ha=area_ha)
    ws = open_workspace(tmp / "ws")
    survey = ingest(ws, sim.frames_dir, survey="sim", panels=["IMG_0000"], quality=False)
    cal = calibrate(survey, panel_albedo=PANEL_ALBEDO)
    prod = mosaic(ws, "sim", correction=cal)
    (ndvi,) = compute_survey(ws, "sim", ["ndvi"])
    print(f"simulate → ndvi in {time.perf_counter() - t:.0f} s; calibration {cal.method}")

    import pandas as pd
    from affine import Affine

    from belcheer.orthomosaic.accuracy import checkpoint_errors

    # the GPS-only block sits metres off; its common shift (the mean error of the surveyed
    # targets) is removed for the second comparison, which then measures calibration and geometry
    cp = pd.read_csv(sim.checkpoints_path)
    errs = checkpoint_errors(prod.path, list(zip(cp.id, cp.x, cp.y, cp.size_m, strict=True)))
    shift = np.array([[e.dx, e.dy] for e in errs]).mean(axis=0)
    print(f"  common shift (targets): {shift[0]:+.2f} m E, {shift[1]:+.2f} m N")

    def against_truth(path: Path, band: int, truth: Path, truth_band: int,
                      moved: np.ndarray | None) -> tuple[float, float]:
        """RMSE and bias on the truth's 8 cm grid (truth moved by ``moved`` metres, if given)."""
        with rasterio.open(path) as m, rasterio.open(truth) as tr:
            t = tr.transform if moved is None else Affine.translation(*map(float, moved)) * tr.transform
            got = np.full(tr.shape, np.nan, np.float32)
            reproject(m.read(band), got, src_transform=m.transform, src_crs=m.crs, src_nodata=np.nan,
                      dst_transform=t, dst_crs=m.crs, dst_nodata=np.nan, resampling=Resampling.average)
            ref = tr.read(truth_band).astype(np.float32)
        ok = np.isfinite(got) & np.isfinite(ref)
        d = got[ok] - ref[ok]
        return float(np.sqrt(np.mean(d * d))), float(np.mean(d))

    with rasterio.open(sim.reflectance_path) as tr:
        truth_band = {d: i + 1 for i, d in enumerate(tr.descriptions)}
    rows = [(b.name, prod.path, i, sim.reflectance_path, truth_band[b.name], 0.02)
            for i, b in enumerate(prod.bands, 1)]
    rows.append(("NDVI", ndvi.path, 1, sim.ndvi_path, 1, 0.03))
    for name, path, band, truth, tb, target in rows:
        raw, bias = against_truth(path, band, truth, tb, None)
        moved, _ = against_truth(path, band, truth, tb, shift)
        print(f"  {name:8s} RMSE {raw:.4f} as placed, {moved:.4f} after the common shift; "
              f"bias {bias:+.4f} (target ≤ {target})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10000, 20000])
    ap.add_argument("--tmp", type=Path, default=None, help="scratch folder (needs ~3 GB per 10k²)")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--skip-peers", action="store_true", help="time belcheer only")
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds over all configurations; ratios use each one's fastest run")
    ap.add_argument("--accuracy", action="store_true",
                    help="simulated survey end to end: reflectance/NDVI RMSE against the truth")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="belcheer-bench-indices-", dir=a.tmp))
    try:
        if a.accuracy:
            accuracy(tmp)
            return
        for n in a.sizes:
            print(f"\n== {n}×{n} ({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f})")
            rows = bench(n, tmp, a.skip_peers, a.repeat)
            mp = n * n / 1e6
            if a.repeat > 1:
                print(f"  least disturbed of {a.repeat} runs (min wall, min CPU):")
                for row in rows.values():
                    print(f"  {row.label:40s} {row.wall:7.1f} s  {mp * row.outputs / row.wall:7.1f} "
                          f"MPx/s  CPU {row.cpu:7.1f} s  peak RSS {max(row.rss):6.0f} MB")
            g1, g3 = rows.get("gdal_calc.py ndvi"), rows.get("gdal_calc.py ndvi+savi+ndrei (3 calls)")
            b1, b3 = rows["belcheer ndvi"], rows["belcheer ndvi+savi+ndrei"]
            w1 = rows["belcheer ndvi+savi+ndrei, 1 worker"]
            rw1, rw3 = rows["read+write only (N+R), 1 output"], rows["read+write only (N+R ×3), 3 outputs"]
            if g1 and g3:  # same pixels and outputs: throughput ratio = time ratio
                print(f"  throughput vs gdal_calc: ndvi {g1.wall / b1.wall:.2f}×, three indices "
                      f"{g3.wall / b3.wall:.2f}× (target ≥ 2.5×); CPU time: ndvi "
                      f"{g1.cpu / b1.cpu:.2f}×, three {g3.cpu / b3.cpu:.2f}× less")
            if "rasterio window loop ndvi" in rows:
                print(f"  vs rasterio loop (ndvi): {rows['rasterio window loop ndvi'].wall / b1.wall:.2f}×")
            print(f"  speed-up 1 → {os.cpu_count()} workers: {w1.wall / b3.wall:.2f}× (target ≥ 1.6×)")
            print(f"  time / read+write limit: ndvi {b1.wall / rw1.wall:.2f}×, three "
                  f"{b3.wall / rw3.wall:.2f}× (target ≤ 1.3×)")
            print(f"  peak RSS belcheer: {max(max(r.rss) for r in (b1, b3, w1, rw1, rw3)):.0f} MB "
                  "(target ≤ 1500 MB, flat)")
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

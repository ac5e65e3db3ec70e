"""Tile rendering internals: palette PNGs equal the RGBA rendering, the reader pool reuses and
closes readers correctly (also across threads), and render slots bound concurrency in order."""

from __future__ import annotations

import asyncio
import io
import os
import threading
import time
from pathlib import Path

import morecantile
import numpy as np
import pytest
import rasterio
from PIL import Image
from rio_tiler.models import ImageData
from test_api_helpers import SURVEY, build_workspace

from belcheer.api import tiles

TMS = morecantile.tms.get("WebMercatorQuad")


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws, _ = build_workspace(tmp_path_factory.mktemp("ws"))
    return ws


def _centre_tile(path, z):
    from rasterio.warp import transform_bounds

    with rasterio.open(path) as ds:
        w, s, e, n = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
    return TMS.tile((w + e) / 2, (s + n) / 2, z)


def _decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


@pytest.mark.parametrize("name", ["ndvi", "condition"])
def test_palette_png_decodes_to_the_rgba_rendering(ws, name):
    prod = ws.catalog.product(SURVEY, name)
    source = tiles.product_source(prod, ws.stores)
    style = tiles.style_for(prod, source)
    path = source.gdal_path
    cmap = tiles._colormap(style)
    # z 19 at the western edge: part of the tile is the NaN / nodata strip (masked)
    with rasterio.open(path) as ds:
        from rasterio.warp import transform

        (lon,), (lat,) = transform(ds.crs, "EPSG:4326", [ds.bounds.left + 4], [ds.bounds.bottom + 100])
    t = TMS.tile(lon, lat, 19)
    with tiles.READERS.reader(source) as src:
        img = tiles._style_image(src.tile(t.x, t.y, t.z, indexes=style.indexes), style)
    masked = np.ma.getmaskarray(img.array)[0]
    assert 0.05 < masked.mean() < 0.95  # the tile has both data and transparent pixels
    png = tiles.encode(img, cmap, "png")
    assert Image.open(io.BytesIO(png)).mode == "P"  # the palette path was taken
    ours, want = _decode(png), tiles.rgba(img, cmap)
    np.testing.assert_array_equal(ours[..., 3], want[..., 3])
    vis = want[..., 3] > 0
    np.testing.assert_array_equal(ours[vis, :3], want[vis, :3])
    assert len(png) < len(_rgba_png(want))


def _rgba_png(arr: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(arr, "RGBA").save(out, "PNG", compress_level=2)
    return out.getvalue()


def test_palette_png_falls_back_when_every_index_is_used():
    # values 0…255 all present, some pixels masked, a colour map defining all 256 entries:
    # no index is left for "transparent", so the tile is encoded as RGBA
    data = np.arange(256 * 256, dtype="float64").reshape(1, 256, 256) % 256
    mask = np.zeros((1, 256, 256), bool)
    mask[0, 0, :3] = True  # values 0–2 stay visible in the other rows
    img = ImageData(np.ma.MaskedArray(data, mask=mask))
    cmap = {i: (i, 255 - i, 7, 255) for i in range(256)}
    assert tiles._palette_png(img, cmap) is None
    png = tiles.encode(img, cmap, "png")
    assert Image.open(io.BytesIO(png)).mode == "RGBA"
    np.testing.assert_array_equal(_decode(png), tiles.rgba(img, cmap))
    # with one value unused, that value becomes the transparent index and the output is equal
    data2 = np.where(data == 77, 78, data)
    img2 = ImageData(np.ma.MaskedArray(data2, mask=mask))
    png2 = tiles.encode(img2, cmap, "png")
    assert Image.open(io.BytesIO(png2)).mode == "P"
    ours, want = _decode(png2), tiles.rgba(img2, cmap)
    np.testing.assert_array_equal(ours[..., 3], want[..., 3])
    np.testing.assert_array_equal(ours[want[..., 3] > 0, :3], want[want[..., 3] > 0, :3])


def test_reader_pool_reuses_replaces_and_evicts(ws, tmp_path):
    pool = tiles.ReaderPool(files=2, per_file=1)
    src_path = Path(tiles.product_source(ws.catalog.product(SURVEY, "ndvi"), ws.stores).gdal_path)
    paths = []
    for i in range(3):
        p = tmp_path / f"copy{i}.tif"
        p.write_bytes(src_path.read_bytes())
        paths.append(p)
    with pool.reader(paths[0]) as a:
        pass
    with pool.reader(paths[0]) as b:
        assert b is a  # the same opened reader, not a new one
        with pool.reader(paths[0]) as c:  # a concurrent request gets its own
            assert c is not a
    kept = [r for r in (a, c) if not r.dataset.closed]
    assert len(kept) == 1  # one idle reader per file is kept, the surplus closed
    with pool.reader(paths[0]) as again:
        assert again is kept[0]
    # the file is replaced on disk: its old reader is closed, a new one opened
    os.utime(paths[0], ns=(time.time_ns(), time.time_ns() + 10**9))
    with pool.reader(paths[0]) as d:
        assert d is not kept[0]
    assert kept[0].dataset.closed
    # a third file evicts the least recently used of two
    with pool.reader(paths[1]) as e:
        pass
    with pool.reader(paths[2]) as f:
        pass
    assert d.dataset.closed and not e.dataset.closed and not f.dataset.closed
    pool.clear()
    assert e.dataset.closed and f.dataset.closed


def test_reader_pool_closes_readers_opened_by_other_threads(ws):
    """Readers are opened in one request thread and may be closed by another (eviction): that
    must not fail (rasterio ties an entered dataset's Env to the opening thread)."""
    pool = tiles.ReaderPool(files=1, per_file=4)
    path = Path(tiles.product_source(ws.catalog.product(SURVEY, "ndvi"), ws.stores).gdal_path)
    t = _centre_tile(path, 18)
    opened, errors = [], []

    def use():
        try:
            with pool.reader(path) as src:
                src.tile(t.x, t.y, t.z)
                opened.append(src)
        except Exception as exc:  # noqa: BLE001 - the test reports any failure below
            errors.append(exc)

    threads = [threading.Thread(target=use) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    pool.clear()  # from the main thread
    assert errors == [] and len(opened) == 4 and all(s.dataset.closed for s in opened)


def test_render_slots_bound_concurrency_in_arrival_order(monkeypatch):
    monkeypatch.setattr(tiles, "RENDER_SLOTS", 2)
    running, peak, started = [0], [0], []
    lock = threading.Lock()

    def work(i):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            started.append(i)
        time.sleep(0.2)
        with lock:
            running[0] -= 1
        return i * i

    async def main():
        out = []
        for i in range(8):  # submitted one after another, as requests arrive
            out.append(asyncio.ensure_future(tiles.run_render(work, i)))
            await asyncio.sleep(0.001)
        return await asyncio.gather(*out)

    assert asyncio.run(main()) == [i * i for i in range(8)]
    assert peak[0] == 2
    # slots are handed out first come, first served: a task starts before any task submitted
    # two or more places after it (two threads given slots together may start in either order)
    pos = {i: started.index(i) for i in range(8)}
    assert all(pos[i] < pos[j] for i in range(8) for j in range(i + 2, 8))

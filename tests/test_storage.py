"""The product store (belcheer.storage): one conformance suite against the file store and a real
S3 server (SeaweedFS on loopback, tests/s3server.py), the simulator pipeline on S3 giving the same
pixels and tiles as on files, a deleted object → 404 naming the product, and clear errors for a
wrong key or a closed port."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest
import rasterio
from fastapi.testclient import TestClient

from belcheer import Settings, open_workspace
from belcheer.errors import ConfigError, ProductMissingError, StorageError
from belcheer.storage import FileStore, ProductStore, open_store


@pytest.fixture(params=["file", "s3"])
def store(request, tmp_path) -> ProductStore:
    if request.param == "file":
        return FileStore(tmp_path / "files")
    return open_store(request.getfixturevalue("s3_env"), tmp_path)


def _payload(tmp_path: Path, data: bytes, name: str = "a.tif") -> Path:
    p = tmp_path / "src" / name
    p.parent.mkdir(exist_ok=True)
    p.write_bytes(data)
    return p


def test_put_stat_open_list_delete(store, tmp_path):
    uri = store.uri("surveys/s/products/ndvi.tif")
    assert store.owns(uri) and not store.owns("s3://elsewhere/x.tif")
    info = store.put(_payload(tmp_path, b"II*\x00" + b"x" * 5000), uri)
    assert info.uri == uri and info.size == 5004 and info.etag
    again = store.stat(uri)
    assert (again.size, again.etag) == (info.size, info.etag)
    assert again.last_modified.tzinfo is not None
    with store.open(uri) as fh:
        assert fh.read() == b"II*\x00" + b"x" * 5000
    with store.open(uri, (2, 6)) as fh:  # bytes 2…6, inclusive as in HTTP
        assert fh.read() == b"*\x00xxx"
    with store.open(uri, (5000, 5003)) as fh:
        assert fh.read(2) + fh.read() == b"xxxx"
    # another content: another ETag
    changed = store.put(_payload(tmp_path, b"II*\x00" + b"y" * 7000), uri)
    assert changed.etag != info.etag and changed.size == 7004
    # a product's temporary file is consumed; an input put with keep=True is only copied
    assert not (tmp_path / "src" / "a.tif").exists()
    frame = _payload(tmp_path, b"frame bytes", "IMG_0001_1.tif")
    kept = store.put(frame, store.uri("surveys/u/frames/IMG_0001_1.tif"), keep=True)
    assert frame.read_bytes() == b"frame bytes" and kept.size == 11
    store.delete(kept.uri)
    store.put(_payload(tmp_path, b"other", "b.tif"), store.uri("surveys/t/products/b.tif"))
    listed = store.list("surveys/s/")
    assert [o.uri for o in listed] == [uri] and listed[0].size == 7004
    assert len(store.list("surveys/")) == 2
    store.delete(uri)
    store.delete(uri)  # gone already: no error
    with pytest.raises(ProductMissingError, match="missing"):
        store.stat(uri)
    with pytest.raises(ProductMissingError):
        store.open(uri)
    assert [o.uri for o in store.list("surveys/")] == [store.uri("surveys/t/products/b.tif")]


def test_writing_is_atomic(store, tmp_path):
    uri = store.uri("surveys/s/products/z.tif")
    with pytest.raises(RuntimeError), store.writing(uri) as tmp:
        tmp.write_bytes(b"half a COG")
        raise RuntimeError("the stage crashed")
    with pytest.raises(ProductMissingError):  # nothing half-written
        store.stat(uri)
    with store.writing(uri) as tmp:
        tmp.write_bytes(b"II*\x00done")
        with pytest.raises(ProductMissingError):  # not visible before the block ends
            store.stat(uri)
    assert store.stat(uri).size == 8
    assert not tmp.exists()  # the local temporary file is consumed


def test_gdal_reads_through_the_store(store, tmp_path):
    src = tmp_path / "r.tif"
    data = np.arange(300 * 200, dtype="float32").reshape(1, 200, 300)
    with rasterio.open(src, "w", driver="GTiff", width=300, height=200, count=1, dtype="float32",
                       crs="EPSG:32648", transform=rasterio.transform.from_origin(600000, 5500000, 1, 1),
                       tiled=True, blockxsize=256, blockysize=256) as ds:
        ds.write(data)
    uri = store.uri("surveys/s/products/r.tif")
    store.put(src, uri)
    with store.gdal_env(uri), rasterio.open(store.gdal_path(uri)) as ds:
        np.testing.assert_array_equal(ds.read(), data)
    with store.local_copy(uri) as local, rasterio.open(local) as ds:
        np.testing.assert_array_equal(ds.read(), data)


def test_s3_key_outside_the_prefix_is_refused(s3_env, tmp_path):
    store = open_store(s3_env, tmp_path)
    bucket = s3_env.split("/")[2]
    with pytest.raises(StorageError, match="outside the product store"):
        store.stat(f"s3://{bucket}/other/x.tif")
    with pytest.raises(StorageError, match="not a usable object key"):
        store.uri("surveys/../../x.tif")


def test_wrong_secret_is_a_clear_error_with_it_masked(s3_server, s3_env, monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-123")
    with pytest.raises(ConfigError) as exc:
        open_workspace(tmp_path / "ws", storage=s3_env)
    msg = str(exc.value)
    assert s3_env in msg and "not-the-secret-123" not in msg and "AWS_SECRET_ACCESS_KEY" in msg
    assert not (tmp_path / "ws").exists()  # nothing written


def test_closed_port_is_a_clear_error(s3_env, monkeypatch, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(ConfigError, match=rf"cannot reach the bucket.*127\.0\.0\.1:{port}"):
        open_workspace(tmp_path / "ws", storage=s3_env)
    assert not (tmp_path / "ws").exists()


def test_unknown_scheme_is_named(tmp_path):
    with pytest.raises(ConfigError, match="gs://b/p is not a storage URL"):
        open_store("gs://b/p", tmp_path)


def test_old_catalog_rows_with_a_path_read_as_file_uris(workspace, tmp_path):
    from belcheer.models import Product

    row = {"id": "x", "survey": "s", "kind": "index", "name": "ndvi", "epsg": 32648,
           "path": str(workspace.root / "surveys" / "Сэлэнгэ" / "products" / "ndvi.tif")}
    p = Product.from_dict(row)
    assert p.uri.startswith("file:///") and p.path == Path(row["path"]) and p.local
    assert workspace.stores.of(p.uri) is workspace.stores.files


# -- the whole pipeline on S3 -------------------------------------------------------------------

@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    from belcheer.simulate import simulate

    return simulate(tmp_path_factory.mktemp("sim"), camera="rgb", area_ha=0.5, altitude_m=40)


def _run(ws, sim) -> None:
    from belcheer.pipeline import PipelineParams, run_pipeline

    run_pipeline(ws, PipelineParams(survey="s", frames_dir=sim.frames_dir, parcels=sim.parcels_path,
                                    scheduler="synchronous"))


def _pixels(ws, product):
    with ws.open_product(product) as ds:
        return ds.read(masked=False), ds.profile["crs"], ds.transform


@pytest.mark.slow
def test_pipeline_on_s3_matches_files_and_serves_the_same_tiles(sim, s3_env, tmp_path):
    import shutil

    from belcheer.api import create_app
    from belcheer.pipeline import PipelineParams, run_pipeline

    files = open_workspace(tmp_path / "files")
    s3 = open_workspace(tmp_path / "s3", storage=s3_env)
    _run(files, sim)
    # the S3 workspace ingests a card that is then taken away: the mosaic, indices and stats
    # read every frame from the store, as a worker with no disk shared with the ingest would
    card = tmp_path / "card"
    shutil.copytree(sim.frames_dir, card)
    run_pipeline(s3, PipelineParams(survey="s", frames_dir=card), stages=["ingest"])
    frames = s3.load_survey("s").frames
    assert frames and all(f.uri == f"{s3_env}/surveys/s/frames/{f.path.name}" for f in frames)
    # ingest only copied the card: every frame is still there, byte for byte
    kept = sorted(p.relative_to(card) for p in card.rglob("*") if p.is_file())
    assert kept == sorted(p.relative_to(sim.frames_dir) for p in sim.frames_dir.rglob("*") if p.is_file())
    assert all((card / k).read_bytes() == (sim.frames_dir / k).read_bytes() for k in kept)
    shutil.rmtree(card)
    run_pipeline(s3, PipelineParams(survey="s", parcels=sim.parcels_path, scheduler="synchronous"),
                 stages=["calibrate", "mosaic", "indices", "stats"])
    a = {p.name: p for p in files.catalog.products("s")}
    b = {p.name: p for p in s3.catalog.products("s")}
    assert set(a) == set(b) and {"orthomosaic", "vari"} <= set(a)
    for name in a:
        assert a[name].uri.startswith("file://") and b[name].uri.startswith(s3_env + "/surveys/s/products/")
        pa, pb = _pixels(files, a[name]), _pixels(s3, b[name])
        np.testing.assert_array_equal(pa[0], pb[0])  # bit-identical (NaN where NaN)
        assert pa[1:] == pb[1:]
    # nothing of the products went to the S3 workspace's folder
    assert not list((tmp_path / "s3").rglob("*.tif"))
    # the same tiles, byte for byte, from both servers
    with files.open_product(a["vari"]) as ds:
        from rasterio.warp import transform_bounds

        w, s, e, n = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
    import morecantile

    tms = morecantile.tms.get("WebMercatorQuad")
    urls = []
    for z in (17, 19):
        t = tms.tile((w + e) / 2, (s + n) / 2, z)
        urls.append(f"{z}/{t.x}/{t.y}.png")
    bodies = {}
    for label, ws in (("files", files), ("s3", s3)):
        settings = Settings(workspace=ws.root, secret_key="test-secret-" + "x" * 32,
                            storage=s3_env if label == "s3" else None, trusted_hosts=["testserver"])
        ws.catalog.set_published("s", True)
        with TestClient(create_app(settings)) as client:
            got = []
            for name in ("vari", "orthomosaic"):
                pid = {p.name: p.id for p in ws.catalog.products("s")}[name]
                for u in urls:
                    r = client.get(f"/tiles/{pid}/{u}")
                    assert r.status_code == 200, r.text
                    got.append(r.content)
                r = client.get(f"/products/{pid}/download")
                assert r.status_code == 200 and r.headers["etag"] and r.headers["last-modified"]
                whole = r.content
                got.append(whole)
                # a download resumed over a slow link: byte ranges, from either store
                size = len(whole)
                for rng, want in ((f"bytes=100-{size + 5}", whole[100:]), ("bytes=0-99", whole[:100]),
                                  ("bytes=-50", whole[-50:])):
                    r = client.get(f"/products/{pid}/download", headers={"Range": rng})
                    assert r.status_code == 206 and r.content == want, (label, rng, r.status_code)
                    first = size - 50 if rng == "bytes=-50" else int(rng[6:].split("-")[0])
                    assert r.headers["content-range"] == f"bytes {first}-{first + len(want) - 1}/{size}"
                    got.append((rng, r.content))
                r = client.get(f"/products/{pid}/download", headers={"Range": f"bytes={size}-"})
                assert r.status_code == 416, (label, r.status_code)
                assert r.headers["content-range"] == f"bytes */{size}"
            bodies[label] = got
    assert bodies["files"] == bodies["s3"]


@pytest.mark.slow
def test_object_deleted_behind_our_back_is_a_404_naming_it(sim, s3_env, tmp_path):
    from belcheer.api import create_app

    ws = open_workspace(tmp_path / "s3", storage=s3_env)
    _run(ws, sim)
    ws.catalog.set_published("s", True)
    ndvi = ws.product("s", "vari")
    ws.store.delete(ndvi.uri)
    settings = Settings(workspace=ws.root, secret_key="test-secret-" + "x" * 32, storage=s3_env)
    with TestClient(create_app(settings)) as client:
        for path in (f"/tiles/{ndvi.id}/17/0/0.png", f"/tiles/{ndvi.id}/tilejson.json",
                     f"/products/{ndvi.id}/download", f"/legend/{ndvi.id}"):
            r = client.get(path)
            assert r.status_code == 404, (path, r.status_code, r.text)
            assert "'vari'" in r.text and "missing" in r.text
    with pytest.raises(ProductMissingError, match="'vari'"), contextlib.ExitStack() as stack:
        stack.enter_context(ws.open_product(ndvi))


def test_byte_range_header_parsing():
    from belcheer.api.routes.tiles import byte_range

    assert byte_range("bytes=0-99", 1000) == (0, 99)
    assert byte_range("bytes=900-", 1000) == (900, 999)
    assert byte_range("bytes=900-5000", 1000) == (900, 999)
    assert byte_range("bytes=-100", 1000) == (900, 999)
    assert byte_range("bytes=-5000", 1000) == (0, 999)
    assert byte_range("bytes=1000-", 1000) is False
    assert byte_range("bytes=0-1,5-6", 1000) is None  # several ranges: the whole object
    assert byte_range("items=0-5", 1000) is None and byte_range("bytes=5-2", 1000) is None
    assert byte_range("bytes=x-", 1000) is None and byte_range("bytes=-0", 1000) is None


def test_the_local_copy_cache_is_pruned_least_recently_used_first(tmp_path, monkeypatch):
    """A cache over its limit loses its least recently used copies — never the one just made,
    nor one used within the grace period (a running stage may still read it) — and a cache hit
    counts as a use."""
    import os
    import time

    from belcheer.storage import FileStore, cached_download, prune_cache

    remote = FileStore(tmp_path / "remote")
    cache = tmp_path / "cache"
    cache.mkdir()
    old = time.time() - 3 * 3600
    for k in range(4):  # four old copies of 1 MB, the oldest first
        f = cache / f"old{k}.tif"
        f.write_bytes(b"x" * 1_000_000)
        os.utime(f, (old + k, old + k))
    young = cache / "young.tif"
    young.write_bytes(b"y" * 1_000_000)  # used a minute ago
    os.utime(young, (time.time() - 60,) * 2)
    uri = remote.uri("surveys/s/products/ndvi.tif")
    remote.put(_payload(tmp_path, b"II*\x00" + b"z" * 999_996), uri)
    monkeypatch.setenv("BELCHEER_CACHE_MAX_GB", str(3_500_000 / 1024 ** 3))
    got = cached_download(remote, uri, cache)
    left = sorted(p.name for p in cache.iterdir())
    # 6 MB held, 3.5 MB allowed: the three oldest go; the newest old copy, the young one and the new stay
    assert left == sorted(["old3.tif", "young.tif", got.name])
    # a hit refreshes its copy's last use: with no grace, pruning takes the others, oldest first
    os.utime(got, (old - 10,) * 2)
    assert cached_download(remote, uri, cache) == got and time.time() - got.stat().st_mtime < 60
    assert prune_cache(cache, 1_000_000, grace_s=0, keep=got) == [cache / "old3.tif", young]

"""The server deployment against the embedded default (issue 16): one survey, two deployments.

The cluster is the one ``make cluster`` starts (belcheer.localcluster): PostgreSQL 15 + PostGIS,
SeaweedFS S3, a Dask scheduler with two workers, two API replicas that only queue jobs and a
``belcheer worker`` that runs them, all real servers on loopback. The embedded default is
SQLite, files in the workspace and threads, serving from one process. The same frames and
parcels go in through the same HTTP routes on each; what comes out must be the same: product
pixels bit for bit, statistics row for row, map tiles byte for byte, OGC API features equal.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import rasterio
from fastapi.testclient import TestClient

from belcheer import localcluster
from belcheer.api import create_app
from belcheer.api.auth import add_user
from belcheer.config import Settings
from belcheer.simulate import simulate
from belcheer.workspace import open_workspace

SURVEY = "Өлзийт-2026-07"
PASSWORD = "cluster-test-password-3"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def survey(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cluster-sim")
    simulate(root / "sim", camera="rgb", area_ha=1.0, seed=3)
    return root / "sim"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, survey):
    import json

    root = tmp_path_factory.mktemp("cluster") / ".cluster"
    try:
        state = localcluster.up(root, extra_env={"BELCHEER_ALLOWED_ROOTS": json.dumps([str(survey)])})
    except localcluster.ClusterError as e:
        pytest.fail(f"the loopback cluster did not start: {e}")
    yield state
    localcluster.down(root, purge=True)
    assert not any(localcluster.status(root).values())


def _cluster_workspace(state, monkeypatch):
    for k, v in state.env().items():
        monkeypatch.setenv(k, v)
    return open_workspace(settings=Settings())


def _run(client, survey: Path) -> dict:
    """Sign in, upload the parcels, start the pipeline on the frames, wait for it; the job."""
    r = client.post("/token", data={"username": "admin", "password": PASSWORD})
    assert r.status_code == 200, r.text
    client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
    with (survey / "truth" / "parcels.gpkg").open("rb") as f:
        r = client.post("/parcels/upload", files={"file": ("parcels.gpkg", f, "application/geopackage+sqlite3")})
    assert r.status_code == 201, r.text
    r = client.post("/jobs", json={"survey": SURVEY, "frames_dir": str(survey / "frames")})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still {job['state']} after 600 s")


def _pixels(ws) -> dict[str, np.ndarray]:
    out = {}
    for p in ws.catalog.products(SURVEY):
        if p.kind.value in ("orthomosaic", "index"):
            with ws.product_file(p) as path, rasterio.open(path) as ds:
                out[p.name] = ds.read()
    return out


def _stats(ws) -> list[tuple]:
    rows = ws.catalog.stats(SURVEY)
    return sorted(tuple(sorted((k, v) for k, v in r.items() if k not in ("computed_at", "created_at")))
                  for r in rows)


def _tiles(client, ws) -> dict[str, list[bytes]]:
    import morecantile
    from rasterio.warp import transform_bounds

    tms = morecantile.tms.get("WebMercatorQuad")
    out = {}
    for p in ws.catalog.products(SURVEY):
        if p.name not in ("orthomosaic", "vari"):
            continue
        with ws.product_file(p) as path, rasterio.open(path) as ds:
            w, s, e, n = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
        got = []
        for t in list(tms.tiles(w, s, e, n, [19]))[:6]:
            r = client.get(f"/tiles/{p.id}/{t.z}/{t.x}/{t.y}.png")
            assert r.status_code == 200, r.text
            got.append(r.content)
        out[p.name] = got
    return out


def _features(client) -> list[dict]:
    r = client.get("/collections/parcels/items", params={"limit": 500})
    assert r.status_code == 200, r.text
    return sorted(r.json()["features"], key=lambda f: str(f["id"]))


def test_the_cluster_gives_what_the_embedded_default_gives(tmp_path, survey, cluster, monkeypatch):
    # the embedded default: SQLite, workspace files, threads; jobs run by the serving process
    emb_dir = tmp_path / "embedded"
    monkeypatch.setenv("BELCHEER_ALLOWED_ROOTS", f'["{survey}"]')
    emb_settings = Settings(workspace=emb_dir, secret_key="e" * 40, scheduler="threads")
    emb = open_workspace(emb_dir, emb_settings)
    add_user(emb, "admin", PASSWORD, "admin")
    with TestClient(create_app(emb_settings)) as client:
        emb_job = _run(client, survey)
        assert emb_job["state"] == "done", emb_job.get("error")
        emb_tiles, emb_features = _tiles(client, emb), _features(client)

    # the cluster: a replica queues the job, the belcheer worker runs it on PostGIS, S3 and Dask
    ws = _cluster_workspace(cluster, monkeypatch)
    add_user(ws, "admin", PASSWORD, "admin")
    from distributed import Client

    with Client(cluster.scheduler, set_as_default=False) as dask_client:
        before = dask_client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.transition_counter)
    with httpx.Client(base_url=cluster.api_urls[0], timeout=60) as first:
        job = _run(first, survey)
    assert job["state"] == "done", job.get("error")
    ran = ws.catalog.job(job["id"])
    assert ran.attempts == 1 and ran.worker and ran.worker.split(":")[1] == str(cluster.pids["worker0"])
    with Client(cluster.scheduler, set_as_default=False) as dask_client:
        after = dask_client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.transition_counter)
    assert after - before > 50  # the stages' tasks went through the cluster's scheduler
    products = {p.name: p for p in ws.catalog.products(SURVEY)}
    assert products["orthomosaic"].uri.startswith("s3://belcheer/products/")
    # the frames went to S3 with the products, and a Dask worker reads one by its URI alone,
    # with no file at its path: what a worker on another machine does
    import hashlib

    def _frame_digest_on_worker(uri: str) -> str:  # nested: sent by value, the test is no module there
        import hashlib
        from pathlib import Path

        from belcheer.storage import frame_file

        return hashlib.sha256(frame_file(Path("/nonexistent/frames/x.jpg"), uri).read_bytes()).hexdigest()

    frame = ws.load_survey(SURVEY).frames[0]
    assert frame.uri == f"s3://belcheer/products/surveys/{SURVEY}/frames/{frame.path.name}"
    with Client(cluster.scheduler, set_as_default=False) as dask_client:
        digest = dask_client.submit(_frame_digest_on_worker, frame.uri, pure=False).result()
    assert digest == hashlib.sha256(frame.path.read_bytes()).hexdigest()
    assert type(ws.catalog).__name__ == "PostGISCatalog"

    # the same products, bit for bit, and the same statistics
    got, want = _pixels(ws), _pixels(emb)
    assert set(got) == set(want) and {"orthomosaic", "vari"} <= set(got)
    for name in want:
        assert got[name].dtype == want[name].dtype and got[name].shape == want[name].shape, name
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    cluster_stats, emb_stats = _stats(ws), _stats(emb)
    assert len(emb_stats) >= 40  # every parcel, every index
    assert cluster_stats == emb_stats

    # served from the other replica: the same tile bytes and the same features
    with httpx.Client(base_url=cluster.api_urls[1], timeout=60) as second:
        r = second.post("/token", data={"username": "admin", "password": PASSWORD})
        second.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        tiles, features = _tiles(second, ws), _features(second)
    assert set(tiles) == {"orthomosaic", "vari"} and all(len(v) == 6 for v in tiles.values())
    assert tiles == emb_tiles
    assert len(features) == len(emb_features) >= 10
    differ = {(f["id"], k) for f, g in zip(features, emb_features, strict=True)
              for k in set(f["properties"]) | set(g["properties"])
              if f["properties"].get(k) != g["properties"].get(k)}
    assert not differ, [(i, k, f["properties"].get(k), g["properties"].get(k)) for f, g in zip(features, emb_features, strict=True) for (i, k) in sorted(differ)[:3] if f["id"] == i]
    assert features == emb_features

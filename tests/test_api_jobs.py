"""Jobs, uploads and the guards on user-supplied files: 413, zip-slip, allowed roots, resume."""

from __future__ import annotations

import io
import os
import time
import zipfile

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from test_api_helpers import SURVEY, build_workspace, token

from belcheer import pipeline
from belcheer.api import create_app


def _jpeg(seed: int = 0) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (seed * 40 % 255, 120, 60)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture
def fast_pipeline(monkeypatch):
    """Replace the pipeline's stage runners with instant fakes that record their calls."""
    calls: list[str] = []

    def fake(name):
        def run(ctx, progress):
            calls.append(name)
            progress(0.5, name)
            if name == "ingest" and ctx.params.frames_dir is not None:
                return {"frames": len(os.listdir(ctx.params.frames_dir))}
            return {"fake": name}
        return run

    for name in pipeline.STAGES:
        monkeypatch.setitem(pipeline._RUNNERS, name, fake(name))
    return calls


@pytest.fixture
def small(tmp_path):
    allowed = tmp_path / "allowed"
    (allowed / "flight1").mkdir(parents=True)
    (allowed / "flight1" / "DJI_0001.JPG").write_bytes(_jpeg())
    (tmp_path / "secret").mkdir()
    os.symlink(tmp_path / "secret", allowed / "escape")
    ws, settings = build_workspace(tmp_path / "ws", max_upload_file_bytes=20_000,
                                   max_upload_total_bytes=60_000, allowed_roots=[allowed])
    with TestClient(create_app(settings)) as client:
        yield ws, client, allowed


def _wait(client, job_id, headers, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        job = client.get(f"/jobs/{job_id}", headers=headers).json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def test_upload_job_runs_and_streams_events(small, fast_pipeline):
    ws, client, _ = small
    officer = token(client, "officer")
    files = [("files", (f"DJI_000{i}.JPG", _jpeg(i), "image/jpeg")) for i in range(3)]
    assert client.post("/jobs/upload", data={"survey": "new-flight"}, files=files).status_code == 401
    assert client.post("/jobs/upload", data={"survey": "new-flight"}, files=files,
                       headers=token(client, "herder")).status_code == 403
    r = client.post("/jobs/upload", data={"survey": "new-flight"}, files=files, headers=officer)
    assert r.status_code == 202, r.text
    job = _wait(client, r.json()["id"], officer)
    assert job["state"] == "done", job
    assert job["result"]["done"] == list(pipeline.STAGES)
    assert job["result"]["stages"]["ingest"] == {"frames": 3}
    frames = ws.path("jobs", job["id"], "frames")
    assert sorted(os.listdir(frames)) == ["DJI_0000.JPG", "DJI_0001.JPG", "DJI_0002.JPG"]
    events = client.get(f"/jobs/{job['id']}/events", headers=officer).text
    assert "event: progress" in events and "event: end" in events and '"state": "done"' in events


def test_too_large_uploads_are_413(small, fast_pipeline):
    ws, client, _ = small
    officer = token(client, "officer")
    big = [("files", ("DJI_0001.JPG", _jpeg() + b"\0" * 30_000, "image/jpeg"))]
    r = client.post("/jobs/upload", data={"survey": "big"}, files=big, headers=officer)
    assert r.status_code == 413 and "per-file limit" in r.json()["detail"]
    huge = [("files", ("DJI_0001.JPG", b"\xff\xd8\xff" + b"\0" * 1_200_000, "image/jpeg"))]
    assert client.post("/jobs/upload", data={"survey": "huge"}, files=huge, headers=officer).status_code == 413
    # a zip bomb: small on the wire, large when expanded
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("DJI_0001.JPG", b"\0" * 5_000_000)
    r = client.post("/jobs/upload", data={"survey": "bomb"}, files=[("files", ("f.zip", buf.getvalue(), "application/zip"))],
                    headers=officer)
    assert r.status_code == 413


def test_zip_slip_is_refused(small, fast_pipeline, tmp_path):
    ws, client, _ = small
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("DJI_0001.JPG", _jpeg())
        zf.writestr("../../evil.JPG", _jpeg())
    r = client.post("/jobs/upload", data={"survey": "slip"},
                    files=[("files", ("frames.zip", buf.getvalue(), "application/zip"))],
                    headers=token(client, "officer"))
    assert r.status_code == 400 and "outside the upload folder" in r.json()["detail"]
    assert not any(p.name == "evil.JPG" for p in (tmp_path / "ws").rglob("*"))
    # a file name with folders is cut to its last component, never written elsewhere
    r = client.post("/jobs/upload", data={"survey": "names", "start": "false"},
                    files=[("files", ("../../x/DJI_0009.JPG", _jpeg(), "image/jpeg"))],
                    headers=token(client, "officer"))
    assert r.status_code == 202
    assert os.listdir(ws.path("jobs", r.json()["id"], "frames")) == ["DJI_0009.JPG"]
    # not an image
    r = client.post("/jobs/upload", data={"survey": "txt"}, files=[("files", ("a.JPG", b"hello", "image/jpeg"))],
                    headers=token(client, "officer"))
    assert r.status_code == 422


def test_server_folders_must_be_inside_allowed_roots(small, fast_pipeline, tmp_path):
    ws, client, allowed = small
    officer = token(client, "officer")
    for bad in ("/etc", str(allowed / ".." / "secret"), str(allowed / "escape"), "/vsicurl/http://x/y.tif",
                "../secret"):
        r = client.post("/jobs", json={"survey": "srv", "frames_dir": bad}, headers=officer)
        assert r.status_code == 400, (bad, r.text)
    r = client.post("/jobs", json={"survey": "srv", "frames_dir": str(allowed / "flight1")}, headers=officer)
    assert r.status_code == 202, r.text
    job = _wait(client, r.json()["id"], officer)
    assert job["state"] == "done" and job["params"]["frames_dir"] == str((allowed / "flight1").resolve())


def test_jobs_take_a_panel_albedo_and_panel_captures(small, fast_pipeline):
    ws, client, allowed = small
    officer = token(client, "officer")
    for albedo, want in ((0.49, 0.49), ([0.49, 0.5, 0.5, 0.51, 0.5], [0.49, 0.5, 0.5, 0.51, 0.5]),
                         ({"nir": 0.5, "red": 0.49}, {"nir": 0.5, "red": 0.49}),
                         ("RP04-SIM0001-SC", {"blue": 0.538, "green": 0.542, "red": 0.541,
                                              "rededge": 0.539, "nir": 0.533})):
        r = client.post("/jobs", json={"survey": "srv", "frames_dir": str(allowed / "flight1"),
                                       "panel_albedo": albedo, "panels": ["IMG_0000"]}, headers=officer)
        assert r.status_code == 202, r.text
        assert r.json()["params"]["panel_albedo"] == want
        assert r.json()["params"]["panels"] == ["IMG_0000"]
        _wait(client, r.json()["id"], officer)
    r = client.post("/jobs", json={"survey": "srv", "panel_albedo": "RP04-1234567-OB"}, headers=officer)
    assert r.status_code == 400 and "RP04-1234567-OB" in r.json()["detail"]
    files = [("files", ("DJI_0001.JPG", _jpeg(), "image/jpeg"))]
    r = client.post("/jobs/upload", data={"survey": "up", "start": "false", "panel_albedo": "blue=0.49,nir=0.5",
                                          "panels": "IMG_0000, IMG_0099"}, files=files, headers=officer)
    assert r.status_code == 202, r.text
    params = r.json()["params"]
    assert params["panel_albedo"] == {"blue": 0.49, "nir": 0.5}
    assert params["panels"] == ["IMG_0000", "IMG_0099"]
    from belcheer.api.jobs import JobRunner

    p = JobRunner(ws).params_for(ws.catalog.job(r.json()["id"]))
    assert p.panel_albedo == {"blue": 0.49, "nir": 0.5} and tuple(p.panels) == ("IMG_0000", "IMG_0099")


def test_parcel_file_upload(small):
    ws, client, _ = small
    import geopandas as gpd
    from shapely.geometry import box

    gdf = gpd.GeoDataFrame({"parcel_id": ["U1", "U2"], "name": ["Өвөлжөө", "Хаваржаа"], "eco_zone": ["steppe"] * 2},
                           geometry=[box(106.90, 47.90, 106.901, 47.901), box(106.902, 47.90, 106.903, 47.901)],
                           crs=4326)
    buf = io.BytesIO(gdf.to_json().encode())
    files = {"file": ("parcels.geojson", buf.getvalue(), "application/geo+json")}
    assert client.post("/parcels/upload", files=files, headers=token(client, "herder")).status_code == 403
    r = client.post("/parcels/upload", files=files, headers=token(client, "officer"))
    assert r.status_code == 201, r.text
    names = {f["properties"]["name"] for f in client.get("/collections/parcels/items").json()["features"]}
    # the officer's upload replaced their soum's parcels (P1, P2) and left the other soum's P3
    assert names == {"Өвөлжөө", "Хаваржаа", "Улаан толгой"}
    bad = {"file": ("x.vrt", b"<VRTDataset><VRTRasterBand/></VRTDataset>", "text/xml")}
    assert client.post("/parcels/upload", files=bad, headers=token(client, "officer")).status_code == 422


def test_job_resumes_after_restart(tmp_path, fast_pipeline):
    """A job interrupted after 'calibrate' resumes at 'mosaic' when the server starts again."""
    ws, settings = build_workspace(tmp_path / "ws")
    job = ws.catalog.add_job("pipeline", {"survey": SURVEY, "frames_dir": None}, owner="officer")
    ws.catalog.update_job(job.id, state="running", stage="mosaic", progress=0.2,
                          result={"done": ["ingest", "calibrate"], "stages": {}})
    app = create_app(settings)  # a fresh server process over the same workspace
    with TestClient(app) as client:  # startup resumes unfinished jobs
        app.state.runner.wait(job.id, timeout=20)
        got = client.get(f"/jobs/{job.id}", headers=token(client, "officer")).json()
    assert got["state"] == "done"
    assert fast_pipeline == ["mosaic", "indices", "stats"]
    assert got["result"]["done"] == list(pipeline.STAGES)


def test_the_first_parcel_upload_keeps_its_numbers_numbers(tmp_path):
    """Into a workspace with no parcels yet: the empty layer (all columns text) must not turn the
    new parcels' areas and livestock counts into text ("72.8978") in the GeoPackage and the API."""
    import geopandas as gpd
    from shapely.geometry import box

    from belcheer.api.auth import add_user
    from belcheer.config import Settings
    from belcheer.workspace import open_workspace

    settings = Settings(workspace=tmp_path / "ws", secret_key="f" * 40)
    ws = open_workspace(settings.workspace, settings)
    add_user(ws, "admin", "first-upload-pw-1", "admin")
    gdf = gpd.GeoDataFrame({"parcel_id": ["N1", "N2"], "sheep": [120, 35], "horse": [4, 0]},
                           geometry=[box(106.90, 47.90, 106.901, 47.901), box(106.902, 47.90, 106.903, 47.901)],
                           crs=4326)
    with TestClient(create_app(settings)) as client:
        r = client.post("/token", data={"username": "admin", "password": "first-upload-pw-1"})
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        files = {"file": ("parcels.geojson", gdf.to_json().encode(), "application/geo+json")}
        assert client.post("/parcels/upload", files=files, headers=headers).status_code == 201
        props = {f["id"]: f["properties"]
                 for f in client.get("/collections/parcels/items", headers=headers).json()["features"]}
    assert props["N1"]["sheep"] == 120 and props["N2"]["horse"] == 0
    assert isinstance(props["N1"]["area_ha"], float) and 0.5 < props["N1"]["area_ha"] < 1.0
    stored = gpd.read_file(ws.catalog.current_parcel_version().path, layer="parcels")
    assert str(stored["area_ha"].dtype) == "float64" and str(stored["sheep"].dtype) == "int64"

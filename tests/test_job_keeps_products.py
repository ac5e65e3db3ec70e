"""A job whose flight lies outside the parcel layer keeps what succeeded (issue 15, item 8)."""

from __future__ import annotations

import geopandas as gpd
from fastapi.testclient import TestClient
from shapely.geometry import box
from test_api_helpers import SURVEY, build_workspace, token

from belcheer import pipeline
from belcheer.api import create_app
from belcheer.api.jobs import PIPELINE_KIND, JobRunner


def test_flight_outside_parcels_ends_done_with_warning(tmp_path, monkeypatch):
    ws, settings = build_workspace(tmp_path / "ws")
    # mosaic and indices "succeed" instantly (the fixture already holds their products)
    for name in ("mosaic", "indices"):
        monkeypatch.setitem(pipeline._RUNNERS, name, lambda ctx, progress, n=name: {"fake": n})
    far = gpd.GeoDataFrame({"parcel_id": ["FAR-1"], "name": ["Алс хол"], "land_use": ["pasture"]},
                           geometry=[box(110.0, 45.0, 110.01, 45.01)], crs=4326)
    far_path = tmp_path / "far.gpkg"
    far.to_file(far_path, driver="GPKG", engine="pyogrio")
    params = pipeline.PipelineParams(survey=SURVEY, parcels=far_path)
    job = ws.catalog.add_job(PIPELINE_KIND, params.to_dict(), owner="officer")
    runner = JobRunner(ws)
    runner.start(job.id)
    runner.wait(job.id, 60)
    done = ws.catalog.job(job.id)
    assert done.state == "done", done.error
    assert done.message == "done with warnings"
    assert done.result["done"] == list(pipeline.STAGES)
    (warning,) = done.result["warnings"]
    assert warning["code"] == "no_parcel_overlap"
    assert "давхцахгүй" in warning["mn"] and "does not overlap" in warning["en"]
    assert not any(c.isascii() and c.isalpha() for c in warning["mn"])
    assert {"orthomosaic", "ndvi", "condition"} <= set(done.result["products"])
    assert done.result["stages"]["stats"]["parcels"] == 0
    with TestClient(create_app(settings)) as client:
        officer = token(client, "officer")
        names = [s["name"] for s in client.get("/surveys", headers=officer).json()]
        assert SURVEY in names
        assert client.get(f"/jobs/{job.id}", headers=officer).json()["state"] == "done"

"""Every path to reflectance uses the survey's stored calibration.

On the real RedEdge tutorial capture (panel IMG_0000, flight IMG_0001, albedo 0.49): the
step-by-step CLI (calibrate → mosaic → indices), ``belcheer run``, an API job and the Python
API use the bit-identical calibration and give bit-identical NDVI, and each says that panel
and sunlight sensor disagree. (Bit identity needs OpenCV without its IPP code paths, whose
results depend on where NumPy allocated the input: ``belcheer/opencvenv.py``.)
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import real_dataset

pytestmark = [pytest.mark.real, pytest.mark.slow]


def _ndvi(ws_dir: Path, survey: str = "t") -> tuple[np.ndarray, dict]:
    from belcheer import open_workspace

    prod = open_workspace(ws_dir).catalog.product(survey, "ndvi")
    with rasterio.open(prod.path) as src:
        return src.read(1), dict(prod.metadata)


@pytest.fixture(scope="module")
def paths(real_data: Path, tmp_path_factory) -> dict:
    from belcheer.cli import main

    frames = real_dataset(real_data, "rededge_tutorial")
    tmp = tmp_path_factory.mktemp("paths")
    out: dict = {}

    # 1. the documented step-by-step CLI
    ws1 = tmp / "cli"
    base = ["--workspace", str(ws1)]
    assert main([*base, "ingest", str(frames), "--survey", "t", "--no-quality"]) == 0
    assert main([*base, "calibrate", "t", "--panel-albedo", "0.49"]) == 0
    assert main([*base, "mosaic", "t"]) == 0
    assert main([*base, "indices", "t", "--index", "ndvi"]) == 0
    out["cli"] = _ndvi(ws1)

    # 2. belcheer run
    ws2 = tmp / "run"
    assert main(["--workspace", str(ws2), "run", str(frames), "--survey", "t", "--index", "ndvi",
                 "--panel-albedo", "0.49"]) == 0
    out["run"] = _ndvi(ws2)

    # 3. an API job with albedo 0.49
    from fastapi.testclient import TestClient
    from test_api_helpers import PASSWORD, token

    from belcheer import open_workspace
    from belcheer.api import create_app
    from belcheer.api.auth import add_user
    from belcheer.config import Settings

    settings = Settings(workspace=tmp / "api", secret_key="test-secret-" + "x" * 32,
                        allowed_roots=[frames.parent])
    add_user(open_workspace(tmp / "api", settings), "officer", PASSWORD, "officer")
    with TestClient(create_app(settings)) as client:
        h = token(client, "officer")
        r = client.post("/jobs", json={"survey": "t", "frames_dir": str(frames), "indices": ["ndvi"],
                                       "panel_albedo": 0.49}, headers=h)
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        end = time.monotonic() + 600
        while time.monotonic() < end:
            job = client.get(f"/jobs/{job_id}", headers=h).json()
            if job["state"] in ("done", "failed"):
                break
            time.sleep(1.0)
        assert job["state"] == "done", job["error"]
        out["job"] = job
        out["survey_doc"] = client.get("/surveys/t", headers=h).json()
    out["api"] = _ndvi(tmp / "api")

    # 4. the Python API
    from belcheer.indices import calibrate, compute_survey
    from belcheer.ingest import ingest
    from belcheer.orthomosaic import mosaic

    ws4 = open_workspace(tmp / "python")
    survey = ingest(ws4, frames, survey="t", quality=False)
    mosaic(ws4, "t", correction=calibrate(survey, panel_albedo=0.49))
    compute_survey(ws4, "t", ["ndvi"])
    out["python"] = _ndvi(tmp / "python")
    return out


def test_every_path_uses_one_calibration_and_gives_the_same_ndvi(paths: dict) -> None:
    ref, meta = paths["cli"]
    # the tutorial's vegetation: NDVI median ≈ 0.60 from panel reflectance (0.21 from DN)
    assert np.nanmedian(ref) == pytest.approx(0.60, abs=0.02)
    assert meta["calibration"]["method"] == "both" and meta["calibration"]["albedos"]["nir"] == 0.49
    for name in ("run", "api", "python"):
        got, m = paths[name]
        assert m["calibration"]["id"] == meta["calibration"]["id"], name  # the same calibration
        assert got.shape == ref.shape, name
        assert np.array_equal(np.isnan(got), np.isnan(ref)), name
        assert np.array_equal(got, ref, equal_nan=True), (name, float(np.nanmax(np.abs(got - ref))))


def test_disagreement_is_said_in_job_report_and_survey_info(paths: dict) -> None:
    cal = paths["job"]["result"]["calibration"]
    assert cal["method"] == "both" and cal["panel_capture"] == "IMG_0000"
    (note,) = [n for n in cal["note_codes"] if n["code"] == "panel_sensor_disagree"]
    assert set(note["bands"]) == {"green", "red", "nir", "rededge"}
    assert any("disagree by more than 15 %" in t or "disagree by more than 15%" in t
               for t in cal["notes"])
    info = paths["survey_doc"]["calibration"]
    assert info["method"] == "both"
    assert [n["code"] for n in info["notes"]] == [n["code"] for n in cal["note_codes"]]

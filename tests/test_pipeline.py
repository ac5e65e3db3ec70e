"""The pipeline orchestrator: stage order, resume from the last finished stage, progress."""

from __future__ import annotations

import pytest

from belcheer import pipeline
from belcheer.errors import ConfigError
from belcheer.pipeline import PipelineParams, run_pipeline


@pytest.fixture
def fake_stages(monkeypatch):
    calls: list[str] = []

    def make(name):
        def runner(ctx, progress):
            progress(0.5, f"{name} half")
            calls.append(name)
            if ctx.params.options.get("fail_at") == name:
                raise RuntimeError(f"{name} crashed")
            return {"stage": name}
        return runner

    monkeypatch.setattr(pipeline, "_RUNNERS", {s: make(s) for s in pipeline.STAGES})
    return calls


def test_runs_every_stage_in_order(workspace, fake_stages):
    seen, fractions = [], []
    result = run_pipeline(workspace, PipelineParams(survey="s"),
                          progress=lambda f, m: fractions.append(f),
                          on_stage=lambda name, res: seen.append((name, res["stage"])))
    assert fake_stages == list(pipeline.STAGES)
    assert [s for s, _ in seen] == list(pipeline.STAGES) == list(result)
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == pytest.approx(1.0)


def test_resume_skips_finished_stages(workspace, fake_stages):
    done: list[str] = []
    params = PipelineParams(survey="s", options={"fail_at": "indices"})
    with pytest.raises(RuntimeError, match="indices crashed"):
        run_pipeline(workspace, params, on_stage=lambda name, res: done.append(name))
    assert done == ["ingest", "calibrate", "mosaic"]
    fake_stages.clear()
    run_pipeline(workspace, PipelineParams(survey="s"), done=done)
    assert fake_stages == ["indices", "stats"]


def test_unknown_stage_is_named(workspace):
    with pytest.raises(ConfigError, match="unknown pipeline stage.*'tiles'"):
        run_pipeline(workspace, PipelineParams(survey="s"), stages=["ingest", "tiles"])


def test_params_round_trip(tmp_path):
    p = PipelineParams(survey="Хужирт-2026", frames_dir=tmp_path, indices=["ndvi"], epsg=32648,
                       panels=("IMG_0000",), parcels=tmp_path / "p.gpkg")
    assert PipelineParams.from_dict(p.to_dict()) == p


def test_the_survey_is_read_once_and_the_calibration_reaches_the_mosaic(tmp_path, monkeypatch):
    """The stages of one run share the loaded survey and the calibrate stage's calibration: the
    manifest is read once, and the mosaic is made with the very calibration the run stored."""
    import belcheer.indices
    import belcheer.orthomosaic
    from belcheer import workspace as core
    from belcheer.indices import Calibration
    from belcheer.simulate import simulate
    from belcheer.simulate.run import PANEL_ALBEDO

    sim = simulate(tmp_path / "sim", camera="rededge", seed=3, area_ha=0.1, altitude_m=70, gnss="rtk")
    ws = core.open_workspace(tmp_path / "ws")
    reads: list[object] = []
    real_read = core.read_manifest
    monkeypatch.setattr(core, "read_manifest", lambda path: reads.append(path) or real_read(path))
    seen: dict[str, object] = {}

    def fake_mosaic(ws_, survey, **kw):
        seen["mosaic_survey"], seen["correction"] = survey, kw["correction"]
        return belcheer.models.Product(id="", survey="sim", kind=belcheer.models.ProductKind.REFLECTANCE,
                                       name="reflectance", uri="file:///nowhere.tif", epsg=survey.epsg)

    def fake_indices(ws_, survey, names, **kw):
        seen["indices_survey"], seen["names"] = survey, names
        return []

    monkeypatch.setattr(belcheer.orthomosaic, "mosaic", fake_mosaic)
    monkeypatch.setattr(belcheer.indices, "compute_survey", fake_indices)
    params = PipelineParams(survey="sim", frames_dir=sim.frames_dir, panels=["IMG_0000"],
                            panel_albedo=PANEL_ALBEDO)
    out = run_pipeline(ws, params, stages=["ingest", "calibrate", "mosaic", "indices"])
    assert len(reads) == 1  # ingest writes the manifest; the stages after it read it once
    assert seen["mosaic_survey"] is seen["indices_survey"]
    assert seen["mosaic_survey"].name == "sim" and seen["mosaic_survey"].is_multispectral
    assert isinstance(seen["correction"], Calibration)
    stored = ws.catalog.calibration("sim")
    assert out["calibrate"]["id"] == stored.id
    assert Calibration.from_dict(stored.body).to_dict() == seen["correction"].to_dict()
    assert list(seen["names"]) == list(pipeline.DEFAULT_MS_INDICES)


def test_the_core_workspace_does_not_import_the_notebook_layer():
    """The core (workspace, catalog, pipeline) builds on nothing above it: the notebook facade
    and the stages import the core, never the other way round."""
    import subprocess
    import sys

    code = ("import sys, belcheer.workspace, belcheer.pipeline, belcheer.catalog; "
            "print(sorted(m for m in sys.modules if m.split('.')[:2] in (['belcheer', 'facade'], "
            "['belcheer', 'zoning'], ['belcheer', 'orthomosaic'], ['belcheer', 'indices'], ['belcheer', 'api'])))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    import belcheer
    from belcheer.facade import NotebookWorkspace
    from belcheer.workspace import Workspace

    assert belcheer.Workspace is NotebookWorkspace and issubclass(NotebookWorkspace, Workspace)
    assert not hasattr(Workspace, "survey") and not hasattr(Workspace, "timeseries")

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

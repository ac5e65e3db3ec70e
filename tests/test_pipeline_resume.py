"""``belcheer run`` killed with SIGKILL mid-mosaic resumes when the same command is run again."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from belcheer import pipeline
from belcheer.cli import main
from belcheer.errors import ConflictError

# the real stages replaced by instant ones; the mosaic stage kills its own process, as the OOM
# killer or `kill -9` would, and ingest refuses a second run as the real one does
_KILLED_RUN = """
import os, signal, sys
from belcheer import pipeline
from belcheer.cli import main

def fake(name):
    def run(ctx, progress):
        if name == "mosaic":
            os.kill(os.getpid(), signal.SIGKILL)
        return {"fake": name}
    return run

for n in pipeline.STAGES:
    pipeline._RUNNERS[n] = fake(n)
sys.exit(main(sys.argv[1:]))
"""


def test_cli_run_resumes_after_sigkill(tmp_path: Path, monkeypatch):
    frames = tmp_path / "frames"
    frames.mkdir()
    ws = tmp_path / "ws"
    argv = ["-w", str(ws), "run", str(frames), "--survey", "killed"]
    first = subprocess.run([sys.executable, "-c", _KILLED_RUN, *argv], capture_output=True, text=True,
                           timeout=120)
    assert first.returncode == -signal.SIGKILL, first.stderr[-500:]

    calls: list[str] = []

    def fake(name):
        def run(ctx, progress):
            if name == "ingest":
                raise ConflictError("survey 'killed' already exists; pass --replace")
            calls.append(name)
            return {"fake": name}
        return run

    for name in pipeline.STAGES:
        monkeypatch.setitem(pipeline._RUNNERS, name, fake(name))
    monkeypatch.chdir(tmp_path)  # the same folder given relatively is the same run
    assert main(["-w", str(ws), "run", "frames", "--survey", "killed"]) == 0
    assert calls == ["mosaic", "indices", "stats"]
    from belcheer import open_workspace

    job = [j for j in open_workspace(ws).catalog.jobs() if j.kind == pipeline.CLI_KIND][-1]
    assert job.state == "done" and job.result["done"] == list(pipeline.STAGES)
    # finished: the same command again is a new run, and ingest says the survey exists
    assert main(argv) == ConflictError.exit_code


def test_a_failed_run_resumes_at_the_failed_stage(workspace, tmp_path, monkeypatch):
    calls: list[str] = []
    fail = {"indices": True}

    def fake(name):
        def run(ctx, progress):
            calls.append(name)
            if fail.get(name):
                from belcheer.errors import ProcessingError

                raise ProcessingError("no overlap")
            return {"fake": name}
        return run

    for name in pipeline.STAGES:
        monkeypatch.setitem(pipeline._RUNNERS, name, fake(name))
    params = pipeline.PipelineParams(survey="s", frames_dir=tmp_path)
    with pytest.raises(Exception, match="no overlap"):
        pipeline.run_resumable(workspace, params)
    fail.clear()
    results, already = pipeline.run_resumable(workspace, pipeline.PipelineParams(survey="s", frames_dir=tmp_path))
    assert already == ["ingest", "calibrate", "mosaic"] and list(results) == ["indices", "stats"]
    assert calls == ["ingest", "calibrate", "mosaic", "indices", "indices", "stats"]
    # other parameters are another run
    _, already = pipeline.run_resumable(workspace, pipeline.PipelineParams(survey="s", frames_dir=tmp_path,
                                                                           epsg=32648))
    assert already == []

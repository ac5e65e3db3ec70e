"""``belcheer run`` (the whole pipeline on a folder of frames) and ``belcheer demo``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from belcheer.cli import _common


def register(app: typer.Typer) -> None:
    """Add ``run`` and ``demo`` to the main app."""

    @app.command("run")
    def run(
        frames_dir: Path = typer.Argument(None, help="Folder of frames (omit for an already ingested survey)."),
        survey: str = typer.Option(..., "--survey", "-s", help="Survey name (Cyrillic is fine)."),
        index: str = typer.Option(None, "--index", help="Comma-separated indices (default by camera)."),
        parcels: Path = typer.Option(None, "--parcels", help="Parcel file to import before statistics."),
        epsg: int = typer.Option(None, "--epsg", help="Output UTM EPSG code (default: from the survey)."),
        resolution: float = typer.Option(None, "--resolution", help="Orthomosaic pixel size, metres."),
        panel_albedo: float = typer.Option(None, "--panel-albedo", help="Reflectance panel albedo (0–1)."),
        scheduler: str = typer.Option(None, "--scheduler", help="threads | processes | tcp://host:8786"),
        replace: bool = typer.Option(False, "--replace", help="Re-ingest a survey that already exists."),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """Run ingest → calibrate → mosaic → indices → stats on one survey. Run the same command
        again after an interruption (Ctrl-C, a crash, kill -9) and it resumes at the first stage
        not finished."""
        from belcheer.pipeline import PipelineParams, run_resumable

        ws = _common.workspace()
        params = PipelineParams(survey=survey, frames_dir=frames_dir,
                                indices=[i.strip() for i in index.split(",")] if index else None,
                                epsg=epsg, resolution=resolution, panel_albedo=panel_albedo,
                                parcels=parcels, scheduler=scheduler, replace=replace)
        with _common.progress_bar(not as_json) as cb:
            result, already = run_resumable(ws, params, progress=cb)
        if as_json:
            _common.print_json(result)
        else:
            if already:
                _common.out.print(f"resumed: {', '.join(already)} finished by an earlier run")
            for stage, res in result.items():
                _common.out.print(f"[bold]{stage:<10}[/] {res}")

    @app.command("demo")
    def demo(
        camera: str = typer.Option("rededge", "--camera", help="Simulated camera: rgb | rededge."),
        seed: int = typer.Option(7, "--seed", help="Random seed of the synthetic survey."),
        serve: bool = typer.Option(True, "--serve/--no-serve", help="Serve the web map at the end."),
        host: str = typer.Option("127.0.0.1", "--host"),
        port: int = typer.Option(8000, "--port"),
    ) -> None:
        """Simulate a survey over a Mongolian soum, run the whole pipeline on it, serve the web map."""
        from belcheer.pipeline import PipelineParams, run_pipeline
        from belcheer.simulate import simulate

        settings = _common.settings()
        ws = _common.workspace()
        survey = f"demo-{camera}-{seed}"
        sim_dir = ws.path("demo", survey)
        _common.out.print(f"[bold]1/2[/] simulating a {camera} survey (seed {seed}) in {sim_dir}")
        with _common.progress_bar() as cb:
            sim = simulate(sim_dir, camera=camera, seed=seed, progress=cb)
        _common.out.print(f"[bold]2/2[/] running the pipeline on {sim.frames_dir}")
        # the simulated panel's albedo is known, as it would be from a real panel's calibration sheet
        albedo = json.loads(sim.simulation_json.read_text(encoding="utf-8"))["camera"].get("panel_albedo")
        params = PipelineParams(survey=survey, frames_dir=sim.frames_dir, parcels=sim.parcels_path,
                                panel_albedo=albedo, replace=True)
        with _common.progress_bar() as cb:
            result = run_pipeline(ws, params, progress=cb)
        ws.catalog.set_published(survey, True)
        _common.out.print()
        _common.out.print(f"[bold green]Done.[/] Workspace: {ws.root}")
        _common.out.print(f"  survey manifest : {ws.manifest_path(survey)}")
        for product in ws.catalog.products(survey):
            _common.out.print(f"  {product.kind.value:<12}: {product.path}")
        _common.out.print(f"  reports         : {ws.report_dir(survey)}")
        _common.out.print(f"  stages          : {', '.join(result)}")
        if serve:
            from belcheer.api import serve as serve_app

            _common.out.print(f"\n[bold]Web map:[/] http://{host}:{port}/   "
                              f"(herders: http://{host}:{port}/herder)   Ctrl-C stops the server")
            serve_app(settings.model_copy(update={"workspace": ws.root}), host=host, port=port)

"""``belcheer run`` (the whole pipeline on a folder of frames) and ``belcheer demo``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
        panel_albedo: str = typer.Option(None, "--panel-albedo",
                                         help="Panel reflectance: 0.49, or per band 0.49,0.49,… or "
                                              "blue=0.49,…, or a MicaSense panel serial RP04-…"),
        scheduler: str = typer.Option(None, "--scheduler", help="threads | processes | tcp://host:8786"),
        replace: bool = typer.Option(False, "--replace", help="Re-ingest a survey that already exists."),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """Run ingest → calibrate → mosaic → indices → stats on one survey. Run the same command
        again after an interruption (Ctrl-C, a crash, kill -9) and it resumes at the first stage
        not finished."""
        from belcheer.cli.indices import parse_albedo
        from belcheer.pipeline import PipelineParams, run_resumable, run_warnings

        ws = _common.workspace()
        params = PipelineParams(survey=survey, frames_dir=frames_dir,
                                indices=[i.strip() for i in index.split(",")] if index else None,
                                epsg=epsg, resolution=resolution,
                                panel_albedo=parse_albedo(panel_albedo),  # type: ignore[arg-type]
                                parcels=parcels, scheduler=scheduler, replace=replace)
        with _common.progress_bar(not as_json) as cb:
            result, already = run_resumable(ws, params, progress=cb)
        if as_json:
            _common.print_json(result)
        else:
            if already:
                _common.out.print(f"resumed: {', '.join(already)} finished by an earlier run")
            for stage, res in result.items():
                if stage == "calibrate" and "note_codes" in res:
                    res = {k: v for k, v in res.items() if k not in ("notes", "note_codes")}
                _common.out.print(f"[bold]{stage:<10}[/] {res}")
            rec = ws.catalog.calibration(survey)
            if rec is not None:
                from belcheer.cli.indices import print_calibration

                print_calibration(rec.summary())
            for w in run_warnings(result):
                _common.out.print(f"[yellow]warning[/] {w['mn']}\n        {w['en']}")

    @app.command("demo")
    def demo(
        camera: str = typer.Option("rededge", "--camera", help="Simulated camera: rgb | rededge."),
        seed: int = typer.Option(7, "--seed", help="Random seed of the synthetic survey."),
        serve: bool = typer.Option(True, "--serve/--no-serve", help="Serve the web map at the end."),
        host: str = typer.Option("127.0.0.1", "--host"),
        port: int = typer.Option(8000, "--port"),
    ) -> None:
        """Simulate a survey over a Mongolian soum, run the whole pipeline on it, serve the web map."""
        from belcheer.pipeline import PipelineParams, run_pipeline, run_warnings
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
        for w in run_warnings(result):
            _common.out.print(f"[yellow]warning[/] {w['mn']}\n        {w['en']}")
        ws.catalog.set_published(survey, True)
        pdf = _demo_decisions(ws, survey, sim.quadrats_path, settings.nso_data)
        _common.out.print()
        _common.out.print(f"[bold green]Done.[/] Workspace: {ws.root}")
        _common.out.print(f"  survey manifest : {ws.manifest_path(survey)}")
        for product in ws.catalog.products(survey):
            _common.out.print(f"  {product.kind.value:<12}: {product.uri}")
        _common.out.print(f"  reports         : {ws.report_dir(survey)}")
        _common.out.print(f"  soum report     : {pdf}")
        _common.out.print(f"  stages          : {', '.join(result)}")
        if serve:
            from belcheer.api import serve as serve_app

            _common.out.print(f"\n[bold]Web map:[/] http://{host}:{port}/   "
                              f"(herders: http://{host}:{port}/herder)   Ctrl-C stops the server")
            serve_app(settings.model_copy(update={"workspace": ws.root}), host=host, port=port)


def _demo_decisions(ws: Any, survey: str, quadrats: Path, nso_data: Path | None) -> Path:
    """Biomass from the simulated quadrats, the condition raster, fractional cover (when the
    survey has reflectance), and the soum report to print."""
    from belcheer import zoning
    from belcheer.errors import NotFoundError
    from belcheer.zoning.pdf import write_soum_report
    from belcheer.zoning.registry import livestock_or_none

    zoning.calibrate_survey(ws, survey, quadrats)
    zoning.survey_stats(ws, survey, ["biomass"])
    zoning.condition_raster(ws, survey)
    try:
        ws.product(survey, "reflectance")
    except NotFoundError:
        pass  # an RGB demo: colours cannot be unmixed into green, dry and bare
    else:
        zoning.cover_raster(ws, survey)
    pdf = ws.report_dir(survey) / "soum-report.pdf"
    write_soum_report(ws, pdf, survey=survey, livestock=livestock_or_none(nso_data))
    return pdf

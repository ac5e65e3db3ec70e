"""``belcheer mosaic`` and ``belcheer import-ortho``."""

from __future__ import annotations

from pathlib import Path

import typer

from belcheer.cli import _common
from belcheer.errors import ConfigError


def register(app: typer.Typer) -> None:
    """Add this group's commands to the main app."""

    @app.command("mosaic")
    def mosaic_cmd(
        survey: str = typer.Argument(None, help="Survey name in the workspace."),
        resolution: float = typer.Option(None, "--resolution", help="Output pixel size, metres."),
        epsg: int = typer.Option(None, "--epsg", help="Output CRS (default: the survey's UTM zone)."),
        dsm: Path = typer.Option(None, "--dsm", help="Surface model for true orthorectification."),
        gcp: Path = typer.Option(None, "--gcp", help="Ground control, OpenDroneMap gcp_list.txt."),
        scheduler: str = typer.Option(None, "--scheduler", help="Dask scheduler or tcp:// address."),
        from_rasters: list[Path] = typer.Option(None, "--from-rasters",
                                                help="Merge georeferenced rasters instead."),
        survey_opt: str = typer.Option(None, "--survey", help="Survey for --from-rasters."),
        relative: bool = typer.Option(False, "--relative",
                                      help="Multispectral: mosaic DN instead of reflectance "
                                           "(flagged relative)."),
        as_json: bool = typer.Option(False, "--json", help="Print the product as JSON."),
    ) -> None:
        """Build the orthomosaic COG of a survey (or merge rasters with --from-rasters)."""
        ws = _common.workspace()
        if from_rasters:
            from belcheer.orthomosaic import import_ortho, merge_rasters

            name = survey_opt or survey
            if not name:
                raise ConfigError("--from-rasters needs --survey NAME")
            tmp = ws.path("jobs", f"merge-{name}.tif")
            merge_rasters(list(from_rasters), tmp, resolution=resolution, epsg=epsg)
            try:
                product = import_ortho(ws, tmp, survey=name)
            finally:
                tmp.unlink(missing_ok=True)
        else:
            from belcheer.orthomosaic import mosaic

            if not survey:
                raise ConfigError("give a SURVEY name (see `belcheer ingest`)")
            with _common.progress_bar(not as_json) as cb:
                product = mosaic(ws, survey, resolution=resolution, epsg=epsg, dsm=dsm, gcp=gcp,
                                 relative=relative, scheduler=scheduler, progress=cb)
        if as_json:
            _common.print_json(product.to_dict())
        else:
            _common.out.print(f"{product.name}: {product.uri}")
            for key in ("frames_used", "frames_gps_only", "frames_dropped", "blocks",
                        "reprojection_mean_px", "gsd_m", "quality_report"):
                if key in product.metadata:
                    _common.out.print(f"  {key}: {product.metadata[key]}")
            if "calibration" in product.metadata:
                from belcheer.cli.indices import print_calibration

                print_calibration(product.metadata["calibration"])
            elif "relative_reason" in product.metadata:
                _common.out.print(f"  relative: {product.metadata['relative_reason']}")

    @app.command("import-ortho")
    def import_cmd(
        file: Path = typer.Argument(..., help="A georeferenced orthophoto (GeoTIFF)."),
        survey: str = typer.Option(None, "--survey", help="Survey name (created if missing)."),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Register an existing orthophoto as a survey's orthomosaic (a COG copy in the workspace)."""
        from belcheer.orthomosaic import import_ortho

        product = import_ortho(_common.workspace(), file, survey=survey)
        if as_json:
            _common.print_json(product.to_dict())
        else:
            _common.out.print(f"{product.survey}/{product.name}: {product.uri}")

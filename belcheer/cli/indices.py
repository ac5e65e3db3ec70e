"""``belcheer indices`` and ``belcheer calibrate``: vegetation indices and the calibration report."""

from __future__ import annotations

from pathlib import Path

import typer

from belcheer.cli import _common
from belcheer.errors import ConfigError


def _parse_formulas(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, text = item.partition("=")
        if not sep or not name.strip() or not text.strip():
            raise ConfigError(f"--formula {item!r}: write NAME=EXPRESSION, e.g. my=(N-R)/(N+R+0.1)")
        out[name.strip()] = text.strip().strip('"').strip("'")
    return out


def parse_albedo(text: str | None) -> float | list[float] | dict[str, float] | None:
    """``0.49`` → 0.49; ``0.49,0.5,…`` → per band in order; ``blue=0.49,nir=0.5`` → by name;
    a MicaSense panel serial ``RP04-…`` → its albedos from the shipped table."""
    from belcheer.indices.panel import parse_albedo as parse

    return parse(text)


def parse_region(text: str | None) -> tuple[int, int, int, int] | None:
    if text is None or not text.strip():
        return None
    try:
        x, y, w, h = (int(float(v)) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--panel-region {text!r}: give X,Y,W,H in pixels, e.g. 660,470,140,140") from None
    if w <= 0 or h <= 0:
        raise ConfigError("--panel-region width and height must be positive")
    return (x, y, w, h)


def register(app: typer.Typer) -> None:
    """Add ``indices`` and ``calibrate`` to the main app."""

    @app.command("indices")
    def indices_cmd(
        survey: str = typer.Argument(None, help="Survey name (see `belcheer ingest`)."),
        index: str = typer.Option("ndvi", "--index", "-i",
                                  help="Comma-separated index names from the catalogue (ndvi,savi,ndrei…)."),
        formula: list[str] = typer.Option(None, "--formula", "-f",
                                          help='Own band math: NAME="(N-R)/(N+R+0.1)" (repeatable).'),
        scheduler: str = typer.Option(None, "--scheduler",
                                      help="threads, processes, or tcp://host:8786 (Dask cluster)."),
        list_: bool = typer.Option(False, "--list", help="List the index catalogue and exit."),
        relative: bool = typer.Option(False, "--relative",
                                      help="Indices of a multispectral survey's DN mosaic (not "
                                           "reflectance; flagged relative in the product)."),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """Compute vegetation indices for a survey (one COG per index, registered as products)."""
        from belcheer.indices import catalogue, compute_survey

        if list_:
            cat = catalogue()
            if as_json:
                _common.print_json([{"name": d.name, "long_name": d.long_name, "formula": d.formula,
                                     "bands": list(d.bands), "rgb": d.rgb, "domain": d.domain,
                                     "reference": d.reference} for d in cat.values()])
            else:
                for d in cat.values():
                    print(f"{d.name:12s} {d.formula:50s} {d.long_name}")
            return
        if not survey:
            raise ConfigError("give a SURVEY name (or --list to see the indices)")
        names = [n.strip() for n in (index or "").split(",") if n.strip()]
        formulas = _parse_formulas(formula)
        names += [n for n in formulas if n not in names]
        ws = _common.workspace()
        with _common.progress_bar(not as_json) as cb:
            products = compute_survey(ws, survey, names, formulas=formulas or None,
                                      scheduler=scheduler, progress=cb, relative=relative)
        if as_json:
            _common.print_json([p.to_dict() for p in products])
            return
        for p in products:
            flag = f" (relative: {p.metadata.get('relative_reason', 'not reflectance')})" \
                if p.relative else ""
            _common.out.print(f"{p.name:10s} {p.uri}{flag}")
        if products and "calibration" in products[0].metadata:
            print_calibration(products[0].metadata["calibration"])

    @app.command("calibrate")
    def calibrate_cmd(
        survey: str = typer.Argument(..., help="Survey name (see `belcheer ingest`)."),
        method: str = typer.Option("auto", "--method", help="auto, panel, sensor or both."),
        panel_albedo: str = typer.Option(None, "--panel-albedo",
                                         help="Panel reflectance: 0.49, or per band 0.49,0.49,… or "
                                              "blue=0.49,…, from the panel's calibration sheet/QR."),
        panel_region: str = typer.Option(None, "--panel-region",
                                         help="X,Y,W,H pixels of the panel when it is not found "
                                              "automatically."),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    ) -> None:
        """Calibrate a multispectral survey to reflectance and print the calibration report."""
        from belcheer.indices.stored import survey_calibration

        if method not in ("auto", "panel", "sensor", "both"):
            raise ConfigError(f"--method {method!r}: use auto, panel, sensor or both")
        ws = _common.workspace()
        cal, rec = survey_calibration(ws, survey, method=method,  # type: ignore[arg-type]
                                      panel_albedo=parse_albedo(panel_albedo),
                                      panel_region=parse_region(panel_region), source="calibrate",
                                      recalibrate=True)
        report = {**cal.to_dict(), "id": rec.id, "source": rec.source}
        path = ws.report_dir(survey) / "calibration.json"
        if as_json:
            _common.print_json(report)
            return
        _common.out.print(f"method: {cal.method}  (report: {path})")
        for band, e in (cal.panel_irradiance or {}).items():
            _common.out.print(f"  {band:8s} panel irradiance {e:.4f}")
        diff = report.get("panel_vs_sensor", {}).get("bands", {})
        for band, d in diff.items():
            _common.out.print(f"  {band:8s} reflectance panel {d['panel']:.3f} sensor {d['sensor']:.3f}")
        if "calibration_error" in report:
            _common.out.print(f"  calibration error (max |Δρ|): {report['calibration_error']['max_abs']:.3f}")
        for n in rec.notes:
            _common.out.print(f"  [yellow]note:[/] {n['text']}")
        _common.out.print(f"stored as the survey's calibration {rec.id}: `belcheer mosaic {survey}` "
                          "and `belcheer indices` use it")


    @app.command("import-index")
    def import_index_cmd(
        file: Path = typer.Argument(..., help="An index raster (GeoTIFF) from ODM, Pix4D, DJI Terra, Sentinel-2 …"),
        index: str = typer.Option(..., "--index", help="Index name, e.g. ndvi (the product's name)."),
        survey: str = typer.Option(..., "--survey", help="Survey to register it in (created if missing)."),
        date: str = typer.Option(None, "--date", help="Acquisition date, YYYY-MM-DD (for a new survey)."),
        band: int = typer.Option(1, "--band", help="Band of the file holding the index."),
        scale: float = typer.Option(None, "--scale", help="value = stored × scale + offset (default: the file's)."),
        offset: float = typer.Option(None, "--offset", help="Added after scaling (default: the file's)."),
        as_json: bool = typer.Option(False, "--json", help="Print the product as JSON."),
    ) -> None:
        """Register an existing index raster for statistics, condition and change."""
        from belcheer.indices.imported import import_index

        product = import_index(_common.workspace(), file, index=index, survey=survey, date=date,
                               band=band, scale=scale, offset=offset)
        if as_json:
            _common.print_json(product.to_dict())
        else:
            _common.out.print(f"{product.survey}/{product.name}: {product.uri} (EPSG:{product.epsg})")


def print_calibration(summary: dict) -> None:
    """One line saying how the survey was calibrated, and its notes (CLI output of mosaic,
    indices and run)."""
    how = {"automatic": "calibrated automatically", "calibrate": "by `belcheer calibrate`",
           "pipeline": "by `belcheer run`", "python": "from the Python API"}.get(
        summary.get("source", ""), summary.get("source", ""))
    albedo = summary.get("albedos") or {}
    extra = f", panel {summary.get('panel_capture')} albedo " + \
        ",".join(f"{v:g}" for v in dict.fromkeys(albedo.values())) if albedo else ""
    _common.out.print(f"calibration: {summary.get('method')} ({how}{extra})")
    for n in summary.get("notes") or []:
        _common.out.print(f"  [yellow]note:[/] {n['text'] if isinstance(n, dict) else n}")

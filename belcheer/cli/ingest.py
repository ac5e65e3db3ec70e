"""``belcheer ingest FRAMES_DIR``: read frame headers into a survey manifest and report problems."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from belcheer.cli import _common
from belcheer.errors import NoUsableFramesError


def _print_table(summary: dict) -> None:
    t = Table(title=f"survey {summary['survey']}", show_header=False, box=None)
    bands = ", ".join(f"{b['name']}" + (f" {b['center_nm']:.0f} nm" if b.get("center_nm") else "")
                      for b in summary["bands"])
    cams = ", ".join(f"{c['make']} {c['model']}".strip() for c in summary["cameras"]) or "—"
    gsd = f"{summary['gsd_m'] * 100:.1f} cm/px" if summary.get("gsd_m") else "—"
    rows = [
        ("frames / captures", f"{summary['frames']} / {summary['captures']} "
                              f"({summary['flight_captures']} usable for mapping)"),
        ("camera", cams), ("bands", bands or "—"),
        ("panel captures", ", ".join(summary["panel_captures"]) or "—"),
        ("GSD", gsd), ("height", f"{summary['height_m']} m" if summary.get("height_m") else "—"),
        ("CRS", f"EPSG:{summary['epsg']}" + (f" (UTM {summary['utm_zone']})" if summary.get("utm_zone") else "")),
        ("date", summary.get("date") or "—"),
        ("problems", f"{summary['problems']['errors']} errors, {summary['problems']['warnings']} warnings"),
    ]
    pos = summary.get("positions") or {}
    if pos.get("frames_with_both"):
        rows.append(("positions", ", ".join(f"{n} from {k.upper()}" for k, n in pos["source"].items())
                     + f" (EXIF vs XMP up to {pos['disagreement_m_max']:.2f} m apart)"))
    for k, v in rows:
        t.add_row(f"[bold]{k}[/]", str(v))
    _common.out.print(t)
    counts = summary["problems"]["counts"]
    if counts:
        p = Table("problem", "count", "example", title="validation")
        for code, n in counts.items():
            ex = next(x for x in summary["problems"]["list"] if x["code"] == code)
            p.add_row(code, str(n), ex["message"])
        _common.out.print(p)


def register(app: typer.Typer) -> None:
    """Add ``ingest`` to the main app."""

    @app.command("ingest")
    def ingest_cmd(
        frames_dir: Path = typer.Argument(..., help="Folder of drone frames (searched recursively)."),
        survey: str = typer.Option(None, "--survey", help="Survey name (default: the folder's name)."),
        epsg: int = typer.Option(None, "--epsg", help="Projected CRS for footprints (default: the UTM zone of the frames)."),
        panel: list[str] = typer.Option(None, "--panel", help="Capture id of a reflectance-panel shot (repeatable), e.g. IMG_0000."),
        replace: bool = typer.Option(False, "--replace", help="Overwrite a survey of the same name."),
        as_json: bool = typer.Option(False, "--json", help="Print the survey summary as JSON."),
        no_quality: bool = typer.Option(False, "--no-quality", help="Skip the pixel checks (blur, black, saturated): headers only."),
        position: str = typer.Option("auto", "--position", help="Frame positions from exif or xmp (DJI); auto: XMP unless EXIF differs by > 1 m (PPK-corrected)."),
    ) -> None:
        """Read frame headers (EXIF/XMP) into a survey manifest, with a validation report."""
        from belcheer.ingest import ingest, summarize

        ws = _common.workspace()
        try:
            with _common.progress_bar(not as_json) as cb:
                s = ingest(ws, frames_dir, survey=survey, epsg=epsg, panels=tuple(panel or ()),
                           replace=replace, progress=cb, quality=not no_quality, position=position)
        except NoUsableFramesError as exc:
            summary = getattr(exc, "summary", None)
            if summary is not None:
                _common.print_json(summary) if as_json else _print_table(summary)
            raise
        summary = summarize(s)
        if as_json:
            _common.print_json(summary)
        else:
            _print_table(summary)

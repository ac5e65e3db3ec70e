"""``belcheer simulate OUT_DIR``: write a synthetic survey (frames + ground truth)."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import typer
from rich.table import Table

from belcheer.cli import _common
from belcheer.errors import ConfigError


def register(app: typer.Typer) -> None:
    """Add ``simulate`` to the main app."""

    @app.command("simulate")
    def simulate_cmd(
        out_dir: Path = typer.Argument(..., help="Folder to write frames/ and truth/ into."),
        camera: str = typer.Option("rgb", "--camera", help="rgb (DJI FC6310 JPEG, 1.7 MP), rgb-12mp (the same at 12 MP), rededge (MicaSense RedEdge-M 5-band TIFF), p4m (DJI P4 Multispectral) or m3m (DJI Mavic 3M)."),
        seed: int = typer.Option(0, "--seed", help="Random seed of the flight (and of the scene unless --scene-seed)."),
        area_ha: float = typer.Option(None, "--area-ha", help="Flown area, hectares (default 3 RGB, 2 RedEdge)."),
        date: str = typer.Option(None, "--date", help="Survey date YYYY-MM-DD (default 2026-07-15): sets the season."),
        scene_seed: int = typer.Option(None, "--scene-seed", help="Seed of the ground (same value = same place)."),
        degradation: float = typer.Option(0.0, "--degradation", help="0…1: lower vegetation cover in the degraded parcels."),
        altitude_m: float = typer.Option(None, "--altitude", help="Flight height above ground, m (default 100 RGB, 120 RedEdge)."),
        gnss: str = typer.Option("autonomous", "--gnss", help="autonomous (GPS, σ 2 m per fix) or rtk (σ 2 cm, offset by an unsurveyed base)."),
        lake_fraction: float = typer.Option(0.0, "--lake-fraction", help="0…0.6: a textureless lake under about this share of the frames (truth: poses.csv over_water)."),
        texture: str = typer.Option("normal", "--texture", help="normal, or low (uniform steppe grass: few features to match)."),
        platform: str = typer.Option("multirotor", "--platform", help="multirotor (gimbal, DJI XMP) or fixed-wing (16 m/s, no gimbal, banking in turns, EXIF GPS only)."),
        blocks: int = typer.Option(1, "--blocks", help="1, or 2: two blocks of lines that share no overlap."),
        vignetting: float = typer.Option(None, "--vignetting", help="Lens fall-off at the image corners, 0…0.8 (default: the camera's own)."),
        exposure_jitter: float = typer.Option(0.0, "--exposure-jitter", help="RGB: σ of each frame's exposure drift, stops (EV); 0 = all frames alike."),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """Simulate a drone survey over Mongolian steppe with known ground truth."""
        from belcheer.simulate import simulate

        if camera not in ("rgb", "rgb-12mp", "rededge", "p4m", "m3m"):
            raise ConfigError(f"--camera {camera!r}: choose rgb, rgb-12mp, rededge, p4m or m3m")
        day = None
        if date:
            try:
                day = _dt.date.fromisoformat(date)
            except ValueError as exc:
                raise ConfigError(f"--date {date!r} is not YYYY-MM-DD") from exc
        with _common.progress_bar(not as_json) as cb:
            sim = simulate(out_dir, camera=camera, seed=seed, area_ha=area_ha, date=day,  # type: ignore[arg-type]
                           scene_seed=scene_seed, degradation=degradation, progress=cb,
                           altitude_m=altitude_m, gnss=gnss,  # type: ignore[arg-type]
                           lake_fraction=lake_fraction, texture=texture,  # type: ignore[arg-type]
                           platform=platform, blocks=blocks,  # type: ignore[arg-type]
                           vignetting=vignetting, exposure_jitter=exposure_jitter)
        if as_json:
            _common.print_json(sim.to_dict())
            return
        t = Table(title=f"simulated survey in {sim.out_dir}", show_header=False, box=None)
        for k, v in (("camera", sim.camera), ("captures", sim.n_captures),
                     ("place", f"{sim.soum} сум, {sim.aimag} аймаг ({sim.soum_en}, {sim.aimag_en})"),
                     ("CRS", f"EPSG:{sim.epsg}"), ("GSD", f"{sim.gsd_m * 100:.1f} cm/px"),
                     ("date", sim.date), ("platform", sim.platform), ("frames", sim.frames_dir),
                     ("truth", sim.truth_dir)):
            t.add_row(f"[bold]{k}[/]", str(v))
        _common.out.print(t)

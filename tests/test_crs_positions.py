"""CRS hints that land parcels in the right place, and the choice between EXIF GPS and DJI XMP
positions when they disagree."""

from __future__ import annotations

import re
from pathlib import Path

import geopandas as gpd
import pytest
from test_zoning_support import scene_parcels

from belcheer.errors import CRSError
from belcheer.zoning import read_parcels

#: Bayangol soum, Selenge (the simulator's place), in UTM 48N metres
ORIGIN = (580_000.0, 5_421_000.0)


def _hinted_epsgs(message: str) -> list[int]:
    """EPSG codes the hint (the part after "; the …") offers."""
    hint = message.split("; the ", 1)[1] if "; the " in message else ""
    return [int(v) for v in re.findall(r"--crs EPSG:(\d+)", hint)]


def _offset_m(frame: gpd.GeoDataFrame, truth: gpd.GeoDataFrame) -> float:
    a = frame.geometry.to_crs(32648).centroid.reset_index(drop=True)
    return float(a.distance(truth.to_crs(32648).centroid.reset_index(drop=True)).max())


def test_gk_without_zone_prefix_hint_lands_in_place(tmp_path: Path) -> None:
    truth = scene_parcels(ORIGIN, n=2).to_crs(4326)
    gk = truth.to_crs(2508)  # Pulkovo 1942 / Gauss-Krüger CM 105E: zone 18 without the "18" prefix
    assert 5e5 < gk.total_bounds[0] < 7e5
    # declared as the prefixed zone (what a land office's file often says): refused …
    src = tmp_path / "gk.gpkg"
    gk.set_crs(28418, allow_override=True).to_file(src)
    with pytest.raises(CRSError) as err:
        read_parcels(src)
    hinted = _hinted_epsgs(str(err.value))
    # … and the hint names only the CRS that puts the parcels where they are
    assert hinted == [2508], str(err.value)
    placed = read_parcels(src, crs=f"EPSG:{hinted[0]}").frame
    assert _offset_m(placed, truth) < 0.01
    # UTM, which the old hint offered, would have put them ≈ 2 km off
    wrong = read_parcels(src, crs="EPSG:32648").frame
    assert 1500 < _offset_m(wrong, truth) < 3000

    # no CRS at all: both prefix-free families are named, with the difference between them
    csv = tmp_path / "gk.csv"
    csv.write_text("id,wkt\n" + "\n".join(f'{i},"{g.wkt}"' for i, g in enumerate(gk.geometry)))
    with pytest.raises(CRSError, match="about 2 km") as err:
        read_parcels(csv)
    assert "EPSG:2505…2510" in str(err.value) and "EPSG:32645…32650" in str(err.value)
    assert _offset_m(read_parcels(csv, crs=2508).frame, truth) < 0.01

    # zone-prefixed eastings keep their exact hint
    pref = tmp_path / "gk_prefixed.csv"
    pref.write_text("id,wkt\n" + "\n".join(f'{i},"{g.wkt}"' for i, g in enumerate(truth.to_crs(28418).geometry)))
    with pytest.raises(CRSError) as err:
        read_parcels(pref)
    assert _hinted_epsgs(str(err.value)) == [28418]
    assert _offset_m(read_parcels(pref, crs=28418).frame, truth) < 0.01


def _dji_frames(folder: Path, n: int, north_m: float) -> list[tuple[float, float]]:
    """``n`` DJI JPEGs whose EXIF GPS lies ``north_m`` north of the XMP position (as after a
    PPK correction that rewrote EXIF only); returns the XMP (lat, lon) of each."""
    import datetime as dt

    import numpy as np

    from belcheer.simulate.cameras import CAMERAS
    from belcheer.simulate.metadata import dji_xmp, write_dji_jpeg

    cam = CAMERAS["rgb"]
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        lat, lon = 48.942 + i * 0.0003, 106.16
        when = dt.datetime(2026, 7, 15, 11, 0, 0) + dt.timedelta(seconds=3 * i)
        xmp = dji_xmp(cam, when, 1025.0, 100.0, 0.0, -90.0, 0.0, (0.0, 0.0, 0.0), lat, lon)
        rgb = rng.integers(0, 255, (cam.height_px, cam.width_px, 3), dtype=np.uint8)
        write_dji_jpeg(folder / f"DJI_{i + 1:04d}.JPG", rgb, cam, f"DJI_{i + 1:04d}", when,
                       lat + north_m / 111_195.0, lon, 1025.0, xmp)
        out.append((lat, lon))
    return out


def test_exif_and_xmp_disagreeing_positions_are_reported_and_chosen(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from belcheer import open_workspace
    from belcheer.cli import main
    from belcheer.ingest.frames import _distance_m, choose_position

    xmp_pos = _dji_frames(tmp_path / "frames", 3, north_m=3.0)
    ws_dir = tmp_path / "ws"
    assert main(["-w", str(ws_dir), "ingest", str(tmp_path / "frames"), "--survey", "a", "--json",
                 "--no-quality"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["positions"]["source"] == {"exif": 3}
    assert 2.5 < rep["positions"]["disagreement_m_max"] < 3.5
    assert rep["problems"]["counts"]["position_choice"] == 3
    msg = next(p["message"] for p in rep["problems"]["list"] if p["code"] == "position_choice")
    assert "using EXIF" in msg and "PPK" in msg and "--position xmp" in msg
    frames = open_workspace(ws_dir).survey("a").frames
    for f, (lat, lon) in zip(sorted(frames, key=lambda f: f.path.name), xmp_pos, strict=True):
        assert _distance_m((f.pose.lat, f.pose.lon), (lat + 3.0 / 111_195.0, lon)) < 0.5  # EXIF
    # --position xmp overrides: the frames sit at the XMP positions, and the report says so
    assert main(["-w", str(ws_dir), "ingest", str(tmp_path / "frames"), "--survey", "a", "--json",
                 "--no-quality", "--replace", "--position", "xmp"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["positions"]["source"] == {"xmp": 3}
    assert "--position xmp" in next(p["message"] for p in rep["problems"]["list"] if p["code"] == "position_choice")
    frames = open_workspace(ws_dir).survey("a").frames
    for f, (lat, lon) in zip(sorted(frames, key=lambda f: f.path.name), xmp_pos, strict=True):
        assert _distance_m((f.pose.lat, f.pose.lon), (lat, lon)) < 0.01
    assert main(["-w", str(ws_dir), "ingest", str(tmp_path / "frames"), "--survey", "b",
                 "--position", "gps"]) != 0
    # within a metre (EXIF's rounding): the XMP copy, no warning
    a, b = (48.942, 106.16), (48.942 + 0.4 / 111_195.0, 106.16)
    pos, src, dist, _ = choose_position(a, b)
    assert src == "xmp" and pos == b and dist == pytest.approx(0.4, abs=0.01)
    assert choose_position(a, None)[1] == "exif" and choose_position(None, None)[0] is None

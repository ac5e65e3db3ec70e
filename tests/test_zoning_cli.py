"""The zoning commands end to end through ``belcheer.cli.main``."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from test_zoning_support import add_survey, render_ndvi, scene_parcels

from belcheer import open_workspace
from belcheer.cli import main
from belcheer.errors import CRSError


def test_cli_parcels_stats_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws_dir = tmp_path / "ws"
    parcels = scene_parcels((600_000.0, 4_850_000.0), n=3)
    src = tmp_path / "талбай.gpkg"
    parcels.to_file(src)
    assert main(["-w", str(ws_dir), "parcels", "import", str(src), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["feature_count"] == 3 and rep["version"] == 1 and rep["source_crs"] == "EPSG:32648"
    # a CSV without CRS: exit code of CRSError and a message naming --crs
    csv = tmp_path / "nocrs.csv"
    csv.write_text("id,wkt\n1,\"" + parcels.geometry.iloc[0].wkt + "\"\n")
    assert main(["-w", str(ws_dir), "parcels", "import", str(csv)]) == CRSError.exit_code
    assert "--crs" in capsys.readouterr().err
    assert main(["-w", str(ws_dir), "parcels", "list", "--json"]) == 0
    versions = json.loads(capsys.readouterr().out)
    assert [v["version"] for v in versions] == [1] and versions[0]["valid_to"] is None

    values = dict(zip(parcels["parcel_id"], [0.45, 0.30, 0.20], strict=True))
    arr, t = render_ndvi(parcels, values)
    add_survey(open_workspace(ws_dir), "s1", "2026-07-01", arr, t)
    assert main(["-w", str(ws_dir), "stats", "s1", "--index", "ndvi", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    got = {r["parcel_id"]: r["mean"] for r in rows}
    assert got == pytest.approx(values, abs=0.01)
    assert rows[0]["name"] == "Бэлчээр №1 — Хөх нуур"

    out = tmp_path / "report.csv"
    assert main(["-w", str(ws_dir), "report", "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {r["parcel_id"] for r in report} == {"P01", "P02", "P03"}
    table = pd.read_csv(out)
    assert table.loc[table.parcel_id == "P01", "name"].iloc[0] == "Бэлчээр №1 — Хөх нуур"
    assert "balance_su" in table.columns and "condition_class" in table.columns


def test_cli_condition_change_zones_rollup(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import geopandas as gpd
    import shapely

    ws_dir = tmp_path / "ws"
    parcels = scene_parcels((600_000.0, 4_850_000.0), n=3)
    parcels["land_use"] = ["cropland", "pasture", "pasture"]
    parcels["soum"] = "Цогт-Цэций"
    src = tmp_path / "p.gpkg"
    parcels.to_file(src)
    assert main(["-w", str(ws_dir), "parcels", "import", str(src)]) == 0
    ws = open_workspace(ws_dir)
    a, t = render_ndvi(parcels, {"P01": 0.5, "P02": 0.36, "P03": 0.3}, gradient=0.1)
    b, _ = render_ndvi(parcels, {"P01": 0.5, "P02": 0.20, "P03": 0.3}, gradient=0.1)
    add_survey(ws, "a", "2025-07-01", a, t)
    add_survey(ws, "b", "2026-07-01", b, t)
    capsys.readouterr()
    assert main(["-w", str(ws_dir), "stats", "b"]) == 0
    assert main(["-w", str(ws_dir), "condition", "b", "--json"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{"):])["kind"] == "condition"
    assert main(["-w", str(ws_dir), "change", "a", "b", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert [r["parcel_id"] for r in res["alerts"]] == ["P02"]
    rx = tmp_path / "rx.zip"
    assert main(["-w", str(ws_dir), "zones", "b", "--classes", "3", "--out", str(rx), "--json"]) == 0
    zones = json.loads(capsys.readouterr().out)["zones"]
    assert {z["parcel_id"] for z in zones} == {"P01"} and sorted(z["zone"] for z in zones) == [1, 2, 3]
    assert rx.exists()
    box = gpd.GeoDataFrame({"name": ["Цогт-Цэций"]},
                           geometry=[shapely.box(*parcels.total_bounds).buffer(500)], crs=32648).to_crs(4326)
    bpath = tmp_path / "soums.geojson"
    box.to_file(bpath)
    assert main(["-w", str(ws_dir), "rollup", str(bpath), "--level", "soum", "--json"]) == 0
    roll = json.loads(capsys.readouterr().out)
    assert roll[0]["soum"] == "Цогт-Цэций" and roll[0]["parcels"] == 3

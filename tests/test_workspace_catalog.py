"""The catalog chosen by URL (``BELCHEER_CATALOG``): a workspace on a real PostGIS server runs the
CLI and the API as on SQLite, and a bad URL or an unreachable database is a clear ConfigError
with the password masked, before anything is written."""

from __future__ import annotations

import json
import re
import socket

import morecantile
import pytest
from fastapi.testclient import TestClient
from test_api_helpers import HIDDEN, SURVEY, build_workspace, token
from test_ingest import _flight

from belcheer.api import create_app
from belcheer.catalog import SQLiteCatalog
from belcheer.catalog_postgis import SCHEMA_VERSION, PostGISCatalog
from belcheer.catalog_url import mask_url, open_catalog, sqlite_path
from belcheer.cli import main
from belcheer.config import Settings
from belcheer.errors import ConfigError, ConflictError
from belcheer.workspace import open_workspace

SECRET = "hunter2-Тайлбар"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on leaving: nothing listens there


def test_mask_url_hides_only_the_password():
    assert mask_url("postgresql://belcheer:s3cr%40t@db.aimag.mn:6543/catalog?sslmode=require") == \
        "postgresql://belcheer:***@db.aimag.mn:6543/catalog?sslmode=require"
    assert mask_url("postgresql://db.aimag.mn/catalog") == "postgresql://db.aimag.mn/catalog"
    assert mask_url("sqlite:///srv/ws/catalog.sqlite") == "sqlite:///srv/ws/catalog.sqlite"


def test_default_and_sqlite_urls(tmp_path, monkeypatch):
    monkeypatch.delenv("BELCHEER_CATALOG", raising=False)
    ws = open_workspace(tmp_path / "ws")
    assert isinstance(ws.catalog, SQLiteCatalog) and ws.catalog.path == tmp_path / "ws" / "catalog.sqlite"
    elsewhere = tmp_path / "db" / "shared.sqlite"
    monkeypatch.setenv("BELCHEER_CATALOG", f"sqlite:///{elsewhere}")
    ws2 = open_workspace(tmp_path / "ws2", Settings())
    assert ws2.catalog.path == elsewhere and elsewhere.is_file()
    assert not (tmp_path / "ws2" / "catalog.sqlite").exists()
    assert str(sqlite_path("sqlite:////abs/c.sqlite", tmp_path)) == "/abs/c.sqlite"
    assert sqlite_path("sqlite://rel/c.sqlite", tmp_path) == tmp_path / "rel" / "c.sqlite"
    assert sqlite_path("sqlite://", tmp_path) == tmp_path / "catalog.sqlite"


@pytest.mark.parametrize("url", [
    f"mysql://root:{SECRET}@127.0.0.1:3306/belcheer",
    f"postgresql+asyncpg://root:{SECRET}@127.0.0.1/belcheer",
    "catalog.sqlite",
])
def test_unknown_scheme_is_named_masked_and_writes_nothing(tmp_path, url):
    with pytest.raises(ConfigError) as e:
        open_workspace(tmp_path / "ws", catalog=url)
    msg = str(e.value)
    assert "is not a catalog URL" in msg and "sqlite:///PATH" in msg and "postgresql://" in msg
    assert SECRET not in msg and (("***" in msg) == ("@" in url))
    assert not (tmp_path / "ws").exists()


def test_unreachable_server_is_named_masked_and_writes_nothing(tmp_path):
    port = _closed_port()
    url = f"postgresql://belcheer:{SECRET}@127.0.0.1:{port}/catalog"
    with pytest.raises(ConfigError) as e:
        open_workspace(tmp_path / "ws", catalog=url)
    msg = str(e.value)
    assert f"cannot reach the catalog database postgresql://belcheer:***@127.0.0.1:{port}/catalog" in msg
    assert SECRET not in msg and "BELCHEER_CATALOG" in msg
    assert not (tmp_path / "ws").exists()


def test_wrong_password_and_missing_database_on_a_real_server(postgres_server, tmp_path):
    bad = postgres_server.url("postgres", password=SECRET)
    with pytest.raises(ConfigError, match="password authentication failed") as e:
        open_workspace(tmp_path / "ws", catalog=bad)
    assert SECRET not in str(e.value) and ":***@127.0.0.1:" in str(e.value)
    with pytest.raises(ConfigError, match='database "no_such_db" does not exist'):
        open_workspace(tmp_path / "ws", catalog=postgres_server.url("no_such_db"))
    assert not (tmp_path / "ws").exists()


def test_cli_with_an_unreachable_catalog_exits_2_with_the_url_masked(tmp_path, monkeypatch, capsys):
    port = _closed_port()
    monkeypatch.setenv("BELCHEER_CATALOG", f"postgresql://u:{SECRET}@127.0.0.1:{port}/x")
    rc = main(["--workspace", str(tmp_path / "ws"), "ingest", str(_flight(tmp_path / "f", n=2))])
    err = capsys.readouterr().err
    assert rc == ConfigError.exit_code == 2
    assert f"u:***@127.0.0.1:{port}/x" in err and SECRET not in err and "Traceback" not in err
    assert not (tmp_path / "ws").exists()


def test_migrations_are_versioned_and_refuse_a_newer_schema(postgres_server, postgres_url, tmp_path):
    cat = open_catalog(postgres_url, tmp_path)
    assert isinstance(cat, PostGISCatalog) and cat.schema_version() == SCHEMA_VERSION == 1
    db = postgres_url.rsplit("/", 1)[1]
    assert postgres_server.psql("SELECT version FROM schema_version", db).split() == ["1"]
    # the geometry type is there for the parcels to move into
    assert postgres_server.psql("SELECT 'POINT(106.9 47.9)'::geometry IS NOT NULL", db).strip() == "t"
    open_catalog(postgres_url, tmp_path).close()  # reopening applies nothing twice
    assert postgres_server.psql("SELECT count(*) FROM schema_version", db).strip() == "1"
    postgres_server.psql("INSERT INTO schema_version (version) VALUES (99)", db)
    with pytest.raises(ConfigError, match=r"schema version 99, newer than this belcheer knows \(1\)"):
        open_catalog(postgres_url, tmp_path)
    cat.close()


def test_a_database_without_postgis_that_the_user_cannot_extend_is_refused(postgres_server, tmp_path):
    postgres_server.psql("CREATE ROLE plain LOGIN PASSWORD 'plain-pw'")
    postgres_server.psql("CREATE DATABASE bare OWNER plain TEMPLATE template0")
    url = f"postgresql://plain:plain-pw@127.0.0.1:{postgres_server.port}/bare"
    with pytest.raises(ConfigError, match="(?s)has no PostGIS extension.*CREATE EXTENSION postgis") as e:
        open_catalog(url, tmp_path)
    assert "plain-pw" not in str(e.value)
    # the failed migration left nothing behind
    assert postgres_server.psql("SELECT count(*) FROM pg_tables WHERE schemaname='public'", "bare").strip() == "0"


def test_cli_ingest_into_a_postgis_catalog(postgres_url, tmp_path, monkeypatch, capsys):
    """BELCHEER_CATALOG alone moves the catalog: the CLI ingests a generated flight into PostGIS."""
    monkeypatch.setenv("BELCHEER_CATALOG", postgres_url)
    ws_root = tmp_path / "ws"
    folder = _flight(tmp_path / "Сэлэнгэ-2026-07", n=3)
    assert main(["--workspace", str(ws_root), "ingest", str(folder), "--json", "--no-quality"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["survey"] == "Сэлэнгэ-2026-07" and out["captures"] == 3 and out["epsg"] == 32648
    assert not (ws_root / "catalog.sqlite").exists()
    rec = PostGISCatalog(postgres_url).survey("Сэлэнгэ-2026-07")
    assert rec.epsg == 32648 and rec.date == "2026-07-01" and rec.summary["frames"] == 3
    ws = open_workspace(ws_root, Settings())
    assert isinstance(ws.catalog, PostGISCatalog)
    back = ws.survey("Сэлэнгэ-2026-07")
    assert [c.id for c in back.captures] == ["DJI_0000", "DJI_0001", "DJI_0002"]
    assert back.captures[0].pose.alt_rel_m == pytest.approx(80.0)
    # the same name again is a conflict, from the server's catalog
    assert main(["--workspace", str(ws_root), "ingest", str(folder), "--no-quality"]) == ConflictError.exit_code
    assert "already exists" in capsys.readouterr().err


def _api_view(root, **kw) -> dict:
    ws, settings = build_workspace(root, **kw)
    with TestClient(create_app(settings)) as client:
        officer = token(client, "officer")
        surveys = client.get("/surveys", headers=officer).json()
        public = client.get("/surveys").json()
        stats = client.get("/parcels/P1/stats", headers=officer).json()
        summary = client.get(f"/surveys/{SURVEY}/summary", headers=officer).json()
        ndvi = ws.catalog.product(SURVEY, "ndvi").id
        tilejson = client.get(f"/tiles/{ndvi}/tilejson.json", headers=officer).json()
        lon, lat, zoom = tilejson["center"]
        t = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, int(zoom))
        tile = client.get(f"/tiles/{ndvi}/{t.z}/{t.x}/{t.y}.png", headers=officer)
    # products list by registration second, then name; the two builds may straddle a second
    for doc in (*surveys, *public):
        doc["products"] = sorted(doc["products"], key=lambda p: p["name"])
    text = json.dumps([surveys, public, stats, summary, tilejson], ensure_ascii=False, sort_keys=True)
    # product ids are random per workspace and paths name its folder: compare what they point at
    ids = {p.id: f"<{p.survey}/{p.name}>" for p in ws.catalog.products()}
    for pid, label in ids.items():
        text = text.replace(pid, label)
    text = text.replace(str(root), "<ws>")
    # registration times differ by the seconds between the two builds; their form must not
    text, n = re.subn(r'"created": "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00"', '"created": "<utc>"', text)
    assert n >= 3
    assert tile.status_code == 200, tile.text
    return {"json": json.loads(text), "tile": tile.content, "surveys": surveys}


def test_api_over_postgis_answers_as_over_sqlite(postgres_url, tmp_path):
    embedded = _api_view(tmp_path / "sqlite-ws")
    server = _api_view(tmp_path / "pg-ws", catalog=postgres_url)
    assert [s["name"] for s in server["surveys"]] == [SURVEY, HIDDEN]
    assert server["json"] == embedded["json"]
    stats, summary = server["json"][2], server["json"][3]
    # P1's NDVI series over both surveys (the hidden one built 0.05 higher), from the server's stats
    assert [round(r["mean"] - stats["series"][0]["mean"], 6) for r in stats["series"]] == [0.0, 0.05]
    assert stats["series"][0]["count"] == 32400.0 and stats["latest"]["survey"] == HIDDEN
    assert summary["parcels"] == 3 and summary["condition_classes"] == {"1": 1, "2": 1, "4": 1}
    assert re.search(r"<Сэлэнгэ-2026-07/ndvi>", json.dumps(server["json"], ensure_ascii=False))
    assert server["tile"] == embedded["tile"] and server["tile"][:4] == b"\x89PNG"


def test_a_dropped_connection_is_replaced(postgres_server, postgres_url, tmp_path):
    """An API process outlives a server restart or an idle-connection cut: the next call reconnects."""
    cat = open_catalog(postgres_url, tmp_path)
    cat.add_survey("s", tmp_path / "m", 32648, None, {})
    db = postgres_url.rsplit("/", 1)[1]
    for call in (lambda: cat.surveys(), lambda: cat.add_job("pipeline", {"n": 1})):
        killed = postgres_server.psql(
            f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            f"WHERE datname='{db}' AND application_name='belcheer'")
        assert killed.strip() == "1"
        call()
    assert [s.name for s in cat.surveys()] == ["s"] and [j.params["n"] for j in cat.jobs()] == [1]
    cat.close()

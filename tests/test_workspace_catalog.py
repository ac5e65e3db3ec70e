"""The catalog chosen by URL (``BELCHEER_CATALOG``): a workspace on a real PostGIS server runs the
CLI and the API as on SQLite, and a bad URL or an unreachable database is a clear ConfigError
with the password masked, before anything is written."""

from __future__ import annotations

import json
import re
import socket

import morecantile
import numpy as np
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
from belcheer.errors import ConfigError, ConflictError, InputError
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
    # libpq's other places for a password
    assert mask_url("postgresql://u@db/c?sslmode=require&password=s3cr3t") == \
        "postgresql://u@db/c?sslmode=require&password=***"
    assert mask_url("host=db user=u password='s3 cr3t' dbname=c") == "host=db user=u password=*** dbname=c"


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


def test_an_unwritable_sqlite_catalog_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match=r"cannot open the SQLite catalog .*file/c\.sqlite") as e:
        open_workspace(tmp_path / "ws", catalog=f"sqlite:///{blocker}/c.sqlite")
    assert "writable" in str(e.value)
    assert not (tmp_path / "ws").exists()


@pytest.mark.parametrize("url", [
    f"mysql://root:{SECRET}@127.0.0.1:3306/belcheer",
    f"postgresql+asyncpg://root:{SECRET}@127.0.0.1/belcheer",
    "catalog.sqlite",
    f"host=127.0.0.1 user=belcheer password={SECRET} dbname=belcheer",
])
def test_unknown_scheme_is_named_masked_and_writes_nothing(tmp_path, url):
    with pytest.raises(ConfigError) as e:
        open_workspace(tmp_path / "ws", catalog=url)
    msg = str(e.value)
    assert "is not a catalog URL" in msg and "sqlite:///PATH" in msg and "postgresql://" in msg
    assert SECRET not in msg and (("***" in msg) == (SECRET in url))
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
    with pytest.raises(ConfigError) as e:  # the password as a libpq query parameter
        open_workspace(tmp_path / "ws", catalog=f"postgresql://belcheer@127.0.0.1:{port}/c?password={SECRET}")
    assert SECRET not in str(e.value) and "password=***" in str(e.value)
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
    assert isinstance(cat, PostGISCatalog) and cat.schema_version() == SCHEMA_VERSION == 4
    db = postgres_url.rsplit("/", 1)[1]
    assert postgres_server.psql("SELECT version FROM schema_version ORDER BY 1", db).split() == ["1", "2", "3", "4"]
    # the parcels' geometry column is PostGIS, EPSG:4326, with a spatial index
    assert postgres_server.psql("SELECT type, srid FROM geometry_columns WHERE f_table_name='parcels'",
                                db).strip() == "GEOMETRY|4326"
    assert "USING gist" in postgres_server.psql("SELECT indexdef FROM pg_indexes WHERE indexname='parcels_geom'", db)
    open_catalog(postgres_url, tmp_path).close()  # reopening applies nothing twice
    assert postgres_server.psql("SELECT count(*) FROM schema_version", db).strip() == "4"
    postgres_server.psql("INSERT INTO schema_version (version) VALUES (99)", db)
    with pytest.raises(ConfigError, match=r"schema version 99, newer than this belcheer knows \(4\)"):
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
    back = ws.load_survey("Сэлэнгэ-2026-07")
    assert [c.id for c in back.captures] == ["DJI_0000", "DJI_0001", "DJI_0002"]
    assert back.captures[0].pose.alt_rel_m == pytest.approx(80.0)
    # the same name again is a conflict, from the server's catalog
    assert main(["--workspace", str(ws_root), "ingest", str(folder), "--no-quality"]) == ConflictError.exit_code
    assert "already exists" in capsys.readouterr().err


def _api_view(root, **kw) -> dict:
    from belcheer.zoning import load_parcels, save_parcels

    ws, settings = build_workspace(root, **kw)
    # a second parcel version through the zoning stage: a GeoPackage, or PostGIS rows
    assert save_parcels(ws, load_parcels(ws), source="copy") == 2
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
        items = client.get("/collections/parcels/items", headers=officer).json()
        p3 = client.get("/collections/parcels/items/P3", headers=officer).json()
        # filtered in the store (bbox, text property, a page) and in the report (its columns)
        w, s_, e, n = load_parcels(ws).total_bounds
        west = f"{w},{s_},{(w + e) / 2 - 1e-4},{n}"
        items_bbox = client.get(f"/collections/parcels/items?bbox={west}", headers=officer).json()
        items_soum = client.get("/collections/parcels/items", params={"soum": "Батсүмбэр", "limit": 1, "offset": 1},
                                headers=officer).json()
        items_cond = client.get("/collections/parcels/items?condition_class=4", headers=officer).json()
    # products list by registration second, then name; the two builds may straddle a second
    for doc in (*surveys, *public):
        doc["products"] = sorted(doc["products"], key=lambda p: p["name"])
    text = json.dumps([surveys, public, stats, summary, tilejson, items, p3, items_bbox, items_soum, items_cond],
                      ensure_ascii=False, sort_keys=True)
    # product ids are random per workspace and paths name its folder: compare what they point at
    ids = {p.id: f"<{p.survey}/{p.name}>" for p in ws.catalog.products()}
    for pid, label in ids.items():
        text = text.replace(pid, label)
    text = text.replace(str(root), "<ws>")
    # registration times differ by the seconds between the two builds; their form must not
    text, n = re.subn(r'"created": "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00"', '"created": "<utc>"', text)
    assert n >= 3
    assert tile.status_code == 200, tile.text
    return {"json": json.loads(text), "tile": tile.content, "surveys": surveys,
            "parcels_at": str(ws.catalog.current_parcel_version().path)}


def test_api_over_postgis_answers_as_over_sqlite(postgres_url, tmp_path):
    embedded = _api_view(tmp_path / "sqlite-ws")
    server = _api_view(tmp_path / "pg-ws", catalog=postgres_url)
    assert [s["name"] for s in server["surveys"]] == [SURVEY, HIDDEN]
    assert server["parcels_at"] == "postgis:parcels/2" and embedded["parcels_at"].endswith("parcels-v2.gpkg")
    assert server["json"] == embedded["json"]
    stats, summary = server["json"][2], server["json"][3]
    # P1's NDVI series over both surveys (the hidden one built 0.05 higher), from the server's stats
    assert [round(r["mean"] - stats["series"][0]["mean"], 6) for r in stats["series"]] == [0.0, 0.05]
    assert stats["series"][0]["count"] == 32400.0 and stats["latest"]["survey"] == HIDDEN
    assert summary["parcels"] == 3 and summary["condition_classes"] == {"1": 1, "2": 1, "4": 1}
    items, p3 = server["json"][5], server["json"][6]
    assert sorted(f["id"] for f in items["features"]) == ["P1", "P2", "P3"]
    assert p3["properties"]["soum"] and p3["geometry"]["type"] == "Polygon"
    by_id = {f["id"]: f for f in items["features"]}
    assert p3 == {**by_id["P3"], "links": p3["links"]}  # one parcel read alone = its row of the report
    items_bbox, items_soum, items_cond = server["json"][7:10]
    assert [f["id"] for f in items_bbox["features"]] == ["P1", "P3"] and items_bbox["numberMatched"] == 2
    assert (items_soum["numberMatched"], items_soum["numberReturned"]) == (2, 1)
    assert [f["id"] for f in items_soum["features"]] == ["P2"] and items_soum["features"][0] == by_id["P2"]
    assert [link["rel"] for link in items_soum["links"]] == ["self", "prev"]
    assert items_bbox["features"] == [by_id["P1"], by_id["P3"]]
    assert [f["id"] for f in items_cond["features"]] == ["P3"]
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


def _parcel_layer():
    import geopandas as gpd
    import numpy as np
    from shapely.geometry import MultiPolygon, box
    from test_api_helpers import parcel_geoms

    frame = parcel_geoms()
    frame["note"] = ["өвөлжөө", None, "x"]
    frame["ndvi_hint"] = [0.25, np.nan, 0.5]
    frame["fenced"] = [True, False, True]
    x0, y0, x1, y1 = frame.geometry.iloc[2].bounds
    frame.loc[2, "geometry"] = MultiPolygon([box(x0, y0, (x0 + x1) / 2, y1),
                                             box((x0 + x1) / 2 + 1, y0, x1, y1)])
    return gpd.GeoDataFrame(frame, crs=frame.crs)


def test_parcel_layers_in_postgis_read_back_as_from_geopackage(postgres_server, postgres_url, tmp_path):
    from geopandas.testing import assert_geodataframe_equal

    from belcheer.zoning import load_parcels, save_parcels

    frame = _parcel_layer()
    loaded = {}
    for name, url in (("sqlite", None), ("postgresql", postgres_url)):
        ws = open_workspace(tmp_path / name, catalog=url)
        assert save_parcels(ws, frame, source="Төв.gpkg", user="officer") == 1
        assert save_parcels(ws, frame.iloc[:2], source="edit") == 2
        loaded[name] = (load_parcels(ws, 1), load_parcels(ws))
        versions = ws.catalog.parcel_versions()
        assert [(v.version, v.feature_count, v.source) for v in versions] == [(1, 3, "Төв.gpkg"), (2, 2, "edit")]
        assert [a["object"] for a in ws.catalog.audit_log()] == ["parcels-v1", "parcels-v2"]
    gpkgs = sorted(p.name for p in (tmp_path / "sqlite" / "parcels").iterdir())
    assert gpkgs == ["parcels-v1.gpkg", "parcels-v2.gpkg"]
    assert list((tmp_path / "postgresql" / "parcels").iterdir()) == []  # no file: rows in PostGIS
    for (s1, s2), (p1, p2) in [(loaded["sqlite"], loaded["postgresql"])]:
        assert len(p1) == 3 and len(p2) == 2 and p1.crs.to_epsg() == 4326
        assert p1.attrs["parcel_version"] == 1 and p2.attrs["parcel_version"] == 2
        assert list(p1.columns) == list(s1.columns)
        assert_geodataframe_equal(p1, s1, check_like=False)
        assert_geodataframe_equal(p2, s2)
        assert p1.loc[1, "note"] is s1.loc[1, "note"] or (np.isnan(p1.loc[1, "note"]) and np.isnan(s1.loc[1, "note"]))
        assert p1.loc[0, "note"] == "өвөлжөө" and np.isnan(p1.loc[1, "ndvi_hint"])
        assert p1["fenced"].tolist() == [True, False, True] and p1["sheep"].tolist() == [150, 150, 150]
        assert p1.geometry.iloc[2].geom_type == "MultiPolygon"
    db = postgres_url.rsplit("/", 1)[1]
    got = postgres_server.psql("SELECT version, count(*), min(ST_SRID(geom)), "
                               "round(sum(ST_Area(geom::geography))::numeric / 1e4, 2) "
                               "FROM parcels GROUP BY version ORDER BY version", db).split()
    area_v1 = round(float(frame.to_crs(32648).area.sum()) / 1e4, 2)
    assert got[0] == f"1|3|4326|{area_v1:.2f}" and got[1].startswith("2|2|4326|")


def test_replicas_starting_at_once_migrate_once(postgres_server, postgres_url, tmp_path):
    """Two API replicas opening a new database together: one applies the migrations, both work."""
    import threading

    opened, errors = [], []

    def start() -> None:
        try:
            opened.append(open_catalog(postgres_url, tmp_path))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(opened) == 4
    db = postgres_url.rsplit("/", 1)[1]
    assert postgres_server.psql("SELECT version FROM schema_version ORDER BY 1", db).split() == ["1", "2", "3", "4"]
    opened[0].add_survey("s", tmp_path / "m", 32648, None, {})
    assert [[s.name for s in c.surveys()] for c in opened] == [["s"]] * 4
    for c in opened:
        c.close()


def test_the_test_server_names_the_missing_debian_packages(monkeypatch, tmp_path):
    import pgserver

    monkeypatch.setattr(pgserver.lc, "PG_BIN", tmp_path / "no-postgres")
    with pytest.raises(RuntimeError, match=r"no-postgres/initdb is missing: install the Debian packages "
                                           r"postgresql-15 and postgresql-15-postgis-3"):
        pgserver.start()


def test_a_sqlite_catalog_from_before_the_job_queue_is_upgraded_in_place(tmp_path):
    """A soum laptop's catalog of schema version 1 (jobs without worker, heartbeat, attempts):
    opening it adds the columns, keeps its jobs, and the queue claims an old queued job."""
    import sqlite3

    path = tmp_path / "catalog.sqlite"
    SQLiteCatalog(path).close()
    con = sqlite3.connect(path)
    con.executescript("""
        DROP TABLE jobs;
        CREATE TABLE jobs (id TEXT PRIMARY KEY, kind TEXT NOT NULL, state TEXT NOT NULL,
            stage TEXT, progress REAL NOT NULL DEFAULT 0, message TEXT, params TEXT NOT NULL,
            result TEXT NOT NULL DEFAULT '{}', error TEXT, owner TEXT, created TEXT NOT NULL,
            updated TEXT NOT NULL);
        INSERT INTO jobs (id, kind, state, params, created, updated)
            VALUES ('old1', 'pipeline', 'queued', '{"survey": "s"}', '2026-06-01T00:00:00+00:00',
                    '2026-06-01T00:00:00+00:00');
        UPDATE meta SET value='1' WHERE key='schema_version';
    """)
    con.commit()
    con.close()
    cat = SQLiteCatalog(path)
    job = cat.job("old1")
    assert (job.state, job.params, job.worker, job.heartbeat, job.attempts) == ("queued", {"survey": "s"}, None, None, 0)
    got = cat.claim_job("w1", ["pipeline"], stale_after=60)
    assert (got.id, got.state, got.worker, got.attempts) == ("old1", "running", "w1", 1)
    con = sqlite3.connect(path)
    assert con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("2",)
    con.close()
    cat.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_parcel_queries_run_in_the_store_and_equal_a_python_filter(backend, request, tmp_path):
    """400 parcels in a grid, every seventh a ring: bbox (exact intersection, not envelopes), text-property filters and pages from the store equal
    geopandas filtering the whole layer, in layer order, with the right count."""
    import geopandas as gpd
    from shapely.geometry import Polygon, box

    from belcheer.zoning import parcel_columns, query_parcels, save_parcels

    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    ws = open_workspace(tmp_path / "ws", catalog=url)
    rows = []
    for k in range(400):
        x, y = 106.0 + (k % 20) * 0.01, 47.0 + (k // 20) * 0.01
        geom = box(x, y, x + 0.008, y + 0.008)
        if k % 7 == 0:  # a ring whose envelope covers the box corner but whose area does not
            geom = Polygon(geom.exterior.coords, [box(x + 0.001, y + 0.001, x + 0.007, y + 0.007).exterior.coords])
        rows.append({"parcel_id": f"П-{k:03d}", "soum": ["Эрдэнэ", "Баян", "O'Brien"][k % 3],
                     "land_use": "pasture" if k % 4 else "cropland", "sheep": k, "geometry": geom})
    frame = gpd.GeoDataFrame(rows, crs=4326)
    save_parcels(ws, frame, source="grid")
    cols = parcel_columns(ws)
    assert cols["soum"] in ("object", "str") and cols["sheep"] == "int64"
    q = (106.0505, 47.0505, 106.0805, 47.1005)
    want = frame[frame.intersects(box(*q))]
    page, n = query_parcels(ws, bbox=q)
    assert n == len(want) and page["parcel_id"].tolist() == want["parcel_id"].tolist()
    # a box inside a ring's hole hits nothing, though an envelope test would count the ring
    hole = (106.053, 47.053, 106.054, 47.054)  # inside parcel 105 (a ring: 105 % 7 == 0)
    assert frame.envelope.intersects(box(*hole)).sum() == 1
    assert query_parcels(ws, bbox=hole)[1] == 0
    for where in ({"soum": "Баян"}, {"soum": "O'Brien", "land_use": "cropland"}):
        sel = frame
        for key, value in where.items():
            sel = sel[sel[key] == value]
        page, n = query_parcels(ws, where=where, offset=5, limit=7)
        assert n == len(sel) and page["parcel_id"].tolist() == sel["parcel_id"].tolist()[5:12]
    page, n = query_parcels(ws, bbox=q, where={"land_use": "cropland"}, offset=1000, limit=10)
    assert n == len(want[want.land_use == "cropland"]) > 0 and page.empty
    page, _ = query_parcels(ws, where={"parcel_id": "П-123"})
    assert page["sheep"].tolist() == [123] and page.geometry.iloc[0].equals(frame.geometry.iloc[123])
    with pytest.raises(InputError, match="unknown parcel property 'colour'"):
        query_parcels(ws, where={"colour": "green"})

"""API tests on a small synthetic workspace: tiles, STAC, OGC API – Features, statistics, exports,
users and roles, bad input."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pyogrio
import pytest
import rasterio
from fastapi.testclient import TestClient
from PIL import Image
from test_api_helpers import (
    HIDDEN,
    PARCELS,
    SURVEY,
    build_workspace,
    ndvi_array,
    parcel_geoms,
    token,
)

from belcheer.api import create_app


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("api") / "ws"
    ws, settings = build_workspace(root)
    with TestClient(create_app(settings)) as client:
        yield ws, client


@pytest.fixture(scope="module")
def client(env):
    return env[1]


@pytest.fixture(scope="module")
def ws(env):
    return env[0]


def pid(ws, name, survey=SURVEY):
    return ws.catalog.product(survey, name).id


# -- OGC API – Features ---------------------------------------------------------------------
def test_landing_conformance_collections(client):
    land = client.get("/", headers={"Accept": "application/json"}).json()
    rels = {link["rel"] for link in land["links"]}
    assert {"conformance", "data", "service-desc"} <= rels
    conf = client.get("/conformance").json()["conformsTo"]
    assert any(c.endswith("/conf/geojson") for c in conf)
    coll = client.get("/collections/parcels").json()
    west, south, east, north = coll["extent"]["spatial"]["bbox"][0]
    assert 105 < west < east < 107 and 47 < south < north < 48.5


def test_items_paging_filters_and_stats(client):
    r = client.get("/collections/parcels/items", params={"limit": 2})
    assert r.headers["content-type"].startswith("application/geo+json")
    page = r.json()
    assert page["numberMatched"] == 3 and page["numberReturned"] == 2
    nxt = next(link["href"] for link in page["links"] if link["rel"] == "next")
    page2 = client.get(nxt.replace("http://testserver", "")).json()
    assert page2["numberReturned"] == 1
    assert any(link["rel"] == "prev" for link in page2["links"])
    ids = {f["id"] for f in page["features"]} | {f["id"] for f in page2["features"]}
    assert ids == {"P1", "P2", "P3"}
    # property filter on a Cyrillic soum name
    soum = client.get("/collections/parcels/items", params={"soum": "Батсүмбэр"}).json()
    assert {f["id"] for f in soum["features"]} == {"P1", "P2"}
    # bbox around P3 only (the southern parcel)
    p3 = client.get("/collections/parcels/items/P3").json()
    xs = [c[0] for c in p3["geometry"]["coordinates"][0]]
    ys = [c[1] for c in p3["geometry"]["coordinates"][0]]
    bbox = f"{min(xs)},{min(ys)},{max(xs)},{min(ys) + 1e-5}"
    assert {f["id"] for f in client.get("/collections/parcels/items", params={"bbox": bbox}).json()["features"]} == {"P3"}
    # the public sees the published survey's statistics, equal to the raster's mean over the parcel
    ndvi = ndvi_array()
    for pid_, *_, (c0, r0, c1, r1), _level in PARCELS:
        props = client.get(f"/collections/parcels/items/{pid_}").json()["properties"]
        assert props["survey"] == SURVEY
        assert props["ndvi_mean"] == pytest.approx(float(np.nanmean(ndvi[r0:r1, c0:c1])), abs=1e-6)
        assert "capacity_su" in props and "condition_class" in props and "balance_su" in props
    assert props["name"] == "Улаан толгой"
    html = client.get("/collections/parcels/items", params={"f": "html"})
    assert "Хонгор ус" in html.text
    assert client.get("/collections/parcels/items", params={"bbox": "1,2,3"}).status_code == 422
    assert client.get("/collections/parcels/items/NOPE").status_code == 404
    assert client.get("/collections/parcels/items", params={"nosuchfield": "x"}).status_code == 422


def test_parcel_stats_series_and_visibility(client, ws):
    pub = client.get("/parcels/P1/stats", params={"index": "ndvi"}).json()
    assert [s["survey"] for s in pub["series"]] == [SURVEY]  # the hidden survey is not public
    off = client.get("/parcels/P1/stats", params={"index": "ndvi"}, headers=token(client, "officer")).json()
    assert [s["survey"] for s in off["series"]] == [SURVEY, HIDDEN]
    assert off["latest"]["survey"] == HIDDEN
    assert off["series"][1]["mean"] - off["series"][0]["mean"] == pytest.approx(0.05, abs=1e-9)
    assert client.get(f"/surveys/{HIDDEN}").status_code == 404
    assert [s["name"] for s in client.get("/surveys").json()] == [SURVEY]
    summary = client.get(f"/surveys/{SURVEY}/summary").json()
    assert summary["parcels"] == 3
    rows = ws.catalog.stats(survey=SURVEY, index_name="ndvi")
    # the one roll-up: means weighted by surveyed area (the fixture's parcels are fully surveyed)
    area = parcel_geoms().set_index("parcel_id")["area_ha"]
    assert summary["indices"]["ndvi"] == pytest.approx(
        np.average([r["mean"] for r in rows], weights=[area[r["parcel_id"]] for r in rows]), rel=1e-3)
    assert summary["pasture"]["parcels"] == 3 and summary["cropland"]["parcels"] == 0
    roll = {r["soum"]: r for r in client.get("/rollup", params={"level": "soum"}).json()}
    assert roll["Батсүмбэр"]["parcels"] == 2 and roll["Баянчандмань"]["parcels"] == 1


def test_point_query_matches_raster(client, ws):
    ndvi = ndvi_array()
    prod = ws.catalog.product(SURVEY, "ndvi")
    with rasterio.open(prod.path) as ds:
        from rasterio.warp import transform as warp

        x, y = ds.xy(100, 100)
        (lon,), (lat,) = warp(ds.crs, "EPSG:4326", [x], [y])
    got = client.get("/point", params={"lon": lon, "lat": lat, "survey": SURVEY}).json()
    by_name = {p["name"]: p for p in got["products"]}
    assert by_name["ndvi"]["values"]["ndvi"] == pytest.approx(float(ndvi[100, 100]), abs=1e-6)
    assert by_name["orthomosaic"]["values"].keys() == {"red", "green", "blue"}
    assert client.get("/point", params={"lon": 0, "lat": 0, "survey": SURVEY}).json()["products"] == []
    assert client.get("/point", params={"lon": 500, "lat": 0}).status_code == 422


# -- tiles -----------------------------------------------------------------------------------
def _tile_of(ws, name, z):
    import morecantile

    with rasterio.open(ws.catalog.product(SURVEY, name).path) as ds:
        from rasterio.warp import transform_bounds

        w, s, e, n = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
    return morecantile.tms.get("WebMercatorQuad").tile((w + e) / 2, (s + n) / 2, z)


@pytest.mark.parametrize("name", ["orthomosaic", "ndvi", "condition"])
def test_tiles_draw_and_cache(client, ws, name):
    t = _tile_of(ws, name, 18)
    url = f"/tiles/{pid(ws, name)}/{t.z}/{t.x}/{t.y}"
    r = client.get(url + ".png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    img = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGBA"))
    assert img.shape == (256, 256, 4)
    assert (img[..., 3] > 0).mean() > 0.5  # the tile is mostly covered by data
    assert img[..., :3][img[..., 3] > 0].std() > 5  # and not a flat colour
    etag = r.headers["etag"]
    assert "max-age" in r.headers["cache-control"]
    assert client.get(url + ".png", headers={"If-None-Match": etag}).status_code == 304
    webp = client.get(url + ".webp")
    assert webp.headers["content-type"] == "image/webp" and webp.content[8:12] == b"WEBP"


def test_tile_nodata_is_transparent(client, ws):
    # the western 16-pixel strip of the NDVI is NaN: its pixels in a z=21 tile must be transparent
    import morecantile

    prod = ws.catalog.product(SURVEY, "ndvi")
    with rasterio.open(prod.path) as ds:
        from rasterio.warp import transform as warp

        x, y = ds.xy(256, 4)
        (lon,), (lat,) = warp(ds.crs, "EPSG:4326", [x], [y])
    t = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, 21)
    img = np.asarray(Image.open(io.BytesIO(client.get(f"/tiles/{prod.id}/21/{t.x}/{t.y}.png").content)).convert("RGBA"))
    tms = morecantile.tms.get("WebMercatorQuad")
    b = tms.bounds(t)
    col = int((lon - b.left) / (b.right - b.left) * 256)
    row = int((b.top - lat) / (b.top - b.bottom) * 256)
    assert img[row, col, 3] == 0


def test_tiles_out_of_range_are_404(client, ws):
    p = pid(ws, "ndvi")
    for url in (f"/tiles/{p}/25/0/0.png", f"/tiles/{p}/3/8/0.png", f"/tiles/{p}/3/0/8.png",
                f"/tiles/{p}/18/0/0.png", f"/tiles/{p}/1/0/0.jpg", "/tiles/nope/1/0/0.png",
                f"/tiles/{pid(ws, 'ndvi', HIDDEN)}/1/0/0.png"):
        assert client.get(url).status_code in (404, 422), url
    assert client.get(f"/tiles/{p}/-1/0/0.png").status_code == 422


def test_tilejson_and_legends(client, ws):
    tj = client.get(f"/tiles/{pid(ws, 'ndvi')}/tilejson.json").json()
    assert tj["tiles"][0].endswith("/{z}/{x}/{y}.png") and tj["minzoom"] <= 17 <= tj["maxzoom"]
    assert 105 < tj["bounds"][0] < tj["bounds"][2] < 107
    leg = client.get(f"/legend/{pid(ws, 'condition')}").json()
    assert leg["type"] == "classes" and [c["value"] for c in leg["classes"]] == [1, 2, 3, 4, 5]
    assert leg["classes"][1]["label"] == "II анги — бага зэрэг доройтсон"
    en = client.get(f"/legend/{pid(ws, 'condition')}", params={"lang": "en"}).json()
    assert en["classes"][4]["label"].startswith("Class V")
    ramp = client.get(f"/legend/{pid(ws, 'ndvi')}").json()
    assert ramp["type"] == "ramp" and ramp["min"] < 0 < ramp["max"] <= 1


# -- STAC ------------------------------------------------------------------------------------
def test_stac_validates(client, ws):
    """Core objects validate against pystac's bundled (offline) JSON schemas; extension fields
    are checked structurally, since their schemas would have to be fetched from the network."""
    from pystac import STACObjectType
    from pystac.validation.stac_validator import JsonSchemaSTACValidator

    v = JsonSchemaSTACValidator()
    cat = client.get("/stac").json()
    v.validate_core(cat, STACObjectType.CATALOG, cat["stac_version"])
    child = next(link["href"] for link in cat["links"] if link["rel"] == "child")
    assert child.endswith(SURVEY)
    coll = client.get(f"/stac/collections/{SURVEY}").json()
    v.validate_core(coll, STACObjectType.COLLECTION, coll["stac_version"])
    items = client.get(f"/stac/collections/{SURVEY}/items").json()["features"]
    assert {i["properties"]["belcheer:kind"] for i in items} == {"orthomosaic", "index", "condition"}
    for item in items:
        v.validate_core(item, STACObjectType.ITEM, item["stac_version"])
        assert any("projection" in e for e in item["stac_extensions"])
        assert item["properties"].get("proj:code") == "EPSG:32648" or item["properties"].get("proj:epsg") == 32648
        assert item["properties"]["proj:shape"] == [512, 512]
        bands = item["assets"]["data"]["raster:bands"]
        assert bands[0]["data_type"] in ("uint8", "float32")
    ortho = next(i for i in items if i["properties"]["belcheer:kind"] == "orthomosaic")
    eo = ortho["assets"]["data"]["eo:bands"]
    assert [b["common_name"] for b in eo] == ["red", "green", "blue"]
    assert eo[0]["center_wavelength"] == pytest.approx(0.65)
    href = ortho["assets"]["data"]["href"].replace("http://testserver", "")
    assert client.get(href).content[:4] == b"II*\x00"
    assert client.get(f"/stac/collections/{HIDDEN}").status_code == 404


# -- exports ---------------------------------------------------------------------------------
def test_shapefile_export_keeps_cyrillic(client, tmp_path):
    r = client.get("/export/parcels.shp", params={"survey": SURVEY})
    assert r.status_code == 200
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    names = zf.namelist()
    assert {"parcels.shp", "parcels.dbf", "parcels.prj", "parcels.cpg", "fields.csv"} <= set(names)
    assert zf.read("parcels.cpg").decode().strip().upper() in ("UTF-8", "UTF8")
    zf.extractall(tmp_path)
    df = pyogrio.read_dataframe(tmp_path / "parcels.shp")
    assert all(len(c.encode()) <= 10 for c in df.columns if c != "geometry")
    assert sorted(df["name"]) == sorted(p[1] for p in PARCELS)
    mapping = dict(line.split(",", 1) for line in zf.read("fields.csv").decode().splitlines()[1:])
    assert mapping["condition_"] in ("condition_class", "condition_roman", "condition_mn", "condition_en")
    assert df.crs.to_epsg() == 4326
    utm = client.get("/export/parcels.gpkg", params={"survey": SURVEY, "crs": "utm"})
    (tmp_path / "p.gpkg").write_bytes(utm.content)
    g = pyogrio.read_dataframe(tmp_path / "p.gpkg")
    assert g.crs.to_epsg() == 32648 and set(g["name"]) == {p[1] for p in PARCELS}
    # area in the UTM export matches the parcel table (0.5 m pixels → hectares)
    assert g.set_index("parcel_id").geometry.area.div(1e4).loc["P1"] == pytest.approx(0.81, rel=1e-3)


@pytest.mark.parametrize("fmt", ["geojson", "fgb", "csv", "kml"])
def test_other_exports(client, tmp_path, fmt):
    r = client.get(f"/export/parcels.{fmt}", params={"survey": SURVEY})
    assert r.status_code == 200, r.text
    path = tmp_path / f"x.{fmt}"
    path.write_bytes(r.content)
    df = pyogrio.read_dataframe(path)
    col = "Name" if fmt == "kml" else "name"
    assert set(df[col]) == {p[1] for p in PARCELS}


def test_raster_clip_export_is_cog(client, ws, tmp_path):
    from rio_cogeo.cogeo import cog_validate

    r = client.get(f"/export/raster/{pid(ws, 'ndvi')}.tif", params={"parcel": "P1"})
    assert r.status_code == 200
    path = tmp_path / "clip.tif"
    path.write_bytes(r.content)
    valid, errors, _ = cog_validate(str(path))
    assert valid, errors
    with rasterio.open(path) as ds:
        (c0, r0, c1, r1) = PARCELS[0][4]
        assert abs(ds.width - (c1 - c0)) <= 2 and abs(ds.height - (r1 - r0)) <= 2
        assert float(np.nanmean(ds.read(1))) == pytest.approx(0.72, abs=0.01)


# -- users, roles, edits ---------------------------------------------------------------------
def _feature(pid_, group, soum="Батсүмбэр", lon=105.897, lat=47.9005):
    return {"type": "Feature", "properties": {"parcel_id": pid_, "name": "Шинэ хэсэг", "user_group": group,
                                              "soum": soum, "land_use": "pasture", "sheep": 10},
            "geometry": {"type": "Polygon", "coordinates": [[[lon, lat], [lon + 0.0005, lat],
                                                             [lon + 0.0005, lat + 0.0004], [lon, lat]]]}}


def test_auth_roles_and_audit(client, ws):
    assert client.post("/collections/parcels/items", json=_feature("H1", "ail-1")).status_code == 401
    assert client.post("/token", data={"username": "herder", "password": "wrong-password"}).status_code == 401
    herder = token(client, "herder")
    assert client.post("/collections/parcels/items", json=_feature("H2", "ail-9"), headers=herder).status_code == 403
    r = client.post("/collections/parcels/items", json=_feature("H1", "ail-1"), headers=herder)
    assert r.status_code == 201, r.text
    assert client.get("/collections/parcels/items/H1").json()["properties"]["name"] == "Шинэ хэсэг"
    assert client.post("/collections/parcels/items", json=_feature("H1", "ail-1"), headers=herder).status_code == 409
    # officers edit parcels of their own soum only
    officer = token(client, "officer")
    edit = _feature("P1", "ail-1")
    edit["properties"]["name"] = "Хонгор ус (засварласан)"
    assert client.put("/collections/parcels/items/P1", json=edit, headers=officer).status_code == 200
    p3 = _feature("P3", "ail-3", soum="Баянчандмань")
    assert client.put("/collections/parcels/items/P3", json=p3, headers=officer).status_code == 403
    log = client.get("/parcels/P1/audit", headers=officer).json()
    assert log[-1]["username"] == "officer" and log[-1]["action"] == "parcel.edit"
    assert log[-1]["before"]["name"] == "Хонгор ус" and log[-1]["after"]["name"] == "Хонгор ус (засварласан)"
    assert client.get("/parcels/P1/audit", headers=herder).status_code == 403
    # users are managed by admins only
    assert client.get("/users", headers=officer).status_code == 403
    admin = token(client, "admin")
    new = {"username": "herder2", "password": "another-pass-123", "role": "herder", "group": "ail-2"}
    assert client.post("/users", json=new, headers=admin).status_code == 201
    assert "herder2" in {u["username"] for u in client.get("/users", headers=admin).json()}
    assert all("password_hash" not in u for u in client.get("/users", headers=admin).json())
    assert client.get("/me", headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    # put the name back for the other tests
    edit["properties"]["name"] = "Хонгор ус"
    assert client.put("/collections/parcels/items/P1", json=edit, headers=officer).status_code == 200


def test_expired_token_is_refused(client, ws):
    from belcheer.api.auth import User, issue_token

    tok = issue_token(User("officer", "officer"), client.app.state.secret, minutes=-1)
    r = client.get("/jobs", headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 401 and "expired" in r.json()["detail"]
    # a stale session cookie leaves the visitor anonymous instead of locking them out
    client.cookies.set("belcheer_token", tok)
    try:
        assert client.get("/surveys").status_code == 200
        assert client.get("/jobs").status_code == 401
    finally:
        client.cookies.clear()


@pytest.mark.parametrize("body, reason", [
    ({"type": "Point"}, "GeoJSON"),
    ({"type": "FeatureCollection", "features": []}, "features"),
    ({"type": "Feature", "properties": {"parcel_id": "X"}, "geometry": {"type": "Polygon", "coordinates": [[1, 2]]}}, "geometry"),
    ({"type": "Feature", "properties": {"parcel_id": "X"}, "geometry": {"type": "Point", "coordinates": [106, 47]}}, "Polygon"),
    ({"type": "Feature", "properties": {"parcel_id": "X"},
      "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [2, 2], [2, 0], [0, 2], [0, 0]]]}}, "invalid"),
    ({"type": "Feature", "properties": {"parcel_id": "X"},
      "geometry": {"type": "Polygon", "coordinates": [[[567000, 5306000], [567100, 5306000], [567100, 5306100], [567000, 5306000]]]}}, "degrees"),
    ({"type": "Feature", "properties": {}, "geometry": None}, "parcel_id"),
])
def test_malformed_geojson_is_422(client, body, reason):
    r = client.post("/collections/parcels/items", json=body, headers=token(client, "officer"))
    assert r.status_code == 422 and reason in r.json()["detail"]


def test_pages_and_messages(client):
    msgs = client.get("/messages.json").json()
    assert set(msgs["mn"]) == set(msgs["en"])
    page = client.get("/")
    assert page.headers["content-type"].startswith("text/html")
    assert msgs["mn"]["app.title"] in page.text and "/static/vendor/maplibre-gl.js" in page.text
    assert msgs["en"]["app.title"] in client.get("/", params={"lang": "en"}).text
    herder = client.get("/herder").text
    assert msgs["mn"]["herder.title"] in herder and "maplibre" not in herder
    assert client.get("/static/vendor/maplibre-gl.js").status_code == 200
    png = client.get("/herder/share.png", params={"parcel": "P2"})
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    img = Image.open(io.BytesIO(png.content))
    assert img.size[0] >= 400
    assert client.get("/herder/share.png", params={"parcel": "NOPE"}).status_code == 404


def test_herder_page_weight(client, ws):
    """HTML + JS + CSS + the first WebP tiles of the herder page stay under 1.5 MB."""
    import re

    import morecantile

    html = client.get("/herder").content
    total = len(html)
    assets = re.findall(rb'(?:src|href)="(/static/[^"]+)"', html)
    assert assets
    for a in assets:
        total += len(client.get(a.decode()).content)
    total += len(client.get("/static/i18n.js").content)  # imported by herder.js
    # the minimap shows at most 2×2 tiles around the parcel at its zoom; take the 3×3 block
    t = _tile_of(ws, "condition", 18)
    prod = pid(ws, "condition")
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            r = client.get(f"/tiles/{prod}/{t.z}/{t.x + dx}/{t.y + dy}.webp")
            total += len(r.content)
    assert total < 1.5 * 1024 * 1024
    del morecantile


def test_prescription_zones_export(client, ws, tmp_path):
    r = client.get(f"/export/zones/{pid(ws, 'ndvi')}.shp", params={"n_zones": 3, "method": "quantile"})
    assert r.status_code == 200, r.text
    zipfile.ZipFile(io.BytesIO(r.content)).extractall(tmp_path)
    zones = pyogrio.read_dataframe(next(tmp_path.glob("*.shp")))
    assert sorted(zones["zone"].unique()) == [1, 2, 3]
    # zone means rise with the zone id, and the zones cover the raster's valid area (≈ 6.3 ha)
    means = zones.groupby("zone")["mean"].mean()
    assert means.is_monotonic_increasing
    assert zones.to_crs(32648).area.sum() / 1e4 == pytest.approx(256 * (256 - 8) / 1e4, rel=0.02)
    assert client.get(f"/export/zones/{pid(ws, 'orthomosaic')}.shp").status_code == 422
    # a rate column and no part under the minimum mapping unit (default 100 m²)
    r = client.get(f"/export/zones/{pid(ws, 'ndvi')}.geojson",
                   params={"n_zones": 3, "mmu_m2": 400, "rates": "120,100,80", "crs": "utm"})
    assert r.status_code == 200, r.text
    rx = pyogrio.read_dataframe(io.BytesIO(r.content))
    assert rx.set_index("zone")["rate"].to_dict() == {1: 120.0, 2: 100.0, 3: 80.0}
    assert rx.explode().area.min() >= 400
    assert client.get(f"/export/zones/{pid(ws, 'ndvi')}.shp", params={"rates": "1,2"}).status_code == 422

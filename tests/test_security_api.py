"""The hostile-input and fault run of issue #17 against the API, one test per finding: symlinks
out of the allowed roots, uploads beyond the uploader's soum, NUL bytes, points outside a
projection's domain, CR/LF in ids, empty and NaN layers, chunked bodies, start=false jobs after
a restart, undocumented error responses, server paths and Host-header links."""

from __future__ import annotations

import json
import os
from pathlib import Path

import geopandas as gpd
import jsonschema
import pytest
from fastapi.testclient import TestClient
from test_api_helpers import PASSWORD, SURVEY, build_workspace, token
from test_ingest_helpers import dji_xmp, texture, write_jpeg

from belcheer import pipeline
from belcheer.api import create_app
from belcheer.api.auth import add_user
from belcheer.ingest import scan


def _fc(features: list[dict]) -> bytes:
    return json.dumps({"type": "FeatureCollection", "features": features}).encode()


def _feature(pid: str, coords: list | None, **props) -> dict:
    geom = {"type": "Polygon", "coordinates": [coords]} if coords is not None else None
    return {"type": "Feature", "properties": {"parcel_id": pid, **props}, "geometry": geom}


SQUARE = [[106.9, 47.9], [106.901, 47.9], [106.901, 47.901], [106.9, 47.901], [106.9, 47.9]]


@pytest.fixture
def fast_pipeline(monkeypatch):
    calls: list[str] = []

    def fake(name):
        def run(ctx, progress):
            calls.append(name)
            return {"fake": name}
        return run

    for name in pipeline.STAGES:
        monkeypatch.setitem(pipeline._RUNNERS, name, fake(name))
    return calls


@pytest.fixture
def env(tmp_path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    ws, settings = build_workspace(tmp_path / "ws", allowed_roots=[allowed], max_upload_total_bytes=200_000)
    add_user(ws, "off2", PASSWORD, "officer", soum="Other")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield ws, client, allowed, settings


def _upload(client, user, body: bytes, name="parcels.geojson", **form):
    return client.post("/parcels/upload", headers=token(client, user), data=form,
                       files={"file": (name, body, "application/geo+json")})


def _layer(ws) -> gpd.GeoDataFrame:
    from belcheer.zoning import load_parcels

    return load_parcels(ws)


# -- 3. symlinks out of the allowed roots -----------------------------------------------------
def test_symlink_out_of_allowed_roots_is_refused_and_never_read(env, tmp_path, fast_pipeline):
    ws, client, allowed, _ = env
    outside = tmp_path / "outside"
    outside.mkdir()
    write_jpeg(outside / "DJI_0001.JPG", texture(seed=1), xmp=dji_xmp())
    job = allowed / "job"
    job.mkdir()
    write_jpeg(job / "DJI_0002.JPG", texture(seed=2), xmp=dji_xmp())
    os.symlink(outside, job / "card")
    r = client.post("/jobs", json={"survey": "esc", "frames_dir": "job"}, headers=token(client, "officer"))
    assert r.status_code == 400, r.text
    assert "card" in r.json()["detail"] and "outside" in r.json()["detail"]
    assert fast_pipeline == []
    # a link created after the check is caught by ingest itself: nothing outside is read
    survey = scan(job, confine=[allowed], quality=False)
    assert [f.path.name for f in survey.frames] == ["DJI_0002.JPG"]
    assert [p.code for p in survey.problems] == ["outside_allowed_roots"]
    os.symlink(outside / "DJI_0001.JPG", job / "DJI_0003.JPG")  # a file link too
    survey = scan(job, confine=[allowed], quality=False)
    assert [f.path.name for f in survey.frames] == ["DJI_0002.JPG"]
    assert sorted(p.code for p in survey.problems) == ["outside_allowed_roots"] * 2
    # without confinement (the CLI on the operator's own card) links are still followed
    assert len(scan(job, quality=False).frames) == 3


def test_api_jobs_carry_the_confinement(env, fast_pipeline):
    ws, client, allowed, _ = env
    (allowed / "clean").mkdir()
    r = client.post("/jobs", json={"survey": "ok", "frames_dir": "clean"}, headers=token(client, "officer"))
    assert r.status_code == 202, r.text
    assert r.json()["params"]["confine"] == [str(allowed.resolve())]
    params = client.app.state.runner.params_for(ws.catalog.job(r.json()["id"]))
    assert params.confine == [allowed.resolve()]


# -- 4. uploads scoped to the uploader's soum --------------------------------------------------
def test_officer_of_another_soum_cannot_replace_the_layer(env):
    ws, client, _, _ = env
    assert len(_layer(ws)) == 3
    r = _upload(client, "off2", _fc([_feature("O1", SQUARE, name="Other 1")]))
    assert r.status_code == 201, r.text
    layer = _layer(ws)
    assert sorted(layer["parcel_id"]) == ["O1", "P1", "P2", "P3"]
    assert (layer["soum"] == "Батсүмбэр").sum() == 2
    assert layer.loc[layer["parcel_id"] == "O1", "soum"].item() == "Other"
    audit = [a for a in ws.catalog.audit_log("parcels") if a["action"] == "parcels.upload"][-1]
    after = json.loads(audit["after"])
    assert audit["username"] == "off2"
    assert (after["scope"], after["mode"], after["removed"], after["kept"], after["after"]) == ("Other", "replace", 0, 3, 4)
    # parcels of someone else's soum in the file: refused, nothing changes
    r = _upload(client, "off2", _fc([_feature("X1", SQUARE, soum="Батсүмбэр")]))
    assert r.status_code == 403
    r = _upload(client, "off2", _fc([_feature("X1", SQUARE)]), soum="Батсүмбэр")
    assert r.status_code == 403
    # the same officer re-uploading replaces their soum's parcels only
    r = _upload(client, "off2", _fc([_feature("O2", SQUARE)]))
    assert r.status_code == 201 and r.json()["removed"] == 1
    assert sorted(_layer(ws)["parcel_id"]) == ["O2", "P1", "P2", "P3"]
    # an id another soum already uses cannot be taken over
    r = _upload(client, "off2", _fc([_feature("P1", SQUARE)]), mode="merge")
    assert r.status_code == 403


def test_admin_chooses_the_scope(env):
    ws, client, _, _ = env
    r = _upload(client, "admin", _fc([_feature("B1", SQUARE)]), soum="Баянчандмань")
    assert r.status_code == 201, r.text
    assert sorted(_layer(ws)["parcel_id"]) == ["B1", "P1", "P2"]
    r = _upload(client, "officer", _fc([_feature("P1", SQUARE, name="renamed")]), mode="merge")
    assert r.status_code == 201 and (r.json()["removed"], r.json()["after"]) == (1, 3)
    layer = _layer(ws)
    assert layer.loc[layer["parcel_id"] == "P1", "name"].item() == "renamed"
    r = _upload(client, "admin", _fc([_feature("A1", SQUARE)]))  # no soum named: the whole layer
    assert r.status_code == 201
    assert list(_layer(ws)["parcel_id"]) == ["A1"]


# -- 7. NUL byte ------------------------------------------------------------------------------
def test_nul_byte_in_frames_dir_is_a_400(env):
    _, client, _, _ = env
    for bad in ("job\x00/etc", "a\nb"):
        r = client.post("/jobs", json={"survey": "nul", "frames_dir": bad}, headers=token(client, "officer"))
        assert r.status_code == 400, r.text
        assert "control characters" in r.json()["detail"]


# -- 8. points outside the projection's domain ----------------------------------------------
def test_point_outside_projection_domain_is_not_a_500(env):
    _, client, _, _ = env
    for q in ({"lon": 21.88, "lat": -0.00001}, {"lat": 0, "lon": 6}):
        r = client.get("/point", params=q)
        assert r.status_code == 200, r.text
        assert r.json()["products"] == []
    # a point on the survey still has its values (P1's centre; NDVI ≈ 0.72 there)
    p1 = client.get("/collections/parcels/items/P1").json()["geometry"]["coordinates"][0]
    lon = (min(c[0] for c in p1) + max(c[0] for c in p1)) / 2
    lat = (min(c[1] for c in p1) + max(c[1] for c in p1)) / 2
    got = {p["name"]: p["values"] for p in client.get("/point", params={"lon": lon, "lat": lat}).json()["products"]}
    assert got["ndvi"]["ndvi"] == pytest.approx(0.72, abs=0.1)


# -- 9. CR/LF in ids --------------------------------------------------------------------------
def test_ids_with_line_breaks_are_refused_and_headers_stay_clean(env):
    ws, client, _, _ = env
    evil = "Z1\r\nSet-Cookie: pwned=1"
    r = client.post("/collections/parcels/items", json=_feature(evil, SQUARE, soum="Батсүмбэр"),
                    headers=token(client, "officer"))
    assert r.status_code == 422 and "line breaks" in r.text
    assert _upload(client, "officer", _fc([_feature(evil, SQUARE)])).status_code == 422
    # a layer imported before this check may still hold such an id: the header never carries it raw
    from belcheer.zoning import save_parcels

    layer = _layer(ws)
    layer.loc[layer["parcel_id"] == "P1", "parcel_id"] = evil
    save_parcels(ws, layer, source="legacy")
    r = client.get("/herder/share.png", params={"parcel": evil})
    assert r.status_code == 200
    disp = r.headers["content-disposition"]
    assert "\r" not in disp and "\n" not in disp and "pwned" not in r.headers.get("set-cookie", "")
    assert disp.startswith('attachment; filename="belcheer-Z1__Set-Cookie__pwned_1.png"')


# -- 6 and 11. NaN coordinates, layers with no polygon ----------------------------------------
def test_empty_or_point_layers_do_not_empty_the_current_layer(env, tmp_path):
    ws, client, _, _ = env
    before = ws.catalog.current_parcel_version().version
    body = _fc([_feature("E1", None),
                {"type": "Feature", "properties": {"parcel_id": "E2"},
                 "geometry": {"type": "Point", "coordinates": [106.9, 47.9]}},
                {"type": "Feature", "properties": {"parcel_id": "E3"},
                 "geometry": {"type": "Polygon", "coordinates": []}}])
    r = _upload(client, "officer", body)
    assert r.status_code == 422 and "no polygon parcels" in r.json()["detail"]
    assert ws.catalog.current_parcel_version().version == before and len(_layer(ws)) == 3
    from belcheer.cli import main

    (tmp_path / "empty.geojson").write_bytes(body)
    assert main(["-w", str(ws.root), "parcels", "import", str(tmp_path / "empty.geojson")]) == 3
    assert ws.catalog.current_parcel_version().version == before


def test_nan_coordinates_drop_their_parcel_only(env, tmp_path):
    ws, client, _, _ = env
    nan_mid = [[106.9, 47.9], [float("nan"), 47.9], [106.901, 47.901], [106.9, 47.9]]
    nan_end = [[float("nan"), 47.9], [106.901, 47.9], [106.901, 47.901], [106.9, float("inf")]]
    body = _fc([_feature("N0", SQUARE), _feature("N1", nan_mid), _feature("N2", nan_end)])
    assert b"NaN" in body and b"Infinity" in body
    r = _upload(client, "officer", body)
    assert r.status_code == 201, r.text
    assert r.json()["count"] == 1
    assert {d["parcel_id"] for d in r.json()["report"]["dropped"]} == {"N1", "N2"}
    from belcheer.cli import main

    (tmp_path / "nan.geojson").write_bytes(_fc([_feature("N1", nan_mid), _feature("N2", nan_end)]))
    assert main(["-w", str(ws.root), "parcels", "import", str(tmp_path / "nan.geojson")]) == 3
    r = client.post("/collections/parcels/items", content=json.dumps(_feature("N3", nan_mid, soum="Батсүмбэр")),
                    headers={**token(client, "officer"), "Content-Type": "application/json"})
    assert r.status_code == 422 and "finite" in r.json()["detail"]


# -- 12. chunked upload without Content-Length ------------------------------------------------
def test_chunked_upload_past_the_limit_is_413(env):
    _, client, _, settings = env
    limit = settings.max_upload_total_bytes + 1024 * 1024

    def body():
        boundary = b"--xyz\r\n"
        yield boundary + b'Content-Disposition: form-data; name="file"; filename="p.geojson"\r\n\r\n'
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    r = client.post("/parcels/upload", content=body(),
                    headers={**token(client, "officer"), "Content-Type": "multipart/form-data; boundary=xyz"})
    assert "content-length" not in {k.lower() for k in r.request.headers}
    assert r.status_code == 413, r.text
    assert r.json()["error"] == "TooLargeError" and str(limit) in r.json()["detail"]


# -- 14. start=false jobs are not run by a restart -----------------------------------------------
def test_restart_does_not_run_jobs_created_with_start_false(env, fast_pipeline):
    ws, client, _, settings = env
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (90, 120, 60)).save(buf, "JPEG")
    r = client.post("/jobs/upload", data={"survey": "later", "start": "false"},
                    files=[("files", ("DJI_0001.JPG", buf.getvalue(), "image/jpeg"))],
                    headers=token(client, "officer"))
    assert r.status_code == 202 and r.json()["state"] == "waiting", r.text
    job_id = r.json()["id"]
    app = create_app(settings)  # the server restarts
    with TestClient(app) as again:
        assert job_id not in app.state.runner.resume()
        assert fast_pipeline == []
        officer = token(again, "officer")
        assert again.get(f"/jobs/{job_id}", headers=officer).json()["state"] == "waiting"
        assert again.post(f"/jobs/{job_id}/start", headers=officer).status_code == 202
        app.state.runner.wait(job_id, timeout=20)
        assert again.get(f"/jobs/{job_id}", headers=officer).json()["state"] == "done"
    assert fast_pipeline == list(pipeline.STAGES)


# -- 15. OpenAPI documents every error response ---------------------------------------------
def test_error_responses_are_documented_and_match_their_schema(env):
    ws, client, _, _ = env
    doc = client.get("/openapi.json").json()
    officer, herder = token(client, "officer"), token(client, "herder")
    cases = [
        ("post", "/collections/parcels/items", {"json": {"type": "nope"}, "headers": officer}, 422),
        ("put", "/collections/parcels/items/{parcel_id}", {"json": {"type": "Feature"}, "headers": officer}, 422),
        ("post", "/parcels/upload", {"files": {"file": ("a.geojson", b"<x/>", "text/xml")}, "headers": officer}, 422),
        ("post", "/collections/parcels/items", {"json": _feature("P1", SQUARE, soum="Батсүмбэр"),
                                                "headers": officer}, 409),
        ("get", "/jobs", {}, 401),
        ("get", "/jobs", {"headers": herder}, 403),
        ("get", "/jobs/{job_id}", {"headers": officer}, 404),
        ("get", "/surveys/{survey}", {}, 404),
        ("get", "/legend/{product_id}", {}, 404),
        ("get", "/herder/share.png", {"params": {"parcel": "nope"}}, 404),
        ("get", "/parcels/{parcel_id}/audit", {}, 401),
        ("post", "/jobs", {"json": {"survey": "s", "frames_dir": "/etc"}, "headers": officer}, 400),
        ("get", "/surveys", {"headers": {"Authorization": "Bearer not-a-token"}}, 401),
        ("post", "/parcels/upload", {"files": {"file": ("a.geojson", b"{" + b" " * 300_000, "x")},
                                     "headers": officer}, 413),
    ]
    fill = {"{parcel_id}": "P1", "{job_id}": "nope", "{survey}": "nope", "{product_id}": "nope"}
    for method, path, kw, status in cases:
        url = path
        for k, v in fill.items():
            url = url.replace(k, v)
        r = getattr(client, method)(url, **kw)
        assert r.status_code == status, (method, path, r.status_code, r.text[:200])
        spec = doc["paths"][path][method]["responses"]
        assert str(status) in spec, (method, path, status, sorted(spec))
        schema = spec[str(status)]["content"]["application/json"]["schema"]
        jsonschema.validate(r.json(), {**schema, "components": doc["components"]})
    assert doc["components"]["schemas"]["ErrorBody"]["properties"]["detail"]["anyOf"]


# -- 16. server paths, security headers, Host-header links, map.js ------------------------------
def test_public_sees_no_server_paths(env):
    ws, client, _, _ = env
    rec = ws.catalog.survey(SURVEY)
    ws.catalog.add_survey(SURVEY, rec.manifest, rec.epsg, rec.date, {
        "frames": 2, "source_dir": "/srv/secret/cards/flight7",
        "problems": {"errors": 1, "warnings": 0, "counts": {"blurry": 1},
                     "list": [{"code": "blurry", "path": "/srv/secret/cards/flight7/DJI_0001.JPG"}]}},
        replace=True)
    ws.catalog.set_published(SURVEY, True)
    public = client.get("/surveys").text + client.get(f"/surveys/{SURVEY}").text
    assert "/srv/secret" not in public and "source_dir" not in public
    assert '"counts":{"blurry":1}' in public.replace(" ", "")
    officer = client.get("/surveys", headers=token(client, "officer")).text
    assert "/srv/secret/cards/flight7" in officer


def test_html_pages_send_security_headers(env):
    _, client, _, _ = env
    for path in ("/", "/herder", "/collections/parcels/items?f=html"):
        h = client.get(path).headers
        assert h["content-type"].startswith("text/html")
        assert h["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in h["content-security-policy"]
        assert "script-src 'self'" in h["content-security-policy"]
        assert h["referrer-policy"] == "same-origin"
    assert client.get("/surveys").headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in client.get("/docs").headers  # Swagger UI's CDN


def test_links_never_follow_the_host_header(tmp_path):
    _, cfg = build_workspace(tmp_path / "ws")
    with TestClient(create_app(cfg)) as client:
        hrefs = [link["href"] for link in client.get("/?f=json", headers={"Host": "evil.example"}).json()["links"]]
        assert hrefs and not any("evil.example" in h for h in hrefs)
        assert all(h.startswith("http://testserver") for h in hrefs)  # the address it was reached on
    with TestClient(create_app(cfg.model_copy(update={"public_url": "https://belcheer.example.mn/"}))) as client:
        hrefs = [link["href"] for link in client.get("/?f=json", headers={"Host": "evil.example"}).json()["links"]]
        assert all(h.startswith("https://belcheer.example.mn/") for h in hrefs)
        nxt = client.get("/collections/parcels/items", params={"limit": 1}, headers={"Host": "evil.example"}).json()
        assert all(link["href"].startswith("https://belcheer.example.mn/collections") for link in nxt["links"])
    with TestClient(create_app(cfg.model_copy(update={"trusted_hosts": ["maps.soum.mn"]}))) as client:
        hrefs = [link["href"] for link in client.get("/?f=json", headers={"Host": "maps.soum.mn"}).json()["links"]]
        assert all(h.startswith("http://maps.soum.mn/") for h in hrefs)


def test_map_js_puts_property_names_in_as_text():
    """The index name comes from a property name (a user's attribute column): the parcel card
    is built from text nodes (``el``), so it reaches the page as text, never parsed as HTML."""
    js = (Path(__file__).resolve().parents[1] / "api" / "static" / "map.js").read_text(encoding="utf-8")
    card = js[js.index("const card = () =>"):js.index('$("parcel-body").replaceChildren(card())')]
    assert "${index.toUpperCase()}" in card and "`<" not in card
    assert "e.append(...children" in js and "innerHTML" not in js

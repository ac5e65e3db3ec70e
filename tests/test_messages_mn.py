"""No English in the Mongolian interface: the catalogue, the API's words for people (errors, job
stages, legends, units, roles) and, in test_web_browser.py, the rendered pages."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from test_api_helpers import build_workspace, token

from belcheer import errors, pipeline
from belcheer.api import create_app
from belcheer.api.auth import ROLES
from belcheer.api.jobs import JobRunner, job_dict
from belcheer.api.messages import catalogue, error_texts, negotiate, units_label
from belcheer.models import ProductKind

REPO = Path(__file__).resolve().parents[1]
LATIN_WORD = re.compile(r"[A-Za-z](?:[A-Za-z0-9_']|-(?=[A-Za-z0-9]))*")
#: Latin words a Mongolian text may hold: index names and band letters, file formats and units
#: written the same in Mongolian, product names, the language switch's own label
ALLOWED = {
    "I", "II", "III", "IV", "V",  # recovery classes are written in Roman numerals in Mongolian too
    "RGB", "NDVI", "NDREI", "SAVI", "MSAVI", "GNDVI", "VARI", "EXG", "GLI", "NGRDI", "DN",
    "SHP", "GPKG", "GEOJSON", "FGB", "CSV", "KML", "PNG", "GPS",
    # file formats and libraries are proper names, written in Latin in Mongolian text too
    "GeoPackage", "Shapefile", "FlatGeobuf", "GeoTIFF", "COG", "TIFF", "JPEG", "PDF", "WKT", "EPSG",
    "GDAL", "VRT", "GDALG", "XMP", "EXIF", "ZIP", "DBF", "SHX", "PRJ",
    "MapLibre", "belcheer", "make", "web", "English",
    "RP04", "IMG_0000",  # examples of a panel serial and a capture name: data, not words
}


def english_words(text: str, allowed: set[str] = frozenset()) -> list[str]:
    """The Latin-script words of ``text`` not on the allow-list (nor in ``allowed``)."""
    return [w for w in LATIN_WORD.findall(text) if w not in ALLOWED and w not in allowed
            and w.upper() not in ALLOWED]


def _fields(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f}


def test_english_words_finds_the_leaks_the_issue_names():
    assert english_words("Алдаа гарлаа: no parcel overlaps raster") == ["no", "parcel", "overlaps", "raster"]
    assert english_words("layer.landcover") == ["layer", "landcover"]
    assert english_words("bat (officer)") == ["bat", "officer"]
    assert english_words("NDVI Дундаж · SHP GPKG") == []


def test_catalogue_is_mongolian_and_complete():
    mn, en = catalogue()["mn"], catalogue()["en"]
    assert set(mn) == set(en)
    assert len(mn) >= 110
    for key, text in mn.items():
        assert text.strip(), key
        assert _fields(text) == _fields(en[key]), key
        words = re.sub(r"\{\w+\}", "", text)  # placeholders are filled with data
        assert not english_words(words), (key, text, english_words(words))
        assert re.search("[а-яА-ЯөүӨҮёЁ]", text) or key == "lang.toggle", (key, text)


def test_every_error_class_stage_kind_role_and_unit_has_words():
    mn = catalogue()["mn"]
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.BelcheerError)]
    assert len(classes) >= 14
    for cls in classes:
        assert f"error.{cls.__name__}" in mn, f"add error.{cls.__name__} to api/messages.json"
    for stage in pipeline.STAGES:
        assert f"stage.{stage}" in mn
    for kind in ProductKind:
        assert f"layer.{kind.value}" in mn
    for role in ROLES:
        assert f"role.{role}" in mn
    for state in ("queued", "running", "done", "failed", "cancelled"):
        assert f"job.{state}" in mn
    # every literal unit a stage writes on a product
    units = set()
    for path in [*REPO.glob("*/*.py"), *REPO.glob("belcheer/*/*.py")]:
        if ".venv" not in path.parts and "tests" not in path.parts:
            units |= set(re.findall(r'\bunits="([^"{}]+)"', path.read_text(encoding="utf-8")))
    assert {"recovery class 1-5", "kg DM/ha", "class code", "DN", "reflectance"} <= units
    for u in units:
        assert f"units.{u}" in mn, f"add units.{u} to api/messages.json"
        assert not english_words(units_label(u, "mn")), u
    assert units_label("recovery class 1-5", "mn") == "сэргэх анги 1–5"
    assert units_label("Δndvi", "mn") == "Δndvi"  # index differences keep the index's name


def test_an_error_with_its_own_code_reads_in_both_languages():
    exc = errors.CRSError("no parcel overlaps raster /ws/x/ndvi.tif: raster CRS EPSG:32648 …",
                          code="error.stats.no_overlap", raster="ndvi.tif")
    texts = error_texts(exc)
    assert texts["code"] == "error.stats.no_overlap" and texts["params"] == {"raster": "ndvi.tif"}
    assert texts["messages"]["mn"] == ("Ямар ч талбай ndvi.tif растертай давхцахгүй байна: талбайн "
                                       "давхаргын координатын системийг шалгана уу")
    assert texts["messages"]["en"].startswith("No parcel overlaps raster ndvi.tif")
    # without a code of its own: the class's Mongolian words, the English detail itself in English
    plain = error_texts(errors.NoUsableFramesError("all 12 frames lack GPS"))
    assert plain["code"] == "error.NoUsableFramesError"
    assert plain["messages"]["en"] == "all 12 frames lack GPS"
    assert not english_words(plain["messages"]["mn"])
    assert error_texts(KeyError("x"))["code"] == "error.internal"


def test_response_language():
    assert negotiate(None, "mn-MN,mn;q=0.9,en;q=0.5") == "mn"
    assert negotiate(None, "de-DE,en-GB;q=0.8") == "en"
    assert negotiate("en", "mn") == "en"
    assert negotiate("fr", None) == "mn" and negotiate(None, "de") == "mn"


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    ws, settings = build_workspace(tmp_path_factory.mktemp("mn") / "ws")
    with TestClient(create_app(settings)) as client:
        yield ws, client


def test_api_errors_carry_a_code_and_mongolian_words(api):
    _, client = api
    cases = [
        (client.get("/surveys/no-such-survey", headers={"Accept-Language": "mn"}), 404, "error.NotFoundError"),
        (client.get("/point?lon=abc&lat=1", headers={"Accept-Language": "mn"}), 422, "error.ValidationError"),
        (client.post("/token", data={"username": "admin", "password": "wrong-password!"}), 401, "error.auth.login"),
        (client.get("/jobs", headers={"Authorization": "Bearer not-a-token"}), 401, "error.auth.invalid"),
    ]
    for resp, status, code in cases:
        body = resp.json()
        assert resp.status_code == status, body
        assert body["code"] == code, body
        assert body["message"] == catalogue()["mn"][code]
        assert not english_words(body["message"]), body
    # with the roles in words: anonymous, then a herder, asking for the officers' job list
    body = client.get("/jobs?lang=mn").json()
    assert body["code"] == "error.auth.sign_in"
    assert body["message"] == "Эхлээд нэвтэрнэ үү: энэ үйлдэлд «газрын даамал» эрх хэрэгтэй"
    resp = client.get("/jobs", headers={**token(client, "herder"), "Accept-Language": "mn"})
    assert resp.status_code == 403 and resp.json()["code"] == "error.auth.role"
    assert resp.json()["message"] == "herder хэрэглэгч «малчин» эрхтэй; энэ үйлдэлд «газрын даамал» эрх хэрэгтэй"
    en = client.get("/jobs", headers={**token(client, "herder"), "Accept-Language": "en"}).json()
    assert en["message"] == "User herder is a herder; this needs the land officer role"
    en = client.get("/surveys/no-such-survey", headers={"Accept-Language": "en-GB,en;q=0.8"}).json()
    assert en["message"] == en["detail"] and "no-such-survey" in en["message"]
    assert client.get("/surveys/x?lang=en", headers={"Accept-Language": "mn"}).json()["message"] == \
        client.get("/surveys/x?lang=en").json()["detail"]


def test_legends_speak_mongolian(api):
    ws, client = api
    headers = token(client, "officer")
    survey = client.get("/surveys", headers=headers).json()[0]["name"]
    products = client.get(f"/surveys/{survey}", headers=headers).json()["products"]
    assert {p["kind"] for p in products} >= {"orthomosaic", "index", "condition"}
    seen_units = []
    for p in products:
        leg = client.get(f"/legend/{p['id']}?lang=mn", headers=headers).json()
        words = [leg["title"], leg.get("units_label") or "", leg.get("low", ""), leg.get("high", ""),
                 *(c["label"] for c in leg.get("classes", []))]
        assert not english_words(" ".join(words)), (p["kind"], words)
        if leg.get("units_label"):
            seen_units.append(leg["units_label"])
    assert "сэргэх анги 1–5" in seen_units  # the condition product's "recovery class 1-5"


def test_a_failed_job_and_its_stages_read_in_mongolian(api, monkeypatch):
    ws, _ = api
    seen: list[dict] = []

    def fail_in_stats(ctx, progress):
        progress(0.3, "reading parcel rasters")  # a sub-step's English note: stays in `message`
        seen.append(job_dict(ws.catalog.job(job.id)))
        raise errors.CRSError("no parcel overlaps raster /x/ndvi.tif: …", code="error.stats.no_overlap",
                              raster="ndvi.tif")

    for name in pipeline.STAGES:
        monkeypatch.setitem(pipeline._RUNNERS, name, lambda ctx, progress: {})
    monkeypatch.setitem(pipeline._RUNNERS, "stats", fail_in_stats)
    monkeypatch.setattr("belcheer.api.jobs._PROGRESS_EVERY", 0.0)
    job = ws.catalog.add_job("pipeline", {"survey": "Сэлэнгэ-2026-07"}, owner="officer")
    runner = JobRunner(ws)
    runner.start(job.id)
    runner.wait(job.id, 20)
    mid = seen[0]
    assert mid["stage"] == "stats" and mid["message"] == "reading parcel rasters"
    assert mid["stage_label"] == {"mn": "Талбайн үзүүлэлт тооцож байна", "en": "Computing parcel statistics"}
    done = job_dict(ws.catalog.job(job.id))
    assert done["state"] == "failed" and done["error_code"] == "error.stats.no_overlap"
    assert done["error"].startswith("no parcel overlaps raster /x/ndvi.tif")
    assert done["error_message"]["mn"].startswith("Ямар ч талбай ndvi.tif растертай давхцахгүй")
    assert not english_words(done["error_message"]["mn"], {"ndvi", "tif"})
    assert done["error_message"]["en"].startswith("No parcel overlaps raster ndvi.tif")


def test_page_scripts_never_parse_strings_as_html():
    for name in ("map.js", "herder.js", "i18n.js"):
        src = (REPO / "api" / "static" / name).read_text(encoding="utf-8")
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
            assert sink not in src, f"{name} uses {sink}"

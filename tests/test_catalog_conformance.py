"""One suite, both catalog backends: the embedded SQLite file and a real PostgreSQL/PostGIS server.

Every method of the :class:`~belcheer.catalog.Catalog` protocol is asserted on real values, the
same assertions for both, through the URL seam (:func:`belcheer.catalog_url.open_catalog`) the
workspace uses. The PostgreSQL server is started by the session (tests/pgserver.py); a server that
cannot start fails these tests.
"""

from __future__ import annotations

import inspect
import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from belcheer.catalog import CalibrationRecord, Catalog, SQLiteCatalog
from belcheer.catalog_postgis import PostGISCatalog
from belcheer.catalog_url import open_catalog
from belcheer.errors import ConflictError, JobLostError, NotFoundError
from belcheer.models import Band, Product, ProductKind

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=BACKENDS)
def url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cat' / 'catalog.sqlite'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def cat(url, tmp_path) -> Catalog:
    c = open_catalog(url, tmp_path)
    yield c
    c.close()


def _iso_utc(text: str) -> datetime:
    t = datetime.fromisoformat(text)
    assert t.utcoffset().total_seconds() == 0, text
    return t


def _product(survey: str, name: str, kind=ProductKind.INDEX, **kw) -> Product:
    return Product(id=kw.pop("id", ""), survey=survey, kind=kind, name=name,
                   uri=Path(f"/ws/surveys/{survey}/products/{name}.tif"), epsg=32648, **kw)


def test_both_backends_implement_every_protocol_method(cat, url):
    assert isinstance(cat, Catalog)
    wanted = {n for n, _ in inspect.getmembers(Catalog, inspect.isfunction) if not n.startswith("_")}
    assert len(wanted) == 27
    for name in wanted:  # same parameters, same defaults
        assert (inspect.signature(getattr(SQLiteCatalog, name)).parameters.keys()
                == inspect.signature(getattr(PostGISCatalog, name)).parameters.keys()), name
    assert type(cat) is (SQLiteCatalog if url.startswith("sqlite:") else PostGISCatalog)


# -- surveys -------------------------------------------------------------------------------------
def test_surveys_add_list_replace_publish_delete(cat, tmp_path):
    before = datetime.now(UTC).replace(microsecond=0)
    rec = cat.add_survey("Хужирт-2026-07", tmp_path / "m1.parquet", 32648, "2026-07-14",
                         {"frames": 412, "bands": ["rgb"], "gsd_m": np.float64(0.0312),
                          "bounds": {"w": 102.1, "s": 46.9}, "note": "Өвөрхангай"})
    assert rec.name == "Хужирт-2026-07" and rec.epsg == 32648 and rec.date == "2026-07-14"
    assert rec.manifest == tmp_path / "m1.parquet" and rec.published is False
    assert list(rec.summary.items()) == [("frames", 412), ("bands", ["rgb"]), ("gsd_m", 0.0312),
                                         ("bounds", {"w": 102.1, "s": 46.9}), ("note", "Өвөрхангай")]
    assert list(rec.summary["bounds"]) == ["w", "s"]  # key order as written
    assert before <= _iso_utc(rec.created) <= datetime.now(UTC)
    cat.add_survey("b-2026-06", tmp_path / "m2.parquet", 32647, "2026-06-01", {})
    cat.add_survey("a-undated", tmp_path / "m3.parquet", 32648, None, {})
    cat.add_survey("Z-2026-06", tmp_path / "m4.parquet", 32648, "2026-06-01", {})
    # undated first, then by date, then by name in byte order (upper case before lower, Cyrillic last)
    assert [s.name for s in cat.surveys()] == ["a-undated", "Z-2026-06", "b-2026-06", "Хужирт-2026-07"]
    with pytest.raises(ConflictError, match="survey 'b-2026-06' already exists"):
        cat.add_survey("b-2026-06", tmp_path / "other.parquet", 32648, None, {})
    cat.set_published("b-2026-06", True)
    registered = cat.survey("b-2026-06").created
    again = cat.add_survey("b-2026-06", tmp_path / "m2b.parquet", 32648, "2026-06-02", {"frames": 9},
                           replace=True)
    # replacing keeps when it was first registered and whether it is published
    assert (again.manifest, again.epsg, again.date, dict(again.summary)) == (
        tmp_path / "m2b.parquet", 32648, "2026-06-02", {"frames": 9})
    assert again.published is True and again.created == registered
    cat.set_published("b-2026-06", False)
    assert cat.survey("b-2026-06").published is False
    with pytest.raises(NotFoundError, match=r"no survey named 'nope'.*known: a-undated, Z-2026-06"):
        cat.survey("nope")
    with pytest.raises(NotFoundError):
        cat.set_published("nope", True)
    cat.add_product(_product("b-2026-06", "ndvi"))
    cat.put_stats("b-2026-06", "2026-06-02", "ndvi", [{"parcel_id": "P1", "mean": 0.4}])
    cat.put_calibration(_calibration("b-2026-06"))
    cat.delete_survey("b-2026-06")
    assert [s.name for s in cat.surveys()] == ["a-undated", "Z-2026-06", "Хужирт-2026-07"]
    assert cat.products("b-2026-06") == [] and cat.stats(survey="b-2026-06") == []
    assert cat.calibration("b-2026-06") is None
    with pytest.raises(NotFoundError):
        cat.delete_survey("b-2026-06")


# -- products ------------------------------------------------------------------------------------
def test_products_register_replace_find_and_filter(cat, tmp_path):
    cat.add_survey("s1", tmp_path / "m1", 32648, "2026-06-01", {})
    cat.add_survey("s2", tmp_path / "m2", 32648, "2026-07-01", {})
    t0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
    bands = (Band("red", 650.0, 16.0, "Red"), Band("nir", 840.0, 57.0, "NIR"))
    ortho = cat.add_product(_product("s1", "reflectance", ProductKind.REFLECTANCE, bands=bands,
                                     units="reflectance", created=t0,
                                     metadata={"calibration": {"method": "panel", "albedo": 0.49},
                                               "notes": ["Хөндий"]}))
    assert len(ortho.id) == 12 and ortho.created == t0
    ndvi = cat.add_product(_product("s1", "ndvi", relative=True, metadata={"formula": "(N-R)/(N+R)"}))
    assert ndvi.created is not None and ndvi.created > t0
    cat.add_product(_product("s2", "ndvi", id="fixed-id-0001", created=t0))
    back = cat.product("s1", "reflectance")
    assert back == ortho  # every field, bands and nested metadata included
    assert back.bands[1].center_nm == 840.0 and back.metadata["calibration"]["albedo"] == 0.49
    assert cat.product_by_id("fixed-id-0001").survey == "s2"
    assert cat.product_by_id(ndvi.id).relative is True
    # by registration time, then name
    assert [(p.survey, p.name) for p in cat.products()] == [("s2", "ndvi"), ("s1", "reflectance"),
                                                            ("s1", "ndvi")]
    assert [p.name for p in cat.products("s1")] == ["reflectance", "ndvi"]
    assert [p.survey for p in cat.products(kind=ProductKind.INDEX)] == ["s2", "s1"]
    assert [p.name for p in cat.products("s1", kind="reflectance")] == ["reflectance"]
    # re-registering by survey + name replaces, never duplicates
    newer = cat.add_product(_product("s1", "ndvi", units="1", metadata={"formula": "v2"}))
    assert newer.id != ndvi.id
    assert [p.metadata.get("formula") for p in cat.products("s1", kind=ProductKind.INDEX)] == ["v2"]
    with pytest.raises(NotFoundError):
        cat.product_by_id(ndvi.id)
    with pytest.raises(NotFoundError, match=r"survey 's1' has no product 'dsm' \(it has: reflectance, ndvi\)"):
        cat.product("s1", "dsm")
    with pytest.raises(NotFoundError, match="no survey named 'ghost'"):
        cat.add_product(_product("ghost", "ndvi"))
    assert len(cat.products()) == 3


# -- parcels -------------------------------------------------------------------------------------
def test_parcel_versions_close_the_previous_one(cat, tmp_path):
    assert cat.parcel_versions() == [] and cat.current_parcel_version() is None
    v1 = cat.add_parcel_version(tmp_path / "parcels-v1.gpkg", "Баянцагаан.geojson", 118,
                                {"repaired": 2, "dropped": []})
    v2 = cat.add_parcel_version(tmp_path / "parcels-v2.gpkg", None, 120, {"repaired": 0})
    versions = cat.parcel_versions()
    assert [v.version for v in versions] == [v1.version, v2.version] and v2.version > v1.version
    assert versions[0].path == tmp_path / "parcels-v1.gpkg" and versions[0].source == "Баянцагаан.geojson"
    assert versions[0].feature_count == 118 and dict(versions[0].report) == {"repaired": 2, "dropped": []}
    assert versions[0].valid_to is not None and versions[1].valid_to is None
    assert _iso_utc(versions[0].valid_to) == _iso_utc(versions[1].valid_from)
    assert _iso_utc(versions[0].valid_from) <= _iso_utc(versions[0].valid_to)
    assert cat.current_parcel_version() == versions[1]
    assert (v2.source, v2.feature_count) == (None, 120)


# -- statistics ----------------------------------------------------------------------------------
def test_stats_store_replace_filter_and_order(cat, tmp_path):
    cat.add_survey("s1", tmp_path / "m", 32648, "2026-06-01", {})
    cat.add_survey("s2", tmp_path / "m2", 32648, "2026-08-01", {})
    n = cat.put_stats("s2", "2026-08-01", "ndvi",
                      [{"parcel_id": "B", "mean": 0.52, "count": float("nan"), "p90": np.float32(0.75)},
                       {"parcel_id": "A", "mean": 0.42, "std": 0.05, "min": -0.1, "max": 0.9}],
                      parcel_version=3)
    assert n == 2
    assert cat.put_stats("s1", "2026-06-01", "ndvi",
                         [{"parcel_id": "A", "mean": 0.31, "count": 10, "cls": np.int64(2),
                           "label": "Сайн", "flags": ["edge"]}]) == 1
    cat.put_stats("s1", "2026-06-01", "gndvi", [{"parcel_id": 7, "median": 0.2}])
    series = cat.stats(parcel_id="A", index_name="ndvi")
    assert [(r["survey"], r["date"], r["mean"]) for r in series] == [("s1", "2026-06-01", 0.31),
                                                                     ("s2", "2026-08-01", 0.42)]
    first = series[0]
    assert first["cls"] == 2 and first["label"] == "Сайн" and first["flags"] == ["edge"]
    assert first["count"] == 10.0 and first["parcel_version"] is None and first["median"] is None
    assert set(first) == {"survey", "date", "index_name", "parcel_id", "parcel_version", "mean",
                          "median", "std", "min", "max", "p10", "p25", "p75", "p90", "count",
                          "valid_fraction", "cls", "label", "flags"}
    s2 = cat.stats(survey="s2")
    assert [r["parcel_id"] for r in s2] == ["A", "B"]
    assert s2[1]["count"] is None and s2[1]["p90"] == pytest.approx(0.75) and s2[1]["parcel_version"] == 3
    assert (s2[0]["std"], s2[0]["min"], s2[0]["max"]) == (0.05, -0.1, 0.9)
    assert [r["parcel_id"] for r in cat.stats(index_name="gndvi")] == ["7"]
    # a page of parcels in one query, and a bounded read
    assert [(r["survey"], r["parcel_id"]) for r in cat.stats(parcel_id=["B", "7", "Z"])] == [
        ("s1", "7"), ("s2", "B")]
    assert cat.stats(parcel_id=[]) == [] and len(cat.stats(survey="s2", limit=1)) == 1
    assert [r["parcel_id"] for r in cat.stats(survey="s2", parcel_id=("A",))] == ["A"]
    assert len(cat.stats()) == 4
    # a second run of the same survey + index replaces its rows
    assert cat.put_stats("s2", "2026-08-01", "ndvi", [{"parcel_id": "C", "mean": 0.1}]) == 1
    assert [r["parcel_id"] for r in cat.stats(survey="s2")] == ["C"]
    assert cat.put_stats("s2", "2026-08-01", "ndvi", []) == 0
    assert cat.stats(survey="s2") == [] and len(cat.stats()) == 2


# -- radiometric calibration ---------------------------------------------------------------------
def _calibration(survey: str, method: str = "panel", created: str = "2026-07-14T05:00:00+00:00"):
    return CalibrationRecord(
        survey=survey, id=f"cal-{method}", method=method, source="calibrate", panel_capture="IMG_0003",
        albedos={"blue": 0.492, "green": 0.491, "red": 0.490, "rededge": 0.489, "nir": np.float64(0.487)},
        irradiances={"blue": 1.2345678901234567},
        notes=["панель: 1 зураг", "sun sensor disagrees by 4%"],
        body={"absolute": True, "bands": {"blue": {"gain": 1.5e-05, "offset": 0.0}}}, created=created)


def test_calibration_store_replace_and_reingest(cat, tmp_path):
    cat.add_survey("s", tmp_path / "m", 32648, None, {})
    assert cat.calibration("s") is None and cat.calibration("no-such-survey") is None
    stored = cat.put_calibration(_calibration("s"))
    assert stored.id == "cal-panel"
    back = cat.calibration("s")
    assert (back.survey, back.id, back.method, back.source, back.panel_capture, back.created) == (
        "s", "cal-panel", "panel", "calibrate", "IMG_0003", "2026-07-14T05:00:00+00:00")
    # band order is the camera's, as written (not sorted)
    assert list(back.albedos.items()) == [("blue", 0.492), ("green", 0.491), ("red", 0.490),
                                          ("rededge", 0.489), ("nir", 0.487)]
    assert back.irradiances["blue"] == 1.2345678901234567  # full double precision
    assert list(back.notes) == ["панель: 1 зураг", "sun sensor disagrees by 4%"]
    assert back.body["bands"]["blue"]["gain"] == 1.5e-05
    assert back.summary()["absolute"] is True
    cat.put_calibration(_calibration("s", method="sensor", created="2026-07-15T00:00:00+00:00"))
    assert (cat.calibration("s").method, cat.calibration("s").id) == ("sensor", "cal-sensor")
    with pytest.raises(NotFoundError):
        cat.put_calibration(_calibration("ghost"))
    # re-ingesting the survey drops its calibration: the frames may differ
    cat.add_survey("s", tmp_path / "m", 32648, None, {}, replace=True)
    assert cat.calibration("s") is None


# -- jobs ----------------------------------------------------------------------------------------
def test_jobs_queue_run_finish_and_fail(cat):
    a = cat.add_job("pipeline", {"survey": "Хужирт", "indices": ["ndvi", "gndvi"], "epsg": 32648},
                    owner="officer")
    assert (a.kind, a.state, a.stage, a.progress, a.message, a.error, a.owner) == (
        "pipeline", "queued", None, 0.0, None, None, "officer")
    assert dict(a.params) == {"survey": "Хужирт", "indices": ["ndvi", "gndvi"], "epsg": 32648}
    assert dict(a.result) == {} and len(a.id) == 16 and a.created == a.updated
    b = cat.add_job("export", {"path": Path("/tmp/x.gpkg")})
    assert b.params["path"] == "/tmp/x.gpkg" and b.owner is None
    running = cat.update_job(a.id, state="running", stage="mosaic", progress=0.5, message="matching")
    assert (running.state, running.stage, running.progress, running.message) == (
        "running", "mosaic", 0.5, "matching")
    assert _iso_utc(running.updated) >= _iso_utc(running.created)
    assert [j.id for j in cat.jobs("running")] == [a.id]
    assert [j.id for j in cat.jobs("queued")] == [b.id]
    done = cat.update_job(a.id, state="done", progress=1.0,
                          result={"mosaic": {"products": ["orthomosaic"], "rmse_px": 0.41}})
    assert done.state == "done" and done.stage == "mosaic" and done.result["mosaic"]["rmse_px"] == 0.41
    failed = cat.update_job(b.id, state="failed", error="frame DJI_0031.JPG has no GPS")
    assert failed.error == "frame DJI_0031.JPG has no GPS" and dict(failed.params) == {"path": "/tmp/x.gpkg"}
    assert [(j.id, j.state) for j in cat.jobs()] == [(a.id, "done"), (b.id, "failed")]
    assert cat.jobs("running") == [] and cat.job(a.id) == done
    with pytest.raises(ValueError, match=r"cannot update job fields \['owner'\]"):
        cat.update_job(a.id, owner="someone")
    with pytest.raises(NotFoundError, match="no job with id 'nope'"):
        cat.update_job("nope", state="running")
    with pytest.raises(NotFoundError, match="no job with id 'nope'"):
        cat.job("nope")


def test_jobs_from_many_threads_each_stored_once(cat):
    ids: list[str] = []
    lock = threading.Lock()

    def submit(k: int) -> None:
        for i in range(10):
            job = cat.add_job("pipeline", {"n": k * 10 + i})
            cat.update_job(job.id, state="running", progress=0.1 * i)
            with lock:
                ids.append(job.id)

    threads = [threading.Thread(target=submit, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    jobs = cat.jobs()
    assert len(ids) == len(set(ids)) == 40
    assert sorted(j.id for j in jobs) == sorted(ids)
    assert sorted(j.params["n"] for j in jobs) == list(range(40))
    assert {j.state for j in jobs} == {"running"}


def test_job_queue_claims_oldest_first_renews_and_takes_over_stale_claims(cat):
    first = cat.add_job("pipeline", {"survey": "Хужирт"})
    other_kind = cat.add_job("cli-run", {"survey": "x"})
    second = cat.add_job("pipeline", {"survey": "Баянцагаан"})
    waiting = cat.add_job("pipeline", {"survey": "later"})
    cat.update_job(waiting.id, state="waiting")
    assert cat.claim_job("w1", [], stale_after=60) is None
    got = cat.claim_job("w1", ["pipeline"], stale_after=60)
    assert (got.id, got.state, got.worker, got.attempts) == (first.id, "running", "w1", 1)
    assert got.heartbeat is not None and _iso_utc(got.heartbeat) >= _iso_utc(got.created)
    # a named job, claimed by someone else already: nothing; the next one goes to the next worker
    assert cat.claim_job("w2", ["pipeline"], stale_after=60, job_id=first.id) is None
    nxt = cat.claim_job("w2", ["pipeline"], stale_after=60)
    assert (nxt.id, nxt.worker) == (second.id, "w2")
    assert cat.claim_job("w3", ["pipeline"], stale_after=60) is None  # waiting and cli-run stay
    assert cat.job(other_kind.id).state == "queued" and cat.job(waiting.id).state == "waiting"
    assert cat.heartbeat_job(first.id, "w1") is True
    assert cat.heartbeat_job(first.id, "w2") is False
    # only the holder may write while it runs
    assert cat.update_job(first.id, owned_by="w1", progress=0.25).progress == 0.25
    with pytest.raises(JobLostError, match=f"job {first.id} is no longer held by worker w2"):
        cat.update_job(first.id, owned_by="w2", progress=0.5)
    with pytest.raises(NotFoundError):
        cat.update_job("nope", owned_by="w1", progress=0.5)
    # w1 falls silent: once its heartbeat is older than the limit, w3 takes the job over
    time.sleep(1.2)
    cat.heartbeat_job(second.id, "w2")
    taken = cat.claim_job("w3", ["pipeline"], stale_after=1.0)
    assert (taken.id, taken.worker, taken.attempts, taken.progress) == (first.id, "w3", 2, 0.25)
    assert cat.claim_job("w4", ["pipeline"], stale_after=1.0) is None  # w2 still beats
    assert cat.heartbeat_job(first.id, "w1") is False
    with pytest.raises(JobLostError):
        cat.update_job(first.id, owned_by="w1", state="done")
    # back in the queue: claimable again; a finished job never is
    cat.update_job(second.id, owned_by="w2", state="queued", worker=None)
    assert cat.job(second.id).worker is None
    assert cat.claim_job("w5", ["pipeline"], stale_after=60).id == second.id
    cat.update_job(second.id, owned_by="w5", state="done")
    assert cat.heartbeat_job(second.id, "w5") is False
    time.sleep(1.2)
    assert cat.claim_job("w6", ["pipeline"], stale_after=1.0).id == first.id  # w3 fell silent too
    assert cat.claim_job("w6", ["pipeline"], stale_after=1.0) is None


def test_a_running_job_from_before_heartbeats_is_claimable(cat):
    job = cat.add_job("pipeline", {"survey": "old"})
    cat.update_job(job.id, state="running", result={"done": ["ingest"]})  # no worker, no heartbeat
    got = cat.claim_job("w1", ["pipeline"], stale_after=3600)
    assert got.id == job.id and got.result["done"] == ["ingest"] and got.attempts == 1


def test_each_job_is_claimed_by_exactly_one_of_many_claimers(cat, url, tmp_path):
    ids = {cat.add_job("pipeline", {"n": k}).id for k in range(24)}
    claims: list[tuple[str, str]] = []
    lock = threading.Lock()

    def claimer(name: str) -> None:
        own = open_catalog(url, tmp_path)  # its own connection, as another process would have
        try:
            while (job := own.claim_job(name, ["pipeline"], stale_after=60)) is not None:
                with lock:
                    claims.append((job.id, name))
        finally:
            own.close()

    threads = [threading.Thread(target=claimer, args=(f"w{k}",)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(j for j, _ in claims) == sorted(ids)  # every job once, none twice
    jobs = cat.jobs()
    assert {j.state for j in jobs} == {"running"} and {j.attempts for j in jobs} == {1}
    assert {j.id: j.worker for j in jobs} == dict(claims)


# -- users and audit -----------------------------------------------------------------------------
def test_users(cat):
    cat.add_user("officer", "$argon2id$v=19$x", "officer", soum="Хужирт", user_group="Өвөрхангай")
    cat.add_user("admin", "$argon2id$v=19$y", "admin")
    with pytest.raises(ConflictError, match="user 'admin' already exists"):
        cat.add_user("admin", "h", "viewer")
    u = cat.user("officer")
    assert {k: v for k, v in u.items() if k != "created"} == {
        "username": "officer", "password_hash": "$argon2id$v=19$x", "role": "officer",
        "soum": "Хужирт", "user_group": "Өвөрхангай"}
    assert isinstance(u["created"], str) and _iso_utc(u["created"]).year >= 2026
    assert [(x["username"], x["role"], x["soum"]) for x in cat.users()] == [
        ("admin", "admin", None), ("officer", "officer", "Хужирт")]
    assert cat.user("admin")["password_hash"] == "$argon2id$v=19$y"
    with pytest.raises(NotFoundError, match="no user 'ghost'"):
        cat.user("ghost")


def test_audit_trail_keeps_the_json_written(cat):
    cat.audit("officer", "parcel.edit", "parcel:P-7", before={"name": "Хөндий", "area_ha": 12.5},
              after={"name": "Хөндий-2", "area_ha": 12.5, "when": datetime(2026, 7, 1, tzinfo=UTC)})
    cat.audit(None, "parcels.upload", "parcels")
    cat.audit("admin", "parcel.delete", "parcel:P-7", before=[1, 2])
    log = cat.audit_log()
    assert [(a["id"] > 0, a["username"], a["action"], a["object"]) for a in log] == [
        (True, "officer", "parcel.edit", "parcel:P-7"), (True, None, "parcels.upload", "parcels"),
        (True, "admin", "parcel.delete", "parcel:P-7")]
    assert [a["id"] for a in log] == sorted(a["id"] for a in log)
    first = log[0]
    assert json.loads(first["before"]) == {"name": "Хөндий", "area_ha": 12.5}
    assert json.loads(first["after"])["when"] == "2026-07-01 00:00:00+00:00"
    assert "Хөндий" in first["after"]  # stored readable, not \\u-escaped
    assert log[1]["before"] is None and log[1]["after"] is None
    assert isinstance(first["at"], str) and _iso_utc(first["at"])
    assert [a["action"] for a in cat.audit_log("parcel:P-7")] == ["parcel.edit", "parcel.delete"]
    assert cat.audit_log("nothing") == []
    assert set(first) == {"id", "at", "username", "action", "object", "before", "after"}


def test_a_second_connection_sees_the_same_state(url, tmp_path):
    one = open_catalog(url, tmp_path)
    one.add_survey("s", tmp_path / "m", 32648, None, {"k": 1})
    job = one.add_job("pipeline", {})
    one.update_job(job.id, stage="mosaic")
    two = open_catalog(url, tmp_path)  # opening again applies no migration twice
    assert two.job(job.id).stage == "mosaic" and dict(two.survey("s").summary) == {"k": 1}
    one.close()
    two.close()

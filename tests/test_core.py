"""Core: packaging, the catalog, the manifest round trip, CRS helpers and safe file handling."""

from __future__ import annotations

import importlib
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from shapely.geometry import box

from belcheer.catalog import SQLiteCatalog
from belcheer.crs import crs_from_user, utm_epsg, utm_zone
from belcheer.errors import ConflictError, CRSError, NotFoundError, UnsafePathError
from belcheer.fileio import atomic_path, confined, safe_name, write_json_atomic
from belcheer.grid import geobox_for_bounds
from belcheer.manifest import read_manifest, write_manifest
from belcheer.models import (
    Band,
    Camera,
    Capture,
    Frame,
    Intrinsics,
    Pose,
    Problem,
    Product,
    ProductKind,
    Radiometry,
    Severity,
    Survey,
)

STAGES = ["belcheer", "belcheer.ingest", "belcheer.orthomosaic", "belcheer.indices",
          "belcheer.zoning", "belcheer.api", "belcheer.cli", "belcheer.simulate"]


@pytest.mark.parametrize("name", STAGES)
def test_every_stage_imports(name):
    mod = importlib.import_module(name)
    assert mod.__name__ == name


def test_stages_import_from_another_directory(tmp_path):
    # the editable install must work when the current directory is not the repository
    code = "import belcheer.ingest, belcheer.api; print(belcheer.ingest.__file__)"
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith(str(Path("ingest") / "__init__.py"))


@pytest.mark.parametrize("lon,lat,epsg", [(87.0, 48.0, 32645), (96.5, 46.0, 32647),
                                          (106.9, 47.9, 32648), (106.0, 50.2, 32648),
                                          (100.6, 46.2, 32647), (117.0, 47.0, 32650),
                                          (-92.0, 46.84, 32615), (18.2, 48.1, 32634)])
def test_utm_epsg(lon, lat, epsg):
    assert utm_epsg(lon, lat) == epsg


def test_utm_rejects_nonsense():
    with pytest.raises(CRSError):
        utm_zone(200.0)
    with pytest.raises(CRSError, match="cannot understand"):
        crs_from_user("EPSG:not-a-code")
    assert crs_from_user("28418").to_epsg() == 28418


def test_geobox_snaps_to_resolution():
    gb = geobox_for_bounds((500001.3, 5300002.2, 500099.1, 5300051.0), 32648, 0.5)
    assert gb.shape == (98, 197)
    assert gb.transform.c == 500001.0 and gb.transform.f == 5300051.0
    assert gb.crs.epsg == 32648


def _survey(tmp_path: Path) -> Survey:
    pose = Pose(lon=106.9, lat=47.9, alt_abs_m=1350.0, alt_rel_m=80.0, yaw=10.0, pitch=-90.0, roll=0.0)
    intr = Intrinsics(width_px=4000, height_px=3000, focal_mm=8.8, focal_px=2800.0,
                      sensor_width_mm=13.2, sensor_height_mm=8.8)
    frames = tuple(
        Frame(path=tmp_path / f"IMG_0001_{i}.tif", capture_id="IMG_0001",
              band=Band(name, wl, 20.0, label=name.title()), band_index=i,
              camera=Camera("MicaSense", "RedEdge-M", "RM01"), intrinsics=intr, pose=pose,
              time=datetime(2026, 7, 14, 4, 30, 0),
              radiometry=Radiometry(black_level=4800.0, radiometric_calibration=(1e-4, 1e-7, 1e-5),
                                    vignetting_center=(640.0, 480.0), irradiance=1.2,
                                    extra={"DLS:Yaw": 0.3}),
              tags={"CaptureId": "abc"},
              problems=(Problem("blurry", "Сэлэнгэ frame is blurry", Severity.WARNING),) if i == 2 else ())
        for i, (name, wl) in enumerate([("blue", 475.0), ("green", 560.0)], 1))
    cap = Capture(id="IMG_0001", frames=frames, footprint=box(0, 0, 10, 10), gsd_m=0.05)
    return Survey(name="Сэлэнгэ-2026-07", captures=(cap,), epsg=32648, source_dir=tmp_path,
                  created=datetime(2026, 7, 15))


def test_manifest_round_trip(tmp_path):
    survey = _survey(tmp_path)
    path = write_manifest(survey, tmp_path / "m.parquet")
    back = read_manifest(path)
    assert back == survey
    assert back.captures[0].frames[1].problems[0].message.startswith("Сэлэнгэ")
    assert back.bands[1].center_nm == 560.0
    assert back.is_multispectral is False  # blue+green only
    assert back.date == datetime(2026, 7, 14, 4, 30, 0)


def test_workspace_survey_and_products(workspace, tmp_path):
    survey = _survey(tmp_path)
    workspace.save_survey(survey, {"frames": 2})
    with pytest.raises(ConflictError, match="already exists"):
        workspace.save_survey(survey)
    assert workspace.survey(survey.name) == survey
    prod = workspace.add_product(Product(id="", survey=survey.name, kind=ProductKind.INDEX,
                                         name="ndvi", uri=tmp_path / "ndvi.tif", epsg=32648,
                                         units="1", metadata={"formula": "(N-R)/(N+R)"}))
    assert len(prod.id) == 12
    again = workspace.product(survey.name, "ndvi")
    assert again.metadata["formula"] == "(N-R)/(N+R)" and again.kind is ProductKind.INDEX
    with pytest.raises(NotFoundError, match="has no product 'dsm'"):
        workspace.product(survey.name, "dsm")
    with pytest.raises(UnsafePathError):
        workspace.product_path("../../etc", "x")


def test_catalog_stats_parcels_jobs(tmp_path):
    cat = SQLiteCatalog(tmp_path / "c.sqlite")
    cat.add_survey("s1", tmp_path / "m", 32648, "2026-06-01", {})
    cat.add_survey("s2", tmp_path / "m2", 32648, "2026-08-01", {})
    cat.put_stats("s1", "2026-06-01", "ndvi", [{"parcel_id": "A", "mean": 0.31, "count": 10, "cls": 2}])
    cat.put_stats("s2", "2026-08-01", "ndvi", [{"parcel_id": "A", "mean": 0.42, "count": float("nan")}])
    series = cat.stats(parcel_id="A", index_name="ndvi")
    assert [r["mean"] for r in series] == [0.31, 0.42]
    assert series[0]["cls"] == 2 and series[1]["count"] is None
    v1 = cat.add_parcel_version(tmp_path / "p1.gpkg", "a.geojson", 3, {})
    v2 = cat.add_parcel_version(tmp_path / "p2.gpkg", "b.geojson", 4, {})
    versions = cat.parcel_versions()
    assert versions[0].valid_to is not None and versions[1].valid_to is None
    assert cat.current_parcel_version().version == v2.version != v1.version
    job = cat.add_job("pipeline", {"survey": "s1"})
    job = cat.update_job(job.id, state="running", stage="mosaic", progress=0.5)
    assert (job.state, job.stage, job.progress) == ("running", "mosaic", 0.5)
    # the catalog is a file: a second connection sees the same state
    assert SQLiteCatalog(tmp_path / "c.sqlite").job(job.id).stage == "mosaic"


def test_atomic_write_leaves_old_file_on_error(tmp_path):
    target = tmp_path / "out.json"
    write_json_atomic(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text(encoding="utf-8").strip().startswith("{")
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_confined_paths(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "link").symlink_to(tmp_path)
    assert confined(tmp_path / "root", "a/b.tif") == (tmp_path / "root" / "a" / "b.tif").resolve()
    for bad in ("../x", "/etc/passwd", "link/secret"):
        with pytest.raises(UnsafePathError):
            confined(tmp_path / "root", bad)
    assert safe_name("Баянхонгор-2026") == "Баянхонгор-2026"
    for bad in ("..", "a/b", "", "x\x00"):
        with pytest.raises(UnsafePathError):
            safe_name(bad)


def test_cli_help_lists_commands():
    from belcheer.cli import main

    assert main(["--help"]) == 0


def test_domain_objects_pickle_for_process_workers(tmp_path):
    import pickle

    survey = _survey(tmp_path)
    back = pickle.loads(pickle.dumps(survey))
    assert back == survey
    frame = back.captures[0].frames[0]
    assert frame.radiometry.extra["DLS:Yaw"] == 0.3
    with pytest.raises(TypeError, match="read-only"):
        frame.tags["CaptureId"] = "changed"


def test_opencv_without_ipp_after_importing_belcheer() -> None:
    """OpenCV's IPP paths depend on where NumPy put the input: belcheer switches them off for
    every thread before cv2 loads (a fresh interpreter, as the CLI and workers start)."""
    import subprocess
    import sys

    code = ("import threading, belcheer, cv2; r = []; "
            "t = threading.Thread(target=lambda: r.append(cv2.ipp.useIPP())); t.start(); t.join(); "
            "print(cv2.ipp.useIPP(), r[0])")
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("OPENCV_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["False", "False"], out
    assert "IPP" not in out.stderr, out.stderr  # no notice on the user's terminal

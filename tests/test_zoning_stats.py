"""Zonal statistics: exactness against exactextract, synthetic truth, bad inputs, catalog."""

from __future__ import annotations

from pathlib import Path

import exactextract
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from test_zoning_support import EPSG, add_survey, render_ndvi, scene_parcels, true_means

from belcheer.errors import CRSError, NotFoundError
from belcheer.zoning import DEFAULT_STATS, read_parcels, save_parcels, survey_stats, zonal_stats
from belcheer.zoning.parcels import normalise_parcels
from belcheer.zoning.rasterout import write_array_cog

ORIGIN = (600_000.0, 4_850_000.0)


@pytest.mark.real
def test_real_parcels_equal_exactextract(real_data: Path) -> None:
    folder = real_data / "farm_parcels_nl"
    raster = folder / "5-sentinel2-ndvi_demo.tif"
    parcels = read_parcels(folder / "1-percelen.geojson").frame
    # small groups force many windows: results must not depend on the split
    ours = zonal_stats(raster, parcels, block_px=256)
    ref = exactextract.exact_extract(
        str(raster), parcels.to_crs(32631),
        ["mean", "median", "stdev", "min", "max", "quantile(q=0.1)", "quantile(q=0.9)", "count"],
        include_cols=["parcel_id"], output="pandas").set_index("parcel_id").loc[ours["parcel_id"]]
    assert list(ours.columns) == ["parcel_id", *DEFAULT_STATS]
    for mine, theirs in [("mean", "mean"), ("median", "median"), ("std", "stdev"), ("min", "min"),
                         ("max", "max"), ("p10", "quantile_10"), ("p90", "quantile_90"), ("count", "count")]:
        np.testing.assert_allclose(ours[mine].to_numpy(), ref[theirs].to_numpy(), atol=1e-6, rtol=0,
                                   err_msg=mine)
    assert ((ours["valid_fraction"] > 0.5) & (ours["valid_fraction"] <= 1)).all()
    # grassland parcels (CROP = Grasland) are green in this scene; sugar beet and potatoes less so
    crop = parcels.set_index("parcel_id")["CROP"]
    by_crop = ours.assign(crop=ours["parcel_id"].map(crop)).groupby("crop")["mean"].mean()
    grass = ours[ours["parcel_id"].map(crop) == "Grasland"]
    assert len(grass) == 12 and grass["mean"].notna().all()
    assert 0.5 < grass["mean"].mean() < 0.9
    assert by_crop["Grasland"] > by_crop["Aardappel"]
    # the same through the processes scheduler (what gives real parallelism)
    proc = zonal_stats(raster, parcels.iloc[:10], scheduler="processes", workers=2, block_px=256)
    np.testing.assert_allclose(proc["mean"], ours["mean"].iloc[:10], atol=1e-12)


def _scene(tmp_path: Path, gradient: float = 0.08, nan_box=None):
    parcels = scene_parcels(ORIGIN, n=6)
    values = {p: v for p, v in zip(parcels["parcel_id"], [0.18, 0.27, 0.35, 0.44, 0.52, 0.61], strict=True)}
    arr, t = render_ndvi(parcels, values, gradient=gradient, nan_box=nan_box)
    path = write_array_cog(arr, tmp_path / "ndvi.tif", transform=t, crs=f"EPSG:{EPSG}", dtype="float32",
                           nodata=float("nan"))
    return parcels, values, arr, t, path


def test_synthetic_means_match_truth(tmp_path: Path) -> None:
    parcels, values, arr, t, path = _scene(tmp_path)
    truth = true_means(parcels, values, 0.08, t.c)
    frame = normalise_parcels(parcels).frame  # EPSG:4326, as stored in a workspace
    stats = zonal_stats(path, frame)
    err = (stats.set_index("parcel_id")["mean"] - pd.Series(truth)).abs()
    assert err.max() < 0.02
    assert (stats["valid_fraction"] > 0.999).all()
    # median/percentiles are ordered and bracket the mean
    assert (stats["p10"] <= stats["median"]).all() and (stats["median"] <= stats["p90"]).all()
    assert (stats["min"] <= stats["p10"]).all() and (stats["p90"] <= stats["max"]).all()


def test_missing_parcels_nodata_and_crs_mismatch(tmp_path: Path) -> None:
    parcels, values, arr, t, path = _scene(tmp_path, gradient=0.0)
    # knock out the left half of parcel P02 with NaN
    p2 = parcels.geometry.iloc[1]
    minx, miny, maxx, maxy = p2.bounds
    arr2 = arr.copy()
    c_mid = int(((minx + maxx) / 2 - t.c) / t.a)
    arr2[:, : c_mid] = np.nan
    path2 = write_array_cog(arr2, tmp_path / "ndvi_half.tif", transform=t, crs=f"EPSG:{EPSG}",
                            dtype="float32", nodata=float("nan"))
    far = shapely.affinity.translate(parcels.geometry.iloc[0], 50_000, 0)
    extra = gpd.GeoDataFrame({"parcel_id": ["FAR"]}, geometry=[far], crs=EPSG)
    both = gpd.GeoDataFrame(pd.concat([parcels[["parcel_id", "geometry"]], extra]), crs=EPSG)
    s = zonal_stats(path2, both).set_index("parcel_id")
    assert np.isnan(s.loc["FAR", "mean"]) and s.loc["FAR", "count"] == 0 and s.loc["FAR", "valid_fraction"] == 0
    assert np.isnan(s.loc["P01", "mean"])  # entirely in the NaN half
    assert 0.3 < s.loc["P02", "valid_fraction"] < 0.7
    assert s.loc["P02", "mean"] == pytest.approx(values["P02"], abs=0.01)
    assert s.loc["P06", "valid_fraction"] > 0.999
    empty = zonal_stats(path2, both.iloc[:0])  # no parcels: an empty table, not an error
    assert empty.empty and list(empty.columns) == ["parcel_id", *DEFAULT_STATS]
    # parcels declared in the wrong CRS (metres read as lon/lat would be; here: UTM 47N) miss entirely
    wrong = parcels.set_crs(32647, allow_override=True)
    with pytest.raises(CRSError) as exc:
        zonal_stats(path, wrong)
    msg = str(exc.value)
    assert "32648" in msg and "32647" in msg and "bounds" in msg


def test_categorical_shares(tmp_path: Path) -> None:
    from affine import Affine

    classes = np.zeros((100, 100), dtype="uint8")
    classes[:, :50] = 1
    classes[:, 50:75] = 3
    classes[:, 75:] = 5
    t = Affine(1.0, 0, ORIGIN[0], 0, -1.0, ORIGIN[1] + 100)
    path = write_array_cog(classes, tmp_path / "cls.tif", transform=t, crs=f"EPSG:{EPSG}", dtype="uint8", nodata=0)
    box = shapely.box(ORIGIN[0] + 40, ORIGIN[1], ORIGIN[0] + 80, ORIGIN[1] + 100)  # 10 m of 1, 25 of 3, 5 of 5
    s = zonal_stats(path, gpd.GeoDataFrame({"parcel_id": ["x"]}, geometry=[box], crs=EPSG),
                    stats=("count",), categorical=True)
    assert s.loc[0, "frac_1"] == pytest.approx(0.25) and s.loc[0, "frac_3"] == pytest.approx(0.625)
    assert s.loc[0, "frac_5"] == pytest.approx(0.125) and s.loc[0, "majority"] == "3"


def test_survey_stats_stores_time_series(workspace, tmp_path: Path) -> None:
    parcels, values, arr, t, _ = _scene(tmp_path, gradient=0.0)
    save_parcels(workspace, normalise_parcels(parcels).frame, source="test")
    add_survey(workspace, "Хөх-2026-06", "2026-06-15", arr, t)
    add_survey(workspace, "Хөх-2026-08", "2026-08-15", arr - 0.1, t)
    with pytest.raises(NotFoundError, match="evi"):
        survey_stats(workspace, "Хөх-2026-06", ["evi"])
    seen = []
    table = survey_stats(workspace, "Хөх-2026-06", progress=lambda f, m: seen.append(f))
    survey_stats(workspace, "Хөх-2026-08", ["ndvi"])
    assert seen[-1] == 1.0
    assert len(table) == 6 and set(table["index"]) == {"ndvi"} and table.crs.to_epsg() == 4326
    series = workspace.catalog.stats(parcel_id="P03", index_name="ndvi")
    assert [r["date"] for r in series] == ["2026-06-15", "2026-08-15"]
    assert series[0]["mean"] == pytest.approx(values["P03"], abs=0.01)
    assert series[1]["mean"] - series[0]["mean"] == pytest.approx(-0.1, abs=1e-4)
    assert series[0]["p90"] is not None and series[0]["valid_fraction"] > 0.99


def _many_parcels(tmp_path: Path, n: int = 300, size: int = 1200):
    """``n`` random heptagons (radius 8–30 m) on a noisy 1 m float32 raster with a NaN strip,
    tiled 128² so that parcels straddle many compressed tiles."""
    from affine import Affine

    rng = np.random.default_rng(7)
    t = Affine(1.0, 0, ORIGIN[0], 0, -1.0, ORIGIN[1] + size)
    arr = (0.4 + 0.2 * np.sin(np.arange(size)[None, :] / 90.0) + rng.normal(0, 0.05, (size, size))).astype("float32")
    arr[500:520, :] = np.nan
    path = tmp_path / "noise.tif"
    import rasterio

    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=1, dtype="float32",
                       crs=f"EPSG:{EPSG}", transform=t, nodata=float("nan"), tiled=True, blockxsize=128,
                       blockysize=128, compress="deflate") as dst:
        dst.write(arr, 1)
    cx = ORIGIN[0] + rng.uniform(20, size - 20, n)
    cy = ORIGIN[1] + rng.uniform(20, size - 20, n)
    ang = np.sort(rng.uniform(0, 2 * np.pi, (n, 7)), axis=1)
    rad = rng.uniform(8, 30, (n, 1)) * rng.uniform(0.7, 1.0, (n, 7))
    geoms = [shapely.Polygon(np.c_[x, y]).buffer(0) for x, y in
             zip(cx[:, None] + rad * np.cos(ang), cy[:, None] + rad * np.sin(ang), strict=True)]
    # one parcel off the raster, and one id used twice: rows must still come back in order
    geoms.append(shapely.box(ORIGIN[0] - 500, ORIGIN[1], ORIGIN[0] - 400, ORIGIN[1] + 100))
    ids = [f"q{i}" for i in range(n)] + ["off"]
    ids[5] = ids[6]
    return path, gpd.GeoDataFrame({"parcel_id": ids}, geometry=geoms, crs=EPSG)


@pytest.mark.parametrize("scheduler,workers,block_px", [("synchronous", None, 2048), ("threads", 2, 300),
                                                        ("processes", 2, 256), ("processes", 3, 100),
                                                        (None, None, 2048)])
def test_results_do_not_depend_on_scheduler_or_split(tmp_path: Path, scheduler, workers, block_px) -> None:
    path, parcels = _many_parcels(tmp_path)
    ours = zonal_stats(path, parcels, scheduler=scheduler, workers=workers, block_px=block_px)
    ref = exactextract.exact_extract(
        str(path), parcels.iloc[:-1],
        ["mean", "median", "stdev", "min", "max", "quantile(q=0.1)", "quantile(q=0.25)", "quantile(q=0.75)",
         "quantile(q=0.9)", "count"], output="pandas")
    assert ours["parcel_id"].tolist() == parcels["parcel_id"].tolist()
    on = ours.iloc[:-1]
    for mine, theirs in [("mean", "mean"), ("median", "median"), ("std", "stdev"), ("min", "min"),
                         ("max", "max"), ("p10", "quantile_10"), ("p25", "quantile_25"), ("p75", "quantile_75"),
                         ("p90", "quantile_90"), ("count", "count")]:
        np.testing.assert_allclose(on[mine].to_numpy(), ref[theirs].to_numpy(), atol=1e-6, rtol=0, err_msg=mine)
    off = ours.iloc[-1]
    assert np.isnan(off["mean"]) and off["count"] == 0 and off["valid_fraction"] == 0
    # the NaN strip (pixel-aligned) removes exactly the parcels' area inside it
    strip = shapely.box(ORIGIN[0], ORIGIN[1] + 680, ORIGIN[0] + 1200, ORIGIN[1] + 700)
    geoms = parcels.geometry.iloc[:-1].to_numpy()
    inside = shapely.area(shapely.intersection(geoms, strip)) / shapely.area(geoms)
    assert (inside > 0.05).sum() > 3
    np.testing.assert_allclose(on["valid_fraction"].to_numpy(), 1 - inside, atol=1e-9)


def test_chunks_are_compact_and_balanced() -> None:
    from belcheer.zoning.stats import _bisect, _spatial_order

    rng = np.random.default_rng(3)
    col, row = rng.uniform(0, 8000, 4000), rng.uniform(0, 4000, 4000)
    work = rng.uniform(1, 3, 4000)
    parts = _bisect(col, row, work, 4)
    assert sorted(np.concatenate(parts).tolist()) == list(range(4000))
    shares = np.array([work[p].sum() for p in parts]) / work.sum()
    np.testing.assert_allclose(shares, 0.25, atol=0.01)
    # 8000 × 4000 is cut across its long side into two 4000² halves, each of which is halved
    # again: four 4000 × 2000 (or 2000 × 4000) parts, never thin 8000 × 1000 strips
    for p in parts:
        w, h = np.ptp(col[p]), np.ptp(row[p])
        assert max(w, h) < 4100 and min(w, h) < 2100
    # serpentine block order: consecutive blocks are neighbours (no jump across the raster)
    o = _spatial_order(col, row, 1000)
    bc, br = np.floor(col[o] / 1000), np.floor(row[o] / 1000)
    step = np.abs(np.diff(bc)) + np.abs(np.diff(br))
    assert step.max() == 1


def test_auto_scheduler_stays_in_process_for_small_jobs_and_threads() -> None:
    import threading

    from belcheer.zoning.stats import PARALLEL_MIN_PX, _auto_scheduler

    assert _auto_scheduler("a.tif", PARALLEL_MIN_PX / 10, 2) == "synchronous"
    assert _auto_scheduler("a.tif", PARALLEL_MIN_PX * 10, 1) == "synchronous"
    assert _auto_scheduler("/vsimem/a.tif", PARALLEL_MIN_PX * 10, 2) == "synchronous"
    import sys

    big = _auto_scheduler("a.tif", PARALLEL_MIN_PX * 10, 2)
    assert big == ("processes" if sys.platform.startswith("linux") else "synchronous")
    # never fork from a background thread (the API's jobs): another thread may hold GDAL's locks
    seen = []
    th = threading.Thread(target=lambda: seen.append(_auto_scheduler("a.tif", PARALLEL_MIN_PX * 10, 2)))
    th.start()
    th.join()
    assert seen == ["synchronous"]


def test_import_does_not_load_scikit_learn_or_matplotlib() -> None:
    import subprocess
    import sys

    # nor the settings (pydantic-settings) and the workspace's catalog (pyarrow): ≈ 0.1 s that
    # zonal_stats never needs; belcheer's top-level names still resolve on first use
    code = ("import sys, belcheer.zoning; "
            "print(sorted(m for m in ('sklearn', 'matplotlib', 'mapclassify', 'pydantic_settings', "
            "'belcheer.config', 'belcheer.workspace', 'belcheer.catalog') if m in sys.modules)); "
            "import belcheer; from belcheer import open_workspace; "
            "print(belcheer.Settings.__name__, belcheer.Workspace.__name__, open_workspace.__name__)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.split("\n")[:2] == ["[]", "Settings NotebookWorkspace open_workspace"]


def test_scaled_and_masked_rasters_match_exactextract(tmp_path: Path) -> None:
    """Plain reads are used only where they give exactextract's numbers; a scale/offset or a
    mask band falls back to exactextract's own rasterio source."""
    import rasterio
    from affine import Affine

    from belcheer.zoning.stats import _PlainSource, _source

    rng = np.random.default_rng(11)
    t = Affine(1.0, 0, ORIGIN[0], 0, -1.0, ORIGIN[1] + 200)
    parcels = gpd.GeoDataFrame(
        {"parcel_id": ["a", "b", "c"]},
        geometry=[shapely.box(ORIGIN[0] + 10.3, ORIGIN[1] + 20.6, ORIGIN[0] + 90.2, ORIGIN[1] + 180.1),
                  shapely.Point(ORIGIN[0] + 140, ORIGIN[1] + 100).buffer(45.5),
                  shapely.box(ORIGIN[0] + 95.5, ORIGIN[1] + 5.5, ORIGIN[0] + 105.5, ORIGIN[1] + 195.5)],
        crs=EPSG)
    ops = ["mean", "median", "min", "max", "count"]
    kw = dict(driver="GTiff", width=200, height=200, count=1, crs=f"EPSG:{EPSG}", transform=t, tiled=True,
              blockxsize=64, blockysize=64)
    scaled = tmp_path / "scaled.tif"
    with rasterio.open(scaled, "w", dtype="int16", nodata=-1, **kw) as dst:
        arr = rng.integers(0, 9000, (200, 200)).astype("int16")
        arr[:, :30] = -1
        dst.write(arr, 1)
        dst.scales, dst.offsets = (0.0001,), (0.05,)
    masked = tmp_path / "masked.tif"
    with rasterio.open(masked, "w", dtype="uint8", **kw) as dst:
        dst.write(rng.integers(1, 250, (200, 200)).astype("uint8"), 1)
        mask = np.full((200, 200), 255, dtype="uint8")
        mask[:, 100:] = 0  # right half masked out by the dataset's mask band, no nodata value
        dst.write_mask(mask)
    plain = tmp_path / "plain.tif"
    with rasterio.open(plain, "w", dtype="float32", nodata=float("nan"), **kw) as dst:
        dst.write(rng.normal(0.5, 0.1, (200, 200)).astype("float32"), 1)
    for path, is_plain in [(scaled, False), (masked, False), (plain, True)]:
        with rasterio.open(path) as ds:
            assert isinstance(_source(ds, 1), _PlainSource) is is_plain, path.name
        ours = zonal_stats(path, parcels, stats=("mean", "median", "min", "max", "count"))
        ref = exactextract.exact_extract(str(path), parcels, ops, output="pandas")
        for c in ops:
            np.testing.assert_allclose(ours[c].to_numpy(), ref[c].to_numpy(), atol=1e-6, rtol=0,
                                       err_msg=f"{path.name} {c}")
    # the scale and offset were applied (values 0.05…0.95, not 0…9000) and the mask honoured
    s = zonal_stats(scaled, parcels, stats=("min", "max"))
    assert 0.05 <= s["min"].min() and s["max"].max() <= 0.95
    m = zonal_stats(masked, parcels, stats=("count",)).set_index("parcel_id")["count"]
    assert m["a"] == pytest.approx(79.9 * 159.5, rel=1e-9)  # entirely in the unmasked half
    assert m["c"] == pytest.approx(4.5 * 190, rel=1e-9)     # only its part left of column 100

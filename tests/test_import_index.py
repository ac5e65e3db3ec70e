"""Bring your own index: an index raster made elsewhere (here the real Sentinel-2 NDVI over the
Dutch parcels) registered for statistics, condition and change; catalogue indices computed
lazily from a survey's reflectance when not stored."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine
from conftest import real_dataset
from exactextract import exact_extract

from belcheer import open_workspace
from belcheer.cli import main
from belcheer.errors import InputError
from belcheer.indices import import_index
from belcheer.models import Band, Product, ProductKind
from belcheer.zoning import change, condition_raster, load_parcels, survey_stats


@pytest.mark.real
def test_import_sentinel2_ndvi_for_stats_condition_change(real_data: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    nl = real_dataset(real_data, "farm_parcels_nl")
    tif, parcels_file = nl / "5-sentinel2-ndvi_demo.tif", nl / "1-percelen.geojson"
    ws_dir = tmp_path / "ws"
    assert main(["-w", str(ws_dir), "parcels", "import", str(parcels_file)]) == 0
    capsys.readouterr()
    assert main(["-w", str(ws_dir), "import-index", str(tif), "--index", "NDVI", "--survey", "nl-s2",
                 "--date", "2026-06-01", "--json"]) == 0
    prod = json.loads(capsys.readouterr().out)
    assert prod["kind"] == "index" and prod["name"] == "ndvi" and prod["epsg"] == 32631
    ws = open_workspace(ws_dir)
    assert ws.catalog.survey("nl-s2").date.startswith("2026-06-01")
    with rasterio.open(prod["path"]) as dst, rasterio.open(tif) as src:
        assert dst.dtypes[0] == "float32" and np.isnan(dst.nodata) and dst.crs == src.crs
        got, want = dst.read(1), src.read(1, masked=True)
        np.testing.assert_array_equal(np.isnan(got), np.ma.getmaskarray(want))
        np.testing.assert_allclose(got[~np.isnan(got)], want.compressed(), rtol=0, atol=0)

    # statistics: the same numbers as exactextract straight on the source file
    table = survey_stats(ws, "nl-s2", ["ndvi"]).set_index("parcel_id")
    parcels = load_parcels(ws)
    direct = exact_extract(str(tif), parcels.to_crs(32631), ["mean"], include_cols=["parcel_id"],
                           output="pandas").set_index("parcel_id")
    both = table["mean"].dropna()
    assert len(both) >= 50
    np.testing.assert_allclose(both, direct.loc[both.index, "mean"], atol=1e-6)
    stored = pd.DataFrame(ws.catalog.stats(survey="nl-s2", index_name="ndvi"))
    assert len(stored) == len(parcels)

    # condition from the imported index
    cond = condition_raster(ws, "nl-s2", index="ndvi")
    with rasterio.open(cond.path) as c:
        classes = c.read(1)
    assert set(np.unique(classes)) - {0} <= {1, 2, 3, 4, 5} and (classes > 0).sum() > 1000

    # change: a second survey of the same place, 0.1 lower everywhere
    lower = tmp_path / "s2-later.tif"
    with rasterio.open(tif) as src:
        prof = src.profile
        arr = src.read(1, masked=True)
    with rasterio.open(lower, "w", **prof) as dst:
        dst.write(np.ma.filled(arr - 0.1, prof["nodata"]).astype("float32"), 1)
    import_index(ws, lower, index="ndvi", survey="nl-s2-later", date="2026-08-01")
    res = change(ws, "nl-s2", "nl-s2-later", index="ndvi")
    deltas = res.table["delta"].dropna()
    assert len(deltas) >= 50
    np.testing.assert_allclose(deltas, -0.1, atol=1e-4)


def _write(path: Path, data: np.ndarray, dtype: str, nodata: float | None, count: int = 1,
           descriptions: tuple[str, ...] = ()) -> Path:
    t = Affine(1.0, 0, 600_000, 0, -1.0, 4_850_064)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[-1], height=data.shape[-2],
                       count=count, dtype=dtype, crs="EPSG:32648", transform=t, nodata=nodata) as dst:
        dst.write(data.reshape(count, *data.shape[-2:]).astype(dtype))
        for i, d in enumerate(descriptions, 1):
            dst.set_band_description(i, d)
    return path


def test_scaled_index_needs_scale(tmp_path: Path) -> None:
    ws = open_workspace(tmp_path / "ws")
    ndvi = np.linspace(-0.2, 0.9, 64 * 64).reshape(64, 64)
    scaled = _write(tmp_path / "ndvi_x10000.tif", np.round(ndvi * 10000), "int16", -32768)
    with pytest.raises(InputError, match="--scale"):
        import_index(ws, scaled, index="ndvi", survey="s")
    prod = import_index(ws, scaled, index="ndvi", survey="s", scale=0.0001, date="2026-07-01")
    with rasterio.open(prod.path) as src:
        np.testing.assert_allclose(src.read(1), ndvi, atol=6e-5)
    with pytest.raises(InputError, match="ISO date"):
        import_index(ws, scaled, index="ndvi", survey="t", scale=0.0001, date="July 1st")


def test_survey_index_computes_catalogue_index_lazily(tmp_path: Path) -> None:
    ws = open_workspace(tmp_path / "ws")
    rng = np.random.default_rng(0)
    refl = rng.uniform(0.02, 0.5, (5, 64, 64)).astype("float32")
    names = ("blue", "green", "red", "rededge", "nir")
    path = _write(tmp_path / "reflectance.tif", refl, "float32", None, count=5, descriptions=names)
    from belcheer.models import Survey

    ws.save_survey(Survey(name="ms", captures=(), epsg=32648, source_dir=tmp_path))
    ws.add_product(Product(id="", survey="ms", kind=ProductKind.REFLECTANCE, name="reflectance",
                           uri=path, epsg=32648, bands=tuple(Band(n) for n in names)))
    evi = ws.survey("ms").index("evi")
    assert evi.name == "evi" and evi.shape == (64, 64)
    b, r, n = refl[0], refl[2], refl[4]
    want = 2.5 * (n - r) / (n + 6 * r - 7.5 * b + 1)
    np.testing.assert_allclose(evi.values, want, rtol=1e-4, atol=1e-5)
    with pytest.raises(InputError):
        ws.survey("ms").index("no_such_index")

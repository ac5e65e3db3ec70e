"""Fractional cover (green / dry / bare) by spectral unmixing, against the simulator's cover
truth: the demo scene (scene seed 7, 2 ha) in July, and in September with degraded parcels."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from pyproj import Transformer

from belcheer.grid import geobox_for_bounds
from belcheer.models import Band, Product, ProductKind, Survey
from belcheer.simulate import layout as lay
from belcheer.simulate.run import MARGIN_M
from belcheer.simulate.scene import COVER_NODATA, SCALE, render_truth
from belcheer.simulate.spectra import BANDS
from belcheer.zoning import cover_raster, cover_rollup, import_parcels, parcel_cover, parcel_report
from belcheer.zoning.cover import DEFAULT_ENDMEMBERS, cover_raster_file, endmembers_from_polygons

RES, DECIMATE = 0.16, 2
EPSG = lay.EPSG


def _write(path: Path, data: np.ndarray, transform: Affine, names: tuple[str, ...] = ()) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1],
                       count=data.shape[0], dtype="float32", crs=f"EPSG:{EPSG}", transform=transform,
                       nodata=float("nan")) as dst:
        dst.write(data.astype("float32"))
        for i, n in enumerate(names, 1):
            dst.set_band_description(i, n)
    return path


def _scene(tmp: Path, date: _dt.date, degradation: float):
    """Truth reflectance of the demo's flown square on 0.32 m pixels and the cover truth of the
    same square (0.16 m), written as GeoTIFFs; the layout's parcels."""
    to_utm = Transformer.from_crs(4326, EPSG, always_xy=True)
    cx, cy = (round(v) for v in to_utm.transform(*lay.CENTER_LONLAT))
    half = float(np.sqrt(2.0 * 1e4) / 2)
    layout = lay.plan_layout((cx, cy), half, MARGIN_M, np.random.default_rng([7, 1]))
    gb = geobox_for_bounds((cx - half - MARGIN_M, cy - half - MARGIN_M, cx + half + MARGIN_M,
                            cy + half + MARGIN_M), EPSG, RES)
    truth = render_truth(layout, gb, date, degradation, 7)
    m, n = int(round(MARGIN_M / RES)), int(2 * half / RES) // DECIMATE * DECIMATE
    refl = truth.reflectance[:, m:m + n, m:m + n].astype("float32") / np.float32(SCALE)
    refl = refl.reshape(5, n // DECIMATE, DECIMATE, n // DECIMATE, DECIMATE).mean(axis=(2, 4))
    t = gb.transform * Affine.translation(m, m)
    # the same flown square as the reflectance: pasture-use areas reach far beyond it
    cover = truth.cover[:, m:m + n, m:m + n]
    cov = cover.astype("float32") / np.float32(SCALE)
    cov[cover == COVER_NODATA] = np.nan
    # the truth's fractions are shares of the ground: they sum to one wherever defined
    ok = np.isfinite(cov[0])
    np.testing.assert_allclose(cov[:, ok].sum(axis=0), 1.0, atol=3e-4)
    return (_write(tmp / "reflectance.tif", refl, t * Affine.scale(DECIMATE), BANDS),
            _write(tmp / "cover_truth.tif", cov, t), layout)


@pytest.mark.parametrize(("date", "degradation"), [(_dt.date(2026, 7, 15), 0.0), (_dt.date(2026, 9, 20), 0.5)])
def test_cover_within_5_points_of_truth(tmp_path: Path, date: _dt.date, degradation: float) -> None:
    refl, truth_path, layout = _scene(tmp_path, date, degradation)
    est = parcel_cover(cover_raster_file(refl, tmp_path / "cover.tif"), layout.parcels).set_index("parcel_id")
    truth = parcel_cover(truth_path, layout.parcels).set_index("parcel_id")
    assert len(est) == len(layout.parcels) >= 8
    np.testing.assert_allclose(est[["green_cover", "dry_cover", "bare_cover"]].sum(axis=1), 1.0, atol=1e-9)
    rmse = {c: float(np.sqrt(np.mean((est[f"{c}_cover"] - truth[f"{c}_cover"]) ** 2))) for c in
            ("green", "dry", "bare")}
    assert max(rmse.values()) <= 0.05, rmse
    # the season shows: dry vegetation is a trace in July and a large share in September
    past = layout.parcels.loc[layout.parcels.land_use == "pasture", "parcel_id"]
    dry = est.loc[past, "dry_cover"].mean()
    assert (dry < 0.06) if date.month == 7 else (dry > 0.25), dry
    # valid over most of each parcel's flown part (the parcels reach beyond the flight)
    with rasterio.open(refl) as src:
        square = shapely.box(*src.bounds)
    flown = layout.parcels.set_index("parcel_id").geometry
    inside = (flown.intersection(square).area / flown.area).loc[est.index]
    assert (est["cover_valid_fraction"] / inside > 0.85).all(), est["cover_valid_fraction"] / inside


def test_cover_in_the_workspace_report_and_soum(tmp_path: Path, workspace, real_data: Path) -> None:
    refl, truth_path, layout = _scene(tmp_path, _dt.date(2026, 9, 20), 0.5)
    workspace.save_survey(Survey(name="s", captures=(), epsg=EPSG, source_dir=tmp_path))
    workspace.catalog.add_survey("s", workspace.manifest_path("s"), EPSG, "2026-09-20", {}, replace=True)
    workspace.add_product(Product(id="", survey="s", kind=ProductKind.REFLECTANCE, name="reflectance",
                                  uri=refl, epsg=EPSG, bands=tuple(Band(b) for b in BANDS)))
    parcels_file = tmp_path / "parcels.gpkg"
    layout.parcels.to_file(parcels_file)
    import_parcels(workspace, parcels_file)
    prod = cover_raster(workspace, "s")
    assert prod.kind is ProductKind.COVER and [b.name for b in prod.bands] == ["green", "dry", "bare"]
    rep = parcel_report(workspace, "s").set_index("parcel_id")
    truth = parcel_cover(truth_path, layout.parcels).set_index("parcel_id")
    for c in ("green", "dry", "bare"):
        err = rep[f"{c}_cover"] - truth.loc[rep.index, f"{c}_cover"]
        assert np.sqrt(np.mean(err ** 2)) <= 0.05
    # per soum: the simulated parcels lie in Bayangol; shares are area-weighted parcel shares
    soums = gpd.read_file(real_data / "mongolia_admin" / "adm_2.geojson")
    table = parcel_cover(prod.path, rep.reset_index())
    soum = cover_rollup(table, rep.reset_index(), soums, level="soum")
    assert soum["soum"].tolist() == ["Bayangol"] and soum.loc[0, "parcels"] == len(layout.parcels)
    w = rep["area_ha"] * rep["cover_valid_fraction"]
    assert soum.loc[0, "dry_cover"] == pytest.approx(float(np.average(rep["dry_cover"], weights=w)), rel=1e-9)
    assert soum[["green_cover", "dry_cover", "bare_cover"]].sum(axis=1).iloc[0] == pytest.approx(1.0)


def test_endmembers_from_polygons(tmp_path: Path) -> None:
    """Spectra read back from pure patches of the survey, then used to unmix it."""
    t = Affine(0.5, 0, 600_000, 0, -0.5, 4_850_030)
    em = {c: np.array([DEFAULT_ENDMEMBERS[c][b] for b in BANDS]) * 1.1 for c in ("green", "dry", "bare")}
    data = np.zeros((5, 60, 60), "float32")
    data[:, :, :20], data[:, :, 20:40], data[:, :, 40:] = (em[c][:, None, None] for c in ("green", "dry", "bare"))
    mixed = 0.5 * em["green"] + 0.2 * em["dry"] + 0.3 * em["bare"]
    data[:, 50:, :] = mixed[:, None, None]
    path = _write(tmp_path / "r.tif", data, t, BANDS)
    polys = gpd.GeoDataFrame({"cover": ["GV", "litter", "soil"]},
                             geometry=[shapely.box(600_001, 4_850_010, 600_009, 4_850_029),
                                       shapely.box(600_011, 4_850_010, 600_019, 4_850_029),
                                       shapely.box(600_021, 4_850_010, 600_029, 4_850_029)], crs=EPSG)
    found = endmembers_from_polygons(path, polys)
    for c in ("green", "dry", "bare"):
        np.testing.assert_allclose([found[c][b] for b in BANDS], em[c], rtol=1e-6)
    out = parcel_cover(cover_raster_file(path, tmp_path / "c.tif", endmembers=found),
                       gpd.GeoDataFrame({"parcel_id": ["m"]},
                                        geometry=[shapely.box(600_000, 4_850_000, 600_030, 4_850_005)], crs=EPSG))
    assert out.loc[0, ["green_cover", "dry_cover", "bare_cover"]].tolist() == pytest.approx([0.5, 0.2, 0.3], abs=1e-4)


def test_cover_cli(tmp_path: Path, workspace, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from belcheer.cli import main

    refl, _, layout = _scene(tmp_path, _dt.date(2026, 7, 15), 0.0)
    workspace.save_survey(Survey(name="s", captures=(), epsg=EPSG, source_dir=tmp_path))
    workspace.add_product(Product(id="", survey="s", kind=ProductKind.REFLECTANCE, name="reflectance",
                                  uri=refl, epsg=EPSG, bands=tuple(Band(b) for b in BANDS)))
    parcels_file = tmp_path / "parcels.gpkg"
    layout.parcels.to_file(parcels_file)
    import_parcels(workspace, parcels_file)
    assert main(["-w", str(workspace.root), "cover", "s", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["product"]["kind"] == "cover" and len(out["parcels"]) == len(layout.parcels)
    crop = {r["parcel_id"]: r for r in out["parcels"]}
    for pid in layout.parcels.loc[layout.parcels.land_use == "cropland", "parcel_id"]:
        assert crop[pid]["dry_cover"] < 0.02 and crop[pid]["green_cover"] > 0.6  # crop at its peak
    assert main(["-w", str(workspace.root), "cover", "s"]) == 0
    assert "green %" in capsys.readouterr().out


def test_bare_ground_lowers_the_condition_class(tmp_path: Path, workspace) -> None:
    """A degraded July scene (green but patchy: NDVI class III, half the ground bare): each
    pasture parcel's class is the worse of its NDVI class and its bare-ground class, and the basis
    says which decided."""
    from belcheer.zoning import bare_ground_class, combine_classes, condition_class, survey_stats

    refl, truth_path, layout = _scene(tmp_path, _dt.date(2026, 7, 15), 0.5)
    workspace.save_survey(Survey(name="s", captures=(), epsg=EPSG, source_dir=tmp_path))
    workspace.catalog.add_survey("s", workspace.manifest_path("s"), EPSG, "2026-09-20", {}, replace=True)
    workspace.add_product(Product(id="", survey="s", kind=ProductKind.REFLECTANCE, name="reflectance",
                                  uri=refl, epsg=EPSG, bands=tuple(Band(b) for b in BANDS)))
    with rasterio.open(refl) as src:
        r = src.read().astype("float64")
        red, nir = r[BANDS.index("red")], r[BANDS.index("nir")]
        ndvi_path = _write(tmp_path / "ndvi.tif", ((nir - red) / (nir + red))[None], src.transform, ("ndvi",))
    workspace.add_product(Product(id="", survey="s", kind=ProductKind.INDEX, name="ndvi", uri=ndvi_path,
                                  epsg=EPSG, bands=(Band("ndvi"),)))
    parcels_file = tmp_path / "parcels.gpkg"
    layout.parcels.to_file(parcels_file)
    import_parcels(workspace, parcels_file)
    cover_raster(workspace, "s")
    survey_stats(workspace, "s", ["ndvi"])
    rep = parcel_report(workspace, "s").set_index("parcel_id")
    past = rep[rep["use_group"] == "pasture"]
    assert len(past) >= 4
    zones = past["eco_zone"].to_numpy(dtype=object)
    by_index = condition_class(past["ndvi_mean"], zones)
    by_bare = bare_ground_class(past["bare_cover"], zones)
    assert (by_index > 0).all() and (by_bare > 0).all()
    np.testing.assert_array_equal(past["condition_class_index"], by_index)
    np.testing.assert_array_equal(past["condition_class_bare"], by_bare)
    np.testing.assert_array_equal(past["condition_class"], combine_classes(by_index, by_bare))
    assert (past["condition_class"] >= past["condition_class_index"]).all()
    lowered = past["condition_class_bare"] > past["condition_class_index"]
    assert lowered.sum() >= 5, past[["condition_class_index", "condition_class_bare"]]
    assert (past.loc[lowered, "condition_basis"] == "bare_cover").all()
    assert (past.loc[~lowered, "condition_basis"] == "ndvi+bare_cover").all()
    # the truth's bare share gives the same bare class on most parcels (cover within 5 points)
    truth = parcel_cover(truth_path, layout.parcels).set_index("parcel_id").loc[past.index]
    same = bare_ground_class(truth["bare_cover"], zones) == by_bare
    assert same.mean() >= 0.75, (truth["bare_cover"], past["bare_cover"])
    # crop fields are not graded at all
    crop = rep[rep["use_group"] == "cropland"]
    assert (crop["condition_class"] == 0).all() and (crop["condition_basis"] == "").all()

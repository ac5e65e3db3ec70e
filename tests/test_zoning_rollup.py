"""Roll-ups to soum and aimag with the real boundaries; change between surveys; zones; land cover."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from affine import Affine
from test_zoning_support import EPSG, add_survey, render_ndvi, scene_parcels

from belcheer.errors import InputError
from belcheer.models import ProductKind
from belcheer.zoning import (
    change,
    classify_landcover,
    export_prescription,
    management_zones,
    normalise_parcels,
    parcel_change,
    rollup,
    save_parcels,
    zone_polygons,
)
from belcheer.zoning.landcover import landcover_shares
from belcheer.zoning.zones import parcel_zones


def _place_in_soum(boundaries: gpd.GeoDataFrame, soum: str, aimag: str) -> gpd.GeoDataFrame:
    """Six synthetic parcels centred on the soum's representative point (UTM of that point)."""
    row = boundaries[(boundaries["ADM2_EN"] == soum) & (boundaries["ADM1_EN"] == aimag)]
    assert len(row) == 1
    pt = row.geometry.representative_point().iloc[0]
    utm = 32600 + int((pt.x + 180) // 6) + 1
    x, y = gpd.GeoSeries([pt], crs=4326).to_crs(utm).iloc[0].coords[0]
    return scene_parcels((x - 1000, y), n=6).set_crs(utm, allow_override=True)


@pytest.mark.real
def test_rollup_to_real_soum_and_aimag(real_data: Path) -> None:
    folder = real_data / "mongolia_admin"
    soums = gpd.read_file(folder / "adm_2.geojson")
    aimags = gpd.read_file(folder / "adm_1.geojson")
    assert soums["ADM2_EN"].duplicated().any()  # names repeat: roll-ups must not merge them
    parcels = normalise_parcels(_place_in_soum(soums, "Cogt-Cecii", "Omnogovi")).frame
    rng = np.random.default_rng(1)
    parcels["ndvi_mean"] = rng.uniform(0.1, 0.4, len(parcels))
    parcels["capacity_su"] = [100.0, 50.0, 20.0, 80.0, 10.0, 40.0]
    parcels["registered_su"] = [120.0, 30.0, 20.0, 60.0, 30.0, 10.0]
    parcels["balance_su"] = parcels["capacity_su"] - parcels["registered_su"]
    for k in range(1, 6):
        parcels[f"share_{k}"] = 0.2
    by_soum = rollup(parcels, soums, level="soum")
    assert by_soum["soum"].tolist() == ["Cogt-Cecii"] and by_soum["ADM1_EN"].tolist() == ["Omnogovi"]
    r = by_soum.iloc[0]
    assert r["parcels"] == 6
    assert r["area_ha"] == pytest.approx(parcels["area_ha"].sum())
    assert r["ndvi_mean"] == pytest.approx(np.average(parcels["ndvi_mean"], weights=parcels["area_ha"]))
    assert r["capacity_su"] == 300.0 and r["registered_su"] == 270.0 and r["balance_su"] == 30.0
    assert not r["overstocked"] and r["share_3"] == pytest.approx(0.2)
    by_aimag = rollup(parcels, aimags, level="aimag")
    assert by_aimag["aimag"].tolist() == ["Omnogovi"] and by_aimag.iloc[0]["capacity_su"] == 300.0
    # parcels in two soums that share a name with soums elsewhere stay apart
    other = normalise_parcels(_place_in_soum(soums, "Bulgan", "Omnogovi").assign(
        parcel_id=lambda d: "B" + d["parcel_id"])).frame
    both = gpd.GeoDataFrame(pd.concat([parcels, other], ignore_index=True), crs=4326)
    two = rollup(both, soums, level="soum")
    assert sorted(two["soum"]) == ["Bulgan", "Cogt-Cecii"]
    assert two.set_index("soum").loc["Bulgan", "ADM1_EN"] == "Omnogovi"
    with pytest.raises(InputError, match="name_field"):
        rollup(parcels, soums[["geometry"]], level="soum")


def test_change_between_surveys(workspace) -> None:
    parcels = scene_parcels((600_000.0, 4_850_000.0), n=4)
    save_parcels(workspace, normalise_parcels(parcels).frame, source="test")
    before = dict(zip(parcels["parcel_id"], [0.50, 0.40, 0.30, 0.46], strict=True))
    after = dict(zip(parcels["parcel_id"], [0.50, 0.25, 0.32, 0.40], strict=True))
    a, ta = render_ndvi(parcels, before, res=2.0)
    b, tb = render_ndvi(parcels, after, res=3.0, pad=150.0)  # a different grid: B is warped onto A
    add_survey(workspace, "2025-07", "2025-07-10", a, ta)
    add_survey(workspace, "2026-07", "2026-07-12", b, tb)
    res = change(workspace, "2025-07", "2026-07", threshold=0.05)
    assert res.product.kind is ProductKind.CHANGE
    with rasterio.open(res.product.path) as src:
        assert src.transform == ta and src.shape == a.shape
        d = src.read(1)
    assert np.nanmedian(d[np.isfinite(d)]) == pytest.approx(0.0, abs=0.01)
    t = res.table.set_index("parcel_id")
    assert t.loc["P02", "delta"] == pytest.approx(-0.15, abs=0.01) and t.loc["P02", "significant"]
    assert not t.loc["P01", "significant"] and not t.loc["P03", "significant"]
    assert t.loc["P04", "delta"] == pytest.approx(-0.06, abs=0.01) and t.loc["P04", "significant"]
    # alerts = parcels whose recovery class fell (P02: steppe 0.40 → 0.25; P04 forest steppe 0.46 → 0.40)
    assert sorted(res.alerts["parcel_id"]) == ["P02", "P04"]
    assert (res.alerts["class_b"] > res.alerts["class_a"]).all()
    # the pure function on plain tables
    pc = parcel_change(pd.DataFrame({"parcel_id": ["x"], "mean": [0.5]}),
                       pd.DataFrame({"parcel_id": ["x"], "mean": [0.52]}), threshold=0.05)
    assert not pc.loc[0, "significant"] and pc.loc[0, "delta"] == pytest.approx(0.02)


def _two_level_field(shape=(60, 80)) -> np.ndarray:
    rng = np.random.default_rng(0)
    v = np.full(shape, 0.3) + rng.normal(0, 0.01, shape)
    v[:, shape[1] // 2:] += 0.3
    v[25:35, 5:15] = 0.9  # a 100-pixel patch
    return v


@pytest.mark.parametrize("method", ["kmeans", "jenks", "quantile"])
def test_management_zones_methods(method: str) -> None:
    v = _two_level_field()
    v[0, 0] = np.nan
    z = management_zones(v, method=method, n_classes=2)
    assert z.dtype == np.uint8 and z[0, 0] == 0
    left, right = z[:, :40][z[:, :40] > 0], z[:, 40:]
    if method != "quantile":  # equal-area classes split by area, not by level
        assert np.mean(left == 1) > 0.9 and np.mean(right == 2) > 0.99
    assert set(np.unique(z)) == {0, 1, 2}
    with pytest.raises(InputError):
        management_zones(v, n_classes=33)
    with pytest.raises(InputError):
        management_zones(v, method="magic")


def test_zones_mmu_polygons_and_prescription(tmp_path: Path) -> None:
    v = _two_level_field()
    z3 = management_zones(v, method="jenks", n_classes=3)
    assert (z3[25:35, 5:15] == 3).all()  # the bright patch is its own zone…
    sieved = management_zones(v, method="jenks", n_classes=3, mmu_pixels=150)
    assert not (sieved == 3).any()  # …until it is below the minimum mapping unit
    t = Affine(2.0, 0, 600_000, 0, -2.0, 4_850_000)
    polys = zone_polygons(z3, v, t, f"EPSG:{EPSG}")
    assert sorted(polys["zone"]) == [1, 2, 3]
    assert polys["area_ha"].sum() == pytest.approx(60 * 80 * 4 / 1e4, rel=1e-6)
    assert polys.set_index("zone").loc[3, "mean"] == pytest.approx(0.9, abs=1e-6)
    out = export_prescription(polys, tmp_path / "rx.zip")
    import zipfile

    with zipfile.ZipFile(out) as zf:
        assert {"zones.shp", "zones.dbf", "zones.prj", "zones.cpg"} <= set(zf.namelist())
    back = gpd.read_file(f"/vsizip/{out}/zones.shp")
    assert back.crs.to_epsg() == 4326 and len(back) == 3


def test_parcel_zones_inside_crop_fields(tmp_path: Path) -> None:
    parcels = scene_parcels((600_000.0, 4_850_000.0), n=2)
    parcels["land_use"] = ["cropland", "pasture"]
    arr, t = render_ndvi(parcels, {"P01": 0.6, "P02": 0.4}, gradient=1.0)  # strong gradient inside
    from belcheer.zoning.rasterout import write_array_cog

    path = write_array_cog(arr, tmp_path / "n.tif", transform=t, crs=f"EPSG:{EPSG}", dtype="float32",
                           nodata=float("nan"))
    zones = parcel_zones(path, parcels, n_classes=4, mmu_m2=200)
    assert set(zones["parcel_id"]) == {"P01"}
    assert sorted(zones["zone"]) == [1, 2, 3, 4]
    assert zones.sort_values("zone")["mean"].is_monotonic_increasing
    assert zones.union_all().difference(parcels.geometry.iloc[0]).area < 1.0


def test_landcover_supervised_and_kmeans() -> None:
    rng = np.random.default_rng(0)
    h, w = 120, 120
    t = Affine(1.0, 0, 600_000, 0, -1.0, 4_850_120)
    truth = np.zeros((h, w), dtype="uint8")
    spec = {1: (0.7, 0.3), 2: (0.4, 0.2), 3: (0.1, 0.35), 4: (-0.3, 0.05)}  # (ndvi, red)
    for i, c in enumerate(spec):
        truth[:, i * 30:(i + 1) * 30] = c
    stack = np.stack([np.vectorize(lambda c: spec[c][0])(truth), np.vectorize(lambda c: spec[c][1])(truth)])
    stack = stack + rng.normal(0, 0.04, stack.shape)
    polys, classes = [], []
    for i, _c in enumerate(spec):
        for k in range(4):  # four training squares per class, down the column
            x0, y0 = 600_000 + i * 30 + 5, 4_850_120 - (k * 30 + 5)
            polys.append(shapely.box(x0, y0 - 15, x0 + 15, y0))
            classes.append(["cropland", "pasture", "bare_soil", "water"][i])
    training = gpd.GeoDataFrame({"class": classes}, geometry=polys, crs=EPSG)
    res = classify_landcover(stack, t, f"EPSG:{EPSG}", training)
    assert res.method == "rf" and res.accuracy > 0.95 and res.n_test_polygons >= 3
    assert np.mean(res.classes == truth) > 0.95
    km = classify_landcover(stack, t, f"EPSG:{EPSG}", method="kmeans", n_clusters=4)
    assert set(np.unique(km.classes)) == {1, 2, 3, 4}
    field = gpd.GeoDataFrame({"parcel_id": ["f"]}, geometry=[shapely.box(600_000, 4_850_000, 600_045, 4_850_120)],
                             crs=EPSG)
    shares = landcover_shares(res.classes, t, f"EPSG:{EPSG}", field)
    assert shares.loc[0, "share_cropland"] == pytest.approx(30 / 45, abs=0.03)
    assert shares.loc[0, "share_pasture"] == pytest.approx(15 / 45, abs=0.03)

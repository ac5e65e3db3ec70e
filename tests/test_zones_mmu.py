"""Management zones that respect the minimum mapping unit: sieved, polygonized, merged and
simplified as a coverage; bounded vertex counts; a rate column in the prescription."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from affine import Affine
from scipy import ndimage
from test_zoning_support import EPSG, add_survey, scene_parcels

from belcheer.errors import InputError
from belcheer.zoning import export_prescription, management_zones, zone_polygons
from belcheer.zoning.rasterout import write_array_cog
from belcheer.zoning.zones import MAX_VERTICES, parcel_zones, parse_rates, zone_rates


def _speckled_field(shape: tuple[int, int] = (300, 300), seed: int = 3) -> np.ndarray:
    """A smooth field with pixel speckle: k-means on it leaves single-pixel islands."""
    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.standard_normal(shape), 12)
    return smooth / smooth.std() + rng.normal(0, 0.35, shape)


def test_no_part_below_the_mmu_and_bounded_vertices() -> None:
    v = _speckled_field()
    t = Affine(0.08, 0, 600_000, 0, -0.08, 4_850_000)  # 8 cm pixels, 24 × 24 m
    from rasterio.features import shapes

    # without an MMU: thousands of parts, the smallest one pixel (0.0064 m²)
    raw = [shapely.geometry.shape(g).area for g, _ in shapes(management_zones(v, n_classes=3),
                                                               transform=t, connectivity=4)]
    assert len(raw) > 500 and min(raw) < 0.01
    mmu = 20.0
    z = management_zones(v, n_classes=3, mmu_pixels=int(np.ceil(mmu / 0.08 ** 2)))
    clip = shapely.Polygon([(600_001, 4_849_977), (600_023, 4_849_979), (600_020, 4_849_999.5),
                            (600_003, 4_849_995)])
    polys = zone_polygons(z, v, t, f"EPSG:{EPSG}", mmu_m2=mmu, clip=clip)
    parts = polys.explode()
    assert parts.area.min() >= mmu, parts.area.sort_values().head()
    assert (polys["vertices"] <= MAX_VERTICES).all()
    assert (polys["parts"] == polys.geometry.apply(lambda g: len(getattr(g, "geoms", [g])))).all()
    # a coverage of the clip polygon: no overlaps, no gaps beyond the simplification
    assert shapely.union_all(polys.geometry).symmetric_difference(clip).area < 0.01 * clip.area
    pair_overlap = sum(a.intersection(b).area for i, a in enumerate(polys.geometry)
                       for b in polys.geometry.iloc[i + 1:])
    assert pair_overlap < 1e-6 * clip.area
    assert polys.geometry.is_valid.all()


def test_parcel_zones_mmu_and_rates(tmp_path: Path) -> None:
    parcels = scene_parcels((600_000.0, 4_850_000.0), n=1, size_m=80.0)
    parcels["land_use"] = "cropland"
    g = parcels.geometry.iloc[0]
    minx, miny, maxx, maxy = g.bounds
    res = 0.25
    t = Affine(res, 0, minx - 2, 0, -res, maxy + 2)
    shape = (int((maxy - miny + 4) / res), int((maxx - minx + 4) / res))
    path = write_array_cog(_speckled_field(shape, seed=5).astype("float32"), tmp_path / "n.tif",
                           transform=t, crs=f"EPSG:{EPSG}", dtype="float32", nodata=float("nan"))
    zones = parcel_zones(path, parcels, n_classes=3, mmu_m2=50.0)
    assert zones.explode().area.min() >= 50.0
    assert sorted(zones["zone"]) == [1, 2, 3]
    assert zones.union_all().difference(g).area < 1.0
    rx = zone_rates(zones, parse_rates("120,100,80"))
    assert rx.set_index("zone")["rate"].to_dict() == {1: 120.0, 2: 100.0, 3: 80.0}
    out = export_prescription(rx, tmp_path / "rx.zip")
    with zipfile.ZipFile(out):
        back = gpd.read_file(f"/vsizip/{out}/zones.shp")
    assert back.set_index("zone")["rate"].to_dict() == {1: 120.0, 2: 100.0, 3: 80.0}
    with pytest.raises(InputError):
        zone_rates(zones, [1.0, 2.0])
    with pytest.raises(InputError):
        parse_rates("120,abc")


def test_cli_zones_rates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from test_zoning_support import render_ndvi

    from belcheer import open_workspace
    from belcheer.cli import main

    ws_dir = tmp_path / "ws"
    parcels = scene_parcels((600_000.0, 4_850_000.0), n=2)
    parcels["land_use"] = ["cropland", "pasture"]
    src = tmp_path / "p.gpkg"
    parcels.to_file(src)
    assert main(["-w", str(ws_dir), "parcels", "import", str(src)]) == 0
    arr, t = render_ndvi(parcels, {"P01": 0.5, "P02": 0.3}, gradient=1.0)
    add_survey(open_workspace(ws_dir), "a", "2026-07-01", arr, t)
    capsys.readouterr()
    rx = tmp_path / "rx.zip"
    assert main(["-w", str(ws_dir), "zones", "a", "--classes", "3", "--mmu-m2", "400",
                 "--rates", "120,100,80", "--out", str(rx), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)["zones"]
    assert {z["zone"]: z["rate"] for z in got} == {1: 120.0, 2: 100.0, 3: 80.0}
    back = gpd.read_file(f"/vsizip/{rx}/zones.shp").to_crs(EPSG)
    assert back.explode().area.min() >= 400.0
    assert main(["-w", str(ws_dir), "zones", "a", "--classes", "3", "--rates", "1,2"]) == InputError.exit_code

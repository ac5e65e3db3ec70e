"""CRS hints that land parcels in the right place, and the choice between EXIF GPS and DJI XMP
positions when they disagree."""

from __future__ import annotations

import re
from pathlib import Path

import geopandas as gpd
import pytest
from test_zoning_support import scene_parcels

from belcheer.errors import CRSError
from belcheer.zoning import read_parcels

#: Bayangol soum, Selenge (the simulator's place), in UTM 48N metres
ORIGIN = (580_000.0, 5_421_000.0)


def _hinted_epsgs(message: str) -> list[int]:
    """EPSG codes the hint (the part after "; the …") offers."""
    hint = message.split("; the ", 1)[1] if "; the " in message else ""
    return [int(v) for v in re.findall(r"--crs EPSG:(\d+)", hint)]


def _offset_m(frame: gpd.GeoDataFrame, truth: gpd.GeoDataFrame) -> float:
    a = frame.geometry.to_crs(32648).centroid.reset_index(drop=True)
    return float(a.distance(truth.to_crs(32648).centroid.reset_index(drop=True)).max())


def test_gk_without_zone_prefix_hint_lands_in_place(tmp_path: Path) -> None:
    truth = scene_parcels(ORIGIN, n=2).to_crs(4326)
    gk = truth.to_crs(2508)  # Pulkovo 1942 / Gauss-Krüger CM 105E: zone 18 without the "18" prefix
    assert 5e5 < gk.total_bounds[0] < 7e5
    # declared as the prefixed zone (what a land office's file often says): refused …
    src = tmp_path / "gk.gpkg"
    gk.set_crs(28418, allow_override=True).to_file(src)
    with pytest.raises(CRSError) as err:
        read_parcels(src)
    hinted = _hinted_epsgs(str(err.value))
    # … and the hint names only the CRS that puts the parcels where they are
    assert hinted == [2508], str(err.value)
    placed = read_parcels(src, crs=f"EPSG:{hinted[0]}").frame
    assert _offset_m(placed, truth) < 0.01
    # UTM, which the old hint offered, would have put them ≈ 2 km off
    wrong = read_parcels(src, crs="EPSG:32648").frame
    assert 1500 < _offset_m(wrong, truth) < 3000

    # no CRS at all: both prefix-free families are named, with the difference between them
    csv = tmp_path / "gk.csv"
    csv.write_text("id,wkt\n" + "\n".join(f'{i},"{g.wkt}"' for i, g in enumerate(gk.geometry)))
    with pytest.raises(CRSError, match="about 2 km") as err:
        read_parcels(csv)
    assert "EPSG:2505…2510" in str(err.value) and "EPSG:32645…32650" in str(err.value)
    assert _offset_m(read_parcels(csv, crs=2508).frame, truth) < 0.01

    # zone-prefixed eastings keep their exact hint
    pref = tmp_path / "gk_prefixed.csv"
    pref.write_text("id,wkt\n" + "\n".join(f'{i},"{g.wkt}"' for i, g in enumerate(truth.to_crs(28418).geometry)))
    with pytest.raises(CRSError) as err:
        read_parcels(pref)
    assert _hinted_epsgs(str(err.value)) == [28418]
    assert _offset_m(read_parcels(pref, crs=28418).frame, truth) < 0.01

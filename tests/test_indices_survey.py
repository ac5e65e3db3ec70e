"""compute_survey and the CLI: products registered in the workspace, RGB flagged relative."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from belcheer.errors import BandError, NotFoundError
from belcheer.indices import compute_survey
from belcheer.models import Band, Product, ProductKind


def _survey(ws, name: str) -> None:
    ws.catalog.add_survey(name, ws.manifest_path(name), 32648, "2026-07-15", {}, replace=True)


def _reflectance(path, n: int = 600) -> None:
    rng = np.random.default_rng(5)
    prof = dict(driver="GTiff", height=n, width=n, count=5, dtype="float32", crs="EPSG:32648",
                transform=from_origin(600000, 5420000, 0.1, 0.1), tiled=True, blockxsize=512,
                blockysize=512, nodata=float("nan"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **prof) as dst:
        for i in range(1, 6):
            dst.write(rng.uniform(0.02, 0.6, (n, n)).astype(np.float32), i)


MS = (Band("blue", 475), Band("green", 560), Band("red", 668), Band("nir", 840), Band("rededge", 717))


def test_compute_survey_registers_index_products(workspace) -> None:
    _survey(workspace, "Сэлэнгэ-2026-07")
    path = workspace.product_path("Сэлэнгэ-2026-07", "reflectance")
    _reflectance(path)
    workspace.add_product(Product(id="", survey="Сэлэнгэ-2026-07", kind=ProductKind.REFLECTANCE,
                                  name="reflectance", uri=path, epsg=32648, bands=MS,
                                  metadata={"calibration": {"method": "both"}}))
    products = compute_survey(workspace, "Сэлэнгэ-2026-07", ["ndvi", "SAVI"],
                              formulas={"wdrvi2": "(0.2*N-R)/(0.2*N+R)"})
    assert sorted(p.name for p in products) == ["ndvi", "savi", "wdrvi2"]
    for p in products:
        assert p.kind is ProductKind.INDEX and not p.relative and p.path.is_file()
        assert workspace.product("Сэлэнгэ-2026-07", p.name).path == p.path
        assert p.metadata["calibration"] == {"method": "both"}
    ndvi = workspace.product("Сэлэнгэ-2026-07", "ndvi")
    assert ndvi.metadata["formula"] == "(N-R)/(N+R)" and ndvi.metadata["reference"].startswith("https://")
    with rasterio.open(path) as s, rasterio.open(ndvi.path) as o:
        r, n = s.read(3), s.read(4)
        np.testing.assert_allclose(o.read(1), (n - r) / (n + r), rtol=1e-6)


def test_rgb_orthomosaic_indices_are_relative(workspace) -> None:
    _survey(workspace, "rgb")
    path = workspace.product_path("rgb", "orthomosaic")
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    prof = dict(driver="GTiff", height=300, width=400, count=4, dtype="uint8", crs="EPSG:32648",
                transform=from_origin(600000, 5420000, 0.05, 0.05), tiled=True, blockxsize=256,
                blockysize=256, photometric="RGB", alpha="YES")
    with rasterio.open(path, "w", **prof) as dst:
        rgb = rng.integers(1, 255, (3, 300, 400), dtype=np.uint8)
        alpha = np.full((300, 400), 255, np.uint8)
        alpha[:, :50] = 0  # outside the flown area
        dst.write(np.concatenate([rgb, alpha[None]]))
    workspace.add_product(Product(id="", survey="rgb", kind=ProductKind.ORTHOMOSAIC, name="orthomosaic",
                                  uri=path, epsg=32648, bands=(Band("red", 650, label="R"),
                                  Band("green", 550, label="G"), Band("blue", 470, label="B"))))
    with pytest.raises(BandError, match="nir"):
        compute_survey(workspace, "rgb", ["ndvi"])
    (vari,) = compute_survey(workspace, "rgb", ["vari"])
    assert vari.relative
    with rasterio.open(vari.path) as o:
        v = o.read(1)
        assert o.tags()["relative"] == "True"
    assert np.isnan(v[:, :50]).all()
    g, r, b = (rgb[i].astype(np.float32) for i in (1, 0, 2))
    with np.errstate(all="ignore"):
        exp = (g - r) / (g + r - b)
    exp[~np.isfinite(exp)] = np.nan
    np.testing.assert_allclose(v[:, 50:], exp[:, 50:], rtol=1e-5)


def test_missing_product_and_cli(workspace, capsys) -> None:
    from belcheer.cli import main

    _survey(workspace, "empty")
    with pytest.raises(NotFoundError, match="belcheer mosaic"):
        compute_survey(workspace, "empty", ["ndvi"])
    _survey(workspace, "s1")
    path = workspace.product_path("s1", "reflectance")
    _reflectance(path, n=300)
    workspace.add_product(Product(id="", survey="s1", kind=ProductKind.REFLECTANCE, name="reflectance",
                                  uri=path, epsg=32648, bands=MS))
    rc = main(["--workspace", str(workspace.root), "indices", "s1", "--index", "ndvi,ndrei",
               "--formula", "my=(N-R)/(N+R+0.1)", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert sorted(p["name"] for p in out) == ["my", "ndrei", "ndvi"]
    rc = main(["--workspace", str(workspace.root), "indices", "s1", "--index", "ndvii"])
    assert rc == 3 and "did you mean NDVI" in capsys.readouterr().err
    rc = main(["--workspace", str(workspace.root), "indices", "s1", "--formula",
               "bad=__import__('os').system('echo hi')"])
    assert rc == 3 and "not allowed" in capsys.readouterr().err

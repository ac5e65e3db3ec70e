"""Index catalogue, formulas and the Dask computation (no real data needed)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import rasterio
import xarray as xr
from rasterio.transform import from_origin

from belcheer.errors import BandError, FormulaError, InputError
from belcheer.indices import band_mapping, catalogue, compute, lookup
from belcheer.indices.formula import parse
from belcheer.models import Band

# one pixel of healthy pasture: B, G, R, RE, N reflectance
B, G, R, RE, N = 0.05, 0.08, 0.06, 0.20, 0.45

# values worked out by hand from the published definitions (catalogue constants where it has them)
HAND = {
    "NDVI": (0.45 - 0.06) / (0.45 + 0.06),                      # 0.7647
    "NDREI": (0.45 - 0.20) / (0.45 + 0.20),                     # 0.3846
    "GNDVI": (0.45 - 0.08) / (0.45 + 0.08),                     # 0.6981
    "SAVI": 1.5 * 0.39 / (0.51 + 0.5),                          # L = 0.5 (Huete 1988): 0.5792
    "OSAVI": 0.39 / (0.51 + 0.16),                              # 0.5821
    "MSAVI": 0.5 * (1.9 - 0.7),                                 # sqrt(3.61 − 3.12) = 0.7 → 0.6
    "EVI2": 2.5 * 0.39 / (0.45 + 2.4 * 0.06 + 1.0),             # 0.6117
    "CIRE": 0.45 / 0.20 - 1,                                    # 1.25
    "CIG": 0.45 / 0.08 - 1,                                     # 4.625
    "NIRv": 0.39 / 0.51 * 0.45,                                 # 0.3441
    "VARI": 0.02 / 0.09,                                        # 0.2222
    "ExG": 0.16 - 0.06 - 0.05,                                  # 0.05
    "ExGR": 0.05 - (1.3 * 0.06 - 0.08),                         # catalogue ExR = 1.3R − G: 0.052
    "GLI": 0.05 / 0.27,                                         # 0.1852
    "TGI": -0.5 * (190 * -0.02 - 120 * 0.01),                   # 2.5
    "NGRDI": 0.02 / 0.14,                                       # 0.1429
    "MGRVI": (0.0064 - 0.0036) / (0.0064 + 0.0036),             # 0.28
    "RGBVI": (0.0064 - 0.003) / (0.0064 + 0.003),               # 0.3617
}

MS_BANDS = (Band("blue", 475), Band("green", 560), Band("red", 668), Band("nir", 840),
            Band("rededge", 717))


def _cube(values: list[float], shape: tuple[int, int] = (4, 6)) -> xr.DataArray:
    data = np.stack([np.full(shape, v, np.float32) for v in values])
    return xr.DataArray(data, dims=("band", "y", "x"),
                        coords={"band": ["blue", "green", "red", "nir", "rededge"]})


def test_catalogue_hand_computed_values() -> None:
    out = compute(_cube([B, G, R, N, RE]), list(HAND))
    assert set(out) == set(HAND)
    for name, expected in HAND.items():
        got = out[name].values
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=2e-5, err_msg=name)


def test_catalogue_traps_and_contents() -> None:
    cat = catalogue()
    assert len(cat) > 80  # ~100 of the catalogue's indices need only B, G, R, RE1, N
    assert cat["SAVI"].constants["L"] == 0.5 and cat["EVI2"].constants["L"] == 1.0
    assert cat["NDREI"].bands == ("N", "RE1")
    assert "sqrt" not in cat["MSAVI"].formula and "**0.5" in cat["MSAVI"].formula  # MSAVI2 closed form
    assert cat["VARI"].rgb and not cat["NDVI"].rgb
    assert all(set(d.bands) <= {"B", "G", "R", "RE1", "N"} for d in cat.values())
    assert lookup("ndvi").name == "NDVI" and lookup("exg").name == "ExG"


def test_unknown_index_suggests() -> None:
    with pytest.raises(InputError, match="did you mean NDVI"):
        lookup("ndvii")


def test_band_mapping_by_wavelength() -> None:
    # bands without canonical names are placed by centre wavelength (Sequoia-like order)
    bands = (Band("b1", 550), Band("b2", 660), Band("b3", 735), Band("b4", 790))
    assert band_mapping(bands) == {"G": 0, "R": 1, "RE1": 2, "N": 3}
    assert band_mapping(MS_BANDS) == {"B": 0, "G": 1, "R": 2, "N": 3, "RE1": 4}


def test_missing_band_error_lists_needed_and_present() -> None:
    rgb = xr.DataArray(np.ones((3, 2, 2), np.float32), dims=("band", "y", "x"),
                       coords={"band": ["red", "green", "blue"]})
    with pytest.raises(BandError) as exc:
        compute(rgb, ["ndvi"])
    msg = str(exc.value)
    assert "N (nir)" in msg and "R (red)" in msg and "red, green, blue" in msg and "missing nir" in msg


def test_division_by_zero_and_nodata_give_nan() -> None:
    cube = _cube([B, G, 0.0, 0.0, RE])
    cube[3, 0, 0] = np.nan  # nodata NIR
    out = compute(cube, ["ndvi", "cire"])
    ndvi = out["NDVI"].values
    assert np.isnan(ndvi).all()  # 0/0 everywhere, NaN where NIR is missing
    assert not np.isinf(ndvi).any()
    cire = out["CIRE"].values
    assert np.isnan(cire[0, 0]) and np.isclose(cire[1, 1], -1.0)


@pytest.mark.parametrize("text,reason", [
    ("__import__('os').system('id')", "not allowed"),
    ("N.__class__", "attribute"),
    ("(lambda: N)()", "not allowed"),
    ("N**100", "exponent"),
    ("N**R", "exponents must be plain numbers"),
    ("x + 1", "unknown name 'x'"),
    ("N > R", "comparisons are only allowed"),
    ("open('/etc/passwd')", "function 'open' is not allowed"),
    ("(N-R)/(N+R)" + "+N" * 300, "characters long"),
    ("[N, R]", "List is not allowed"),
    ("N if R else B", "IfExp is not allowed"),
])
def test_hostile_formulas_refused(text: str, reason: str) -> None:
    with pytest.raises(FormulaError, match=reason):
        parse(text, {"N", "R", "B"})


def test_user_formula_and_where() -> None:
    cube = _cube([B, G, R, N, RE])
    out = compute(cube, [], formulas={"my": "(N-R)/(N+R+0.1)",
                                      "mask": "where(nir > 2*red, sqrt(abs(N-R)), -1)",
                                      "lg": "log(N/R)"})
    np.testing.assert_allclose(out["my"].values, 0.39 / 0.61, rtol=1e-6)
    np.testing.assert_allclose(out["mask"].values, np.sqrt(0.39), rtol=1e-6)
    np.testing.assert_allclose(out["lg"].values, np.log(7.5), rtol=1e-6)
    with pytest.raises(FormulaError, match="formula name"):
        compute(cube, [], formulas={"../evil": "N"})
    with pytest.raises(FormulaError, match="uses no band"):
        compute(cube, [], formulas={"two": "1+1"})


def _write_cube(path, n: int = 1024, seed: int = 1, width: int | None = None,
                tiled: bool = True) -> None:
    rng = np.random.default_rng(seed)
    w = width or n
    prof = dict(driver="GTiff", height=n, width=w, count=5, dtype="uint16", crs="EPSG:32648",
                transform=from_origin(600000, 5300000, 0.05, 0.05), nodata=0,
                **(dict(tiled=True, blockxsize=512, blockysize=512) if tiled else {}))
    with rasterio.open(path, "w", **prof) as dst:
        for i, b in enumerate(MS_BANDS, 1):
            a = rng.integers(200, 30000, (n, w), dtype=np.uint16)
            a[:7, :9] = 0  # nodata corner
            dst.write(a, i)
            dst.set_band_description(i, b.name)
            dst.update_tags(i, center_nm=b.center_nm)


def test_compute_file_writes_cogs(tmp_path) -> None:
    src = tmp_path / "refl.tif"
    _write_cube(src)
    seen: list[float] = []
    paths = compute(src, ["ndvi", "ndrei"], out_dir=tmp_path / "out",
                    formulas={"osavi2": "(N-R)/(N+R+0.16)"}, scheduler="threads",
                    progress=lambda f, m: seen.append(f))
    assert set(paths) == {"NDVI", "NDREI", "osavi2"}
    assert seen[-1] == 1.0 and seen == sorted(seen)
    with rasterio.open(src) as s:
        red, nir = s.read(3).astype(np.float32), s.read(4).astype(np.float32)
    with rasterio.open(paths["NDVI"]) as o:
        assert o.dtypes[0] == "float32" and np.isnan(o.nodata)
        assert o.crs.to_epsg() == 32648 and o.block_shapes[0] == (512, 512)
        assert o.overviews(1)  # COG with overviews
        assert o.tags()["formula"] == "(N-R)/(N+R)"
        got = o.read(1)
    with np.errstate(all="ignore"):
        exp = (nir - red) / (nir + red)
    exp[:7, :9] = np.nan
    np.testing.assert_array_equal(np.isnan(got), np.isnan(exp))
    np.testing.assert_allclose(got[~np.isnan(got)], exp[~np.isnan(exp)], rtol=1e-6)
    assert not list((tmp_path / "out").glob(".*"))  # no partial files or locks left behind


def _nanmean2(a: np.ndarray) -> np.ndarray:
    """2 × 2 mean ignoring NaN, odd sides padded: GDAL's AVERAGE overview, written independently."""
    h, w = a.shape
    p = np.full((h + h % 2, w + w % 2), np.nan, np.float32)
    p[:h, :w] = a
    q = p.reshape(p.shape[0] // 2, 2, p.shape[1] // 2, 2)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells stay NaN
        return np.nanmean(q, axis=(1, 3)).astype(np.float32)


def test_cog_is_valid_with_average_overviews(tmp_path) -> None:
    # 2100 × 1300, striped: blocks span the full width, edge blocks are partial, the first
    # overview comes from pieces and the next two cascade inside the assembler
    from rio_cogeo.cogeo import cog_validate

    src = tmp_path / "striped.tif"
    _write_cube(src, n=2100, width=1300, seed=4, tiled=False)
    with rasterio.open(src, "r+") as s:  # a nodata hole larger than a 2 × 2 cell
        red = s.read(3)
        red[100:333, 200:611] = 0
        s.write(red, 3)
    (path,) = compute(src, ["ndvi"], out_dir=tmp_path / "out", scheduler="threads").values()
    valid, errors, warns = cog_validate(str(path), quiet=True)
    assert valid and not errors and not warns, (errors, warns)
    with rasterio.open(src) as s:
        r, n = s.read(3).astype(np.float32), s.read(4).astype(np.float32)
    with np.errstate(all="ignore"):
        level = np.where((r == 0) | (n == 0), np.nan, (n - r) / (n + r)).astype(np.float32)
    with rasterio.open(path) as o:
        assert o.overviews(1) == [2, 4, 8]
        assert o.tags()["index"] == "NDVI" and o.descriptions == ("NDVI",)
        assert o.profile["compress"] == "zstd" and o.block_shapes[0] == (512, 512)
        np.testing.assert_allclose(o.read(1), level, rtol=1e-6)
    assert np.isnan(level[100:333, 200:611]).all()
    for i in range(3):  # each overview is the NaN-ignoring mean of the level above
        level = _nanmean2(level)
        with rasterio.open(path, OVERVIEW_LEVEL=i) as ov:
            got = ov.read(1)
        assert got.shape == level.shape
        np.testing.assert_array_equal(np.isnan(got), np.isnan(level))
        # float32 sums of four values in [-1, 1]: a few 1e-8 apart where they cancel to ~0
        np.testing.assert_allclose(got, level, rtol=1e-6, atol=1e-7, err_msg=f"overview {i}")
    assert 0 < np.isnan(got).sum() < 233 * 411 / 64  # the hole shrinks: partly valid cells count


def test_bigtiff_layout_reads_back(tmp_path) -> None:
    # offsets past 4 GB switch the COG to BigTIFF; too big for a test, so the layout is forced
    from rio_cogeo.cogeo import cog_validate

    from belcheer.indices import cog

    rng = np.random.default_rng(7)
    a = rng.random((1100, 700), dtype=np.float32)
    a[:300, :300] = np.nan
    asm = cog.Assembler(tmp_path, *a.shape)
    for k, data in enumerate(cog.compress_tiles(a)):
        asm.add_tile(0, k // 2, k % 2, data)
    asm.add_piece(1, 0, 0, cog.decimate(a))  # pasted, compressed, cascades to level 2
    path = tmp_path / "big.tif"
    asm.write(path, cog.template_tags(*a.shape, "EPSG:32648", from_origin(600000, 5300000, 0.1, 0.1),
                                      "X", {"k": "v"}), bigtiff=True)
    asm.close()
    assert path.read_bytes()[:4] == b"II+\0"
    assert cog_validate(str(path), quiet=True)[:2] == (True, [])
    with rasterio.open(path) as o:
        np.testing.assert_array_equal(o.read(1), a)
        assert o.overviews(1) == [2, 4] and o.tags()["k"] == "v" and o.crs.to_epsg() == 32648
    with rasterio.open(path, OVERVIEW_LEVEL=1) as o:
        np.testing.assert_allclose(o.read(1), _nanmean2(_nanmean2(a)), rtol=1e-6, atol=1e-7)
    assert not list(tmp_path.glob(".tiles.*"))


def test_failed_block_leaves_nothing_behind(tmp_path, monkeypatch) -> None:
    import importlib

    mod = importlib.import_module("belcheer.indices.compute")
    monkeypatch.setattr(mod, "CHUNK_PX", 512)  # nine blocks; the last fails
    src = tmp_path / "refl.tif"
    _write_cube(src, n=1100, seed=5)
    real = mod.compute_block

    def flaky(bp, y, x):
        if (y, x) == (1024, 1024):
            raise OSError("disk read failed")
        return real(bp, y, x)

    monkeypatch.setattr(mod, "compute_block", flaky)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk read failed"):
        compute(src, ["ndvi", "savi"], out_dir=out, scheduler="threads")
    assert list(out.iterdir()) == []  # no COG, no temporary tiles


@pytest.mark.slow
def test_distributed_and_processes_match_threads_bit_for_bit(tmp_path, monkeypatch) -> None:
    import importlib

    from distributed import LocalCluster

    # 512-px blocks: nine of them, and every overview tile pasted together from pieces
    monkeypatch.setattr(importlib.import_module("belcheer.indices.compute"), "CHUNK_PX", 512)
    src = tmp_path / "refl.tif"
    _write_cube(src, n=1536, seed=3)
    names = ["ndvi", "savi", "ndrei"]
    threaded = compute(src, names, out_dir=tmp_path / "threads", scheduler="threads")
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cl:
        dist = compute(src, names, out_dir=tmp_path / "dist", scheduler=cl.scheduler_address)
    procs = compute(src, ["ndvi"], out_dir=tmp_path / "procs", scheduler="processes")
    for other in (dist, procs):
        for n in other:
            for i in (None, 0, 1):  # full resolution and both overviews
                kw = {} if i is None else {"OVERVIEW_LEVEL": i}
                with rasterio.open(threaded[n], **kw) as a, rasterio.open(other[n], **kw) as b:
                    x, y = a.read(1), b.read(1)
                assert x.tobytes() == y.tobytes(), (n, i)


def test_catalogue_reads_spyndex_data_without_importing_it():
    """The catalogue is spyndex's own data, entry for entry, but read from its JSON files: the
    package's import (requests, objects for every index) dominated small index runs."""
    import subprocess
    import sys

    code = ("import sys; from belcheer.indices.catalog import catalogue; n = len(catalogue()); "
            "print(n, 'spyndex' in sys.modules, 'requests' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    n, spy, req = out.stdout.split()
    assert (spy, req) == ("False", "False") and int(n) > 100

    import spyndex

    from belcheer.indices.catalog import CONSTANT_OVERRIDES, catalogue

    for name, d in catalogue().items():
        ref = spyndex.indices[name]
        assert (d.formula, d.long_name, d.reference, d.domain) == (
            ref.formula, ref.long_name, ref.reference, ref.application_domain), name
        for c, v in d.constants.items():
            if c not in CONSTANT_OVERRIDES.get(name, {}):  # SAVI: L = 0.5, not EVI's 1.0
                assert v == float(spyndex.constants[c].default), (name, c)

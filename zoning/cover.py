"""Fractional cover: the shares of green vegetation, dry (senescent) vegetation and bare ground
in each pixel, parcel and soum, by linear spectral unmixing of surface reflectance.

Each pixel's spectrum ``r`` (reflectance per band) is modelled as ``E·f`` with the endmember
spectra ``E`` (green, dry, bare) and the fractions ``f`` summing to one; the sum-to-one least
squares solution is affine in ``r`` (``f = A·r + c``), so a parcel's mean of pixel fractions is
exactly the unmixing of its mean spectrum. Fractions are not clipped per pixel (that would bias
parcel means); pixels that no mix of the three explains (water, roofs, felt, targets: residual
above ``RESIDUAL_MAX`` or a fraction outside ``FRACTION_RANGE``) are not ground cover (NaN).
Parcel shares are clipped to 0…1 and renormalised.

Endmembers: the steppe library :data:`DEFAULT_ENDMEMBERS` (green grass, standing litter,
kastanozem soil, MicaSense bands), or spectra from the survey itself — polygons over pure
patches (:func:`endmembers_from_polygons`). Limits: dry vegetation and bare soil differ little
in these bands (litter is ≈ 15 % brighter than soil with a slightly steeper red edge), so their
split is the least certain part and depends on good endmembers; RGB-only surveys cannot be
unmixed (a green share from NDVI needs NIR too).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd

from belcheer.errors import BandError, InputError

if TYPE_CHECKING:  # pragma: no cover
    from belcheer.models import Product
    from belcheer.workspace import Workspace

#: the three cover classes, in band order of the cover raster
COVER_CLASSES: tuple[str, ...] = ("green", "dry", "bare")
#: typical spectra (hemispherical-directional reflectance factor) of Mongolian steppe: green
#: grass, standing litter, kastanozem soil; these are also the simulator's spectra
DEFAULT_ENDMEMBERS: dict[str, dict[str, float]] = {
    "green": {"blue": 0.035, "green": 0.085, "red": 0.045, "rededge": 0.22, "nir": 0.44},
    "dry": {"blue": 0.095, "green": 0.140, "red": 0.190, "rededge": 0.240, "nir": 0.300},
    "bare": {"blue": 0.085, "green": 0.125, "red": 0.170, "rededge": 0.205, "nir": 0.245},
}
#: further spectra per class tried pixel by pixel (multiple-endmember unmixing, MESMA: the
#: model with the smallest residual wins): crop canopy and shrubs are green but not grass,
#: tracks and stones are bare but not soil
ALTERNATIVE_ENDMEMBERS: dict[str, dict[str, dict[str, float]]] = {
    "green": {"crop": {"blue": 0.030, "green": 0.080, "red": 0.035, "rededge": 0.260, "nir": 0.520},
              "shrub": {"blue": 0.025, "green": 0.055, "red": 0.030, "rededge": 0.170, "nir": 0.330}},
    "dry": {},
    "bare": {"track": {"blue": 0.130, "green": 0.175, "red": 0.225, "rededge": 0.255, "nir": 0.280},
             "stone": {"blue": 0.280, "green": 0.300, "red": 0.320, "rededge": 0.330, "nir": 0.340}},
}
#: RMS residual (reflectance) above which a pixel is not a mix of vegetation and soil
RESIDUAL_MAX = 0.05
#: fractions a pixel may reach before it is taken as not ground cover (noise allows a margin)
FRACTION_RANGE = (-0.5, 1.5)
#: class names accepted in endmember polygons
_ALIASES = {"green": "green", "gv": "green", "green_vegetation": "green", "ногоон": "green",
            "dry": "dry", "npv": "dry", "litter": "dry", "senescent": "dry", "хуурай": "dry",
            "bare": "bare", "soil": "bare", "bare_soil": "bare", "ил хөрс": "bare"}


def endmember_matrix(bands: Sequence[str], endmembers: Mapping[str, Mapping[str, float]] | None = None
                     ) -> np.ndarray:
    """(band, 3) matrix of the endmembers' reflectance in ``bands`` (names: blue, green, red,
    rededge, nir); raises :class:`BandError` naming missing bands."""
    em = endmembers or DEFAULT_ENDMEMBERS
    missing_cls = [c for c in COVER_CLASSES if c not in em]
    if missing_cls:
        raise InputError(f"endmembers lack {', '.join(missing_cls)}; give green, dry and bare spectra")
    usable = [b for b in bands if all(b in em[c] for c in COVER_CLASSES)]
    if len(usable) < 3:
        raise BandError(f"fractional cover needs at least 3 bands with endmember values (blue, green, red, "
                        f"rededge, nir); the raster has {', '.join(bands) or 'none'}")
    return np.array([[float(em[c][b]) for c in COVER_CLASSES] for b in usable], dtype="float64")


def _solver(E: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``A`` (3, band) and ``c`` (3,) with ``f = A·r + c`` the sum-to-one least-squares fractions."""
    G = np.linalg.inv(E.T @ E)
    one = np.ones(E.shape[1])
    k = G @ one / (one @ G @ one)
    A = G @ E.T - np.outer(k, one @ G @ E.T)
    return A, k


def unmix(reflectance: np.ndarray, E: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fractions (3, …) of ``reflectance`` (band, …; bands in the rows' order of ``E``) and the
    RMS residual (…) of the fit, both float32; NaN where any band is NaN."""
    r = np.asarray(reflectance, dtype="float64")
    A, c = _solver(E)
    flat = r.reshape(r.shape[0], -1)
    f = A @ flat + c[:, None]
    resid = np.sqrt(np.mean((E @ f - flat) ** 2, axis=0))
    return (f.reshape((3, *r.shape[1:])).astype("float32"),
            resid.reshape(r.shape[1:]).astype("float32"))


def endmember_models(bands: Sequence[str], endmembers: Mapping[str, Mapping[str, float]] | None = None,
                     alternatives: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None
                     ) -> list[np.ndarray]:
    """Every (band, 3) endmember matrix to try: each combination of one spectrum per class
    from ``endmembers`` (default the steppe library) and ``alternatives`` (default
    :data:`ALTERNATIVE_ENDMEMBERS` with the library; none with your own ``endmembers``)."""
    import itertools

    em = endmembers or DEFAULT_ENDMEMBERS
    alt = alternatives if alternatives is not None else (ALTERNATIVE_ENDMEMBERS if endmembers is None else {})
    options = [[em[c], *alt.get(c, {}).values()] for c in COVER_CLASSES]
    return [endmember_matrix(bands, dict(zip(COVER_CLASSES, combo, strict=True)))
            for combo in itertools.product(*options)]


def cover_fractions(reflectance: np.ndarray, E: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """Per-pixel green/dry/bare fractions (3, …), float32, NaN where the pixel is not ground
    cover (see module docstring); with several endmember matrices each pixel takes the model
    with the smallest residual. Not clipped: means over many pixels stay unbiased."""
    models = [E] if isinstance(E, np.ndarray) else list(E)
    best_f, best_r = unmix(reflectance, models[0])
    for M in models[1:]:
        f, r = unmix(reflectance, M)
        better = r < best_r
        best_f[:, better] = f[:, better]
        best_r[better] = r[better]
    lo, hi = FRACTION_RANGE
    bad = ~np.isfinite(best_r) | (best_r > RESIDUAL_MAX) | np.any((best_f < lo) | (best_f > hi), axis=0)
    best_f[:, bad] = np.nan
    return best_f


def _band_names(product: Product | None, src: Any) -> list[str]:
    if product is not None and product.bands:
        return [b.name for b in product.bands]
    return [(d or "").lower() for d in src.descriptions]


def cover_raster_file(reflectance: str | Path, out: str | Path, *, bands: Sequence[str] | None = None,
                      endmembers: Mapping[str, Mapping[str, float]] | None = None,
                      block: int = 1024) -> Path:
    """Write the green/dry/bare fractions of a reflectance raster as a 3-band float32 COG
    (NaN = not ground cover) on its grid, block by block. ``bands`` names the raster's bands
    (default: its band descriptions)."""
    import rasterio
    from rasterio.windows import Window

    from belcheer.cog import cog_writer

    out = Path(out)
    with rasterio.open(reflectance) as src:
        names = list(bands) if bands else _band_names(None, src)
        em = endmembers or DEFAULT_ENDMEMBERS
        models = endmember_models([b for b in names if all(b in em[c] for c in COVER_CLASSES)],
                                  endmembers)
        idx = [i + 1 for i, b in enumerate(names) if all(b in em[c] for c in COVER_CLASSES)]
        profile = {"dtype": "float32", "count": 3, "width": src.width, "height": src.height,
                   "crs": src.crs, "transform": src.transform, "nodata": float("nan")}
        with cog_writer(out, profile, overview_resampling="AVERAGE") as dst:
            for row in range(0, src.height, block):
                for col in range(0, src.width, block):
                    win = Window(col, row, min(block, src.width - col), min(block, src.height - row))
                    r = np.ma.filled(src.read(idx, window=win, masked=True).astype("float64"), np.nan)
                    dst.write(cover_fractions(r, models), window=win)
            for i, name in enumerate(COVER_CLASSES, 1):
                dst.set_band_description(i, name)
            dst.update_tags(kind="cover", units="fraction", method="linear spectral unmixing")
    return out


def parcel_cover(cover: str | Path, parcels: gpd.GeoDataFrame) -> pd.DataFrame:
    """Per parcel: ``green_cover``, ``dry_cover``, ``bare_cover`` (shares 0…1 of the parcel's
    ground-cover area, summing to 1) and ``cover_valid_fraction`` (share of the parcel's area
    on ground-cover pixels) from a cover raster (:func:`cover_raster_file`); exact
    area-weighted means (exactextract), parcels reprojected to the raster's CRS."""
    from belcheer.zoning.stats import zonal_stats

    cols = {}
    valid = None
    for i, name in enumerate(COVER_CLASSES, 1):
        t = zonal_stats(str(cover), parcels, stats=("mean", "count", "valid_fraction"), band=i, scheduler="synchronous")
        cols[name] = t.set_index("parcel_id")["mean"]
        if valid is None:
            valid = t.set_index("parcel_id")["valid_fraction"]
    raw = pd.DataFrame(cols).clip(lower=0.0, upper=1.0)
    total = raw.sum(axis=1)
    shares = raw.div(total.where(total > 0), axis=0)
    out = pd.DataFrame({"parcel_id": shares.index})
    for name in COVER_CLASSES:
        out[f"{name}_cover"] = shares[name].to_numpy()
    out["cover_valid_fraction"] = valid.reindex(shares.index).to_numpy()
    return out


def endmembers_from_polygons(reflectance: str | Path, polygons: gpd.GeoDataFrame, *,
                             class_field: str = "cover", bands: Sequence[str] | None = None
                             ) -> dict[str, dict[str, float]]:
    """Endmember spectra from the survey itself: the mean reflectance per band inside polygons
    drawn over pure patches, labelled green / dry / bare (also gv, npv, litter, soil …) in
    ``class_field``. Returns ``{class: {band: reflectance}}`` for :func:`cover_raster`."""
    from belcheer.zoning.stats import zonal_stats

    if class_field not in polygons.columns:
        raise InputError(f"endmember polygons have no column {class_field!r}")
    labels = polygons[class_field].astype(str).str.strip().str.lower().map(_ALIASES)
    if labels.isna().any():
        bad = sorted(set(polygons.loc[labels.isna(), class_field].astype(str)))
        raise InputError(f"unknown cover class(es) {', '.join(bad)}; use green, dry or bare")
    missing = [c for c in COVER_CLASSES if c not in set(labels)]
    if missing:
        raise InputError(f"no endmember polygon for {', '.join(missing)}")
    import rasterio

    with rasterio.open(reflectance) as src:
        names = list(bands) if bands else _band_names(None, src)
    polys = polygons.assign(parcel_id=[f"em{i}" for i in range(len(polygons))], cover_class=labels.to_numpy())
    out: dict[str, dict[str, float]] = {c: {} for c in COVER_CLASSES}
    for i, b in enumerate(names, 1):
        t = zonal_stats(str(reflectance), polys[["parcel_id", "geometry"]], stats=("mean", "count"), band=i,
                        scheduler="synchronous").set_index("parcel_id")
        w = t["count"].reindex(polys["parcel_id"]).to_numpy()
        m = t["mean"].reindex(polys["parcel_id"]).to_numpy()
        for c in COVER_CLASSES:
            sel = (polys["cover_class"].to_numpy() == c) & np.isfinite(m) & (w > 0)
            if sel.any():
                out[c][b] = float(np.average(m[sel], weights=w[sel]))
    return out


def cover_raster(ws: Workspace, survey: str, *, endmembers: Mapping[str, Mapping[str, float]] | None = None,
                 name: str = "cover", store_stats: bool = True) -> Product:
    """Fractional cover of a survey's reflectance product: writes a 3-band COG (green, dry,
    bare fractions; NaN = not ground cover), registers it as a COVER product and stores each
    current parcel's shares in the catalog (index name ``cover``: green_cover, dry_cover, bare_cover,
    cover_valid_fraction)."""
    from datetime import UTC, datetime

    from belcheer.errors import NotFoundError
    from belcheer.models import Band, Product, ProductKind
    from belcheer.zoning.parcels import load_parcels

    try:
        refl = ws.product(survey, "reflectance")
    except NotFoundError:
        raise NotFoundError(f"survey {survey!r} has no reflectance product: fractional cover needs a "
                            "calibrated multispectral mosaic (`belcheer calibrate` and `belcheer mosaic`)") from None
    with ws.product_file(refl) as refl_path:
        import rasterio

        with rasterio.open(refl_path) as src:
            names = _band_names(refl, src)
        with ws.writing_product(survey, name) as (out, uri):
            cover_raster_file(refl_path, out, bands=names, endmembers=endmembers)
    product = ws.add_product(Product(
        id="", survey=survey, kind=ProductKind.COVER,
        name=name, uri=uri, epsg=refl.epsg, bands=tuple(Band(c) for c in COVER_CLASSES), units="fraction",
        created=datetime.now(UTC),
        metadata={"method": "linear spectral unmixing (sum-to-one least squares)",
                  "endmembers": {c: dict(v) for c, v in (endmembers or DEFAULT_ENDMEMBERS).items()},
                  "classes": list(COVER_CLASSES), "display_range": [0.0, 1.0]}))
    if store_stats:
        try:
            parcels = load_parcels(ws)
        except NotFoundError:
            return product
        with ws.product_file(product) as cover_path:
            table = parcel_cover(cover_path, parcels)
        ws.catalog.put_stats(survey, ws.catalog.survey(survey).date, "cover", table.to_dict("records"),
                             parcel_version=parcels.attrs.get("parcel_version"))
    return product


def cover_rollup(table: pd.DataFrame, parcels: gpd.GeoDataFrame, boundaries: gpd.GeoDataFrame, *,
                 level: str = "soum", name_field: str | None = None) -> pd.DataFrame:
    """Area-weighted green/dry/bare shares per administrative unit (soum, aimag or bag) from a
    :func:`parcel_cover` table and the parcels (their ``area_ha`` × ``cover_valid_fraction``
    weighs each parcel). Columns: the unit's name, ``parcels``, ``area_ha`` and the shares."""
    from belcheer.zoning.rollup import assign_units

    units = pd.DataFrame({"parcel_id": parcels["parcel_id"].to_numpy(),
                          "area_ha": parcels["area_ha"].to_numpy(),
                          level: assign_units(parcels, boundaries, level=level,
                                              name_field=name_field).to_numpy()})
    merged = units.merge(table, on="parcel_id", how="inner")
    w = merged["area_ha"].astype("float64") * merged["cover_valid_fraction"].fillna(0.0)
    merged = merged.assign(_w=w)
    rows = []
    for unit, g in merged.groupby(level, dropna=True):
        ok = g[[f"{c}_cover" for c in COVER_CLASSES]].notna().all(axis=1) & (g["_w"] > 0)
        row: dict[str, Any] = {level: unit, "parcels": int(len(g)), "area_ha": float(g["area_ha"].sum())}
        for c in COVER_CLASSES:
            row[f"{c}_cover"] = float(np.average(g.loc[ok, f"{c}_cover"], weights=g.loc[ok, "_w"])) \
                if ok.any() else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)

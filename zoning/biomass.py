"""Biomass from a vegetation index, calibrated on field quadrats.

Quadrat samples are points (``lon``/``lat`` in WGS 84, or ``x``/``y`` with a ``crs``) with the
oven-dry weight of the clipped standing crop. The national monitoring protocol clips 50×50 cm
(0.25 m²) quadrats, so ``dry_g`` grams per quadrat × 40 = kg dry matter per hectare
(1 ha = 40 000 quadrats; 40 000 g = 40 kg). Samples already in kg/ha go in ``biomass_kg_ha``.
The model is a linear regression of biomass on the index (scikit-learn), reported with R²,
RMSE (kg DM/ha) and n, stored as JSON under the workspace's ``models/``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio

from belcheer.crs import crs_from_user
from belcheer.errors import CRSError, InputError, NotFoundError, ProcessingError
from belcheer.fileio import safe_name, write_json_atomic
from belcheer.models import Product, ProductKind

if TYPE_CHECKING:  # pragma: no cover
    from belcheer.workspace import Workspace

#: kg DM/ha per gram of dry matter clipped from one 50×50 cm quadrat.
QUADRAT_G_TO_KG_HA = 40.0


@dataclass(frozen=True)
class BiomassModel:
    """biomass (kg DM/ha) = slope × index + intercept, fitted on ``n`` quadrats."""

    index: str
    slope: float
    intercept: float
    r2: float
    rmse: float
    n: int
    method: str = "linear"
    survey: str | None = None

    def predict(self, values: Any) -> np.ndarray:
        """Biomass, kg DM/ha, for index values (negative predictions clipped to 0; NaN kept)."""
        v = np.asarray(values, dtype="float64")
        return np.clip(self.slope * v + self.intercept, 0, None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_samples(path: str | Path, *, crs: str | int | None = None) -> gpd.GeoDataFrame:
    """Quadrat samples from CSV: points with lon/lat (or x/y + ``crs`` column or argument) and
    ``dry_g`` (grams per 50×50 cm quadrat) or ``biomass_kg_ha``. Returns EPSG:4326 points with
    a ``biomass_kg_ha`` column."""
    table = pd.read_csv(path)
    cols = {c.lower(): c for c in table.columns}
    if "lon" in cols and "lat" in cols:
        pts = gpd.points_from_xy(table[cols["lon"]], table[cols["lat"]])
        frame = gpd.GeoDataFrame(table, geometry=pts, crs=4326)
    elif "x" in cols and "y" in cols:
        given = crs or (table[cols["crs"]].iloc[0] if "crs" in cols else None)
        if given is None:
            raise CRSError(f"{Path(path).name} has x/y columns but no CRS; add a 'crs' column or pass --crs")
        frame = gpd.GeoDataFrame(table, geometry=gpd.points_from_xy(table[cols["x"]], table[cols["y"]]),
                                 crs=crs_from_user(given)).to_crs(4326)
    else:
        raise InputError(f"{Path(path).name} needs lon/lat or x/y columns; it has {', '.join(table.columns)}")
    kg = next((cols[c] for c in ("biomass_kg_ha", "dry_weight_kg_ha", "kg_ha") if c in cols), None)
    grams = next((cols[c] for c in ("dry_g", "dry_weight_g", "grams") if c in cols), None)
    if kg is not None:
        frame["biomass_kg_ha"] = pd.to_numeric(table[kg], errors="coerce")
    elif grams is not None:
        frame["biomass_kg_ha"] = pd.to_numeric(table[grams], errors="coerce") * QUADRAT_G_TO_KG_HA
    else:
        raise InputError(f"{Path(path).name} needs a dry_g (grams per 50×50 cm quadrat) or biomass_kg_ha column")
    return frame


def calibrate_biomass(index_values: Any, biomass_kg_ha: Any, *, index: str = "ndvi",
                      survey: str | None = None) -> BiomassModel:
    """Fit biomass (kg DM/ha) = a × index + b by least squares; pairs with NaN are dropped.
    Needs at least 3 samples."""
    x = np.asarray(index_values, dtype="float64")
    y = np.asarray(biomass_kg_ha, dtype="float64")
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        raise ProcessingError(f"only {int(ok.sum())} quadrat(s) fall on valid {index} pixels; "
                              "at least 3 are needed to fit a biomass model")
    # scikit-learn is imported here, not at module level: it takes ≈ 1.3 s to import and
    # `import belcheer.zoning` should not pay that for every zonal-statistics or CLI call
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import mean_squared_error, r2_score

    reg = LinearRegression().fit(x[ok, None], y[ok])
    pred = reg.predict(x[ok, None])
    return BiomassModel(index=index, slope=float(reg.coef_[0]), intercept=float(reg.intercept_),
                        r2=float(r2_score(y[ok], pred)), rmse=float(np.sqrt(mean_squared_error(y[ok], pred))),
                        n=int(ok.sum()), survey=survey)


def sample_raster(raster: str | Path, points: gpd.GeoDataFrame, band: int = 1) -> np.ndarray:
    """Raster values at points (nearest pixel), NaN for nodata or outside."""
    with rasterio.open(raster) as src:
        local = points.to_crs(src.crs.to_wkt())
        xy = [(p.x, p.y) for p in local.geometry]
        vals = np.array([v[0] for v in src.sample(xy, indexes=band, masked=True)], dtype=object)
        b = src.bounds
    out = np.array([np.nan if (v is np.ma.masked or np.ma.is_masked(v)) else float(v) for v in vals])
    inside = np.array([b.left <= x <= b.right and b.bottom <= y <= b.top for x, y in xy])
    out[~inside] = np.nan
    return out


def model_path(ws: Workspace, survey: str, index: str) -> Path:
    return ws.path("models", f"biomass-{safe_name(survey)}-{safe_name(index)}.json")


def calibrate_survey(ws: Workspace, survey: str, samples: str | Path, *, index: str = "ndvi",
                     crs: str | int | None = None, make_raster: bool = True) -> tuple[BiomassModel, Product | None]:
    """Fit a biomass model for a survey from quadrat samples over its ``index`` product, store
    it in ``models/`` and (by default) write the BIOMASS raster product."""
    prod = ws.product(survey, index)
    pts = read_samples(samples, crs=crs)
    with ws.product_file(prod) as raster:
        x = sample_raster(raster, pts)
    model = calibrate_biomass(x, pts["biomass_kg_ha"], index=index, survey=survey)
    write_json_atomic(model_path(ws, survey, index), model.to_dict())
    product = biomass_raster(ws, survey, model) if make_raster else None
    return model, product


def load_model(ws: Workspace, survey: str, index: str = "ndvi") -> BiomassModel:
    path = model_path(ws, survey, index)
    if not path.exists():
        raise NotFoundError(f"no biomass model for survey {survey!r} and {index}; run "
                            f"`belcheer biomass calibrate {survey} SAMPLES.csv` first")
    return BiomassModel(**json.loads(path.read_text(encoding="utf-8")))


def biomass_raster(ws: Workspace, survey: str, model: BiomassModel, *, name: str = "biomass") -> Product:
    """Apply ``model`` to the survey's index product block by block; a float32 COG in kg DM/ha
    (NaN nodata) registered as a BIOMASS product."""
    from belcheer.zoning.rasterout import map_blocks_to_cog

    prod = ws.product(survey, model.index)
    with ws.product_file(prod) as raster, ws.writing_product(survey, name) as (out, uri):
        map_blocks_to_cog([raster], out, lambda a, w, t: model.predict(a[0]).astype("float32"),
                          dtype="float32", nodata=float("nan"), overview_resampling="average")
    return ws.add_product(Product(id="", survey=survey, kind=ProductKind.BIOMASS, name=name, uri=uri,
                                  epsg=prod.epsg, units="kg DM/ha", relative=prod.relative,
                                  metadata={"model": model.to_dict()}))

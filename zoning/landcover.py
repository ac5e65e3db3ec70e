"""Land cover from index/band stacks: supervised random forest from training polygons, with
accuracy measured on held-back *polygons* (pixels of one polygon are never split between
training and test, which would inflate accuracy), or unsupervised k-means as a fallback.

Class codes (uint8, 0 = no data): 1 cropland, 2 pasture, 3 bare soil, 4 water, 5 built-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from rasterio.features import rasterize

from belcheer.errors import InputError, ProcessingError

LANDCOVER_CLASSES: dict[int, str] = {1: "cropland", 2: "pasture", 3: "bare_soil", 4: "water", 5: "built_up"}
_CODES = {v: k for k, v in LANDCOVER_CLASSES.items()}
_CODES.update({"bare soil": 3, "bare": 3, "built-up": 5, "built up": 5, "built": 5, "тариалан": 1,
               "бэлчээр": 2, "ус": 4})
#: Training pixels used to fit the forest (sampled evenly per polygon).
MAX_TRAIN_PIXELS = 200_000


@dataclass
class LandcoverResult:
    """The class raster and how good it is (accuracy on held-back polygons)."""

    classes: np.ndarray
    method: str
    accuracy: float | None = None
    kappa: float | None = None
    confusion: pd.DataFrame | None = None
    n_train_polygons: int = 0
    n_test_polygons: int = 0
    report: dict[str, Any] = field(default_factory=dict)


def _code(v: Any) -> int:
    if isinstance(v, int | np.integer) and int(v) in LANDCOVER_CLASSES:
        return int(v)
    key = str(v).strip().lower()
    if key.isdigit() and int(key) in LANDCOVER_CLASSES:
        return int(key)
    if key not in _CODES:
        raise InputError(f"unknown land-cover class {v!r}; use one of {', '.join(LANDCOVER_CLASSES.values())}")
    return _CODES[key]


def classify_landcover(stack: Any, transform: Any, crs: Any, training: gpd.GeoDataFrame | None = None, *,
                       class_field: str = "class", method: str | None = None, n_clusters: int = 5,
                       test_size: float = 0.3, seed: int = 0) -> LandcoverResult:
    """Classify a (band, row, col) stack on the grid ``transform``/``crs`` into land cover.

    With ``training`` polygons (column ``class_field`` holding class names or codes) a random
    forest is fitted on the pixels of ``1 - test_size`` of the polygons and scored on the rest
    (overall accuracy, Cohen's kappa, confusion matrix); the map uses the forest refitted on
    all polygons. Without training (or ``method="kmeans"``), k-means clusters numbered 1…k by
    the first band's centre (unlabelled: name them yourself)."""
    # scikit-learn is imported here, not at module level: it takes ≈ 1.3 s to import and
    # `import belcheer.zoning` should not pay that for every zonal-statistics or CLI call
    from sklearn.cluster import KMeans
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import accuracy_score, cohen_kappa_score, confusion_matrix
    from sklearn.model_selection import GroupShuffleSplit

    x = np.asarray(stack, dtype="float64")
    if x.ndim == 2:
        x = x[None]
    valid = np.all(np.isfinite(x), axis=0)
    feats = x[:, valid].T
    out = np.zeros(valid.shape, dtype="uint8")
    method = method or ("rf" if training is not None else "kmeans")
    if method == "kmeans":
        km = KMeans(n_clusters=n_clusters, n_init=4, random_state=seed)
        rng = np.random.default_rng(seed)
        fit = feats[rng.choice(len(feats), min(len(feats), MAX_TRAIN_PIXELS), replace=False)]
        km.fit(fit)
        rank = np.argsort(np.argsort(km.cluster_centers_[:, 0]))
        out[valid] = (rank[km.predict(feats)] + 1).astype("uint8")
        return LandcoverResult(classes=out, method="kmeans", report={"clusters": n_clusters})
    if training is None or len(training) == 0:
        raise InputError("supervised land-cover classification needs training polygons")
    if class_field not in training.columns:
        raise InputError(f"training polygons have no column {class_field!r}; they have {', '.join(training.columns)}")
    train = training.to_crs(crs).reset_index(drop=True)
    codes = np.array([_code(v) for v in train[class_field]])
    poly_id = rasterize([(g, i + 1) for i, g in enumerate(train.geometry)], out_shape=valid.shape,
                        transform=transform, fill=0, dtype="int32")
    pix = (poly_id > 0) & valid
    groups = poly_id[pix] - 1
    y = codes[groups]
    xs = x[:, pix].T
    present = np.unique(groups)
    if present.size < 2:
        raise ProcessingError("fewer than 2 training polygons cover valid pixels; add training polygons")
    split = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
    tr, te = next(split.split(xs, y, groups))
    rng = np.random.default_rng(seed)
    if len(tr) > MAX_TRAIN_PIXELS:
        tr = rng.choice(tr, MAX_TRAIN_PIXELS, replace=False)
    rf = RandomForestClassifier(n_estimators=100, n_jobs=1, random_state=seed).fit(xs[tr], y[tr])
    pred = rf.predict(xs[te])
    labels = sorted(set(y))
    conf = pd.DataFrame(confusion_matrix(y[te], pred, labels=labels),
                        index=[LANDCOVER_CLASSES[c] for c in labels], columns=[LANDCOVER_CLASSES[c] for c in labels])
    acc = float(accuracy_score(y[te], pred))
    kappa = float(cohen_kappa_score(y[te], pred)) if len(set(y[te]) | set(pred)) > 1 else float("nan")
    all_idx = np.arange(len(y))
    if len(all_idx) > MAX_TRAIN_PIXELS:
        all_idx = rng.choice(all_idx, MAX_TRAIN_PIXELS, replace=False)
    final = RandomForestClassifier(n_estimators=100, n_jobs=1, random_state=seed).fit(xs[all_idx], y[all_idx])
    out[valid] = final.predict(feats).astype("uint8")
    return LandcoverResult(classes=out, method="rf", accuracy=acc, kappa=kappa, confusion=conf,
                           n_train_polygons=int(np.unique(groups[tr]).size),
                           n_test_polygons=int(np.unique(groups[te]).size),
                           report={"test_pixels": int(len(te)), "train_pixels": int(len(tr))})


def landcover_shares(classes: np.ndarray, transform: Any, crs: Any, parcels: gpd.GeoDataFrame) -> pd.DataFrame:
    """Per-parcel share of each land-cover class (``frac_<code>`` columns, coverage-weighted)."""
    from rasterio.io import MemoryFile

    from belcheer.zoning.stats import zonal_stats

    h, w = classes.shape
    with MemoryFile() as mem:
        with mem.open(driver="GTiff", width=w, height=h, count=1, dtype="uint8", crs=crs,
                      transform=transform, nodata=0) as ds:
            ds.write(classes, 1)
        shares = zonal_stats(mem.name, parcels, stats=("count",), categorical=True, scheduler="synchronous")
    return shares.rename(columns={f"frac_{k}": f"share_{v}" for k, v in LANDCOVER_CLASSES.items()})


#: Pixels above which a survey's stack is classified on a decimated grid (memory: bands × this × 8 B).
MAX_CLASSIFY_PIXELS = 25_000_000


def landcover_raster(ws: Any, survey: str, training: gpd.GeoDataFrame | None, *,
                     indices: tuple[str, ...] = ("ndvi",), class_field: str = "class",
                     method: str | None = None, name: str = "landcover", seed: int = 0,
                     max_pixels: int = MAX_CLASSIFY_PIXELS) -> LandcoverResult:
    """Classify a survey's index products (stacked on the first one's grid) into land cover,
    write a LANDCOVER COG (uint8, 0 = nodata) and store each parcel's class shares in the
    catalog (index name ``landcover``). Stacks larger than ``max_pixels`` are classified on a
    proportionally decimated grid (pixel-averaged; the product then has coarser pixels)."""
    import math

    import rasterio
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    from belcheer.errors import NotFoundError
    from belcheer.models import Product, ProductKind
    from belcheer.zoning.parcels import load_parcels
    from belcheer.zoning.rasterout import write_array_cog

    prods = [ws.product(survey, i) for i in indices]
    with rasterio.open(prods[0].path) as ref:
        f = max(1.0, math.sqrt(ref.width * ref.height / max_pixels))
        h, w = int(ref.height / f), int(ref.width / f)
        transform = ref.transform @ ref.transform.scale(ref.width / w, ref.height / h)
        crs = ref.crs
        layers = []
        for p in prods:
            with rasterio.open(p.path) as src, WarpedVRT(src, crs=crs, transform=transform, width=w, height=h,
                                                         resampling=Resampling.average, nodata=np.nan) as vrt:
                layers.append(np.ma.filled(vrt.read(1, masked=True).astype("float64"), np.nan))
    result = classify_landcover(np.stack(layers), transform, crs, training, class_field=class_field,
                                method=method, seed=seed)
    out = ws.product_path(survey, name)
    write_array_cog(result.classes, out, transform=transform, crs=crs, dtype="uint8", nodata=0)
    ws.add_product(Product(id="", survey=survey, kind=ProductKind.LANDCOVER, name=name, path=out,
                           epsg=prods[0].epsg, units="class code",
                           metadata={"classes": LANDCOVER_CLASSES if result.method == "rf" else {},
                                     "method": result.method, "accuracy": result.accuracy,
                                     "kappa": result.kappa, "indices": list(indices)}))
    try:
        parcels = load_parcels(ws)
    except NotFoundError:
        return result
    shares = landcover_shares(result.classes, transform, crs, parcels)
    rows = [{k: v for k, v in r.items() if k == "parcel_id" or k.startswith("share_") or k == "count"}
            for r in shares.to_dict("records")]
    ws.catalog.put_stats(survey, ws.catalog.survey(survey).date, name, rows,
                         parcel_version=parcels.attrs.get("parcel_version"))
    result.report["product"] = str(out)
    return result

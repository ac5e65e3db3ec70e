"""Land cover from index/band stacks: supervised random forest from training polygons, with
accuracy measured on held-back *polygons* (pixels of one polygon are never split between
training and test, which would inflate accuracy), or unsupervised k-means as a fallback.

Class codes (uint8, 0 = no data): 1 cropland, 2 pasture, 3 bare soil, 4 water, 5 built-up.
"""

from __future__ import annotations

import json
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


#: neighbourhood sizes, metres, whose local mean (and, at the first, local standard deviation)
#: of every input layer are added as features: a drone pixel of pasture may be a bare spot, a
#: stone or a tussock, and only its surroundings say it is pasture (see README, land cover)
CONTEXT_M: tuple[float, ...] = (1.0, 4.0)
#: training pixels drawn per polygon and fold (polygons are sampled evenly, so a large crop
#: field does not drown a small pasture square)
PIXELS_PER_POLYGON = 4000


@dataclass
class LandcoverResult:
    """The class raster and how good it is.

    ``accuracy``, ``kappa``, ``confusion`` (rows = reference class, columns = predicted) and
    ``per_class`` (precision, recall, F1, pixels, polygons per class) are measured on held-back
    *polygons*: each polygon is predicted by a forest that never saw it (cross-validation by
    polygon). Classes with a single polygon cannot be held back; they are listed in
    ``report["not_validated"]``. Polygons drawn well inside one cover are easier than the
    map's mixed edges, so these numbers are an upper bound on the map's accuracy."""

    classes: np.ndarray
    method: str
    accuracy: float | None = None
    kappa: float | None = None
    confusion: pd.DataFrame | None = None
    n_train_polygons: int = 0
    n_test_polygons: int = 0
    per_class: pd.DataFrame | None = None
    report: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no raster)."""
        return {"method": self.method, "accuracy": self.accuracy, "kappa": self.kappa,
                "n_train_polygons": self.n_train_polygons, "n_test_polygons": self.n_test_polygons,
                "per_class": None if self.per_class is None else
                json.loads(self.per_class.reset_index(names="class").to_json(orient="records")),
                "confusion": None if self.confusion is None else
                {str(k): {str(c): int(v) for c, v in row.items()} for k, row in self.confusion.iterrows()},
                **{k: v for k, v in self.report.items() if k != "product"},
                **({"product": self.report["product"]} if "product" in self.report else {})}


def _code(v: Any) -> int:
    if isinstance(v, int | np.integer) and int(v) in LANDCOVER_CLASSES:
        return int(v)
    key = str(v).strip().lower()
    if key.isdigit() and int(key) in LANDCOVER_CLASSES:
        return int(key)
    if key not in _CODES:
        raise InputError(f"unknown land-cover class {v!r}; use one of {', '.join(LANDCOVER_CLASSES.values())}")
    return _CODES[key]


def accuracy_table(reference: Any, predicted: Any, labels: Any = None) -> tuple[pd.DataFrame, pd.DataFrame, float, float]:
    """Per-class precision, recall, F1 and support, the confusion matrix (rows = reference,
    columns = predicted, pixel counts), overall accuracy and Cohen's kappa of two arrays of
    class codes (0 = no data is ignored). Index labels are class names."""
    from sklearn.metrics import cohen_kappa_score, confusion_matrix, precision_recall_fscore_support

    ref = np.asarray(reference).ravel()
    pred = np.asarray(predicted).ravel()
    keep = (ref > 0) & (pred > 0)
    ref, pred = ref[keep], pred[keep]
    labels = sorted(set(ref) | set(pred)) if labels is None else list(labels)
    names = [LANDCOVER_CLASSES.get(int(c), str(c)) for c in labels]
    p, r, f, n = precision_recall_fscore_support(ref, pred, labels=labels, zero_division=0)
    table = pd.DataFrame({"precision": p, "recall": r, "f1": f, "pixels": n}, index=names)
    conf = pd.DataFrame(confusion_matrix(ref, pred, labels=labels), index=names, columns=names)
    acc = float((ref == pred).mean()) if ref.size else float("nan")
    kappa = float(cohen_kappa_score(ref, pred)) if len(set(ref) | set(pred)) > 1 else float("nan")
    return table, conf, acc, kappa


def _nan_mean_filter(a: np.ndarray, size: int) -> np.ndarray:
    """Local mean over a ``size`` × ``size`` window ignoring NaN (normalised convolution)."""
    from scipy.ndimage import uniform_filter

    ok = np.isfinite(a)
    num = uniform_filter(np.where(ok, a, 0.0), size, mode="nearest")
    den = uniform_filter(ok.astype("float32"), size, mode="nearest")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def context_features(stack: np.ndarray, pixel_m: float, context_m: tuple[float, ...] = CONTEXT_M) -> np.ndarray:
    """The layers of ``stack`` (layer, row, col) plus, per layer, their local mean over each
    ``context_m`` window (metres; skipped when under 2 pixels) and the local standard deviation
    over the first: texture and surroundings that tell a bare spot in pasture from a bare field."""
    out = [stack]
    for i, m in enumerate(context_m):
        size = int(round(m / pixel_m))
        if size < 2:
            continue
        means = np.stack([_nan_mean_filter(layer, size) for layer in stack])
        out.append(means)
        if i == 0:
            sq = np.stack([_nan_mean_filter(layer * layer, size) for layer in stack])
            out.append(np.sqrt(np.clip(sq - means * means, 0, None)))
    return np.concatenate(out)


def _sample(groups: np.ndarray, idx: np.ndarray, per_polygon: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``per_polygon`` of the pixels ``idx`` from each polygon (group)."""
    out = []
    for g in np.unique(groups[idx]):
        members = idx[groups[idx] == g]
        out.append(members if len(members) <= per_polygon else rng.choice(members, per_polygon, replace=False))
    return np.concatenate(out) if out else idx[:0]


def classify_landcover(stack: Any, transform: Any, crs: Any, training: gpd.GeoDataFrame | None = None, *,
                       class_field: str = "class", method: str | None = None, n_clusters: int = 5,
                       test_size: float = 0.3, seed: int = 0,
                       context_m: tuple[float, ...] = CONTEXT_M, n_folds: int = 5) -> LandcoverResult:
    """Classify a (layer, row, col) stack on the grid ``transform``/``crs`` (metres) into land cover.

    With ``training`` polygons (column ``class_field`` holding class names or codes) a random
    forest learns from every layer and its neighbourhood (:func:`context_features`); its
    accuracy is cross-validated by polygon (up to ``n_folds`` folds, each polygon predicted by
    a forest trained without it; classes with one polygon always train) and the map uses the
    forest fitted on all polygons. Without training (or ``method="kmeans"``), k-means clusters
    numbered 1…k by the first layer's centre (unlabelled: name them yourself). ``test_size`` is
    kept for compatibility and unused."""
    # scikit-learn is imported here, not at module level: it takes ≈ 1.3 s to import and
    # `import belcheer.zoning` should not pay that for every zonal-statistics or CLI call
    from sklearn.cluster import KMeans
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import StratifiedGroupKFold

    x = np.asarray(stack, dtype="float32")
    if x.ndim == 2:
        x = x[None]
    valid = np.all(np.isfinite(x), axis=0)
    out = np.zeros(valid.shape, dtype="uint8")
    method = method or ("rf" if training is not None else "kmeans")
    if method == "kmeans":
        feats = x[:, valid].T
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
    full = context_features(x, abs(float(transform.a)), context_m)
    valid &= np.all(np.isfinite(full), axis=0)
    pix = (poly_id > 0) & valid
    groups = poly_id[pix] - 1
    y = codes[groups]
    xs = full[:, pix].T
    present = np.unique(groups)
    if present.size < 2:
        raise ProcessingError("fewer than 2 training polygons cover valid pixels; add training polygons")
    rng = np.random.default_rng(seed)

    def forest(idx: np.ndarray) -> Any:
        return RandomForestClassifier(n_estimators=60, min_samples_leaf=2, n_jobs=1,
                                      random_state=seed).fit(xs[idx], y[idx])

    # cross-validation by polygon: classes with ≥ 2 polygons are split into folds
    poly_class = pd.Series(codes[present], index=present)
    counts = poly_class.value_counts()
    cv_classes = counts[counts >= 2].index.to_numpy()
    lonely = np.isin(y, counts[counts < 2].index.to_numpy())
    pred = np.zeros(len(y), dtype="uint8")
    tested = np.zeros(len(y), dtype=bool)
    k = int(min(n_folds, counts[counts >= 2].min())) if len(cv_classes) else 0
    if k >= 2 and len(cv_classes) >= 2:
        cv_idx = np.flatnonzero(~lonely)
        folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        for tr, te in folds.split(cv_idx, y[cv_idx], groups[cv_idx]):
            tr_idx = np.concatenate([cv_idx[tr], np.flatnonzero(lonely)])
            model = forest(_sample(groups, tr_idx, PIXELS_PER_POLYGON, rng))
            pred[cv_idx[te]] = model.predict(xs[cv_idx[te]])
            tested[cv_idx[te]] = True
    final = forest(_sample(groups, np.arange(len(y)), PIXELS_PER_POLYGON, rng))
    feats = full[:, valid].T
    step = 1_000_000  # predict in slices: the forest's per-tree probability arrays stay small
    labels_out = np.concatenate([final.predict(feats[i:i + step]) for i in range(0, len(feats), step)]) \
        if len(feats) else np.zeros(0, "uint8")
    out[valid] = labels_out.astype("uint8")
    not_validated = sorted(LANDCOVER_CLASSES[int(c)] for c in counts[counts < 2].index)
    result = LandcoverResult(classes=out, method="rf", n_train_polygons=int(present.size),
                             n_test_polygons=int(np.unique(groups[tested]).size),
                             report={"validation": f"cross-validated by polygon ({k} folds)" if tested.any()
                                     else "none (too few polygons per class)",
                                     "not_validated": not_validated,
                                     "train_pixels": int(len(y)), "test_pixels": int(tested.sum()),
                                     "features": int(full.shape[0]), "context_m": list(context_m)})
    if tested.any():
        labels = sorted(set(y[tested]) | set(pred[tested]))
        table, conf, acc, kappa = accuracy_table(y[tested], pred[tested], labels)
        polys = pd.Series(codes[np.unique(groups[tested])]).map(LANDCOVER_CLASSES).value_counts()
        table["polygons"] = [int(polys.get(n, 0)) for n in table.index]
        result.per_class, result.confusion, result.accuracy, result.kappa = table, conf, acc, kappa
    return result


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


#: Pixels above which a survey's stack is classified on a decimated grid (memory: about
#: 4 × layers × this × 4 B for the features with their neighbourhood means).
MAX_CLASSIFY_PIXELS = 6_000_000


def _survey_layers(ws: Any, survey: str, indices: tuple[str, ...] | None,
                   bands: bool) -> tuple[list[Any], list[str]]:
    """Products to stack and their layer names: the reflectance bands (else the orthomosaic's
    colour bands) when ``bands``, then each index in ``indices`` (default: every stored index)."""
    from belcheer.errors import NotFoundError
    from belcheer.models import ProductKind

    prods: list[Any] = []
    if bands:
        for name in ("reflectance", "orthomosaic"):
            try:
                prods.append(ws.product(survey, name))
                break
            except NotFoundError:
                continue
    if indices is None:
        prods += [p for p in ws.catalog.products(survey) if p.kind is ProductKind.INDEX]
    else:
        prods += [ws.product(survey, i) for i in indices]
    if not prods:
        raise NotFoundError(f"survey {survey!r} has no reflectance, orthomosaic or index product to "
                            f"classify; run `belcheer indices {survey}` first")
    return prods, [p.name for p in prods]


def landcover_raster(ws: Any, survey: str, training: gpd.GeoDataFrame | None, *,
                     indices: tuple[str, ...] | None = ("ndvi",), bands: bool = True,
                     class_field: str = "class",
                     method: str | None = None, name: str = "landcover", seed: int = 0,
                     max_pixels: int = MAX_CLASSIFY_PIXELS) -> LandcoverResult:
    """Classify a survey into land cover from its reflectance bands (or the orthomosaic's
    colour bands; ``bands=False`` leaves them out) and index products (``indices``; ``None`` =
    every stored index), stacked on the first one's grid. Writes a LANDCOVER COG (uint8,
    0 = nodata) and stores each parcel's class shares in the catalog (index name
    ``landcover``). Stacks larger than ``max_pixels`` are classified on a proportionally
    decimated grid (pixel-averaged; the product then has coarser pixels)."""
    import math

    from rasterio.enums import ColorInterp, Resampling
    from rasterio.vrt import WarpedVRT

    from belcheer.errors import NotFoundError
    from belcheer.models import Product, ProductKind
    from belcheer.zoning.parcels import load_parcels
    from belcheer.zoning.rasterout import write_array_cog

    prods, layer_names = _survey_layers(ws, survey, tuple(indices) if indices is not None else None, bands)
    with ws.open_product(prods[0]) as ref:
        f = max(1.0, math.sqrt(ref.width * ref.height / max_pixels))
        h, w = int(ref.height / f), int(ref.width / f)
        transform = ref.transform @ ref.transform.scale(ref.width / w, ref.height / h)
        crs = ref.crs
        layers = []
        for p in prods:
            with ws.open_product(p) as src, WarpedVRT(src, crs=crs, transform=transform, width=w, height=h,
                                                         resampling=Resampling.average, nodata=np.nan,
                                                         dtype="float32") as vrt:
                keep = [i + 1 for i, ci in enumerate(src.colorinterp) if ci is not ColorInterp.alpha]
                for b in keep:
                    layers.append(np.ma.filled(vrt.read(b, masked=True).astype("float32"), np.nan))
    result = classify_landcover(np.stack(layers), transform, crs, training, class_field=class_field,
                                method=method, seed=seed)
    result.report["layers"] = layer_names
    with ws.writing_product(survey, name) as (out, uri):
        write_array_cog(result.classes, out, transform=transform, crs=crs, dtype="uint8", nodata=0)
    ws.add_product(Product(id="", survey=survey, kind=ProductKind.LANDCOVER, name=name, uri=uri,
                           epsg=prods[0].epsg, units="class code",
                           metadata={"classes": LANDCOVER_CLASSES if result.method == "rf" else {},
                                     "method": result.method, "accuracy": result.accuracy,
                                     "kappa": result.kappa, "layers": layer_names,
                                     "validation": result.to_dict()}))
    try:
        parcels = load_parcels(ws)
    except NotFoundError:
        return result
    shares = landcover_shares(result.classes, transform, crs, parcels)
    rows = [{k: v for k, v in r.items() if k == "parcel_id" or k.startswith("share_") or k == "count"}
            for r in shares.to_dict("records")]
    ws.catalog.put_stats(survey, ws.catalog.survey(survey).date, name, rows,
                         parcel_version=parcels.attrs.get("parcel_version"))
    result.report["product"] = uri
    return result

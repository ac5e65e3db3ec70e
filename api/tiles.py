"""Map tiles, TileJSON, legends and point values, read from product COGs with rio-tiler.

Tiles are on the WebMercatorQuad grid (morecantile). Each product kind has one style: true colour
for orthomosaics and reflectance (bands red/green/blue by name), a diverging red–yellow–green ramp
for vegetation indices, the recovery-class palette I–V for condition rasters, a sequential ramp for
biomass. Pixels outside the data are transparent.

Products are read through the workspace's product store (:mod:`belcheer.storage`): a local COG,
or an S3 object read by GDAL's /vsis3/ with range requests. Every function takes the workspace's
:class:`~belcheer.storage.Stores` and resolves the product to a
:class:`~belcheer.storage.ProductSource` first, so a product whose object was deleted is a 404
naming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import math
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import anyio
import morecantile
import numpy as np
import rasterio
from PIL import Image
from rio_tiler.colormap import apply_cmap, cmap
from rio_tiler.constants import WGS84_CRS
from rio_tiler.errors import PointOutsideBounds, TileOutsideBounds
from rio_tiler.io import Reader
from rio_tiler.models import ImageData

from belcheer.api.messages import class_label, t, units_label
from belcheer.api.safety import check_raster, check_raster_source
from belcheer.errors import InputError, NotFoundError
from belcheer.models import Product, ProductKind
from belcheer.storage import FileStore, ProductSource, Stores

TMS = morecantile.tms.get("WebMercatorQuad")
FORMATS = {"png": ("PNG", "image/png"), "webp": ("WEBP", "image/webp")}
#: bump when styles change so browsers drop cached tiles (part of the ETag)
STYLE_VERSION = "2"
#: recovery classes I–V: green (not degraded) → red (severely degraded), RGBA
CONDITION_COLORS: dict[int, tuple[int, int, int, int]] = {
    1: (26, 152, 80, 255), 2: (145, 207, 96, 255), 3: (254, 224, 139, 255),
    4: (252, 141, 89, 255), 5: (215, 48, 39, 255),
}
#: land-cover classes (codes of belcheer.zoning.landcover), RGBA
LANDCOVER_COLORS: dict[int, tuple[int, int, int, int]] = {
    1: (230, 171, 2, 255), 2: (102, 166, 30, 255), 3: (166, 118, 29, 255),
    4: (31, 120, 180, 255), 5: (117, 112, 179, 255),
}
#: nominal display ranges of indices whose values are physically bounded
_INDEX_RANGES = {"ndvi": (-0.2, 0.9), "gndvi": (-0.2, 0.9), "ndrei": (-0.2, 0.7), "savi": (-0.2, 0.8),
                 "msavi": (-0.2, 0.8), "osavi": (-0.2, 0.8), "evi": (-0.2, 0.9)}
_RGB = ("red", "green", "blue")
#: Product files whose opened readers are kept (the least recently used file's are closed first).
READER_FILES = 8
#: Idle readers kept per file; concurrent requests open more and close the surplus afterwards.
READERS_PER_FILE = 4
#: Tiles rendered at once; further requests wait in arrival order (see ``run_render``).
RENDER_SLOTS = max(2, os.cpu_count() or 2)


@dataclass(frozen=True)
class Style:
    """How a product is drawn: band indexes (1-based), value range mapped to 0–255, colour map."""

    mode: str  # "rgb" | "ramp" | "classes"
    indexes: tuple[int, ...]
    rescale: tuple[float, float] | None
    colormap: str | None  # rio-tiler colormap name, or "condition"


def product_source(product: Product, stores: Stores) -> ProductSource:
    """The product resolved in its store (a file inside the workspace, or an object in the
    configured bucket: no reading elsewhere); ProductMissingError (404) when it is gone."""
    return stores.source(product)


#: what a reader is opened on: a product's source, or a local file (tests, benchmarks)
Target = ProductSource | Path


def _target(target: Target) -> tuple[tuple[str, str, int], str, Callable[[], Any]]:
    """(cache key that changes with the content, name GDAL opens, Env factory)."""
    if isinstance(target, ProductSource):
        return target.cache_key, target.gdal_path, target.env
    st = Path(target).stat()
    return (str(target), str(st.st_mtime_ns), st.st_size), str(target), contextlib.nullcontext


class ReaderPool:
    """Opened rio-tiler readers, kept per product file for the next request.

    Opening a COG (header, tile directories, rio-tiler's zoom levels) is ≈ 10 % of a tile's
    time, and a dataset closed after each request drops its decoded blocks from GDAL's cache,
    so the neighbouring tile decodes the same compressed blocks again. A reader serves one
    request at a time (a GDAL dataset must not be used by two threads at once); a file
    replaced on disk (other mtime or size, or another ETag in S3) gets new readers and its old
    ones are closed. Each use runs inside the source's GDAL Env (the S3 endpoint and
    credentials), entered and left in the request's own thread.
    """

    def __init__(self, files: int = READER_FILES, per_file: int = READERS_PER_FILE) -> None:
        self._files, self._per_file = files, per_file
        self._idle: OrderedDict[tuple[str, str, int], list[_Opened]] = OrderedDict()
        self._lock = threading.Lock()

    @contextmanager
    def reader(self, target: Target) -> Iterator[Reader]:
        key, name, env = _target(target)
        with self._lock:
            idle = self._idle.get(key)
            opened = idle.pop() if idle else None
        with env():
            if opened is None:
                opened = _Opened.open(name)
            try:
                yield opened.reader
            except (TileOutsideBounds, PointOutsideBounds):
                self._put(key, opened)  # a request outside the data leaves the reader as good as it was
                raise
            except BaseException:
                opened.close()  # after a read error the dataset's state is unknown: do not reuse it
                raise
        self._put(key, opened)

    def _put(self, key: tuple[str, str, int], opened: _Opened) -> None:
        if self._files < 1 or self._per_file < 1 or not opened.shareable:
            opened.close()  # a pool that keeps nothing, or a reader that must not outlive its thread
            return
        closing = []
        with self._lock:
            if key not in self._idle:
                # older versions of this file, and the least recently used files, are closed
                stale = [k for k in self._idle if k[0] == key[0]]
                while len(self._idle) - len(stale) >= self._files:
                    stale.append(next(k for k in self._idle if k not in stale))
                for k in stale:
                    closing += self._idle.pop(k)
                self._idle[key] = []
            self._idle.move_to_end(key)
            idle = self._idle[key]
            if len(idle) < self._per_file:
                idle.append(opened)
            else:
                closing.append(opened)
        for o in closing:
            o.close()

    def clear(self) -> None:
        """Close every idle reader (open ones close when their request returns them)."""
        with self._lock:
            idle = [o for lst in self._idle.values() for o in lst]
            self._idle.clear()
        for o in idle:
            o.close()


@dataclass(frozen=True)
class _Opened:
    """A rio-tiler reader over a dataset opened for it.

    The dataset is opened but not entered as a context manager: entering ties a rasterio
    ``Env`` to the opening thread, and leaving it from another thread — the pool closes readers
    from whichever request thread evicts them — raises EnvError (and would clear that thread's
    own Env). rio-tiler wraps rasters georeferenced by GCPs in a WarpedVRT entered the same
    way, so those readers are not shared (``shareable`` False): they are closed by the request
    that opened them, as before the pool.
    """

    reader: Reader
    dataset: Any

    @classmethod
    def open(cls, name: str) -> _Opened:
        ds = rasterio.open(name)
        try:
            return cls(Reader(None, dataset=ds, tms=TMS), ds)
        except BaseException:
            ds.close()
            raise

    @property
    def shareable(self) -> bool:
        return self.reader.dataset is self.dataset

    def close(self) -> None:
        self.reader.close()
        self.dataset.close()


#: the readers of this process's tile, point and snapshot requests
READERS = ReaderPool()

_T = TypeVar("_T")
#: one limiter per event loop (a limiter is bound to the loop that first waits on it)
_LIMITERS: weakref.WeakKeyDictionary[Any, anyio.CapacityLimiter] = weakref.WeakKeyDictionary()


async def run_render(fn: Callable[..., _T], *args: Any) -> _T:
    """Run ``fn(*args)`` in a worker thread, at most RENDER_SLOTS at once, the others waiting
    in arrival order. Rendering is CPU-bound and partly holds the GIL: with every request in
    its own thread (Starlette's pool has 40) a burst of tiles shares the cores evenly, so each
    finishes only near the end of the burst and the slowest wait longest; first come, first
    served keeps the latency of each tile close to the burst's average."""
    loop = asyncio.get_running_loop()
    limiter = _LIMITERS.get(loop)
    if limiter is None:
        limiter = _LIMITERS[loop] = anyio.CapacityLimiter(RENDER_SLOTS)
    return await anyio.to_thread.run_sync(fn, *args, limiter=limiter)


def _rgb_indexes(product: Product) -> tuple[int, ...]:
    names = [b.name for b in product.bands]
    if all(n in names for n in _RGB):
        return tuple(names.index(n) + 1 for n in _RGB)
    return (1, 2, 3) if len(names) >= 3 else (1,)


_PERCENTILES: OrderedDict[tuple[Any, ...], tuple[float, float]] = OrderedDict()


def _percentiles(target: Target, indexes: tuple[int, ...]) -> tuple[float, float]:
    """2nd and 98th percentile of a raster's valid pixels, read from its smallest overview
    (remembered per content: key, ETag or mtime, size)."""
    key, name, env = _target(target)
    cached = _PERCENTILES.get((*key, indexes))
    if cached is None:
        cached = _PERCENTILES[(*key, indexes)] = _read_percentiles(name, env, indexes)
        while len(_PERCENTILES) > 256:
            _PERCENTILES.popitem(last=False)
    return cached


def _read_percentiles(name: str, env: Callable[[], Any], indexes: tuple[int, ...]) -> tuple[float, float]:
    with env(), rasterio.open(name) as ds:
        scale = max(ds.width, ds.height) / 512
        shape = (max(1, int(ds.height / max(scale, 1))), max(1, int(ds.width / max(scale, 1))))
        data = ds.read(list(indexes), out_shape=(len(indexes), *shape), masked=True).astype("float64")
    values = data.compressed()
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (0.0, 1.0)
    lo, hi = np.percentile(values, [2, 98])
    return (float(lo), float(hi if hi > lo else lo + 1e-6))


def style_for(product: Product, src: Target) -> Style:
    """The display style of a product, by its kind (ranges from the data where not fixed)."""
    kind = product.kind
    meta_range = product.metadata.get("display_range")
    if kind in (ProductKind.ORTHOMOSAIC, ProductKind.REFLECTANCE):
        idx = _rgb_indexes(product)
        with READERS.reader(src) as reader:
            dtype = reader.dataset.dtypes[0]
        rescale = None if dtype == "uint8" else _percentiles(src, idx)
        return Style("rgb", idx, rescale, None)
    if kind == ProductKind.CONDITION:
        return Style("classes", (1,), None, "condition")
    if kind == ProductKind.LANDCOVER and product.metadata.get("method") != "kmeans":
        return Style("classes", (1,), None, "landcover")
    if kind == ProductKind.INDEX:
        if meta_range:
            rng = (float(meta_range[0]), float(meta_range[1]))
        elif not product.relative and product.name.lower() in _INDEX_RANGES:
            rng = _INDEX_RANGES[product.name.lower()]
        else:
            rng = _percentiles(src, (1,))
        return Style("ramp", (1,), rng, "rdylgn")
    if kind == ProductKind.CHANGE:
        lo, hi = _percentiles(src, (1,))
        m = max(abs(lo), abs(hi))
        return Style("ramp", (1,), (-m, m), "brbg")
    if kind == ProductKind.COVER:  # band 1 = green vegetation fraction
        return Style("ramp", (1,), (0.0, 1.0), "ylgn")
    if kind == ProductKind.BIOMASS:
        rng = tuple(meta_range) if meta_range else (0.0, _percentiles(src, (1,))[1])
        return Style("ramp", (1,), (float(rng[0]), float(rng[1])), "ylgn")
    return Style("ramp", (1,), _percentiles(src, (1,)), "viridis")


def _colormap(style: Style) -> dict | None:
    if style.colormap is None:
        return None
    if style.colormap == "condition":
        return dict(CONDITION_COLORS)
    if style.colormap == "landcover":
        return dict(LANDCOVER_COLORS)
    return cmap.get(style.colormap)


def check_tile_index(z: int, x: int, y: int) -> None:
    """Refuse tile indexes outside the WebMercatorQuad matrix (404, never a server error)."""
    if not (TMS.minzoom <= z <= TMS.maxzoom) or not (0 <= x < 2**z) or not (0 <= y < 2**z):
        raise NotFoundError(f"tile {z}/{x}/{y} does not exist on WebMercatorQuad (z 0–{TMS.maxzoom}, "
                            "x and y 0…2^z−1)")


def _clean(img: ImageData) -> ImageData:
    """Mask NaN/inf pixels (float products carry NaN as nodata) and zero them for rendering."""
    data = img.array.data
    if np.issubdtype(data.dtype, np.floating):
        bad = ~np.isfinite(data)
        if bad.any():
            mask = np.ma.getmaskarray(img.array) | bad
            img.array = np.ma.MaskedArray(np.where(bad, 0, data), mask=mask)
    return img


def _style_image(img: ImageData, style: Style) -> ImageData:
    img = _clean(img)
    if style.rescale is not None:
        img.rescale(in_range=[style.rescale] * img.count)
    elif img.array.dtype != np.uint8 and style.mode != "classes":
        img.rescale(in_range=[(0, 255)] * img.count)
    return img


def render_tile(product: Product, stores: Stores, z: int, x: int, y: int, fmt: str,
                max_raster_bytes: int) -> bytes:
    """One 256×256 WebMercatorQuad tile of a product as PNG or WebP bytes."""
    if fmt not in FORMATS:
        raise NotFoundError(f"tile format {fmt!r} is not served; use png or webp")
    check_tile_index(z, x, y)
    source = check_product(product, stores, max_raster_bytes)
    style = style_for(product, source)
    try:
        with READERS.reader(source) as src:
            img = src.tile(x, y, z, indexes=style.indexes)  # checks the tile overlaps the product
    except TileOutsideBounds as exc:
        raise NotFoundError(f"tile {z}/{x}/{y} is outside product {product.name!r}") from exc
    return encode(_style_image(img, style), _colormap(style), fmt)


def rgba(img: ImageData, colormap: dict | None) -> np.ndarray:
    """A styled image as an H×W×4 uint8 array; masked pixels fully transparent."""
    data = img.array.data
    valid = ~np.ma.getmaskarray(img.array).any(axis=0)
    if colormap is not None:
        rgb, alpha = apply_cmap(data.astype(np.uint8), colormap)
        alpha = np.where(valid, alpha, 0).astype(np.uint8)
        return np.dstack([*rgb, alpha])
    bands = [data[min(i, data.shape[0] - 1)] for i in range(3)]
    return np.dstack([*[b.astype(np.uint8) for b in bands], np.where(valid, 255, 0).astype(np.uint8)])


def _palette_png(img: ImageData, colormap: dict) -> bytes | None:
    """A colour-mapped single-band tile as a palette PNG: the colour map is the palette, its
    alpha the tRNS chunk, and masked pixels take an index that is transparent in the palette
    (an entry the map leaves undefined, else a value this tile does not use). Decodes to the
    same RGBA as ``rgba`` wherever a pixel is visible, with a quarter of the bytes to deflate:
    ≈ 5× faster to encode and ≈ 2.5× smaller than RGBA. None when the map is not a plain
    0–255 lookup table or all 256 entries are taken (RGBA is used then)."""
    if img.count != 1 or not colormap or not all(isinstance(k, int | np.integer) and 0 <= k <= 255
                                                  for k in colormap):
        return None
    lut = np.zeros((256, 4), dtype=np.uint8)  # undefined entries are transparent, as in apply_cmap
    for k, v in colormap.items():
        v = tuple(v)
        lut[int(k)] = v if len(v) == 4 else (*v, 255)
    values = img.array.data[0].astype(np.uint8)
    masked = np.ma.getmaskarray(img.array)[0]
    if masked.any():
        free = np.flatnonzero(lut[:, 3] == 0)
        if free.size == 0:
            free = np.setdiff1d(np.arange(256), values[~masked])
        if free.size == 0:
            return None
        values = np.where(masked, free[0], values).astype(np.uint8)
        lut[free[0], 3] = 0
    pic = Image.fromarray(values, "P")
    pic.putpalette(lut[:, :3].tobytes())
    out = io.BytesIO()
    pic.save(out, "PNG", compress_level=2, transparency=lut[:, 3].tobytes())
    return out.getvalue()


def encode(img: ImageData, colormap: dict | None, fmt: str) -> bytes:
    """PNG or WebP bytes with Pillow: palette PNG for colour-mapped tiles, else RGBA PNG at a
    fast zlib level; lossy WebP (with alpha) for phones."""
    if fmt == "png" and colormap is not None:
        body = _palette_png(img, colormap)
        if body is not None:
            return body
    out = io.BytesIO()
    pic = Image.fromarray(rgba(img, colormap), "RGBA")
    if fmt == "webp":
        pic.save(out, "WEBP", quality=80, method=2)
    else:
        # level 2: tiles ~5 % larger than zlib's default and encoded several times faster
        pic.save(out, "PNG", compress_level=2)
    return out.getvalue()


def check_product(product: Product, stores: Stores, max_raster_bytes: int) -> ProductSource:
    """The product's source, after its header passed the driver allow-list and size limit."""
    source = product_source(product, stores)
    if isinstance(source.store, FileStore):
        _checked(source.gdal_path, source.info.etag, max_raster_bytes)
    else:
        _checked_source(source.cache_key, source, max_raster_bytes)
    return source


@lru_cache(maxsize=256)
def _checked(path: str, etag: str, max_bytes: int) -> None:
    check_raster(Path(path), max_bytes)


_CHECKED: set[tuple[Any, ...]] = set()


def _checked_source(key: tuple[str, str, int], source: ProductSource, max_bytes: int) -> None:
    if (*key, max_bytes) not in _CHECKED:
        check_raster_source(source, max_bytes)
        if len(_CHECKED) > 1024:
            _CHECKED.clear()
        _CHECKED.add((*key, max_bytes))


def tile_etag(product: Product, stores: Stores, z: int, x: int, y: int, fmt: str) -> str:
    """A strong validator: changes whenever the product's object (its ETag) or the style changes."""
    info = product_source(product, stores).info
    raw = f"{product.id}|{info.etag}|{info.size}|{z}/{x}/{y}.{fmt}|{STYLE_VERSION}"
    return '"' + hashlib.blake2b(raw.encode(), digest_size=12).hexdigest() + '"'


def tilejson(product: Product, stores: Stores, tiles_url: str, fmt: str = "png") -> dict[str, Any]:
    """TileJSON 3.0 for a product; ``tiles_url`` is the absolute URL template up to ``{z}/{x}/{y}``."""
    with READERS.reader(product_source(product, stores)) as src:
        west, south, east, north = src.get_geographic_bounds(TMS.rasterio_geographic_crs)
        minzoom, maxzoom = src.minzoom, src.maxzoom
    return {
        "tilejson": "3.0.0", "name": product.name, "version": "1.0.0", "scheme": "xyz",
        "tiles": [f"{tiles_url}/{{z}}/{{x}}/{{y}}.{fmt}"],
        "minzoom": int(minzoom), "maxzoom": int(min(maxzoom + 2, TMS.maxzoom)),
        "bounds": [west, south, east, north],
        "center": [(west + east) / 2, (south + north) / 2, int(maxzoom)],
    }


def legend(product: Product, stores: Stores, lang: str | None = None) -> dict[str, Any]:
    """What the colours of a product's tiles mean: class swatches or a ramp with end values."""
    style = style_for(product, product_source(product, stores))
    title = product.name.upper() if product.kind == ProductKind.INDEX else t(f"layer.{product.kind.value}", lang)
    out: dict[str, Any] = {"product": product.id, "name": product.name, "kind": product.kind.value,
                           "title": title, "units": product.units,
                           "units_label": units_label(product.units, lang), "relative": product.relative}
    if style.mode == "classes" and style.colormap == "landcover":
        from belcheer.zoning.landcover import LANDCOVER_CLASSES

        out["type"] = "classes"
        out["classes"] = [{"value": v, "label": t(f"landcover.{LANDCOVER_CLASSES[v]}", lang), "color": _hex(c)}
                          for v, c in LANDCOVER_COLORS.items()]
    elif style.mode == "classes":
        out["type"] = "classes"
        out["classes"] = [{"value": v, "label": class_label(v, lang), "color": _hex(c)}
                          for v, c in CONDITION_COLORS.items()]
    elif style.mode == "ramp":
        colors = cmap.get(style.colormap)
        lo, hi = style.rescale or (0.0, 1.0)
        out["type"] = "ramp"
        out["stops"] = [{"value": lo + (hi - lo) * i / 255, "color": _hex(colors[i])}
                        for i in (0, 64, 128, 191, 255)]
        out["min"], out["max"] = lo, hi
        out["low"], out["high"] = t("legend.low", lang), t("legend.high", lang)
    else:
        out["type"] = "rgb"
    return out


def _hex(c: tuple) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(v) for v in c[:3]))


def point_values(products: list[Product], stores: Stores, lon: float, lat: float) -> list[dict[str, Any]]:
    """Values of each product at a WGS 84 point (products not covering it are left out)."""
    if not (-180 <= lon <= 180 and -90 <= lat <= 90) or not (math.isfinite(lon) and math.isfinite(lat)):
        raise InputError(f"point ({lon}, {lat}) is not a longitude/latitude in degrees")
    out = []
    for p in products:
        source = product_source(p, stores)
        try:
            with READERS.reader(source) as src:
                # a point far outside the product may lie outside its CRS's projection domain
                # too (GDAL refuses to transform it): test against the lon/lat bounds first
                west, south, east, north = src.get_geographic_bounds(WGS84_CRS)
                if not (west <= lon <= east and south <= lat <= north):
                    continue
                pt = src.point(lon, lat)
        except PointOutsideBounds:
            continue
        names = [b.name for b in p.bands] or [f"b{i + 1}" for i in range(pt.count)]
        vals = {}
        for i, v in enumerate(np.ma.filled(pt.array.astype("float64"), np.nan)):
            masked = bool(np.ma.getmaskarray(pt.array)[i])
            name = names[i] if i < len(names) else f"b{i + 1}"
            vals[name] = None if masked or not math.isfinite(float(v)) else float(v)
        item: dict[str, Any] = {"product": p.id, "name": p.name, "kind": p.kind.value,
                                "units": p.units, "values": vals}
        if p.kind == ProductKind.CONDITION and vals:
            first = next(iter(vals.values()))
            item["label"] = class_label(int(first) if first else None)
        out.append(item)
    return out


def read_area(product: Product, stores: Stores, bbox: tuple[float, float, float, float],
              max_size: int = 768) -> tuple[np.ndarray, Style]:
    """An RGBA array of a product styled as its tiles, over a WGS 84 bbox (for PNG snapshots)."""
    source = product_source(product, stores)
    style = style_for(product, source)
    with READERS.reader(source) as src:
        img = src.part(bbox, dst_crs="EPSG:3857", bounds_crs="EPSG:4326", max_size=max_size,
                       indexes=style.indexes)
    return rgba(_style_image(img, style), _colormap(style)), style


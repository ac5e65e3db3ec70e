"""A shareable PNG map of one parcel with its legend, drawn on the server (matplotlib).

Herders on slow phone links press "share" and get one small image: the parcel's condition classes
(or its vegetation index) around the parcel, the outline, the verdict in words, and a legend.
"""

from __future__ import annotations

import io

import geopandas as gpd
import matplotlib

matplotlib.use("Agg")  # no display on a server
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from belcheer.api.messages import class_label, t  # noqa: E402
from belcheer.api.tiles import CONDITION_COLORS, legend, read_area  # noqa: E402
from belcheer.models import Product, ProductKind  # noqa: E402
from belcheer.storage import Stores  # noqa: E402

#: which product a herder's map shows, best first
_PREFERENCE = (ProductKind.CONDITION, ProductKind.INDEX, ProductKind.ORTHOMOSAIC, ProductKind.REFLECTANCE)


def pick_product(products: list[Product]) -> Product | None:
    """The product that tells a herder most: condition classes, else NDVI/another index, else imagery."""
    for kind in _PREFERENCE:
        cands = [p for p in products if p.kind == kind]
        if kind == ProductKind.INDEX:
            cands.sort(key=lambda p: (p.name != "ndvi", p.name))
        if cands:
            return cands[0]
    return None


def parcel_png(parcel: gpd.GeoSeries, props: dict, product: Product | None, stores: Stores,
               lang: str = "mn", size_px: int = 640) -> bytes:
    """PNG bytes: the parcel (EPSG:4326 geometry) over ``product``, with title and legend."""
    geom = parcel.to_crs(3857).iloc[0]
    minx, miny, maxx, maxy = parcel.iloc[0].bounds
    pad_x, pad_y = (maxx - minx) * 0.25 + 1e-4, (maxy - miny) * 0.25 + 1e-4
    bbox = (minx - pad_x, miny - pad_y, maxx + pad_x, maxy + pad_y)
    ext = gpd.GeoSeries.from_xy([bbox[0], bbox[2]], [bbox[1], bbox[3]], crs=4326).to_crs(3857)
    fig, ax = plt.subplots(figsize=(size_px / 100, size_px / 100), dpi=100)
    handles = []
    if product is not None:
        rgba, _ = read_area(product, stores, bbox, max_size=size_px)
        ax.imshow(rgba, extent=(ext.x[0], ext.x[1], ext.y[0], ext.y[1]), interpolation="nearest")
        leg = legend(product, stores, lang)
        if leg["type"] == "classes":
            handles = [Patch(color=tuple(v / 255 for v in c[:3]), label=class_label(k, lang))
                       for k, c in CONDITION_COLORS.items()]
        elif leg["type"] == "ramp":
            handles = [Patch(color=leg["stops"][0]["color"], label=f"{leg['title']} {leg['min']:.2f} ({leg['low']})"),
                       Patch(color=leg["stops"][-1]["color"], label=f"{leg['title']} {leg['max']:.2f} ({leg['high']})")]
    gpd.GeoSeries([geom], crs=3857).boundary.plot(ax=ax, color="black", linewidth=2)
    ax.set_xlim(ext.x[0], ext.x[1])
    ax.set_ylim(ext.y[0], ext.y[1])
    ax.set_axis_off()
    cls = props.get("condition_class")
    verdict = class_label(int(cls), lang) if cls not in (None, 0) else t("herder.nodata", lang)
    ax.set_title(f"{props.get('name') or props.get('parcel_id')}\n{verdict}", fontsize=11)
    if handles:
        ax.legend(handles=handles, loc="lower left", fontsize=7, framealpha=0.85)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()

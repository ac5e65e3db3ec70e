"""The one grid object: odc-geo's :class:`~odc.geo.geobox.GeoBox` (CRS + affine + shape).

belcheer does not define a grid type of its own; these helpers build GeoBoxes the way the
pipeline needs them (a survey's UTM grid snapped to the resolution, a raster file's grid).
"""

from __future__ import annotations

import math
import os

import rasterio
from affine import Affine
from odc.geo import CRS as OdcCRS
from odc.geo.geobox import GeoBox
from odc.geo.geom import BoundingBox

__all__ = ["GeoBox", "geobox_for_bounds", "geobox_of_file", "pixel_area_m2"]


def geobox_for_bounds(bounds: tuple[float, float, float, float], crs: int | str,
                      resolution: float) -> GeoBox:
    """A north-up GeoBox covering ``bounds`` (left, bottom, right, top in ``crs`` units).

    Edges are snapped outward to whole multiples of ``resolution`` (metres in UTM), so grids
    of two surveys at the same resolution line up pixel for pixel.
    """
    if resolution <= 0:
        raise ValueError(f"resolution must be positive, got {resolution}")
    left, bottom, right, top = bounds
    left = math.floor(left / resolution) * resolution
    bottom = math.floor(bottom / resolution) * resolution
    right = math.ceil(right / resolution) * resolution
    top = math.ceil(top / resolution) * resolution
    epsg = f"EPSG:{crs}" if isinstance(crs, int) else crs
    return GeoBox.from_bbox(BoundingBox(left, bottom, right, top, crs=OdcCRS(epsg)),
                            resolution=resolution)


def geobox_of_file(path: str | os.PathLike[str]) -> GeoBox:
    """The GeoBox of a raster file, read from its header only."""
    with rasterio.open(path) as src:
        return GeoBox(src.shape, src.transform, OdcCRS(src.crs.to_wkt()))


def pixel_area_m2(transform: Affine) -> float:
    """Area of one pixel in the grid's squared units (m² for UTM)."""
    return abs(transform.a * transform.e - transform.b * transform.d)

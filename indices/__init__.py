"""Radiometric calibration and vegetation indices (``belcheer.indices``).

Raw DN → radiance (:func:`radiance`) → reflectance (:func:`calibrate` builds a
:class:`Calibration`, a per-frame correction the orthomosaic applies), then indices from the
Awesome Spectral Indices catalogue (:func:`catalogue`) or user formulas, computed lazily with
Dask over the reflectance COG (:func:`compute`, :func:`compute_survey`).
"""

from belcheer.indices.calibration import Calibration, calibrate
from belcheer.indices.catalog import IndexDef, band_mapping, catalogue, lookup
from belcheer.indices.compute import compute, compute_survey
from belcheer.indices.imported import import_index
from belcheer.indices.radiometry import radiance, sensor_irradiance

__all__ = ["Calibration", "IndexDef", "band_mapping", "calibrate", "catalogue", "compute",
           "compute_survey", "import_index", "lookup",
           "radiance", "sensor_irradiance"]

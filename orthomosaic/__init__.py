"""belcheer.orthomosaic: frames of a survey → georeferenced orthomosaic COG + quality report.

SIFT features (OpenCV) → footprint-overlap pairs → USAC-verified matches → bundle adjustment
with GPS priors (COLMAP's Ceres adjuster) → ground plane or DSM → tile-by-tile orthorectification
(Dask) → COG.
"""

from __future__ import annotations

from belcheer.orthomosaic.bandalign import BandAlignment, align_bands, undistort_band
from belcheer.orthomosaic.build import MosaicResult, build_orthomosaic
from belcheer.orthomosaic.products import import_ortho, merge_rasters, mosaic, write_report
from belcheer.orthomosaic.rig import rig_alignment

__all__ = ["BandAlignment", "MosaicResult", "align_bands", "rig_alignment", "undistort_band",
            "build_orthomosaic", "import_ortho", "merge_rasters", "mosaic", "write_report"]

"""Type aliases shared across stages."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from belcheer.models import Frame

#: Converts one frame's raw pixel array (bands last or 2-D, camera DN) into calibrated values
#: (radiance or reflectance, float32, NaN where invalid). The indices stage builds one from a
#: survey's panel/sunlight-sensor data; the orthomosaic stage applies it before mosaicking.
FrameCorrection = Callable[[Frame, np.ndarray], np.ndarray]

#: (left, bottom, right, top) in the CRS it is stated with.
Bounds = tuple[float, float, float, float]

"""SIFT features per capture (OpenCV), computed in parallel with Dask on decimated images.

Keypoints are returned in FULL-resolution pixel coordinates of the capture's working image, so
everything downstream (adjustment residuals included) is in full-resolution pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import dask
import numpy as np

from belcheer.memory import trim_memory
from belcheer.models import Capture
from belcheer.orthomosaic.frames import feature_image
from belcheer.scheduler import compute


@dataclass(frozen=True)
class Features:
    """Keypoints (N, 2) in full-resolution pixels, SIFT descriptors (N, 128) and image quality."""

    capture_id: str
    points: np.ndarray
    descriptors: np.ndarray
    quality: dict[str, float]


#: a frame with fewer SIFT features than this matches too little to tie (build.py reports it
#: as having "too few features" when it ends up placed by GPS)
MIN_FEATURES = 50
#: a frame with fewer features than this at OpenCV's default contrast threshold (0.04) is
#: detected again at :data:`LOW_CONTRAST_THRESHOLDS`: low-contrast but textured ground (a crop
#: field's canopy, uniform steppe grass) has its DoG extrema just below the default. Normal
#: ground gives thousands, a frame over a crop field 0–600
FALLBACK_BELOW = 500
#: contrast thresholds tried in order until a frame gives :data:`FALLBACK_BELOW` features (the
#: last one is kept otherwise). A lower threshold keeps every default keypoint (a superset, so
#: the frame still matches neighbours detected the normal way) and adds the fainter ones;
#: textureless water stays starved
LOW_CONTRAST_THRESHOLDS = (0.02, 0.01)


def _sift(small: np.ndarray, n_features: int, contrast_threshold: float | None = None):
    sift = (cv2.SIFT_create(nfeatures=n_features) if contrast_threshold is None
            else cv2.SIFT_create(nfeatures=n_features, contrastThreshold=contrast_threshold))
    return sift.detectAndCompute(small, None)


def detect(capture: Capture, max_side: int = 1400, n_features: int = 5000) -> Features:
    """SIFT on the capture's grey image decimated to ``max_side`` pixels on its longest side.

    A frame with fewer than :data:`FALLBACK_BELOW` keypoints is detected again at the lower
    contrast thresholds of :data:`LOW_CONTRAST_THRESHOLDS` until one gives that many (the last
    one is kept otherwise); ``quality["contrast_threshold"]`` says which one was used. Normal
    frames take the default detector only."""
    small, factor, quality = feature_image(capture, max_side)
    kps, desc = _sift(small, n_features)
    threshold = 0.04  # OpenCV's default
    for ct in LOW_CONTRAST_THRESHOLDS:
        if len(kps) >= FALLBACK_BELOW:
            break
        kps, desc = _sift(small, n_features, ct)
        threshold = ct
    pts = np.float32([k.pt for k in kps]).reshape(-1, 2)
    # pixel-centre convention: centre of decimated pixel i is full-resolution (i + 0.5)·f − 0.5
    pts = (pts + 0.5) * factor - 0.5
    if desc is None:
        desc = np.zeros((0, 128), np.float32)
    quality = dict(quality, keypoints=float(len(pts)), factor=float(factor),
                   contrast_threshold=threshold)
    del small, kps
    trim_memory()  # a thread's freed frame stays in its arena otherwise
    return Features(capture.id, pts.astype(np.float64), desc, quality)


def detect_all(captures: Sequence[Capture], *, max_side: int = 1400,
               scheduler: str | None = None) -> list[Features]:
    """:func:`detect` for every capture, in parallel through Dask (threads: OpenCV frees the GIL)."""
    tasks = [dask.delayed(detect)(c, max_side) for c in captures]
    return list(compute(*tasks, scheduler=scheduler))



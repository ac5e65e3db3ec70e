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


def detect(capture: Capture, max_side: int = 1400, n_features: int = 5000) -> Features:
    """SIFT on the capture's grey image decimated to ``max_side`` pixels on its longest side."""
    small, factor, quality = feature_image(capture, max_side)
    kps, desc = cv2.SIFT_create(nfeatures=n_features).detectAndCompute(small, None)
    pts = np.float32([k.pt for k in kps]).reshape(-1, 2)
    # pixel-centre convention: centre of decimated pixel i is full-resolution (i + 0.5)·f − 0.5
    pts = (pts + 0.5) * factor - 0.5
    if desc is None:
        desc = np.zeros((0, 128), np.float32)
    quality = dict(quality, keypoints=float(len(pts)), factor=float(factor))
    del small, kps
    trim_memory()  # a thread's freed frame stays in its arena otherwise
    return Features(capture.id, pts.astype(np.float64), desc, quality)


def detect_all(captures: Sequence[Capture], *, max_side: int = 1400,
               scheduler: str | None = None) -> list[Features]:
    """:func:`detect` for every capture, in parallel through Dask (threads: OpenCV frees the GIL)."""
    tasks = [dask.delayed(detect)(c, max_side) for c in captures]
    return list(compute(*tasks, scheduler=scheduler))



"""OpenCV set up for bit-reproducible results, before it is first imported.

OpenCV's Intel IPP code paths (GaussianBlur, resize, warps …) give results that depend on
where NumPy happened to allocate the input (its alignment in memory): the same frames mosaicked
twice in one process differed by up to 1e-5 in a band-alignment homography, and through the dense
parallax field by a tenth of a pixel in the measured alignment. OpenCV's own SIMD code is
exact whatever the alignment, so IPP is switched off for the whole process (the environment
variable reaches every thread and every worker process; ``cv2.ipp.setUseIPP`` would reach only
the calling thread). The cost is small next to feature matching and the adjustment
(``bench/mosaic.py`` measures the whole mosaic).
"""

from __future__ import annotations

import os
import sys


def apply_environment() -> None:
    """Disable IPP in OpenCV (unless the user chose otherwise in ``OPENCV_IPP``) and silence
    OpenCV's notice that it was disabled. If ``cv2`` was imported before belcheer, IPP is
    switched off at least in the calling thread."""
    os.environ.setdefault("OPENCV_IPP", "disabled")
    # OpenCV announces the disabled IPP as a warning on stderr at import; errors still show
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    cv2 = sys.modules.get("cv2")
    if cv2 is not None and os.environ.get("OPENCV_IPP") == "disabled":
        cv2.ipp.setUseIPP(False)

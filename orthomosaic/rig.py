"""Band alignment of a rigid multispectral rig, solved once per survey.

The lenses of a MicaSense, Sequoia or DJI multispectral camera are fixed to one body, so the
homography taking each band onto the primary band changes only with parallax from the lens
baseline (a few centimetres): at flight height that is far below a pixel. Solving it on a few
captures spread through the flight and using the per-band median for every capture is as
accurate as solving each capture alone — and the median is robust to the odd capture where
feature matching fails — at a fraction of the cost (band alignment dominated mosaicking time).
"""

from __future__ import annotations

from collections.abc import Sequence

import dask
import numpy as np

from belcheer.models import Capture
from belcheer.orthomosaic.bandalign import (
    BandAlignment,
    alignment_residual,
    apply_alignment,
    read_band,
    undistort_band,
)
from belcheer.orthomosaic.frames import capture_alignment, primary_frame
from belcheer.scheduler import compute
from belcheer.storage import frame_file

#: captures solved per survey; more adds cost without changing the median measurably
DEFAULT_SAMPLE = 5


def sample_captures(captures: Sequence[Capture], n: int = DEFAULT_SAMPLE) -> list[Capture]:
    """``n`` captures spread evenly through the flight (all of them when there are fewer)."""
    if len(captures) <= n:
        return list(captures)
    idx = np.unique(np.linspace(0, len(captures) - 1, n).round().astype(int))
    return [captures[i] for i in idx]


def median_alignment(solutions: Sequence[dict[str, BandAlignment]]) -> dict[str, BandAlignment]:
    """Per band, the element-wise median of the normalised homographies of several captures.

    Homographies only: a dense parallax field belongs to one close-range capture's depths.
    """
    out: dict[str, BandAlignment] = {}
    for band in solutions[0]:
        hs = np.stack([s[band].homography / s[band].homography[2, 2] for s in solutions if band in s])
        methods = sorted({s[band].method for s in solutions if band in s})
        out[band] = BandAlignment(band, np.median(hs, axis=0), float("nan"),
                                  int(sum(s[band].matches for s in solutions if band in s)),
                                  f"rig median of {len(hs)} captures ({', '.join(methods)})")
    return out


def measure(capture: Capture, alignment: dict[str, BandAlignment]) -> dict[str, float]:
    """Residual (px, windowed phase correlation) of ``alignment`` on ``capture``."""
    frames = {f.band.name: f for f in capture.frames}
    primary = primary_frame(capture).band.name
    ref = undistort_band(read_band(frame_file(frames[primary].path, frames[primary].uri)), frames[primary])
    out = {primary: 0.0}
    for band, al in alignment.items():
        if band == primary or band not in frames:
            continue
        ideal = undistort_band(read_band(frame_file(frames[band].path, frames[band].uri)), frames[band])
        out[band] = round(alignment_residual(apply_alignment(ideal, al, ref.shape), ref)[0], 3)
    return out


def rig_alignment(captures: Sequence[Capture], *, sample: int = DEFAULT_SAMPLE,
                  scheduler: str | None = None) -> tuple[dict[str, BandAlignment], dict[str, dict[str, float]]]:
    """The survey's band alignment and its residual (px) on each sampled capture.

    Returns ``(alignment, residuals)``: band → :class:`BandAlignment` valid for every flight
    capture of the rig, and capture id → band → residual in pixels.
    """
    chosen = sample_captures(captures, sample)
    solved = compute(*[dask.delayed(capture_alignment)(c, measure=False) for c in chosen],
                     scheduler=scheduler)
    alignment = median_alignment([s for s in solved if s])
    residuals = compute(*[dask.delayed(measure)(c, alignment) for c in chosen], scheduler=scheduler)
    return alignment, {c.id: r for c, r in zip(chosen, residuals, strict=True)}

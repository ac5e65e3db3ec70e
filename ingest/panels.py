"""Heights above ground and the calibration-panel captures of a survey (pure functions).

**Height above ground** of a capture, metres:

* the camera's relative altitude (``drone-dji:RelativeAltitude``, above take-off) when written;
* else its absolute altitude minus the survey's lowest absolute altitude, plus a default:
  :data:`GROUND_CAPTURE_HEIGHT_M` (1 m) when the survey holds a capture taken on the ground (its
  flight is at least :data:`FLIGHT_ABOVE_GROUND_M` higher: panel shots, take-off), else
  :data:`ASSUMED_FLIGHT_HEIGHT_M` (100 m, a typical survey height) because nothing in the headers
  says how high a flight without a ground capture was. The source is recorded per capture.

**Panel captures** (reflectance-panel shots of multispectral cameras), in order of precedence:

1. named explicitly (``--panel IMG_0000``);
2. flagged by the camera (Parrot ``Camera:CalibrationPicture=1``);
3. taken near the ground — less than :data:`LOW_CAPTURE_M` above the survey's lowest level while
   the flight reaches at least :data:`FLIGHT_ABOVE_GROUND_M` above it — *and* before take-off or
   after landing: part of the leading or trailing run of such low captures in time order. A low
   capture in the middle of the flight is not a panel (it is reported as an altitude outlier).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from belcheer.errors import ConfigError
from belcheer.models import Capture

GROUND_CAPTURE_HEIGHT_M = 1.0
ASSUMED_FLIGHT_HEIGHT_M = 100.0
LOW_CAPTURE_M = 10.0
FLIGHT_ABOVE_GROUND_M = 30.0


@dataclass(frozen=True)
class Height:
    """Height of a capture above the ground, metres, and where it came from:
    ``relative`` (camera's relative altitude), ``ground`` (absolute minus a ground capture's
    level) or ``assumed`` (absolute minus the lowest capture, which is assumed at 100 m)."""

    metres: float
    source: str


def heights_above_ground(captures: Sequence[Capture]) -> dict[str, Height]:
    """Height above ground of every capture that has an altitude (see the module docstring)."""
    out: dict[str, Height] = {}
    absolute: dict[str, float] = {}
    for c in captures:
        p = c.pose
        if p is None:
            continue
        if p.alt_rel_m is not None:
            out[c.id] = Height(p.alt_rel_m, "relative")
        elif p.alt_abs_m is not None:
            absolute[c.id] = p.alt_abs_m
    if absolute:
        low = min(absolute.values())
        has_ground = max(absolute.values()) - low >= FLIGHT_ABOVE_GROUND_M
        base, source = ((GROUND_CAPTURE_HEIGHT_M, "ground") if has_ground
                        else (ASSUMED_FLIGHT_HEIGHT_M, "assumed"))
        for cid, alt in absolute.items():
            out[cid] = Height(alt - low + base, source)
    return out


def _multispectral(c: Capture) -> bool:
    return any(b.name not in ("rgb", "unknown") for b in c.bands)


def detect_panels(captures: Sequence[Capture], heights: dict[str, Height],
                  explicit: Sequence[str] = ()) -> dict[str, str]:
    """Panel capture ids → how each was found (``explicit``, ``metadata``, ``altitude``).

    ``captures`` must be in time order. Raises :class:`ConfigError` for an explicit id the survey
    does not have."""
    ids = {c.id for c in captures}
    found: dict[str, str] = {}
    for cid in explicit:
        if cid not in ids:
            known = ", ".join(sorted(ids)[:10]) or "none"
            raise ConfigError(f"--panel {cid}: no capture with that id in this survey (captures: {known})")
        found[cid] = "explicit"
    if explicit:
        return found
    for c in captures:
        if any(str(f.tags.get("Camera:CalibrationPicture", "0")).strip() == "1" for f in c.frames):
            found[c.id] = "metadata"
    levels = [h.metres for h in heights.values()]
    if len(levels) < 2:
        return found
    floor = min(levels)
    if max(levels) - floor < FLIGHT_ABOVE_GROUND_M:
        return found
    low = [c.id in heights and heights[c.id].metres - floor < LOW_CAPTURE_M and _multispectral(c)
           for c in captures]
    for order in (range(len(captures)), range(len(captures) - 1, -1, -1)):
        for i in order:
            if not low[i]:
                break
            found.setdefault(captures[i].id, "altitude")
    return found


def flight_height(heights: dict[str, Height], panels: Sequence[str] = ()) -> float | None:
    """Median height above ground (m) of the non-panel captures, or None."""
    vals = [h.metres for cid, h in heights.items() if cid not in set(panels)]
    return statistics.median(vals) if vals else None

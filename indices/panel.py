"""Finding the calibrated reflectance panel in a panel capture, and measuring it.

The panel is the largest bright, uniform, square region of the frame (MicaSense, Sequoia and DJI
panels are grey squares of known albedo, beside a QR code on a darker case). Detection works on
the frame's radiance: a local coefficient of variation (after a light Gaussian blur that removes
shot noise) marks uniform areas; connected components brighter than the frame's median that are
square (aspect 0.6–1.6) and fill their bounding box are candidates; the largest, brightest wins.
The measurement region is the candidate's box shrunk by 15 % per side, away from edges and
blur. Pixel coordinates: (x, y, width, height), top-left origin.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from belcheer.errors import ConfigError, ProcessingError

#: a panel whose radiance varies more than this inside the region (shadow, glare) is refused
MAX_PANEL_CV = 0.03
#: window (pixels) of the local uniformity filter
_WINDOW = 21
#: smallest panel accepted, pixels (a 1280×960 frame taken at 1 m holds ~40 000)
MIN_PANEL_PX = 400


@dataclass(frozen=True)
class PanelMeasurement:
    """The panel's region (x, y, width, height in pixels), mean radiance and its variation."""

    region: tuple[int, int, int, int]
    mean: float
    cv: float
    pixels: int
    detected: bool


def detect_panel(radiance: np.ndarray) -> tuple[int, int, int, int] | None:
    """The panel's measurement region (x, y, w, h) in a radiance image, or None if not found."""
    img = np.nan_to_num(np.asarray(radiance, dtype=np.float32), nan=0.0)
    g = cv2.GaussianBlur(img, (5, 5), 0)
    m = cv2.blur(g, (_WINDOW, _WINDOW))
    sd = np.sqrt(np.maximum(cv2.blur(g * g, (_WINDOW, _WINDOW)) - m * m, 0.0))
    cv = sd / np.maximum(m, 1e-12)
    mask = ((cv < MAX_PANEL_CV) & (m > np.median(img))).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
    best: tuple[float, tuple[int, int, int, int]] | None = None
    for i in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[i])
        if area < MIN_PANEL_PX or w * h == 0:
            continue
        extent, aspect = area / (w * h), w / h
        if extent < 0.7 or not 0.6 <= aspect <= 1.6:
            continue
        score = area * float(m[labels == i].mean())
        if best is None or score > best[0]:
            best = (score, (x, y, w, h))
    if best is None:
        return None
    x, y, w, h = best[1]
    mx, my = int(round(w * 0.15)), int(round(h * 0.15))
    return (x + mx, y + my, max(w - 2 * mx, 1), max(h - 2 * my, 1))


def measure_panel(radiance: np.ndarray, region: tuple[int, int, int, int] | None = None, *,
                  name: str = "frame") -> PanelMeasurement:
    """Mean radiance of the panel in ``region`` (detected when None) and its coefficient of variation.

    Raises :class:`ProcessingError` when no panel is found or the region is not uniform enough.
    """
    img = np.asarray(radiance, dtype=np.float32)
    detected = region is None
    if region is None:
        region = detect_panel(img)
        if region is None:
            raise ProcessingError(f"no reflectance panel found in {name}; point to it with "
                                  "--panel-region X,Y,W,H (pixels, top-left origin) or check that "
                                  "the panel capture shows the whole panel, unshaded")
    x, y, w, h = region
    patch = img[max(y, 0):y + h, max(x, 0):x + w]
    patch = patch[np.isfinite(patch)]
    if patch.size < 25:
        raise ProcessingError(f"panel region {region} in {name} holds {patch.size} valid pixels; "
                              "give a --panel-region inside the image and on the panel")
    # shot noise is not non-uniformity: measure the variation on the lightly blurred image
    smooth = cv2.GaussianBlur(np.nan_to_num(img), (5, 5), 0)[max(y, 0):y + h, max(x, 0):x + w]
    mean = float(patch.mean())
    cv = float(smooth.std() / smooth.mean()) if smooth.mean() > 0 else float("inf")
    if cv > MAX_PANEL_CV:
        raise ProcessingError(f"the panel in {name} is not uniformly lit: its radiance varies by "
                              f"{cv:.1%} (limit {MAX_PANEL_CV:.0%}) inside {region}; retake the "
                              "panel capture without shadow or glare, or give --panel-region")
    return PanelMeasurement(region=tuple(int(v) for v in region),  # type: ignore[arg-type]
                            mean=mean, cv=cv, pixels=int(patch.size), detected=detected)


#: the shipped table of panels' albedos by serial (each entry names its source)
ALBEDO_TABLE = "panel_albedo.json"
_SERIAL = re.compile(r"^RP\d{2}-[0-9A-Z]+-[0-9A-Z]{2}$", re.IGNORECASE)


def albedo_table() -> dict[str, dict]:
    """Serial → {"albedo": {band: value}, "source": text, "model": text} from the shipped table."""
    from importlib.resources import files

    text = files("belcheer.indices").joinpath(ALBEDO_TABLE).read_text(encoding="utf-8")
    return {k.upper(): v for k, v in json.loads(text)["panels"].items()}


def is_panel_serial(text: str) -> bool:
    """True for a MicaSense panel serial such as ``RP04-1234567-OB``."""
    return bool(_SERIAL.match(text.strip()))


def albedo_of_serial(serial: str) -> tuple[dict[str, float], str]:
    """A panel's albedo per band and the source of the values, from :func:`albedo_table`.

    Raises :class:`ConfigError` naming the known serials when the panel is not in the table."""
    table = albedo_table()
    entry = table.get(serial.strip().upper())
    if entry is None:
        raise ConfigError(f"panel {serial.strip()!r} is not in belcheer's albedo table (known: "
                          f"{', '.join(sorted(table))}); give its albedo from the panel's "
                          "calibration sheet instead, e.g. --panel-albedo 0.49 or "
                          "blue=0.49,green=0.49,…")
    return {k: float(v) for k, v in entry["albedo"].items()}, str(entry["source"])


def parse_albedo(value: Any) -> float | list[float] | dict[str, float] | None:
    """A panel albedo as users write it: ``0.49`` (every band), ``0.49,0.5,…`` (per band in the
    camera's order), ``blue=0.49,nir=0.5`` (by band name), a MicaSense panel serial
    (``RP04-…``, looked up in the shipped table), or already a number / list / mapping."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dict):
        return {str(k): float(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [float(v) for v in value]
    text = str(value).strip()
    if not text:
        return None
    if is_panel_serial(text):
        return albedo_of_serial(text)[0]
    try:
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if all("=" in p for p in parts):
            return {k.strip().lower(): float(v) for k, v in (p.split("=", 1) for p in parts)}
        values = [float(p) for p in parts]
    except ValueError:
        raise ConfigError(f"panel albedo {text!r}: give 0.49, or 0.49,0.49,… per band, or "
                          "blue=0.49,green=0.49,…, or the panel's serial RP04-…") from None
    return values[0] if len(values) == 1 else values

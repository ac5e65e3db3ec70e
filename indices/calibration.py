"""Radiance → surface reflectance for a whole survey: panel, sunlight sensor, or both.

``reflectance = π · L / E`` per band, where ``L`` is the frame's radiance and ``E`` the
irradiance on a horizontal surface:

* ``panel``: ``E = π · L_panel / albedo`` from the calibrated panel, once for the survey;
* ``sensor``: ``E`` from each frame's sunlight sensor (DLS / sunshine sensor), so changing light
  (clouds) is followed frame by frame;
* ``both``: the panel sets the level, the sensor the changes: ``E = k · E_sensor(frame)`` with
  ``k = E_panel / E_sensor(panel capture)`` per band.

A :class:`Calibration` is a :data:`belcheer.types.FrameCorrection`: ``cal(frame, dn)`` gives
float32 reflectance with NaN where invalid. It is a plain dataclass, so it pickles to Dask
workers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from belcheer.errors import ConfigError, InputError, ProcessingError, UnsupportedCameraError
from belcheer.indices.panel import PanelMeasurement, measure_panel
from belcheer.indices.radiometry import (
    SUPPORTED_FAMILIES,
    camera_family,
    floats,
    model_warnings,
    radiance,
    sensor_irradiance,
    vendor_value,
)
from belcheer.models import Capture, Frame, Survey
from belcheer.storage import frame_file

Method = Literal["auto", "panel", "sensor", "both"]


#: bands a multispectral camera calibrates (a Sequoia's extra RGB JPEG is not one of them)
SPECTRAL_BANDS = frozenset({"blue", "green", "red", "rededge", "nir"})


def calibratable(frame: Frame) -> bool:
    """True for a narrow-band frame of a camera with a radiometric model."""
    return frame.band.name in SPECTRAL_BANDS and camera_family(frame) is not None


def saturation_dn(frame: Frame) -> int:
    """The DN from which a pixel counts as saturated. 12-bit sensors stored in 16 bits (MicaSense)
    top out at 4095 × 16 = 65520, so the top 16 codes of a 16-bit file count as saturated."""
    bits = frame.radiometry.bits_per_sample or 16
    return 2**bits - 16 if bits >= 16 else 2**bits - 1


def read_dn(frame: Frame) -> np.ndarray:
    """The frame's raw pixel values as stored (one band, 2-D)."""
    import warnings

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # raw frames carry no geotransform
        with rasterio.open(frame_file(frame.path, frame.uri)) as src:
            return src.read(1)


#: a sunlight-sensor reading further than this factor from the survey's median for its band
#: (either way) is taken as a sensor fault, not as light: that capture's sensor correction is
#: skipped (thick cloud dims the sun by 3-5×; a factor of 8 is not weather)
ABSURD_IRRADIANCE_FACTOR = 8.0
#: panel and sensor disagreeing by more than this (relative) in a band is said in a note
DISAGREEMENT_LIMIT = 0.15


def note(code: str, text: str, **params: Any) -> dict[str, Any]:
    """A calibration note: a stable ``code`` (the web map translates it), its English ``text``
    and the values it names."""
    return {"code": code, "text": text, **params}


@dataclass
class Calibration:
    """A survey's radiometric calibration; call it as ``cal(frame, dn) → reflectance``.

    ``panel_irradiance`` (per band name) is ``π·L_panel/albedo``; ``sensor_scale`` is the
    per-band ``k`` of the ``both`` method; ``sensor_median`` the survey's median sensor reading
    per band, which stands in for a capture whose own reading is missing, zero or absurd
    (its sensor correction is skipped; listed in ``metadata["sensor_skipped"]``).
    ``metadata`` is the JSON-ready report.
    """

    method: str
    panel_irradiance: dict[str, float] = field(default_factory=dict)
    sensor_scale: dict[str, float] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    sensor_median: dict[str, float] = field(default_factory=dict)

    def sensor_reading(self, frame: Frame) -> float | None:
        """The frame's sunlight-sensor irradiance when it is usable (positive, finite and within
        :data:`ABSURD_IRRADIANCE_FACTOR` of the survey's median for the band), else None."""
        return usable_reading(frame, self.sensor_median.get(frame.band.name))

    def irradiance(self, frame: Frame) -> float:
        """The horizontal irradiance used for ``frame`` (units of the camera's radiance × sr)."""
        band = frame.band.name
        if self.method in ("sensor", "both"):
            s = self.sensor_reading(frame)
            if s is not None:
                return s * (self.sensor_scale.get(band, 1.0) if self.method == "both" else 1.0)
            if band not in self.panel_irradiance:
                if band in self.sensor_median:
                    # this capture's sensor correction is skipped: the survey's typical light
                    return self.sensor_median[band]
                raise ProcessingError(f"frame {frame.path.name} has no sunlight-sensor reading and "
                                      "the survey has no panel; calibrate with a panel capture "
                                      "(--panel IMG_xxxx at ingest)")
        if band not in self.panel_irradiance:
            raise ProcessingError(f"no panel measurement for band {band!r} of {frame.path.name}; "
                                  f"the panel capture had bands {', '.join(self.panel_irradiance)}")
        return self.panel_irradiance[band]

    def reflectance_factor(self, frame: Frame) -> float:
        """Multiply the frame's radiance by this to get reflectance (π / E)."""
        return math.pi / self.irradiance(frame)

    def __call__(self, frame: Frame, dn: np.ndarray) -> np.ndarray:
        """Raw DN → surface reflectance (float32, 0…1 for most surfaces, NaN where invalid)."""
        if not calibratable(frame):
            raise InputError(f"frame {frame.path.name} (band {frame.band.name!r}) is not a "
                             "calibrated narrow band; leave it out of the reflectance mosaic")
        raw = np.asarray(dn)
        out = radiance(frame, raw) * np.float32(self.reflectance_factor(frame))
        # saturated pixels carry no radiometric information
        bad = raw.reshape(out.shape) >= saturation_dn(frame)
        if bad.any():
            out[bad] = np.nan
        return out.astype(np.float32, copy=False)

    @property
    def notes(self) -> list[dict[str, Any]]:
        return list(self.metadata.get("notes", []))

    def to_dict(self) -> dict[str, Any]:
        return {**self.metadata, "method": self.method, "panel_irradiance": dict(self.panel_irradiance),
                "sensor_scale": dict(self.sensor_scale), "sensor_median": dict(self.sensor_median)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Calibration:
        """The calibration :meth:`to_dict` wrote (exactly: JSON keeps every float's bits)."""
        meta = {k: v for k, v in d.items()
                if k not in ("panel_irradiance", "sensor_scale", "sensor_median")}
        return cls(method=str(d["method"]), panel_irradiance=dict(d.get("panel_irradiance") or {}),
                   sensor_scale=dict(d.get("sensor_scale") or {}), metadata=meta,
                   sensor_median=dict(d.get("sensor_median") or {}))


def usable_reading(frame: Frame, median: float | None) -> float | None:
    """The sensor irradiance of ``frame`` if positive, finite and (given the band's survey
    ``median``) within :data:`ABSURD_IRRADIANCE_FACTOR` of it; else None."""
    s = sensor_irradiance(frame)
    if s is None or not math.isfinite(s[0]) or s[0] <= 0:
        return None
    if median and not median / ABSURD_IRRADIANCE_FACTOR <= s[0] <= median * ABSURD_IRRADIANCE_FACTOR:
        return None
    return s[0]


def _albedos(survey: Survey, panel_albedo: float | Sequence[float] | Mapping[str, float] | None,
             capture: Capture) -> dict[str, float]:
    names = [f.band.name for f in capture.frames if calibratable(f)]
    if panel_albedo is None:
        # newer MicaSense firmware writes the panel's albedo when it recognised the panel's QR code
        found = {f.band.name: floats(vendor_value(f, "Albedo", "PanelAlbedo"))
                 for f in capture.frames if calibratable(f)}
        if all(found.values()):
            return {k: v[0] for k, v in found.items()}  # type: ignore[index]
        raise ConfigError("the panel's reflectance (albedo) per band is needed for panel calibration: "
                          "give --panel-albedo 0.49 (one value) or one per band, e.g. "
                          "--panel-albedo blue=0.49,green=0.49,…; it is printed on the panel's "
                          "calibration sheet and encoded in its QR code")
    if isinstance(panel_albedo, int | float):
        values = dict.fromkeys(names, float(panel_albedo))
    elif isinstance(panel_albedo, Mapping):
        values = {k: float(v) for k, v in panel_albedo.items()}
    else:
        seq = [float(v) for v in panel_albedo]
        order = [b.name for b in survey.bands] or names
        if len(seq) != len(order):
            raise ConfigError(f"--panel-albedo has {len(seq)} values but the camera has "
                              f"{len(order)} bands ({', '.join(order)})")
        values = dict(zip(order, seq, strict=True))
    missing = [n for n in names if n not in values]
    if missing:
        raise ConfigError(f"--panel-albedo gives no value for band(s) {', '.join(missing)}")
    bad = {k: v for k, v in values.items() if not 0.0 < v <= 1.0}
    if bad:
        raise ConfigError(f"panel albedo must be in (0, 1]; got {bad}")
    return values


def _xmp_albedo(capture: Capture) -> bool:
    """True when every band of the panel capture carries the panel albedo in its XMP."""
    return all(floats(vendor_value(f, "Albedo", "PanelAlbedo"))
               for f in capture.frames if calibratable(f))


def _measure(capture: Capture, region: tuple[int, int, int, int] | None
             ) -> dict[str, tuple[PanelMeasurement, float]]:
    out = {}
    for f in (f for f in capture.frames if calibratable(f)):
        dn = read_dn(f)
        L = radiance(f, dn)
        name = f"{capture.id} {f.band.name} ({f.path.name})"
        m = measure_panel(L, region, name=name)
        x, y, w, h = m.region
        sat = float((dn[max(y, 0):y + h, max(x, 0):x + w] >= saturation_dn(f)).mean())
        if sat > 0.01:
            raise ProcessingError(f"the panel in {name} is saturated ({sat:.0%} of its pixels at the "
                                  "sensor's maximum); retake the panel capture with auto-exposure "
                                  "or in less direct sun")
        out[f.band.name] = (m, float(np.nanmean(L)))
    return out


def _sensor_medians(frames: Sequence[Frame]) -> dict[str, float]:
    """Per band, the median of the positive readings that are not absurd against the median of
    all of them (so one faulty 10⁷ does not move the typical light)."""
    per_band: dict[str, list[float]] = {}
    for f in frames:
        e = usable_reading(f, None)
        if e is not None:
            per_band.setdefault(f.band.name, []).append(e)
    out = {}
    for b, v in per_band.items():
        first = float(np.median(v))
        kept = [e for e in v if first / ABSURD_IRRADIANCE_FACTOR <= e <= first * ABSURD_IRRADIANCE_FACTOR]
        out[b] = float(np.median(kept or v))
    return out


def _skipped_sensor(captures: Sequence[Capture], medians: Mapping[str, float]) -> list[dict[str, Any]]:
    """Captures whose sunlight-sensor reading is missing, zero or absurd in some band."""
    out = []
    for cap in captures:
        bad = {}
        for f in (f for f in cap.frames if calibratable(f)):
            s = sensor_irradiance(f)
            if usable_reading(f, medians.get(f.band.name)) is None:
                bad[f.band.name] = None if s is None else s[0]
        if bad:
            values = [v for v in bad.values() if v is not None]
            why = ("no reading" if not values else
                   "zero or negative" if all(v <= 0 or not math.isfinite(v) for v in values) else
                   f"more than {ABSURD_IRRADIANCE_FACTOR:g}× off the survey's median")
            out.append({"capture": cap.id, "bands": sorted(bad), "irradiance": bad, "reason": why})
    return out


def _model_notes(frames: Sequence[Frame]) -> list[dict[str, Any]]:
    """One note per (warning code, band) for frames whose radiometric tags are missing or
    contradictory: those bands use the model without that correction."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for f in frames:
        for code, text in model_warnings(f):
            key = (code, f.band.name)
            if key not in seen:
                seen[key] = note(code, f"band {f.band.name}: {text}", band=f.band.name, frames=[])
            seen[key]["frames"].append(f.path.name)
    for n in seen.values():
        n["text"] += f" ({len(n['frames'])} frame(s), e.g. {n['frames'][0]})"
    return list(seen.values())


def calibrate(survey: Survey, *, method: Method = "auto",
              panel_albedo: float | Sequence[float] | Mapping[str, float] | None = None,
              panel_region: tuple[int, int, int, int] | None = None) -> Calibration:
    """Build the survey's radiance → reflectance calibration.

    ``auto`` uses ``both`` when the survey has a usable panel capture and a sunlight sensor,
    else whichever exists. ``panel_albedo``: one value for all bands, one per band in the
    survey's band order, or a mapping band name → albedo. ``panel_region`` (x, y, w, h pixels)
    replaces automatic panel detection. Raises :class:`ProcessingError` when nothing can
    calibrate the survey, or the panel is not found or not uniformly lit, and
    :class:`UnsupportedCameraError` for a multispectral camera without a radiometric model.

    The report's ``notes`` say what the user must know: bands whose tags were missing or
    contradictory (model without that correction), captures whose sensor correction was
    skipped, a panel ignored for want of its albedo, and panel vs sensor disagreeing by more
    than :data:`DISAGREEMENT_LIMIT` in a band (the panel wins).
    """
    # radiometry does not need GPS: captures unusable for the mosaic (no position) still calibrate
    flights = survey.flight_captures or tuple(c for c in survey.captures if not c.is_panel)
    frames = [f for c in survey.captures for f in c.frames]
    if not frames:
        raise ProcessingError(f"survey {survey.name!r} has no frames to calibrate")
    narrow = [f for f in frames if f.band.name in SPECTRAL_BANDS]
    if not narrow:
        raise ProcessingError(f"survey {survey.name!r} has no narrow-band frames to calibrate: its "
                              "camera is an RGB camera, whose indices are relative and need no "
                              "calibration")
    no_model = sorted({f.camera.key or "(unnamed camera)" for f in narrow if camera_family(f) is None})
    if no_model:
        raise UnsupportedCameraError(
            f"multispectral camera {', '.join(no_model)} has no radiometric model in belcheer, so "
            f"its bands cannot be calibrated to reflectance; supported: {SUPPORTED_FAMILIES}. "
            "Indices of it exist only as relative values (`belcheer mosaic --relative`, "
            "`belcheer indices --relative`)")
    frames = [f for f in narrow if calibratable(f)]
    notes: list[dict[str, Any]] = []
    riding = sorted({f.path.name for f in survey.frames if f.band.name == "rgb"})
    if riding:
        notes.append(note("rgb_frames_skipped", f"{len(riding)} RGB frame(s) of the multispectral "
                          f"camera (e.g. {riding[0]}) are not calibrated: reflectance comes from "
                          "its narrow bands", count=len(riding)))
    notes.extend(_model_notes(frames))
    flight_frames = [f for c in flights for f in c.frames if calibratable(f)]
    medians = _sensor_medians(flight_frames)
    valid = [f for f in flight_frames if usable_reading(f, medians.get(f.band.name)) is not None]
    # a few faulty readings do not stop the sensor following the light in the other captures
    has_sensor = bool(flight_frames) and 2 * len(valid) >= len(flight_frames)
    skipped = _skipped_sensor(flights, medians) if has_sensor else []
    panels = sorted(survey.panel_captures, key=lambda c: (c.time is None, c.time, c.id))
    if method == "auto":
        if panels and has_sensor and panel_albedo is None and not _xmp_albedo(panels[0]):
            # without the panel's albedo the panel cannot set the level: fall back, and say so
            panels = []
            notes.append(note("panel_ignored_no_albedo",
                              "panel capture ignored: no panel albedo given (see the panel's "
                              "calibration sheet: --panel-albedo); reflectance from the sunlight "
                              "sensor only"))
        method = "both" if panels and has_sensor else "panel" if panels else "sensor" \
            if has_sensor else "none"  # type: ignore[assignment]
        if method == "none":
            raise ProcessingError(f"survey {survey.name!r} has neither a reflectance-panel capture nor "
                                  "sunlight-sensor readings; mark the panel capture at ingest "
                                  "(--panel IMG_0000) or fly with the DLS/sunshine sensor")
    if method in ("panel", "both") and not panels:
        raise ProcessingError(f"method {method!r} needs a panel capture but survey {survey.name!r} "
                              "has none; mark it at ingest with --panel IMG_xxxx or use --method sensor")
    if method in ("sensor", "both") and not has_sensor:
        raise ProcessingError(f"method {method!r} needs sunlight-sensor irradiance in the flight "
                              "frames, which this survey lacks (or has in fewer than half of them); "
                              "use --method panel")
    if skipped:
        notes.append(note("sensor_skipped",
                          f"sunlight-sensor correction skipped for {len(skipped)} capture(s) with a "
                          f"missing, zero or absurd reading (e.g. {skipped[0]['capture']}: "
                          f"{skipped[0]['reason']}); they use the "
                          f"{'panel' if method == 'both' else 'survey median'} irradiance",
                          captures=[c["capture"] for c in skipped]))

    meta: dict[str, Any] = {"survey": survey.name, "method": method, "absolute": True, "notes": notes,
                            "sensor_skipped": skipped}
    cal = Calibration(method=method, metadata=meta,
                      sensor_median=medians if method in ("sensor", "both") else {})
    if method == "sensor":
        meta["sensor"] = _sensor_summary(flight_frames)
        # Sequoia and DJI sensors report irradiance in their own units: without a panel the
        # reflectance is consistent between frames and dates of one camera, not absolute
        meta["absolute"] = all(camera_family(f) == "micasense" for f in flight_frames)
        if not meta["absolute"]:
            notes.append(note("sensor_relative_units",
                              "the sunlight sensor reports irradiance in its own units: reflectance "
                              "is consistent between frames and dates of this camera but not "
                              "absolute; add a panel capture and its albedo for absolute values"))
        return cal

    # the first usable panel capture sets the level; later ones check it
    measured: list[tuple[Capture, dict[str, tuple[PanelMeasurement, float]]]] = []
    rejected: list[dict[str, str]] = []
    for cap in panels:
        try:
            measured.append((cap, _measure(cap, panel_region)))
        except ProcessingError as exc:
            rejected.append({"capture": cap.id, "reason": str(exc)})
            if len(panels) == 1:
                raise
    if not measured:
        raise ProcessingError("no usable panel capture: " + "; ".join(r["reason"] for r in rejected))
    ref_cap, ref = measured[0]
    albedo = _albedos(survey, panel_albedo, ref_cap)
    cal.panel_irradiance = {b: math.pi * m.mean / albedo[b] for b, (m, _) in ref.items()}
    meta["panel"] = {
        "capture": ref_cap.id, "rejected": rejected,
        "bands": {b: {"radiance": m.mean, "region": list(m.region), "cv": round(m.cv, 5),
                      "detected": m.detected, "albedo": albedo[b],
                      "irradiance": cal.panel_irradiance[b]} for b, (m, _) in ref.items()},
    }
    if method == "both":
        for f in (f for f in ref_cap.frames if calibratable(f)):
            s = usable_reading(f, None)
            if s is None:
                raise ProcessingError(f"panel frame {f.path.name} has no usable sunlight-sensor "
                                      "reading, so the sensor cannot be tied to the panel; use "
                                      "--method panel")
            cal.sensor_scale[f.band.name] = cal.panel_irradiance[f.band.name] / s
        meta["panel"]["sensor_scale"] = dict(cal.sensor_scale)

    # panel-only vs sensor-only reflectance of flight captures: ρ_sensor/ρ_panel = E_panel/E_sensor
    if has_sensor:
        meta["panel_vs_sensor"] = _method_difference(cal, flights)
        off = {b: v["mean"] for b, v in meta["panel_vs_sensor"]["relative"].items()
               if abs(v["mean"]) > DISAGREEMENT_LIMIT}
        if off:
            listed = ", ".join(f"{b} {v:+.0%}" for b, v in off.items())
            how = ("the panel sets the level and the sensor follows the light (method both)"
                   if method == "both" else "reflectance from the panel (method panel)")
            notes.append(note("panel_sensor_disagree",
                              f"panel and sunlight sensor disagree by more than "
                              f"{DISAGREEMENT_LIMIT:.0%} in {listed} (sensor-only vs panel-only "
                              f"reflectance); the panel wins: {how}",
                              bands={b: round(v, 4) for b, v in off.items()}, method=method))
    # later panel captures, calibrated with the first (+ sensor): their panel reflectance error
    if len(measured) > 1:
        checks = []
        for cap, meas in measured[1:]:
            per_band = {}
            for f in (f for f in cap.frames if calibratable(f)):
                m = meas[f.band.name][0]
                rho = m.mean * cal.reflectance_factor(f)
                per_band[f.band.name] = {"reflectance": rho, "albedo": albedo[f.band.name],
                                         "error": rho - albedo[f.band.name]}
            checks.append({"capture": cap.id, "bands": per_band})
        meta["panel_checks"] = checks
        errs = [abs(b["error"]) for c in checks for b in c["bands"].values()]
        meta["calibration_error"] = {
            "max_abs": max(errs), "mean_abs": float(np.mean(errs)),
            "bands": {b: v["error"] for b, v in checks[-1]["bands"].items()},
            "capture": checks[-1]["capture"],
        }
    return cal


def _sensor_summary(frames: Sequence[Frame]) -> dict[str, Any]:
    per_band: dict[str, list[float]] = {}
    sources = set()
    for f in frames:
        s = sensor_irradiance(f)
        if s is not None and usable_reading(f, None) is not None:
            per_band.setdefault(f.band.name, []).append(s[0])
            sources.add(s[1].get("source"))
    return {"sources": sorted(x for x in sources if x),
            "irradiance": {b: {"min": min(v), "max": max(v), "mean": float(np.mean(v))}
                           for b, v in per_band.items()}}


def _method_difference(cal: Calibration, flights: Sequence[Capture]) -> dict[str, Any]:
    """Per band: relative difference of sensor-only vs panel-only reflectance over flight captures,
    and for the first flight capture the mean reflectance by both methods."""
    rel: dict[str, list[float]] = {}
    for cap in flights:
        for f in (f for f in cap.frames if calibratable(f)):
            s = cal.sensor_reading(f)
            if s is not None and f.band.name in cal.panel_irradiance:
                rel.setdefault(f.band.name, []).append(cal.panel_irradiance[f.band.name] / s - 1.0)
    out: dict[str, Any] = {"relative": {b: {"mean": float(np.mean(v)), "min": min(v), "max": max(v)}
                                        for b, v in rel.items()}}
    if flights:
        cap = flights[0]
        first: dict[str, Any] = {}
        for f in (f for f in cap.frames if calibratable(f)):
            s = cal.sensor_reading(f)
            if s is None or f.band.name not in cal.panel_irradiance:
                continue
            dn = read_dn(f)
            L = radiance(f, dn)
            L[dn >= saturation_dn(f)] = np.nan  # as the correction itself does
            rho_p = float(np.nanmean(L)) * math.pi / cal.panel_irradiance[f.band.name]
            rho_s = float(np.nanmean(L)) * math.pi / s
            first[f.band.name] = {"panel": rho_p, "sensor": rho_s, "difference": rho_s - rho_p,
                                  "sensor_source": (sensor_irradiance(f) or (0, {}))[1].get("source")}
        out["capture"] = cap.id
        out["bands"] = first
    return out

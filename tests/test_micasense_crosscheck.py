"""belcheer's radiometry against MicaSense's own library (micasense-imageprocessing) on the real
RedEdge tutorial capture: radiance, the panel's irradiance and the flight capture's reflectance
per band. MicaSense's code reads the same XMP tags through exiftool and computes radiance its
own way (black level from the dark rows, vignetting, row gradient, exposure and gain); the panel
method then gives reflectance = π·L / E with E = π·L_panel / albedo (the MicaSense tutorial)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import real_dataset

pytestmark = pytest.mark.real

ALBEDO = 0.49  # the tutorial panel's albedo in every band


def test_reflectance_within_one_percent_of_micasense(real_data: Path) -> None:
    from micasense.image import Image  # a dev dependency only: never imported by belcheer

    from belcheer.indices import calibrate
    from belcheer.indices.calibration import read_dn
    from belcheer.indices.radiometry import radiance
    from belcheer.ingest import scan

    survey = scan(real_dataset(real_data, "rededge_tutorial"), quality=False)
    cal = calibrate(survey, method="panel", panel_albedo=ALBEDO)
    assert cal.method == "panel"
    panel, flight = survey.capture("IMG_0000"), survey.capture("IMG_0001")
    bands = cal.metadata["panel"]["bands"]
    flights = {f.band.name: f for f in flight.frames}
    assert sorted(bands) == sorted(flights) == ["blue", "green", "nir", "red", "rededge"]
    for pf in panel.frames:
        name = pf.band.name
        x, y, w, h = bands[name]["region"]  # where belcheer found the panel
        ms_panel = Image(str(pf.path)).radiance()
        ours_panel = radiance(pf, read_dn(pf))
        # radiance over the panel, and the irradiance it gives
        ms_l = float(np.mean(ms_panel[y:y + h, x:x + w]))
        assert float(np.nanmean(ours_panel[y:y + h, x:x + w])) == pytest.approx(ms_l, rel=0.01), name
        ms_e = np.pi * ms_l / ALBEDO
        assert cal.panel_irradiance[name] == pytest.approx(ms_e, rel=0.01), name
        # reflectance over the panel (≈ the albedo) and over the whole flight capture, on the
        # pixels belcheer keeps (it leaves saturated pixels out; MicaSense does not)
        ours_p = cal(pf, read_dn(pf))[y:y + h, x:x + w]
        assert float(np.nanmean(ours_p)) == pytest.approx(float(np.mean(ms_panel[y:y + h, x:x + w])) * np.pi / ms_e,
                                                          rel=0.01), name
        ff = flights[name]
        ours = cal(ff, read_dn(ff))
        ok = np.isfinite(ours)
        assert ok.mean() > 0.99, name
        ms_refl = Image(str(ff.path)).radiance() * np.pi / ms_e
        assert float(ours[ok].mean()) == pytest.approx(float(ms_refl[ok].mean()), rel=0.01), name
    # the values themselves are those of vegetation and soil, not DN
    nir = cal(flights["nir"], read_dn(flights["nir"]))
    red = cal(flights["red"], read_dn(flights["red"]))
    assert 0.2 < float(np.nanmean(nir)) < 0.35 and 0.05 < float(np.nanmean(red)) < 0.1

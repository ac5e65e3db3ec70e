"""The survey's stored calibration: catalog round trip, reuse, re-ingest, and the indices'
refusal of DN and of outdated reflectance (in memory and tiny rasters: fast)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from test_dji_multispectral import _capture, _survey

from belcheer.errors import ConfigError, ProcessingError
from belcheer.indices import calibrate, compute_survey
from belcheer.indices.stored import store_calibration, survey_calibration
from belcheer.models import Band, Product, ProductKind


def _ws_with_dji_survey(workspace):
    frames = [f for n, u, e in ((1, "A", 1000.0), (2, "B", 950.0), (3, "C", 1040.0))
              for f in _capture(n, u, e)]
    survey = _survey(frames)
    workspace.save_survey(survey)
    return workspace, survey


def _dn_mosaic(ws, name: str = "orthomosaic", kind=ProductKind.ORTHOMOSAIC, meta=None) -> Product:
    path = ws.product_path("s", name)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    with rasterio.open(path, "w", driver="GTiff", height=64, width=64, count=5, dtype="float32",
                       crs="EPSG:32648", transform=from_origin(600000, 5420000, 0.1, 0.1),
                       nodata=float("nan")) as dst:
        dst.write(rng.uniform(0.05, 0.6, (5, 64, 64)).astype(np.float32))
    bands = (Band("blue", 450), Band("green", 560), Band("red", 650), Band("rededge", 730), Band("nir", 840))
    return ws.add_product(Product(id="", survey="s", kind=kind, name=name, uri=path, epsg=32648,
                                  bands=bands, units="DN", relative=kind is ProductKind.ORTHOMOSAIC,
                                  metadata=meta or {}))


def test_stored_calibration_round_trips_bit_for_bit(workspace):
    ws, survey = _ws_with_dji_survey(workspace)
    cal, rec = survey_calibration(ws, "s", source="calibrate")
    assert rec.method == "sensor" and rec.source == "calibrate"
    again, rec2 = survey_calibration(ws, "s")  # stored: reused, not recomputed
    assert rec2.id == rec.id and rec2.created == rec.created
    frame = survey.captures[1].frames[2]
    assert again.reflectance_factor(frame) == cal.reflectance_factor(frame)  # exact
    assert again.to_dict() == cal.to_dict()
    assert ws.catalog.calibration("s").irradiances["nir"] == pytest.approx(996.6666, rel=1e-4)
    assert (ws.report_dir("s") / "calibration.json").is_file()
    # a different albedo asks for a new calibration; re-ingesting drops the stored one
    with pytest.raises(ProcessingError, match="panel capture"):
        survey_calibration(ws, "s", method="panel", panel_albedo=0.5)
    ws.save_survey(survey, replace=True)
    assert ws.catalog.calibration("s") is None


def test_dn_indices_of_a_multispectral_survey_need_relative(workspace):
    ws, _ = _ws_with_dji_survey(workspace)
    _dn_mosaic(ws)
    with pytest.raises(ProcessingError, match="--relative"):
        compute_survey(ws, "s", ["ndvi"])
    (p,) = compute_survey(ws, "s", ["ndvi"], relative=True)
    assert p.relative and "DN" in p.metadata["relative_reason"]
    with rasterio.open(p.path) as src:
        assert src.tags()["relative"] == "True"


def test_indices_refuse_reflectance_made_with_an_earlier_calibration(workspace):
    ws, survey = _ws_with_dji_survey(workspace)
    cal, rec = survey_calibration(ws, "s")
    _dn_mosaic(ws, "reflectance", ProductKind.REFLECTANCE, {"calibration": rec.summary()})
    (p,) = compute_survey(ws, "s", ["ndvi"])
    assert not p.relative and p.metadata["calibration"]["id"] == rec.id
    # recalibrated (another albedo source: here a changed report) after the mosaic was made
    changed = calibrate(survey, method="sensor")
    changed.metadata["notes"].append({"code": "x", "text": "recalibrated"})
    store_calibration(ws, "s", changed, "calibrate")
    with pytest.raises(ProcessingError, match="recalibrated"):
        compute_survey(ws, "s", ["ndvi"])


def test_panel_albedo_forms_and_serial_table():
    from belcheer.indices.panel import albedo_of_serial, parse_albedo

    assert parse_albedo("0.49") == 0.49
    assert parse_albedo("0.49,0.5") == [0.49, 0.5]
    assert parse_albedo("Blue=0.49, nir=0.5") == {"blue": 0.49, "nir": 0.5}
    albedo, source = albedo_of_serial("rp04-sim0001-sc")
    assert albedo["nir"] == 0.533 and "simulator" in source
    assert parse_albedo("RP04-SIM0001-SC") == albedo
    with pytest.raises(ConfigError, match="not in belcheer's albedo table"):
        parse_albedo("RP04-1234567-OB")
    with pytest.raises(ConfigError, match="serial"):
        parse_albedo("half")

"""Land use drives every decision (issue 15, items 1 and 2): grazing decisions only on grazing
land, crop indicators and harvest-aware change on cropland, one roll-up for CLI and web, and
capacity of whole parcels from their surveyed share — on the real NL parcels and synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
from conftest import real_dataset
from test_zoning_support import scene_parcels

from belcheer.cli import main
from belcheer.config import Settings
from belcheer.models import Band, Product, ProductKind, Survey
from belcheer.workspace import open_workspace
from belcheer.zoning import normalise_parcels, parcel_change, parcel_report, rollup, save_parcels
from belcheer.zoning.capacity import CapacityParams, carrying_capacity, coefficients, sheep_units
from belcheer.zoning.landuse import land_use_from_crop, use_group
from belcheer.zoning.numbers import quantity

NL_SURVEY = "onstwedde-2016"


@pytest.fixture(scope="module")
def nl(real_data, tmp_path_factory):
    """The 62 FarmHack NL parcels (crop types, 12 of them grassland) with their Sentinel-2 NDVI."""
    from rio_cogeo.cogeo import cog_translate
    from rio_cogeo.profiles import cog_profiles

    from belcheer import zoning

    folder = real_dataset(real_data, "farm_parcels_nl")
    tmp = tmp_path_factory.mktemp("nl")
    settings = Settings(workspace=tmp / "ws", secret_key="k" * 40)
    ws = open_workspace(settings.workspace, settings)
    ws.save_survey(Survey(name=NL_SURVEY, captures=(), epsg=32631))
    ws.catalog.add_survey(NL_SURVEY, ws.catalog.survey(NL_SURVEY).manifest, 32631, "2016-06-01", {}, replace=True)
    ws.catalog.set_published(NL_SURVEY, True)
    cog = ws.product_path(NL_SURVEY, "ndvi")
    cog.parent.mkdir(parents=True, exist_ok=True)
    cog_translate(str(folder / "5-sentinel2-ndvi_demo.tif"), str(cog), cog_profiles.get("deflate"),
                  quiet=True, overview_level=3)
    ws.add_product(Product(id="", survey=NL_SURVEY, kind=ProductKind.INDEX, name="ndvi", uri=cog,
                           epsg=32631, bands=(Band("ndvi"),)))
    src = pyogrio.read_dataframe(folder / "1-percelen.geojson")
    src["soum"] = "Onstwedde"  # the roll-up groups by the parcels' own soum attribute
    pyogrio.write_dataframe(src, tmp / "nl.gpkg")
    res = zoning.import_parcels(ws, tmp / "nl.gpkg", id_field="ID")
    zoning.survey_stats(ws, NL_SURVEY, scheduler="synchronous")
    return ws, settings, src, res


@pytest.mark.real
def test_nl_crop_types_become_land_use_and_drive_grading(nl) -> None:
    ws, _, src, res = nl
    assert res.report["land_use_from_crop"] == "CROP"
    rep = parcel_report(ws, NL_SURVEY).set_index("parcel_id")
    grass_ids = {str(int(i)) for i in src.loc[src["CROP"] == "Grasland", "ID"]}
    assert len(grass_ids) == 12
    assert set(rep.index[rep["land_use"] == "pasture"]) == grass_ids
    assert (rep["land_use"] == "cropland").sum() == 50 and set(rep["CROP"]) >= {"Wintertarwe", "Aardappel"}
    grass, crop = rep.loc[sorted(grass_ids)], rep.drop(index=sorted(grass_ids))
    # grazing decisions on grassland only: every grass parcel is graded, no crop field is
    assert grass["condition_class"].between(1, 5).all()
    assert (crop["condition_class"] == 0).all() and (crop["condition_mn"] == "").all()
    assert crop["capacity_su"].isna().all() and crop["biomass_kg_ha"].isna().all()
    assert (crop["capacity_status"] == "not_grazing_land").all()
    assert (crop["capacity_note_mn"] == "бэлчээр биш тул даац тооцохгүй").all()
    # crop indicators: index mean and uniformity (1 − std/mean) on crop fields only
    assert crop["crop_index_mean"].to_numpy() == pytest.approx(crop["ndvi_mean"].to_numpy())
    assert crop["crop_uniformity"].to_numpy() == pytest.approx(
        (1 - crop["ndvi_std"] / crop["ndvi_mean"]).to_numpy())
    assert crop["crop_uniformity"].between(0.5, 1.0).all() and grass["crop_uniformity"].isna().all()
    # the Sentinel-2 raster covers the parcels: 81-100 % of each parcel's area has valid pixels
    assert rep["surveyed_share"].between(0.80, 1.0).all()


@pytest.mark.real
def test_nl_rollup_splits_pasture_and_cropland_and_cli_equals_web(nl, capsys) -> None:
    from fastapi.testclient import TestClient

    from belcheer.api import create_app

    ws, settings, src, _ = nl
    rep = parcel_report(ws, NL_SURVEY)
    w = rep["area_ha"] * rep["surveyed_share"]
    grass = rep["land_use"] == "pasture"
    want_pasture = np.average(rep.loc[grass, "ndvi_mean"], weights=w[grass])
    want_crop = np.average(rep.loc[~grass, "ndvi_mean"], weights=w[~grass])
    assert want_pasture == pytest.approx(0.722, abs=0.001) and want_crop == pytest.approx(0.459, abs=0.001)
    # the mix of both that the roll-up used to print describes neither
    mixed = np.average(rep["ndvi_mean"], weights=w)
    assert abs(mixed - want_pasture) > 0.2
    # the old web roll-up took a plain mean over parcels, the CLI an area-weighted one: they differed
    assert abs(rep["ndvi_mean"].mean() - np.average(rep["ndvi_mean"], weights=rep["area_ha"])) > 0.005
    capsys.readouterr()
    assert main(["-w", str(ws.root), "rollup", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    with TestClient(create_app(settings)) as client:
        web = client.get("/rollup", params={"level": "soum"}).json()
        summary = client.get(f"/surveys/{NL_SURVEY}/summary").json()
    assert len(cli) == len(web) == 1
    c, v = cli[0], web[0]
    for key in ("parcels", "area_ha", "surveyed_ha", "ndvi_mean", "pasture_parcels", "pasture_area_ha",
                "pasture_ndvi_mean", "cropland_parcels", "cropland_area_ha", "cropland_ndvi_mean",
                "crop_uniformity"):
        assert c[key] == pytest.approx(v[key], rel=1e-9), key  # the CLI prints 10 digits
    assert c["pasture_parcels"] == 12 and c["cropland_parcels"] == 50
    assert c["pasture_ndvi_mean"] == pytest.approx(want_pasture, rel=1e-9)
    assert c["cropland_ndvi_mean"] == pytest.approx(want_crop, rel=1e-9)
    assert summary["pasture"]["ndvi_mean"] == pytest.approx(want_pasture, rel=1e-9)
    assert summary["indices"]["ndvi"] == pytest.approx(c["ndvi_mean"], rel=1e-9)
    # the Python roll-up is that same function
    assert rollup(rep, None, "soum").iloc[0]["pasture_ndvi_mean"] == pytest.approx(want_pasture, rel=1e-12)


@pytest.mark.real
def test_nl_harvest_is_not_degradation(nl) -> None:
    ws, _, src, _ = nl
    rep = parcel_report(ws, NL_SURVEY)
    a = rep[["parcel_id", "ndvi_mean"]].rename(columns={"ndvi_mean": "mean"})
    crop = dict(zip(src["ID"].astype(int).astype(str), src["CROP"], strict=True))
    cereal = {p for p, c in crop.items() if c in ("Wintertarwe", "Zomergerst")}
    grass = {p for p, c in crop.items() if c == "Grasland"}
    b = a.copy()
    # after harvest cereal stubble reads ≈ 0.2; the grassland loses 0.35 (over-grazed); a
    # potato field declines a little; everything else is unchanged
    b.loc[b["parcel_id"].isin(cereal), "mean"] = 0.2
    b.loc[b["parcel_id"].isin(grass), "mean"] -= 0.35
    potato = sorted(p for p, c in crop.items() if c == "Aardappel")[0]
    b.loc[b["parcel_id"] == potato, "mean"] -= 0.08
    lu = rep.set_index("parcel_id")["land_use"]
    t = parcel_change(a, b, land_use=lu).set_index("parcel_id")
    assert (t.loc[sorted(cereal), "change_kind"] == "harvest").all() and len(cereal) == 18
    assert set(t.index[t["degraded"]]) == grass            # alerts only on grazing land
    assert (t.loc[sorted(grass), "change_kind"] == "degradation").all()
    assert t.loc[potato, "change_kind"] == ("crop_decline" if b.set_index("parcel_id").loc[potato, "mean"] > 0.3
                                            else "harvest")
    assert not t.loc[~t.index.isin(grass), "degraded"].any()
    assert (t.loc[~t.index.isin(cereal | grass | {potato}), "change_kind"] == "stable").all()


def test_land_use_from_crop_names() -> None:
    got = land_use_from_crop(pd.Series(["Grasland", "Wintertarwe", "улаан буудай", "Permanent grassland",
                                        None, "", "хадлан"]))
    assert [v if isinstance(v, str) else None for v in got] == [
        "pasture", "cropland", "cropland", "pasture", None, None, "pasture"]
    assert use_group(["pasture", "hayfield", "otor", "cropland", "other"]).tolist() == [
        "pasture", "pasture", "pasture", "cropland", "other"]


def _capacity_workspace(tmp_path: Path):
    ws = open_workspace(tmp_path / "ws")
    parcels = scene_parcels((600_000.0, 4_850_000.0), n=4)
    parcels["land_use"] = ["pasture", "pasture", "hayfield", "cropland"]
    parcels["season"] = "summer"
    parcels["eco_zone"] = "steppe"
    parcels["soum"] = "Баянгол"
    parcels["aimag"] = "Сэлэнгэ"
    frame = normalise_parcels(parcels).frame
    save_parcels(ws, frame, source="test")
    ws.catalog.add_survey("s", ws.manifest_path("s"), 32648, "2026-07-10", {}, replace=True)
    share = {"P01": 1.0, "P02": 0.30, "P03": 0.0004, "P04": 1.0}
    ws.catalog.put_stats("s", "2026-07-10", "ndvi", [
        {"parcel_id": p, "mean": 0.50, "std": 0.05, "count": 100.0, "valid_fraction": v} for p, v in share.items()],
        parcel_version=1)
    ws.catalog.put_stats("s", "2026-07-10", "biomass", [
        {"parcel_id": p, "mean": 800.0, "count": 100.0, "valid_fraction": v} for p, v in share.items()],
        parcel_version=1)
    return ws, frame.set_index("parcel_id"), share


def test_capacity_of_whole_parcel_from_surveyed_share(tmp_path: Path) -> None:
    ws, frame, share = _capacity_workspace(tmp_path)
    rep = parcel_report(ws, "s").set_index("parcel_id")
    # steppe, class I (NDVI 0.50 ≥ 0.45): half of 800 kg DM/ha usable, 1.5 kg/day × 90 summer days
    su_ha = 800 * 0.5 / (1.5 * 90)
    assert su_ha == pytest.approx(carrying_capacity(800, 1, eco_zone="steppe", season="summer")["su_per_ha"])
    assert rep.loc["P01", "su_per_ha"] == pytest.approx(su_ha)
    assert rep.loc["P01", "ha_per_su"] == pytest.approx(1 / su_ha)
    for pid in ("P01", "P02"):
        assert rep.loc[pid, "surveyed_share"] == share[pid]
        assert rep.loc[pid, "capacity_su"] == pytest.approx(su_ha * frame.loc[pid, "area_ha"])  # whole parcel
        assert rep.loc[pid, "capacity_surveyed_su"] == pytest.approx(su_ha * frame.loc[pid, "area_ha"] * share[pid])
        assert rep.loc[pid, "capacity_status"] == "ok"
    herd = frame.loc["P02", ["camel", "horse", "cattle", "sheep", "goat"]]
    assert rep.loc["P02", "registered_su"] == pytest.approx(
        herd["camel"] * 5 + herd["horse"] * 7 + herd["cattle"] * 6 + herd["sheep"] + herd["goat"] * 0.9)
    assert rep.loc["P02", "balance_su"] == pytest.approx(rep.loc["P02", "capacity_su"] - rep.loc["P02", "registered_su"])
    # 0.04 % surveyed is below the default minimum of 0.1 %: not extrapolated, and the reason given
    assert np.isnan(rep.loc["P03", "capacity_su"]) and np.isnan(rep.loc["P03", "balance_su"])
    assert rep.loc["P03", "capacity_status"] == "below_min_share"
    assert rep.loc["P03", "capacity_note_en"] == ("surveyed share 0.040 % is below the minimum 0.10 %: "
                                                  "not extrapolated to the whole parcel")
    assert "0.040 %" in rep.loc["P03", "capacity_note_mn"] and "тооцоогүй" in rep.loc["P03", "capacity_note_mn"]
    assert rep.loc["P03", "su_per_ha"] == pytest.approx(su_ha)  # the surveyed part still has its SU/ha
    assert rep.loc["P04", "capacity_status"] == "not_grazing_land" and rep.loc["P04", "condition_class"] == 0
    # the minimum is configurable
    strict = parcel_report(ws, "s", params=CapacityParams(min_surveyed_share=0.5)).set_index("parcel_id")
    assert strict.loc["P02", "capacity_status"] == "below_min_share" and np.isnan(strict.loc["P02", "capacity_su"])
    assert strict.loc["P01", "capacity_su"] == pytest.approx(rep.loc["P01", "capacity_su"])


def test_cli_report_prints_sensible_precision(tmp_path: Path, capsys, monkeypatch) -> None:
    from belcheer.cli import _common

    monkeypatch.setattr(_common.out, "width", 200)
    ws, frame, _ = _capacity_workspace(tmp_path)
    capsys.readouterr()
    assert main(["-w", str(ws.root), "report", "--survey", "s"]) == 0
    out = capsys.readouterr().out
    rep = parcel_report(ws, "s").set_index("parcel_id")
    assert quantity(rep.loc["P01", "capacity_su"]) in out and quantity(rep.loc["P01", "ha_per_su"]) in out
    assert "ha/SU" in out and "30 %" in out
    assert "P03: surveyed share 0.040 % is below the minimum 0.10 %" in out
    assert [quantity(v) for v in (0.1, 0.0123, 2.96, 29.64, 296.2, 1234.5, 0)] == [
        "0.10", "0.012", "2.96", "29.6", "296", "1,234", "0"]
    assert quantity(15.0) == "15" and quantity(2.5) == "2.50"


def test_sheep_unit_coefficients_are_the_mongolian_ones() -> None:
    coef = {c["species"]: c["su_per_head"] for c in coefficients()}
    assert coef == {"camel": 5.0, "horse": 7.0, "cattle": 6.0, "sheep": 1.0, "goat": 0.9}
    assert "National Statistics Office" in coefficients()[0]["source"]
    assert [c["mn"] for c in coefficients()] == ["тэмээ", "адуу", "үхэр", "хонь", "ямаа"]
    assert sheep_units({"camel": 2, "horse": 3, "cattle": 4, "sheep": 10, "goat": 10}) == pytest.approx(
        10 + 21 + 24 + 10 + 9)


@pytest.mark.real
def test_soum_rollup_compares_capacity_with_nso_livestock(tmp_path: Path, real_data: Path, capsys) -> None:
    from belcheer.zoning.capacity import su_per_head
    from belcheer.zoning.registry import find_soum, read_livestock

    nso = real_dataset(real_data, "mongolia_nso")
    livestock = read_livestock(nso)
    assert len(livestock) == 339 and set(livestock["year"]) == {2019}
    # three soums are called Баянгол: the aimag tells them apart; the NSO code finds one directly
    assert (livestock["soum_mn"] == "Баянгол").sum() == 3
    hit = find_soum(livestock, soum="Баянгол", aimag="Сэлэнгэ")
    assert hit["nso_code"] == "34310" and hit["heads"] == 158157
    assert find_soum(livestock, soum="Баянгол") is None
    assert find_soum(livestock, code=34310)["soum_mn"] == "Баянгол"
    assert find_soum(livestock, soum="Bayangol", aimag="Selenge")["nso_code"] == "34310"
    ws, frame, _ = _capacity_workspace(tmp_path)
    rep = parcel_report(ws, "s")
    row = rollup(rep, None, "soum", livestock=livestock).iloc[0]
    assert row["nso_code"] == "34310" and row["nso_heads"] == 158157
    assert row["nso_su_est"] == pytest.approx(158157 * su_per_head())
    assert su_per_head() == pytest.approx(1.694, abs=0.001)
    assert row["capacity_su"] == pytest.approx(rep["capacity_su"].sum())
    assert row["capacity_share_of_nso"] == pytest.approx(row["capacity_su"] / row["nso_su_est"])
    assert row["pasture_parcels"] == 3 and row["cropland_parcels"] == 1
    # by boundary polygons with NSO codes (the soum sample layer) the join is by code
    soums = gpd.read_file(nso / "soum_sample_26.geojson")
    assert len(soums) == 26
    capsys.readouterr()
    assert main(["-w", str(ws.root), "rollup", "--nso", str(nso), "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)[0]
    assert cli["nso_heads"] == 158157 and cli["capacity_su"] == pytest.approx(row["capacity_su"])

"""The soum report to print (issue 15, item 9): an A4 PDF, Mongolian first, rendered to PNG with
pdftoppm and read back through its text layer with pdftotext."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import real_dataset
from PIL import Image
from test_zoning_support import scene_parcels

from belcheer.cli import main
from belcheer.config import Settings
from belcheer.workspace import open_workspace
from belcheer.zoning import normalise_parcels, parcel_report, save_parcels

SURVEY, EARLIER = "Баянгол-2026-07", "Баянгол-2025-07"
#: Latin-letter words a Mongolian report may hold: index names and the recovery classes' Roman
#: numerals (Mongolian usage: "III анги")
ALLOWED_LATIN = {"NDVI", "I", "II", "III", "IV", "V"}
NAMES = ["Хужирт", "Шар нуруу", "Улаан даваа", "Тариан талбай №1 (улаан буудай)"]


def _poppler(tool: str) -> str:
    path = shutil.which(tool)
    assert path, f"{tool} is missing: install poppler-utils (the Makefile's install step does)"
    return path


def _text(pdf: Path) -> str:
    return subprocess.run([_poppler("pdftotext"), "-layout", str(pdf), "-"], check=True,
                          capture_output=True, text=True).stdout


@pytest.fixture
def soum_ws(tmp_path: Path):
    settings = Settings(workspace=tmp_path / "ws", secret_key="k" * 40)
    ws = open_workspace(settings.workspace, settings)
    parcels = scene_parcels((600_000.0, 4_850_000.0), n=4)
    parcels["name"] = NAMES
    parcels["land_use"] = ["pasture", "pasture", "hayfield", "cropland"]
    parcels["season"] = "summer"
    parcels["eco_zone"] = "steppe"
    parcels["soum"] = "Баянгол"
    parcels["aimag"] = "Сэлэнгэ"
    save_parcels(ws, normalise_parcels(parcels).frame, source="test")
    # this year: class I, III and II pasture (steppe thresholds 0.45 / 0.36 / 0.27), a ripe wheat
    # field; last year everything greener, the wheat still standing
    now = {"P01": 0.50, "P02": 0.30, "P03": 0.40, "P04": 0.25}
    before = {"P01": 0.52, "P02": 0.42, "P03": 0.41, "P04": 0.70}
    share = {"P01": 1.0, "P02": 0.30, "P03": 0.0004, "P04": 1.0}
    for name, date, vals in ((EARLIER, "2025-07-10", before), (SURVEY, "2026-07-10", now)):
        ws.catalog.add_survey(name, ws.manifest_path(name), 32648, date, {}, replace=True)
        ws.catalog.put_stats(name, date, "ndvi", [
            {"parcel_id": p, "mean": v, "std": 0.04, "count": 100.0, "valid_fraction": share[p]}
            for p, v in vals.items()], parcel_version=1)
        ws.catalog.put_stats(name, date, "biomass", [
            {"parcel_id": p, "mean": 1500 * v, "count": 100.0, "valid_fraction": share[p]} for p, v in vals.items()],
            parcel_version=1)
    ws.catalog.set_published(SURVEY, True)
    return ws, settings


def test_cli_soum_pdf_mongolian_and_english(soum_ws, tmp_path: Path, real_data: Path) -> None:
    ws, _ = soum_ws
    nso = real_dataset(real_data, "mongolia_nso")
    mn, en = tmp_path / "soum.pdf", tmp_path / "soum-en.pdf"
    assert main(["-w", str(ws.root), "report", "--pdf", str(mn), "--soum", "Баянгол", "--nso", str(nso)]) == 0
    assert main(["-w", str(ws.root), "report", "--pdf", str(en), "--lang", "en", "--nso", str(nso)]) == 0
    info = subprocess.run([_poppler("pdfinfo"), str(mn)], check=True, capture_output=True, text=True).stdout
    assert re.search(r"Pages:\s+3", info) and "(A4)" in info
    fonts = subprocess.run([_poppler("pdffonts"), str(mn)], check=True, capture_output=True, text=True).stdout
    rows = [ln.split() for ln in fonts.splitlines()[2:] if ln.strip()]
    assert rows and all("DejaVuSans" in r[0] and "yes" in r for r in rows)  # every font embedded
    text = _text(mn)
    for name in NAMES:
        assert name in text, name
    assert "Баянгол сум, Сэлэнгэ аймаг" in text
    for word in ("I анги", "II анги", "III анги", "бэлчээр", "хадлан", "тариалан", "жигд 0.84",
                 "Арга зүй", "Мэдээллийн эх сурвалж", "Сумын нэгтгэл", "158,157",
                 "Үндэсний статистикийн хороо: сумын малын тоо, 2019 он"):
        assert word in text, word
    # change since the previous survey: the wheat was harvested, the class III pasture fell from II
    assert "ΔNDVI -0.45 ургац хураасан" in text and "ΔNDVI -0.12 доройтсон" in text
    # capacity beside ha/SU, never "0" for a small value, and the reason where it is not extrapolated
    rep = parcel_report(ws, SURVEY).set_index("parcel_id")
    from belcheer.zoning.numbers import quantity

    assert quantity(rep.loc["P01", "capacity_su"]) in text and quantity(rep.loc["P01", "ha_per_su"]) in text
    assert "Улаан даваа: зураглагдсан хэсэг 0.040 % нь доод хэмжээ 0.10 %-аас бага" in text
    latin = set(re.findall(r"[A-Za-z]+", text)) - ALLOWED_LATIN
    assert not latin, f"English in the Mongolian report: {sorted(latin)}"
    en_text = _text(en)
    assert "Pasture condition and carrying capacity report" in en_text and "Class III" not in en_text
    assert "III class" in en_text and "harvested" in en_text and "Хужирт" in en_text
    # rendered: page 1 is an A4 portrait page holding the class colours of the map's legend
    subprocess.run([_poppler("pdftoppm"), "-r", "50", "-png", "-f", "1", "-l", "1", str(mn), str(tmp_path / "p")],
                   check=True)
    png = Image.open(next(tmp_path.glob("p*.png"))).convert("RGB")
    assert png.size[1] / png.size[0] == pytest.approx(11.69 / 8.27, rel=0.01)
    px = np.asarray(png).reshape(-1, 3)
    for colour in ((0x1a, 0x98, 0x50), (0xfe, 0xe0, 0x8b)):  # class I green, class III yellow
        assert (np.abs(px.astype(int) - colour).sum(axis=1) < 12).sum() > 20, colour


def test_web_report_pdf(soum_ws) -> None:
    from fastapi.testclient import TestClient

    from belcheer.api import create_app

    _, settings = soum_ws
    with TestClient(create_app(settings)) as client:
        r = client.get("/export/report.pdf", params={"soum": "Баянгол", "lang": "mn"})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/pdf" and r.content.startswith(b"%PDF")
        assert "attachment" in r.headers["content-disposition"]
        assert client.get("/export/report.pdf", params={"soum": "Нөгөө сум"}).status_code == 404
        assert client.get("/export/report.pdf", params={"lang": "fr"}).status_code == 422


def test_pdf_map_draws_the_flight_raster_and_an_inset(soum_ws, tmp_path: Path) -> None:
    import rasterio
    from rasterio.transform import from_origin

    from belcheer.zoning.pdf import render_soum_report

    ws, _ = soum_ws
    # a 300 m × 300 m condition raster over the first parcel: class III everywhere
    cog = tmp_path / "condition.tif"
    with rasterio.open(cog, "w", driver="GTiff", width=150, height=150, count=1, dtype="uint8", nodata=0,
                       crs="EPSG:32648", transform=from_origin(600_000.0, 4_850_340.0, 2.0, 2.0)) as ds:
        ds.write(np.full((1, 150, 150), 3, dtype="uint8"))
    out = tmp_path / "r.pdf"
    render_soum_report(parcel_report(ws, SURVEY), out, raster=cog, survey=SURVEY, date="2026-07-10")
    text = _text(out)
    assert "Нислэгийн зураглал" in text  # the inset of what the flight saw
    latin = set(re.findall(r"[A-Za-z]+", text)) - ALLOWED_LATIN
    assert not latin, f"English in the Mongolian report: {sorted(latin)}"
    subprocess.run([_poppler("pdftoppm"), "-r", "60", "-png", "-f", "1", "-l", "1", str(out), str(tmp_path / "m")],
                   check=True)
    px = np.asarray(Image.open(next(tmp_path.glob("m*.png"))).convert("RGB")).reshape(-1, 3).astype(int)
    # the raster's class III yellow fills far more than the legend's swatch
    assert (np.abs(px - (0xfe, 0xe0, 0x8b)).sum(axis=1) < 12).sum() > 2000

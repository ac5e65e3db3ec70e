"""A small synthetic workspace for the API tests (no tests here; imported by test_api*.py and
test_web*.py): one survey near Ulaanbaatar (UTM 48N) with an orthomosaic, an NDVI and a condition
COG, three parcels with Cyrillic names, and statistics computed from the NDVI raster."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import box

from belcheer.config import Settings
from belcheer.models import Band, Product, ProductKind, Survey
from belcheer.workspace import Workspace, open_workspace

SURVEY = "Сэлэнгэ-2026-07"
HIDDEN = "hidden-2026-08"
EPSG = 32648
ORIGIN = (567_000.0, 5_306_000.0)  # UTM 48N, near 106.9 E 47.9 N
RES = 0.5
SIZE = 512
PASSWORD = "correct-horse-battery"
PARCELS = [
    # parcel_id, name, soum, group, (col0, row0, col1, row1) in pixels, ndvi level
    ("P1", "Хонгор ус", "Батсүмбэр", "ail-1", (40, 40, 220, 220), 0.72),
    ("P2", "Шар тал", "Батсүмбэр", "ail-2", (260, 40, 470, 230), 0.45),
    ("P3", "Улаан толгой", "Баянчандмань", "ail-3", (60, 280, 460, 470), 0.18),
]


def _write_cog(path: Path, data: np.ndarray, dtype: str, nodata: float | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {"driver": "COG", "width": data.shape[2], "height": data.shape[1], "count": data.shape[0],
               "dtype": dtype, "crs": f"EPSG:{EPSG}", "transform": from_origin(*ORIGIN, RES, RES),
               "nodata": nodata, "compress": "deflate", "blocksize": 256, "overview_resampling": "nearest"}
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data.astype(dtype))


def parcel_geoms() -> gpd.GeoDataFrame:
    rows = []
    for pid, name, soum, group, (c0, r0, c1, r1), _ in PARCELS:
        x0, y0 = ORIGIN[0] + c0 * RES, ORIGIN[1] - r1 * RES
        x1, y1 = ORIGIN[0] + c1 * RES, ORIGIN[1] - r0 * RES
        rows.append({"parcel_id": pid, "name": name, "land_use": "pasture", "season": "summer",
                     "user_group": group, "aimag": "Төв", "soum": soum, "bag": "1-р баг",
                     "eco_zone": "steppe", "camel": 2, "horse": 20, "cattle": 10, "sheep": 150,
                     "goat": 100, "area_ha": (x1 - x0) * (y1 - y0) / 1e4, "geometry": box(x0, y0, x1, y1)})
    return gpd.GeoDataFrame(rows, crs=EPSG)


def ndvi_array() -> np.ndarray:
    rng = np.random.default_rng(7)
    ndvi = np.full((SIZE, SIZE), 0.3, dtype="float32") + rng.normal(0, 0.02, (SIZE, SIZE)).astype("float32")
    for *_, (c0, r0, c1, r1), level in PARCELS:
        ndvi[r0:r1, c0:c1] = level + rng.normal(0, 0.02, (r1 - r0, c1 - c0))
    ndvi[:, :16] = np.nan  # a strip without data: must be transparent in tiles
    return ndvi


def build_workspace(root: Path, **settings_kw) -> tuple[Workspace, Settings]:
    """Create the synthetic workspace at ``root``; returns it and Settings pointing at it."""
    settings = Settings(workspace=root, secret_key="test-secret-" + "x" * 32, **settings_kw)
    ws = open_workspace(root, settings)
    for name, date in ((SURVEY, "2026-07-15"), (HIDDEN, "2026-08-15")):
        ws.save_survey(Survey(name=name, captures=(), epsg=EPSG))
        rec = ws.catalog.survey(name)
        ws.catalog.add_survey(name, rec.manifest, EPSG, date, {"frames": 0}, replace=True)
    ws.catalog.set_published(SURVEY, True)

    ndvi = ndvi_array()
    rgb = np.stack([np.clip((1 - ndvi) * 200, 0, 255), np.clip(ndvi * 255, 0, 255),
                    np.full_like(ndvi, 60)]).astype("float32")
    rgb = np.nan_to_num(rgb, nan=0)
    cond = np.digitize(np.nan_to_num(ndvi, nan=-1), [0.2, 0.35, 0.5, 0.65])  # 0..4
    cond = (5 - cond).astype("uint8")
    cond[np.isnan(ndvi)] = 0
    specs = [("orthomosaic", ProductKind.ORTHOMOSAIC, rgb, "uint8", 0,
              (Band("red", 650, label="R"), Band("green", 550, label="G"), Band("blue", 470, label="B")), None),
             ("ndvi", ProductKind.INDEX, ndvi[None], "float32", float("nan"), (Band("ndvi"),), None),
             ("condition", ProductKind.CONDITION, cond[None], "uint8", 0, (Band("condition"),), "recovery class 1-5")]
    for survey in (SURVEY, HIDDEN):
        for name, kind, arr, dtype, nodata, bands, units in specs:
            path = ws.product_path(survey, name)
            _write_cog(path, arr, dtype, nodata)
            ws.add_product(Product(id="", survey=survey, kind=kind, name=name, uri=path, epsg=EPSG,
                                   bands=bands, units=units))

    parcels = parcel_geoms()
    target = ws.path("parcels", "parcels-v1.gpkg")
    parcels.to_crs(4326).to_file(target, driver="GPKG", layer="parcels", engine="pyogrio")
    ws.catalog.add_parcel_version(target, "synthetic", len(parcels), {})
    for survey, shift in ((SURVEY, 0.0), (HIDDEN, 0.05)):
        rows = []
        for pid, *_rest, (c0, r0, c1, r1), _level in PARCELS:
            vals = ndvi[r0:r1, c0:c1]
            rows.append({"parcel_id": pid, "mean": float(np.nanmean(vals)) + shift,
                         "median": float(np.nanmedian(vals)), "std": float(np.nanstd(vals)),
                         "count": float(np.isfinite(vals).sum()), "valid_fraction": 1.0})
        ws.catalog.put_stats(survey, ws.catalog.survey(survey).date, "ndvi", rows, parcel_version=1)
    # a soum boundary around the survey (the web map draws it when present)
    soum = gpd.GeoDataFrame({"name": ["Батсүмбэр"]}, geometry=[parcels.to_crs(4326).union_all().envelope.buffer(0.001)],
                            crs=4326)
    ws.path("boundaries").mkdir(exist_ok=True)
    soum.to_file(ws.path("boundaries", "soum.geojson"), driver="GeoJSON", engine="pyogrio")
    from belcheer.api.auth import add_user

    add_user(ws, "admin", PASSWORD, "admin")
    add_user(ws, "officer", PASSWORD, "officer", soum="Батсүмбэр")
    add_user(ws, "herder", PASSWORD, "herder", group="ail-1")
    return ws, settings


def token(client, username: str) -> dict[str, str]:
    """Authorization header for a fixture user."""
    r = client.post("/token", data={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    client.cookies.clear()  # the token also comes as a cookie; tests pass it explicitly instead
    return {"Authorization": f"Bearer {r.json()['access_token']}"}

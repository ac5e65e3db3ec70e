"""The API on real data: the FarmHack NL parcels (62 farm parcels, Onstwedde 2016) with their
Sentinel-2 NDVI raster registered as an index product."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pyogrio
import pytest
from conftest import real_dataset
from fastapi.testclient import TestClient
from PIL import Image

from belcheer.config import Settings
from belcheer.models import Band, Product, ProductKind, Survey
from belcheer.workspace import open_workspace

SURVEY = "onstwedde-2016"

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def real(real_data, tmp_path_factory):
    from rio_cogeo.cogeo import cog_translate
    from rio_cogeo.profiles import cog_profiles

    from belcheer import zoning
    from belcheer.api import create_app

    folder = real_dataset(real_data, "farm_parcels_nl")
    root = tmp_path_factory.mktemp("real") / "ws"
    settings = Settings(workspace=root, secret_key="k" * 40)
    ws = open_workspace(root, settings)
    ws.save_survey(Survey(name=SURVEY, captures=(), epsg=32631))
    rec = ws.catalog.survey(SURVEY)
    ws.catalog.add_survey(SURVEY, rec.manifest, 32631, "2016-06-01", {}, replace=True)
    ws.catalog.set_published(SURVEY, True)
    cog = ws.product_path(SURVEY, "ndvi")
    cog.parent.mkdir(parents=True, exist_ok=True)
    # the source is a striped GeoTIFF: make it a COG with overviews, as the indices stage would
    cog_translate(str(folder / "5-sentinel2-ndvi_demo.tif"), str(cog), cog_profiles.get("deflate"),
                  quiet=True, overview_level=3)
    ws.add_product(Product(id="", survey=SURVEY, kind=ProductKind.INDEX, name="ndvi", uri=cog, epsg=32631,
                           bands=(Band("ndvi"),)))
    zoning.import_parcels(ws, folder / "1-percelen.geojson", id_field="ID")
    zoning.survey_stats(ws, SURVEY, scheduler="synchronous")
    with TestClient(create_app(settings)) as client:
        yield ws, client, folder


def test_real_parcels_as_features_with_ndvi(real):
    ws, client, folder = real
    fc = client.get("/collections/parcels/items", params={"limit": 1000}).json()
    assert fc["numberMatched"] == 62
    src = pyogrio.read_dataframe(folder / "1-percelen.geojson")
    assert {str(int(v)) for v in src["ID"]} == {f["id"] for f in fc["features"]}
    # an independent zonal mean (rasterstats, all pixels whose centre is inside) per grassland parcel
    from rasterstats import zonal_stats

    grass = src[src["CROP"] == "Grasland"].to_crs(32631)
    ref = zonal_stats(grass, str(folder / "5-sentinel2-ndvi_demo.tif"), stats=["mean", "count"],
                      nodata=-3.4028234663852886e38)
    by_id = {f["id"]: f["properties"] for f in fc["features"]}
    compared = 0
    for (_, row), z in zip(grass.iterrows(), ref, strict=True):
        if z["count"] and z["count"] > 20:
            got = by_id[str(int(row["ID"]))]["ndvi_mean"]
            assert got == pytest.approx(z["mean"], abs=0.03), row["ID"]
            compared += 1
    assert compared >= 10
    assert all(0.0 < by_id[str(int(i))]["ndvi_mean"] < 1.0 for i in grass["ID"])


def test_real_tiles_stac_and_exports(real, tmp_path):
    ws, client, folder = real
    prod = ws.catalog.product(SURVEY, "ndvi")
    tj = client.get(f"/tiles/{prod.id}/tilejson.json").json()
    west, south, east, north = tj["bounds"]
    assert 6.9 < west < east < 7.2 and 52.9 < south < north < 53.2  # Onstwedde
    import morecantile

    t = morecantile.tms.get("WebMercatorQuad").tile((west + east) / 2, (south + north) / 2, 13)
    img = np.asarray(Image.open(io.BytesIO(client.get(f"/tiles/{prod.id}/13/{t.x}/{t.y}.png").content)).convert("RGBA"))
    # the raster holds data over the parcels only (7.5 % of its pixels): the tile is partly drawn
    drawn = img[..., 3] > 0
    assert 0.05 < drawn.mean() < 0.9
    assert img[..., :3][drawn].std() > 10  # a ramp, not a flat fill
    item = client.get(f"/stac/collections/{SURVEY}/items/{prod.id}").json()
    from pystac import STACObjectType
    from pystac.validation.stac_validator import JsonSchemaSTACValidator

    JsonSchemaSTACValidator().validate_core(item, STACObjectType.ITEM, item["stac_version"])
    assert item["properties"]["proj:code"] == "EPSG:32631"
    r = client.get("/export/parcels.shp", params={"survey": SURVEY, "crs": "utm"})
    zipfile.ZipFile(io.BytesIO(r.content)).extractall(tmp_path)
    shp = pyogrio.read_dataframe(tmp_path / "parcels.shp")
    assert len(shp) == 62 and shp.crs.to_epsg() == 32631
    assert "voor horntoen" in set(shp["name"])
    stats = client.get("/parcels/93950/stats", params={"index": "ndvi"}).json()
    assert stats["latest"]["survey"] == SURVEY and 0 < stats["latest"]["mean"] < 1

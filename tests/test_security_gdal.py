"""Hostile files against GDAL: no parcel or raster reader reaches another file or the network.

Each hostile file is built here: an OGR VRT and a GDALG pipeline (named .geojson, .vrt,
.gdalg.json or zipped as parcels.shp) reading a "secret" CSV beside them or /etc/passwd; VRTs
and a GeoJSON linked CRS pointing at a loopback HTTP server started by the test, which records
every request it gets.
"""

from __future__ import annotations

import http.server
import io
import json
import threading
import zipfile
from pathlib import Path

import pyogrio
import pytest
import rasterio
from fastapi.testclient import TestClient
from test_api_helpers import build_workspace, token

from belcheer import gdalenv
from belcheer.api import create_app
from belcheer.errors import InputError
from belcheer.zoning import read_parcels

SECRET = "SECRET-TOKEN-7f3a"
POLY = "POLYGON((106.9 47.9,106.91 47.9,106.91 47.91,106.9 47.91,106.9 47.9))"


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: list[str]

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.hits.append(self.path)
        body = b'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],' \
               b'PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]]'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(monkeypatch):
    """A loopback HTTP server on a free port; yields (base URL, list of paths requested)."""
    monkeypatch.delenv("no_proxy", raising=False)  # libcurl would bypass GDAL's proxy for these
    monkeypatch.delenv("NO_PROXY", raising=False)
    hits: list[str] = []
    handler = type("Handler", (_Recorder,), {"hits": hits})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", hits
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def secret_csv(tmp_path: Path) -> Path:
    path = tmp_path / "secret.csv"
    path.write_text(f'wkt,parcel_id,name\n"{POLY}",S1,{SECRET}\n', encoding="utf-8")
    return path


def _ogr_vrt(source: str) -> str:
    layer = Path(source.split(":")[-1]).stem
    return (f'<OGRVRTDataSource><OGRVRTLayer name="{layer}"><SrcDataSource>{source}</SrcDataSource>'
            '<GeometryType>wkbPolygon</GeometryType><GeometryField encoding="WKT" field="wkt"/>'
            '<LayerSRS>EPSG:4326</LayerSRS></OGRVRTLayer></OGRVRTDataSource>')


def _gdalg(vrt_path: Path) -> str:
    return json.dumps({"type": "gdal_streamed_alg", "relative_paths_relative_to_this_file": False,
                       "command_line": f"gdal vector pipeline ! read {vrt_path} ! write --of stream x"})


def _hostile_files(tmp: Path, secret: Path) -> dict[str, Path]:
    vrt = tmp / "secret.vrt"
    vrt.write_text(_ogr_vrt(str(secret)))
    files = {"vrt": vrt}
    files["vrt-as-geojson"] = tmp / "vrt.geojson"
    files["vrt-as-geojson"].write_text(_ogr_vrt(str(secret)))
    files["gdalg"] = tmp / "pipe.gdalg.json"
    files["gdalg"].write_text(_gdalg(vrt))
    files["gdalg-as-geojson"] = tmp / "parcels.geojson"
    files["gdalg-as-geojson"].write_text(_gdalg(vrt))
    files["passwd-vrt"] = tmp / "passwd.vrt"
    files["passwd-vrt"].write_text(_ogr_vrt("CSV:/etc/passwd"))
    zipped = tmp / "parcels.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("parcels.shp", _ogr_vrt(str(secret)))
        zf.writestr("parcels.dbf", b"")
    files["vrt-as-zipped-shp"] = zipped
    return files


def test_gdal_itself_would_read_the_secret(tmp_path, secret_csv):
    """The hostile files are real: a plain pyogrio (in a process that never imported belcheer)
    reads the secret through the GDALG named .geojson and the zipped VRT named parcels.shp."""
    import subprocess
    import sys

    files = _hostile_files(tmp_path, secret_csv)
    code = ("import sys, pyogrio; print(list(pyogrio.read_dataframe(sys.argv[1])['name']), "
            "list(pyogrio.read_dataframe('/vsizip/' + sys.argv[2] + '/parcels.shp')['name']))")
    out = subprocess.run([sys.executable, "-c", code, str(files["gdalg-as-geojson"]),
                          str(files["vrt-as-zipped-shp"])], capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == f"['{SECRET}'] ['{SECRET}']", out.stderr[-500:]


@pytest.mark.parametrize("kind", ["vrt", "vrt-as-geojson", "gdalg", "gdalg-as-geojson", "passwd-vrt",
                                  "vrt-as-zipped-shp"])
def test_parcel_reader_refuses_virtual_formats(tmp_path, secret_csv, kind):
    path = _hostile_files(tmp_path, secret_csv)[kind]
    with pytest.raises(InputError) as err:
        read_parcels(path)
    text = str(err.value)
    assert SECRET not in text and "root:" not in text
    assert "virtual dataset" in text or "content is" in text


def test_cli_parcels_import_refuses_vrt_and_gdalg(tmp_path, secret_csv):
    """``belcheer parcels import passwd.vrt`` / ``pipe.gdalg.json``, in a fresh process."""
    import shutil
    import subprocess
    import sys

    files = _hostile_files(tmp_path, secret_csv)
    exe = shutil.which("belcheer", path=str(Path(sys.executable).parent))
    for kind in ("passwd-vrt", "gdalg", "gdalg-as-geojson"):
        out = subprocess.run([exe, "-w", str(tmp_path / "ws"), "parcels", "import", str(files[kind])],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == InputError.exit_code, (kind, out.stdout, out.stderr[-500:])
        assert "virtual dataset" in out.stdout + out.stderr
        assert SECRET not in out.stdout + out.stderr


@pytest.fixture
def api(tmp_path):
    ws, settings = build_workspace(tmp_path / "ws")
    with TestClient(create_app(settings)) as client:
        yield ws, client


def test_upload_of_gdalg_or_vrt_publishes_nothing(api, tmp_path, secret_csv):
    ws, client = api
    files = _hostile_files(tmp_path, secret_csv)
    officer = token(client, "officer")
    before = ws.catalog.current_parcel_version().version
    for kind, name in (("gdalg-as-geojson", "parcels.geojson"), ("passwd-vrt", "parcels.geojson"),
                       ("vrt-as-zipped-shp", "parcels.zip")):
        r = client.post("/parcels/upload", headers=officer,
                        files={"file": (name, files[kind].read_bytes(), "application/octet-stream")})
        assert r.status_code == 422, (kind, r.text)
        assert SECRET not in r.text and "root:" not in r.text
    assert ws.catalog.current_parcel_version().version == before
    items = client.get("/collections/parcels/items").text
    assert SECRET not in items and "root:x:" not in items


def test_skipped_drivers_are_gone_from_gdal(tmp_path, secret_csv):
    gdalenv.lock_drivers()
    assert not set(gdalenv.SKIPPED_DRIVERS) & set(pyogrio.list_drivers())
    vrt = _hostile_files(tmp_path, secret_csv)["vrt"]
    with pytest.raises(pyogrio.errors.DataSourceError):
        pyogrio.read_dataframe(vrt)  # even pyogrio called directly cannot open it now


# -- the network ----------------------------------------------------------------------------
def _linked_crs_geojson(url: str) -> str:
    return json.dumps({"type": "FeatureCollection",
                       "crs": {"type": "link", "properties": {"href": f"{url}/crs.wkt", "type": "ogcwkt"}},
                       "features": [{"type": "Feature", "properties": {"parcel_id": "L1"},
                                     "geometry": {"type": "Polygon", "coordinates": [[
                                         [106.9, 47.9], [106.91, 47.9], [106.91, 47.91], [106.9, 47.9]]]}}]})


def test_linked_crs_is_refused_and_never_fetched(tmp_path, server, api):
    url, hits = server
    path = tmp_path / "linked.geojson"
    path.write_text(_linked_crs_geojson(url))
    with pytest.raises(InputError, match="link"):
        read_parcels(path)
    ws, client = api
    r = client.post("/parcels/upload", headers=token(client, "officer"),
                    files={"file": ("linked.geojson", path.read_bytes(), "application/geo+json")})
    assert r.status_code == 422
    # GDAL's own GeoJSON reader, called directly, cannot fetch it either: importing belcheer put
    # the dead proxy into the environment both bundled GDALs read
    pyogrio.read_dataframe(path)
    assert hits == []


def test_vsicurl_in_vrts_never_connects(tmp_path, server):
    url, hits = server
    raster_vrt = tmp_path / "remote.vrt"
    raster_vrt.write_text(
        '<VRTDataset rasterXSize="10" rasterYSize="10"><VRTRasterBand dataType="Byte" band="1">'
        f'<SimpleSource><SourceFilename>/vsicurl/{url}/x.tif</SourceFilename><SourceBand>1</SourceBand>'
        '</SimpleSource></VRTRasterBand></VRTDataset>')
    with pytest.raises(rasterio.errors.RasterioError):
        with rasterio.open(raster_vrt) as ds:  # no allow-list here: the configuration alone stops it
            ds.read(1)
    with pytest.raises(pyogrio.errors.DataSourceError):
        pyogrio.read_dataframe(f"/vsicurl/{url}/parcels.geojson")
    (tmp_path / "remote-vector.vrt").write_text(_ogr_vrt(f"/vsicurl/{url}/x.csv"))
    with pytest.raises(InputError):
        read_parcels(tmp_path / "remote-vector.vrt")
    assert hits == []


def test_user_rasters_open_with_the_allow_list_only(tmp_path):
    from belcheer.api.safety import check_raster
    from belcheer.ingest.quality import _read_decimated_gdal

    # a VRT named like a frame that reads /etc/passwd as pixels: GDAL alone would open it
    vrt = tmp_path / "frame.tif"
    vrt.write_text('<VRTDataset rasterXSize="16" rasterYSize="1"><VRTRasterBand dataType="Byte" band="1" '
                   'subClass="VRTRawRasterBand"><SourceFilename relativeToVRT="0">/etc/passwd</SourceFilename>'
                   '<ImageOffset>0</ImageOffset><PixelOffset>1</PixelOffset><LineOffset>16</LineOffset>'
                   '</VRTRasterBand></VRTDataset>')
    with rasterio.open(vrt) as ds:
        assert ds.driver == "VRT" and ds.read(1).shape == (1, 16)
    with pytest.raises(InputError, match="not a raster this server reads"):
        check_raster(vrt, 10**9)
    with pytest.raises(InputError, match="not a raster this server reads"):
        _read_decimated_gdal(vrt)


def test_proj_is_offline():
    import os

    import pyproj.network

    gdalenv.lock_drivers()
    assert os.environ["PROJ_NETWORK"] == "OFF"
    assert pyproj.network.is_network_enabled() is False


def test_upload_of_a_plain_geojson_still_works(api):
    ws, client = api
    doc = {"type": "FeatureCollection", "crs": {"type": "name", "properties": {
        "name": "urn:ogc:def:crs:OGC:1.3:CRS84"}}, "features": [
        {"type": "Feature", "properties": {"parcel_id": "G1", "soum": "Батсүмбэр"},
         "geometry": {"type": "Polygon", "coordinates": [[[106.9, 47.9], [106.91, 47.9], [106.91, 47.91],
                                                           [106.9, 47.9]]]}}]}
    r = client.post("/parcels/upload", headers=token(client, "officer"),
                    files={"file": ("ok.geojson", io.BytesIO(json.dumps(doc).encode()), "application/geo+json")})
    assert r.status_code == 201, r.text
    assert r.json()["count"] == 1

"""Map tiles, TileJSON, legends, point values and product downloads (wiring only)."""

from __future__ import annotations

from collections.abc import Iterator
from email.utils import format_datetime
from typing import Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from belcheer.api import data, tiles
from belcheer.api.auth import User
from belcheer.api.deps import base_url, current_user, settings, workspace
from belcheer.models import Product
from belcheer.storage import CHUNK, FileStore
from belcheer.workspace import Workspace

router = APIRouter(tags=["tiles"])
COG_MEDIA = "image/tiff; application=geotiff; profile=cloud-optimized"


def content_disposition_header(filename: str) -> str:
    """``attachment`` with the name in RFC 5987 form (survey names may be Cyrillic)."""
    return f"attachment; filename*=utf-8''{quote(filename)}"


def _tile_lookup(ws: Workspace, user: User, product_id: str, z: int, x: int, y: int,
                 fmt: str) -> tuple[Product, str]:
    product = data.visible_product(ws, user, product_id)
    tiles.check_tile_index(z, x, y)
    return product, tiles.tile_etag(product, ws.stores, z, x, y, fmt)


@router.get("/tiles/{product_id}/{z}/{x}/{y}.{fmt}", response_class=Response,
            responses={200: {"content": {"image/png": {}, "image/webp": {}}}, 304: {}, 404: {}})
async def tile(request: Request, product_id: str, z: int = Path(ge=0, le=30), x: int = Path(ge=0),
               y: int = Path(ge=0), fmt: Literal["png", "webp"] = "png", ws: Workspace = Depends(workspace),
               user: User = Depends(current_user), cfg=Depends(settings)) -> Response:
    """One WebMercatorQuad tile of a product (transparent outside its data)."""
    # the catalog lookup and ETag in the shared thread pool, so a revalidation (304) never
    # waits behind tiles being rendered; the rendering through the render slots
    product, etag = await run_in_threadpool(_tile_lookup, ws, user, product_id, z, x, y, fmt)
    cache = "public, max-age=3600" if user.anonymous else "private, max-age=3600"
    headers = {"ETag": etag, "Cache-Control": cache, "Vary": "Authorization"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    body = await tiles.run_render(tiles.render_tile, product, ws.stores, z, x, y, fmt, cfg.max_raster_bytes)
    return Response(body, media_type=tiles.FORMATS[fmt][1], headers=headers)


@router.get("/tiles/{product_id}/tilejson.json")
def tilejson(request: Request, product_id: str, fmt: Literal["png", "webp"] = "png",
             ws: Workspace = Depends(workspace), user: User = Depends(current_user)) -> dict:
    """TileJSON 3.0 of a product's tiles."""
    product = data.visible_product(ws, user, product_id)
    return tiles.tilejson(product, ws.stores, f"{base_url(request)}/tiles/{product_id}", fmt)


@router.get("/legend/{product_id}")
def legend(product_id: str, lang: Literal["mn", "en"] = "mn", ws: Workspace = Depends(workspace),
           user: User = Depends(current_user)) -> dict:
    """What a product's colours mean: class swatches (I–V) or a ramp with its end values."""
    return tiles.legend(data.visible_product(ws, user, product_id), ws.stores, lang)


@router.get("/point")
def point(lon: float = Query(ge=-180, le=180), lat: float = Query(ge=-90, le=90),
          survey: str | None = None, ws: Workspace = Depends(workspace),
          user: User = Depends(current_user)) -> dict:
    """Values of a survey's products at a WGS 84 point (latest visible survey by default)."""
    name = survey or data.latest_survey(ws, user)
    if name is None:
        return {"survey": None, "lon": lon, "lat": lat, "products": []}
    data.visible_survey(ws, user, name)
    products = ws.catalog.products(name)
    return {"survey": name, "lon": lon, "lat": lat,
            "products": tiles.point_values(products, ws.stores, lon, lat)}


@router.get("/products/{product_id}/download", response_class=Response,
            responses={200: {"content": {COG_MEDIA: {}}}, 304: {}, 404: {}})
def download(request: Request, product_id: str, ws: Workspace = Depends(workspace),
             user: User = Depends(current_user)) -> Response:
    """The product's COG streamed from its store with ETag and Last-Modified; one HTTP byte
    range (``Range: bytes=a-b``, ``a-`` or ``-n``; 206, or 416 beyond the end) from any store,
    so a slow link can resume. A product whose object is gone: 404 naming it."""
    product = data.visible_product(ws, user, product_id)
    source = tiles.product_source(product, ws.stores)
    filename = f"{product.survey}-{product.name}.tif"
    if isinstance(source.store, FileStore):
        return FileResponse(source.gdal_path, media_type=COG_MEDIA, filename=filename)
    etag = f'"{source.info.etag}"'
    size = source.info.size
    headers = {"ETag": etag, "Last-Modified": format_datetime(source.info.last_modified, usegmt=True),
               "Content-Length": str(size), "Accept-Ranges": "bytes",
               "Content-Disposition": content_disposition_header(filename)}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={k: headers[k] for k in ("ETag", "Last-Modified")})
    wanted = request.headers.get("range")
    if wanted and request.headers.get("if-range", etag) == etag:
        span = byte_range(wanted, size)
        if span is False:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
        if span is not None:
            body = source.store.open(product.uri, span)
            headers.update({"Content-Length": str(span[1] - span[0] + 1),
                            "Content-Range": f"bytes {span[0]}-{span[1]}/{size}"})
            return StreamingResponse(_chunks(body), status_code=206, media_type=COG_MEDIA, headers=headers)
    body = source.store.open(product.uri)
    return StreamingResponse(_chunks(body), media_type=COG_MEDIA, headers=headers)


def byte_range(header: str, size: int) -> tuple[int, int] | None | Literal[False]:
    """The one byte range (first, last; inclusive) an HTTP ``Range`` header asks of ``size``
    bytes; None to send the whole object (not a bytes range, or several ranges); False when it
    starts beyond the end (416)."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if first == "":
            n = int(last)
            return None if n <= 0 else (max(0, size - n), size - 1) if size else False
        a = int(first)
        b = int(last) if last else None
    except ValueError:
        return None
    if a < 0 or (b is not None and b < a):
        return None
    if a >= size:
        return False
    return a, size - 1 if b is None else min(b, size - 1)


def _chunks(body) -> Iterator[bytes]:
    try:
        while chunk := body.read(CHUNK):
            yield chunk
    finally:
        body.close()

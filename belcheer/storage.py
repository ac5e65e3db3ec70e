"""Where product rasters live, chosen from one URL (``BELCHEER_STORAGE``), as the catalog is.

``file:///ABS/PATH`` (or unset: the workspace folder itself, today's layout
``surveys/<survey>/products/<name>.tif``, so existing workspaces keep working) opens a
:class:`FileStore`; ``s3://BUCKET/PREFIX`` opens :class:`belcheer.storage_s3.S3Store`, configured by
the usual AWS names (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL`` or
``AWS_S3_ENDPOINT``, ``AWS_REGION``, ``AWS_VIRTUAL_HOSTING=FALSE`` for path-style servers such as
SeaweedFS or MinIO). Anything else is a :class:`~belcheer.errors.ConfigError` naming the URL with
credentials masked.

A product is known by its URI (``file:///abs/x.tif`` or ``s3://bucket/key``, :attr:`Product.uri`).
Every store offers the same verbs:

* :meth:`ProductStore.writing` — a local temporary file to write a finished COG to; only when the
  block succeeds does it become the object (file: renamed into place; S3: uploaded, the object
  appearing only once complete). A failed block leaves nothing.
* :meth:`~ProductStore.stat` (size in bytes, ETag, last-modified UTC), :meth:`~ProductStore.open`
  (a byte stream, for downloads), :meth:`~ProductStore.delete`, :meth:`~ProductStore.list`.
* :meth:`~ProductStore.gdal_path` and :meth:`~ProductStore.gdal_env` — the name GDAL opens
  (a local path or ``/vsis3/bucket/key``) and the ``rasterio.Env`` that lets GDAL reach it with
  range requests (belcheer's GDAL refuses every URL otherwise, see :mod:`belcheer.gdalenv`).
* :meth:`~ProductStore.local_copy` — a local file for readers that need one (whole-raster stages
  handing paths to exactextract or Dask workers): the file itself, or a copy cached by ETag.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

from belcheer.errors import ConfigError, ProductMissingError, StorageError, UnsafePathError
from belcheer.fileio import atomic_path, confined

if TYPE_CHECKING:  # pragma: no cover
    from belcheer.models import Product

#: the chunk size of streamed reads and copies, bytes
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ObjectInfo:
    """What a store knows of one object: its URI, size (bytes), ETag (opaque, without quotes;
    changes whenever the content does) and last modification (UTC)."""

    uri: str
    size: int
    etag: str
    last_modified: datetime


@runtime_checkable
class ProductStore(Protocol):
    """The product-storage seam: a file folder or an S3 bucket prefix."""

    #: the store's URL as configured, credentials masked (for messages)
    url: str

    def uri(self, key: str) -> str:
        """The URI of ``key`` (a relative, ``/``-separated name such as
        ``surveys/s/products/ndvi.tif``) in this store."""
        ...

    def owns(self, uri: str) -> bool:
        """True if ``uri`` lies inside this store."""
        ...

    def writing(self, uri: str) -> contextlib.AbstractContextManager[Path]:
        """A local temporary path to write to; put at ``uri`` only if the block succeeds."""
        ...

    def put(self, local: Path, uri: str, *, keep: bool = False) -> ObjectInfo:
        """Store the finished local file ``local`` at ``uri`` atomically (readers see the old
        object or the new one, never a part); ``local`` is consumed unless ``keep`` (an input,
        such as a frame, is only ever copied)."""
        ...

    def stat(self, uri: str) -> ObjectInfo:
        """Size, ETag and last-modified of ``uri``; ProductMissingError if there is none."""
        ...

    def open(self, uri: str, byte_range: tuple[int, int] | None = None) -> BinaryIO:
        """A byte stream of the whole object, or of bytes ``start``…``end`` (inclusive, as in an
        HTTP Range) of it (close it); ProductMissingError if there is none."""
        ...

    def delete(self, uri: str) -> None:
        """Remove ``uri`` (no error if it is already gone)."""
        ...

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Every object whose key starts with ``prefix`` (relative to the store), sorted by URI."""
        ...

    def gdal_path(self, uri: str) -> str:
        """The name GDAL opens ``uri`` by (a local path, or ``/vsis3/bucket/key``)."""
        ...

    def gdal_env(self, uri: str) -> contextlib.AbstractContextManager[object]:
        """A ``rasterio.Env`` in which GDAL may read ``uri`` (range requests for S3)."""
        ...

    def local_copy(self, uri: str) -> contextlib.AbstractContextManager[Path]:
        """A local file with the content of ``uri``, for readers that need a file on disk."""
        ...


def file_uri(path: str | os.PathLike[str]) -> str:
    """``file:///abs/path`` of a local path (percent-encoded, as :meth:`Path.as_uri`)."""
    return Path(os.path.abspath(path)).as_uri()


def uri_path(uri: str) -> Path:
    """The local path of a ``file://`` URI (also accepts a plain absolute path, as old catalog
    rows hold); StorageError for any other scheme."""
    if "://" not in uri:
        return Path(uri)
    parts = urlsplit(uri)
    if parts.scheme != "file":
        raise StorageError(f"{uri} is not a local file (it is in {parts.scheme}:// storage); "
                           "read it through the workspace's store (ws.open_product)")
    return Path(unquote(parts.path))


def _etag_of(st: os.stat_result) -> str:
    return hashlib.blake2b(f"{st.st_mtime_ns}|{st.st_size}|{st.st_ino}".encode(),
                           digest_size=10).hexdigest()


class _Slice(io.RawIOBase):
    """At most ``length`` bytes of an open file, from where it stands."""

    def __init__(self, f: BinaryIO, length: int) -> None:
        self._f, self._left = f, max(0, int(length))

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        n = self._left if size is None or size < 0 else min(size, self._left)
        data = self._f.read(n) if n else b""
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._f.close()
        super().close()


class FileStore:
    """Products as files below a folder (by default the workspace root: today's layout)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self.url = self.root.as_uri()

    def __repr__(self) -> str:
        return f"FileStore({self.url!r})"

    def uri(self, key: str) -> str:
        return file_uri(confined(self.root, Path(*key.split("/"))))

    def path(self, uri: str) -> Path:
        """The local file of ``uri``, required inside the store's folder."""
        try:
            return confined(self.root, uri_path(uri))
        except UnsafePathError as e:
            raise StorageError(f"{uri} is outside the product store {self.url}") from e

    def owns(self, uri: str) -> bool:
        try:
            self.path(uri)
        except StorageError:
            return False
        return True

    @contextlib.contextmanager
    def writing(self, uri: str) -> Iterator[Path]:
        target = self.path(uri)
        with atomic_path(target) as tmp:  # written beside the target, renamed into place
            yield tmp

    def put(self, local: Path, uri: str, *, keep: bool = False) -> ObjectInfo:
        target = self.path(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            if keep:
                shutil.copyfile(local, tmp)
            else:
                shutil.move(str(local), tmp)
        return self.stat(uri)

    def stat(self, uri: str) -> ObjectInfo:
        path = self.path(uri)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise ProductMissingError(f"{path} is missing from the product store {self.url}",
                                      uri=uri) from None
        return ObjectInfo(uri=uri, size=st.st_size, etag=_etag_of(st),
                          last_modified=datetime.fromtimestamp(st.st_mtime, UTC))

    def open(self, uri: str, byte_range: tuple[int, int] | None = None) -> BinaryIO:
        path = self.path(uri)
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            raise ProductMissingError(f"{path} is missing from the product store {self.url}",
                                      uri=uri) from None
        if byte_range is None:
            return f
        f.seek(byte_range[0])
        return _Slice(f, byte_range[1] - byte_range[0] + 1)

    def delete(self, uri: str) -> None:
        self.path(uri).unlink(missing_ok=True)

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        out = []
        for p in sorted(self.root.rglob("*")):
            rel = p.relative_to(self.root).as_posix()
            if p.is_file() and rel.startswith(prefix) and not p.name.startswith("."):
                out.append(self.stat(p.as_uri()))
        return out

    def gdal_path(self, uri: str) -> str:
        return str(self.path(uri))

    def gdal_env(self, uri: str) -> contextlib.AbstractContextManager[object]:
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def local_copy(self, uri: str) -> Iterator[Path]:
        self.stat(uri)  # ProductMissingError naming it, rather than GDAL's message
        yield self.path(uri)


STORAGE_SCHEMES = ("file", "s3")


def storage_scheme(url: str) -> str:
    """The kind of store a URL names: ``file`` or ``s3``; ConfigError otherwise."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in STORAGE_SCHEMES:
        return scheme
    from belcheer.catalog_url import mask_url

    raise ConfigError(f"BELCHEER_STORAGE={mask_url(url)} is not a storage URL; use file:///PATH "
                      "(the default: the workspace folder) or s3://BUCKET/PREFIX")


def open_store(url: str | None, root: Path) -> ProductStore:
    """Open the product store ``url`` names (None: files in the workspace ``root``).

    An S3 store is checked before anything is written: a bucket that cannot be reached, or
    credentials it refuses, are a ConfigError naming the URL and endpoint with secrets masked.
    """
    if not url:
        return FileStore(root)
    if storage_scheme(url) == "file":
        path = Path(unquote(urlsplit(url).path or "")) if url.lower().startswith("file:///") else \
            Path(url.split("://", 1)[1])
        return FileStore(path if path.is_absolute() else root / path)
    from belcheer.storage_s3 import S3Store

    return S3Store.from_url(url)


def frame_key(survey: str, relative: str | os.PathLike[str]) -> str:
    """The store key of a survey's frame file ``relative`` (its path below the ingested folder):
    ``surveys/<survey>/frames/<relative>``; parts that could climb out are left out."""
    from belcheer.fileio import safe_name

    parts = [p for p in Path(relative).parts if p not in ("", ".", "..") and p != Path(relative).anchor]
    return "/".join(["surveys", safe_name(survey), "frames", *parts])


def frame_file(path: Path, uri: str | None) -> Path:
    """The file to read a frame from on this machine: ``path`` when it is here, else the cached
    copy of its object ``uri`` in the store (a Dask worker on a machine that never saw the
    frames folder). The copy is named by URI and ETag, so every task on a worker shares one."""
    if uri is None or Path(path).is_file():
        return Path(path)
    if storage_scheme(uri) == "file":
        return uri_path(uri)
    return cached_download(_bucket_store(urlsplit(uri).netloc), uri, default_cache_dir())


@functools.lru_cache(maxsize=8)
def _bucket_store(bucket: str) -> ProductStore:
    # one client per bucket and process: opening one checks the bucket (a network round trip)
    return open_store(f"s3://{bucket}", Path.cwd())


def product_key(survey: str, name: str, suffix: str = ".tif") -> str:
    """The key of a survey's product in any store: ``surveys/<survey>/products/<name><suffix>``."""
    from belcheer.fileio import safe_name

    return f"surveys/{safe_name(survey)}/products/{safe_name(name)}{suffix}"


@dataclass(frozen=True)
class ProductSource:
    """A product resolved for reading: the store holding it and what it knows of the object."""

    product: Product
    store: ProductStore
    info: ObjectInfo

    @property
    def gdal_path(self) -> str:
        return self.store.gdal_path(self.product.uri)

    def env(self) -> contextlib.AbstractContextManager[object]:
        return self.store.gdal_env(self.product.uri)

    @property
    def cache_key(self) -> tuple[str, str, int]:
        """Changes whenever the object does (URI, ETag, size)."""
        return (self.product.uri, self.info.etag, self.info.size)


class Stores:
    """The stores a workspace reads from: its configured store, and the workspace folder for
    products written before it was configured (file URIs)."""

    def __init__(self, primary: ProductStore, files: FileStore) -> None:
        self.primary, self.files = primary, files

    def of(self, uri: str, confined: bool = True) -> ProductStore:
        """The store holding ``uri``; StorageError when no configured store does. With
        ``confined`` False (the stages' own reads, not the server's), a file registered outside
        the workspace is read where it is, as before the product store."""
        for store in (self.primary, self.files):
            if store.owns(uri):
                return store
        if not confined and uri.startswith("file://"):
            return FileStore(uri_path(uri).parent)
        raise StorageError(f"{uri} is in no configured product store (BELCHEER_STORAGE is "
                           f"{self.primary.url}); set BELCHEER_STORAGE to the store that holds it")

    def source(self, product: Product, confined: bool = True) -> ProductSource:
        """``product`` resolved for reading; ProductMissingError (404) naming it when its object
        is gone, StorageError when its store cannot be reached (``confined``: see :meth:`of`)."""
        store = self.of(product.uri, confined)
        try:
            info = store.stat(product.uri)
        except ProductMissingError as e:
            raise ProductMissingError(
                f"product {product.name!r} of survey {product.survey!r} is registered but its file "
                f"{product.uri} is missing from the store; re-run the stage that makes it",
                uri=product.uri, product=product.name, survey=product.survey) from e
        return ProductSource(product, store, info)

    @contextlib.contextmanager
    def open_raster(self, product: Product, confined: bool = True) -> Iterator[Any]:
        """The product opened with rasterio (range requests for S3), closed after the block."""
        import rasterio

        src = self.source(product, confined)
        with src.env(), rasterio.open(src.gdal_path) as ds:
            yield ds

    @contextlib.contextmanager
    def local_file(self, product: Product) -> Iterator[Path]:
        """A local file of the product (the file itself, or an ETag-keyed copy of the object);
        for the stages, so unconfined (see :meth:`of`)."""
        src = self.source(product, confined=False)
        with src.store.local_copy(product.uri) as path:
            yield path

    def local_path(self, product: Product) -> Path:
        """Like :meth:`local_file`, for lazy readers that outlive a block: the file itself, or
        the cached copy (kept until the object changes or the cache is cleared)."""
        src = self.source(product, confined=False)
        if isinstance(src.store, FileStore):
            return src.store.path(product.uri)
        return cached_download(src.store, product.uri, default_cache_dir())


def cached_download(store: ProductStore, uri: str, cache_dir: Path) -> Path:
    """Download ``uri`` once into ``cache_dir`` (named by URI and ETag, written atomically), so
    readers of an unchanged object share one local copy and a replaced one gets a new copy."""
    info = store.stat(uri)
    digest = hashlib.blake2b(f"{uri}|{info.etag}|{info.size}".encode(), digest_size=12).hexdigest()
    suffix = Path(urlsplit(uri).path).suffix or ".bin"
    target = cache_dir / f"{digest}{suffix}"
    if target.exists() and target.stat().st_size == info.size:
        target.touch()  # recently used: the last the pruning takes
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp, store.open(uri) as src, open(tmp, "wb") as out:
        shutil.copyfileobj(src, out, CHUNK)
    prune_cache(cache_dir, cache_max_bytes(), keep=target)
    return target


#: a cached copy used more recently than this (seconds) is never pruned: a lazy reader (Dask
#: chunks of a running stage) may still open it by path
CACHE_GRACE_S = 3600.0


def prune_cache(cache_dir: Path, max_bytes: int, *, keep: Path | None = None,
                grace_s: float = CACHE_GRACE_S) -> list[Path]:
    """Delete the least recently used copies in ``cache_dir`` until it holds at most
    ``max_bytes``, sparing ``keep`` and copies used within ``grace_s`` seconds (so the folder
    may stay above the limit while they are in use). Returns the deleted files."""
    import time

    files = []
    for f in cache_dir.iterdir():
        if not f.is_file() or f.name.startswith("."):  # atomic_path's temporary files
            continue
        try:
            st = f.stat()
        except FileNotFoundError:
            continue
        files.append((st.st_mtime, st.st_size, f))
    total = sum(size for _, size, _ in files)
    now, gone = time.time(), []
    for mtime, size, f in sorted(files, key=lambda t: t[0]):
        if total <= max_bytes:
            break
        if f == keep or now - mtime < grace_s:
            continue
        f.unlink(missing_ok=True)
        total -= size
        gone.append(f)
    return gone


def cache_max_bytes() -> int:
    """The local-copy cache's size limit: ``BELCHEER_CACHE_MAX_GB`` gigabytes (default 20)."""
    return int(float(os.environ.get("BELCHEER_CACHE_MAX_GB") or 20) * 1024 ** 3)


def default_cache_dir() -> Path:
    """Where local copies of remote products are kept (``BELCHEER_CACHE_DIR`` or the temp dir)."""
    return Path(os.environ.get("BELCHEER_CACHE_DIR") or Path(tempfile.gettempdir()) / "belcheer-cache")

"""Guards for everything a user hands the server: paths, rasters, archives, uploads.

GDAL can read far more than rasters (VRTs that point at /etc/passwd, /vsicurl/ URLs…), so any file
a user supplies is opened only with an allow-list of drivers and after its header's size is checked.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import numpy as np
import rasterio

from belcheer import gdalenv
from belcheer.errors import InputError, TooLargeError, UnsafePathError
from belcheer.fileio import confined, safe_name
from belcheer.storage import ProductSource

#: GDAL raster drivers a user-supplied raster may be opened with (no VRT, no network)
RASTER_DRIVERS: tuple[str, ...] = gdalenv.RASTER_DRIVERS
#: the first bytes of the image files we accept from users
_MAGIC: tuple[bytes, ...] = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+", b"\xff\xd8\xff",
                             b"\x89PNG")
#: archive limits: entries, total uncompressed bytes, compression ratio per entry
MAX_ZIP_ENTRIES = 20_000
MAX_ZIP_RATIO = 200.0
_CHUNK = 1024 * 1024


def refuse_vsi(name: str) -> str:
    """Refuse names GDAL would treat as virtual filesystems or connection strings."""
    if any(ord(c) < 32 or c == "\x7f" for c in name):
        raise UnsafePathError(f"{name!r} holds control characters (a NUL byte, a line break…); "
                              "give a plain folder name", code="error.path.control", name=repr(name)[1:-1])
    low = name.strip().lower()
    if low.startswith(("/vsi", "vsi", "http:", "https:", "ftp:", "pg:", "<")) or "://" in low:
        raise UnsafePathError(f"{name!r} names a virtual or remote source; give a plain file")
    return name


def allowed_folder(name: str, roots: Sequence[Path]) -> Path:
    """A server-side folder a user named, resolved and required inside one of ``roots``."""
    refuse_vsi(name)
    if not roots:
        raise UnsafePathError("this server allows no server-side folders (Settings.allowed_roots "
                              "is empty); upload the frames instead")
    for root in roots:
        try:
            path = confined(root, name)
        except UnsafePathError:
            continue
        if path.resolve().is_relative_to(Path(root).resolve()):
            if not path.is_dir():
                raise InputError(f"{name!r} is not a folder inside the allowed roots")
            escape = link_out_of(path, roots)
            if escape is not None:
                raise UnsafePathError(f"{escape} inside {name!r} is a symlink to a place outside the "
                                      "folders this server may read; remove the link or copy the frames in",
                                      code="error.path.symlink_out", link=str(escape), name=name)
            return path
    raise UnsafePathError(f"{name!r} is outside the folders this server may read "
                          f"({', '.join(str(r) for r in roots)})")


def link_out_of(folder: Path, roots: Sequence[Path]) -> Path | None:
    """The first path below ``folder`` whose real location (symlinks resolved) is outside every
    root, or None. Links are resolved, never walked into, so a loop costs nothing."""
    real_roots = [Path(r).resolve() for r in roots]
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p.is_symlink() and not any(p.resolve().is_relative_to(r) for r in real_roots):
                return p
    return None


def has_image_magic(head: bytes) -> bool:
    """True if ``head`` starts like a TIFF, JPEG or PNG file."""
    return any(head.startswith(m) for m in _MAGIC)


def check_raster(path: Path, max_bytes: int) -> None:
    """Open ``path`` with the driver allow-list only and refuse it if its pixels exceed ``max_bytes``.

    Reads only the header: width × height × bands × bytes per sample.
    """
    refuse_vsi(str(path))
    try:
        driver = gdalenv.raster_driver(path)
        with rasterio.open(path, driver=driver) as ds:
            size = ds.width * ds.height * ds.count * max(
                np.dtype(dt).itemsize for dt in ds.dtypes)
    except (rasterio.errors.RasterioIOError, OSError) as exc:
        raise InputError(f"{path.name} is not a raster this server reads (GeoTIFF, COG, JPEG): {exc}") from exc
    if size > max_bytes:
        raise TooLargeError(f"{path.name} would need {size / 1e9:.1f} GB in memory, more than the "
                            f"limit of {max_bytes / 1e9:.1f} GB (Settings.max_raster_bytes)")


def check_raster_source(source: ProductSource, max_bytes: int) -> None:
    """:func:`check_raster` for a product in object storage: the first bytes are read from the
    store (the driver allow-list), the header through GDAL with range requests (the size limit)."""
    name = source.product.name
    with source.store.open(source.product.uri) as fh:
        head = fh.read(4)
    driver = next((d for magic, d in gdalenv.RASTER_MAGIC.items() if head.startswith(magic)), None)
    if driver is None:
        raise InputError(f"product {name!r} is not a raster this server reads (GeoTIFF, COG or JPEG); "
                         f"its first bytes are {head!r}", code="error.raster.format", name=name)
    try:
        with source.env(), rasterio.open(source.gdal_path, driver=driver) as ds:
            size = ds.width * ds.height * ds.count * max(np.dtype(dt).itemsize for dt in ds.dtypes)
    except (rasterio.errors.RasterioIOError, OSError) as exc:
        raise InputError(f"product {name!r} is not a raster this server reads: {exc}") from exc
    if size > max_bytes:
        raise TooLargeError(f"product {name!r} would need {size / 1e9:.1f} GB in memory, more than the "
                            f"limit of {max_bytes / 1e9:.1f} GB (Settings.max_raster_bytes)")


def copy_limited(src: BinaryIO, dest: Path, max_file: int, budget: int) -> int:
    """Copy a stream to ``dest`` in chunks, refusing it past ``max_file`` or the remaining ``budget``.

    Returns the bytes written; a refused file is removed.
    """
    written = 0
    try:
        with open(dest, "wb") as out:
            while chunk := src.read(_CHUNK):
                written += len(chunk)
                if written > max_file:
                    raise TooLargeError(f"{dest.name} is larger than the per-file limit of "
                                        f"{max_file} bytes (Settings.max_upload_file_bytes)")
                if written > budget:
                    raise TooLargeError("the upload is larger than the total limit "
                                        "(Settings.max_upload_total_bytes)")
                out.write(chunk)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return written


def upload_name(filename: str | None) -> str:
    """The last component of a client-supplied file name, checked (no folders, no '..')."""
    name = PurePosixPath((filename or "").replace("\\", "/")).name
    return safe_name(name)


def check_zip(zf: zipfile.ZipFile, max_total: int) -> list[zipfile.ZipInfo]:
    """Refuse archives with absolute or ``..`` members, too many entries, or zip-bomb ratios."""
    infos = zf.infolist()
    if len(infos) > MAX_ZIP_ENTRIES:
        raise TooLargeError(f"the archive has {len(infos)} entries, more than {MAX_ZIP_ENTRIES}")
    total = 0
    for info in infos:
        name = info.filename.replace("\\", "/")
        parts = PurePosixPath(name).parts
        if name.startswith("/") or (parts and ":" in parts[0]) or ".." in parts:
            raise UnsafePathError(f"archive member {info.filename!r} would be written outside the "
                                  "upload folder; re-create the zip with relative paths")
        total += info.file_size
        if info.compress_size and info.file_size / info.compress_size > MAX_ZIP_RATIO:
            raise TooLargeError(f"archive member {info.filename!r} expands {info.file_size / info.compress_size:.0f}×; "
                                "refusing a likely zip bomb")
    if total > max_total:
        raise TooLargeError(f"the archive expands to {total} bytes, more than {max_total}")
    return infos


def extract_zip(path: Path, dest: Path, max_total: int) -> list[Path]:
    """Extract a checked zip into ``dest`` (flat member names kept in their folders). Returns files."""
    out: list[Path] = []
    with zipfile.ZipFile(path) as zf:
        for info in check_zip(zf, max_total):
            if info.is_dir():
                continue
            target = confined(dest, info.filename.replace("\\", "/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as fh:
                shutil.copyfileobj(src, fh, _CHUNK)
            out.append(target)
    return out


def image_files(paths: Iterable[Path]) -> list[Path]:
    """Those of ``paths`` that start like an image (the rest are not frames)."""
    keep = []
    for p in paths:
        with open(p, "rb") as fh:
            if has_image_magic(fh.read(8)):
                keep.append(p)
    return keep

"""Receiving files: drone frames streamed into a job folder, parcel layers imported as a version.

Every name is reduced to its last component and checked; every byte counted against the limits in
Settings (413 past them); archives are checked before extraction; only recognised file types are
handed to GDAL.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from fastapi import UploadFile

from belcheer import zoning
from belcheer.api import safety
from belcheer.api.auth import User
from belcheer.config import Settings
from belcheer.errors import InputError
from belcheer.workspace import Workspace

#: first bytes of the vector files we accept: GeoPackage (SQLite), GeoJSON (JSON), zipped Shapefile
_VECTOR_MAGIC = {b"SQLite format 3\x00": ".gpkg", b"PK\x03\x04": ".zip"}


def save_frames(ws: Workspace, cfg: Settings, files: list[UploadFile], dest: Path) -> dict[str, Any]:
    """Stream uploaded frames (or zips of frames) into ``dest``; returns counts. 413 past the limits."""
    budget = cfg.max_upload_total_bytes
    written, names = 0, []
    for up in files:
        name = safety.upload_name(up.filename)
        target = dest / name
        n = safety.copy_limited(up.file, target, cfg.max_upload_file_bytes, budget - written)
        written += n
        if name.lower().endswith(".zip"):
            try:
                extracted = safety.extract_zip(target, dest, budget - written)
            finally:
                target.unlink(missing_ok=True)
            names += [str(p.relative_to(dest)) for p in safety.image_files(extracted)]
            for p in set(extracted) - set(safety.image_files(extracted)):
                p.unlink(missing_ok=True)
            continue
        with open(target, "rb") as fh:
            if not safety.has_image_magic(fh.read(8)):
                target.unlink()
                raise InputError(f"{name} is not a TIFF or JPEG frame")
        names.append(name)
    if not names:
        raise InputError("the upload holds no image frames (TIFF or JPEG)")
    return {"files": len(names), "bytes": written}


def _vector_suffix(head: bytes) -> str:
    for magic, suffix in _VECTOR_MAGIC.items():
        if head.startswith(magic):
            return suffix
    if head.lstrip()[:1] == b"{":
        return ".geojson"
    raise InputError("a parcel layer must be a GeoPackage, a GeoJSON file or a zipped Shapefile")


def receive_parcel_file(ws: Workspace, cfg: Settings, up: UploadFile, user: User,
                        layer: str | None = None, id_field: str | None = None) -> dict[str, Any]:
    """Import an uploaded parcel layer as a new parcel version; returns version and count."""
    safety.upload_name(up.filename)
    with tempfile.TemporaryDirectory(prefix="belcheer-parcels-", dir=ws.path("jobs")) as tmp:
        raw = Path(tmp) / "upload.bin"
        safety.copy_limited(up.file, raw, cfg.max_upload_file_bytes, cfg.max_upload_total_bytes)
        with open(raw, "rb") as fh:
            suffix = _vector_suffix(fh.read(32))
        path = raw.rename(raw.with_suffix(suffix))
        if suffix == ".zip":
            folder = Path(tmp) / "unzipped"
            files = safety.extract_zip(path, folder, cfg.max_upload_total_bytes)
            shps = [f for f in files if f.suffix.lower() == ".shp"]
            if len(shps) != 1:
                raise InputError("the zip must hold exactly one .shp (with its .dbf, .shx and .prj)")
            path = shps[0]
        result = zoning.import_parcels(ws, path, layer=layer, id_field=id_field, user=user.username)
        ws.catalog.audit(user.username, "parcels.import", "parcels", None,
                         {"file": up.filename, "version": result.version, "count": len(result.frame)})
        return {"version": result.version, "count": int(len(result.frame)), "report": result.report}


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)

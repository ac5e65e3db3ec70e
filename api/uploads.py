"""Receiving files: drone frames streamed into a job folder, parcel layers imported as a version.

Every name is reduced to its last component and checked; every byte counted against the limits in
Settings (413 past them); archives are checked before extraction; only recognised file types are
handed to GDAL.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import pandas as pd
from fastapi import UploadFile

from belcheer import zoning
from belcheer.api import data, safety
from belcheer.api.auth import User
from belcheer.config import Settings
from belcheer.errors import ConflictError, InputError, PermissionDeniedError
from belcheer.workspace import Workspace
from belcheer.zoning.parcels import sniff_vector_driver

#: the suffix an uploaded parcel file is stored under, by the driver its content calls for
_DRIVER_SUFFIX = {"GPKG": ".gpkg", "GeoJSON": ".geojson", "ESRI Shapefile": ".shp",
                  "FlatGeobuf": ".fgb", "KML": ".kml", "CSV": ".csv"}
#: how an uploaded layer meets the current one: ``replace`` the uploader's scope (their soum, or
#: for an admin the soum they name or the whole layer), or ``merge`` into it (same ids replaced)
UploadMode = Literal["replace", "merge"]


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


def _vector_suffix(head: bytes, filename: str) -> str:
    """``.zip`` or the suffix of the one vector driver the content calls for (InputError else)."""
    if head.startswith(b"PK\x03\x04"):
        return ".zip"
    if head.startswith(b"\x00\x00\x27\x0a"):
        raise InputError("a Shapefile is several files (.shp, .dbf, .shx, .prj): upload them zipped",
                         code="error.parcels.shapefile_zip")
    return _DRIVER_SUFFIX[sniff_vector_driver(head, filename)]


def upload_scope(user: User, soum: str | None) -> str | None:
    """The soum an upload may touch: an officer's own (naming another is refused), the one an
    admin names, or None (the whole layer) for an admin who names none or an officer with no soum."""
    soum = (soum or "").strip() or None
    if user.at_least("admin") or (user.role == "officer" and not user.soum):
        return soum
    if soum is not None and soum != user.soum:
        raise PermissionDeniedError(f"officer {user.username!r} uploads parcels of soum {user.soum!r} "
                                    f"only, not of {soum!r}", code="error.upload.soum_other",
                                    username=user.username, soum=user.soum, other=soum)
    return user.soum


def _soums(frame: pd.DataFrame) -> pd.Series:
    if "soum" not in frame.columns:
        return pd.Series("", index=frame.index)
    return frame["soum"].fillna("").astype(str).str.strip()


def scoped_layer(current: gpd.GeoDataFrame, new: gpd.GeoDataFrame, scope: str | None,
                 mode: UploadMode) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    """The layer after an upload: ``new`` (parcels with no soum get ``scope``) replacing the
    current parcels of ``scope`` (all of them when None) or, with ``merge``, those with the same
    ids. Refuses parcels of another soum (403) and ids held by a kept parcel of another soum (409).
    Returns the layer (EPSG:4326) and counts for the audit log."""
    new = new.copy()
    if scope is not None:
        blank = _soums(new) == ""
        new.loc[blank, "soum"] = scope
        other = sorted(set(_soums(new)) - {scope})
        if other:
            raise PermissionDeniedError(f"the file holds parcels of soum(s) {', '.join(other[:5])}; this "
                                        f"upload may add or replace parcels of soum {scope!r} only",
                                        code="error.upload.soum_file", soums=", ".join(other[:5]), soum=scope)
    cur_ids = current["parcel_id"].astype(str)
    new_ids = set(new["parcel_id"].astype(str))
    if mode == "merge":
        drop = cur_ids.isin(new_ids)
        if scope is not None:
            foreign = drop & (_soums(current) != scope)
            if foreign.any():
                ids = ", ".join(sorted(cur_ids[foreign])[:5])
                raise PermissionDeniedError(f"parcel(s) {ids} belong to another soum than {scope!r}; they "
                                            "cannot be replaced from here", code="error.upload.soum_foreign",
                                            ids=ids, soum=scope)
    else:
        drop = pd.Series(True, index=current.index) if scope is None else _soums(current) == scope
    kept = current.loc[~drop]
    clash = sorted(set(kept["parcel_id"].astype(str)) & new_ids)
    if clash:
        raise ConflictError(f"parcel id(s) {', '.join(clash[:5])} are already used by parcels of another "
                            "soum; give the new parcels other ids", code="error.upload.id_clash",
                            ids=", ".join(clash[:5]))
    # an empty part is left out: its all-text columns (no layer yet) would turn the new
    # parcels' numbers into text
    parts = [p.to_crs(4326) for p in (kept, new) if len(p)]
    layer = pd.concat(parts, ignore_index=True) if parts else new.to_crs(4326)
    layer = gpd.GeoDataFrame(layer, geometry="geometry", crs=4326)
    return layer, {"scope": scope, "mode": mode, "before": int(len(current)), "removed": int(drop.sum()),
                   "kept": int(len(kept)), "added": int(len(new)), "after": int(len(layer))}


def receive_parcel_file(ws: Workspace, cfg: Settings, up: UploadFile, user: User,
                        layer: str | None = None, id_field: str | None = None,
                        mode: UploadMode = "replace", soum: str | None = None) -> dict[str, Any]:
    """Import an uploaded parcel layer as a new parcel version, scoped to the uploader's soum
    (:func:`upload_scope`); returns version, count and what was replaced."""
    filename = safety.upload_name(up.filename)
    scope = upload_scope(user, soum)
    with tempfile.TemporaryDirectory(prefix="belcheer-parcels-", dir=ws.path("jobs")) as tmp:
        raw = Path(tmp) / "upload.bin"
        safety.copy_limited(up.file, raw, cfg.max_upload_file_bytes, cfg.max_upload_total_bytes)
        with open(raw, "rb") as fh:
            suffix = _vector_suffix(fh.read(64 * 1024), filename)
        path = raw.rename(raw.with_suffix(suffix))
        if suffix == ".zip":
            folder = Path(tmp) / "unzipped"
            files = safety.extract_zip(path, folder, cfg.max_upload_total_bytes)
            shps = [f for f in files if f.suffix.lower() == ".shp"]
            if len(shps) != 1:
                raise InputError("the zip must hold exactly one .shp (with its .dbf, .shx and .prj)")
            path = shps[0]
        result = zoning.read_parcels(path, layer=layer, id_field=id_field)
    merged, counts = scoped_layer(data.load_parcels(ws), result.frame, scope, mode)
    version = zoning.save_parcels(ws, merged, source=filename, user=user.username, report=result.report)
    result.report["version"] = version
    ws.catalog.audit(user.username, "parcels.upload", "parcels", None,
                     {"file": filename, "version": version, "count": int(len(result.frame)), **counts})
    return {"version": version, "count": int(len(result.frame)), "report": result.report, **counts}


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)

"""Parcel edits through the API: who may add or change which parcel, and how an edit becomes a
new parcel version with its audit entries. The routes in ``routes/features.py`` only wire these."""

from __future__ import annotations

from typing import Any

import pandas as pd

from belcheer.api import data, features
from belcheer.api.auth import User
from belcheer.errors import ConflictError, InputError, NotFoundError, PermissionDeniedError
from belcheer.workspace import Workspace


def may_edit(user: User, row: pd.Series | dict) -> None:
    """Herders touch their own group's parcels, officers their soum's, admins any; else
    PermissionDeniedError naming the rule."""
    if user.at_least("admin"):
        return
    if user.role == "officer":
        if user.soum and str(row.get("soum") or "") != user.soum:
            raise PermissionDeniedError(f"officer {user.username!r} edits parcels of soum {user.soum!r} only")
        return
    if user.role == "herder":
        if not user.group or str(row.get("user_group") or "") != user.group:
            raise PermissionDeniedError(f"herder {user.username!r} adds parcels of user group "
                                        f"{user.group!r} only")
        return
    raise PermissionDeniedError("this role cannot edit parcels")


def audit_props(row: pd.Series) -> dict:
    """A parcel row as the audit log keeps it: JSON-safe properties and the geometry as WKT."""
    out = data.feature_properties(row)
    out["geometry_wkt"] = row.geometry.wkt if row.geometry is not None else None
    return out


def add_parcels(ws: Workspace, user: User, doc: Any) -> dict:
    """Add the parcels of a GeoJSON Feature or FeatureCollection (CRS84) as a new version; ids
    that exist are a ConflictError (edit those instead). Each addition is audited."""
    new = features.parcels_from_geojson(doc)
    if user.role == "herder" and user.group:
        new["user_group"] = new["user_group"].fillna(user.group) if "user_group" in new else user.group
    new = data.normalise(new)
    for _, row in new.iterrows():
        may_edit(user, row)
    current = data.load_parcels(ws)
    clash = set(new["parcel_id"]) & set(current["parcel_id"].astype(str))
    if clash:
        raise ConflictError(f"parcel id(s) {sorted(clash)[:5]} already exist; edit them with PUT instead")
    merged = pd.concat([current, new.to_crs(current.crs or 4326)], ignore_index=True)
    version = data.save_parcels(ws, merged.set_crs(4326, allow_override=True), source="api", user=user)
    for _, row in new.iterrows():
        ws.catalog.audit(user.username, "parcel.add", f"parcel:{row['parcel_id']}", None, audit_props(row))
    return {"version": version, "added": list(new["parcel_id"])}


def edit_parcel(ws: Workspace, user: User, parcel_id: str, doc: Any) -> dict:
    """Replace one parcel's geometry and the attributes the Feature sends, as a new version
    (area recomputed in its UTM zone); the audit log keeps before and after. The user must
    may-edit both the parcel as it was and as it will be."""
    new = features.parcels_from_geojson({**doc, "properties": {**(doc.get("properties") or {}),
                                                               "parcel_id": parcel_id}}
                                        if isinstance(doc, dict) else doc)
    if len(new) != 1:
        raise InputError("send exactly one Feature to edit a parcel")
    current = data.load_parcels(ws)
    hit = current.index[current["parcel_id"].astype(str) == parcel_id]
    if len(hit) == 0:
        raise NotFoundError(f"no parcel with id {parcel_id!r}")
    before = current.loc[hit[0]]
    may_edit(user, before)
    row = new.iloc[0]
    may_edit(user, row)
    updated = current.copy()
    sent = set((doc.get("properties") or {}) if isinstance(doc, dict) else {})
    for col in new.columns:
        if col in sent and col not in ("geometry", "parcel_id", "area_ha"):
            updated.loc[hit[0], col] = row[col]
    updated.loc[hit[0], "geometry"] = row.geometry
    updated.loc[hit[0], "area_ha"] = float(data.normalise(new)["area_ha"].iloc[0])
    version = data.save_parcels(ws, updated, source="api", user=user)
    ws.catalog.audit(user.username, "parcel.edit", f"parcel:{parcel_id}", audit_props(before),
                     audit_props(updated.loc[hit[0]]))
    return {"version": version, "edited": parcel_id}

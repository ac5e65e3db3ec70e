"""STAC catalogue routes (wiring only)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from belcheer.api import data, stac
from belcheer.api.auth import User
from belcheer.api.deps import base_url, current_user, workspace
from belcheer.errors import NotFoundError
from belcheer.workspace import Workspace

router = APIRouter(prefix="/stac", tags=["stac"])

#: product kinds published as STAC items
STAC_KINDS = ("orthomosaic", "reflectance", "index", "condition", "biomass", "landcover", "zones",
              "change", "dsm")


def _items(ws: Workspace, rec, base: str) -> list:
    return [stac.product_item(p, rec, ws.stores, base) for p in ws.catalog.products(rec.name)
            if p.kind.value in STAC_KINDS]


@router.get("")
def catalog(request: Request, ws: Workspace = Depends(workspace),
            user: User = Depends(current_user)) -> dict:
    """The root STAC Catalog: one child Collection per visible survey."""
    return stac.root_catalog(data.visible_surveys(ws, user), base_url(request))


@router.get("/collections/{survey}")
def collection(survey: str, request: Request, ws: Workspace = Depends(workspace),
               user: User = Depends(current_user)) -> dict:
    """One survey as a STAC Collection."""
    rec = data.visible_survey(ws, user, survey)
    base = base_url(request)
    return stac.to_dict(stac.survey_collection(rec, _items(ws, rec, base), base))


@router.get("/collections/{survey}/items")
def items(survey: str, request: Request, ws: Workspace = Depends(workspace),
          user: User = Depends(current_user)) -> dict:
    """All items of a survey as a FeatureCollection."""
    rec = data.visible_survey(ws, user, survey)
    feats = [stac.to_dict(i) for i in _items(ws, rec, base_url(request))]
    return {"type": "FeatureCollection", "features": feats}


@router.get("/collections/{survey}/items/{item_id}")
def item(survey: str, item_id: str, request: Request, ws: Workspace = Depends(workspace),
         user: User = Depends(current_user)) -> dict:
    """One product as a STAC Item."""
    rec = data.visible_survey(ws, user, survey)
    product = ws.catalog.product_by_id(item_id)
    if product.survey != rec.name:
        raise NotFoundError(f"survey {survey!r} has no item {item_id!r}")
    return stac.to_dict(stac.product_item(product, rec, ws.stores, base_url(request)))

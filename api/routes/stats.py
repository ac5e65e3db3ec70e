"""Surveys, per-parcel statistics and soum/aimag roll-ups (wiring only)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request

from belcheer.api import data, summaries
from belcheer.api.auth import User
from belcheer.api.deps import base_url, current_user, require, settings, workspace
from belcheer.workspace import Workspace

router = APIRouter(tags=["statistics"])


@router.get("/surveys")
def surveys(request: Request, ws: Workspace = Depends(workspace),
            user: User = Depends(current_user)) -> list[dict]:
    """Surveys visible to you, oldest first, with their products and tile URLs."""
    base = base_url(request)
    internal = user.at_least("officer")
    return [summaries.survey_doc(ws, r, base, internal) for r in data.visible_surveys(ws, user)]


@router.get("/surveys/{survey}")
def survey(survey: str, request: Request, ws: Workspace = Depends(workspace),
           user: User = Depends(current_user)) -> dict:
    """One survey: date, CRS, summary and products."""
    return summaries.survey_doc(ws, data.visible_survey(ws, user, survey), base_url(request),
                                user.at_least("officer"))


@router.get("/surveys/{survey}/summary")
def survey_summary(survey: str, ws: Workspace = Depends(workspace),
                   user: User = Depends(current_user)) -> dict:
    """Parcel statistics of a survey summed up: mean index values, class shares, capacity."""
    rec = data.visible_survey(ws, user, survey)
    return summaries.survey_summary(ws, rec)


@router.post("/surveys/{survey}/publish")
def publish(survey: str, published: bool = True, ws: Workspace = Depends(workspace),
            user: User = Depends(require("officer"))) -> dict:
    """Make a survey visible to the public (or hide it again)."""
    ws.catalog.set_published(survey, published)
    ws.catalog.audit(user.username, "survey.publish", f"survey:{survey}", None, {"published": published})
    return {"survey": survey, "published": published}


@router.get("/parcels/{parcel_id}/stats")
def parcel_stats(parcel_id: str, index: str = "ndvi", ws: Workspace = Depends(workspace),
                 user: User = Depends(current_user)) -> dict:
    """One index's statistics of a parcel: the latest survey and the whole time series."""
    names = {r.name for r in data.visible_surveys(ws, user)}
    return summaries.parcel_series(ws, parcel_id, index, names)


@router.get("/rollup")
def rollup(level: Literal["soum", "aimag", "bag"] = "soum", survey: str | None = None,
           ws: Workspace = Depends(workspace), user: User = Depends(current_user),
           cfg=Depends(settings)) -> list[dict]:
    """Parcels summed up per soum, aimag or bag — pasture and cropland apart: area, capacity,
    registered livestock, balance, and the soum's NSO-registered herd when configured."""
    from belcheer.zoning.registry import livestock_or_none

    if survey is not None:
        data.visible_survey(ws, user, survey)
    return summaries.rollup(ws, level, survey, livestock_or_none(cfg.nso_data))

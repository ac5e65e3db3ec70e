"""Sign-in (OAuth2 password flow) and user management (wiring only)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, Field

from belcheer.api import auth
from belcheer.api.auth import User
from belcheer.api.deps import current_user, require, settings, workspace
from belcheer.workspace import Workspace

router = APIRouter(tags=["auth"])


class NewUser(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=8, max_length=256)
    role: Literal["public", "herder", "officer", "admin"]
    soum: str | None = None
    group: str | None = None


@router.post("/token")
def token(request: Request, form: OAuth2PasswordRequestForm = Depends(),
          ws: Workspace = Depends(workspace), cfg=Depends(settings)) -> JSONResponse:
    """Exchange a user name and password for a bearer token (also set as an HttpOnly cookie)."""
    user = auth.authenticate(ws, form.username, form.password)
    tok = auth.issue_token(user, request.app.state.secret, cfg.token_minutes)
    resp = JSONResponse({"access_token": tok, "token_type": "bearer", "role": user.role,
                         "expires_in": cfg.token_minutes * 60})
    resp.set_cookie("belcheer_token", tok, max_age=cfg.token_minutes * 60, httponly=True, samesite="strict")
    return resp


@router.post("/logout")
def logout() -> JSONResponse:
    resp = JSONResponse({"ok": True})
    resp.delete_cookie("belcheer_token")
    return resp


@router.get("/me")
def me(user: User = Depends(current_user)) -> dict:
    """Who you are signed in as (anonymous visitors are the public role)."""
    return {"username": user.username or None, "role": user.role, "soum": user.soum, "group": user.group}


@router.get("/users")
def list_users(ws: Workspace = Depends(workspace), user: User = Depends(require("admin"))) -> list[dict]:
    """All users (without password hashes)."""
    return [{k: v for k, v in u.items() if k != "password_hash"} for u in ws.catalog.users()]


@router.post("/users", status_code=201)
def create_user(body: NewUser, ws: Workspace = Depends(workspace),
                user: User = Depends(require("admin"))) -> dict:
    """Create a user (admins)."""
    new = auth.add_user(ws, body.username, body.password, body.role, body.soum, body.group)
    ws.catalog.audit(user.username, "user.add", f"user:{new.username}", None,
                     {"role": new.role, "soum": new.soum, "group": new.group})
    return {"username": new.username, "role": new.role, "soum": new.soum, "group": new.group}

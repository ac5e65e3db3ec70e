"""Request dependencies: the workspace, settings, job runner and the signed-in user, parsed once."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from starlette.concurrency import run_in_threadpool

from belcheer.api.auth import ANONYMOUS, User, require_role, user_from_token
from belcheer.api.jobs import JobRunner
from belcheer.config import Settings
from belcheer.errors import AuthError
from belcheer.workspace import Workspace

oauth2 = OAuth2PasswordBearer(tokenUrl="/token", auto_error=False)


# async although they never wait: FastAPI runs a plain ``def`` dependency in its thread pool,
# one thread hop per dependency per request, for what is an attribute lookup
async def workspace(request: Request) -> Workspace:
    return request.app.state.ws


async def settings(request: Request) -> Settings:
    return request.app.state.settings


async def runner(request: Request) -> JobRunner:
    return request.app.state.runner


def base_url(request: Request) -> str:
    """This server's URL without a trailing slash (for absolute links): Settings.public_url, else
    the request's own only when its Host is in Settings.trusted_hosts, else the address the
    connection arrived on (a client-chosen Host never reaches a link)."""
    cfg: Settings = request.app.state.settings
    if cfg.public_url:
        return cfg.public_url.rstrip("/")
    host = request.headers.get("host", "").rsplit(":", 1)[0].strip("[]").lower()
    trusted = {h.lower() for h in cfg.trusted_hosts}
    if "*" in trusted or (host and host in trusted):
        return str(request.base_url).rstrip("/")
    server = request.scope.get("server")
    scheme = request.url.scheme
    root = request.scope.get("root_path", "").rstrip("/")
    if not server:
        return root
    addr, port = server[0], server[1]
    addr = f"[{addr}]" if ":" in str(addr) else addr
    default = {"http": 80, "https": 443}.get(scheme)
    return f"{scheme}://{addr}{'' if port in (None, default) else f':{port}'}{root}"


async def current_user(request: Request, token: str | None = Depends(oauth2)) -> User:
    """The user named by the bearer token (or the ``belcheer_token`` cookie), else anonymous."""
    # anonymous requests (most tiles) are answered here; a token means a catalog read, which
    # goes to the thread pool so it never blocks the event loop
    ws, secret = request.app.state.ws, request.app.state.secret
    if token:
        return await run_in_threadpool(user_from_token, ws, token, secret)
    cookie = request.cookies.get("belcheer_token")
    if not cookie:
        return ANONYMOUS
    try:
        return await run_in_threadpool(user_from_token, ws, cookie, secret)
    except AuthError:
        return ANONYMOUS  # a stale session cookie must not lock a visitor out of public pages


def require(role: str) -> Callable[..., User]:
    """A dependency that lets through users holding at least ``role`` (401/403 otherwise)."""

    async def dep(user: User = Depends(current_user)) -> User:  # pure check: no thread hop
        return require_role(user, role)

    dep.__name__ = f"require_{role}"
    return dep

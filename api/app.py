"""The FastAPI application: wires settings, workspace, job runner, error mapping and routes.

Routes only wire; raster, vector and job logic live in the flat modules beside this one.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from belcheer.api.auth import secret_key
from belcheer.api.jobs import JobRunner
from belcheer.api.messages import DEFAULT_LANG, error_texts, negotiate, t
from belcheer.api.pages import STATIC_DIR
from belcheer.api.responses import document_errors
from belcheer.config import Settings
from belcheer.errors import BelcheerError, TooLargeError
from belcheer.workspace import open_workspace

log = logging.getLogger(__name__)


class BodyLimit:
    """Refuse request bodies larger than ``limit`` bytes with 413, counting as they stream in
    (a lying or missing Content-Length does not help)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            resp = _error(TooLargeError(f"the request body ({int(declared)} bytes) is larger than the "
                                        f"limit of {self.limit} bytes (Settings.max_upload_total_bytes)",
                                        code="error.upload.too_large", limit=self.limit), _lang(scope))
            return await resp(scope, receive, send)
        seen = 0
        cut = False

        async def counted() -> Message:
            nonlocal seen, cut
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    cut = True
                    raise TooLargeError(f"the request body is larger than the limit of {self.limit} bytes",
                                        code="error.upload.too_large", limit=self.limit)
            return msg

        started = False

        async def guarded(msg: Message) -> None:
            nonlocal started
            if cut:
                return  # whatever the app makes of a body cut short (FastAPI: 400) gives way to the 413
            started = started or msg["type"] == "http.response.start"
            await send(msg)

        try:
            await self.app(scope, counted, guarded)
        except TooLargeError:
            if not cut:
                raise
        if cut and not started:
            resp = _error(TooLargeError(f"the request body is larger than the limit of {self.limit} bytes "
                                        "(Settings.max_upload_total_bytes); send less at once",
                                        code="error.upload.too_large", limit=self.limit), _lang(scope))
            await resp(scope, receive, send)


#: response headers of every HTML page: no sniffing, no framing, no third-party scripts, no
#: referrer with parcel ids leaving the site
HTML_HEADERS: dict[str, str] = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data: blob:; worker-src 'self' blob:; connect-src 'self'; "
                               "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
#: FastAPI's own documentation pages load Swagger UI / ReDoc from their CDN: no CSP there
_DOC_PATHS = ("/docs", "/redoc")


class SecurityHeaders:
    """``X-Content-Type-Options: nosniff`` on every response and :data:`HTML_HEADERS` on HTML."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        docs = str(scope.get("path", "")).startswith(_DOC_PATHS)

        async def with_headers(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                headers = list(msg.get("headers") or [])
                names = {k.lower() for k, _ in headers}
                extra = {"X-Content-Type-Options": "nosniff"}
                ctype = dict(headers).get(b"content-type", b"")
                if ctype.startswith(b"text/html") and not docs:
                    extra.update(HTML_HEADERS)
                headers += [(k.lower().encode(), v.encode()) for k, v in extra.items()
                            if k.lower().encode() not in names]
                msg = {**msg, "headers": headers}
            await send(msg)

        await self.app(scope, receive, with_headers)


def _error(exc: BelcheerError, lang: str = DEFAULT_LANG) -> JSONResponse:
    """THE mapping of belcheer errors to HTTP: each class's ``http_status``, its message as detail,
    and for people its catalogue ``code`` and ``message`` in the request's language."""
    headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
    texts = error_texts(exc)
    return JSONResponse({"detail": str(exc), "error": type(exc).__name__, "code": texts["code"],
                         "message": texts["messages"][lang]}, status_code=exc.http_status, headers=headers)


def _lang(request: Request | Scope) -> str:
    req = request if isinstance(request, Request) else Request(request)
    return negotiate(req.query_params.get("lang"), req.headers.get("accept-language"))


def create_app(settings: Settings | None = None) -> FastAPI:
    """The belcheer web app over ``settings.workspace``: API, tiles, STAC, features and web map."""
    settings = settings or Settings()
    ws = open_workspace(settings.workspace, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runner: JobRunner = app.state.runner
        runner.reopen()
        resumed = runner.resume()
        if resumed:
            log.info("resumed %d unfinished job(s): %s", len(resumed), ", ".join(resumed))
        if runner.run_jobs:
            # jobs queued by a replica that runs none, or held by a worker that died elsewhere
            runner.poll_in_background(settings.job_poll_s)
        yield
        # jobs still running here go back to the queue, for another replica or the next start
        runner.close(requeue=True, timeout=settings.job_heartbeat_s)

    app = FastAPI(title="belcheer", version="0.1.0", lifespan=lifespan,
                  description="Drone maps of Mongolian pasture and cropland: tiles, STAC, parcels as OGC "
                              "API – Features, statistics, exports and pipeline jobs. "
                              "Бэлчээрийн газрын зураг, үзүүлэлт, даац.")
    app.state.settings = settings
    app.state.ws = ws
    app.state.runner = JobRunner(ws, slots=settings.job_slots, run_jobs=settings.run_jobs,
                                 heartbeat_s=settings.job_heartbeat_s,
                                 stale_after_s=settings.job_stale_after_s)
    app.state.secret = secret_key(settings, ws)

    @app.exception_handler(BelcheerError)
    async def _belcheer_error(request: Request, exc: BelcheerError) -> JSONResponse:
        return _error(exc, _lang(request))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
        return JSONResponse({"detail": errors, "error": "ValidationError", "code": "error.ValidationError",
                             "message": t("error.ValidationError", _lang(request))}, status_code=422)

    from belcheer.api.routes import auth, exports, features, jobs, pages, stac, stats, tiles

    for module in (pages, auth, tiles, stac, features, stats, exports, jobs):
        document_errors(module.router.routes)
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # the body limit sits outside the routes so nothing reads a too-large upload; the security
    # headers outside it, so its 413 carries them too
    app.add_middleware(BodyLimit, limit=settings.max_upload_total_bytes + 1024 * 1024)
    app.add_middleware(SecurityHeaders)
    return app


def serve(settings: Settings | None = None, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the app with uvicorn until interrupted (Ctrl-C)."""
    import uvicorn

    # keep-alive longer than uvicorn's 5 s default: a map keeps reusing its connections for tiles
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", proxy_headers=False,
                timeout_keep_alive=30)


def serve_in_background(workspace: str | Path, host: str = "127.0.0.1", port: int | None = None) -> str:
    """Serve ``workspace`` from a daemon thread (for notebooks) and return its base URL.

    One server per workspace and process: calling again returns the running one's URL. With no
    ``port`` a free loopback port is chosen.
    """
    import socket
    import threading
    import time

    import uvicorn

    root = Path(workspace).resolve()
    if root in _BACKGROUND:
        return _BACKGROUND[root]
    if port is None:
        with socket.socket() as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
    app = create_app(Settings(workspace=root))
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    threading.Thread(target=server.run, name=f"belcheer-serve-{port}", daemon=True).start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        raise RuntimeError(f"the map server did not start on {host}:{port}")
    _BACKGROUND[root] = f"http://{host}:{port}"
    return _BACKGROUND[root]


#: servers started by serve_in_background, by workspace (one per process: a notebook kernel
#: re-running a cell must not start a second server)
_BACKGROUND: dict[Path, str] = {}

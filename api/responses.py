"""Error responses as the OpenAPI document states them: one body schema, and on every route the
statuses its wiring can produce.

Every error the API sends is ``{"detail": …, "error": "<class>"}``: ``detail`` is the message
(a string) for belcheer's own errors and the list of field problems for request validation
(422), so the schema allows both. Which statuses a route can answer follows from how it is wired:
signed-in dependencies (401, 403), parameters (400, 404, 422), writes (409) and bodies (413).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.routing import BaseRoute


class FieldProblem(BaseModel):
    """One request-validation problem: where (``loc``), what (``msg``) and its ``type``."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    """The body of every error response."""

    detail: str | list[FieldProblem] = Field(description="what is wrong and, where there is one, the fix")
    error: str = Field(description="the error's class, e.g. InputError, NotFoundError")


_TEXT = {400: "Bad request: an unsafe path or name", 401: "Not signed in, or the token is invalid",
         403: "Signed in, but this role or soum may not do it", 404: "No such survey, product, parcel or job",
         409: "It already exists or clashes with what exists", 413: "Larger than the configured limit",
         422: "The input is unreadable or out of range"}


def _dependency_names(route: APIRoute) -> set[str]:
    names: set[str] = set()
    todo = list(route.dependant.dependencies)
    while todo:
        dep = todo.pop()
        names.add(getattr(dep.call, "__name__", ""))
        todo.extend(dep.dependencies)
    return names


def statuses(route: APIRoute) -> set[int]:
    """The error statuses ``route`` can answer, from its dependencies, parameters and method."""
    deps = _dependency_names(route)
    dependant = route.dependant
    has_params = bool(dependant.path_params or dependant.query_params or dependant.body_params
                      or dependant.header_params or dependant.cookie_params)
    out: set[int] = set()
    if "current_user" in deps or any(n.startswith("require_") for n in deps):
        out.add(401)  # a bad or expired token is refused even where anonymous is fine
    if any(n.startswith("require_") for n in deps):
        out.add(403)
    if has_params:
        out |= {400, 404, 422}
    if dependant.path_params:
        out.add(404)
    if route.methods & {"POST", "PUT", "PATCH", "DELETE"}:
        out |= {409, 413, 422}
    return out


def document_errors(routes: Iterable[BaseRoute]) -> None:
    """Add the error responses of :func:`statuses` (body :class:`ErrorBody`) to ``routes`` (a
    router's, before it is included in the app; idempotent)."""
    for route in routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        for status in sorted(statuses(route)):
            spec: dict[str, Any] = route.responses.setdefault(status, {})
            spec.setdefault("model", ErrorBody)
            spec.setdefault("description", _TEXT[status])
        # rebuild the per-route response fields FastAPI derives from ``responses``
        route.response_fields = {}
        for code, spec in route.responses.items():
            model = spec.get("model") if isinstance(spec, dict) else None
            if model is not None:
                from fastapi.utils import create_model_field

                route.response_fields[code] = create_model_field(
                    name=f"Response_{code}_{route.unique_id}", type_=model, mode="serialization")


def attachment(filename: str) -> str:
    """A Content-Disposition value for ``filename``: never the raw name (no quotes, CR/LF or
    non-ASCII reach the header) — an ASCII fallback and the RFC 6266 UTF-8 form."""
    ascii_name = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in filename)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"

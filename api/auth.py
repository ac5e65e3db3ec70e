"""Users, roles and tokens: argon2-hashed passwords and expiring JWTs (OAuth2 password flow).

Roles, from least to most trusted: ``public`` (published surveys only, read-only), ``herder``
(adds parcels of their own user group), ``officer`` (uploads surveys and parcels, runs jobs, edits
parcels of their soum) and ``admin`` (everything, manages users).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from belcheer.config import Settings
from belcheer.errors import AuthError, InputError, NotFoundError, PermissionDeniedError
from belcheer.workspace import Workspace

ROLES: tuple[str, ...] = ("public", "herder", "officer", "admin")
_ALGORITHM = "HS256"
_hasher = PasswordHasher()


@dataclass(frozen=True)
class User:
    """Who is asking. The anonymous visitor is ``User("", "public")``."""

    username: str
    role: str = "public"
    soum: str | None = None
    group: str | None = None

    @property
    def anonymous(self) -> bool:
        return not self.username

    def at_least(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


ANONYMOUS = User("")


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (salted; safe to store)."""
    return _hasher.hash(password)


def add_user(ws: Workspace, username: str, password: str, role: str, soum: str | None = None,
             group: str | None = None) -> User:
    """Create a user in the workspace catalog. Raises ConflictError if the name is taken."""
    if role not in ROLES:
        raise InputError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    if not username or len(username) > 64 or any(c.isspace() for c in username):
        raise InputError("a user name is 1–64 characters without spaces")
    if len(password) < 8:
        raise InputError("a password needs at least 8 characters")
    ws.catalog.add_user(username, hash_password(password), role, soum, group)
    return User(username, role, soum, group)


def _user(row: dict) -> User:
    return User(row["username"], row["role"], row.get("soum"), row.get("user_group"))


def authenticate(ws: Workspace, username: str, password: str) -> User:
    """The user whose name and password match, else AuthError (the same text either way)."""
    try:
        row = ws.catalog.user(username)
        _hasher.verify(row["password_hash"], password)
    except (NotFoundError, VerificationError, InvalidHashError) as exc:
        raise AuthError("wrong user name or password", code="error.auth.login") from exc
    return _user(row)


def secret_key(settings: Settings, ws: Workspace) -> str:
    """The token-signing secret: Settings.secret_key, else one generated once into the workspace."""
    if settings.secret_key:
        return settings.secret_key
    path: Path = ws.path("secret.key")
    if not path.exists():
        # O_EXCL: two server processes starting together cannot both write a different secret
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def issue_token(user: User, secret: str, minutes: int) -> str:
    """A signed JWT naming the user and role, expiring after ``minutes``."""
    now = datetime.now(UTC)
    claims = {"sub": user.username, "role": user.role, "iat": now,
              "exp": now + timedelta(minutes=minutes)}
    return jwt.encode(claims, secret, algorithm=_ALGORITHM)


def user_from_token(ws: Workspace, token: str, secret: str) -> User:
    """The user a token names (re-read from the catalog so role changes apply), else AuthError."""
    try:
        claims = jwt.decode(token, secret, algorithms=[_ALGORITHM], options={"require": ["exp", "sub"]})
    except jwt.ExpiredSignatureError as exc:
        raise AuthError("your session has expired; sign in again", code="error.auth.expired") from exc
    except jwt.PyJWTError as exc:
        raise AuthError("invalid token; sign in again", code="error.auth.invalid") from exc
    try:
        return _user(ws.catalog.user(str(claims["sub"])))
    except NotFoundError as exc:
        raise AuthError("the user of this token no longer exists", code="error.auth.gone") from exc


def require_role(user: User, role: str) -> User:
    """Return ``user`` if they hold at least ``role``: 401 when anonymous, 403 when too weak."""
    if user.at_least(role):
        return user
    if user.anonymous:
        raise AuthError(f"sign in first: this needs the {role} role", code="error.auth.sign_in", role=role)
    raise PermissionDeniedError(f"user {user.username!r} is a {user.role}; this needs the {role} role",
                                code="error.auth.role", username=user.username, user_role=user.role, role=role)

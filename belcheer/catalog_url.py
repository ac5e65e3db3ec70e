"""Which catalog backend a workspace uses, chosen from one URL (``BELCHEER_CATALOG``).

``sqlite:///ABS/PATH`` (or a relative ``sqlite://PATH``, taken below the workspace) opens the
embedded :class:`~belcheer.catalog.SQLiteCatalog`; unset, it is ``<workspace>/catalog.sqlite``.
``postgresql://USER:PASS@HOST:PORT/DB`` opens :class:`~belcheer.catalog_postgis.PostGISCatalog`.
Anything else, or a database that cannot be reached, is a :class:`~belcheer.errors.ConfigError`
naming the URL with its password masked.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from belcheer.catalog import Catalog, SQLiteCatalog
from belcheer.errors import ConfigError

#: the file name of the embedded catalog inside a workspace
DEFAULT_SQLITE_NAME = "catalog.sqlite"
POSTGRES_SCHEMES = ("postgresql", "postgres")


_PASSWORD_PARAM = re.compile(r"(password\s*=\s*)('[^']*'|[^&\s]*)", re.I)


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (safe for logs and error messages).

    Covers ``user:password@`` and libpq's ``?password=…`` and ``password=…`` (key/value) forms.
    """
    url = _PASSWORD_PARAM.sub(r"\1***", url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = f":{parts.port}" if _port(parts) is not None else ""
    return urlunsplit((parts.scheme, f"{user}:***@{host}{port}", parts.path, parts.query, parts.fragment))


def _port(parts) -> int | None:
    try:
        return parts.port
    except ValueError:
        return None


def catalog_scheme(url: str) -> str:
    """The backend a catalog URL names: ``sqlite`` or ``postgresql``; ConfigError otherwise."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "sqlite":
        return "sqlite"
    if scheme in POSTGRES_SCHEMES:
        return "postgresql"
    raise ConfigError(f"BELCHEER_CATALOG={mask_url(url)!s} is not a catalog URL; use "
                      "sqlite:///PATH (the default, <workspace>/catalog.sqlite) or "
                      "postgresql://USER:PASSWORD@HOST:PORT/DATABASE")


def sqlite_path(url: str, root: Path) -> Path:
    """The file a ``sqlite://`` URL names; a relative path is taken below the workspace ``root``."""
    rest = url.split("://", 1)[1].split("?", 1)[0]
    if not rest:
        return root / DEFAULT_SQLITE_NAME
    if rest.startswith("/"):  # sqlite:///abs and SQLAlchemy's sqlite:////abs alike
        rest = "/" + rest.lstrip("/")
    path = Path(rest).expanduser()
    return path if path.is_absolute() else root / path


def open_catalog(url: str | None, root: Path) -> Catalog:
    """Open the catalog ``url`` names (None: the workspace's embedded SQLite file).

    Fails with ConfigError, never a traceback, when the scheme is unknown or the database cannot be
    opened; the workspace ``root`` is only written to for a SQLite catalog that lives inside it.
    """
    if not url:
        url = f"sqlite:///{root / DEFAULT_SQLITE_NAME}"
    scheme = catalog_scheme(url)
    if scheme == "postgresql":
        from belcheer.catalog_postgis import PostGISCatalog

        return PostGISCatalog(url)
    path = sqlite_path(url, root)
    try:
        return SQLiteCatalog(path)
    except (OSError, sqlite3.Error) as e:
        raise ConfigError(f"cannot open the SQLite catalog {path} (BELCHEER_CATALOG={mask_url(url)}): {e}; "
                          "check the folder exists and is writable") from e

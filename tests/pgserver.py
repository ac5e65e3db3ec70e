"""A throw-away PostgreSQL 15 + PostGIS 3 server for tests: a real server, never a mock.

``initdb`` into a fresh folder under /tmp, ``pg_ctl start`` listening on 127.0.0.1 only, on a free
port, with its unix socket in the same folder; stopped and removed at the end of the session. The
Debian packages are postgresql-15 and postgresql-15-postgis-3 (``make system-test`` installs them).
PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` system user.
Each test gets its own database, copied from a template that already holds PostGIS (fast).
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from belcheer import localcluster as lc

PG_BIN = lc.PG_BIN
TEMPLATE = "belcheer_template"
#: the superuser's password: host connections need it (scram-sha-256), so a wrong one is refused
PASSWORD = "pg-test-Secret-7"


@dataclass
class PostgresServer:
    """A running throw-away cluster; :meth:`url` names a database in it."""

    root: Path
    port: int
    user: str = "postgres"
    options: str = ""
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    def url(self, database: str, password: str = PASSWORD) -> str:
        return f"postgresql://{self.user}:{password}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL through the unix socket as the superuser; a failure raises with psql's stderr."""
        return lc.psql(self.socket_dir, self.port, sql, PASSWORD, database=database)

    def new_database(self) -> str:
        """A fresh, empty database with PostGIS; returns its URL."""
        name = f"t{os.getpid()}_{next(self._ids)}"
        self.psql(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        return self.url(name)


def start() -> PostgresServer:
    """Start a cluster; raises RuntimeError naming what is missing or what failed."""
    lc.check_postgres()
    root = Path(tempfile.mkdtemp(prefix="belcheer-pg-"))
    lc.give_to_postgres(root)
    data = root / "data"
    lc.pg_initdb(data, PASSWORD)
    sock = root / "sock"
    sock.mkdir()
    lc.give_to_postgres(sock)
    last = ""
    for _ in range(3):  # the port may be taken between choosing and binding it
        port = lc.free_ports(1)[0]
        opts = lc.pg_options(port, sock, durable=False).replace("max_connections=100", "max_connections=60")
        try:
            lc.pg_start(data, opts, root / "server.log", PASSWORD)
        except RuntimeError as e:
            last = f"{e}\n{(root / 'server.log').read_text(errors='replace')[-2000:]}"
            continue
        server = PostgresServer(root=root, port=port, options=opts)
        try:
            server.psql(f"CREATE DATABASE {TEMPLATE}")
            server.psql("CREATE EXTENSION postgis", database=TEMPLATE)
        except BaseException:
            stop(server)
            raise
        return server
    shutil.rmtree(root, ignore_errors=True)
    raise RuntimeError(f"PostgreSQL did not start: {last}")


def halt(server: PostgresServer) -> None:
    """Kill the server as a power cut would (immediate shutdown: every connection drops)."""
    lc.pg_stop(server.root / "data", PASSWORD, mode="immediate")


def restart(server: PostgresServer) -> None:
    """Start a halted server again on its port, with its data."""
    lc.pg_start(server.root / "data", server.options, server.root / "server.log", PASSWORD)


def stop(server: PostgresServer) -> None:
    """Stop the cluster (fast shutdown) and remove its folder."""
    try:
        lc.pg_stop(server.root / "data", PASSWORD)
    finally:
        shutil.rmtree(server.root, ignore_errors=True)

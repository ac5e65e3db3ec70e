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
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

PG_BIN = Path(os.environ.get("BELCHEER_PG_BIN", "/usr/lib/postgresql/15/bin"))
POSTGIS_CONTROL = Path("/usr/share/postgresql/15/extension/postgis.control")
TEMPLATE = "belcheer_template"
#: the superuser's password: host connections need it (scram-sha-256), so a wrong one is refused
PASSWORD = "pg-test-Secret-7"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
        done = _run([str(PG_BIN / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(self.socket_dir),
                     "-p", str(self.port), "-U", self.user, "-d", database, "-At", "-c", sql], self.root)
        return done.stdout

    def new_database(self) -> str:
        """A fresh, empty database with PostGIS; returns its URL."""
        name = f"t{os.getpid()}_{next(self._ids)}"
        self.psql(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        return self.url(name)


def _as_postgres() -> dict:
    if os.geteuid() != 0:
        return {}
    pw = pwd.getpwnam("postgres")
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


def _run(cmd: list[str], root: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=root,
                          env={**os.environ, "LC_ALL": "C.UTF-8", "PGPASSWORD": PASSWORD},
                          **_as_postgres())
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:2])} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def start() -> PostgresServer:
    """Start a cluster; raises RuntimeError naming what is missing or what failed."""
    for need in (PG_BIN / "initdb", PG_BIN / "pg_ctl", POSTGIS_CONTROL):
        if not need.exists():
            raise RuntimeError(f"{need} is missing: install the Debian packages postgresql-15 and "
                               "postgresql-15-postgis-3 (make system-test does, as root)")
    root = Path(tempfile.mkdtemp(prefix="belcheer-pg-"))
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
    (root / "pwfile").write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        os.chown(root / "pwfile", pw.pw_uid, pw.pw_gid)
    data = root / "data"
    _run([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--pwfile", str(root / "pwfile"),
          "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8",
          "--no-sync"], root, timeout=120)
    sock = root / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        os.chown(sock, pw.pw_uid, pw.pw_gid)
    last = ""
    for _ in range(3):  # the port may be taken between choosing and binding it
        port = _free_port()
        opts = (f"-c listen_addresses=127.0.0.1 -p {port} -k {sock} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=60")
        try:
            _run([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w",
                  "-t", "60", "-o", opts, "start"], root, timeout=90)
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
    _run([str(PG_BIN / "pg_ctl"), "-D", str(server.root / "data"), "-m", "immediate", "-w", "stop"],
         server.root)


def restart(server: PostgresServer) -> None:
    """Start a halted server again on its port, with its data."""
    _run([str(PG_BIN / "pg_ctl"), "-D", str(server.root / "data"), "-l", str(server.root / "server.log"),
          "-w", "-t", "60", "-o", server.options, "start"], server.root, timeout=90)


def stop(server: PostgresServer) -> None:
    """Stop the cluster (fast shutdown) and remove its folder."""
    try:
        _run([str(PG_BIN / "pg_ctl"), "-D", str(server.root / "data"), "-m", "fast", "-w", "stop"],
             server.root)
    finally:
        shutil.rmtree(server.root, ignore_errors=True)

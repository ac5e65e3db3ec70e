"""Settings, read from ``BELCHEER_*`` environment variables (or a ``.env`` file).

There is no global settings object: callers build :class:`Settings` (``Settings()`` reads the
environment) and pass it down, so tests and the API can run with different workspaces side by side.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """belcheer's configuration. Every field can be set as ``BELCHEER_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="BELCHEER_", env_file=".env", extra="ignore")

    #: the workspace folder: catalog, surveys, products, parcels, jobs
    workspace: Path = Field(default=Path("./belcheer-data"))
    #: the catalog database as a URL: ``sqlite:///PATH`` or ``postgresql://USER:PASS@HOST:PORT/DB``;
    #: unset, the embedded ``<workspace>/catalog.sqlite`` (see belcheer.catalog_url)
    catalog: str | None = None
    #: where product rasters go, as a URL: ``file:///PATH`` or ``s3://BUCKET/PREFIX`` (endpoint and
    #: credentials from the usual AWS_* variables); unset, the workspace folder (see belcheer.storage)
    storage: str | None = None
    #: folder of real test data (tests only)
    real_data: Path | None = None
    #: folder of the NSO soum tables (registered livestock per soum); read at run time, never copied
    nso_data: Path | None = None
    #: Dask scheduler: "threads", "processes", "synchronous" or a distributed address tcp://host:port
    scheduler: str = "threads"
    #: worker threads/processes for the local schedulers (None = number of cores)
    workers: int | None = None
    #: the API server runs pipeline jobs itself (the embedded default); false on API replicas
    #: in front of `belcheer worker` processes, which then run every job
    run_jobs: bool = True
    #: jobs one server or worker runs at once (unset: every started job at once in the API
    #: server, one at a time in a `belcheer worker`)
    job_slots: int | None = Field(default=None, ge=1)
    #: seconds between a running job's heartbeats
    job_heartbeat_s: float = Field(default=5.0, gt=0)
    #: a running job whose worker sent no heartbeat for this long, seconds, is presumed dead
    #: and resumed by the next server or worker that polls the queue
    job_stale_after_s: float = Field(default=60.0, gt=0)
    #: how often servers and workers look for queued and orphaned jobs, seconds
    job_poll_s: float = Field(default=10.0, gt=0)
    #: log level name
    log_level: str = "INFO"
    #: server-side folders that API users may name as frame sources; every path read below them
    #: is resolved (symlinks included) and must stay inside one of them
    allowed_roots: list[Path] = Field(default_factory=list)
    #: the server's public address for absolute links (``https://belcheer.example.mn``); unset,
    #: links use the address the connection arrived on, never the request's Host header
    public_url: str | None = None
    #: Host header values trusted for links when ``public_url`` is unset ("*": any)
    trusted_hosts: list[str] = Field(default_factory=list)
    #: upload limits, bytes
    max_upload_file_bytes: int = 200 * 1024**2
    max_upload_total_bytes: int = 20 * 1024**3
    #: refuse to read a raster whose width×height×bands×itemsize exceeds this, bytes
    max_raster_bytes: int = 64 * 1024**3
    #: secret for signing API tokens; generated into the workspace on first use when unset
    secret_key: str | None = None
    #: token lifetime, minutes
    token_minutes: int = 60 * 12

    @property
    def catalog_path(self) -> Path:
        return self.workspace / "catalog.sqlite"

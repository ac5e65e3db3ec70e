"""The workspace catalog: what surveys, products, parcel versions, statistics and jobs exist.

:class:`Catalog` is the interface the stages and the API use; :class:`SQLiteCatalog` is the
embedded default (one SQLite file, WAL journal, every write in one transaction, so a crash
mid-write leaves the previous state). :class:`belcheer.catalog_postgis.PostGISCatalog` implements
the same protocol on PostgreSQL/PostGIS; :func:`belcheer.catalog_url.open_catalog` picks one by URL.
Rasters live in the product store (files in the workspace, or S3: :mod:`belcheer.storage`) and
the catalog stores their URIs; a product row written before holds a local path, read as a file URI.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from belcheer.errors import ConflictError, JobLostError, NotFoundError
from belcheer.models import Product, ProductKind

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS surveys (
    name TEXT PRIMARY KEY,
    manifest TEXT NOT NULL,
    epsg INTEGER NOT NULL,
    date TEXT,
    created TEXT NOT NULL,
    published INTEGER NOT NULL DEFAULT 0,
    summary TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS products (
    id TEXT PRIMARY KEY,
    survey TEXT NOT NULL REFERENCES surveys(name) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    created TEXT NOT NULL,
    UNIQUE (survey, name)
);
CREATE TABLE IF NOT EXISTS parcel_versions (
    version INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL,
    source TEXT,
    feature_count INTEGER NOT NULL,
    valid_from TEXT NOT NULL,
    valid_to TEXT,
    report TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS stats (
    survey TEXT NOT NULL,
    date TEXT,
    index_name TEXT NOT NULL,
    parcel_id TEXT NOT NULL,
    parcel_version INTEGER,
    mean REAL, median REAL, std REAL, min REAL, max REAL,
    p10 REAL, p25 REAL, p75 REAL, p90 REAL,
    count REAL, valid_fraction REAL,
    extra TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (survey, index_name, parcel_id)
);
CREATE INDEX IF NOT EXISTS stats_parcel ON stats (parcel_id, index_name, date);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    stage TEXT,
    progress REAL NOT NULL DEFAULT 0,
    message TEXT,
    params TEXT NOT NULL DEFAULT '{}',
    result TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    owner TEXT,
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    worker TEXT,
    heartbeat TEXT,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    soum TEXT,
    user_group TEXT,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS calibrations (
    survey TEXT PRIMARY KEY REFERENCES surveys(name) ON DELETE CASCADE,
    id TEXT NOT NULL,
    method TEXT NOT NULL,
    source TEXT NOT NULL,
    panel_capture TEXT,
    albedos TEXT NOT NULL DEFAULT '{}',
    irradiances TEXT NOT NULL DEFAULT '{}',
    notes TEXT NOT NULL DEFAULT '[]',
    body TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    username TEXT,
    action TEXT NOT NULL,
    object TEXT NOT NULL,
    before TEXT,
    after TEXT
);
"""

#: columns added to a table after schema version 1, created in catalogs made before
_ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("jobs", "worker", "TEXT"),
    ("jobs", "heartbeat", "TEXT"),
    ("jobs", "attempts", "INTEGER NOT NULL DEFAULT 0"),
)
#: fields of a job row that :meth:`Catalog.update_job` may set
JOB_FIELDS = frozenset({"state", "stage", "progress", "message", "result", "error", "worker"})

STAT_COLUMNS: tuple[str, ...] = ("mean", "median", "std", "min", "max", "p10", "p25", "p75",
                                 "p90", "count", "valid_fraction")


def now() -> datetime:
    """The current time, UTC, second precision."""
    return datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class SurveyRecord:
    """A survey as the catalog knows it: where its manifest is, and a JSON summary."""

    name: str
    manifest: Path
    epsg: int
    date: str | None
    created: str
    published: bool = False
    summary: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ParcelVersion:
    """One imported version of the parcel layer; ``valid_to`` is None for the current one."""

    version: int
    path: Path
    source: str | None
    feature_count: int
    valid_from: str
    valid_to: str | None
    report: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CalibrationRecord:
    """A survey's stored radiometric calibration: what every reflectance product of it used.

    ``method`` panel | sensor | both; ``source`` who made it (``calibrate``, ``automatic``,
    ``pipeline``, ``python``); ``albedos`` and ``irradiances`` per band name (irradiance in the
    camera's radiance units × sr: W m⁻² nm⁻¹ for MicaSense, relative for Sequoia and DJI);
    ``notes`` what the user must know (fallbacks, panel vs sensor disagreement); ``body`` the
    full calibration report, from which the calibration is rebuilt exactly; ``id`` a digest of
    ``body`` that products record.
    """

    survey: str
    id: str
    method: str
    source: str
    panel_capture: str | None
    albedos: Mapping[str, float]
    irradiances: Mapping[str, float]
    notes: Sequence[str]
    body: Mapping[str, Any]
    created: str

    def summary(self) -> dict[str, Any]:
        """What products, job reports and the web map show of it."""
        return {"id": self.id, "method": self.method, "source": self.source,
                "panel_capture": self.panel_capture, "albedos": dict(self.albedos),
                "notes": list(self.notes), "absolute": bool(self.body.get("absolute", True)),
                "created": self.created}


@dataclass(frozen=True)
class Job:
    """A long-running pipeline job (ingest → mosaic → indices → stats)."""

    id: str
    kind: str
    state: str  # waiting | queued | running | done | failed | cancelled
    stage: str | None
    progress: float
    message: str | None
    params: Mapping[str, Any]
    result: Mapping[str, Any]
    error: str | None
    owner: str | None
    created: str
    updated: str
    #: the worker running it (``host:pid:tag``), None while nobody has claimed it
    worker: str | None = None
    #: when that worker last said it is alive (UTC ISO); a running job whose heartbeat is older
    #: than the stale limit is claimed again by the next worker
    heartbeat: str | None = None
    #: how many times a worker has claimed it (1 for a run that was never interrupted)
    attempts: int = 0


@runtime_checkable
class Catalog(Protocol):
    """What the stages and the API may ask of a catalog backend."""

    # surveys
    def add_survey(self, name: str, manifest: Path, epsg: int, date: str | None,
                   summary: Mapping[str, Any], replace: bool = False) -> SurveyRecord: ...
    def survey(self, name: str) -> SurveyRecord: ...
    def surveys(self) -> list[SurveyRecord]: ...
    def set_published(self, name: str, published: bool) -> None: ...
    def delete_survey(self, name: str) -> None: ...
    # products
    def add_product(self, product: Product) -> Product: ...
    def product(self, survey: str, name: str) -> Product: ...
    def product_by_id(self, product_id: str) -> Product: ...
    def products(self, survey: str | None = None, kind: ProductKind | None = None) -> list[Product]: ...
    # parcels
    def add_parcel_version(self, path: Path, source: str | None, feature_count: int,
                           report: Mapping[str, Any]) -> ParcelVersion: ...
    def parcel_versions(self) -> list[ParcelVersion]: ...
    def current_parcel_version(self) -> ParcelVersion | None: ...
    # statistics
    def put_stats(self, survey: str, date: str | None, index_name: str,
                  rows: Sequence[Mapping[str, Any]], parcel_version: int | None = None) -> int: ...
    def stats(self, survey: str | None = None, index_name: str | None = None,
              parcel_id: str | Sequence[str] | None = None, limit: int | None = None
              ) -> list[dict[str, Any]]: ...
    # radiometric calibration
    def put_calibration(self, record: CalibrationRecord) -> CalibrationRecord: ...
    def calibration(self, survey: str) -> CalibrationRecord | None: ...
    # jobs
    def add_job(self, kind: str, params: Mapping[str, Any], owner: str | None = None) -> Job: ...
    def update_job(self, job_id: str, *, owned_by: str | None = None, **fields: Any) -> Job: ...
    def job(self, job_id: str) -> Job: ...
    def jobs(self, state: str | None = None) -> list[Job]: ...
    def claim_job(self, worker: str, kinds: Sequence[str], *, stale_after: float,
                  job_id: str | None = None) -> Job | None: ...
    def heartbeat_job(self, job_id: str, worker: str) -> bool: ...
    # users and audit
    def add_user(self, username: str, password_hash: str, role: str, soum: str | None = None,
                 user_group: str | None = None) -> None: ...
    def user(self, username: str) -> dict[str, Any]: ...
    def users(self) -> list[dict[str, Any]]: ...
    def audit(self, username: str | None, action: str, obj: str,
              before: Any = None, after: Any = None) -> None: ...
    def audit_log(self, obj: str | None = None) -> list[dict[str, Any]]: ...


@runtime_checkable
class ParcelLayerStore(Protocol):
    """A catalog that holds parcel geometries itself (PostGIS), not as workspace GeoPackages."""

    def add_parcel_layer(self, frame: Any, source: str | None,
                         report: Mapping[str, Any]) -> ParcelVersion: ...
    def parcel_layer(self, version: int) -> Any: ...
    def parcel_columns(self, version: int) -> dict[str, str]: ...
    def query_parcel_layer(self, version: int, *, bbox: tuple[float, float, float, float] | None = None,
                           where: Mapping[str, str] | None = None, offset: int = 0,
                           limit: int | None = None) -> tuple[Any, int]: ...


#: the ``path`` prefix of a parcel version whose layer is in the catalog database, not a file
IN_CATALOG_PREFIX = "postgis:parcels/"


class SQLiteCatalog:
    """The embedded catalog: one SQLite file. Safe to share between threads of one process."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        # executescript commits on its own, so the schema is created outside _tx
        self._con().executescript(_SCHEMA)
        with self._tx() as con:
            for table, column, decl in _ADDED_COLUMNS:
                have = {r["name"] for r in con.execute(f"PRAGMA table_info({table})")}
                if column not in have:
                    con.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
            con.execute("INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT(key) DO UPDATE "
                        "SET value=excluded.value", (str(SCHEMA_VERSION),))

    def __repr__(self) -> str:
        return f"SQLiteCatalog({str(self.path)!r})"

    # -- connection handling -------------------------------------------------------------
    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA foreign_keys=ON")
            con.execute("PRAGMA synchronous=NORMAL")
            self._local.con = con
        return con

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        con = self._con()
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        else:
            con.execute("COMMIT")

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    # -- surveys -------------------------------------------------------------------------
    @staticmethod
    def _survey(row: sqlite3.Row) -> SurveyRecord:
        return SurveyRecord(name=row["name"], manifest=Path(row["manifest"]), epsg=row["epsg"],
                            date=row["date"], created=row["created"],
                            published=bool(row["published"]), summary=json.loads(row["summary"]))

    def add_survey(self, name: str, manifest: Path, epsg: int, date: str | None,
                   summary: Mapping[str, Any], replace: bool = False) -> SurveyRecord:
        with self._tx() as con:
            exists = con.execute("SELECT 1 FROM surveys WHERE name=?", (name,)).fetchone()
            if exists and not replace:
                raise ConflictError(f"survey {name!r} already exists; choose another --survey "
                                    "name or re-ingest with --replace")
            # a re-ingested survey may hold other frames: its old calibration no longer applies
            con.execute("DELETE FROM calibrations WHERE survey=?", (name,))
            con.execute(
                "INSERT INTO surveys (name, manifest, epsg, date, created, summary) VALUES (?,?,?,?,?,?) "
                "ON CONFLICT(name) DO UPDATE SET manifest=excluded.manifest, epsg=excluded.epsg, "
                "date=excluded.date, summary=excluded.summary",
                (name, str(manifest), epsg, date, now().isoformat(),
                 json.dumps(dict(summary), ensure_ascii=False, default=str)))
        return self.survey(name)

    def survey(self, name: str) -> SurveyRecord:
        row = self._con().execute("SELECT * FROM surveys WHERE name=?", (name,)).fetchone()
        if row is None:
            known = ", ".join(s.name for s in self.surveys()) or "none yet"
            raise NotFoundError(f"no survey named {name!r} in the workspace (known: {known}); "
                                "run `belcheer ingest FRAMES_DIR --survey NAME` first")
        return self._survey(row)

    def surveys(self) -> list[SurveyRecord]:
        rows = self._con().execute("SELECT * FROM surveys ORDER BY date, name").fetchall()
        return [self._survey(r) for r in rows]

    def set_published(self, name: str, published: bool) -> None:
        self.survey(name)
        with self._tx() as con:
            con.execute("UPDATE surveys SET published=? WHERE name=?", (int(published), name))

    def delete_survey(self, name: str) -> None:
        self.survey(name)
        with self._tx() as con:
            con.execute("DELETE FROM products WHERE survey=?", (name,))
            con.execute("DELETE FROM stats WHERE survey=?", (name,))
            con.execute("DELETE FROM calibrations WHERE survey=?", (name,))
            con.execute("DELETE FROM surveys WHERE name=?", (name,))

    # -- products ------------------------------------------------------------------------
    def add_product(self, product: Product) -> Product:
        """Register (or replace, by survey + name) a product. Returns it with id and time set."""
        self.survey(product.survey)
        if not product.id:
            product = Product(**{**product.__dict__, "id": uuid.uuid4().hex[:12]})
        if product.created is None:
            product = Product(**{**product.__dict__, "created": now()})
        body = json.dumps(product.to_dict(), ensure_ascii=False, default=str)
        with self._tx() as con:
            con.execute("DELETE FROM products WHERE survey=? AND name=?", (product.survey, product.name))
            con.execute("INSERT INTO products VALUES (?,?,?,?,?,?)",
                        (product.id, product.survey, product.kind.value, product.name, body,
                         product.created.isoformat() if product.created else now().isoformat()))
        return product

    def product(self, survey: str, name: str) -> Product:
        row = self._con().execute("SELECT body FROM products WHERE survey=? AND name=?",
                                  (survey, name)).fetchone()
        if row is None:
            have = ", ".join(p.name for p in self.products(survey)) or "none"
            raise NotFoundError(f"survey {survey!r} has no product {name!r} (it has: {have})")
        return Product.from_dict(json.loads(row["body"]))

    def product_by_id(self, product_id: str) -> Product:
        row = self._con().execute("SELECT body FROM products WHERE id=?", (product_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no product with id {product_id!r}")
        return Product.from_dict(json.loads(row["body"]))

    def products(self, survey: str | None = None, kind: ProductKind | None = None) -> list[Product]:
        q, args = "SELECT body FROM products WHERE 1=1", []
        if survey is not None:
            q += " AND survey=?"
            args.append(survey)
        if kind is not None:
            q += " AND kind=?"
            args.append(ProductKind(kind).value)
        rows = self._con().execute(q + " ORDER BY created, name", args).fetchall()
        return [Product.from_dict(json.loads(r["body"])) for r in rows]

    # -- parcels -------------------------------------------------------------------------
    @staticmethod
    def _pv(row: sqlite3.Row) -> ParcelVersion:
        return ParcelVersion(version=row["version"], path=Path(row["path"]), source=row["source"],
                             feature_count=row["feature_count"], valid_from=row["valid_from"],
                             valid_to=row["valid_to"], report=json.loads(row["report"]))

    def add_parcel_version(self, path: Path, source: str | None, feature_count: int,
                           report: Mapping[str, Any]) -> ParcelVersion:
        """Close the current parcel version and open a new one; old versions are never touched."""
        stamp = now().isoformat()
        with self._tx() as con:
            con.execute("UPDATE parcel_versions SET valid_to=? WHERE valid_to IS NULL", (stamp,))
            cur = con.execute(
                "INSERT INTO parcel_versions (path, source, feature_count, valid_from, report) "
                "VALUES (?,?,?,?,?)",
                (str(path), source, feature_count, stamp,
                 json.dumps(dict(report), ensure_ascii=False, default=str)))
            version = cur.lastrowid
        row = self._con().execute("SELECT * FROM parcel_versions WHERE version=?", (version,)).fetchone()
        return self._pv(row)

    def parcel_versions(self) -> list[ParcelVersion]:
        rows = self._con().execute("SELECT * FROM parcel_versions ORDER BY version").fetchall()
        return [self._pv(r) for r in rows]

    def current_parcel_version(self) -> ParcelVersion | None:
        row = self._con().execute(
            "SELECT * FROM parcel_versions WHERE valid_to IS NULL ORDER BY version DESC LIMIT 1").fetchone()
        return self._pv(row) if row else None

    # -- statistics ----------------------------------------------------------------------
    def put_stats(self, survey: str, date: str | None, index_name: str,
                  rows: Sequence[Mapping[str, Any]], parcel_version: int | None = None) -> int:
        """Store per-parcel statistics of one index for one survey (replacing earlier ones).

        Each row has ``parcel_id`` and any of :data:`STAT_COLUMNS`; other keys go to ``extra``.
        """
        records = []
        for r in rows:
            extra = {k: v for k, v in r.items() if k not in STAT_COLUMNS and k != "parcel_id"}
            records.append((survey, date, index_name, str(r["parcel_id"]), parcel_version,
                            *[_num(r.get(c)) for c in STAT_COLUMNS],
                            json.dumps(extra, ensure_ascii=False, default=_json_default)))
        with self._tx() as con:
            con.execute("DELETE FROM stats WHERE survey=? AND index_name=?", (survey, index_name))
            con.executemany(f"INSERT INTO stats VALUES ({','.join('?' * 17)})", records)
        return len(records)

    def stats(self, survey: str | None = None, index_name: str | None = None,
              parcel_id: str | Sequence[str] | None = None, limit: int | None = None
              ) -> list[dict[str, Any]]:
        """Statistics rows, filtered by survey, index and one parcel id or a sequence of them
        (a page of parcels: one query whatever its length), at most ``limit`` rows."""
        q, args = "SELECT * FROM stats WHERE 1=1", []
        for col, val in (("survey", survey), ("index_name", index_name)):
            if val is not None:
                q += f" AND {col}=?"
                args.append(str(val))
        if isinstance(parcel_id, str):
            q += " AND parcel_id=?"
            args.append(parcel_id)
        elif parcel_id is not None:
            q += " AND parcel_id IN (SELECT value FROM json_each(?))"
            args.append(json.dumps([str(v) for v in parcel_id]))
        q += " ORDER BY date, survey, parcel_id"
        if limit is not None:
            q += f" LIMIT {int(limit)}"
        out = []
        for r in self._con().execute(q, args).fetchall():
            d = dict(r)
            d.update(json.loads(d.pop("extra")))
            out.append(d)
        return out

    # -- radiometric calibration -------------------------------------------------------
    def put_calibration(self, record: CalibrationRecord) -> CalibrationRecord:
        """Store (replacing any earlier one) the survey's calibration record."""
        self.survey(record.survey)
        dumps = lambda v: json.dumps(v, ensure_ascii=False, default=_json_default)  # noqa: E731
        with self._tx() as con:
            con.execute("INSERT OR REPLACE INTO calibrations VALUES (?,?,?,?,?,?,?,?,?,?)",
                        (record.survey, record.id, record.method, record.source, record.panel_capture,
                         dumps(dict(record.albedos)), dumps(dict(record.irradiances)),
                         dumps(list(record.notes)), dumps(dict(record.body)), record.created))
        return record

    def calibration(self, survey: str) -> CalibrationRecord | None:
        """The survey's stored calibration, or None when it has not been calibrated."""
        row = self._con().execute("SELECT * FROM calibrations WHERE survey=?", (survey,)).fetchone()
        if row is None:
            return None
        return CalibrationRecord(survey=row["survey"], id=row["id"], method=row["method"],
                                 source=row["source"], panel_capture=row["panel_capture"],
                                 albedos=json.loads(row["albedos"]),
                                 irradiances=json.loads(row["irradiances"]),
                                 notes=json.loads(row["notes"]), body=json.loads(row["body"]),
                                 created=row["created"])

    # -- jobs ----------------------------------------------------------------------------
    @staticmethod
    def _job(row: sqlite3.Row) -> Job:
        return Job(id=row["id"], kind=row["kind"], state=row["state"], stage=row["stage"],
                   progress=row["progress"], message=row["message"], params=json.loads(row["params"]),
                   result=json.loads(row["result"]), error=row["error"], owner=row["owner"],
                   created=row["created"], updated=row["updated"], worker=row["worker"],
                   heartbeat=row["heartbeat"], attempts=row["attempts"])

    def add_job(self, kind: str, params: Mapping[str, Any], owner: str | None = None) -> Job:
        job_id = uuid.uuid4().hex[:16]
        stamp = now().isoformat()
        with self._tx() as con:
            con.execute("INSERT INTO jobs (id, kind, state, params, owner, created, updated) "
                        "VALUES (?,?,?,?,?,?,?)",
                        (job_id, kind, "queued", json.dumps(dict(params), default=str), owner, stamp, stamp))
        return self.job(job_id)

    def update_job(self, job_id: str, *, owned_by: str | None = None, **fields: Any) -> Job:
        """Set job fields. With ``owned_by``, only while that worker holds the job: else
        JobLostError (another worker took it over, or it stopped running)."""
        bad = set(fields) - JOB_FIELDS
        if bad:
            raise ValueError(f"cannot update job fields {sorted(bad)}")
        if "result" in fields:
            fields["result"] = json.dumps(dict(fields["result"]), default=str)
        fields["updated"] = now().isoformat()
        cols = ", ".join(f"{k}=?" for k in fields)
        guard, args = ("", ()) if owned_by is None else (" AND worker=? AND state='running'", (owned_by,))
        with self._tx() as con:
            cur = con.execute(f"UPDATE jobs SET {cols} WHERE id=?{guard}", (*fields.values(), job_id, *args))
            if cur.rowcount == 0:
                if owned_by is not None and con.execute("SELECT 1 FROM jobs WHERE id=?", (job_id,)).fetchone():
                    raise JobLostError(f"job {job_id} is no longer held by worker {owned_by}")
                raise NotFoundError(f"no job with id {job_id!r}")
        return self.job(job_id)

    def job(self, job_id: str) -> Job:
        row = self._con().execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no job with id {job_id!r}")
        return self._job(row)

    def jobs(self, state: str | None = None) -> list[Job]:
        if state is None:
            rows = self._con().execute("SELECT * FROM jobs ORDER BY created, rowid").fetchall()
        else:
            # rowid: jobs submitted in the same second come back in submission order
            rows = self._con().execute("SELECT * FROM jobs WHERE state=? ORDER BY created, rowid",
                                       (state,)).fetchall()
        return [self._job(r) for r in rows]

    def claim_job(self, worker: str, kinds: Sequence[str], *, stale_after: float,
                  job_id: str | None = None) -> Job | None:
        """Take the oldest claimable job of ``kinds`` (or only ``job_id``) for ``worker``: a
        queued one, or a running one whose worker sent no heartbeat for ``stale_after`` seconds
        (or never did: a run from before heartbeats). Exactly one caller gets each job, across
        threads and processes: BEGIN IMMEDIATE holds SQLite's write lock from the read on."""
        if not kinds:
            return None
        stamp = now()
        # heartbeats to the microsecond (ISO text that sorts as time): a stale limit of a
        # second or two stays exact
        beat = datetime.now(UTC)
        cutoff = (beat - timedelta(seconds=float(stale_after))).isoformat()
        marks = ",".join("?" * len(kinds))
        only, args = ("", ()) if job_id is None else (" AND id=?", (job_id,))
        with self._tx() as con:
            row = con.execute(
                f"SELECT id FROM jobs WHERE kind IN ({marks}){only} AND (state='queued' OR "
                "(state='running' AND (heartbeat IS NULL OR heartbeat < ?))) ORDER BY created, rowid LIMIT 1",
                (*kinds, *args, cutoff)).fetchone()
            if row is None:
                return None
            con.execute("UPDATE jobs SET state='running', worker=?, heartbeat=?, attempts=attempts+1, "
                        "updated=? WHERE id=?", (worker, beat.isoformat(), stamp.isoformat(), row["id"]))
        return self.job(row["id"])

    def heartbeat_job(self, job_id: str, worker: str) -> bool:
        """Say ``worker`` is still running ``job_id``; False once it no longer holds the job."""
        with self._tx() as con:
            cur = con.execute("UPDATE jobs SET heartbeat=? WHERE id=? AND worker=? AND state='running'",
                              (datetime.now(UTC).isoformat(), job_id, worker))
        return cur.rowcount == 1

    # -- users and audit -----------------------------------------------------------------
    def add_user(self, username: str, password_hash: str, role: str, soum: str | None = None,
                 user_group: str | None = None) -> None:
        with self._tx() as con:
            if con.execute("SELECT 1 FROM users WHERE username=?", (username,)).fetchone():
                raise ConflictError(f"user {username!r} already exists")
            con.execute("INSERT INTO users VALUES (?,?,?,?,?,?)",
                        (username, password_hash, role, soum, user_group, now().isoformat()))

    def user(self, username: str) -> dict[str, Any]:
        row = self._con().execute("SELECT * FROM users WHERE username=?", (username,)).fetchone()
        if row is None:
            raise NotFoundError(f"no user {username!r}")
        return dict(row)

    def users(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._con().execute("SELECT * FROM users ORDER BY username")]

    def audit(self, username: str | None, action: str, obj: str,
              before: Any = None, after: Any = None) -> None:
        with self._tx() as con:
            con.execute("INSERT INTO audit (at, username, action, object, before, after) VALUES (?,?,?,?,?,?)",
                        (now().isoformat(), username, action, obj,
                         None if before is None else json.dumps(before, ensure_ascii=False, default=str),
                         None if after is None else json.dumps(after, ensure_ascii=False, default=str)))

    def audit_log(self, obj: str | None = None) -> list[dict[str, Any]]:
        if obj is None:
            rows = self._con().execute("SELECT * FROM audit ORDER BY id").fetchall()
        else:
            rows = self._con().execute("SELECT * FROM audit WHERE object=? ORDER BY id", (obj,)).fetchall()
        return [dict(r) for r in rows]


def _num(v: Any) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if f != f else f  # NaN → NULL


def _json_default(v: Any) -> Any:
    try:
        return v.item()  # numpy scalars
    except AttributeError:
        return str(v)

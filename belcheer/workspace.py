"""The workspace: a folder holding the catalog and every file belcheer produces.

Layout (all paths below the workspace root)::

    catalog.sqlite                     the embedded catalog, unless BELCHEER_CATALOG names another
                                       (see belcheer.catalog_url)
    surveys/<survey>/manifest.parquet  the survey manifest (GeoParquet, one row per frame)
    surveys/<survey>/products/*.tif    COG products: orthomosaic, reflectance, indices, classes
    surveys/<survey>/reports/…         quality reports, previews, validation report
    parcels/parcels-v<N>.gpkg          each imported version of the parcel layer (on a PostGIS
                                       catalog: rows of its parcels table instead)
                                       (or objects of the same keys in the store that
                                       BELCHEER_STORAGE names: see belcheer.storage)
    jobs/<job-id>/…                    uploads and job scratch space
    models/…                           fitted models (biomass calibration, land-cover classifier)

Survey names may be Cyrillic; they are refused if they could escape the folder.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from belcheer.catalog import Catalog
from belcheer.catalog_url import open_catalog
from belcheer.config import Settings
from belcheer.errors import ConflictError
from belcheer.fileio import confined, safe_name
from belcheer.manifest import read_manifest, write_manifest
from belcheer.models import Product, Survey
from belcheer.storage import (
    FileStore,
    ProductSource,
    ProductStore,
    Stores,
    file_uri,
    frame_key,
    open_store,
    product_key,
)


@dataclass
class Workspace:
    """A workspace folder, its catalog and its product store. Create with :func:`open_workspace`."""

    root: Path
    catalog: Catalog
    #: where products are written (BELCHEER_STORAGE; default: files in ``root``)
    store: ProductStore = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.store is None:
            self.store = FileStore(self.root)
        files = self.store if isinstance(self.store, FileStore) and self.store.root == self.root \
            else FileStore(self.root)
        self.stores = Stores(self.store, files)

    # -- paths ---------------------------------------------------------------------------
    def path(self, *parts: str) -> Path:
        """A path inside the workspace; refuses anything that would leave it."""
        return confined(self.root, Path(*parts))

    def survey_dir(self, survey: str) -> Path:
        return self.path("surveys", safe_name(survey))

    def product_path(self, survey: str, name: str, suffix: str = ".tif") -> Path:
        """Where a survey's product file goes (``surveys/<survey>/products/<name><suffix>``)."""
        return self.path("surveys", safe_name(survey), "products", safe_name(name) + suffix)

    # -- products in the store -------------------------------------------------------------
    def product_uri(self, survey: str, name: str, suffix: str = ".tif") -> str:
        """Where a survey's product goes in the store (key ``surveys/<survey>/products/<name>``)."""
        return self.store.uri(product_key(survey, name, suffix))

    @contextlib.contextmanager
    def writing_product(self, survey: str, name: str, suffix: str = ".tif") -> Iterator[tuple[Path, str]]:
        """``(local temporary path, uri)``: write the finished COG to the path; when the block
        succeeds it is put into the store at ``uri`` atomically, else nothing is left."""
        uri = self.product_uri(survey, name, suffix)
        with self.store.writing(uri) as tmp:
            yield tmp, uri

    @contextlib.contextmanager
    def staging_dir(self, survey: str) -> Iterator[Path]:
        """A local folder for a stage that writes several products at once (then
        :meth:`put_product` each): the products folder itself for the default file store, else a
        temporary folder removed afterwards."""
        if self._files_here():
            d = self.product_path(survey, "_").parent
            d.mkdir(parents=True, exist_ok=True)
            yield d
        else:
            with tempfile.TemporaryDirectory(prefix="belcheer-stage-") as d:
                yield Path(d)

    def put_product(self, local: Path, survey: str, name: str, suffix: str = ".tif") -> str:
        """Put a finished local file into the store as the product ``name``; returns its URI
        (a file already in place in the default file store stays where it is)."""
        uri = self.product_uri(survey, name, suffix)
        if file_uri(local) != uri:
            self.store.put(Path(local), uri)
        return uri

    def _files_here(self) -> bool:
        return isinstance(self.store, FileStore) and self.store.root == self.root

    def product_source(self, product: Product) -> ProductSource:
        """The product resolved in its store (size, ETag, last-modified); ProductMissingError
        (404) naming it when its object is gone."""
        return self.stores.source(product)

    def open_product(self, product: Product) -> contextlib.AbstractContextManager[Any]:
        """The product opened with rasterio (a local file, or range requests to S3)."""
        return self.stores.open_raster(product, confined=False)

    def product_file(self, product: Product) -> contextlib.AbstractContextManager[Path]:
        """A local file of the product for readers that need one (the file itself, or a copy
        of the S3 object cached by its ETag)."""
        return self.stores.local_file(product)

    def report_dir(self, survey: str) -> Path:
        d = self.path("surveys", safe_name(survey), "reports")
        d.mkdir(parents=True, exist_ok=True)
        return d

    def manifest_path(self, survey: str) -> Path:
        return self.path("surveys", safe_name(survey), "manifest.parquet")

    # -- surveys -------------------------------------------------------------------------
    def save_survey(self, survey: Survey, summary: dict | None = None, replace: bool = False) -> Path:
        """Write the survey's manifest and register it in the catalog. Returns the manifest path."""
        path = self.manifest_path(survey.name)
        if not replace and survey.name in self.surveys():
            raise ConflictError(f"survey {survey.name!r} already exists in {self.root}; choose "
                                "another --survey name or pass --replace")
        write_manifest(survey, path)
        date = survey.date.date().isoformat() if survey.date else None
        self.catalog.add_survey(survey.name, path, survey.epsg, date, summary or {}, replace=True)
        return path

    def store_frames(self, survey: Survey, folder: Path) -> Survey:
        """The survey with each frame's file put into the product store (key
        ``surveys/<survey>/frames/<path below folder>``) and its ``uri`` set, when the store is
        not this workspace's folder: Dask workers and job workers on other machines then read
        frames from the store, with no disk shared. With local files, the survey unchanged."""
        if isinstance(self.store, FileStore) and self.store.root == self.root:
            return survey
        import dataclasses

        base = Path(folder).expanduser().resolve()
        captures = []
        for cap in survey.captures:
            frames = []
            for fr in cap.frames:
                if not Path(fr.path).is_file():  # ingest reported it; nothing to keep
                    frames.append(fr)
                    continue
                try:
                    rel: Path | str = Path(fr.path).resolve().relative_to(base)
                except ValueError:  # a frame reached through a link out of the folder
                    rel = Path(fr.path).name
                uri = self.store.uri(frame_key(survey.name, rel))
                self.store.put(Path(fr.path), uri, keep=True)  # the card's frames are inputs: copied
                frames.append(dataclasses.replace(fr, uri=uri))
            captures.append(dataclasses.replace(cap, frames=tuple(frames)))
        return dataclasses.replace(survey, captures=tuple(captures))

    def load_survey(self, survey: str | Survey) -> Survey:
        """The survey ``survey`` names, read from its manifest; a :class:`Survey` already loaded
        is returned as it is, so a caller that holds one (the pipeline) never reads it again.
        Raises NotFoundError naming the known surveys."""
        if isinstance(survey, Survey):
            return survey
        return read_manifest(self.catalog.survey(survey).manifest)

    def surveys(self) -> list[str]:
        return [s.name for s in self.catalog.surveys()]

    def product(self, survey: str, name: str) -> Product:
        return self.catalog.product(survey, name)

    def add_product(self, product: Product) -> Product:
        return self.catalog.add_product(product)


def open_workspace(root: str | os.PathLike[str] | None = None,
                   settings: Settings | None = None, catalog: str | None = None,
                   storage: str | None = None) -> Workspace:
    """Open (creating if needed) the workspace at ``root``, else at ``settings.workspace``.

    ``catalog`` is the catalog URL (else ``settings.catalog``, i.e. ``BELCHEER_CATALOG``; unset,
    ``<workspace>/catalog.sqlite``). A bad URL or an unreachable database is a ConfigError raised
    before anything is written: the catalog is opened before the workspace folders are made.
    ``storage`` is the product store URL (else ``settings.storage``, i.e. ``BELCHEER_STORAGE``;
    unset, files in the workspace); an S3 bucket that cannot be reached is a ConfigError too.
    """
    settings = settings or Settings()
    base = Path(root) if root is not None else settings.workspace
    base = base.expanduser().resolve()
    url = catalog if catalog is not None else settings.catalog
    store = open_store(storage if storage is not None else settings.storage, base)
    cat = open_catalog(url, base)  # first: a catalog that cannot open leaves no folders behind
    base.mkdir(parents=True, exist_ok=True)
    for sub in ("surveys", "parcels", "jobs", "models"):
        (base / sub).mkdir(exist_ok=True)
    return Workspace(root=base, catalog=cat, store=store)

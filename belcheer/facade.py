"""The agronomists' Python API: a survey bound to its workspace, returning xarray and geopandas.

``ws = belcheer.open_workspace(path)`` gives a :class:`NotebookWorkspace` (the core
:class:`~belcheer.workspace.Workspace` plus ``survey``, ``parcels`` and ``timeseries``);
``survey = ws.survey("selenge-2026-07")`` gives a
:class:`SurveyView` — a :class:`~belcheer.models.Survey` (every stage accepts it) that can also
open its products lazily (``survey.reflectance()``, ``survey.index("ndvi")``), fetch its
parcel statistics (``survey.stats()``), plot and map them. Nothing here computes: it calls the
stages' public functions and opens their files.

The dependency runs one way: this module builds on the core workspace and the stages; the core
never imports it.
"""

from __future__ import annotations

import dataclasses
import html
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from belcheer.errors import NotFoundError
from belcheer.models import Product, ProductKind, Survey
from belcheer.workspace import Workspace
from belcheer.workspace import open_workspace as _open_core

if TYPE_CHECKING:  # pragma: no cover
    import geopandas as gpd
    import pandas as pd
    import xarray as xr
    from matplotlib.axes import Axes

    from belcheer.config import Settings

#: chunk size of lazily opened products: the COGs' internal tile size
CHUNK = 512


def open_product(product: Product, chunks: int | None = CHUNK,
                 workspace: Workspace | None = None) -> xr.DataArray:
    """Open a product's COG lazily as a DataArray with CRS, band names and wavelengths.

    ``workspace`` finds the product in its store: a product in S3 is read from a local copy
    kept by its ETag (lazy Dask reads in worker threads need a file); without it the product
    must be a local file.

    The ``band`` coordinate holds band names (``red``, ``nir`` …) and a ``wavelength`` coordinate
    (nm) is added where known. NaN or the file's nodata marks missing data.
    """
    import rioxarray

    path = workspace.stores.local_path(product) if workspace is not None else product.path
    da = rioxarray.open_rasterio(path, chunks={"x": chunks, "y": chunks} if chunks else None,
                                 masked=True)
    if product.bands and len(product.bands) == da.sizes.get("band", 0):
        da = da.assign_coords(band=[b.name for b in product.bands],
                              wavelength=("band", [b.center_nm or float("nan") for b in product.bands]))
    if da.sizes.get("band", 1) == 1 and product.kind is not ProductKind.REFLECTANCE:
        da = da.squeeze("band", drop=True)
    da.name = product.name
    da.attrs.update({"survey": product.survey, "kind": product.kind.value,
                     "units": product.units or "", "relative": int(product.relative)})
    return da


@dataclass(frozen=True, eq=False)
class SurveyView(Survey):
    """A survey plus the workspace it lives in. Compares equal to the plain :class:`Survey`."""

    workspace: Workspace | None = field(default=None, repr=False)

    @classmethod
    def bind(cls, survey: Survey, workspace: Workspace) -> SurveyView:
        values = {f.name: getattr(survey, f.name) for f in dataclasses.fields(Survey)}
        return cls(**values, workspace=workspace)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Survey):
            return NotImplemented
        return all(getattr(self, f.name) == getattr(other, f.name) for f in dataclasses.fields(Survey))

    __hash__ = None  # type: ignore[assignment]

    # -- products ------------------------------------------------------------------------
    @property
    def _ws(self) -> Workspace:
        if self.workspace is None:
            raise NotFoundError("this survey is not bound to a workspace; use ws.survey(name)")
        return self.workspace

    def products(self) -> list[Product]:
        """Every product registered for this survey."""
        return self._ws.catalog.products(self.name)

    def product(self, name: str) -> Product:
        return self._ws.catalog.product(self.name, name)

    def orthomosaic(self) -> xr.DataArray:
        """The orthomosaic (RGB uint8 or multispectral DN), lazily, in the survey's UTM zone."""
        return open_product(self.product("orthomosaic"), workspace=self.workspace)

    def reflectance(self) -> xr.DataArray:
        """Surface reflectance (0–1), bands named by role with a ``wavelength`` coordinate (nm)."""
        return open_product(self.product("reflectance"), workspace=self.workspace)

    def index(self, name: str) -> xr.DataArray:
        """A vegetation index as a lazy DataArray: the stored product, else computed on the fly."""
        key = name.lower()
        try:
            return open_product(self.product(key), workspace=self.workspace)
        except NotFoundError:
            from belcheer.indices import compute

            source = None
            for candidate in ("reflectance", "orthomosaic"):
                try:
                    source = self.product(candidate)
                    break
                except NotFoundError:
                    continue
            if source is None:
                raise NotFoundError(f"survey {self.name!r} has no mosaic yet; run "
                                    f"`belcheer mosaic {self.name}` first") from None
            # the catalogue's own spelling keys the result ("EVI" for "evi"): take the one entry
            arr = next(iter(compute(source, [key]).values()))
            arr.name = key
            return arr

    def stats(self, index: str = "ndvi") -> gpd.GeoDataFrame:
        """Per-parcel statistics of ``index`` for this survey, joined to the parcels (EPSG:4326)."""
        import geopandas as gpd
        import pandas as pd

        from belcheer.zoning import load_parcels

        rows = self._ws.catalog.stats(survey=self.name, index_name=index.lower())
        table = pd.DataFrame(rows)
        parcels = load_parcels(self._ws)
        if table.empty:
            return gpd.GeoDataFrame(parcels.iloc[0:0])
        table = table.drop(columns=[c for c in ("survey",) if c in table])
        merged = parcels.merge(table, on="parcel_id", how="inner")
        return gpd.GeoDataFrame(merged, geometry="geometry", crs=parcels.crs)

    # -- display -------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Frame count, GSD (m), covered area (ha), bands, date — what the HTML repr shows."""
        from shapely.ops import unary_union

        feet = [c.footprint for c in self.flight_captures if c.footprint is not None]
        gsds = sorted(c.gsd_m for c in self.flight_captures if c.gsd_m)
        return {
            "name": self.name, "date": self.date.date().isoformat() if self.date else None,
            "frames": len(self.frames), "captures": len(self.captures),
            "panel_captures": len(self.panel_captures),
            "cameras": [c.key for c in self.cameras],
            "bands": [f"{b.name} {b.center_nm:.0f} nm" if b.center_nm else b.name for b in self.bands],
            "gsd_cm": round(100 * gsds[len(gsds) // 2], 2) if gsds else None,
            "area_ha": round(unary_union(feet).area / 1e4, 2) if feet else None,
            "epsg": self.epsg, "problems": len(self.problems) + sum(len(c.problems) for c in self.captures),
        }

    def _repr_html_(self) -> str:
        s = self.summary()
        rows = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
                       f"<td style='text-align:left'>{html.escape(', '.join(v) if isinstance(v, list) else str(v))}</td></tr>"
                       for k, v in s.items() if k != "name")
        prods = ", ".join(html.escape(p.name) for p in self.products()) if self.workspace else ""
        return (f"<div><b>Survey {html.escape(self.name)}</b> (судалгаа)<table>{rows}"
                f"<tr><th style='text-align:left'>products</th><td style='text-align:left'>{prods}</td></tr>"
                "</table></div>")

    def plot(self, index: str = "ndvi", parcels: bool = True, ax: Axes | None = None,
             max_pixels: int = 1_000_000) -> Axes:
        """Draw an index with its legend and the parcel outlines on top (matplotlib).

        The raster is read at a decimated resolution (at most ``max_pixels``) from the COG's
        overviews, so plotting a large mosaic stays quick.
        """
        import matplotlib.pyplot as plt
        import numpy as np
        from rasterio.enums import Resampling

        product = self.product(index.lower())
        with self._ws.open_product(product) as src:
            step = max(1, int(np.ceil(np.sqrt(src.width * src.height / max_pixels))))
            shape = (max(1, src.height // step), max(1, src.width // step))
            data = src.read(1, out_shape=shape, resampling=Resampling.average, masked=True)
            bounds, crs = src.bounds, src.crs
        if ax is None:
            _, ax = plt.subplots(figsize=(8, 7))
        diverging = product.kind is ProductKind.INDEX
        im = ax.imshow(data, extent=(bounds.left, bounds.right, bounds.bottom, bounds.top),
                       cmap="RdYlGn" if diverging else "viridis",
                       vmin=-0.2 if diverging else None, vmax=0.9 if diverging else None)
        label = f"{index.upper()}{' (relative)' if product.relative else ''}"
        plt.colorbar(im, ax=ax, shrink=0.8, label=label)
        if parcels:
            from shapely.geometry import box

            from belcheer.zoning import load_parcels

            gdf = load_parcels(self._ws)
            if len(gdf):
                gdf = gdf.to_crs(crs.to_wkt())
                gdf.boundary.plot(ax=ax, color="black", linewidth=0.8)
                seen = box(*bounds)
                for _, row in gdf.iterrows():
                    # parcels reach beyond the flight: name them where the raster shows them
                    part = row.geometry.intersection(seen)
                    if part.is_empty:
                        continue
                    p = part.representative_point()
                    ax.annotate(str(row.get("name") or row["parcel_id"]), (p.x, p.y), fontsize=7,
                                ha="center")
                ax.set_xlim(bounds.left, bounds.right)
                ax.set_ylim(bounds.bottom, bounds.top)
        ax.set_title(f"{self.name} — {label}")
        ax.set_xlabel(f"Easting (m, EPSG:{self.epsg})")
        ax.set_ylabel("Northing (m)")
        return ax

    def map(self, port: int | None = None, height: int = 500) -> Any:
        """An interactive map of this survey in the notebook, served from local tiles.

        Starts belcheer's own server on a free loopback port (once per workspace) and embeds
        its web map: no internet, no external tiles.
        """
        from IPython.display import IFrame

        from belcheer.api import serve_in_background

        url = serve_in_background(self._ws.root, port=port)
        return IFrame(f"{url}/?survey={self.name}", width="100%", height=height)


def timeseries(workspace: Workspace, parcel_id: str, index: str = "ndvi",
               stat: str = "mean") -> Any:
    """A parcel's ``stat`` of ``index`` over every survey, as a pandas Series indexed by date."""
    import pandas as pd

    rows = workspace.catalog.stats(parcel_id=str(parcel_id), index_name=index.lower())
    if not rows:
        return pd.Series(dtype=float, name=f"{index}_{stat}")
    frame = pd.DataFrame(rows)
    series = pd.Series(frame[stat].astype(float).to_numpy(),
                       index=pd.to_datetime(frame["date"]), name=f"{index}_{stat}")
    series.index.name = "date"
    return series.sort_index()


@dataclass
class NotebookWorkspace(Workspace):
    """The workspace as agronomists use it in Jupyter: surveys come back as :class:`SurveyView`,
    parcels as a GeoDataFrame, a parcel's history as a Series. Everything else is the core
    :class:`~belcheer.workspace.Workspace`, so every stage accepts it."""

    def survey(self, name: str) -> SurveyView:
        """The survey ``name`` bound to this workspace. Raises NotFoundError naming the known ones."""
        return SurveyView.bind(self.load_survey(name), self)

    def parcels(self, version: int | None = None) -> gpd.GeoDataFrame:
        """The parcel layer (current version by default) as a GeoDataFrame in EPSG:4326."""
        from belcheer.zoning import load_parcels

        return load_parcels(self, version=version)

    def timeseries(self, parcel_id: str, index: str = "ndvi", stat: str = "mean") -> pd.Series:
        """A parcel's ``stat`` of ``index`` over every survey, indexed by survey date."""
        return timeseries(self, parcel_id, index=index, stat=stat)


def open_workspace(root: str | os.PathLike[str] | None = None, settings: Settings | None = None,
                   catalog: str | None = None, storage: str | None = None) -> NotebookWorkspace:
    """Open (creating if needed) the workspace at ``root``, else at ``settings.workspace``, for a
    notebook: :func:`belcheer.workspace.open_workspace` (same arguments and errors) returning a
    :class:`NotebookWorkspace`."""
    ws = _open_core(root, settings=settings, catalog=catalog, storage=storage)
    return NotebookWorkspace(root=ws.root, catalog=ws.catalog, store=ws.store)

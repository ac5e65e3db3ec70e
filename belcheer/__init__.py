"""belcheer (бэлчээр, "pasture"): the open drone mapping pipeline for Mongolia's pasture and cropland.

Stages import as ``belcheer.ingest``, ``belcheer.orthomosaic``, ``belcheer.indices``,
``belcheer.zoning`` and ``belcheer.api``; the core (this package) holds the domain objects,
settings, the workspace and its catalog.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from belcheer import gdalenv, opencvenv

# before rasterio or pyogrio register their drivers: no reader may reach another file or the network
gdalenv.apply_environment()
# before OpenCV loads: the same input gives the same bits wherever NumPy put it in memory
opencvenv.apply_environment()

if TYPE_CHECKING:  # pragma: no cover
    from belcheer.config import Settings
    from belcheer.facade import NotebookWorkspace as Workspace
    from belcheer.facade import open_workspace

__version__ = "0.1.0"
__all__ = ["Settings", "Workspace", "open_workspace", "__version__"]


def __getattr__(name: str) -> Any:
    # imported on first use: the settings pull in pydantic-settings and the workspace the catalog
    # and pyarrow (≈ 0.1 s), which e.g. ``belcheer.zoning.zonal_stats`` never needs
    if name == "Settings":
        from belcheer.config import Settings

        return Settings
    if name == "open_workspace":
        from belcheer.facade import open_workspace

        return open_workspace
    if name == "Workspace":
        from belcheer.facade import NotebookWorkspace

        return NotebookWorkspace
    raise AttributeError(f"module 'belcheer' has no attribute {name!r}")

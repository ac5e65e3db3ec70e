"""belcheer (бэлчээр, "pasture"): the open drone mapping pipeline for Mongolia's pasture and cropland.

Stages import as ``belcheer.ingest``, ``belcheer.orthomosaic``, ``belcheer.indices``,
``belcheer.zoning`` and ``belcheer.api``; the core (this package) holds the domain objects,
settings, the workspace and its catalog.
"""

from __future__ import annotations

from belcheer.config import Settings
from belcheer.workspace import Workspace, open_workspace

__version__ = "0.1.0"
__all__ = ["Settings", "Workspace", "open_workspace", "__version__"]

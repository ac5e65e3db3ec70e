"""belcheer.api — the FastAPI server: map tiles, STAC, parcels as OGC API – Features, statistics,
exports, pipeline jobs, users, and the web map for land officers and herders."""

from belcheer.api.app import create_app, serve, serve_in_background

__all__ = ["create_app", "serve", "serve_in_background"]

"""Logging set-up for the CLI and the server (libraries only call ``logging.getLogger``)."""

from __future__ import annotations

import logging


def configure_logging(level: str = "INFO") -> None:
    """Send belcheer's log records to stderr at ``level``; quiet the chattiest libraries."""
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("rasterio", "distributed", "fiona", "pyogrio", "PIL", "matplotlib"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))

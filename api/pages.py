"""Server-rendered pages: Jinja templates with the one message catalogue, Mongolian by default."""

from __future__ import annotations

from pathlib import Path

from fastapi.templating import Jinja2Templates

from belcheer.api.messages import catalogue, lang_or_default, t
from belcheer.zoning.numbers import quantity

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
#: MapLibre GL JS and CSS, copied there from the npm registry by the build (api/web/vendor.py):
#: package data of every wheel, never committed, never from a CDN; served under /static/vendor
VENDOR_DIR = STATIC_DIR / "vendor"

templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.globals["t"] = t
templates.env.globals["catalogue"] = catalogue
templates.env.globals["lang_or_default"] = lang_or_default
templates.env.filters["q"] = quantity  # decision numbers with sensible precision (never "0" for 0.1)

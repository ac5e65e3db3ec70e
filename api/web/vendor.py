"""Put the web map's JavaScript and CSS (MapLibre GL) into ``api/static/vendor``.

MapLibre comes from the npm registry (``npm ci`` over ``package-lock.json`` in this folder), never
from a CDN. The copies in ``api/static/vendor`` are package data, so a built wheel carries them and
``belcheer serve`` from a plain ``pip install`` draws a map. Run by the build (``setup.py``'s
``build_py``) and by ``make web``; standard library only, since it runs before belcheer is
installed. Fast when nothing changed: npm runs only when ``node_modules`` is missing or older than
the lock file, and a file is copied only when its bytes differ.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
from pathlib import Path

WEB = Path(__file__).resolve().parent
VENDOR = WEB.parent / "static" / "vendor"
DIST = WEB / "node_modules" / "maplibre-gl" / "dist"
#: what the page loads, and the licence that must travel with it
FILES: tuple[str, ...] = ("maplibre-gl.js", "maplibre-gl.css", "LICENSE.txt")
#: set to "skip" to build a package without the web map (the page then says MapLibre is missing)
SKIP_ENV = "BELCHEER_WEB"


class VendorError(RuntimeError):
    """The web map's files cannot be fetched (no npm, npm failed)."""


def _npm_stale() -> bool:
    marker = WEB / "node_modules" / ".package-lock.json"  # written by every npm ci/install
    if not all((DIST / f).is_file() for f in FILES) or not marker.is_file():
        return True
    return (WEB / "package-lock.json").stat().st_mtime > marker.stat().st_mtime


def _npm_ci() -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise VendorError(
            "building belcheer's web map needs npm to fetch MapLibre GL from the npm registry: install "
            "Node.js/npm (Debian: apt-get install npm), or set BELCHEER_WEB=skip to build without the map")
    done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=WEB)
    if done.returncode != 0:
        raise VendorError(f"`npm ci` in {WEB} failed (exit {done.returncode}); see npm's message above")


def vendor(log=print) -> list[Path]:
    """Make ``api/static/vendor`` hold MapLibre GL's files; returns the files copied (none when
    they were already up to date). Raises :class:`VendorError` when they cannot be had."""
    if os.environ.get(SKIP_ENV) == "skip":
        log("BELCHEER_WEB=skip: building without the web map's JavaScript")
        return []
    have = all((VENDOR / f).is_file() for f in FILES)
    if not (WEB / "package.json").is_file():
        # an sdist or a copy without the npm project: what was vendored into it is all there is
        if have:
            return []
        raise VendorError(f"no {WEB / 'package.json'} and no vendored files in {VENDOR}")
    if _npm_stale():
        if have and shutil.which("npm") is None:
            return []  # vendored earlier; without npm, keep those rather than fail
        log(f"fetching MapLibre GL from the npm registry (npm ci in {WEB})")
        _npm_ci()
    VENDOR.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in FILES:
        src, dst = DIST / name, VENDOR / name
        if dst.is_file() and filecmp.cmp(src, dst, shallow=False):
            continue
        tmp = dst.with_name(dst.name + ".tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)  # never a half-written file for a server that is running
        copied.append(dst)
    if copied:
        log(f"vendored {', '.join(p.name for p in copied)} into {VENDOR}")
    return copied


if __name__ == "__main__":
    try:
        vendor()
    except VendorError as exc:
        sys.exit(f"error: {exc}")

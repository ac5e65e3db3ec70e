"""A plain (non-editable) install serves a working map: the wheel carries MapLibre GL's files.

The wheel is built from a copy of the tracked files only — as a fresh clone has them, with no
``api/static/vendor`` — so the build step itself must put MapLibre (from the npm registry) into
the package. The copy borrows this checkout's ``api/web/node_modules`` when there is one, so npm
need not fetch again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
VENDORED = ("maplibre-gl.js", "maplibre-gl.css", "LICENSE.txt")


def _tracked_copy(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    assert not (dest / "api" / "static" / "vendor").exists(), "vendored files must not be tracked"
    modules = REPO / "api" / "web" / "node_modules"
    if modules.is_dir():
        (dest / "api" / "web" / "node_modules").symlink_to(modules, target_is_directory=True)
    return dest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = _tracked_copy(tmp / "src")
    out = tmp / "dist"
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    (whl,) = out.glob("belcheer-*.whl")
    return whl


@pytest.mark.slow
def test_wheel_carries_the_maplibre_files(wheel):
    dist = REPO / "api" / "web" / "node_modules" / "maplibre-gl" / "dist"
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for name in VENDORED:
            assert f"belcheer/api/static/vendor/{name}" in names, sorted(n for n in names if "static" in n)
        js = z.read("belcheer/api/static/vendor/maplibre-gl.js")
        assert {"belcheer/api/static/map.js", "belcheer/api/templates/map.html",
                "belcheer/api/messages.json"} <= names
    assert len(js) > 500_000  # the whole minified MapLibre GL, not a stub (4.x: ~800 kB)
    assert b"maplibregl" in js[:5000] or b"maplibre" in js[:5000]
    if dist.is_dir():
        assert js == (dist / "maplibre-gl.js").read_bytes()
    # nothing of the build tooling or node_modules leaks into the package
    assert not any("node_modules" in n or n.startswith("belcheer/api/web/") for n in names), \
        sorted(n for n in names if "/web/" in n)


@pytest.mark.slow
def test_plain_install_serves_the_map_and_its_javascript(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps",
                           str(wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    # the dependencies come from this test's environment; belcheer itself only from the wheel
    # (a bare path line: the editable install's finder .pth in there is not run)
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    where = subprocess.run([str(py), "-c", "import belcheer.api.pages as p; print(p.VENDOR_DIR)"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(site), where.stdout

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BELCHEER_")}
    server = subprocess.Popen([str(venv / "bin" / "belcheer"), "--workspace", str(tmp_path / "ws"), "serve",
                               "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stdout.read().decode(errors="replace")
            try:
                page = httpx.get(f"{base}/", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "belcheer serve did not answer in 60 s"
                time.sleep(0.3)
        assert page.status_code == 200
        assert '<script src="/static/vendor/maplibre-gl.js"></script>' in page.text
        assert 'data-vendor="yes"' in page.text and '<p class="warn">' not in page.text
        js = httpx.get(f"{base}/static/vendor/maplibre-gl.js", timeout=10)
        css = httpx.get(f"{base}/static/vendor/maplibre-gl.css", timeout=10)
        assert js.status_code == 200 and css.status_code == 200
        assert "javascript" in js.headers["content-type"] and "css" in css.headers["content-type"]
        with zipfile.ZipFile(wheel) as z:
            want = z.read("belcheer/api/static/vendor/maplibre-gl.js")
        assert hashlib.sha256(js.content).digest() == hashlib.sha256(want).digest()
        assert httpx.get(f"{base}/static/map.js", timeout=10).status_code == 200
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()


def test_vendoring_is_idempotent():
    """A second run (as every `make test` does) copies nothing and runs no npm."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("vendor_web", REPO / "api" / "web" / "vendor.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.vendor(log=lambda *_: None)
    started = time.monotonic()
    assert mod.vendor(log=lambda *_: None) == []
    assert time.monotonic() - started < 2.0
    for name in VENDORED:
        assert (REPO / "api" / "static" / "vendor" / name).stat().st_size > 1000

"""Build step only (everything else is in pyproject.toml): before setuptools collects package
data, put the web map's MapLibre GL files, fetched from the npm registry, into api/static/vendor,
so every wheel — and a plain ``pip install`` — carries the map's JavaScript and CSS."""

import importlib.util
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def _vendor_web() -> None:
    spec = importlib.util.spec_from_file_location("belcheer_web_vendor", HERE / "api" / "web" / "vendor.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        module.vendor()
    except module.VendorError as exc:
        raise SystemExit(f"error: {exc}") from None


class BuildPyWithWeb(build_py):
    def run(self) -> None:
        _vendor_web()
        # the package-data listing is computed lazily and cached: drop it so the new files count
        self.__dict__.pop("data_files", None)
        super().run()


setup(cmdclass={"build_py": BuildPyWithWeb})

"""Benchmark: belcheer's header scan against ``exiftool -json -n`` on the same ≥ 500 frames.

The real frames (BELCHEER_REAL_DATA, default ../shared/data) are replicated with symlinks into a
temporary folder until there are at least ``--min-files`` of them, then read by

* ``exiftool -json -n -r`` (one process, the way people batch it),
* ``belcheer.ingest.scan(quality=False)`` — headers only, the like-for-like comparison,
* ``belcheer.ingest.scan(quality=True)`` — plus the decimated pixel checks (blur, black, saturated).

Frames/s and the ratio to exiftool are printed. Nothing is written outside the temporary folder.
exiftool: ``apt-get install libimage-exiftool-perl`` (Debian/Ubuntu) or ``brew install exiftool``.

Usage: ``python bench/ingest.py [--min-files 500] [--data DIR]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FOLDERS = ("brighton_beach_rgb", "rededge_tutorial", "rededge_mx_slovakia", "sequoia_capture", "p4p_tuniu")
SUFFIXES = {".jpg", ".jpeg", ".tif", ".tiff"}


def _frames(data: Path) -> list[Path]:
    files = []
    for name in FOLDERS:
        folder = data / name
        if not folder.is_dir():
            sys.exit(f"real data folder {folder} is missing: set BELCHEER_REAL_DATA")
        files += sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES
                        and "odm_dem" not in p.parts)
    return files


def replicate(files: list[Path], out: Path, min_files: int) -> int:
    """Symlink ``files`` into ``out/rep_NNN/<dataset>/`` until at least ``min_files`` links exist."""
    n = rep = 0
    while n < min_files:
        for f in files:
            dest = out / f"rep_{rep:03d}" / f.parent.name / f.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(f, dest)
            n += 1
        rep += 1
    return n


def _warm(files: list[Path]) -> None:
    # read every file once so both tools start from the same (warm) page cache
    for f in files:
        with open(f, "rb") as fh:
            while fh.read(1 << 20):
                pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--min-files", type=int, default=500)
    default = os.environ.get("BELCHEER_REAL_DATA") or str(Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--data", type=Path, default=Path(default))
    args = ap.parse_args()

    from belcheer.ingest import scan

    files = _frames(args.data)
    _warm(files)
    exiftool = shutil.which("exiftool")
    with tempfile.TemporaryDirectory(prefix="belcheer-bench-") as tmp:
        root = Path(tmp) / "frames"
        n = replicate(files, root, args.min_files)
        print(f"{n} frames ({len(files)} real files replicated with symlinks) in {root}")
        scan(root / "rep_000", quality=False)  # import and first-call costs out of the timing

        t0 = time.perf_counter()
        s = scan(root, quality=False)
        t_head = time.perf_counter() - t0
        assert len(s.frames) == n, (len(s.frames), n)
        t0 = time.perf_counter()
        scan(root, quality=True)
        t_quality = time.perf_counter() - t0
        print(f"belcheer scan, headers only     : {t_head:7.2f} s  {n / t_head:8.1f} frames/s")
        print(f"belcheer scan, + pixel checks   : {t_quality:7.2f} s  {n / t_quality:8.1f} frames/s")

        if exiftool is None:
            print("exiftool not found: install it (Debian/Ubuntu: `apt-get install libimage-exiftool-perl`,"
                  " macOS: `brew install exiftool`) to get the comparison", file=sys.stderr)
            return 2
        t0 = time.perf_counter()
        proc = subprocess.run([exiftool, "-json", "-n", "-r", "-q", str(root)], capture_output=True, check=False)
        t_exif = time.perf_counter() - t0
        if proc.returncode not in (0, 1):
            print(proc.stderr.decode(errors="replace"), file=sys.stderr)
            return 1
        version = subprocess.run([exiftool, "-ver"], capture_output=True, text=True).stdout.strip()
        print(f"exiftool {version} -json -n -r   : {t_exif:7.2f} s  {n / t_exif:8.1f} frames/s")
        print(f"ratio, headers only (belcheer/exiftool)      : {t_exif / t_head:5.1f}x")
        print(f"ratio, with pixel checks (belcheer/exiftool) : {t_exif / t_quality:5.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Small I/O helpers shared by the stages: atomic writes and confined paths.

Outputs are written to a temporary sibling and renamed into place, so a crash never leaves a
half-written product where a finished one is expected, and inputs are never opened for writing.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from belcheer.errors import UnsafePathError


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` if the block succeeds.

    The temporary file is removed if the block raises. The rename is atomic on one filesystem.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    sfx = suffix if suffix is not None else "".join(target.suffixes) or ".tmp"
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=sfx, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    tmp_path.unlink()  # let writers (GDAL, pyogrio) create it themselves
    try:
        yield tmp_path
        if tmp_path.is_dir():
            if target.exists():
                import shutil

                old = target.with_name(f".{target.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                target.rename(old)
                tmp_path.rename(target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp_path.rename(target)
        else:
            os.replace(tmp_path, target)
    except BaseException:
        if tmp_path.is_dir():
            import shutil

            shutil.rmtree(tmp_path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                tmp_path.unlink()
        raise


def write_text_atomic(target: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 text to ``target`` atomically (fsync before rename)."""
    with atomic_path(target) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(target)


def write_json_atomic(target: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented UTF-8 JSON (Cyrillic kept readable) atomically."""
    return write_text_atomic(target, json.dumps(obj, ensure_ascii=False, indent=2, default=str))


def confined(root: str | os.PathLike[str], candidate: str | os.PathLike[str]) -> Path:
    """Resolve ``candidate`` (relative to ``root`` if not absolute) and require it inside ``root``.

    Symlinks are resolved first, so a link pointing out of ``root`` is refused too.
    """
    root_r = Path(root).resolve()
    cand = Path(candidate)
    full = (cand if cand.is_absolute() else root_r / cand).resolve()
    if not full.is_relative_to(root_r):
        raise UnsafePathError(f"path {str(candidate)!r} leaves the allowed folder {root_r}")
    return full


def safe_name(name: str) -> str:
    """A name usable as one path component: refuses separators, ``..`` and control characters.

    Cyrillic and other letters are kept: survey names like ``Сэлэнгэ-2026-07`` are fine.
    """
    bad = {"/", "\\", "\x00"}
    if not name or name in {".", ".."} or any(c in bad or ord(c) < 32 for c in name):
        raise UnsafePathError(f"{name!r} is not a usable name: no slashes, '..' or control characters")
    if len(name.encode("utf-8")) > 200:
        raise UnsafePathError(f"name {name[:40]!r}… is longer than 200 bytes")
    return name

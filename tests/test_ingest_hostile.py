"""Hostile inputs: every bad file is reported with its own code, nothing crashes, nothing is
written outside the workspace and the real inputs are left untouched."""

from __future__ import annotations

import hashlib
import os
import shutil
from datetime import datetime
from pathlib import Path

import pytest
from conftest import real_dataset
from test_ingest_helpers import BOMB_XMP, dji_xmp, texture, write_jpeg

from belcheer.ingest import ingest, scan
from belcheer.models import Severity


def _fingerprint(folder: Path) -> dict[str, tuple[int, str]]:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[str(p)] = (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture
def hostile(tmp_path: Path, real_data: Path) -> Path:
    frames = tmp_path / "frames"
    sub = frames / "sub"
    sub.mkdir(parents=True)
    # two good frames so the survey has something usable
    for i in range(2):
        write_jpeg(frames / f"DJI_{i:04d}.JPG", texture(seed=i), lat=47.9 + 1e-4 * i, xmp=dji_xmp(),
                   time=datetime(2026, 7, 1, 10, 0, 2 * i))
    (frames / "DJI_0100.JPG").write_bytes(b"")                                  # zero-byte
    mica = real_dataset(real_data, "rededge_tutorial") / "IMG_0001_1.tif"
    (frames / "IMG_0200_1.tif").write_bytes(mica.read_bytes()[:100_000])      # truncated TIFF
    (frames / "DJI_0101.JPG").write_text("this is a flight log, not a picture\n")  # text as .jpg
    os.symlink(frames, sub / "loop")                                            # symlink loop
    brighton = real_dataset(real_data, "brighton_beach_rgb") / "DJI_0018.JPG"
    shutil.copyfile(brighton, sub / "кадр_бэлчээр.JPG")                         # Cyrillic name
    write_jpeg(frames / "DJI_0102.JPG", texture(seed=5), xmp=BOMB_XMP, time=datetime(2026, 7, 1, 10, 1))           # XML entity bomb
    cut = brighton.read_bytes()
    (frames / "DJI_0103.JPG").write_bytes(cut[: len(cut) // 2])                  # truncated JPEG
    return frames


@pytest.mark.real
def test_hostile_files_reported_with_their_codes(hostile: Path, real_data: Path, tmp_path: Path, workspace):
    real_before = {**_fingerprint(real_dataset(real_data, "rededge_tutorial")),
                   **_fingerprint(real_dataset(real_data, "brighton_beach_rgb"))}
    frames_before = _fingerprint(hostile)
    tree_before = _tree(tmp_path)

    s = ingest(workspace, hostile, survey="hostile")

    codes = {f.path.name: {p.code for p in f.problems} for f in s.frames}
    assert codes["DJI_0100.JPG"] == {"zero_byte"}
    assert codes["IMG_0200_1.tif"] == {"truncated"}
    assert codes["DJI_0101.JPG"] == {"not_an_image"}
    assert codes["DJI_0102.JPG"] == {"xmp_unsafe"}
    assert "truncated" in codes["DJI_0103.JPG"]
    # the Cyrillic copy of a real frame reads like the original
    cyr = next(f for f in s.frames if f.path.name == "кадр_бэлчээр.JPG")
    assert cyr.usable and cyr.capture_id == "кадр_бэлчээр"
    assert cyr.pose.alt_rel_m == pytest.approx(39.8)
    assert codes["DJI_0000.JPG"] == set() and codes["DJI_0001.JPG"] == set()
    # the loop is reported once and not followed (each real file read once)
    assert [p.code for p in s.problems].count("symlink_loop") == 1
    assert sorted(f.path.name for f in s.frames).count("DJI_0000.JPG") == 1
    for f in s.frames:
        for p in f.problems:
            if p.code in {"zero_byte", "truncated", "not_an_image", "xmp_unsafe"}:
                assert p.severity is Severity.ERROR
    assert {c.id for c in s.flight_captures} == {"DJI_0000", "DJI_0001", "кадр_бэлчээр"}

    # inputs untouched, nothing new beside them: only the workspace changed
    assert _fingerprint(hostile) == frames_before
    assert {**_fingerprint(real_dataset(real_data, "rededge_tutorial")),
            **_fingerprint(real_dataset(real_data, "brighton_beach_rgb"))} == real_before
    new = {p for p in _tree(tmp_path) - tree_before if not p.startswith("ws")}
    assert new == set()
    assert workspace.survey("hostile").capture("кадр_бэлчээр").usable


def test_only_bad_files_is_a_clean_error(tmp_path: Path, workspace):
    from belcheer.errors import NoUsableFramesError

    frames = tmp_path / "bad"
    frames.mkdir()
    (frames / "a.jpg").write_bytes(b"")
    (frames / "b.tif").write_bytes(b"II*\x00\xff\xff\xff\x00")  # IFD beyond the end
    (frames / "c.jpeg").write_bytes(b"\x89PNG\r\n\x1a\n")
    s = scan(frames)
    assert sorted(p.code for f in s.frames for p in f.problems) == ["not_an_image", "truncated", "zero_byte"]
    with pytest.raises(NoUsableFramesError, match="none usable"):
        ingest(workspace, frames)


def test_fifo_and_dangling_link_do_not_block(tmp_path: Path):
    frames = tmp_path / "odd"
    frames.mkdir()
    os.mkfifo(frames / "pipe.jpg")
    os.symlink(tmp_path / "missing.tif", frames / "gone.tif")
    write_jpeg(frames / "DJI_0001.JPG", texture(), xmp=dji_xmp())
    s = scan(frames)
    codes = {f.path.name: [p.code for p in f.problems] for f in s.frames}
    assert codes == {"pipe.jpg": ["unreadable"], "gone.tif": ["unreadable"], "DJI_0001.JPG": []}

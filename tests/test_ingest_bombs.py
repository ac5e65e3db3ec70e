"""Decompression bombs: a frame's declared size is checked against a pixel budget and its
camera's native size before any pixel is decoded, and the quality check's reduced read is
bounded whatever the header says."""

from __future__ import annotations

import struct
import zlib
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from test_ingest_helpers import dji_xmp, texture, write_jpeg

from belcheer.ingest import frames as frames_mod
from belcheer.ingest import ingest, quality, scan


def _xmp(model: str) -> bytes:
    return dji_xmp(model=model).replace(b'drone-dji:FlightPitchDegree="+0.00"',
                                        b'drone-dji:FlightPitchDegree="+0.00" drone-dji:GpsLatitude="47.9" '
                                        b'drone-dji:GpsLongtitude="106.9"')


def bomb_tiff(path: Path, width: int, height: int, model: str = "FC300S") -> Path:
    """A classic TIFF declaring ``width`` × ``height`` 8-bit pixels in one deflate strip that
    holds a few hundred bytes: small on disk, gigantic if decoded."""
    strip = zlib.compress(b"\0" * 4096)
    make, mdl, xmp = b"DJI\0", model.encode() + b"\0", _xmp(model)
    header = 8
    entries = 12
    ifd_size = 2 + entries * 12 + 4
    extra_at = header + ifd_size
    make_off = extra_at
    model_off = make_off + len(make)
    xmp_off = model_off + len(mdl)
    strip_off = xmp_off + len(xmp)
    tags = [  # (tag, type, count, value-or-offset); types: 1 BYTE, 2 ASCII, 3 SHORT, 4 LONG
        (256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 8), (262, 3, 1, 1),
        (271, 2, len(make), make_off), (272, 2, len(mdl), model_off), (273, 4, 1, strip_off),
        (277, 3, 1, 1), (278, 4, 1, height), (279, 4, 1, len(strip)), (700, 1, len(xmp), xmp_off),
    ]
    out = bytearray(b"II*\0" + struct.pack("<I", header) + struct.pack("<H", entries))
    for tag, typ, count, value in tags:
        packed = struct.pack("<HHH", value, 0, 0)[:4] if typ == 3 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, typ, count) + packed.ljust(4, b"\0")
    out += struct.pack("<I", 0) + make + mdl + xmp + strip
    path.write_bytes(bytes(out))
    return path


@pytest.fixture
def pixel_reads(monkeypatch):
    """Record every decimated pixel read instead of doing it (a bomb must never get there)."""
    calls: list[str] = []

    def fake(path):
        calls.append(Path(path).name)
        return np.zeros((8, 8), np.float32), 255.0

    monkeypatch.setattr(quality, "read_decimated_tiff", fake)
    monkeypatch.setattr(quality, "read_decimated_jpeg", fake)
    return calls


def test_bombs_are_refused_before_any_pixel_is_read(tmp_path: Path, pixel_reads):
    folder = tmp_path / "frames"
    folder.mkdir()
    bomb_tiff(folder / "IMG_0001.tif", 100_000, 100_000)
    bomb_tiff(folder / "IMG_0002.tif", 20_000, 20_000)
    bomb_tiff(folder / "IMG_0003.tif", 6000, 4000, model="FC6310")   # larger than that camera takes
    bomb_tiff(folder / "IMG_0004.tif", 5472, 3648, model="FC6310")   # its native size: plausible
    assert (folder / "IMG_0001.tif").stat().st_size < 10_000
    s = scan(folder)
    codes = {f.path.name: [p.code for p in f.problems] for f in s.frames}
    assert codes["IMG_0001.tif"] == ["too_large"]
    assert codes["IMG_0002.tif"] == ["too_large"]
    assert codes["IMG_0003.tif"] == ["too_large"]
    assert "too_large" not in codes["IMG_0004.tif"]
    assert pixel_reads == ["IMG_0004.tif"]
    msg = next(p.message for f in s.frames if f.path.name == "IMG_0001.tif" for p in f.problems)
    assert "100000 × 100000" in msg and "200 MP" in msg
    msg = next(p.message for f in s.frames if f.path.name == "IMG_0003.tif" for p in f.problems)
    assert "FC6310 takes at most 5472 × 3648" in msg


def test_a_bomb_does_not_stop_the_survey(tmp_path: Path, workspace):
    folder = tmp_path / "frames"
    folder.mkdir()
    bomb_tiff(folder / "IMG_0001.tif", 100_000, 100_000)
    for i in range(2):
        write_jpeg(folder / f"DJI_{i:04d}.JPG", texture(seed=i), lat=47.9 + 1e-4 * i, xmp=dji_xmp(),
                   time=datetime(2026, 7, 1, 10, 0, 2 * i))
    s = ingest(workspace, folder, survey="bomb")
    assert {c.id for c in s.flight_captures} == {"DJI_0000", "DJI_0001"}
    bomb = next(f for f in s.frames if f.path.name == "IMG_0001.tif")
    assert not bomb.usable and [p.code for p in bomb.problems] == ["too_large"]


def test_reduced_read_is_bounded_in_absolute_size():
    quality._check_reduced(2000, 2000)
    with pytest.raises(ValueError, match="more than 4,000,000"):
        quality._check_reduced(12_500, 12_500)  # 100000² at the largest decimation libjpeg has
    assert frames_mod.MAX_FRAME_PIXELS // 64 < quality.MAX_REDUCED_PIXELS  # any frame in budget fits

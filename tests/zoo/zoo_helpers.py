"""Shared by the zoo-add tests: the fixture folder, file snapshots, a weight byte to change."""

from __future__ import annotations

import hashlib
from pathlib import Path

import tflite

from tests.conftest import REPO

ADD = REPO / "tests" / "fixtures" / "zoo_add"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(folder: Path) -> dict[str, str]:
    """Every file of a folder (but the lock file) and its sha256."""
    return {p.name: sha256(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name != ".manifest.lock"}


def load_weights_offset(path: Path) -> int:
    """Offset of the first byte of the largest constant buffer of a .tflite (a weight)."""
    data = path.read_bytes()
    model = tflite.Model.GetRootAsModel(data, 0)
    best = max((model.Buffers(i) for i in range(model.BuffersLength())), key=lambda b: b.DataLength())
    return data.index(best.DataAsNumpy().tobytes())


def with_one_weight_changed(src: Path, dest: Path) -> Path:
    """``src`` with one weight byte flipped: the same network, another file."""
    blob = bytearray(src.read_bytes())
    blob[load_weights_offset(src)] ^= 0x01
    dest.write_bytes(bytes(blob))
    return dest

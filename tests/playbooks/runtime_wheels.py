"""Real runtime and numpy wheels for this machine (x86_64), fetched from PyPI once and cached outside the
repository (``~/.cache/socfarm-test-wheels/runtime``, or ``$SOCFARM_TEST_WHEELS/runtime``).

tflite-runtime 2.14.0 was built against numpy 1.x: with numpy 1.26 it runs, with numpy 2 (API too new)
and with numpy 1.19 (API too old: "module compiled against API version 0x10 but this version of numpy is
0xd", what the XU3's Debian 11 numpy gave) it imports and then fails on the first interpreter.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import WHEEL_CACHE

CACHE = WHEEL_CACHE / "runtime"
# file name -> (requirement, python version, platform tag)
WHEELS = {
    "tflite_runtime-2.14.0-cp311-cp311-manylinux2014_x86_64.whl": ("tflite-runtime==2.14.0", "3.11",
                                                                   "manylinux2014_x86_64"),
    "numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl": ("numpy==1.26.4", "3.11",
                                                                                "manylinux2014_x86_64"),
    "numpy-2.2.6-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl": ("numpy==2.2.6", "3.11",
                                                                               "manylinux2014_x86_64"),
    "tflite_runtime-2.14.0-cp38-cp38-manylinux2014_x86_64.whl": ("tflite-runtime==2.14.0", "3.8",
                                                                 "manylinux2014_x86_64"),
    "numpy-1.19.5-cp38-cp38-manylinux2010_x86_64.whl": ("numpy==1.19.5", "3.8", "manylinux2010_x86_64"),
}


def wheel(name: str) -> Path:
    """The cached wheel ``name`` (one of WHEELS), downloaded with pip (--no-deps) the first time."""
    path = CACHE / name
    if path.is_file():
        return path
    requirement, python, platform = WHEELS[name]
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE, prefix=".download-") as tmp:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--platform", platform,
             "--python-version", python, "--implementation", "cp", "--disable-pip-version-check", "-d", tmp,
             requirement], capture_output=True, text=True, timeout=600)
        got = Path(tmp) / name
        if proc.returncode != 0 or not got.is_file():
            pytest.fail(f"pip could not download {name} ({requirement}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        os.replace(got, path)
    return path


def wheelhouse(folder: Path, *names: str) -> Path:
    """A lab's wheelhouse: ``folder`` holding copies of the cached wheels ``names``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(wheel(name), folder / name)
    return folder


def venv_with(python: str, folder: Path, *names: str) -> Path:
    """A venv made by ``python`` with the cached wheels ``names`` installed offline; its python."""
    subprocess.run([python, "-m", "venv", str(folder)], check=True, timeout=300)
    py = folder / "bin" / "python"
    proc = subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
                           "--disable-pip-version-check", *[str(wheel(n)) for n in names]],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return py


def python38() -> str | None:
    """A CPython 3.8 that runs (SOCFARM_TEST_PYTHON38, pyenv's, python3.8 on PATH), else None. Each is tried:
    a pyenv shim on PATH answers to python3.8 and then fails when no 3.8 is selected."""
    candidates = [os.environ.get("SOCFARM_TEST_PYTHON38")]
    candidates += sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.8*/bin/python3.8"))
    candidates.append(shutil.which("python3.8"))
    for c in candidates:
        if not c:
            continue
        try:
            proc = subprocess.run([c, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                  capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if proc.returncode == 0 and proc.stdout.strip() == "3.8":
            return c
    return None

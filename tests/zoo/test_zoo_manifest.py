"""Manifest load/save/verify, the committed fixtures, and the no-TensorFlow import rule."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.errors import ZooError
from orchestrator.zoo import (
    Manifest,
    ModelEntry,
    build_zoo,
    load_manifest,
    model_stats,
    save_manifest,
    verify_files,
)
from orchestrator.zoo.__main__ import main as zoo_main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"
REPO = Path(__file__).resolve().parents[2]


def _entry(**overrides) -> ModelEntry:
    data = dict(
        name="tiny_cnn",
        display_name="Tiny CNN",
        dtype="float32",
        file="tiny_cnn_float32.tflite",
        sha256="0" * 64,
        bytes=10,
        input_shape=[1, 32, 32, 3],
        input_dtype="float32",
        params=618,
        macs=106_656,
    )
    data.update(overrides)
    return ModelEntry(**data)


def _manifest(*entries: ModelEntry) -> Manifest:
    return Manifest(builder_hash="abc", tensorflow_version="2.21.0", weights="random, seed 0", models=list(entries))


# --------------------------------------------------------------------------- fixtures


def test_fixture_manifest_matches_files():
    manifest = load_manifest(FIXTURES / "manifest.json")
    assert verify_files(manifest, FIXTURES) == []
    assert {(e.name, e.dtype) for e in manifest.models} == {("tiny_cnn", "float32"), ("tiny_cnn", "int8")}
    assert "random" in manifest.weights and "seed 0" in manifest.weights


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_fixture_entries_match_stats(dtype):
    manifest = load_manifest(FIXTURES / "manifest.json")
    entry = manifest.find("tiny_cnn", dtype)
    assert entry is not None
    path = FIXTURES / entry.file
    assert entry.bytes == path.stat().st_size < 100_000
    stats = model_stats(path)
    assert entry.input_shape == list(stats.input_shape) == [1, 32, 32, 3]
    assert entry.input_dtype == stats.input_dtype == dtype
    assert (entry.params, entry.macs) == (stats.params, stats.macs) == (618, 106_656)


def test_cli_verify_fixtures(capsys):
    assert zoo_main(["verify", "--out", str(FIXTURES)]) == 0
    assert "2 models OK" in capsys.readouterr().out


def test_importing_zoo_does_not_import_tensorflow():
    code = (
        "import sys, orchestrator.zoo, orchestrator.zoo.__main__\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "assert not bad, bad[:5]\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


# --------------------------------------------------------------------------- load / save


def test_round_trip_and_find(tmp_path):
    manifest = _manifest(_entry(), _entry(dtype="int8", file="tiny_cnn_int8.tflite", input_dtype="int8"))
    path = tmp_path / "sub" / "manifest.json"
    save_manifest(manifest, path)
    assert load_manifest(path) == manifest
    assert [p.name for p in path.parent.iterdir()] == ["manifest.json"]  # no temporary left behind
    assert manifest.find("tiny_cnn", "int8").file == "tiny_cnn_int8.tflite"
    assert manifest.find("tiny_cnn", "float16") is None
    assert manifest.find("alexnet", "float32") is None
    assert manifest.manifest_version == 1


def test_missing_manifest(tmp_path):
    path = tmp_path / "manifest.json"
    with pytest.raises(ZooError, match=str(path)):
        load_manifest(path)


def test_bad_json(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text('{"manifest_version": 1,')
    with pytest.raises(ZooError, match=str(path)) as info:
        load_manifest(path)
    assert "invalid JSON" in str(info.value)


def test_unknown_key(tmp_path):
    path = tmp_path / "manifest.json"
    data = _manifest(_entry()).model_dump(mode="json")
    data["models"][0]["colour"] = "blue"
    path.write_text(json.dumps(data))
    with pytest.raises(ZooError, match=str(path)) as info:
        load_manifest(path)
    assert "colour" in str(info.value)


def test_unknown_top_level_key_and_bad_values(tmp_path):
    path = tmp_path / "manifest.json"
    data = _manifest(_entry()).model_dump(mode="json")
    data["extra"] = 1
    data["models"][0]["dtype"] = "float16"
    data["models"][0]["sha256"] = "xyz"
    path.write_text(json.dumps(data))
    with pytest.raises(ZooError, match=str(path)) as info:
        load_manifest(path)
    for word in ("extra", "dtype", "sha256"):
        assert word in str(info.value)


def test_verify_files_reports_missing_and_mismatch(tmp_path):
    good = tmp_path / "a.tflite"
    good.write_bytes(b"hello")
    import hashlib

    sha = hashlib.sha256(b"hello").hexdigest()
    manifest = _manifest(
        _entry(file="a.tflite", sha256=sha, bytes=5),
        _entry(dtype="int8", file="b.tflite", sha256=sha),
    )
    assert verify_files(manifest, tmp_path) == [f"tiny_cnn int8: missing file {tmp_path / 'b.tflite'}"]
    good.write_bytes(b"hellO")
    problems = verify_files(manifest, tmp_path)
    assert len(problems) == 2 and "sha256 mismatch" in problems[0]


def test_build_zoo_rejects_unknown_names_before_tensorflow(tmp_path):
    with pytest.raises(ZooError, match="nosuchnet"):
        build_zoo(tmp_path, names=["nosuchnet"])
    with pytest.raises(ZooError, match="float16"):
        build_zoo(tmp_path, names=["tiny_cnn"], dtypes=["float16"])
    assert not (tmp_path / "manifest.json").exists()


def test_build_zoo_without_tensorflow_gives_install_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # makes `import tensorflow` fail
    with pytest.raises(ZooError, match=r"pip install -e \.\[zoo\]"):
        build_zoo(tmp_path, names=["tiny_cnn"])

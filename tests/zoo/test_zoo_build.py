"""Builder tests that need TensorFlow (marked zoo + slow)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.zoo import (
    ARCHITECTURES,
    STUDY,
    build_zoo,
    load_manifest,
    model_stats,
    verify_files,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"

pytestmark = [pytest.mark.zoo, pytest.mark.slow]

tf = pytest.importorskip("tensorflow")

# Published parameter counts (each cited in ARCHITECTURES[name].source):
#   alexnet       61,100,840  torchvision alexnet model table (61.1M)
#   googlenet     ~7M         Szegedy et al. 2015 (Table 1: 6.8M weights in units of 1024;
#                             the Caffe bvlc_googlenet model has 6,998,552 without the aux heads)
#   mobilenet_v1  4.2M        Howard et al. 2017, Table 8 (1.0 MobileNet-224)
#   resnet50      25,636,712  Keras applications docs (25.6M); He et al. 2016
#   squeezenet    1,248,424   Iandola et al. 2016, Table 1 (SqueezeNet 1.0)
PUBLISHED_PARAMS = {
    "alexnet": 61_100_840,
    "googlenet": 7_000_000,
    "mobilenet_v1": 4_200_000,
    "resnet50": 25_636_712,
    "squeezenet": 1_248_424,
}
# Published multiply-accumulates per 224x224 inference:
#   squeezenet    0.82G       torchvision squeezenet1_0 model table ("GFLOPS" 0.82, counted as MACs)
PUBLISHED_SQUEEZENET_MACS = 820_000_000


def _close(actual: int, expected: int, rel: float) -> bool:
    return abs(actual - expected) <= rel * expected


@pytest.mark.parametrize("name", STUDY)
def test_keras_param_count_matches_published(name):
    spec = ARCHITECTURES[name]
    assert spec.ref_params == PUBLISHED_PARAMS[name]
    model = spec.builder(0)
    try:
        assert tuple(model.inputs[0].shape[1:]) == spec.input_shape
        assert tuple(model.outputs[0].shape) == (None, 1000)
        # Keras counts the 4 batch-norm vectors of MobileNet/ResNet-50: within 2% of the paper.
        assert _close(model.count_params(), PUBLISHED_PARAMS[name], 0.02), model.count_params()
    finally:
        del model
        tf.keras.backend.clear_session()


def test_builders_are_seeded():
    import numpy as np

    build = ARCHITECTURES["tiny_cnn"].builder
    a = [w.copy() for w in build(0).get_weights()]
    b = build(0).get_weights()
    c = build(1).get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    assert all(np.any(w != 0) for w in a)  # biases too are non-zero
    tf.keras.backend.clear_session()


def test_tiny_build_reproduces_the_fixtures(tmp_path):
    """Same seed and TensorFlow version -> byte-identical files (else: regenerate the fixtures)."""
    fixture = load_manifest(FIXTURES / "manifest.json")
    manifest = build_zoo(tmp_path, names=["tiny_cnn"])
    assert verify_files(manifest, tmp_path) == []
    if fixture.tensorflow_version != tf.__version__:
        pytest.skip(f"fixtures built with TensorFlow {fixture.tensorflow_version}, running {tf.__version__}")
    for entry in manifest.models:
        committed = fixture.find(entry.name, entry.dtype)
        assert committed is not None
        assert entry.sha256 == committed.sha256, (
            "tests/fixtures/models is stale: run `python -m orchestrator.zoo build --set tiny --out tests/fixtures/models`"
        )


def _weighted_op_dtypes(path: Path) -> list[tuple[str, str, str]]:
    """(op, weights dtype, bias dtype) of every CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED."""
    import tflite

    from orchestrator.zoo.tflite_stats import builtin_op_name, dtype_name

    model = tflite.Model.GetRootAsModel(path.read_bytes(), 0)
    graph = model.Subgraphs(0)
    found = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = builtin_op_name(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()))
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            ins = op.InputsAsNumpy()
            bias = dtype_name(graph.Tensors(ins[2]).Type()) if len(ins) > 2 and ins[2] >= 0 else "none"
            found.append((name, dtype_name(graph.Tensors(ins[1]).Type()), bias))
    return found


def test_squeezenet_build_cache_and_repair(tmp_path):
    messages: list[str] = []
    manifest = build_zoo(tmp_path, names=["squeezenet"], on_progress=messages.append)
    assert [(e.name, e.dtype) for e in manifest.models] == [("squeezenet", "float32"), ("squeezenet", "int8")]
    assert load_manifest(tmp_path / "manifest.json") == manifest
    assert verify_files(manifest, tmp_path) == []
    assert sum(": built " in m for m in messages) == 2

    for entry in manifest.models:
        assert entry.display_name == "SqueezeNet 1.0"
        assert entry.input_shape == [1, 224, 224, 3]
        assert entry.input_dtype == entry.dtype
        # Published: 1,248,424 params (Iandola et al. 2016), 0.82 GMACs (torchvision table).
        assert _close(entry.params, PUBLISHED_PARAMS["squeezenet"], 0.02), entry.params
        assert _close(entry.macs, PUBLISHED_SQUEEZENET_MACS, 0.03), entry.macs

    # int8 is full-integer: int8 input/output, int8 weights, int32 biases, no float tensor at all.
    int8_path = tmp_path / manifest.find("squeezenet", "int8").file
    stats = model_stats(int8_path)
    assert (stats.input_dtype, stats.output_dtype) == ("int8", "int8")
    assert "float32" not in stats.tensor_dtypes and "float32" not in stats.param_dtypes
    weighted = _weighted_op_dtypes(int8_path)
    assert len(weighted) == 26  # conv1 + 8 fire modules x 3 + conv10
    assert set(weighted) == {("CONV_2D", "int8", "int32")}
    float_weighted = _weighted_op_dtypes(tmp_path / manifest.find("squeezenet", "float32").file)
    assert set(float_weighted) == {("CONV_2D", "float32", "float32")}

    # Second call: everything cached, nothing rewritten.
    mtimes = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    messages.clear()
    again = build_zoo(tmp_path, names=["squeezenet"], on_progress=messages.append)
    assert again == manifest
    assert messages == [
        "squeezenet float32: cached (squeezenet_float32.tflite)",
        "squeezenet int8: cached (squeezenet_int8.tflite)",
    ]
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == mtimes

    # A corrupted file is rebuilt (and only that one).
    float_path = tmp_path / "squeezenet_float32.tflite"
    with open(int8_path, "r+b") as fh:
        fh.seek(1000)
        fh.write(b"\xff" * 16)
    assert verify_files(load_manifest(tmp_path / "manifest.json"), tmp_path) != []
    messages.clear()
    repaired = build_zoo(tmp_path, names=["squeezenet"], on_progress=messages.append)
    assert "squeezenet float32: cached (squeezenet_float32.tflite)" in messages
    assert "squeezenet int8: converting (checksum mismatch)" in messages
    assert float_path.stat().st_mtime_ns == mtimes[float_path.name]
    assert verify_files(repaired, tmp_path) == []
    assert repaired.find("squeezenet", "int8").sha256 == manifest.find("squeezenet", "int8").sha256  # deterministic

    # A deleted file is rebuilt too; force rebuilds everything.
    float_path.unlink()
    messages.clear()
    build_zoo(tmp_path, names=["squeezenet"], dtypes=["float32"], on_progress=messages.append)
    assert "squeezenet float32: converting (file missing)" in messages
    assert float_path.is_file()
    messages.clear()
    build_zoo(tmp_path, names=["squeezenet"], dtypes=["float32"], force=True, on_progress=messages.append)
    assert "squeezenet float32: converting (forced)" in messages
    # The int8 entry, not requested this time, is kept.
    assert load_manifest(tmp_path / "manifest.json").find("squeezenet", "int8") is not None
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_changed_builder_hash_rebuilds(tmp_path):
    build_zoo(tmp_path, names=["tiny_cnn"], dtypes=["float32"])
    manifest = load_manifest(tmp_path / "manifest.json")
    (tmp_path / "manifest.json").write_text(manifest.model_copy(update={"builder_hash": "0" * 64}).model_dump_json())
    messages: list[str] = []
    rebuilt = build_zoo(tmp_path, names=["tiny_cnn"], dtypes=["float32"], on_progress=messages.append)
    assert any(m.startswith("builder changed") for m in messages)
    assert "tiny_cnn float32: converting (builder changed)" in messages
    assert rebuilt.builder_hash == manifest.builder_hash
    # other seed -> other builder hash, other weights
    other = build_zoo(tmp_path, names=["tiny_cnn"], dtypes=["float32"], seed=1)
    assert other.builder_hash != manifest.builder_hash
    assert "seed 1" in other.weights
    assert other.models[0].sha256 != manifest.models[0].sha256

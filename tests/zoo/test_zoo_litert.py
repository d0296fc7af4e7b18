"""The real LiteRT interpreter loads and runs both committed tiny fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"

interpreter_mod = pytest.importorskip("ai_edge_litert.interpreter")


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_litert_invokes_tiny_fixture(dtype):
    interp = interpreter_mod.Interpreter(model_path=str(FIXTURES / f"tiny_cnn_{dtype}.tflite"), num_threads=1)
    interp.allocate_tensors()
    (inp,) = interp.get_input_details()
    (out,) = interp.get_output_details()
    assert list(inp["shape"]) == [1, 32, 32, 3]
    assert inp["dtype"] == np.dtype(dtype)
    assert out["dtype"] == np.dtype(dtype)
    assert list(out["shape"]) == [1, 10]
    rng = np.random.default_rng(0)
    if dtype == "int8":
        x = rng.integers(-128, 128, size=inp["shape"], dtype=np.int8)
    else:
        x = rng.uniform(-1.0, 1.0, size=inp["shape"]).astype(np.float32)
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    y = interp.get_tensor(out["index"])
    assert y.shape == (1, 10)
    if dtype == "float32":
        assert np.isclose(y.sum(), 1.0, atol=1e-4)  # softmax
    else:
        scale, zero_point = out["quantization"]
        probs = (y.astype(np.float32) - zero_point) * scale
        assert abs(probs.sum() - 1.0) < 0.05
    assert interp.get_signature_list() == {"serving_default": {"inputs": ["input"], "outputs": ["output_0"]}}

"""tflite_stats on the committed tiny fixtures: figures checked against hand arithmetic."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from orchestrator.errors import ZooError
from orchestrator.zoo import ARCHITECTURES, model_stats, stats_from_bytes

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"

# tiny_cnn (orchestrator/zoo/architectures.py), input 1x32x32x3:
#   conv 3x3/2, 8 filters, same  -> 16x16x8
#   depthwise 3x3/1, same        -> 16x16x8
#   conv 1x1, 16 filters         -> 16x16x16
#   global average pool (MEAN)   -> 16
#   dense 10 + softmax           -> 10
CONV_W, CONV_B = 3 * 3 * 3 * 8, 8  # 216 + 8
DW_W, DW_B = 3 * 3 * 8, 8  # 72 + 8
PW_W, PW_B = 1 * 1 * 8 * 16, 16  # 128 + 16
FC_W, FC_B = 16 * 10, 10  # 160 + 10
TINY_PARAMS = CONV_W + CONV_B + DW_W + DW_B + PW_W + PW_B + FC_W + FC_B  # 618
TINY_BIASES = CONV_B + DW_B + PW_B + FC_B  # 42

CONV_MACS = (16 * 16 * 8) * (3 * 3 * 3)  # output elements x kh*kw*Cin = 55,296
DW_MACS = (16 * 16 * 8) * (3 * 3)  # 18,432
PW_MACS = (16 * 16 * 16) * 8  # 32,768
FC_MACS = 10 * 16  # 160
TINY_MACS = CONV_MACS + DW_MACS + PW_MACS + FC_MACS  # 106,656


def test_hand_arithmetic_matches_registry():
    assert TINY_PARAMS == 618 == ARCHITECTURES["tiny_cnn"].ref_params
    assert TINY_MACS == 106_656 == ARCHITECTURES["tiny_cnn"].ref_macs


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_tiny_params_and_macs(dtype):
    stats = model_stats(FIXTURES / f"tiny_cnn_{dtype}.tflite")
    assert stats.params == TINY_PARAMS
    assert stats.macs == TINY_MACS
    assert stats.macs_by_op == {
        "CONV_2D": CONV_MACS + PW_MACS,
        "DEPTHWISE_CONV_2D": DW_MACS,
        "FULLY_CONNECTED": FC_MACS,
    }
    assert stats.op_counts == {
        "CONV_2D": 2,
        "DEPTHWISE_CONV_2D": 1,
        "FULLY_CONNECTED": 1,
        "MEAN": 1,
        "SOFTMAX": 1,
    }
    assert stats.num_ops == 6
    assert stats.input_shape == (1, 32, 32, 3)
    assert stats.output_shape == (1, 10)
    assert stats.subgraphs == 1


def test_tiny_float32_dtypes():
    stats = model_stats(FIXTURES / "tiny_cnn_float32.tflite")
    assert stats.input_dtype == "float32"
    assert stats.output_dtype == "float32"
    assert stats.inputs[0].scale is None
    assert stats.param_dtypes == {"float32": TINY_PARAMS}


def test_tiny_int8_is_full_integer():
    stats = model_stats(FIXTURES / "tiny_cnn_int8.tflite")
    assert stats.input_dtype == "int8"
    assert stats.output_dtype == "int8"
    assert stats.inputs[0].scale is not None and stats.inputs[0].scale > 0
    assert -128 <= stats.inputs[0].zero_point <= 127
    # weights int8, biases int32, nothing in float
    assert stats.param_dtypes == {"int8": TINY_PARAMS - TINY_BIASES, "int32": TINY_BIASES}
    assert not {"float32", "float16"} & set(stats.tensor_dtypes)


def test_stats_is_frozen_and_serialisable():
    stats = model_stats(FIXTURES / "tiny_cnn_int8.tflite")
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.params = 0  # type: ignore[misc]
    as_dict = dataclasses.asdict(stats)
    assert as_dict["macs"] == TINY_MACS
    assert stats == model_stats(FIXTURES / "tiny_cnn_int8.tflite")
    hash(stats)


def test_stats_from_bytes_equals_file():
    path = FIXTURES / "tiny_cnn_float32.tflite"
    assert stats_from_bytes(path.read_bytes()) == model_stats(path)


def test_not_a_tflite_file(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ZooError, match="bad.tflite"):
        model_stats(bad)
    with pytest.raises(ZooError, match="missing.tflite"):
        model_stats(tmp_path / "missing.tflite")


def test_truncated_tflite_file(tmp_path):
    data = (FIXTURES / "tiny_cnn_float32.tflite").read_bytes()
    bad = tmp_path / "truncated.tflite"
    bad.write_bytes(data[:200])
    with pytest.raises(ZooError, match="truncated.tflite"):
        model_stats(bad)

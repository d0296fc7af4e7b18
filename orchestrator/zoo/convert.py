"""Keras model -> TFLite flatbuffer, float32 or full-integer int8.

The model is exported as a SavedModel with a fixed batch of 1 (the input
shape of the file is static, ``[1, H, W, C]``, and the file carries a
``serving_default`` signature), then converted with the TFLite converter.

``int8`` is full-integer post-training quantization: weights int8
(per-channel for convolutions), biases int32, activations int8, and the
model's input and output are int8 too; it is calibrated on a few seeded
random inputs, uniform in [-1, 1]. A model that cannot be fully quantized
makes the conversion fail rather than silently fall back to float kernels.

For a given TensorFlow version, the same model and seed give byte-identical
files (checked by the tests on the tiny network).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Literal

from orchestrator.errors import ZooError

if TYPE_CHECKING:  # pragma: no cover
    from tensorflow import keras

__all__ = ["DTYPES", "CALIBRATION_SAMPLES", "to_tflite"]

DTYPES: tuple[str, ...] = ("float32", "int8")
CALIBRATION_SAMPLES = 8


def _tf():
    try:
        import tensorflow as tf
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ZooError(
            "converting models needs TensorFlow, which is not installed: run `pip install -e .[zoo]`"
        ) from exc
    return tf


def _calibration_inputs(shape: tuple[int, ...], seed: int, count: int) -> Iterator[list]:
    import numpy as np

    rng = np.random.default_rng([seed, 0xCA11])
    for _ in range(count):
        yield [rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)]


def to_tflite(
    model: "keras.Model",
    dtype: Literal["float32", "int8"],
    seed: int = 0,
    *,
    calibration_samples: int = CALIBRATION_SAMPLES,
) -> bytes:
    """Convert a single-input Keras model to a TFLite flatbuffer with batch size 1."""
    if dtype not in DTYPES:
        raise ZooError(f"unknown dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    if len(model.inputs) != 1:
        raise ZooError(f"model {model.name!r} has {len(model.inputs)} inputs; the zoo supports one")
    tf = _tf()
    shape = (1, *(int(d) for d in model.inputs[0].shape[1:]))
    with tempfile.TemporaryDirectory(prefix="socfarm-zoo-") as tmp:
        saved = Path(tmp) / "saved_model"
        model.export(
            str(saved),
            format="tf_saved_model",
            input_signature=[tf.TensorSpec(shape, tf.float32, name="input")],
            verbose=False,
        )
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        if dtype == "int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: _calibration_inputs(shape, seed, calibration_samples)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        else:
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        try:
            return bytes(converter.convert())
        except Exception as exc:  # the converter raises assorted types
            raise ZooError(f"TFLite conversion of {model.name!r} to {dtype} failed: {exc}") from exc

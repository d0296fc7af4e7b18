"""The TFLite runtime: which interpreter module, loading a model, its input.

The interpreter module is ``ai_edge_litert.interpreter`` if it imports, else
``tflite_runtime.interpreter``. TensorFlow is never imported.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Dict, List, Tuple

import numpy as np

from device_agent.errors import ModelError, RuntimeMissing

# (top-level package, distribution name on the package index)
CANDIDATES: Tuple[Tuple[str, str], ...] = (
    ("ai_edge_litert", "ai-edge-litert"),
    ("tflite_runtime", "tflite-runtime"),
)
FLOAT_INPUT_RANGE = (-1.0, 1.0)


@dataclass(frozen=True)
class Runtime:
    module_name: str
    version: str
    interpreter_module: Any

    def describe(self) -> Dict[str, str]:
        return {"module": self.module_name, "version": self.version}


@dataclass(frozen=True)
class ModelInput:
    index: int
    shape: Tuple[int, ...]
    dtype: str


def import_runtime() -> Runtime:
    """Import the first available interpreter module; raise ``RuntimeMissing`` if none."""
    failures: List[str] = []
    for package, dist in CANDIDATES:
        try:
            module = importlib.import_module(package + ".interpreter")
        except Exception as exc:  # ImportError, or a broken install (missing .so, numpy ABI)
            failures.append("%s.interpreter: %s: %s" % (package, type(exc).__name__, exc))
            continue
        return Runtime(module_name=package, version=_version(package, dist), interpreter_module=module)
    raise RuntimeMissing("no TFLite interpreter module importable (" + "; ".join(failures) + ")")


def _version(package: str, dist: str) -> str:
    try:
        from importlib import metadata  # Python >= 3.8

        return metadata.version(dist)
    except Exception:  # no importlib.metadata, or installed without metadata
        pass
    try:
        module = importlib.import_module(package)
        version = getattr(module, "__version__", None)
        if version:
            return str(version)
    except Exception:
        pass
    return "unknown"


def load_interpreter(runtime: Runtime, model_path: str, num_threads: int) -> Any:
    """Create the interpreter with ``num_threads`` and allocate its tensors."""
    try:
        interpreter = runtime.interpreter_module.Interpreter(model_path=model_path, num_threads=num_threads)
        interpreter.allocate_tensors()
    except Exception as exc:
        raise ModelError("cannot load model %s: %s: %s" % (model_path, type(exc).__name__, exc))
    return interpreter


def model_input(interpreter: Any) -> ModelInput:
    """The model's single input; its shape must be fully known and positive."""
    details = interpreter.get_input_details()
    if len(details) != 1:
        raise ModelError("model has %d inputs; protocol version 1 supports exactly one" % len(details))
    d = details[0]
    shape = tuple(int(x) for x in d["shape"])
    if not shape or any(x <= 0 for x in shape):
        raise ModelError("model input shape %s is not fully defined" % (list(shape),))
    dtype = np.dtype(d["dtype"]).name
    return ModelInput(index=int(d["index"]), shape=shape, dtype=dtype)


def make_input(shape: Tuple[int, ...], dtype: str, seed: int) -> np.ndarray:
    """A seeded random tensor: floats uniform in [-1, 1), integers uniform over the type's range."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        low, high = FLOAT_INPUT_RANGE
        return rng.uniform(low, high, size=shape).astype(dt)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return rng.integers(int(info.min), int(info.max), size=shape, dtype=dt, endpoint=True)
    if dt.kind == "b":
        return rng.integers(0, 1, size=shape, endpoint=True).astype(dt)
    raise ModelError("unsupported model input dtype %s" % dt.name)


def set_input(interpreter: Any, model_in: ModelInput, tensor: np.ndarray) -> None:
    if tuple(tensor.shape) != model_in.shape:
        raise ModelError("input tensor shape %s does not match model input %s"
                         % (list(tensor.shape), list(model_in.shape)))
    interpreter.set_tensor(model_in.index, tensor)

"""The TFLite runtime: which interpreter module, loading a model, its input.

The interpreter module is ``ai_edge_litert.interpreter`` if it imports, else
``tflite_runtime.interpreter``. TensorFlow is never imported.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from device_agent.errors import ModelError, RuntimeMissing

# (top-level package, distribution name on the package index)
CANDIDATES: Tuple[Tuple[str, str], ...] = (
    ("ai_edge_litert", "ai-edge-litert"),
    ("tflite_runtime", "tflite-runtime"),
)
FLOAT_INPUT_RANGE = (-1.0, 1.0)
# What a runtime built against another numpy ABI raises (lower case), when the interpreter's extension
# first uses numpy's C API: tflite-runtime 2.14 with numpy 1.19 ("module compiled against API version 0x10
# but this version of numpy is 0xd", printed, then the ImportError), a numpy-1.x build with numpy 2
# ("_ARRAY_API not found"), a mismatch of numpy's struct sizes ("numpy.dtype size changed").
ABI_MARKERS: Tuple[str, ...] = (
    "numpy.core.multiarray failed to import",
    "numpy.core._multiarray_umath failed to import",
    "numpy._core.multiarray failed to import",
    "compiled against api version",
    "compiled against abi version",
    "compiled using numpy 1.x cannot be run in",
    "_array_api not found",
    "numpy.dtype size changed",
    "numpy.ufunc size changed",
)


@dataclass(frozen=True)
class Runtime:
    module_name: str
    version: str
    interpreter_module: Any

    def describe(self) -> Dict[str, str]:
        return {"module": self.module_name, "version": self.version}

    @property
    def distribution(self) -> str:
        """The runtime's name on the package index (``tflite-runtime``)."""
        return dict(CANDIDATES).get(self.module_name, self.module_name)


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
    raise RuntimeMissing("no TFLite interpreter module importable with numpy %s on Python %d.%d.%d (%s)"
                         % ((np.__version__,) + tuple(sys.version_info[:3]) + ("; ".join(failures),)))


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


def abi_mismatch(exc: BaseException) -> Optional[str]:
    """The exceptions of ``exc``'s chain (causes and contexts) that show a numpy ABI mismatch between
    the runtime's extension and the installed numpy, as ``"Type: message; ..."``; None if none does."""
    found: List[str] = []
    seen = set()
    todo: List[Optional[BaseException]] = [exc]
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        text = "%s: %s" % (type(current).__name__, current)
        if any(marker in text.lower() for marker in ABI_MARKERS):
            found.append(text)
        todo.extend([current.__cause__, current.__context__])
    return "; ".join(found) if found else None


def numpy_abi_error(runtime: Runtime, detail: str) -> RuntimeMissing:
    """The RuntimeMissing of a runtime that cannot work with this numpy, naming both versions."""
    return RuntimeMissing(
        "the TFLite runtime %s %s does not work with numpy %s (Python %d.%d.%d): numpy ABI mismatch (%s); "
        "install the numpy this runtime was built for (the runtime role's wheel table says which) and "
        "provision again" % ((runtime.distribution, runtime.version, np.__version__) + tuple(sys.version_info[:3])
                             + (detail,)))


def load_interpreter(runtime: Runtime, model_path: str, num_threads: int) -> Any:
    """Create the interpreter with ``num_threads`` and allocate its tensors.

    A numpy ABI mismatch surfaces here (the extension imports numpy's C API when the first interpreter
    is made): it is the runtime's fault, not the model's, so it is a ``RuntimeMissing`` naming the
    runtime and numpy versions; any other failure is a ``ModelError``.
    """
    try:
        interpreter = runtime.interpreter_module.Interpreter(model_path=model_path, num_threads=num_threads)
        interpreter.allocate_tensors()
    except Exception as exc:
        detail = abi_mismatch(exc)
        if detail is not None:
            raise numpy_abi_error(runtime, detail)
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

"""The ``cpu`` backend: a TFLite interpreter with ``threads`` threads, its input set once."""

from __future__ import annotations

from typing import Any, Optional, Tuple

from device_agent.backends.base import Backend
from device_agent.errors import ModelError
from device_agent.runtime import Runtime, load_interpreter, make_input, model_input, set_input


def prepare(interpreter: Any, seed: int, expected_shape: Optional[Tuple[int, ...]]) -> dict:
    """Check the input against ``model.input_shape`` (when given), set a seeded input; return its description."""
    model_in = model_input(interpreter)
    if expected_shape is not None and tuple(expected_shape) != model_in.shape:
        raise ModelError("model.input_shape: the model's input is %s, the spec expects %s"
                         % (list(model_in.shape), list(expected_shape)))
    set_input(interpreter, model_in, make_input(model_in.shape, model_in.dtype, seed))
    return {"input_shape": list(model_in.shape), "input_dtype": model_in.dtype}


def open_cpu(runtime: Runtime, model_path: str, threads: int, seed: int,
             expected_shape: Optional[Tuple[int, ...]] = None) -> Backend:
    interpreter = load_interpreter(runtime, model_path, threads)
    model = prepare(interpreter, seed, expected_shape)
    return Backend(invoke=interpreter.invoke, model=model)

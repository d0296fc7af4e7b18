"""The runtime's self-check: load a tiny embedded model, invoke it once, compare the output.

Importing a runtime proves little: a runtime built against another numpy ABI imports, then fails
when its extension first uses numpy's C API, i.e. when the first interpreter is made. Running a model
here (python -m device_agent version, which provisioning runs) finds that before any job does, as a
``RuntimeMissing`` naming the runtime and numpy versions. The runtime role's ``probe_runtime.py``
embeds the same model (``tests/fixtures/make_selfcheck_model.py`` made it).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import sys
import tempfile
from typing import Any, Dict, Iterator, List

import numpy as np

from device_agent.errors import RuntimeMissing
from device_agent.runtime import Runtime, abi_mismatch, numpy_abi_error

# float32 input x of shape [1, 4]; y = x + [1, 2, 3, 4] (one ADD, version 1; 876 bytes)
MODEL_B64 = (
    "HAAAAFRGTDMUACAAHAAYABQAEAAMAAAACAAEABQAAAAcAAAAhAAAANwAAACwAQAAwAEAACgDAAADAAAAAQAAABAAAAAAAAoAEAAM"
    "AAgABAAKAAAADAAAABwAAAA0AAAADwAAAHNlcnZpbmdfZGVmYXVsdAABAAAABAAAAKT///8CAAAABAAAAAEAAAB5AAAAAQAAAAQA"
    "AADm/v//BAAAAAEAAAB4AAAAAgAAADQAAAAEAAAA3P///wUAAAAEAAAAEwAAAENPTlZFUlNJT05fTUVUQURBVEEACAAMAAgABAAI"
    "AAAABAAAAAQAAAATAAAAbWluX3J1bnRpbWVfdmVyc2lvbgAGAAAA0AAAAMgAAACoAAAAmAAAAHQAAAAEAAAAbv///wQAAABgAAAA"
    "EAAAAAAAAAAIAA4ACAAEAAgAAAAQAAAAJAAAAAAABgAIAAQABgAAAAQAAAAAAAAADAAYABQAEAAMAAQADAAAAGC/Ss14KqmxAwAA"
    "AAIAAAAEAAAABgAAADIuMjEuMAAA2v///wQAAAAQAAAAMS41LjAAAAAAAAAAAAAAAAQABgAEAAAAAAAGAAgABAAGAAAABAAAABAA"
    "AAAAAIA/AAAAQAAAQEAAAIBAcP7//3T+//8PAAAATUxJUiBDb252ZXJ0ZWQuAAEAAAAUAAAAAAAOABgAFAAQAAwACAAEAA4AAAAU"
    "AAAAHAAAAFwAAABgAAAAZAAAAAQAAABtYWluAAAAAAEAAAAUAAAAAAAOABQAAAAQAAwACwAEAA4AAAAQAAAAAAAACwwAAAAQAAAA"
    "9P7//wEAAAACAAAAAgAAAAAAAAABAAAAAQAAAAIAAAABAAAAAAAAAAMAAACYAAAASAAAAAQAAACK////AAAAARAAAAAQAAAAAwAA"
    "ACAAAABE////EQAAAFBhcnRpdGlvbmVkQ2FsbDowAAAAAgAAAAEAAAAEAAAAyv///wAAAAEQAAAAEAAAAAIAAAAUAAAAhP///wUA"
    "AABDb25zdAAAAAIAAAABAAAABAAAAAAAFgAYABQAAAAQAAwACAAAAAAAAAAHABYAAAAAAAABEAAAABAAAAABAAAAIAAAAND///8T"
    "AAAAc2VydmluZ19kZWZhdWx0X3g6MAACAAAAAQAAAAQAAAABAAAACAAAAAQABAAEAAAA"
)
MODEL_SHA256 = "5df11443f583cfbcfedf5807ec097728fee4eb27cbd68e636de9433105f57d0d"
INPUT = [[0.5, 1.0, 1.5, 2.0]]
EXPECTED = [[1.5, 3.0, 4.5, 6.0]]
# stderr lines worth repeating: numpy's C-API import prints the real reason before it raises
_STDERR_HINTS = ("api version", "abi version", "_array_api", "compiled using numpy")


def model_bytes() -> bytes:
    return base64.b64decode("".join(MODEL_B64))


@contextlib.contextmanager
def _stderr_lines(into: List[str]) -> Iterator[None]:
    """Collect what is written to file descriptor 2 (native code included) while the block runs."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            into.extend(tmp.read().decode("utf-8", "replace").splitlines())


def self_check(runtime: Runtime) -> Dict[str, Any]:
    """Run the embedded model with ``runtime``; its description, or ``RuntimeMissing`` naming versions."""
    printed: List[str] = []
    try:
        with _stderr_lines(printed):
            interpreter = runtime.interpreter_module.Interpreter(model_content=model_bytes(), num_threads=1)
            interpreter.allocate_tensors()
            interpreter.set_tensor(interpreter.get_input_details()[0]["index"], np.array(INPUT, dtype=np.float32))
            interpreter.invoke()
            got = np.array(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))
    except Exception as exc:
        hints: List[str] = []
        for line in printed:
            if any(h in line.lower() for h in _STDERR_HINTS) and line.strip() not in hints:
                hints.append(line.strip())
        detail = abi_mismatch(exc)
        if detail is not None:
            raise numpy_abi_error(runtime, "; ".join(hints + [detail]))
        raise RuntimeMissing("the TFLite runtime %s %s with numpy %s cannot run the self-check model: %s: %s%s"
                             % (runtime.distribution, runtime.version, np.__version__, type(exc).__name__, exc,
                                " (" + "; ".join(hints) + ")" if hints else ""))
    if got.shape != (1, 4) or not np.allclose(got, EXPECTED):
        raise RuntimeMissing("the TFLite runtime %s %s with numpy %s computes %s for the self-check model, "
                             "expected %s" % (runtime.distribution, runtime.version, np.__version__,
                                              got.tolist(), EXPECTED))
    return {"model_sha256": hashlib.sha256(model_bytes()).hexdigest(), "output": got.tolist()}

"""Load and invoke one .tflite with LiteRT, once; print one JSON line. Run as a script in its own process.

    python orchestrator/zoo/litert_probe.py FILE.tflite

It is started by :mod:`orchestrator.zoo.litert_check` as a separate process so that
an interpreter that crashes on a bad file takes only this process down. It imports
nothing of the orchestrator (stdlib, numpy and the runtime only) and feeds inputs
the way the agent does: floats uniform in [-1, 1), integers over their whole range.

Output: ``{"ok": true, "runtime": ..., "inputs": [...], "outputs": [...]}`` or
``{"ok": false, "runtime": ..., "stage": "load"|"invoke", "error": "Type: message"}``;
``{"ok": null, ...}`` when no LiteRT runtime is importable here.
"""

import importlib
import json
import sys

CANDIDATES = (("ai_edge_litert", "ai-edge-litert"), ("tflite_runtime", "tflite-runtime"))


def _runtime():
    for package, dist in CANDIDATES:
        try:
            module = importlib.import_module(package + ".interpreter")
        except Exception:
            continue
        try:
            from importlib import metadata

            version = metadata.version(dist)
        except Exception:
            version = "unknown"
        return module, "%s %s" % (dist, version)
    return None, None


def _details(items):
    return [{"name": d["name"], "shape": [int(x) for x in d["shape"]], "dtype": str(d["dtype"].__name__)}
            for d in items]


def probe(path):
    import numpy as np

    module, runtime = _runtime()
    if module is None:
        return {"ok": None, "runtime": None, "error": "no LiteRT runtime (ai_edge_litert or tflite_runtime) here"}
    stage = "load"
    try:
        interpreter = module.Interpreter(model_path=path, num_threads=1)
        interpreter.allocate_tensors()
        inputs = interpreter.get_input_details()
        rng = np.random.default_rng(0)
        for d in inputs:
            dt = np.dtype(d["dtype"])
            shape = tuple(int(x) for x in d["shape"])
            if dt.kind == "f":
                value = rng.uniform(-1.0, 1.0, size=shape).astype(dt)
            elif dt.kind in "iu":
                info = np.iinfo(dt)
                value = rng.integers(int(info.min), int(info.max), size=shape, dtype=dt, endpoint=True)
            else:
                value = np.zeros(shape, dtype=dt)
            interpreter.set_tensor(d["index"], value)
        stage = "invoke"
        interpreter.invoke()
        outputs = interpreter.get_output_details()
        for d in outputs:
            interpreter.get_tensor(d["index"])
    except Exception as exc:
        message = " ".join(str(exc).split())
        return {"ok": False, "runtime": runtime, "stage": stage, "error": "%s: %s" % (type(exc).__name__, message)}
    return {"ok": True, "runtime": runtime, "inputs": _details(inputs), "outputs": _details(outputs)}


def main(argv):
    if len(argv) != 1:
        sys.stderr.write("usage: litert_probe.py FILE.tflite\n")
        return 2
    sys.stdout.write(json.dumps(probe(argv[0])) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

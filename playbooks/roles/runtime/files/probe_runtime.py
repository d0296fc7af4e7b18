"""Which TFLite runtime this interpreter imports, and whether it runs a model with this numpy; JSON on stdout.

Exit 0: the runtime ran the embedded model (x + [1, 2, 3, 4]) and gave the right output. Exit 1: no
runtime (or no numpy) can be imported. Exit 2: a runtime imports but cannot run the model, e.g. a
runtime built against another numpy ABI, which fails only when the first interpreter is made; the JSON
then has "error": "RuntimeMissing" and a "message" naming the runtime and numpy versions. Like the agent,
the first runtime that imports is the one that counts. Standalone (it runs before the agent is copied);
the model is the agent's self-check model (device_agent/selfcheck.py), byte for byte.
"""
import base64
import json
import os
import sys
import tempfile

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
INPUT = [[0.5, 1.0, 1.5, 2.0]]
EXPECTED = [[1.5, 3.0, 4.5, 6.0]]
ABI_MARKERS = (
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
STDERR_HINTS = ("api version", "abi version", "_array_api", "compiled using numpy")


def dist_version(package, dist):
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:  # no metadata
        return getattr(sys.modules.get(package), "__version__", "unknown")


def chain(exc):
    """Each exception of exc's causes and contexts, once."""
    seen, todo = set(), [exc]
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend([current.__cause__, current.__context__])


def run_model(module):
    """Load and invoke the embedded model; (output, None) or (None, (exception, stderr lines))."""
    import numpy

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)  # numpy's C-API import prints the real reason before it raises
        try:
            interpreter = module.Interpreter(model_content=base64.b64decode("".join(MODEL_B64)), num_threads=1)
            interpreter.allocate_tensors()
            interpreter.set_tensor(interpreter.get_input_details()[0]["index"], numpy.array(INPUT, dtype=numpy.float32))
            interpreter.invoke()
            return numpy.array(interpreter.get_tensor(interpreter.get_output_details()[0]["index"])), None
        except Exception as exc:
            failure = exc
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            printed = tmp.read().decode("utf-8", "replace").splitlines()
    return None, (failure, printed)


def main():
    info = {"python": sys.executable, "python_version": "%d.%d.%d" % sys.version_info[:3]}
    failures = []
    for package, dist in (("ai_edge_litert", "ai-edge-litert"), ("tflite_runtime", "tflite-runtime")):
        try:
            module = __import__(package + ".interpreter", fromlist=["Interpreter"])
            import numpy
        except Exception as exc:  # ImportError, or a broken install
            failures.append("%s.interpreter: %s: %s" % (package, type(exc).__name__, exc))
            continue
        ver = dist_version(package, dist)
        info.update(module=package, version=ver, numpy=numpy.__version__)
        output, failure = run_model(module)
        what = "the TFLite runtime %s %s with numpy %s (Python %s)" % (dist, ver, numpy.__version__,
                                                                       info["python_version"])
        if failure is None:
            if output.shape == (1, 4) and numpy.allclose(output, EXPECTED):
                info["self_check"] = {"output": output.tolist()}
                print(json.dumps(info))
                return 0
            message = "%s computes %s for the self-check model, expected %s" % (what, output.tolist(), EXPECTED)
        else:
            exc, printed = failure
            hints = []
            for line in printed:
                if any(h in line.lower() for h in STDERR_HINTS) and line.strip() not in hints:
                    hints.append(line.strip())
            texts = ["%s: %s" % (type(e).__name__, e) for e in chain(exc)]
            abi = [t for t in texts if any(m in t.lower() for m in ABI_MARKERS)]
            if abi:
                message = "%s: numpy ABI mismatch (%s)" % (what, "; ".join(hints + abi))
            else:
                message = "%s cannot run the self-check model: %s%s" % (
                    what, texts[0], " (" + "; ".join(hints) + ")" if hints else "")
        info.update(error="RuntimeMissing", message=message)
        print(json.dumps(info))
        return 2
    info.update(error="RuntimeMissing", message="no TFLite runtime importable by %s (%s)" % (
        sys.executable, "; ".join(failures)))
    print(json.dumps(info))
    return 1


if __name__ == "__main__":
    sys.exit(main())

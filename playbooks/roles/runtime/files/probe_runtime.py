"""Print the TFLite runtime this interpreter can import, as JSON; exit 1 if none."""
import json
import sys

for module in ("ai_edge_litert.interpreter", "tflite_runtime.interpreter"):
    try:
        __import__(module)
        import numpy
    except ImportError:
        continue
    package = module.split(".")[0]
    try:
        from importlib.metadata import version
        ver = version(package.replace("_", "-"))
    except Exception:  # Python 3.7 or no metadata
        ver = getattr(sys.modules[package], "__version__", "unknown")
    print(json.dumps({"module": package, "version": ver, "numpy": numpy.__version__,
                      "python": sys.executable, "python_version": "%d.%d.%d" % sys.version_info[:3]}))
    sys.exit(0)
sys.exit(1)

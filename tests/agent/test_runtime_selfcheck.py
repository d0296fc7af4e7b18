"""The runtime's self-check model, and a numpy ABI mismatch reported as RuntimeMissing, never as ModelError.

A runtime built against another numpy ABI imports fine and fails when its first interpreter is made
(tflite-runtime 2.14.0 with numpy 1.19.5: SystemError from ImportError "numpy.core.multiarray failed to
import", after numpy printed "module compiled against API version 0x10 but this version of numpy is 0xd").
These tests fake such a runtime; tests/playbooks/test_runtime_abi.py reproduces it with real wheels.
Portable: they run with whichever runtime is installed (also on a board's own Python).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from device_agent.errors import EXIT_STABLE, ModelError, RuntimeMissing
from device_agent.runtime import ABI_MARKERS, Runtime, abi_mismatch, import_runtime, load_interpreter
from device_agent.selfcheck import EXPECTED, MODEL_SHA256, model_bytes, self_check
from tests.agent.agent_proc import REPO, agent_env, fixture_model, job_spec, run_agent

API_LINE = "RuntimeError: module compiled against API version 0x10 but this version of numpy is 0xd"


def abi_exception() -> BaseException:
    """What tflite-runtime 2.14.0 raised on numpy 1.19.5 (Python 3.8): the chain, as the interpreter saw it."""
    try:
        try:
            raise ImportError("numpy.core.multiarray failed to import")
        except ImportError as inner:
            raise SystemError("<built-in method CreateWrapperFromFile of PyCapsule object at 0x7f00> returned "
                              "a result with an error set") from inner
    except SystemError as exc:
        return exc


def fake_runtime(interpreter_cls, module: str = "tflite_runtime", version: str = "2.14.0") -> Runtime:
    return Runtime(module_name=module, version=version, interpreter_module=SimpleNamespace(Interpreter=interpreter_cls))


class AbiBroken:
    """An interpreter whose extension was built against another numpy: prints the reason, then raises."""

    def __init__(self, **kwargs):
        os.write(2, (API_LINE + "\n").encode())
        raise abi_exception()


def test_the_embedded_model_is_the_one_made_by_the_fixture_script():
    data = model_bytes()
    assert hashlib.sha256(data).hexdigest() == MODEL_SHA256
    assert len(data) < 1024 and data[4:8] == b"TFL3"


def test_self_check_runs_the_model_with_the_installed_runtime():
    result = self_check(import_runtime())
    assert result["model_sha256"] == MODEL_SHA256
    assert np.allclose(result["output"], EXPECTED)


def test_an_abi_mismatch_in_the_self_check_is_runtime_missing_naming_both_versions(capfd):
    with pytest.raises(RuntimeMissing) as err:
        self_check(fake_runtime(AbiBroken))
    message = str(err.value)
    assert "tflite-runtime 2.14.0" in message and "numpy %s" % np.__version__ in message
    assert "numpy ABI mismatch" in message and "numpy.core.multiarray failed to import" in message
    assert "API version 0x10" in message  # what numpy printed on stderr is repeated in the message
    assert err.value.exit_code == EXIT_STABLE and not err.value.retryable
    assert API_LINE not in capfd.readouterr().err  # captured, not leaked


def test_a_runtime_that_computes_nonsense_fails_the_self_check():
    class Wrong:
        def __init__(self, **kwargs):
            pass

        allocate_tensors = invoke = lambda self: None
        get_input_details = get_output_details = lambda self: [{"index": 0}]
        set_tensor = lambda self, index, value: None  # noqa: E731
        get_tensor = lambda self, index: np.zeros((1, 4), np.float32)  # noqa: E731

    with pytest.raises(RuntimeMissing, match=r"computes \[\[0.0, 0.0, 0.0, 0.0\]\].*expected"):
        self_check(fake_runtime(Wrong))


def test_other_failures_of_the_self_check_are_runtime_missing_too():
    class Broken:
        def __init__(self, **kwargs):
            raise ValueError("Could not open model")

    with pytest.raises(RuntimeMissing, match="cannot run the self-check model: ValueError: Could not open model"):
        self_check(fake_runtime(Broken, "ai_edge_litert", "2.3.0"))


@pytest.mark.parametrize("text", ABI_MARKERS)
def test_every_abi_marker_is_recognised_in_a_cause_or_a_context(text):
    try:
        try:
            raise ImportError(text.replace("numpy", "NumPy", 1))  # case does not matter
        except ImportError:
            raise RuntimeError("wrapper failed")  # implicit context
    except RuntimeError as exc:
        found = abi_mismatch(exc)
    assert found is not None and text in found.lower()


def test_an_unrelated_failure_is_not_an_abi_mismatch_and_cycles_end():
    a, b = ValueError("Model provided has model identifier 'xxxx'"), RuntimeError("b")
    a.__context__, b.__context__ = b, a
    assert abi_mismatch(a) is None


def test_loading_a_job_model_with_an_abi_mismatch_is_runtime_missing_not_model_error():
    with pytest.raises(RuntimeMissing) as err:
        load_interpreter(fake_runtime(AbiBroken), "/models/m.tflite", 1)
    assert "tflite-runtime 2.14.0 does not work with numpy %s" % np.__version__ in str(err.value)

    class NotAModel:
        def __init__(self, **kwargs):
            raise ValueError("Model provided has model identifier 'xxxx', should be 'TFL3'")

    with pytest.raises(ModelError, match="cannot load model /models/m.tflite: ValueError"):
        load_interpreter(fake_runtime(NotAModel), "/models/m.tflite", 1)


def test_version_command_runs_the_self_check_model():
    run = run_agent("version")
    assert run.returncode == 0, run.stderr
    info = json.loads(run.stdout)
    assert info["numpy"] == np.__version__ and info["python"] == "%d.%d.%d" % sys.version_info[:3]
    assert info["runtime"]["module"] in ("ai_edge_litert", "tflite_runtime")
    assert info["self_check"]["model_sha256"] == MODEL_SHA256 and np.allclose(info["self_check"]["output"], EXPECTED)
    assert "error" not in info


# A runtime package that imports, as a mismatched one does, and fails on the first interpreter; put first
# on PYTHONPATH it shadows the installed runtime (the first one that imports is the one the agent uses).
BROKEN_RUNTIME = '''
import os

class Interpreter:
    def __init__(self, *args, **kwargs):
        os.write(2, b"%s\\n")
        try:
            raise ImportError("numpy.core.multiarray failed to import")
        except ImportError as exc:
            raise SystemError("returned a result with an error set") from exc
''' % API_LINE.encode()


@pytest.fixture
def broken_runtime_env(tmp_path: Path):
    pkg = tmp_path / "shadow" / "ai_edge_litert"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("__version__ = '9.9.9'\n")
    (pkg / "interpreter.py").write_text(BROKEN_RUNTIME)
    env = agent_env()
    env["PYTHONPATH"] = "%s%s%s" % (tmp_path / "shadow", os.pathsep, env["PYTHONPATH"])
    return env


def _agent(env, *args, stdin=None):
    return subprocess.run([sys.executable, "-m", "device_agent", *args], input=stdin, capture_output=True,
                          text=True, cwd=str(REPO), env=env, timeout=60)


def test_version_command_reports_an_abi_mismatch_as_runtime_missing(broken_runtime_env):
    proc = _agent(broken_runtime_env, "version")
    assert proc.returncode == EXIT_STABLE
    info = json.loads(proc.stdout)
    assert info["error"] == "RuntimeMissing" and info["runtime"]["module"] == "ai_edge_litert"
    assert "numpy %s" % np.__version__ in info["message"] and "numpy ABI mismatch" in info["message"]
    assert "API version 0x10" in info["message"]
    assert info["message"] in proc.stderr  # for a person reading the board's log


def test_a_job_on_a_runtime_with_an_abi_mismatch_ends_with_runtime_missing(broken_runtime_env, tmp_path):
    spec = job_spec(fixture_model("float32"), tmp_path / "out",
                    rules={"warmup_runs": 0, "min_count": 1, "min_duration_s": 0.01, "max_duration_s": 5.0})
    spec["component"]["cpus"] = [sorted(os.sched_getaffinity(0))[0]]
    proc = _agent(broken_runtime_env, "run", "-", stdin=json.dumps(spec))
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == EXIT_STABLE, proc.stderr
    error = events[-1]
    assert error["event"] == "error" and error["error"] == "RuntimeMissing" and error["retryable"] is False
    assert "does not work with numpy %s" % np.__version__ in error["message"]
    assert not any(e.get("error") == "ModelError" for e in events)

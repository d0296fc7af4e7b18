"""A real numpy ABI mismatch, caught by the runtime role's probe and the agent's `version` and reported as
RuntimeMissing naming both versions; a job on it ends with RuntimeMissing, not ModelError.

What the XU3 with Debian 11 showed (tflite-runtime with the distribution's numpy 1.19: every job failed
with "ModelError: cannot load model") is reproduced on this machine with real x86_64 wheels: tflite-runtime
2.14.0 with numpy 1.19.5 on Python 3.8 (API too old), and with numpy 2.2.6 on Python 3.11 (a numpy-1.x
build under numpy 2); with numpy 1.26.4 the same runtime works. The wheels come from PyPI once
(tests/playbooks/runtime_wheels.py).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from device_agent import runtime as agent_runtime
from device_agent import selfcheck
from tests.agent.agent_proc import fixture_model, job_spec
from tests.agent.test_compat import vermin_minimum
from tests.conftest import REPO
from tests.playbooks.runtime_wheels import python38, venv_with

PROBE = REPO / "playbooks" / "roles" / "runtime" / "files" / "probe_runtime.py"
TFLITE_311 = "tflite_runtime-2.14.0-cp311-cp311-manylinux2014_x86_64.whl"
TFLITE_38 = "tflite_runtime-2.14.0-cp38-cp38-manylinux2014_x86_64.whl"
# case -> (python finder, wheels, numpy version, what the mismatch says; None: works)
CASES = {
    "py311-numpy1.26": ("3.11", [TFLITE_311, "numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"],
                        "1.26.4", None),
    "py311-numpy2": ("3.11", [TFLITE_311, "numpy-2.2.6-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"],
                     "2.2.6", "_ARRAY_API not found"),
    "py38-numpy1.19": ("3.8", [TFLITE_38, "numpy-1.19.5-cp38-cp38-manylinux2010_x86_64.whl"], "1.19.5",
                       "module compiled against API version 0x10 but this version of numpy is 0xd"),
}


def _probe_constant(name: str):
    for node in ast.parse(PROBE.read_text()).body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets if isinstance(t, ast.Name)] == [name]:
            return ast.literal_eval(node.value)
    raise LookupError(name)


def test_the_probe_runs_the_agents_self_check_model_and_knows_the_same_abi_markers():
    """The probe runs before the agent is on the board, so it carries its own copy; they must agree."""
    assert "".join(_probe_constant("MODEL_B64")) == "".join(selfcheck.MODEL_B64)
    assert (_probe_constant("INPUT"), _probe_constant("EXPECTED")) == (selfcheck.INPUT, selfcheck.EXPECTED)
    assert tuple(_probe_constant("ABI_MARKERS")) == agent_runtime.ABI_MARKERS


def test_the_probe_runs_on_python_3_8():
    ast.parse(PROBE.read_text(), filename=str(PROBE), feature_version=(3, 8))
    minimum, report = vermin_minimum([PROBE])
    assert minimum <= (3, 8), report


def test_the_probe_with_this_machines_runtime():
    proc = subprocess.run([sys.executable, str(PROBE)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    info = json.loads(proc.stdout)
    assert info["self_check"]["output"] == selfcheck.EXPECTED and info["python"] == sys.executable


def python_for(minor: str) -> str:
    if minor == "3.8":
        found = python38()
        if found is None:
            pytest.skip("no CPython 3.8 here (set SOCFARM_TEST_PYTHON38, or install python3.8 or pyenv's 3.8)")
        return found
    if "%d.%d" % sys.version_info[:2] == minor:
        return sys.executable
    pytest.skip(f"the cp{minor.replace('.', '')} wheels need Python {minor}; this is {sys.version.split()[0]}")


@pytest.fixture(scope="module", params=list(CASES))
def case(request, tmp_path_factory):
    minor, wheels, numpy_version, mismatch = CASES[request.param]
    python = venv_with(python_for(minor), tmp_path_factory.mktemp(request.param) / "venv", *wheels)
    return python, numpy_version, mismatch


def _agent_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    return env


@pytest.mark.slow
def test_the_probe_runs_a_model_and_names_an_abi_mismatch(case):
    python, numpy_version, mismatch = case
    proc = subprocess.run([str(python), str(PROBE)], capture_output=True, text=True, timeout=120)
    info = json.loads(proc.stdout)
    assert (info["module"], info["version"], info["numpy"]) == ("tflite_runtime", "2.14.0", numpy_version)
    if mismatch is None:
        assert proc.returncode == 0 and info["self_check"]["output"] == [[1.5, 3.0, 4.5, 6.0]]
        return
    assert proc.returncode == 2 and info["error"] == "RuntimeMissing"
    assert info["message"].startswith("the TFLite runtime tflite-runtime 2.14.0 with numpy %s (Python " % numpy_version)
    assert "numpy ABI mismatch" in info["message"] and mismatch in info["message"]


@pytest.mark.slow
def test_the_agents_version_runs_a_model_and_names_an_abi_mismatch(case):
    python, numpy_version, mismatch = case
    proc = subprocess.run([str(python), "-m", "device_agent", "version"], capture_output=True, text=True,
                          cwd=str(REPO), env=_agent_env(), timeout=120)
    info = json.loads(proc.stdout)
    assert info["runtime"] == {"module": "tflite_runtime", "version": "2.14.0"} and info["numpy"] == numpy_version
    if mismatch is None:
        assert proc.returncode == 0 and "self_check" in info
        return
    assert proc.returncode == 2 and info["error"] == "RuntimeMissing"
    assert "tflite-runtime 2.14.0 does not work with numpy %s" % numpy_version in info["message"]
    assert mismatch in info["message"]


@pytest.mark.slow
def test_a_job_on_the_mismatched_runtime_is_runtime_missing_not_a_model_error(case, tmp_path):
    python, numpy_version, mismatch = case
    spec = job_spec(fixture_model("float32"), tmp_path / "out",
                    rules={"warmup_runs": 0, "min_count": 1, "min_duration_s": 0.01, "max_duration_s": 5.0})
    spec["component"]["cpus"] = [sorted(os.sched_getaffinity(0))[0]]
    proc = subprocess.run([str(python), "-m", "device_agent", "run", "-"], input=json.dumps(spec),
                          capture_output=True, text=True, cwd=str(REPO), env=_agent_env(), timeout=120)
    last = [json.loads(line) for line in proc.stdout.splitlines()][-1]
    if mismatch is None:
        assert proc.returncode == 0 and last["event"] == "summary", proc.stderr[-2000:]
        return
    assert proc.returncode == 2 and last["event"] == "error", proc.stderr[-2000:]
    assert last["error"] == "RuntimeMissing" and last["retryable"] is False
    assert "does not work with numpy %s" % numpy_version in last["message"]
    assert Path(spec["output_dir"]).exists() is False or not any(Path(spec["output_dir"]).glob("trace*"))

"""Backends: external command per batch, delegate loading and fallback detection."""

from __future__ import annotations

import ctypes.util
import sys
from pathlib import Path

import numpy as np
import pytest

from device_agent.backends.delegate import check_use, load, placement
from device_agent.backends.external import ExternalCommand, open_external
from device_agent.errors import InferenceError, SpecError
from device_agent.runtime import import_runtime
from device_agent.verdict import DelegateUse, Rules, judge
from tests.agent.agent_proc import MODELS, fixture_model, job_spec, run_spec

FAKE_NPU = str(Path(__file__).resolve().parent / "fake_npu.py")
S = 1000000000


def test_external_command_runs_once_per_call_with_placeholders():
    run = ExternalCommand([sys.executable, FAKE_NPU, "--frames", "{frames}", "--sleep-ms", "1", "--x{batch}"], 8, 30.0)
    assert run.argv(3)[-1] == "--x3" and run.argv(0)[3] == "8"
    run.command = run.command[:-1]
    run()
    run()
    assert run.calls == 2


def test_external_command_gets_the_model_path(tmp_path):
    model = tmp_path / "net.tflite"
    model.write_bytes(b"x")
    # a real subprocess that fails unless {model} became the path of an existing file
    run = ExternalCommand(["sh", "-c", 'test -f "$1"', "sh", "{model}"], 1, 30.0, str(model))
    assert run.argv(0)[-1] == str(model)
    run()
    with pytest.raises(InferenceError, match="exited with 1"):
        ExternalCommand(["sh", "-c", 'test -f "$1"', "sh", "{model}"], 1, 30.0, str(tmp_path / "gone"))()


def test_external_command_failure_is_an_inference_error_with_its_stderr():
    run = ExternalCommand([sys.executable, FAKE_NPU, "--exit", "3"], 1, 30.0)
    with pytest.raises(InferenceError, match="exited with 3: .*npu failure"):
        run()


def test_external_command_timeout_is_an_inference_error():
    run = ExternalCommand([sys.executable, FAKE_NPU, "--sleep-ms", "2000"], 1, 0.2)
    with pytest.raises(InferenceError, match="timed out after 0.2 s"):
        run()


def test_external_command_that_is_not_executable_is_a_spec_error():
    with pytest.raises(SpecError, match=r"component\.command: 'no-such-npu-tool' is not an executable"):
        open_external(["no-such-npu-tool", "run"], 1, 1.0, "component")


def test_external_component_alone_reports_frames_per_second(tmp_path):
    spec = job_spec(fixture_model("float32"), tmp_path / "job",
                    component={"name": "npu", "kind": "external", "cpus": [0], "frames_per_batch": 4,
                               "command": [sys.executable, FAKE_NPU, "--frames", "{frames}", "--sleep-ms", "2"]},
                    rules={"warmup_runs": 1, "min_count": 10, "min_duration_s": 0.2})
    del spec["component"]["threads"]
    run = run_spec(spec)
    assert run.returncode == 0, run.stderr
    started, summary = run.events[0], run.events[-1]
    assert started["component"]["frames_per_batch"] == 4 and started["model"]["input_shape"] is None
    assert summary["frames"] == 4 * summary["count"]
    assert summary["throughput_ips"] == pytest.approx(summary["frames"] / summary["duration_s"])
    assert summary["verdict"] == "VALID"


def test_external_failure_mid_run_exits_3(tmp_path):
    spec = job_spec(fixture_model("float32"), tmp_path / "job",
                    component={"name": "npu", "kind": "external", "cpus": [0],
                               "command": [sys.executable, FAKE_NPU, "--exit", "1"]})
    del spec["component"]["threads"]
    run = run_spec(spec)
    assert run.returncode == 3 and run.events[-1]["error"] == "InferenceError"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the runtime's Delegate.__del__
@pytest.mark.parametrize("path, why", [("/nonexistent/libgpu_delegate.so", "OSError"),
                                       (ctypes.util.find_library("c") or "libc.so.6", "AttributeError")])
def test_a_library_that_is_not_a_loadable_delegate_is_a_spec_error(path, why):
    with pytest.raises(SpecError, match=r"component\.delegate_path: cannot load delegate .*%s" % why):
        load(import_runtime(), path, {}, "component.delegate_path")


def test_agent_reports_a_delegate_that_does_not_load_and_exits_2(tmp_path):
    spec = job_spec(fixture_model("float32"), tmp_path / "job",
                    component={"kind": "gpu", "delegate_path": ctypes.util.find_library("c") or "libc.so.6",
                               "delegate_options": {"backend": "gpu"}})
    run = run_spec(spec)
    assert run.returncode == 2 and run.events[-1]["error"] == "SpecError"
    assert "delegate" in run.events[-1]["message"]


def op(name, inputs, outputs):
    return {"op_name": name, "inputs": np.array(inputs), "outputs": np.array(outputs)}


# conv(0->10), dw(10->11), conv(11->12), mean(12->13), fc(13->14), softmax(14->15); weights 1..9
MODEL = [op("CONV_2D", [0, 8, 9], [10]), op("DEPTHWISE_CONV_2D", [10, 5, 2], [11]), op("CONV_2D", [11, 4, 1], [12]),
         op("MEAN", [12, 7], [13]), op("FULLY_CONNECTED", [13, 6, 3], [14]), op("SOFTMAX", [14], [15])]


def test_placement_with_every_op_delegated():
    assert placement(MODEL + [op("DELEGATE", list(range(10)), [15])]) == (6, 0)


def test_placement_with_partial_delegation_counts_cpu_ops():
    # the delegate took the three convolutions; MEAN, FC and SOFTMAX stay on the CPU
    assert placement(MODEL + [op("DELEGATE", [0, 1, 2, 4, 5, 8, 9], [12])]) == (6, 3)
    # two partitions around an unsupported MEAN
    assert placement(MODEL + [op("DELEGATE", [0, 1, 2, 4, 5, 8, 9], [12]),
                              op("DELEGATE", [13, 3, 6], [15])]) == (6, 1)


def test_placement_without_delegate_nodes_is_all_cpu():
    assert placement(MODEL) == (6, 6)


def test_placement_of_the_real_interpreter_graph():
    runtime = import_runtime()
    interp = runtime.interpreter_module.Interpreter(model_path=str(MODELS / "tiny_cnn_float32.tflite"))
    interp.allocate_tensors()  # the default CPU delegate takes the whole graph
    total, cpu = placement(interp._get_ops_details())
    assert total == 6 and cpu == 0


class FakeInterpreter:
    def __init__(self, ops):
        self._ops = ops

    def _get_ops_details(self):
        return self._ops

    def invoke(self):
        pass


def test_fallback_by_placement_invalidates_the_job():
    use = check_use(FakeInterpreter(MODEL + [op("DELEGATE", [0, 1, 2, 4, 5, 8, 9], [12])]), "gpu", True, None)
    assert use == DelegateUse("gpu", 6, 3) and not use.fully_delegated
    v = judge(100, 2 * S, Rules(0, 1, 1.0, 5.0), delegates=[use])
    assert v.verdict == "INVALID" and v.reasons == ("delegate fallback: gpu: 3 of 6 ops on CPU",)


def test_fallback_by_timing_when_placement_is_unknown():
    slow = check_use(FakeInterpreter([]), "gpu", False, lambda: 0.0)  # CPU "as fast": flagged
    assert not slow.fully_delegated and "no faster than the CPU" in slow.reason
    fast = check_use(FakeInterpreter([]), "gpu", False, lambda: 10.0)  # CPU far slower: accepted
    assert fast.fully_delegated
    assert judge(10, 2 * S, Rules(0, 1, 1.0, 5.0), delegates=[fast]).verdict == "VALID"

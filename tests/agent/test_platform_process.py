"""``python -m device_agent run -`` with ``platform`` on a virtual XU3: held, sampled, restored on every exit."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from device_agent.affinity import available_cpus
from tests.agent.agent_proc import REPO, agent_env, fixture_model, job_spec, run_spec
from tests.agent.virtual_board import snapshot, xu3

CPU = 1 if 1 in available_cpus() else min(available_cpus())
PLATFORM = {"cpufreq": {"policy4": {"pin_khz": 1800000}, "policy0": {"governor": "performance"}},
            "devfreq": {"11800000.gpu": {"pin_khz": 600000}},
            "thermal_zones": ["thermal_zone0", "thermal_zone4"]}


def platform_job(tmp_path, component=None, **overrides):
    comp = dict({"cpus": [CPU], "name": "cpu%d" % CPU}, **(component or {}))
    overrides.setdefault("platform", PLATFORM)
    return job_spec(fixture_model("float32"), tmp_path / "job", component=comp,
                    sysfs_root=str(tmp_path / "sys"), **overrides)


def test_frequencies_are_held_sampled_and_restored(tmp_path):
    (tmp_path / "sys").mkdir()
    with xu3(tmp_path / "sys") as sim:
        time.sleep(sim.settle_s)
        before = snapshot(tmp_path / "sys")
        run = run_spec(platform_job(tmp_path, rules={"min_duration_s": 0.5}))
        time.sleep(sim.settle_s)
        after = snapshot(tmp_path / "sys")
    assert run.returncode == 0, run.stderr
    kinds = [e["event"] for e in run.events]
    assert kinds[0] == "platform" and kinds[1] == "started" and kinds[-1] == "summary"
    plat = run.events[0]
    assert plat["cpufreq"]["policy4"]["effective_khz"] == 1800000
    assert plat["cpufreq"]["policy0"] == {"mode": "performance", "governor": "performance",
                                          "requested_khz": 1400000, "effective_khz": 1400000}
    summary = run.events[-1]
    assert summary["verdict"] == "VALID", summary["reasons"]
    p4 = summary["platform"]["cpufreq"]["policy4"]
    assert p4["min_khz"] == 1800000 and p4["below_s"] == 0 and p4["samples"] >= 3
    assert summary["platform"]["devfreq"]["11800000.gpu"]["mean_khz"] == pytest.approx(600000)
    assert summary["platform"]["thermal"]["thermal_zone4"]["samples"] >= 3
    assert (tmp_path / "job" / "platform.csv").exists()
    assert after == before


def test_throttle_during_the_window_makes_the_job_invalid(tmp_path):
    (tmp_path / "sys").mkdir()
    spec = platform_job(tmp_path, rules={"min_duration_s": 1.5, "max_duration_s": 10.0})
    with xu3(tmp_path / "sys") as sim:
        proc = subprocess.Popen([sys.executable, "-m", "device_agent", "run", "-"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(REPO),
                                env=agent_env())
        proc.stdin.write(json.dumps(spec))
        proc.stdin.close()
        lines = []
        for line in proc.stdout:  # wait for the window to open
            lines.append(json.loads(line))
            if lines[-1]["event"] == "progress" and lines[-1]["phase"] == "measure":
                break
        sim.throttle("policy4", 1400000)
        time.sleep(0.5)
        sim.throttle("policy4", None)
        lines += [json.loads(x) for x in proc.stdout]
        proc.wait(60)
        proc.stderr.close()
    summary = lines[-1]
    assert proc.returncode == 0 and summary["event"] == "summary"
    assert summary["verdict"] == "INVALID"
    reasons = [r for r in summary["reasons"] if r.startswith("throttled: policy4 ran below 1800000 kHz for ")]
    assert reasons and reasons[0].endswith("(min 1400000 kHz)")
    assert summary["platform"]["cpufreq"]["policy4"]["below_s"] > 0.1


def _bad(tmp_path, name):
    if name == "cpu":
        return platform_job(tmp_path, component={"cpus": [max(available_cpus()) + 100]}), 2, "SpecError", \
            "component.cpus: CPU id(s)"
    if name == "frequency":
        plat = dict(PLATFORM, cpufreq={"policy4": {"pin_khz": 1234567}})
        return platform_job(tmp_path, platform=plat), 2, "SpecError", "platform.cpufreq.policy4.pin_khz: 1234567 kHz"
    if name == "delegate":
        return platform_job(tmp_path, component={"kind": "gpu", "delegate_path": "/nonexistent/libgpu.so"}), 2, \
            "SpecError", "component.delegate_path: cannot load delegate /nonexistent/libgpu.so"
    if name == "input_shape":
        spec = platform_job(tmp_path)
        spec["model"]["input_shape"] = [1, 224, 224, 3]
        return spec, 2, "ModelError", "model.input_shape: the model's input is [1, 32, 32, 3]"
    raise ValueError(name)


@pytest.mark.parametrize("bad", ["cpu", "frequency", "delegate", "input_shape"])
def test_bad_inputs_give_an_error_event_and_leave_frequencies_restored(tmp_path, bad):
    (tmp_path / "sys").mkdir()
    spec, code, error, message = _bad(tmp_path, bad)
    with xu3(tmp_path / "sys") as sim:
        time.sleep(sim.settle_s)
        before = snapshot(tmp_path / "sys")
        run = run_spec(spec)
        time.sleep(sim.settle_s)
        after = snapshot(tmp_path / "sys")
    assert run.returncode == code, run.stderr
    last = run.events[-1]
    assert last["event"] == "error" and last["error"] == error and message in last["message"], last
    assert after == before


@pytest.mark.parametrize("sig, name", [(signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "SIGINT")])
def test_signal_mid_run_restores_frequencies(tmp_path, sig, name):
    (tmp_path / "sys").mkdir()
    spec = platform_job(tmp_path, rules={"min_duration_s": 20.0, "max_duration_s": 30.0})
    with xu3(tmp_path / "sys") as sim:
        time.sleep(sim.settle_s)
        before = snapshot(tmp_path / "sys")
        proc = subprocess.Popen([sys.executable, "-m", "device_agent", "run", "-"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(REPO),
                                env=agent_env())
        proc.stdin.write(json.dumps(spec))
        proc.stdin.close()
        for line in proc.stdout:
            if json.loads(line)["event"] == "progress":
                break
        held = snapshot(tmp_path / "sys")
        proc.send_signal(sig)
        rest = [json.loads(x) for x in proc.stdout]
        proc.wait(30)
        proc.stderr.close()
        time.sleep(sim.settle_s)
        after = snapshot(tmp_path / "sys")
    assert held != before
    assert proc.returncode == 3 and rest[-1]["error"] == "Interrupted", rest
    assert after == before


@pytest.mark.skipif(not {0, 1} <= available_cpus(), reason="needs CPUs 0 and 1")
def test_coexecution_holds_and_restores_frequencies_too(tmp_path):
    (tmp_path / "sys").mkdir()
    spec = platform_job(tmp_path, rules={"min_duration_s": 0.5})
    del spec["component"]
    spec["components"] = [{"name": "a7", "kind": "cpu", "cpus": [0]}, {"name": "a15", "kind": "cpu", "cpus": [1]}]
    with xu3(tmp_path / "sys") as sim:
        time.sleep(sim.settle_s)
        before = snapshot(tmp_path / "sys")
        run = run_spec(spec, timeout_s=120)
        time.sleep(sim.settle_s)
        after = snapshot(tmp_path / "sys")
    assert run.returncode == 0, run.stderr
    summary = run.events[-1]
    assert summary["verdict"] == "VALID", summary["reasons"]
    assert summary["platform"]["cpufreq"]["policy4"]["below_s"] == 0
    assert after == before

"""The ``simulated`` component kind: its fields, its seeded latency model, a whole agent run with it."""

from __future__ import annotations

import copy
import math
import statistics

import pytest

from device_agent.backends.simulated import latency_source, nominal_ms, open_simulated
from device_agent.errors import ModelError, SpecError
from device_agent.spec import parse_spec
from tests.agent.agent_proc import fixture_model, job_spec, run_spec
from tests.agent.test_spec import BASE

SIM = {"name": "npu", "kind": "simulated", "cpus": [0], "ms_per_inference": 2.0, "ms_per_mib": 1.5, "sigma": 0.1}


def spec_with(component):
    raw = copy.deepcopy(BASE)
    raw["component"] = component
    return raw


def test_a_simulated_component_parses_its_fields():
    comp = parse_spec(spec_with(dict(SIM))).component
    assert (comp.kind, comp.ms_per_inference, comp.ms_per_mib, comp.sigma, comp.threads) == (
        "simulated", 2.0, 1.5, 0.1, 1)
    default = parse_spec(spec_with({"name": "npu", "kind": "simulated", "cpus": [0], "ms_per_inference": 3})).component
    assert (default.ms_per_mib, default.sigma) == (0.0, 0.05)


@pytest.mark.parametrize("change, message", [
    (dict(ms_per_inference=None), "component.ms_per_inference: missing required field (kind simulated)"),
    (dict(ms_per_inference=0), "component.ms_per_inference: must be > 0"),
    (dict(ms_per_inference="fast"), "component.ms_per_inference: must be a number"),
    (dict(ms_per_mib=-1), "component.ms_per_mib: must be >= 0"),
    (dict(sigma=-0.2), "component.sigma: must be >= 0"),
    (dict(sigma=float("inf")), "component.sigma: must be finite"),
    (dict(command=["x"]), "component.command: unknown key"),
    (dict(threads=2), "component.threads: unknown key"),
])
def test_bad_simulated_fields_are_named(change, message):
    comp = dict(SIM)
    for key, value in change.items():
        if value is None:
            comp.pop(key)
        else:
            comp[key] = value
    with pytest.raises(SpecError) as err:
        parse_spec(spec_with(comp))
    assert message in str(err.value)


def test_simulated_fields_belong_to_the_simulated_kind_only():
    with pytest.raises(SpecError, match=r"component\.ms_per_inference: unknown key"):
        parse_spec(spec_with({"name": "a7", "kind": "cpu", "cpus": [0], "ms_per_inference": 2.0}))


def test_the_nominal_latency_grows_with_the_model_file():
    assert nominal_ms(2.0, 1.5, 0) == 2.0
    assert nominal_ms(2.0, 1.5, 4 * 1024 * 1024) == pytest.approx(8.0)


def test_latencies_are_seeded_lognormal_around_the_nominal():
    a = latency_source(10.0, 0.2, seed=7, name="npu")
    b = latency_source(10.0, 0.2, seed=7, name="npu")
    other = latency_source(10.0, 0.2, seed=8, name="npu")
    draws = [a() for _ in range(2000)]
    assert draws[:50] == [b() for _ in range(50)]
    assert draws[:50] != [other() for _ in range(50)]
    assert statistics.median(draws) == pytest.approx(0.010, rel=0.05)
    assert statistics.stdev(math.log(d) for d in draws) == pytest.approx(0.2, rel=0.1)
    assert {latency_source(4.0, 0.0, 1, "x")() for _ in range(5)} == {0.004}


def test_the_backend_sleeps_the_drawn_time_and_describes_its_model(tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"\0" * (1024 * 1024))
    slept = []
    backend = open_simulated(str(model), 2.0, 3.0, 0.0, 0, "npu", sleep=slept.append)
    for _ in range(3):
        backend.invoke()
    assert slept == [pytest.approx(0.005)] * 3
    assert backend.info["simulated"] is True and backend.info["latency_model"]["median_ms"] == pytest.approx(5.0)
    assert backend.model == {"input_shape": None, "input_dtype": None}
    with pytest.raises(ModelError, match="cannot read model"):
        open_simulated(str(tmp_path / "missing.tflite"), 2.0, 0.0, 0.0, 0, "npu")


def test_an_agent_run_of_a_simulated_component_is_labelled_and_paced_by_the_model(tmp_path):
    spec = job_spec(fixture_model("float32"), tmp_path / "job", component=dict(SIM, ms_per_mib=0.0, sigma=0.0),
                    rules={"warmup_runs": 1, "min_count": 10, "min_duration_s": 0.2})
    del spec["component"]["threads"]
    run = run_spec(spec)
    assert run.returncode == 0, run.stderr
    started, summary = run.events[0], run.events[-1]
    assert started["runtime"] is None and started["component"]["simulated"] is True
    assert started["component"]["latency_model"]["distribution"] == "lognormal"
    assert summary["verdict"] == "VALID"
    assert summary["latency_ms"]["min"] >= 2.0  # every call slept the modelled 2 ms at least

"""Spec additions: components (co-execution), gpu/external kinds, isolated_ips, platform, model.input_shape."""

from __future__ import annotations

import copy

import pytest

from device_agent.errors import SpecError
from device_agent.spec import parse_spec
from tests.agent.test_spec import BASE


def with_(**fields):
    raw = copy.deepcopy(BASE)
    for k, v in fields.items():
        if v is None:
            raw.pop(k, None)
        else:
            raw[k] = v
    return raw


CPU0 = {"name": "a7", "kind": "cpu", "cpus": [0]}
CPU1 = {"name": "a15", "kind": "cpu", "cpus": [1], "threads": 1}
GPU = {"name": "gpu", "kind": "gpu", "cpus": [2], "delegate_path": "/usr/lib/libarmnnDelegate.so",
       "delegate_options": {"backends": "GpuAcc", "logging-severity": "info"}}
NPU = {"name": "npu", "kind": "external", "cpus": [3], "command": ["adb", "shell", "run", "{frames}"],
       "frames_per_batch": 8, "timeout_s": 20}


def test_old_specs_stay_valid_and_are_one_component():
    spec = parse_spec(copy.deepcopy(BASE))
    assert not spec.coexec and spec.components == (spec.component,) and spec.platform is None


def test_components_parse_every_kind():
    spec = parse_spec(with_(component=None, components=[CPU0, CPU1, GPU, NPU],
                            isolated_ips={"a7": 10, "a15": 30.5, "gpu": 40, "npu": 100}))
    assert spec.coexec and [c.name for c in spec.components] == ["a7", "a15", "gpu", "npu"]
    gpu, npu = spec.components[2], spec.components[3]
    assert gpu.delegate_path.endswith("libarmnnDelegate.so") and dict(gpu.delegate_options)["backends"] == "GpuAcc"
    assert npu.command == ("adb", "shell", "run", "{frames}") and npu.frames_per_call == 8 and npu.timeout_s == 20.0
    assert dict(spec.isolated_ips) == {"a7": 10.0, "a15": 30.5, "gpu": 40.0, "npu": 100.0}


@pytest.mark.parametrize("fields, message", [
    (dict(components=[CPU0]), "component: exactly one of component"),
    (dict(component=None), "component: exactly one of component"),
    (dict(component=None, components=[]), "components: must be a non-empty array"),
    (dict(component=None, components=[CPU0, dict(CPU1, name="a7")]), "components[1].name: same name"),
    (dict(component=None, components=[CPU0, dict(CPU1, cpus=[0])]), "components[1].cpus: CPU 0 is also used"),
    (dict(component=dict(GPU, delegate_path=None)), "component.delegate_path: must be a string"),
    (dict(component={"name": "g", "kind": "gpu", "cpus": [0]}), "component.delegate_path: missing required field"),
    (dict(component=dict(NPU, command=[])), "component.command: must be a non-empty array"),
    (dict(component=dict(NPU, frames_per_batch=0)), "component.frames_per_batch: must be >= 1"),
    (dict(component=dict(CPU0, command=["x"])), "component.command: unknown key"),
    (dict(isolated_ips={"cpu1": 5}), "isolated_ips: only with components"),
    (dict(component=None, components=[CPU0, CPU1], isolated_ips={"a7": 5}), "isolated_ips: missing component(s) a15"),
    (dict(component=None, components=[CPU0, CPU1], isolated_ips={"a7": 5, "a15": 0}), "isolated_ips.a15: must be > 0"),
    (dict(platform={"cpufreq": {"policy4": {"pin_khz": 1800000, "governor": "performance"}}}),
     "platform.cpufreq.policy4: needs exactly one of governor or pin_khz"),
    (dict(platform={"cpufreq": {"policy4": {"governor": "ondemand"}}}),
     "platform.cpufreq.policy4.governor: must be one of"),
    (dict(platform={"cpufreq": {"cpu4": {"governor": "performance"}}}), "platform.cpufreq.cpu4: must be policyN"),
    (dict(platform={"devfreq": {"gpu": {"pin_khz": -5}}}), "platform.devfreq.gpu.pin_khz: must be >= 1"),
    (dict(platform={"thermal_zones": ["tz0"]}), "platform.thermal_zones[0]: must be a name like thermal_zone0"),
    (dict(platform={"fans": {}}), "platform.fans: unknown key"),
    (dict(model={"path": "/m.tflite", "input_shape": [1, 0, 3]}), "model.input_shape[1]: must be >= 1"),
])
def test_bad_additions_are_named(fields, message):
    with pytest.raises(SpecError) as err:
        parse_spec(with_(**fields))
    assert message in str(err.value)


def test_platform_and_input_shape_parse():
    spec = parse_spec(with_(
        model={"path": "/m.tflite", "input_shape": [1, 224, 224, 3]},
        platform={"cpufreq": {"policy4": {"pin_khz": 1800000}, "policy0": {"governor": "performance"}},
                  "devfreq": {"11800000.gpu": {"pin_khz": 600000}}, "thermal_zones": ["thermal_zone0"]}))
    assert spec.model.input_shape == (1, 224, 224, 3)
    p = spec.platform
    assert [(r.name, r.governor, r.pin_khz) for r in p.cpufreq] == [("policy4", None, 1800000),
                                                                    ("policy0", "performance", None)]
    assert p.devfreq[0].pin_khz == 600000 and p.thermal_zones == ("thermal_zone0",)

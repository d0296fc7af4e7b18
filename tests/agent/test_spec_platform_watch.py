"""The watch-only form of a frequency domain in the spec's ``platform`` block."""

from __future__ import annotations

import pytest

from device_agent.errors import SpecError
from device_agent.spec import parse_spec
from device_agent.spec_platform import FreqRequest
from tests.agent.test_spec_additions import with_


def test_watch_only_domains_parse_and_are_not_held():
    spec = parse_spec(with_(platform={
        "cpufreq": {"policy4": {"watch": True, "loaded": True}, "policy0": {"pin_khz": 1400000}},
        "devfreq": {"11800000.gpu": {"watch": True}},
        "thermal_zones": ["thermal_zone0", "thermal_zone4"]}))
    p = spec.platform
    assert p.watched("cpufreq") == (FreqRequest("policy4", None, None, watch=True, loaded=True),)
    assert p.held("cpufreq") == (FreqRequest("policy0", None, 1400000),)
    assert p.watched("devfreq") == (FreqRequest("11800000.gpu", None, None, watch=True, loaded=False),)
    assert p.held("devfreq") == () and p.thermal_zones == ("thermal_zone0", "thermal_zone4")


def test_old_platform_blocks_mean_what_they_meant():
    spec = parse_spec(with_(platform={"cpufreq": {"policy4": {"governor": "performance"}},
                                      "thermal_zones": ["thermal_zone0"]}))
    assert spec.platform.held("cpufreq") == (FreqRequest("policy4", "performance", None),)
    assert spec.platform.watched("cpufreq") == ()


def test_zones_alone_are_a_platform_block():
    assert parse_spec(with_(platform={"thermal_zones": ["thermal_zone2"]})).platform.thermal_zones == ("thermal_zone2",)


@pytest.mark.parametrize("platform, message", [
    ({"cpufreq": {"policy4": {"watch": False}}}, "platform.cpufreq.policy4.watch: must be true"),
    ({"cpufreq": {"policy4": {"watch": "yes"}}}, "platform.cpufreq.policy4.watch: must be true (leave the domain "
                                                 "out to not watch it), got string 'yes'"),
    ({"cpufreq": {"policy4": {"watch": True, "pin_khz": 1800000}}},
     "platform.cpufreq.policy4: needs exactly one of governor or pin_khz (or watch: true alone"),
    ({"cpufreq": {"policy4": {"loaded": True, "governor": "performance"}}},
     "platform.cpufreq.policy4.loaded: only with watch: true"),
    ({"cpufreq": {"policy4": {"watch": True, "loaded": 1}}},
     "platform.cpufreq.policy4.loaded: must be true or false, got number 1"),
    ({"devfreq": {"11800000.gpu": {"watch": True, "loaded": True}}},
     "platform.devfreq.11800000.gpu.loaded: unknown key"),
    ({"cpufreq": {"policy4": {}}}, "platform.cpufreq.policy4: needs exactly one of governor or pin_khz"),
])
def test_bad_watch_settings_are_named(platform, message):
    with pytest.raises(SpecError) as err:
        parse_spec(with_(platform=platform))
    assert message in str(err.value)

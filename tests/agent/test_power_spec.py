"""The optional ``sysfs_root`` and ``power`` fields of the job spec."""

from __future__ import annotations

import copy

import pytest

from device_agent.errors import SpecError
from device_agent.spec import DEFAULT_SYSFS_ROOT, parse_spec
from tests.agent.test_spec import BASE

POWER = {
    "kind": "ina231",
    "rails": {"a15": "bus/i2c/drivers/INA231/3-0040", "a7": "bus/i2c/drivers/INA231/3-0045"},
    "update_period_us": 263808,
}


def with_power(power=None, **top):
    raw = copy.deepcopy(BASE)
    if power is not None:
        raw["power"] = power
    raw.update(top)
    return raw


def power_with(**fields):
    p = copy.deepcopy(POWER)
    for key, value in fields.items():
        if value is DELETE:
            del p[key]
        else:
            p[key] = value
    return p


DELETE = object()


def test_power_is_optional():
    spec = parse_spec(with_power())
    assert spec.power is None and spec.sysfs_root == DEFAULT_SYSFS_ROOT == "/sys"
    raw = with_power()
    raw["power"] = None
    assert parse_spec(raw).power is None


def test_power_parses_with_rails_in_order():
    spec = parse_spec(with_power(POWER, sysfs_root="/tmp/fake-sys"))
    assert spec.sysfs_root == "/tmp/fake-sys"
    assert spec.power.kind == "ina231" and spec.power.update_period_us == 263808
    assert spec.power.rails == (("a15", "bus/i2c/drivers/INA231/3-0040"), ("a7", "bus/i2c/drivers/INA231/3-0045"))


def test_hwmon_without_period_and_paths_normalised():
    spec = parse_spec(with_power({"kind": "hwmon", "rails": {"gpu": "./class/hwmon//hwmon2/"}}))
    assert spec.power.kind == "hwmon" and spec.power.update_period_us is None
    assert spec.power.rails == (("gpu", "class/hwmon/hwmon2"),)


@pytest.mark.parametrize(
    "power, top, field, words",
    [
        (power_with(kind="ina219"), {}, "power.kind", "one of"),
        (power_with(kind=DELETE), {}, "power.kind", "missing"),
        (power_with(rails=DELETE), {}, "power.rails", "missing"),
        (power_with(rails={}), {}, "power.rails", "non-empty"),
        (power_with(rails=["bus/i2c/drivers/INA231/3-0040"]), {}, "power.rails", "non-empty object"),
        (power_with(rails={"a15": "/sys/bus/i2c/drivers/INA231/3-0040"}), {}, "power.rails.a15", "relative"),
        (power_with(rails={"a15": "bus/../../etc"}), {}, "power.rails.a15", "'..'"),
        (power_with(rails={"a15": ""}), {}, "power.rails.a15", "empty"),
        (power_with(rails={"a15": 40}), {}, "power.rails.a15", "string"),
        (power_with(rails={"a 15": "x"}), {}, "power.rails.a 15", "rail name"),
        (power_with(rails={"a15": "x/y", "a7": "x/y/"}), {}, "power.rails.a7", "same sensor folder as power.rails.a15"),
        (power_with(update_period_us=0), {}, "power.update_period_us", ">= 1"),
        (power_with(update_period_us=2.5), {}, "power.update_period_us", "integer"),
        (power_with(update_period_us=True), {}, "power.update_period_us", "integer"),
        (power_with(kind="hwmon"), {}, "power.update_period_us", "only for kind ina231"),
        (power_with(interval_ms=5), {}, "power.interval_ms", "unknown key"),
        ("ina231", {}, "power", "object"),
        (None, {"sysfs_root": "sys"}, "sysfs_root", "absolute"),
        (None, {"sysfs_root": ""}, "sysfs_root", "empty"),
        (None, {"sysfs_root": 1}, "sysfs_root", "string"),
    ],
)
def test_bad_power_field_is_a_spec_error_naming_it(power, top, field, words):
    with pytest.raises(SpecError) as info:
        parse_spec(with_power(power, **top))
    message = str(info.value)
    assert field + ":" in message and words in message

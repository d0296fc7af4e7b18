"""Fake sysfs layouts: paths, OPP tables and defaults of both SoCs and both sensor variants."""

from __future__ import annotations

import os

import pytest

from orchestrator.virtual.sysfs import (
    HWMON_DEFAULT_UPDATE_INTERVAL_MS,
    INA231_DEFAULT_UPDATE_PERIOD_US,
    UNSUPPORTED,
    build_tree,
    cpu_range,
    layout_for,
)

POLICY_FILES = ("related_cpus", "affected_cpus", "cpuinfo_min_freq", "cpuinfo_max_freq",
                "scaling_available_frequencies", "scaling_available_governors", "scaling_governor",
                "scaling_min_freq", "scaling_max_freq", "scaling_cur_freq", "cpuinfo_cur_freq",
                "scaling_setspeed")
DEVFREQ_FILES = ("available_frequencies", "cur_freq", "min_freq", "max_freq", "governor", "available_governors")


def read(path) -> str:
    return path.read_text().strip()


def test_xu3_cpufreq_and_gpu(tmp_path):
    layout = build_tree(tmp_path, "odroid_xu3")
    cpu = tmp_path / "devices/system/cpu"
    assert read(cpu / "online") == "0-7" and read(cpu / "possible") == "0-7"
    assert all((cpu / f"cpu{n}").is_dir() for n in range(8))
    a7, a15 = layout.cluster("a7"), layout.cluster("policy4")
    assert (a7.policy, a7.cls, a7.cpus) == ("policy0", "little", (0, 1, 2, 3))
    assert (a15.name, a15.cls, a15.cpus) == ("a15", "big", (4, 5, 6, 7))
    assert a7.opps_khz == tuple(range(200000, 1400001, 100000))
    assert a15.opps_khz == tuple(range(200000, 2000001, 100000))
    p4 = cpu / "cpufreq/policy4"
    assert a15.path == "devices/system/cpu/cpufreq/policy4"
    for name in POLICY_FILES:
        assert (p4 / name).is_file(), name
    assert read(p4 / "related_cpus") == "4 5 6 7"
    assert read(p4 / "scaling_available_frequencies").split() == [str(f) for f in a15.opps_khz]
    # the kernel prints lists with a trailing space
    assert (p4 / "scaling_available_frequencies").read_text().endswith(" \n")
    governors = read(p4 / "scaling_available_governors").split()
    assert {"performance", "powersave", "userspace", "ondemand", "interactive"} <= set(governors)
    assert read(p4 / "cpuinfo_min_freq") == "200000" and read(p4 / "cpuinfo_max_freq") == "2000000"
    assert read(p4 / "scaling_min_freq") == "200000" and read(p4 / "scaling_max_freq") == "2000000"
    assert read(p4 / "scaling_setspeed") == UNSUPPORTED
    assert os.readlink(cpu / "cpu5/cpufreq") == "../cpufreq/policy4"
    assert read(cpu / "cpu5/cpufreq/scaling_max_freq") == "2000000"
    gpu = tmp_path / "class/devfreq/11800000.gpu"
    assert layout.devfreq.path == "class/devfreq/11800000.gpu" and layout.devfreq.gpu.startswith("Mali-T628")
    for name in DEVFREQ_FILES:
        assert (gpu / name).is_file(), name
    mhz = [int(f) // 1_000_000 for f in read(gpu / "available_frequencies").split()]
    assert mhz == [177, 266, 350, 420, 480, 543, 600]
    assert read(gpu / "min_freq") == "177000000" and read(gpu / "max_freq") == "600000000"


def test_xu3_thermal_zones(tmp_path):
    layout = build_tree(tmp_path, "odroid_xu3")
    types = [read(tmp_path / z.path / "type") for z in layout.thermal_zones]
    assert len([t for t in types if t.startswith("cpu")]) == 4 and "gpu-thermal" in types
    for z in layout.thermal_zones:
        assert z.path == f"class/thermal/thermal_zone{z.index}"
        assert 20000 < int(read(tmp_path / z.path / "temp")) < 60000  # millidegrees


def test_xu3_ina231_vendor_layout(tmp_path):
    layout = build_tree(tmp_path, "odroid_xu3", sensors="vendor")
    assert layout.sensor_kind == "ina231"
    assert {r.name: r.path for r in layout.rails} == {
        "a15": "bus/i2c/drivers/INA231/3-0040", "mem": "bus/i2c/drivers/INA231/3-0041",
        "gpu": "bus/i2c/drivers/INA231/3-0044", "a7": "bus/i2c/drivers/INA231/3-0045"}
    for r in layout.rails:
        d = tmp_path / r.path
        assert read(d / "enable") == "0"
        assert read(d / "update_period") == str(INA231_DEFAULT_UPDATE_PERIOD_US) == "263808"
        assert read(d / "name")
        for name in ("sensor_W", "sensor_A", "sensor_V"):
            assert read(d / name) == "0.000000"
    assert not (tmp_path / "class/hwmon").exists()


def test_xu3_ina231_hwmon_layout(tmp_path):
    layout = build_tree(tmp_path, "odroid_xu3", sensors="hwmon")
    assert layout.sensor_kind == "hwmon"
    assert [r.path for r in layout.rails] == [f"class/hwmon/hwmon{i}" for i in range(4)]
    assert [r.name for r in layout.rails] == ["a15", "mem", "gpu", "a7"]
    for r in layout.rails:
        d = tmp_path / r.path
        assert read(d / "name") == "ina231"
        for name in ("power1_input", "curr1_input", "in1_input"):
            assert read(d / name) == "0"
        assert read(d / "update_interval") == str(HWMON_DEFAULT_UPDATE_INTERVAL_MS)
        # the device link names the chip's i2c address, as on a mainline kernel
        assert os.path.basename(os.readlink(d / "device")) == r.i2c_address
        assert (d / "device" / "name").is_file()
    assert not (tmp_path / "bus/i2c/drivers/INA231").exists()


def test_hikey970_layout(tmp_path):
    layout = build_tree(tmp_path, "hikey970")
    assert layout.soc_id == "kirin970" and layout.sensor_kind is None and layout.rails == ()
    a53, a73 = layout.cluster("a53"), layout.cluster("a73")
    assert (a53.policy, a53.cpus, a53.opps_khz[-1]) == ("policy0", (0, 1, 2, 3), 1844000)
    assert (a73.policy, a73.cpus, a73.opps_khz[-1]) == ("policy4", (4, 5, 6, 7), 2362000)
    assert a53.opps_khz[0] == 509000 and a73.opps_khz[0] == 682000
    p0 = tmp_path / a53.path
    assert read(p0 / "scaling_max_freq") == "1844000"
    gpu = tmp_path / "class/devfreq/e82c0000.mali"
    hz = [int(f) for f in read(gpu / "available_frequencies").split()]
    assert hz == sorted(hz) and 700e6 < hz[-1] < 800e6  # Linux build tops out at ~767 MHz
    assert layout.devfreq.gpu.startswith("Mali-G72")
    assert 2 <= len(layout.thermal_zones) <= 6
    assert not (tmp_path / "bus/i2c/drivers/INA231").exists() and not (tmp_path / "class/hwmon").exists()


def test_layout_without_disk_matches_tree(tmp_path):
    assert layout_for("odroid_xu3", "hwmon") == build_tree(tmp_path, "odroid_xu3", sensors="hwmon")


def test_unknown_soc_and_variant():
    with pytest.raises(ValueError, match="unknown SoC"):
        layout_for("rpi4")
    with pytest.raises(ValueError, match="sensor layout"):
        layout_for("odroid_xu3", "smbus")
    with pytest.raises(KeyError):
        layout_for("hikey970").cluster("a15")


def test_cpu_range():
    assert cpu_range([0, 1, 2, 3, 5, 7, 8]) == "0-3,5,7-8"
    assert cpu_range([4]) == "4"

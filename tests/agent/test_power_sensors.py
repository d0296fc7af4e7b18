"""INA231 and hwmon sensors on fake sysfs trees; the sampler thread against a fake driver."""

from __future__ import annotations

import shutil
import time

import pytest

from device_agent.errors import PowerError, SpecError, SysfsError, SysfsWriteError
from device_agent.power.hwmon import HwmonSensor
from device_agent.power.ina231 import Ina231Sensor
from device_agent.power.sampler import Sampler
from device_agent.power.session import PowerSession
from device_agent.spec import PowerSpec
from device_agent.sysfs import Sysfs
from tests.agent.fake_sysfs import FakeDriver, hwmon_dir, ina231_dir, ina231_rel

MS = 1000000
PERIOD_S = 0.05


class RoundingDriver(Sysfs):
    """A driver whose ``update_period`` shows the period it really configured (rounded to 2 ms)."""

    def read(self, rel: str) -> str:
        text = super().read(rel)
        if rel.endswith("/update_period"):
            return str(int(text) // 2000 * 2000)
        return text


def test_ina231_start_enables_sets_the_period_and_stop_restores(tmp_path):
    rel = ina231_rel("a15")
    d = ina231_dir(tmp_path, rel, enable=0, update_period_us=263808, values=(1.0, 0.5, 2.0))
    sensor = Ina231Sensor(Sysfs(str(tmp_path)), "a15", rel, update_period_us=50000)
    assert sensor.missing_files() == []
    sensor.start()
    assert (d / "enable").read_text().strip() == "1"
    assert (d / "update_period").read_text().strip() == "50000"
    assert sensor.period_ns == 50 * MS
    sample = sensor.poll(time.monotonic_ns())
    assert sample is not None and sample.rail == "a15" and sample.power_w == 1.0
    sensor.stop()
    assert (d / "enable").read_text().strip() == "0"
    assert (d / "update_period").read_text().strip() == "263808"
    sensor.stop()  # twice: nothing left to restore


def test_ina231_leaves_an_already_enabled_sensor_as_it_is(tmp_path):
    rel = ina231_rel("a7")
    d = ina231_dir(tmp_path, rel, enable=1, update_period_us=263808)
    sensor = Ina231Sensor(Sysfs(str(tmp_path)), "a7", rel)
    sensor.start()
    assert sensor.period_ns == 263808000
    sensor.stop()
    assert (d / "enable").read_text().strip() == "1"
    assert (d / "update_period").read_text().strip() == "263808"


def test_ina231_period_not_accepted_is_a_write_error_and_is_restored(tmp_path):
    rel = ina231_rel("gpu")
    d = ina231_dir(tmp_path, rel, enable=0, update_period_us=264000)
    sensor = Ina231Sensor(RoundingDriver(str(tmp_path)), "gpu", rel, update_period_us=50001)
    with pytest.raises(SysfsWriteError) as info:
        sensor.start()
    message = str(info.value)
    assert str(d / "update_period") in message and "'50001'" in message and "read back '50000'" in message
    assert (d / "enable").read_text().strip() == "0"  # never enabled
    sensor.stop()
    assert (d / "update_period").read_text().strip() == "264000"


def test_ina231_unreadable_enable_is_an_error(tmp_path):
    rel = ina231_rel("mem")
    d = ina231_dir(tmp_path, rel)
    (d / "enable").unlink()
    (d / "enable").mkdir()
    sensor = Ina231Sensor(Sysfs(str(tmp_path)), "mem", rel)
    assert sensor.missing_files() == ["enable"]
    with pytest.raises(SysfsError, match="cannot read .*enable"):
        sensor.start()


def test_poll_before_start_is_a_bug(tmp_path):
    rel = ina231_rel("a15")
    ina231_dir(tmp_path, rel)
    with pytest.raises(RuntimeError, match="not started"):
        Ina231Sensor(Sysfs(str(tmp_path)), "a15", rel).poll(0)


def test_hwmon_converts_units_and_honours_update_interval(tmp_path):
    rel = "class/hwmon/hwmon3"
    hwmon_dir(tmp_path, rel, update_interval_ms=35, values=(2.5, 0.5, 5.0))
    sensor = HwmonSensor(Sysfs(str(tmp_path)), "a15", rel)
    assert sensor.missing_files() == []
    sensor.start()
    assert sensor.period_ns == 35 * MS
    first = sensor.poll(10 ** 12)
    assert first is not None and first.power_w == 2.5  # 2500000 uW
    assert sensor.poll(10 ** 12 + 34 * MS) is None  # no new conversion can exist yet
    assert sensor.poll(10 ** 12 + 35 * MS) is None  # same values within the period: same conversion
    sensor.stop()


def test_hwmon_device_folder_resolves_to_its_hwmon(tmp_path):
    hwmon_dir(tmp_path, "bus/i2c/devices/0-0040/hwmon/hwmon7", values=(0.125, 0.1, 1.25))
    sensor = HwmonSensor(Sysfs(str(tmp_path)), "a15", "bus/i2c/devices/0-0040")
    assert sensor.missing_files() == []
    sensor.start()
    assert sensor.rel_dir == "bus/i2c/devices/0-0040/hwmon/hwmon7"
    assert sensor.poll(0).power_w == 0.125


def test_hwmon_folder_without_power_is_reported(tmp_path):
    d = hwmon_dir(tmp_path, "class/hwmon/hwmon0")
    (d / "power1_input").unlink()
    (d / "update_interval").unlink()
    sensor = HwmonSensor(Sysfs(str(tmp_path)), "a15", "class/hwmon/hwmon0")
    assert sensor.missing_files() == ["power1_input", "update_interval"]


def distinct_values(rail, k):
    """Every conversion different in W (so a double count shows), with W = A * V."""
    v = 1.0 + 0.001 * (k % 100)
    a = 0.5 + 0.0001 * k
    return (round(a * v, 6), a, v)


def sample_for(tmp_path, kind, duration_s):
    rails = ["a15", "a7"]
    sysfs = Sysfs(str(tmp_path))
    if kind == "ina231":
        dirs = {r: ina231_dir(tmp_path, ina231_rel(r), update_period_us=263808) for r in rails}
        sensors = [Ina231Sensor(sysfs, r, ina231_rel(r), update_period_us=int(PERIOD_S * 1e6)) for r in rails]
    else:
        dirs = {r: hwmon_dir(tmp_path, "class/hwmon/hwmon%d" % i, update_interval_ms=int(PERIOD_S * 1e3))
                for i, r in enumerate(rails)}
        sensors = [HwmonSensor(sysfs, r, "class/hwmon/hwmon%d" % i) for i, r in enumerate(rails)]
    for s in sensors:
        s.start()
    with FakeDriver(dirs, PERIOD_S, distinct_values, kind=kind) as driver:
        time.sleep(3 * PERIOD_S)  # the first conversions after enabling
        sampler = Sampler(sensors, max_duration_s=10.0)
        t0 = time.monotonic_ns()
        sampler.start()
        time.sleep(duration_s)
        samples = sampler.stop()
        t1 = time.monotonic_ns()
    for s in sensors:
        s.stop()
    return rails, sensors, driver, samples, (t1 - t0) / 1e9


@pytest.mark.parametrize("kind", ["ina231", "hwmon"])
def test_sampler_takes_one_sample_per_conversion(tmp_path, kind):
    duration_s = 1.0
    rails, sensors, driver, samples, elapsed_s = sample_for(tmp_path, kind, duration_s)
    scale = 1.0 if kind == "ina231" else 1e-6
    for rail in rails:
        mine = [s for s in samples if s.rail == rail]
        times = [s.t_mono_ns for s in mine]
        assert times == sorted(times)
        # never faster than the conversion period, never more than elapsed / period + 1
        assert all(b - a >= PERIOD_S * 1e9 for a, b in zip(times, times[1:]))
        assert len(mine) <= elapsed_s / PERIOD_S + 1
        assert len(mine) >= 0.6 * duration_s / PERIOD_S
        # each sample is a published conversion, none counted twice, in publication order
        published = [round(round(v[0] / scale) * scale, 6) if kind == "hwmon" else v[0]
                     for v in driver.published[rail]]
        indices = [published.index(round(s.power_w, 6)) for s in mine]
        assert indices == sorted(indices), "conversions out of publication order"
        # the same conversion twice is right only when the driver had not yet published the next one: a
        # driver late by two periods looks like a rail holding its value (the fake one stalls on a busy disk)
        published_ns = driver.published_ns[rail]
        read = list(zip(indices, times))
        for (k, t), (k2, t2) in zip(read, read[1:]):
            if k2 == k:
                assert t2 - t >= 2 * PERIOD_S * 1e9, "the same conversion read again within two periods"
                assert k + 1 >= len(published_ns) or published_ns[k + 1] > t2, "a conversion was counted twice"


def test_sampler_is_bounded_by_its_max_duration(tmp_path):
    rel = ina231_rel("a15")
    ina231_dir(tmp_path, rel, enable=1, update_period_us=20000, values=(1.0, 0.5, 2.0))
    sensor = Ina231Sensor(Sysfs(str(tmp_path)), "a15", rel)
    sensor.start()
    sampler = Sampler([sensor], max_duration_s=0.2)
    assert sampler.tick_ns == 5 * MS
    sampler.start()
    deadline = time.monotonic() + 5.0
    while sampler.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not sampler.running  # ended by itself
    assert sampler.timed_out
    with pytest.raises(PowerError, match="bound of 0.2 s"):
        sampler.stop()
    # constant values: the same conversion as long as it may be one (< 2 periods), then a new one
    times = [s.t_mono_ns for s in sampler.samples]
    assert all(b - a >= 40 * MS for a, b in zip(times, times[1:]))
    assert 1 <= len(times) <= 0.2 / 0.04 + 1


def test_sensor_read_failure_in_the_thread_reaches_stop(tmp_path):
    rel = ina231_rel("a15")
    d = ina231_dir(tmp_path, rel, enable=1, update_period_us=10000, values=(1.0, 0.5, 2.0))
    sensor = Ina231Sensor(Sysfs(str(tmp_path)), "a15", rel)
    sensor.start()
    sampler = Sampler([sensor], max_duration_s=5.0)
    sampler.start()
    time.sleep(0.05)
    shutil.rmtree(str(d))
    deadline = time.monotonic() + 5.0
    while sampler.running and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(SysfsError, match=r"cannot read .*/3-0040/sensor_[WAV]"):
        sampler.stop()


def power_spec(rails, kind="ina231", update_period_us=None):
    return PowerSpec(kind=kind, rails=tuple(rails.items()), update_period_us=update_period_us)


def test_session_names_every_missing_or_wrong_rail(tmp_path):
    ina231_dir(tmp_path, ina231_rel("a15"))
    (tmp_path / "bus/i2c/drivers/INA231/3-0041").mkdir(parents=True)
    spec = power_spec({"a15": ina231_rel("a15"), "mem": ina231_rel("mem"), "gpu": ina231_rel("gpu")})
    with pytest.raises(SpecError) as info:
        PowerSession.open(spec, str(tmp_path), 10.0)
    message = str(info.value)
    assert "power.rails.a15" not in message
    mem = tmp_path / ina231_rel("mem")
    assert "power.rails.mem: %s is not a sensor folder of kind ina231 (missing sensor_W" % mem in message
    assert "power.rails.gpu: sensor folder not found: %s" % (tmp_path / ina231_rel("gpu")) in message
    with pytest.raises(SpecError, match="sysfs_root: not a directory"):
        PowerSession.open(spec, str(tmp_path / "nope"), 10.0)


def test_session_restores_every_sensor_when_the_job_fails(tmp_path):
    dirs = {r: ina231_dir(tmp_path, ina231_rel(r), enable=0, update_period_us=263808) for r in ("a15", "a7")}
    spec = power_spec({r: ina231_rel(r) for r in dirs}, update_period_us=50000)
    session = PowerSession.open(spec, str(tmp_path), 10.0)
    with pytest.raises(KeyboardInterrupt):
        with session.active():
            assert all((d / "enable").read_text().strip() == "1" for d in dirs.values())
            session.window_open()
            raise KeyboardInterrupt  # e.g. interrupted in the middle of the window
    assert not session.sampler.running
    for d in dirs.values():
        assert (d / "enable").read_text().strip() == "0"
        assert (d / "update_period").read_text().strip() == "263808"


def test_session_restores_the_sensors_already_started_when_one_cannot_start(tmp_path):
    good = ina231_dir(tmp_path, ina231_rel("a15"), enable=0)
    bad = ina231_dir(tmp_path, ina231_rel("a7"), enable=0)
    (bad / "update_period").write_text("0\n")
    session = PowerSession.open(power_spec({"a15": ina231_rel("a15"), "a7": ina231_rel("a7")}), str(tmp_path), 10.0)
    with pytest.raises(SysfsError, match=r"power.rails.a7: .*update_period: conversion period must be > 0"):
        with session.active():
            pass
    assert (good / "enable").read_text().strip() == "0"
    assert (bad / "enable").read_text().strip() == "0"


def test_session_without_conversions_is_an_error_naming_the_rail(tmp_path):
    ina231_dir(tmp_path, ina231_rel("gpu"), enable=0)  # no driver: values stay zero
    session = PowerSession.open(power_spec({"gpu": ina231_rel("gpu")}, update_period_us=20000), str(tmp_path), 10.0)
    with pytest.raises(SysfsError, match="power.rails.gpu: no conversion read during the window"):
        with session.active():
            session.window_open()
            time.sleep(0.1)
            session.window_close()
            session.finish()

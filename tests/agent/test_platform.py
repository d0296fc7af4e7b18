"""Platform control on a virtual XU3 tree with its simulated kernel: hold, verify, restore, sample."""

from __future__ import annotations

import time

import pytest

from device_agent.errors import SpecError
from device_agent.platform.control import PlatformSession
from device_agent.platform.sampler import CUR_FREQ_KHZ, PlatformSample
from device_agent.platform.throttle import freq_held, freq_stats
from device_agent.spec_platform import FreqRequest, PlatformSpec
from device_agent.verdict import judge
from device_agent.spec import Rules
from tests.agent.virtual_board import GPU, POLICY0, POLICY4, snapshot, xu3

S = 1000000000


def spec(cpufreq=(), devfreq=(), zones=()):
    return PlatformSpec(cpufreq=tuple(cpufreq), devfreq=tuple(devfreq), thermal_zones=tuple(zones))


def test_pin_and_performance_are_held_then_restored(tmp_path):
    with xu3(tmp_path) as sim:
        time.sleep(sim.settle_s)
        before = snapshot(tmp_path)
        cpus = [FreqRequest("policy4", None, 1800000), FreqRequest("policy0", "performance", None)]
        gpu = [FreqRequest("11800000.gpu", None, 420000)]
        s = PlatformSession.open(spec(cpus, gpu, ["thermal_zone0"]), str(tmp_path), 30.0)
        with s.active():
            assert (tmp_path / POLICY4 / "scaling_cur_freq").read_text().strip() == "1800000"
            assert (tmp_path / POLICY0 / "scaling_governor").read_text().strip() == "performance"
            assert (tmp_path / POLICY0 / "scaling_cur_freq").read_text().strip() == "1400000"
            assert (tmp_path / GPU / "cur_freq").read_text().strip() == "420000000"
            d = s.describe()
            assert d["cpufreq"]["policy4"] == {"mode": "pin", "requested_khz": 1800000, "effective_khz": 1800000}
            assert d["devfreq"]["11800000.gpu"]["effective_khz"] == 420000
        time.sleep(sim.settle_s)
        assert snapshot(tmp_path) == before
        assert sim.error is None


def test_restored_on_error_inside_the_block(tmp_path):
    with xu3(tmp_path) as sim:
        time.sleep(sim.settle_s)
        before = snapshot(tmp_path)
        s = PlatformSession.open(spec([FreqRequest("policy4", None, 1000000)]), str(tmp_path), 30.0)
        with pytest.raises(KeyboardInterrupt):
            with s.active():
                raise KeyboardInterrupt
        time.sleep(sim.settle_s)
        assert snapshot(tmp_path) == before


@pytest.mark.parametrize("request_, message", [
    (FreqRequest("policy4", None, 1850000), r"platform\.cpufreq\.policy4\.pin_khz: 1850000 kHz is not a frequency"),
    (FreqRequest("policy9", None, 1000000), r"platform\.cpufreq\.policy9: no cpufreq domain"),
])
def test_bad_requests_are_spec_errors_before_any_write(tmp_path, request_, message):
    with xu3(tmp_path):
        before = snapshot(tmp_path)
        with pytest.raises(SpecError, match=message):
            PlatformSession.open(spec([request_]), str(tmp_path), 30.0)
        assert snapshot(tmp_path) == before


def test_gpu_pin_must_be_an_available_frequency(tmp_path):
    with xu3(tmp_path):
        with pytest.raises(SpecError, match=r"devfreq\.11800000\.gpu\.pin_khz: 500000 kHz .*177000 266000"):
            PlatformSession.open(spec(devfreq=[FreqRequest("11800000.gpu", None, 500000)]), str(tmp_path), 30.0)


def test_missing_thermal_zone_is_a_spec_error(tmp_path):
    with xu3(tmp_path):
        with pytest.raises(SpecError, match=r"platform\.thermal_zones\[0\]: no thermal zone thermal_zone42"):
            PlatformSession.open(spec(zones=["thermal_zone42"]), str(tmp_path), 30.0)


def test_sampler_sees_a_throttle_and_judge_flags_it(tmp_path):
    with xu3(tmp_path) as sim:
        s = PlatformSession.open(spec([FreqRequest("policy4", None, 2000000)], zones=["thermal_zone0"]),
                                 str(tmp_path), 30.0)
        with s.active():
            start = time.monotonic_ns()
            s.window_open()
            time.sleep(0.3)
            sim.throttle("policy4", 1400000)
            time.sleep(0.5)
            sim.throttle("policy4", None)
            s.window_close()
            end = time.monotonic_ns()
            block, facts = s.finish(str(tmp_path), start, end)
    stats = block["cpufreq"]["policy4"]
    assert stats["min_khz"] == 1400000 and stats["below_min_khz"] == 1400000
    assert 0 < stats["below_s"] < (end - start) / S
    assert block["thermal"]["thermal_zone0"]["samples"] >= 2
    assert (tmp_path / "platform.csv").read_text().startswith("name,quantity,t_mono_ns,value\n")
    v = judge(100, end - start, Rules(0, 1, 0.1, 10.0), freqs=facts)
    assert v.verdict == "INVALID"
    assert v.reasons[0].startswith("throttled: policy4 ran below 2000000 kHz for ")
    assert v.reasons[0].endswith("s (min 1400000 kHz)")


def _series(values_at):
    return [PlatformSample("policy4", CUR_FREQ_KHZ, t, v) for t, v in values_at]


def test_freq_stats_hold_each_sample_until_the_next():
    samples = _series([(0, 2000000), (S // 10, 1400000), (3 * S // 10, 2000000), (S, 2000000)])
    st = freq_stats(samples, "policy4", 2000000, 0, S)
    assert st["below_s"] == pytest.approx(0.2)
    assert st["min_khz"] == 1400000
    assert st["mean_khz"] == pytest.approx(2000000 - 0.2 * 600000)
    fact = freq_held("policy4", 2000000, st)
    assert fact.below_s == pytest.approx(0.2) and fact.min_khz == 1400000


def test_freq_stats_ignore_samples_outside_the_window():
    samples = _series([(0, 2000000), (2 * S, 1000000)])
    st = freq_stats(samples, "policy4", 2000000, 0, S)
    assert st["below_s"] == 0 and st["min_khz"] == 2000000
    assert judge(10, S, Rules(0, 1, 0.5, 2.0), freqs=[freq_held("policy4", 2000000, st)]).verdict == "VALID"


def test_a_write_the_kernel_refuses_late_is_a_sysfs_write_error_and_is_restored(tmp_path):
    from device_agent.errors import SysfsWriteError
    from device_agent.platform.domain import cpufreq_domain
    from device_agent.platform.hold import FreqHold
    from device_agent.sysfs import Sysfs

    with xu3(tmp_path) as sim:
        time.sleep(sim.settle_s)
        before = snapshot(tmp_path)
        hold = FreqHold(Sysfs(str(tmp_path)), cpufreq_domain("policy4"), FreqRequest("policy4", None, 1850000),
                        "platform.cpufreq.policy4")
        hold.held_khz = 1850000  # skip check(): the simulated kernel reverts a non-OPP value ~20 ms later
        with pytest.raises(SysfsWriteError, match=r"wrote '1850000' to .*policy4/scaling_m.._freq but read back"):
            hold.apply()
        hold.restore()
        time.sleep(sim.settle_s)
        assert snapshot(tmp_path) == before

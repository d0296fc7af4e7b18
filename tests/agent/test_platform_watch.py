"""Throttling of domains nobody pinned: watched, never written, judged from their frequency readings.

The trees are static files (``tests/agent/fake_sysfs.py``): a test writes the cap itself before the window
opens, so every sampler round of the window sees it, whatever the timing.
"""

from __future__ import annotations

import pytest

from device_agent.errors import SpecError
from device_agent.platform.control import PlatformSession
from device_agent.platform.sampler import CUR_FREQ_KHZ, LIMIT_KHZ, TEMP_MDEGC, PlatformSample
from device_agent.platform.throttle import freq_watched, temp_stats, watch_stats
from device_agent.spec import Rules
from device_agent.spec_platform import FreqRequest, PlatformSpec
from device_agent.verdict import judge
from tests.agent.fake_sysfs import cap, cpufreq_policy_dir, devfreq_dir, thermal_zone_dir

S = 1000000000
XU3_A15_KHZ = tuple(range(200000, 2000001, 100000))
GPU_HZ = (177000000, 266000000, 350000000, 420000000, 480000000, 543000000, 600000000)
RULES = Rules(0, 1, 0.1, 10.0)


def watched(cpufreq=(), devfreq=(), zones=()):
    return PlatformSpec(cpufreq=tuple(FreqRequest(n, None, None, watch=True, loaded=loaded) for n, loaded in cpufreq),
                        devfreq=tuple(FreqRequest(n, None, None, watch=True) for n in devfreq),
                        thermal_zones=tuple(zones))


def window(tmp_path, spec):
    """Open the session, run an (empty) window, close it: the summary block and the verdict."""
    s = PlatformSession.open(spec, str(tmp_path), 30.0)
    with s.active():
        start = 1
        s.window_open()
        s.window_close()
        block, facts = s.finish(str(tmp_path), start, start + S)
    return s, block, judge(100, S, RULES, freqs=facts)


def test_a_cap_on_an_unpinned_policy_makes_the_job_invalid(tmp_path):
    policy = cpufreq_policy_dir(tmp_path, "policy4", XU3_A15_KHZ, governor="ondemand")
    thermal_zone_dir(tmp_path, 0, 96000)
    cap(policy, 1400000)
    s, block, verdict = window(tmp_path, watched([("policy4", True)], zones=["thermal_zone0"]))
    assert verdict.verdict == "INVALID"
    assert verdict.reasons == ("throttled: policy4 (not pinned) was capped below its 2000000 kHz maximum for 1 s "
                               "(min 1400000 kHz, limit down to 1400000 kHz)",)
    assert [c.name for c in verdict.checks if not c.passed] == ["no_throttle"]
    p4 = block["cpufreq"]["policy4"]
    assert p4["mode"] == "watch" and p4["max_khz"] == 2000000 and p4["limit_min_khz"] == 1400000
    assert p4["below_s"] == pytest.approx(1.0) and p4["min_khz"] == 1400000 and p4["samples"] >= 2
    assert block["thermal"]["thermal_zone0"]["max_mdegc"] == 96000
    assert block["thermal"]["thermal_zone0"]["start_mdegc"] == 96000
    csv = (tmp_path / "platform.csv").read_text()
    assert "policy4,limit_khz," in csv and "policy4,cur_freq_khz," in csv


def test_nothing_is_written_to_a_watched_domain(tmp_path):
    policy = cpufreq_policy_dir(tmp_path, "policy4", XU3_A15_KHZ)
    gpu = devfreq_dir(tmp_path, "11800000.gpu", GPU_HZ)
    before = {p: p.stat().st_mtime_ns for d in (policy, gpu) for p in d.iterdir()}
    s, block, verdict = window(tmp_path, watched([("policy4", True)], ["11800000.gpu"]))
    assert verdict.verdict == "VALID", verdict.reasons
    assert {p: p.stat().st_mtime_ns for d in (policy, gpu) for p in d.iterdir()} == before
    assert s.describe()["cpufreq"]["policy4"] == {"mode": "watch", "max_khz": 2000000, "limit_khz": 2000000,
                                                  "cur_khz": 2000000, "governor": "ondemand", "loaded": True}


def test_a_cap_the_limit_does_not_show_counts_on_a_loaded_policy(tmp_path):
    policy = cpufreq_policy_dir(tmp_path, "policy4", XU3_A15_KHZ, governor="schedutil")
    cap(policy, 1400000, limit=False)  # the frequency drops, scaling_max_freq still says 2 GHz
    _, block, verdict = window(tmp_path, watched([("policy4", True)]))
    assert verdict.verdict == "INVALID"
    assert verdict.reasons[0].startswith("throttled: policy4 (not pinned) was capped below its 2000000 kHz maximum")
    assert block["cpufreq"]["policy4"]["limit_min_khz"] == 2000000


@pytest.mark.parametrize("governor, cur_khz, loaded", [
    ("ondemand", 2000000, True),  # a normal governor at full load: at the top
    ("performance", 2000000, True),
    ("powersave", 200000, True),  # chooses the lowest frequency by design
    ("conservative", 1100000, True),  # steps up gradually
    ("ondemand", 800000, False),  # a policy the job does not load may run below its limit
])
def test_governors_choosing_a_frequency_below_the_limit_are_not_throttling(tmp_path, governor, cur_khz, loaded):
    cpufreq_policy_dir(tmp_path, "policy4", XU3_A15_KHZ, governor=governor, cur_khz=cur_khz)
    _, block, verdict = window(tmp_path, watched([("policy4", loaded)]))
    assert verdict.verdict == "VALID", verdict.reasons
    assert block["cpufreq"]["policy4"]["below_s"] == 0 and block["cpufreq"]["policy4"]["min_khz"] == cur_khz


def test_a_gpu_is_judged_by_its_limit_only(tmp_path):
    gpu = devfreq_dir(tmp_path, "11800000.gpu", GPU_HZ)  # idle under simple_ondemand: lowest frequency
    _, _, verdict = window(tmp_path, watched(devfreq=["11800000.gpu"]))
    assert verdict.verdict == "VALID", verdict.reasons
    (gpu / "max_freq").write_text("420000000\n")  # devfreq cooling lowered its limit
    _, block, verdict = window(tmp_path, watched(devfreq=["11800000.gpu"]))
    assert verdict.reasons == ("throttled: 11800000.gpu (not pinned) was capped below its 600000 kHz maximum for "
                               "1 s (min 177000 kHz, limit down to 420000 kHz)",)
    assert block["devfreq"]["11800000.gpu"]["limit_min_khz"] == 420000


def test_a_watched_domain_that_does_not_exist_is_a_spec_error(tmp_path):
    cpufreq_policy_dir(tmp_path, "policy0", XU3_A15_KHZ)
    (tmp_path / "devices/system/cpu/cpufreq/policy0/scaling_max_freq").unlink()
    with pytest.raises(SpecError) as err:
        PlatformSession.open(watched([("policy4", True), ("policy0", False)]), str(tmp_path), 30.0)
    assert "platform.cpufreq.policy4: no cpufreq domain policy4" in str(err.value)
    assert "platform.cpufreq.policy0: " in str(err.value) and "(missing scaling_max_freq)" in str(err.value)


def _rounds(values):
    """Sampler rounds (t, cur, limit) of policy4."""
    out = []
    for t, cur, limit in values:
        out += [PlatformSample("policy4", CUR_FREQ_KHZ, t, cur), PlatformSample("policy4", LIMIT_KHZ, t + 1, limit)]
    return out


def test_watch_stats_count_the_time_throttled():
    samples = _rounds([(0, 2000000, 2000000), (S // 10, 1400000, 1400000), (3 * S // 10, 1800000, 2000000),
                       (5 * S // 10, 2000000, 2000000), (2 * S, 1000000, 1000000)])
    capped = watch_stats(samples, "policy4", 2000000, True, 0, S)
    assert capped["below_s"] == pytest.approx(0.4) and capped["below_min_khz"] == 1400000
    assert capped["limit_min_khz"] == 1400000  # the round after the window is not part of it
    limit_only = watch_stats(samples, "policy4", 2000000, False, 0, S)
    assert limit_only["below_s"] == pytest.approx(0.2)
    fact = freq_watched("policy4", 2000000, limit_only)
    assert (fact.below_s, fact.min_khz, fact.limit_min_khz) == (pytest.approx(0.2), 1400000, 1400000)


def test_temperature_at_the_window_start_and_its_max():
    samples = [PlatformSample("thermal_zone0", TEMP_MDEGC, t, v) for t, v in ((0, 51000), (1, 63000), (2, 58000))]
    assert temp_stats(samples, "thermal_zone0") == {"samples": 3, "max_mdegc": 63000, "mean_mdegc": 57333.333333333336,
                                                    "start_mdegc": 51000}
    assert temp_stats(samples, "thermal_zone1")["start_mdegc"] is None

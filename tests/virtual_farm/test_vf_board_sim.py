"""The board simulator without namespaces: cpufreq/devfreq semantics, throttling, sensors, activity."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from orchestrator.virtual.activity import (
    CLK_TCK,
    FixedActivity,
    NetnsActivity,
    ProcessIndex,
    parse_cpu_list,
)
from orchestrator.virtual.board_sim import BoardSimulator
from orchestrator.virtual.power_model import POWER
from orchestrator.virtual.sysfs import UNSUPPORTED, build_tree

TICK_S = 0.01


def read(path: Path) -> str:
    return path.read_text().strip()


def wait_for(predicate, timeout_s: float = 1.0):
    """Poll until predicate() is truthy; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(TICK_S / 2)


@pytest.fixture
def xu3(tmp_path):
    """An XU3 tree with its simulator running; yields (root, layout, activity, sim)."""
    layout = build_tree(tmp_path, "odroid_xu3")
    activity = FixedActivity({"a15": 0.0, "a7": 0.0})
    with BoardSimulator(tmp_path, layout, activity, tick_s=TICK_S, activity_period_s=TICK_S,
                        max_lifetime_s=60) as sim:
        yield tmp_path, layout, activity, sim
    assert sim.error is None


def settle(sim: BoardSimulator) -> None:
    time.sleep(sim.settle_s)


def test_governor_min_max_writes_are_honoured(xu3):
    root, layout, _, sim = xu3
    p = root / layout.cluster("a15").path
    (p / "scaling_governor").write_text("powersave\n")
    assert wait_for(lambda: read(p / "scaling_cur_freq") == "200000")
    (p / "scaling_min_freq").write_text("800000\n")
    assert wait_for(lambda: read(p / "scaling_cur_freq") == "800000")
    assert wait_for(lambda: read(p / "cpuinfo_cur_freq") == "800000")
    (p / "scaling_governor").write_text("performance\n")
    (p / "scaling_max_freq").write_text("1500000\n")
    assert wait_for(lambda: read(p / "scaling_cur_freq") == "1500000")
    (p / "scaling_governor").write_text("userspace\n")
    (p / "scaling_setspeed").write_text("1200000\n")
    assert wait_for(lambda: read(p / "scaling_cur_freq") == "1200000")
    settle(sim)
    assert read(p / "scaling_setspeed") == "1200000" and read(p / "scaling_governor") == "userspace"
    # setspeed above the user's max is clamped by the policy, as the kernel does
    (p / "scaling_setspeed").write_text("1900000\n")
    settle(sim)
    assert read(p / "scaling_cur_freq") == "1500000"
    (p / "scaling_governor").write_text("ondemand\n")
    assert wait_for(lambda: read(p / "scaling_setspeed") == UNSUPPORTED)
    assert read(p / "scaling_cur_freq") == "1500000"  # other governors -> max
    # the other policy did not move
    assert read(root / layout.cluster("a7").path / "scaling_cur_freq") == "1400000"
    assert sim.current_freqs()["a15"] == 1500000


def test_lowering_min_and_max_in_one_tick_is_accepted(xu3):
    root, layout, _, sim = xu3
    p = root / layout.cluster("a15").path
    (p / "scaling_governor").write_text("performance\n")
    (p / "scaling_min_freq").write_text("1800000\n")
    settle(sim)
    assert read(p / "scaling_min_freq") == "1800000"
    (p / "scaling_min_freq").write_text("300000\n")
    (p / "scaling_max_freq").write_text("500000\n")
    assert wait_for(lambda: read(p / "scaling_cur_freq") == "500000")
    assert (read(p / "scaling_min_freq"), read(p / "scaling_max_freq")) == ("300000", "500000")


@pytest.mark.parametrize("filename, value", [
    ("scaling_governor", "turbo"),
    ("scaling_max_freq", "1234567"),
    ("scaling_min_freq", "abc"),
    ("scaling_min_freq", "2100000"),  # not an OPP
    ("scaling_setspeed", "1000000"),  # only with the userspace governor
])
def test_invalid_cpufreq_write_is_reverted(xu3, filename, value):
    root, layout, _, sim = xu3
    p = root / layout.cluster("a15").path
    before = read(p / filename)
    (p / filename).write_text(value + "\n")
    assert wait_for(lambda: read(p / filename) == before), f"{filename}={value} was not reverted"
    assert read(p / "scaling_cur_freq") == "2000000"


def test_min_above_max_is_reverted(xu3):
    root, layout, _, sim = xu3
    p = root / layout.cluster("a7").path
    (p / "scaling_max_freq").write_text("600000\n")
    assert wait_for(lambda: read(p / "scaling_cur_freq") == "600000")
    (p / "scaling_min_freq").write_text("1000000\n")
    assert wait_for(lambda: read(p / "scaling_min_freq") == "200000")
    assert read(p / "scaling_cur_freq") == "600000"


def test_devfreq_semantics(xu3):
    root, layout, _, sim = xu3
    g = root / layout.devfreq.path
    assert read(g / "cur_freq") == "177000000"  # load-following governor, idle GPU
    (g / "governor").write_text("performance\n")
    assert wait_for(lambda: read(g / "cur_freq") == "600000000")
    (g / "max_freq").write_text("420000000\n")
    assert wait_for(lambda: read(g / "cur_freq") == "420000000")
    (g / "max_freq").write_text("421000000\n")  # not an OPP
    assert wait_for(lambda: read(g / "max_freq") == "420000000")
    (g / "governor").write_text("userspace\n")
    (g / "userspace/set_freq").write_text("266000000\n")
    assert wait_for(lambda: read(g / "cur_freq") == "266000000")
    (g / "governor").write_text("bogus\n")
    assert wait_for(lambda: read(g / "governor") == "userspace")


def test_throttle_caps_and_heats(xu3):
    root, layout, activity, sim = xu3
    p = root / layout.cluster("a15").path
    zone0 = root / layout.thermal_zones[0].path / "temp"
    (p / "scaling_governor").write_text("performance\n")
    sim.throttle("policy4", 1234000)  # rounded down to an OPP
    assert wait_for(lambda: read(p / "scaling_cur_freq") == "1200000")
    assert read(p / "scaling_max_freq") == "2000000"  # the user's limit is kept
    assert wait_for(lambda: int(read(zone0)) >= 95000)
    assert sim.throttled() == {"policy4": 1200000}
    sim.throttle("gpu", 300000)  # kHz, like the CPU caps
    (root / layout.devfreq.path / "governor").write_text("performance\n")
    assert wait_for(lambda: read(root / layout.devfreq.path / "cur_freq") == "266000000")
    sim.throttle("a15", None)
    sim.throttle("11800000.gpu", None)
    assert wait_for(lambda: read(p / "scaling_cur_freq") == "2000000")
    assert wait_for(lambda: int(read(zone0)) < 90000, timeout_s=3.0)
    with pytest.raises(KeyError):
        sim.throttle("policy9", 1000)


def test_temperature_rises_with_activity(xu3):
    root, layout, activity, sim = xu3
    zone0 = root / layout.thermal_zones[0].path / "temp"
    idle = int(read(zone0))
    activity.set({"a15": 4.0, "a7": 0.0})
    assert wait_for(lambda: int(read(zone0)) > idle + 5000, timeout_s=2.0)


def distinct_values(path: Path, duration_s: float, poll_s: float = 0.004) -> list[str]:
    values: list[str] = []
    end = time.monotonic() + duration_s
    while time.monotonic() < end:
        v = read(path)
        if not values or v != values[-1]:
            values.append(v)
        time.sleep(poll_s)
    return values


def test_ina231_updates_only_when_enabled_at_the_update_period(xu3):
    root, layout, activity, sim = xu3
    activity.set({"a15": 2.0, "a7": 0.0})
    a15 = root / layout.rail("a15").path
    assert distinct_values(a15 / "sensor_W", 0.4) == ["0.000000"]  # disabled: nothing moves
    assert sim.sensor_updates()["a15"] == 0
    (a15 / "update_period").write_text("100000\n")
    (a15 / "enable").write_text("1\n")
    values = distinct_values(a15 / "sensor_W", 1.5)[1:]  # drop the value from before enabling
    assert 12 <= len(values) <= 16, values  # ~15 at 100 ms: about one per period, never more
    # the values follow the activity: idle + 2 busy cores at 2.0 GHz
    model = POWER["odroid_xu3"].clusters["a15"]
    expected = model.idle_w + 2.0 * model.per_core_w
    watts = [float(v) for v in values]
    assert sum(watts) / len(watts) == pytest.approx(expected, rel=0.02)
    volts, amps = float(read(a15 / "sensor_V")), float(read(a15 / "sensor_A"))
    assert volts * amps == pytest.approx(watts[-1], rel=0.02)
    # the other rails stay disabled
    assert read(root / layout.rail("a7").path / "sensor_W") == "0.000000"
    # a write of update_period changes the rate
    (a15 / "update_period").write_text("250000\n")
    time.sleep(0.3)
    slower = distinct_values(a15 / "sensor_W", 1.0)
    assert 3 <= len(slower) <= 5, slower
    # activity drops -> power drops
    activity.set({"a15": 0.0, "a7": 0.0})
    time.sleep(0.6)
    assert float(read(a15 / "sensor_W")) == pytest.approx(model.idle_w, rel=0.05)
    # disable: values freeze
    (a15 / "enable").write_text("0\n")
    time.sleep(0.05)
    frozen = distinct_values(a15 / "sensor_W", 0.6)
    assert len(frozen) == 1, (frozen, read(a15 / "enable"), sim.sensor_updates(), sim.errors, sim.error)


def test_ina231_refuses_bad_controls(xu3):
    root, layout, _, sim = xu3
    a7 = root / layout.rail("a7").path
    (a7 / "update_period").write_text("10\n")  # below what the chip can do
    (a7 / "enable").write_text("7\n")
    assert wait_for(lambda: read(a7 / "update_period") == "263808" and read(a7 / "enable") == "0")


def test_hwmon_sensors_follow_update_interval(tmp_path):
    layout = build_tree(tmp_path, "odroid_xu3", sensors="hwmon")
    activity = FixedActivity({"a15": 1.0})
    with BoardSimulator(tmp_path, layout, activity, tick_s=TICK_S, max_lifetime_s=30) as sim:
        h0 = tmp_path / layout.rail("a15").path
        (h0 / "update_interval").write_text("100\n")
        values = distinct_values(h0 / "power1_input", 1.0)
        assert 8 <= len(values) <= 12, values
        model = POWER["odroid_xu3"].clusters["a15"]
        assert int(values[-1]) == pytest.approx((model.idle_w + model.per_core_w) * 1e6, rel=0.02)
        assert 1100 < int(read(h0 / "in1_input")) < 1400  # mV at the top OPP
        assert int(read(h0 / "curr1_input")) > 0
    assert not sim.running


def test_energy_ground_truth_and_board_power(tmp_path):
    layout = build_tree(tmp_path, "hikey970")
    activity = FixedActivity({"a73": 1.0, "a53": 0.0})
    with BoardSimulator(tmp_path, layout, activity, tick_s=TICK_S, max_lifetime_s=30) as sim:
        time.sleep(0.5)
        rails = sim.rail_power_w()
        energy = sim.energy_j()
    assert set(rails) == {"a53", "a73", "gpu", "mem"}
    assert rails["a73"] > rails["a53"]
    assert 0.4 < energy["a73"] / rails["a73"] < 0.7  # ~0.5 s at constant power
    assert sim.power_w() == pytest.approx(POWER["hikey970"].rest_of_board_w + sum(rails.values()))


def test_supply_power_is_a_function_of_time(tmp_path):
    """power_w(t) is the value of the tick at or before t, not the latest one; energy_j(t0, t1)
    is the exact integral of that step function (the virtual SMU's activity source protocol)."""
    layout = build_tree(tmp_path, "hikey970")
    activity = FixedActivity({"a73": 0.0, "a53": 0.0})
    with BoardSimulator(tmp_path, layout, activity, tick_s=TICK_S, activity_period_s=TICK_S,
                        max_lifetime_s=30) as sim:
        t_start = time.monotonic()
        time.sleep(0.1)
        t_idle = time.monotonic()
        idle = sim.power_w(t_idle)  # waits for the tick that covers t_idle
        activity.set({"a73": 4.0, "a53": 4.0})
        assert wait_for(lambda: sim.power_w() > idle + 1.0)
        time.sleep(0.1)
        t_busy = time.monotonic()
        busy = sim.power_w(t_busy)
        assert busy > idle + 1.0
        # the past keeps its value: not the latest one
        assert sim.power_w(t_idle) == idle
        assert sim.power_w(t_start - 100.0) == sim.power_w(t_start - 50.0)  # before the history: its first value
        times = [t_start + 0.01, t_idle, t_busy]
        assert list(sim.power_w_array(np.array(times))) == [sim.power_w(t) for t in times]
        # exact energy of a window holding the step, against a fine grid of the same function
        grid = np.linspace(t_idle, t_busy, 200_001)
        p = sim.power_w_array(grid)
        reference = float(np.sum((p[1:] + p[:-1]) * np.diff(grid)) / 2.0)
        energy = sim.energy_j(t_idle, t_busy)
        assert energy == pytest.approx(reference, rel=1e-3)
        assert idle * (t_busy - t_idle) < energy < busy * (t_busy - t_idle)
        t_mid = (t_idle + t_busy) / 2
        assert sim.energy_j(t_idle, t_mid) + sim.energy_j(t_mid, t_busy) == pytest.approx(energy, rel=1e-12)
        assert sim.energy_j(t_idle, t_idle) == 0.0
        assert isinstance(sim.energy_j(), dict)  # no window: energy per rail, as before
        with pytest.raises(TypeError):
            sim.energy_j(t_idle)
    assert sim.error is None


def test_board_simulator_as_the_meters_activity_source(tmp_path):
    """A virtual SMU on the simulator's supply: its ground truth is the exact energy of the step
    function, and it matches the energy of the readings."""
    from orchestrator.meters import energy_j
    from orchestrator.meters.b2900 import B2900Meter
    from orchestrator.meters.virtual_b2900 import VirtualB2900

    layout = build_tree(tmp_path, "hikey970")
    activity = FixedActivity({"a73": 2.0, "a53": 1.0})
    with BoardSimulator(tmp_path, layout, activity, tick_s=TICK_S, activity_period_s=TICK_S,
                        max_lifetime_s=30) as sim, VirtualB2900(sim) as smu:
        with B2900Meter(smu.resource, voltage_v=12.0, current_limit_a=2.0, aperture_s=1.9e-3,
                        interval_s=2e-3, timeout_ms=3000) as meter:
            trace = meter.measure_window(0.3)
        gt = smu.acquisitions[-1]
        assert gt.method == "exact" and gt.points_acquired == len(trace)
        assert gt.energy_j == pytest.approx(sim.energy_j(gt.window_start_mono_s, gt.window_end_mono_s), rel=1e-12)
        assert energy_j(trace, trace.t_start_s, trace.t_end_s) == pytest.approx(gt.energy_j, rel=0.005)


def test_max_lifetime_stops_the_thread(tmp_path):
    layout = build_tree(tmp_path, "hikey970")
    sim = BoardSimulator(tmp_path, layout, FixedActivity(), tick_s=TICK_S, max_lifetime_s=0.2).start()
    assert wait_for(lambda: not sim.running, timeout_s=2.0)
    sim.stop()


# --- activity from /proc ------------------------------------------------------------------------


def fake_proc(root: Path, tasks: dict[int, dict[int, tuple[int, str]]], member_pids: set[int],
              other_ns: Path) -> None:
    """/proc-like tree: tasks = {pid: {tid: (utime+stime ticks, Cpus_allowed_list)}}."""
    for pid, threads in tasks.items():
        d = root / str(pid)
        (d / "ns").mkdir(parents=True, exist_ok=True)
        link = d / "ns" / "net"
        if not link.is_symlink():
            link.symlink_to("/proc/self/ns/net" if pid in member_pids else other_ns)
        for tid, (ticks, allowed) in threads.items():
            t = d / "task" / str(tid)
            t.mkdir(parents=True, exist_ok=True)
            fields = ["S"] + ["0"] * 10 + [str(ticks), "0"] + ["0"] * 30
            (t / "stat").write_text(f"{tid} (py (x) thread) " + " ".join(fields) + "\n")
            (t / "status").write_text(f"Name:\tx\nCpus_allowed:\t3\nCpus_allowed_list:\t{allowed}\n")


def test_netns_activity_attributes_cpu_time_by_affinity(tmp_path):
    proc = tmp_path / "proc"
    other_ns = tmp_path / "not-a-namespace"
    other_ns.write_text("")
    cpu_map = {"little": [0], "big": [1]}
    activity = NetnsActivity("net", cpu_map, netns_dir=Path("/proc/self/ns"), proc=proc)
    members = {100, 200}
    state = {100: {100: (0, "1"), 101: (0, "0-1")}, 200: {200: (0, "0")}, 300: {300: (0, "1")}}
    fake_proc(proc, state, members, other_ns)
    assert activity() == {"little": 0.0, "big": 0.0}  # first call: baseline
    time.sleep(0.2)
    t0 = time.monotonic()
    # pinned-to-big thread used 10 ticks, the unpinned one 4 (split), the little one 2,
    # the process outside the namespace 50 (ignored)
    state = {100: {100: (10, "1"), 101: (4, "0-1")}, 200: {200: (2, "0")}, 300: {300: (50, "1")}}
    fake_proc(proc, state, members, other_ns)
    u = activity()
    dt = 0.2 + (time.monotonic() - t0)
    assert u["big"] == pytest.approx((10 + 2) / CLK_TCK / dt, rel=0.25)
    assert u["little"] == pytest.approx((2 + 2) / CLK_TCK / dt, rel=0.25)
    assert sorted(activity.pids()) == [100, 200]


def test_parse_cpu_list():
    assert parse_cpu_list("0-2,5\n") == {0, 1, 2, 5}
    assert parse_cpu_list("1") == {1}


def test_netns_activity_of_missing_namespace_is_zero():
    activity = NetnsActivity(f"sf-missing-{os.getpid()}", {"a7": [0], "a15": [1]})
    assert activity() == {"a7": 0.0, "a15": 0.0}
    assert activity.pids() == []


def test_boards_sharing_a_process_index_list_proc_once_and_see_the_same(tmp_path):
    proc = tmp_path / "proc"
    other_ns = tmp_path / "not-a-namespace"
    other_ns.write_text("")
    cpu_map = {"little": [0], "big": [1]}
    fake_proc(proc, {100: {100: (0, "1")}, 300: {300: (0, "1")}}, {100}, other_ns)
    index = ProcessIndex(proc=proc, max_age_s=60.0)
    shared = [NetnsActivity("net", cpu_map, netns_dir=Path("/proc/self/ns"), proc=proc, index=index)
              for _ in range(3)]
    alone = NetnsActivity("net", cpu_map, netns_dir=Path("/proc/self/ns"), proc=proc)
    for a in (*shared, alone):
        a()
    time.sleep(0.1)
    fake_proc(proc, {100: {100: (7, "1")}, 300: {300: (50, "1")}}, {100}, other_ns)
    figures = [a()["big"] for a in (*shared, alone)]
    assert all(f > 0 for f in figures)
    assert figures == pytest.approx([figures[-1]] * 4, rel=0.2)  # same ticks, slightly different intervals
    assert index.refreshes == 1  # one listing of /proc for the three boards
    assert [a.pids() for a in shared] == [[100]] * 3


def test_a_process_index_lists_again_once_its_listing_is_older_than_max_age(tmp_path):
    proc = tmp_path / "proc"
    other_ns = tmp_path / "not-a-namespace"
    other_ns.write_text("")
    fake_proc(proc, {100: {100: (0, "1")}}, {100}, other_ns)
    index = ProcessIndex(proc=proc, max_age_s=0.05)
    activity = NetnsActivity("net", {"big": [1]}, netns_dir=Path("/proc/self/ns"), proc=proc, index=index)
    assert activity.pids() == [100]
    fake_proc(proc, {200: {200: (0, "1")}}, {200}, other_ns)  # a process born since
    assert activity.pids() == [100]  # the listing is still young
    time.sleep(0.1)
    assert sorted(activity.pids()) == [100, 200]
    assert index.refreshes == 2


def test_a_board_does_not_wait_for_a_listing_under_way_in_another_boards_tick(tmp_path):
    """While one tick lists /proc (held here), another board's tick answers at once from the last listing."""
    proc = tmp_path / "proc"
    other_ns = tmp_path / "not-a-namespace"
    other_ns.write_text("")
    fake_proc(proc, {100: {100: (0, "1")}}, {100}, other_ns)

    class HeldIndex(ProcessIndex):
        def __init__(self):
            super().__init__(proc=proc, max_age_s=0.0)
            self.listing, self.release = threading.Event(), threading.Event()
            self.hold = False

        def _refresh(self, now):
            if self.hold:
                self.listing.set()
                assert self.release.wait(30), "the other board's tick never came back"
            super()._refresh(now)

    index = HeldIndex()
    ns = (os.stat("/proc/self/ns/net").st_dev, os.stat("/proc/self/ns/net").st_ino)
    assert index.pids_in(ns) == [100]  # the first listing
    fake_proc(proc, {200: {200: (0, "1")}}, {200}, other_ns)
    index.hold = True
    lister = threading.Thread(target=index.pids_in, args=(ns,))
    lister.start()
    assert index.listing.wait(30)
    index.hold = False
    try:
        assert index.pids_in(ns) == [100]  # the last listing, while the new one is under way
    finally:
        index.release.set()
        lister.join(30)
    assert index.refreshes == 2 and sorted(index.pids_in(ns)) == [100, 200]  # (100 is still in the tree)


class _SlowOnce(FixedActivity):
    """An activity source whose next call after ``hold(s)`` takes ``s`` (a tick held up, as by a starved
    interpreter); ``held`` is set once that call has slept."""

    def __init__(self):
        super().__init__({"a15": 0.1, "a7": 0.1})
        self._lock = threading.Lock()  # the test's hold() and the simulator's call must not lose a delay
        self._delay_s = 0.0
        self.held = threading.Event()

    def hold(self, delay_s: float) -> None:
        with self._lock:
            self._delay_s = delay_s

    def __call__(self):
        with self._lock:
            delay, self._delay_s = self._delay_s, 0.0
        if delay:
            time.sleep(delay)
            self.held.set()
        return super().__call__()


def test_a_held_up_tick_is_reported_as_late_once(tmp_path):
    layout = build_tree(tmp_path, "odroid_xu3")
    activity = _SlowOnce()
    with BoardSimulator(tmp_path, layout, activity, tick_s=TICK_S, activity_period_s=TICK_S,
                        max_lifetime_s=30.0) as sim:
        sim.take_late_max_s()
        activity.hold(0.4)
        assert activity.held.wait(5.0)
        assert wait_for(lambda: sim._late_max_s >= 0.3, timeout_s=5.0)
        assert sim.take_late_max_s() >= 0.3
        assert sim.take_late_max_s() < 0.3  # taken: the next call reports only what came after


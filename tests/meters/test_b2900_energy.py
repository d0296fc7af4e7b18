"""Energy from the driver's traces against the virtual instrument's ground truth."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from orchestrator.meters import PowerTrace, energy_j, mean_power_w
from orchestrator.meters.activity import CpuActivityPower, StepPower

TOLERANCE = 0.005  # 0.5 %


def _trace(t, p):
    return PowerTrace.from_current(np.asarray(t, float), np.asarray(p, float) / 10.0, 10.0)


# -- energy_j itself -----------------------------------------------------------

def test_energy_of_a_linear_ramp_is_exact_with_interpolated_edges():
    t = np.linspace(0.0, 1.0, 11)
    tr = _trace(t, 2.0 + 3.0 * t)  # P = 2 + 3t, linear -> trapezoid is exact
    exact = lambda a, b: 2 * (b - a) + 1.5 * (b * b - a * a)  # noqa: E731
    for a, b in [(0.0, 1.0), (0.05, 0.95), (0.31, 0.32), (0.2, 0.2), (0.0, 0.05)]:
        assert energy_j(tr, a, b) == pytest.approx(exact(a, b), rel=1e-12, abs=1e-15)
    assert mean_power_w(tr, 0.25, 0.75) == pytest.approx(2.0 + 3.0 * 0.5)


def test_energy_window_is_additive():
    rng = np.random.default_rng(1)
    t = np.cumsum(rng.uniform(0.001, 0.003, 500))
    tr = _trace(t, rng.uniform(1, 5, 500))
    a, m, b = t[3] + 1e-4, t[200] + 7e-4, t[-5] - 3e-4
    assert energy_j(tr, a, m) + energy_j(tr, m, b) == pytest.approx(energy_j(tr, a, b), rel=1e-12)


def test_energy_window_outside_the_trace_is_refused():
    tr = _trace([0.0, 1.0, 2.0], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="not inside"):
        energy_j(tr, -0.1, 1.0)
    with pytest.raises(ValueError, match="not inside"):
        energy_j(tr, 1.0, 2.5)
    with pytest.raises(ValueError):
        energy_j(tr, 1.5, 1.0)
    with pytest.raises(ValueError):
        PowerTrace.from_current([0.0, 0.0], [1.0, 1.0], 1.0)  # times must increase


# -- against the virtual instrument ---------------------------------------------

def _relative_error(measured: float, truth: float) -> float:
    return abs(measured - truth) / truth


def test_step_power_energy_within_half_a_percent(make_server, make_meter):
    t0 = time.monotonic()
    # Steps at odd offsets, not aligned with the 2 ms sample grid.
    source = StepPower(2.5, [(t0 + 0.2113, 9.0), (t0 + 0.4371, 4.0), (t0 + 0.6029, 11.5)])
    srv = make_server(source)
    meter = make_meter(srv.resource)
    trace = meter.measure_window(0.8)
    gt = srv.acquisitions[-1]
    measured = energy_j(trace, trace.t_start_s, trace.t_end_s)
    err = _relative_error(measured, gt.energy_j)
    print(f"step source: measured {measured:.6f} J, ground truth {gt.energy_j:.6f} J, error {err:.4%}")
    assert err < TOLERANCE
    # The trace saw every level.
    assert {2.5, 9.0, 4.0, 11.5} <= set(np.round(trace.power_w, 6))


def test_fast_random_steps_with_aperture_close_to_interval(make_server, make_meter):
    """~80 random steps 5-15 ms apart inside the window. With the aperture
    covering most of the interval the readings tile the time axis and the
    trapezoid stays far inside the tolerance (with a 1 ms aperture every 2 ms,
    half of the signal is never seen and the error of such a load is ~0.2 %
    rms)."""
    rng = np.random.default_rng(7)
    t0 = time.monotonic()
    times = t0 + np.cumsum(rng.uniform(0.005, 0.015, 150))
    source = StepPower(5.0, zip(times, rng.uniform(2.0, 12.0, times.size)))
    srv = make_server(source)
    meter = make_meter(srv.resource, aperture_s=1.9e-3)
    trace = meter.measure_window(0.8)
    gt = srv.acquisitions[-1]
    measured = energy_j(trace, trace.t_start_s, trace.t_end_s)
    err = _relative_error(measured, gt.energy_j)
    print(f"fast steps: measured {measured:.6f} J, ground truth {gt.energy_j:.6f} J, error {err:.4%}")
    assert err < TOLERANCE


def _busy_loop(cpu: int, seconds: float) -> subprocess.Popen:
    """A bounded busy loop in a child process pinned to one cpu."""
    code = (
        "import os, time\n"
        f"os.sched_setaffinity(0, {{{cpu}}})\n"
        f"end = time.monotonic() + {seconds}\n"
        "n = 0\n"
        "while time.monotonic() < end:\n"
        "    n += 1\n"
    )
    return subprocess.Popen([sys.executable, "-c", code])


def test_cpu_activity_energy_within_half_a_percent(make_server, make_meter):
    cpus = sorted(os.sched_getaffinity(0))
    busy_cpu = cpus[-1]
    # A short smoothing constant keeps the activity's fast dynamics in the signal.
    with CpuActivityPower(idle_w=2.0, per_cpu_active_w=1.5, smoothing_s=0.01) as source:
        srv = make_server(source)
        meter = make_meter(srv.resource)
        idle_trace = meter.measure_window(0.2)
        child = _busy_loop(busy_cpu, 1.6)
        try:
            time.sleep(0.15)  # let the load show up
            trace = meter.measure_window(1.0)
        finally:
            child.wait(timeout=10)
        gt = srv.acquisitions[-1]
    measured = energy_j(trace, trace.t_start_s, trace.t_end_s)
    err = _relative_error(measured, gt.energy_j)
    print(
        f"cpu source: measured {measured:.6f} J, ground truth {gt.energy_j:.6f} J, error {err:.4%}; "
        f"mean power idle {idle_trace.power_w.mean():.3f} W, busy {trace.power_w.mean():.3f} W"
    )
    assert err < TOLERANCE
    # The pinned busy core is visible whatever else runs on this machine (other
    # load can only add to it, so the idle trace is printed but not compared).
    assert trace.power_w.mean() > 2.0 + 1.5 * 0.8


def test_cpu_activity_source_is_deterministic_for_the_past():
    """Once sampled, P(t) never changes: the meter's samples and the ground truth
    (computed later) see the same function."""
    with CpuActivityPower(cpus=[0], smoothing_s=0.02) as source:
        time.sleep(0.15)
        now = time.monotonic()
        times = [now - 0.1 + k * 0.005 for k in range(21)]  # the last one is "now"
        first = [source.power_w(t) for t in times]  # waits for the sampler to pass `now`
        time.sleep(0.1)
        second = [source.power_w(t) for t in times]
        assert source.running
    assert first == second
    assert all(2.0 <= p <= 2.0 + 1.5 for p in second)
    assert not source.running

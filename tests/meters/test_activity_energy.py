"""Activity sources as functions of time: vectorized evaluation, exact energy of any window,
and the virtual B2900's ground truth built on them."""

from __future__ import annotations

import time

import numpy as np
import pytest

from orchestrator.meters.activity import (
    ConstantPower,
    CpuActivityPower,
    StepPower,
    evaluate_power,
    integrate_power,
    trapezoid,
)


def fine_grid_energy(source, t0: float, t1: float, points: int = 400_001) -> float:
    """Independent reference: trapezoid of power_w_array on a fine grid."""
    grid = np.linspace(t0, t1, points)
    p = source.power_w_array(grid)
    return float(np.sum((p[1:] + p[:-1]) * np.diff(grid)) / 2.0)


class Ramp:
    """A source with power_w only (no vectorized or exact method): P = a + b (t - t0)."""

    def __init__(self, t0: float, a: float, b: float):
        self.t0, self.a, self.b = t0, a, b

    def power_w(self, t: float) -> float:
        return self.a + self.b * (t - self.t0)

    def exact(self, t0: float, t1: float) -> float:
        return self.a * (t1 - t0) + self.b * ((t1 - self.t0) ** 2 - (t0 - self.t0) ** 2) / 2


def test_step_power_vectorized_and_exact():
    src = StepPower(2.0, [(10.0, 5.0), (10.5, 1.0), (12.0, 7.0)])
    t = np.array([9.0, 10.0, 10.2, 10.5, 11.9, 12.0, 15.0])
    np.testing.assert_array_equal(src.power_w_array(t), [src.power_w(x) for x in t])
    assert src.energy_j(9.5, 12.5) == pytest.approx(2.0 * 0.5 + 5.0 * 0.5 + 1.0 * 1.5 + 7.0 * 0.5, rel=1e-12)
    assert src.energy_j(10.1, 10.2) == pytest.approx(0.5, rel=1e-9)
    assert src.energy_j(12.5, 9.5) == pytest.approx(-src.energy_j(9.5, 12.5))
    assert src.energy_j(11.0, 11.0) == 0.0
    assert src.energy_j(9.5, 12.5) == pytest.approx(fine_grid_energy(src, 9.5, 12.5), rel=1e-5)


def test_fallbacks_for_a_source_with_power_w_only():
    src = Ramp(100.0, 2.0, 3.0)
    t = np.linspace(100.0, 101.0, 7).reshape(7, 1)
    np.testing.assert_allclose(evaluate_power(src, t), 2.0 + 3.0 * (t - 100.0))
    energy, step = integrate_power(src, 100.1, 100.9, 1e-3)
    assert step == pytest.approx(1e-3) and energy == pytest.approx(src.exact(100.1, 100.9), rel=1e-12)
    energy, step = integrate_power(ConstantPower(4.0), 3.0, 5.0, 1e-3)
    assert step is None and energy == 8.0


def test_trapezoid_in_chunks_matches_one_pass():
    # more grid points than one chunk: the chunks join exactly
    f = lambda t: np.sin(t) + 2.0  # noqa: E731
    total, step = trapezoid(f, 0.0, 3.0, 3.0 / 700_000)
    assert step == pytest.approx(3.0 / 700_000)
    assert total == pytest.approx(6.0 + 1.0 - np.cos(3.0), rel=1e-10)
    assert trapezoid(f, 1.0, 1.0, 0.1) == (0.0, 0.0)


def test_cpu_activity_power_exact_energy_matches_a_fine_grid():
    with CpuActivityPower(cpus=[0], smoothing_s=0.02) as src:
        time.sleep(0.3)
        now = time.monotonic()
        a, b, c = now - 0.27, now - 0.1234, now  # b inside an interval, c is "now" (waits for the sampler)
        exact = src.energy_j(a, c)
        grid = fine_grid_energy(src, a, c)
        assert exact == pytest.approx(grid, rel=1e-6)
        assert src.energy_j(a, b) + src.energy_j(b, c) == pytest.approx(exact, rel=1e-12)
        # vectorized and scalar evaluation agree, and the past does not change
        t = np.linspace(a - 1.0, c, 501)  # from before the history
        values = src.power_w_array(t)
        np.testing.assert_allclose(values, [src.power_w(x) for x in t], rtol=1e-12)
        time.sleep(0.05)
        np.testing.assert_array_equal(src.power_w_array(t), values)
        assert src.energy_j(a, c) == exact
    assert 2.0 * 0.27 * (1 - 1e-9) <= exact <= 3.5 * 0.27 * (1 + 1e-9)  # idle_w..idle_w + 1.5 W, over 0.27 s


def test_cpu_activity_power_without_smoothing():
    with CpuActivityPower(cpus=[0], smoothing_s=0.0) as src:
        time.sleep(0.15)
        now = time.monotonic()
        exact = src.energy_j(now - 0.1, now)
        assert exact == pytest.approx(fine_grid_energy(src, now - 0.1, now), rel=1e-4)


def test_true_energy_j_of_any_window(make_server):
    t0 = time.monotonic()
    step = StepPower(2.5, [(t0 + 0.2113, 9.0), (t0 + 0.4371, 4.0)])
    srv = make_server(step)
    for a, b in [(t0, t0 + 1.0), (t0 + 0.3, t0 + 0.31), (t0 + 0.2, t0 + 0.5)]:
        assert srv.true_energy_j(a, b) == pytest.approx(fine_grid_energy(step, a, b), rel=1e-5)
    with pytest.raises(ValueError):
        srv.true_energy_j(t0 + 1.0, t0)
    ramp = Ramp(t0, 1.0, 2.0)
    assert make_server(ramp).true_energy_j(t0, t0 + 0.5) == pytest.approx(ramp.exact(t0, t0 + 0.5), rel=1e-9)
    with CpuActivityPower(cpus=[0], smoothing_s=0.05) as cpu:
        srv = make_server(cpu)
        time.sleep(0.2)
        now = time.monotonic()
        assert srv.true_energy_j(now - 0.15, now) == pytest.approx(fine_grid_energy(cpu, now - 0.15, now), rel=1e-6)


def _acquire(inst, points, *, limit=2.0):
    for cmd in ("*RST", ":SOUR:VOLT 12", f":SENS:CURR:PROT {limit}", ":SENS:CURR:APER 1e-3", ":TRIG:SOUR TIM",
                ":TRIG:TIM 2e-3", f":TRIG:COUN {points}", ":FORM:ELEM:SENS CURR,TIME", ":FORM REAL,64"):
        inst.write(cmd)
    assert inst.query(":INIT;*OPC?") == "1"
    assert inst.query(":SYST:ERR?") == '+0,"No error"'
    return inst.query_binary_values(":FETC:ARR:CURR?", datatype="d", is_big_endian=True, container=np.array)


def test_ground_truth_exact_grid_and_compliance(make_server, open_visa):
    t0 = time.monotonic()
    # exact: the source integrates itself
    srv = make_server(StepPower(3.0, [(t0 + 0.05, 6.0)]))
    _acquire(open_visa(srv.resource), 51)
    gt = srv.acquisitions[-1]
    assert gt.method == "exact" and gt.fine_step_s is None
    assert gt.energy_j == pytest.approx(srv.true_energy_j(gt.window_start_mono_s, gt.window_end_mono_s), rel=1e-12)
    # grid: a source with power_w only
    ramp = Ramp(t0, 2.0, 3.0)
    srv = make_server(ramp)
    _acquire(open_visa(srv.resource), 51)
    gt = srv.acquisitions[-1]
    assert gt.method == "grid" and gt.fine_step_s == pytest.approx(2e-3 / 10)
    assert gt.energy_j == pytest.approx(ramp.exact(gt.window_start_mono_s, gt.window_end_mono_s), rel=1e-9)
    # compliance: 24 W at 12 V is 2 A, clamped to 1 A -> the SMU supplies 12 W, not what the board asks
    srv = make_server(ConstantPower(24.0))
    currents = _acquire(open_visa(srv.resource), 51, limit=1.0)
    np.testing.assert_allclose(currents, 1.0)
    gt = srv.acquisitions[-1]
    assert gt.method == "grid"
    assert gt.energy_j == pytest.approx(12.0 * 50 * 2e-3, rel=1e-9)
    assert srv.true_energy_j(gt.window_start_mono_s, gt.window_end_mono_s) == pytest.approx(24.0 * 50 * 2e-3)


def test_unmeasured_current_is_no_data(server, open_visa):
    inst = open_visa(server.resource)
    for cmd in (":SOUR:VOLT 12", ":SENS:CURR:PROT 1", ":SENS:CURR:APER 1e-3", ":TRIG:SOUR TIM", ":TRIG:TIM 2e-3",
                ":TRIG:COUN 5", ":FORM:ELEM:SENS CURR", ':SENS:FUNC:OFF "CURR"'):
        inst.write(cmd)
    assert inst.query(":INIT;*OPC?") == "1"
    assert inst.query(":FETC:ARR?") == ",".join(["+9.910000E+37"] * 5)
    inst.write(":FORM REAL,64")
    values = inst.query_binary_values(":FETC:ARR?", datatype="d", is_big_endian=True, container=np.array)
    assert values.size == 5 and np.isnan(values).all()

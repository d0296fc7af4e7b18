"""One sample per conversion (``ConversionGate``) and per-rail energy over the window, on a fake clock."""

from __future__ import annotations

import pytest

from device_agent.power.base import Sample
from device_agent.power.energy import energy_j, rail_stats
from device_agent.power.gate import ConversionGate

MS = 1000000
S = 1000000000


def test_nothing_is_read_before_one_period_has_passed():
    gate = ConversionGate(100 * MS)
    assert gate.due(0)
    assert gate.offer(0, (1.0, 0.5, 2.0))
    assert not gate.due(99 * MS)
    assert gate.due(100 * MS)


def test_the_same_conversion_is_not_counted_twice_within_the_period():
    gate = ConversionGate(100 * MS)
    assert gate.offer(0, (1.0, 0.5, 2.0))
    # the driver's update came late: still the same values one period later
    assert not gate.offer(100 * MS, (1.0, 0.5, 2.0))
    assert not gate.offer(125 * MS, (1.0, 0.5, 2.0))
    assert gate.offer(150 * MS, (1.1, 0.5, 2.2))  # new conversion
    assert gate.duplicates == 2 and gate.accepted == 2


def test_a_value_differing_in_any_field_is_a_new_conversion():
    gate = ConversionGate(100 * MS)
    assert gate.offer(0, (1.0, 0.5, 2.0))
    assert gate.offer(100 * MS, (1.0, 0.5, 2.000001))


def test_identical_values_two_periods_apart_are_two_conversions():
    gate = ConversionGate(100 * MS)
    assert gate.offer(0, (1.0, 0.5, 2.0))
    assert not gate.offer(199 * MS, (1.0, 0.5, 2.0))
    assert gate.offer(200 * MS, (1.0, 0.5, 2.0))


def test_zeros_before_the_first_conversion_are_not_counted():
    gate = ConversionGate(100 * MS)
    assert not gate.offer(0, (0.0, 0.0, 0.0))
    assert not gate.offer(50 * MS, (0.0, 0.0, 0.0))
    assert gate.offer(60 * MS, (0.0, 0.0, 1.2))
    assert gate.offer(160 * MS, (0.0, 0.0, 0.0))  # once converting, zero power is a real value
    assert gate.zeros == 2 and gate.accepted == 2


def test_never_more_than_elapsed_over_period_plus_one():
    period = 263808 * 1000
    gate = ConversionGate(period)
    accepted = []
    for k in range(4000):  # poll every ms for 4 s with a value that changes every poll
        now = k * MS
        if gate.due(now) and gate.offer(now, (float(k), 1.0, 1.0)):
            accepted.append(now)
    assert len(accepted) <= (accepted[-1] - accepted[0]) // period + 1
    assert len(accepted) == 4000 * MS // period + 1
    assert all(b - a >= period for a, b in zip(accepted, accepted[1:]))


def test_period_must_be_positive():
    with pytest.raises(ValueError):
        ConversionGate(0)


def test_energy_holds_the_first_and_last_sample_to_the_window_edges():
    # samples at 1 s (2 W) and 3 s (4 W); window [0 s, 4 s]
    t = [1 * S, 3 * S]
    p = [2.0, 4.0]
    # 0..1: 2 W held; 1..3: trapezoid (2+4)/2*2 = 6; 3..4: 4 W held
    assert energy_j(t, p, 0, 4 * S) == pytest.approx(2.0 + 6.0 + 4.0)
    assert energy_j(t, p, 2 * S, 2 * S) == 0.0


def test_energy_interpolates_at_edges_between_samples():
    t = [0, 2 * S]
    p = [0.0, 4.0]
    # window [1 s, 2 s]: from 2 W to 4 W linearly
    assert energy_j(t, p, 1 * S, 2 * S) == pytest.approx(3.0)
    # a single sample: constant over the window
    assert energy_j([5 * S], [1.5], 0, 2 * S) == pytest.approx(3.0)


def test_rail_stats_mean_is_energy_over_duration():
    samples = [Sample("a15", 0, 1.0), Sample("a7", 0, 0.25), Sample("a15", S, 3.0), Sample("a7", S, 0.25)]
    stats = rail_stats(samples, ["a15", "a7"], 0, S)
    assert list(stats) == ["a15", "a7"]
    assert stats["a15"].samples == 2 and stats["a15"].energy_j == pytest.approx(2.0)
    assert stats["a15"].mean_w == pytest.approx(2.0)
    assert stats["a7"].as_dict() == {"samples": 2, "mean_w": 0.25, "energy_j": 0.25}
    with pytest.raises(ValueError, match="gpu has no samples"):
        rail_stats(samples, ["a15", "a7", "gpu"], 0, S)

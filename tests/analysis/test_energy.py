"""Energy: window integral, idle subtraction, rails, missing idle, against known inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from orchestrator.analysis.energy import job_energy, run_energy, window_energy
from orchestrator.meters.energy import PowerTrace, energy_j
from orchestrator.results.store import Store
from tests.analysis.synthetic import constant_power, make_run, result_row


def test_ramp_integral_with_edges_between_samples():
    # P(t) = t W on samples t = 0..10 s; window [2.5, 7.5]: integral t dt = (7.5^2 - 2.5^2) / 2 = 25 J
    t = np.arange(0.0, 11.0)
    e, tmin, tmax = window_energy(t, t.copy(), np.zeros(11, dtype=int), np.array([2.5]), np.array([7.5]), 1)
    assert e[0] == pytest.approx(25.0)
    assert (tmin[0], tmax[0]) == (0.0, 10.0)


def test_matches_the_meter_integral_on_random_traces():
    rng = np.random.default_rng(1)
    t = np.sort(rng.uniform(0, 5, 300))
    p = rng.uniform(1, 3, 300)
    trace = PowerTrace(t_mono_s=t, current_a=p, voltage_v=1.0, power_w=p)
    # two groups, shuffled order: the vectorized integral sorts them itself
    codes = np.r_[np.zeros(300, int), np.ones(300, int)]
    tt, pp = np.r_[t, t], np.r_[p, 2 * p]
    order = rng.permutation(600)
    e, _, _ = window_energy(tt[order], pp[order], codes[order], np.array([1.1, 0.7]), np.array([3.3, 4.2]), 2)
    assert e[0] == pytest.approx(energy_j(trace, 1.1, 3.3))
    assert e[1] == pytest.approx(2 * energy_j(trace, 0.7, 4.2))


def _results(**over):
    return pd.DataFrame([result_row("r", "j1", **over)])


def test_idle_subtraction_and_derived_figures():
    res = _results(throughput_ips=50.0)
    power = pd.DataFrame([{"job_id": "j1", "source": "meter", "rail": "board", "energy_j": 10.0, "mean_w": 5.0}])
    idle = pd.DataFrame([{"board": "b1", "source": "meter", "rail": "board", "mean_power_w": 2.0}])
    e, rails = job_energy(res, power, idle)
    row = e.iloc[0]
    assert row["measures"] == "board_supply"
    assert row["active_w"] == pytest.approx(3.0)
    assert row["energy_per_image_j"] == pytest.approx(3.0 / 50)
    assert row["images_per_j"] == pytest.approx(50 / 3.0)
    assert row["total_energy_per_image_j"] == pytest.approx(5.0 / 50)
    assert row["clock_uncertainty_ms"] == pytest.approx(0.5)
    assert row["window_shift_rel"] == pytest.approx(0.0005 / 2.0)
    assert row["energy_note"] == ""
    assert rails.empty


def test_rails_are_summed_with_their_own_idle():
    res = _results(throughput_ips=10.0)
    power = pd.DataFrame([
        {"job_id": "j1", "source": "sensor", "rail": "a15", "energy_j": 8.0, "mean_w": 4.0},
        {"job_id": "j1", "source": "sensor", "rail": "mem", "energy_j": 2.0, "mean_w": 1.0},
    ])
    idle = pd.DataFrame([
        {"board": "b1", "source": "sensor", "rail": "a15", "mean_power_w": 0.5},
        {"board": "b1", "source": "sensor", "rail": "mem", "mean_power_w": 0.25},
        {"board": "b1", "source": "meter", "rail": "board", "mean_power_w": 3.0},  # other source: not used
    ])
    e, rails = job_energy(res, power, idle)
    assert e.iloc[0]["measures"] == "rails"
    assert e.iloc[0]["active_w"] == pytest.approx(5.0 - 0.75)
    assert dict(zip(rails["rail"], rails["active_w"])) == pytest.approx({"a15": 3.5, "mem": 0.75})


def test_meter_takes_precedence_over_sensors():
    res = _results()
    power = pd.DataFrame([
        {"job_id": "j1", "source": "sensor", "rail": "a15", "energy_j": 8.0, "mean_w": 4.0},
        {"job_id": "j1", "source": "meter", "rail": "board", "energy_j": 12.0, "mean_w": 6.0},
    ])
    idle = pd.DataFrame([{"board": "b1", "source": "meter", "rail": "board", "mean_power_w": 2.0}])
    e, _ = job_energy(res, power, idle)
    assert e.iloc[0]["measures"] == "board_supply" and e.iloc[0]["active_w"] == pytest.approx(4.0)


def test_no_idle_means_no_active_power():
    res = _results()
    power = pd.DataFrame([{"job_id": "j1", "source": "meter", "rail": "board", "energy_j": 10.0, "mean_w": 5.0}])
    e, _ = job_energy(res, power, pd.DataFrame(columns=["board", "source", "rail", "mean_power_w"]))
    assert e.iloc[0]["energy_note"] == "idle not measured"
    assert np.isnan(e.iloc[0]["active_w"]) and np.isnan(e.iloc[0]["images_per_j"])
    # a missing rail idle is as bad as a missing idle
    idle = pd.DataFrame([{"board": "b1", "source": "sensor", "rail": "a15", "mean_power_w": 0.5}])
    power = pd.DataFrame([
        {"job_id": "j1", "source": "sensor", "rail": "a15", "energy_j": 8.0, "mean_w": 4.0},
        {"job_id": "j1", "source": "sensor", "rail": "mem", "energy_j": 2.0, "mean_w": 1.0},
    ])
    e, _ = job_energy(res, power, idle)
    assert e.iloc[0]["energy_note"] == "idle not measured" and np.isnan(e.iloc[0]["active_w"])


def test_from_the_store_window_only(tmp_path):
    store = Store(tmp_path / "runs")
    # window [10, 12] s at 5 W, samples from 9 to 13 s at 9 W outside the window
    inside = constant_power(10.0, 12.0, 5.0)
    outside = pd.concat([constant_power(9.0, 9.99, 9.0), constant_power(12.01, 13.0, 9.0)])
    power = pd.concat([outside, inside]).sort_values("t_mono_s")
    uncovered = constant_power(10.5, 12.0, 5.0)
    run = make_run(store, "r1", [result_row("r1", "j1", throughput_ips=40.0), result_row("r1", "j2")],
                   power={"j1": power, "j2": uncovered},
                   idle=[{"board": "b1", "source": "meter", "rail": "board", "mean_power_w": 1.0}])
    e, _ = run_energy(run)
    e = e.set_index("job_id")
    # edges: interpolation between 9 W at 9.99 s and 5 W at 10.00 s costs a sliver; tolerance for it
    assert e.loc["j1", "mean_w"] == pytest.approx(5.0, abs=1e-9)
    assert e.loc["j1", "active_w"] == pytest.approx(4.0, abs=1e-9)
    assert e.loc["j1", "images_per_j"] == pytest.approx(10.0)
    assert np.isnan(e.loc["j2", "mean_w"]) and e.loc["j2", "energy_note"] == "window not covered (meter began 500.0 ms late)"

"""A results row's energy figures (one_job_energy, computed as each job ends) are the report's (job_energy over
the power table), case by case: every rule of the module doc that changes a figure or a note."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from orchestrator.analysis.energy import integrate_windows, job_energy, one_job_energy, start_idle_w

T0, T1 = 10.0, 20.0
FIGURES = ["mean_w", "energy_j", "idle_w", "active_w", "energy_per_image_j", "images_per_j",
           "total_energy_per_image_j"]


def _samples(*groups: tuple[str, str, np.ndarray, np.ndarray]) -> pd.DataFrame:
    frames = [pd.DataFrame({"job_id": "j1", "source": s, "rail": r, "t_mono_s": t, "power_w": p})
              for s, r, t, p in groups]
    if not frames:
        return pd.DataFrame({"job_id": pd.Series(dtype=str), "source": pd.Series(dtype=str),
                             "rail": pd.Series(dtype=str), "t_mono_s": pd.Series(dtype=float),
                             "power_w": pd.Series(dtype=float)})
    return pd.concat(frames, ignore_index=True)


def _meter(t0=9.9, t1=20.1, n=500, w=3.0):
    t = np.linspace(t0, t1, n)
    return ("meter", "board", t, w + 0.1 * np.sin(t))


def _sensor(rail, t0=10.05, t1=19.95, n=40, w=0.5):
    t = np.linspace(t0, t1, n)
    return ("sensor", rail, t, w + 0.01 * np.cos(3 * t))


def _idle(*rows: tuple[str, str, str, float]) -> pd.DataFrame:
    cols = ["board", "source", "rail", "phase", "mean_power_w"]
    return pd.DataFrame([("b", *r) for r in rows], columns=cols)


def _table_figures(samples: pd.DataFrame, idle: pd.DataFrame, throughput) -> dict:
    """The report's way: integrate the power table over the job's window, then job_energy."""
    results = pd.DataFrame([{"job_id": "j1", "board": "b", "throughput_ips": throughput, "duration_s": T1 - T0,
                             "clock_uncertainty_ns": 0}])
    table = pa.Table.from_pandas(samples, preserve_index=False)
    rails = integrate_windows([table], pd.DataFrame({"job_id": ["j1"], "t0_s": [T0], "t1_s": [T1]}))
    out, _ = job_energy(results, rails, idle)
    return out.iloc[0].to_dict()


CASES = {
    "meter covered": ([_meter()], [("meter", "board", "start", 2.0)], 50.0),
    "meter ends early": ([_meter(t1=19.9)], [("meter", "board", "start", 2.0)], 50.0),
    "meter begins late": ([_meter(t0=10.2)], [("meter", "board", "start", 2.0)], 50.0),
    "meter, one sample": ([_meter(n=1)], [("meter", "board", "start", 2.0)], 50.0),
    "meter, no idle": ([_meter()], [], 50.0),
    "meter, only end idle": ([_meter()], [("meter", "board", "end", 2.0)], 50.0),
    "meter, active below idle": ([_meter(w=1.0)], [("meter", "board", "start", 2.0)], 50.0),
    "meter, no throughput": ([_meter()], [("meter", "board", "start", 2.0)], None),
    "meter, zero throughput": ([_meter()], [("meter", "board", "start", 2.0)], 0.0),
    "rails summed, held edges": ([_sensor("a15"), _sensor("a7", w=0.1), _sensor("mem", w=0.2)],
                                 [("sensor", r, "start", 0.05) for r in ("a15", "a7", "mem")], 50.0),
    "a rail without idle": ([_sensor("a15"), _sensor("a7")], [("sensor", "a15", "start", 0.05)], 50.0),
    "a rail not covered": ([_sensor("a15"), _sensor("a7", t0=11.0)],
                           [("sensor", r, "start", 0.05) for r in ("a15", "a7")], 50.0),
    "meter over sensors": ([_sensor("a15"), _meter(), _sensor("a7")],
                           [("meter", "board", "start", 2.0), ("sensor", "a15", "start", 0.05)], 50.0),
    "uncovered meter over covered sensors": ([_meter(t1=15.0), _sensor("a15")],
                                             [("meter", "board", "start", 2.0)], 50.0),
    "no samples": ([], [("meter", "board", "start", 2.0)], 50.0),
}


@pytest.mark.parametrize("case", CASES)
def test_a_rows_figures_are_the_reports(case):
    groups, idle_rows, throughput = CASES[case]
    samples, idle = _samples(*groups), _idle(*idle_rows)
    want = _table_figures(samples, idle, throughput)
    got = one_job_energy(T0, T1, throughput, samples, start_idle_w(idle, "b"))
    assert got["source"] == (want["source"] if isinstance(want["source"], str) else None)
    assert got["energy_note"] == want["energy_note"]
    for name in FIGURES:
        w, g = float(want[name]), float(got[name])
        assert (math.isnan(w) and math.isnan(g)) or g == pytest.approx(w, rel=1e-12), name


def test_the_cases_reach_every_note():
    """The cases above are not all one kind: each note the rules give is produced by at least one."""
    notes = {one_job_energy(T0, T1, thr, _samples(*g), start_idle_w(_idle(*i), "b"))["energy_note"]
             for g, i, thr in CASES.values()}
    assert {"", "no power samples", "idle not measured", "active power not above idle"} <= notes
    assert any(n.startswith("window not covered (meter ended") for n in notes)
    assert any(n.startswith("window not covered (meter began") for n in notes)
    assert any(n.startswith("window not covered (sensors began") for n in notes)

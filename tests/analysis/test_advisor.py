"""The report's advisor: each finding from known figures, and none where there is nothing to say."""

from __future__ import annotations

import pandas as pd

from orchestrator.analysis.advisor import advise
from orchestrator.analysis.coexec import coexec_table
from orchestrator.analysis.metrics import throughput_table
from tests.analysis.test_series import _job


def _advice(rows, idle=None, simulated="none"):
    results = pd.DataFrame(rows)
    results["reasons"] = results.get("reasons", pd.Series([[]] * len(results)))
    lat = pd.DataFrame({"job_id": results["job_id"], "latency_ms": 1.0})
    table = throughput_table(results, lat)
    return advise(results, table, coexec_table(table), idle if idle is not None else pd.DataFrame(), simulated)


def _topics(advice):
    return [(a.topic, a.severity) for a in advice]


def test_a_clean_run_gets_no_advice():
    rows = [_job(f"j{i}", 100.0, freq="max") for i in range(3)]
    assert _advice(rows) == []


def test_throttled_and_hot_jobs():
    rows = [_job(f"j{i}", 100.0, freq="max") for i in range(3)]
    rows[0].update(verdict="INVALID", reasons=["throttled: policy4 capped at 1400000 kHz for 2.1 s"])
    rows[1].update(temp_start_c=66.0, temp_max_c=84.0)
    rows[2].update(temp_start_c=40.0, temp_max_c=50.0)
    advice = _advice(rows)
    assert ("thermal", "warning") in _topics(advice)
    text = " ".join(a.text for a in advice)
    assert "1 job(s) were throttled" in text and "xu3-01" in text
    assert "started above 60 °C (xu3-01/a15 @ max MobileNet v1 float32)" in text
    assert "reached 80 °C" in text
    assert "throttled (1)" in text  # the INVALID reasons summary
    assert advice[0].severity == "warning" and advice[-1].severity in ("note", "warning")


def test_few_repeats_untouched_frequency_and_missing_isolated():
    rows = [_job("a", 100.0, freq="max"), _job("b", 40.0, component="a7", cls="little", cpus=(0, 1, 2, 3)),
            _job("c", 90.0, component="a15+a7", cpus=range(8), threads=8, freq="max")]
    topics = dict(_topics(_advice(rows)))
    assert set(topics) == {"repeats", "frequency", "coexec"}
    text = " ".join(a.text for a in _advice(rows))
    assert "a7 MobileNet v1 float32" in text  # the untouched one is named
    assert "no isolated measurement of every member" in text


def test_idle_drift_and_simulated_power():
    rows = [_job(f"j{i}", 100.0, freq="max") for i in range(3)]
    idle = pd.DataFrame([{"board": "xu3-01", "source": "meter", "rail": "board", "idle_w": 2.0, "idle_end_w": 2.3,
                          "drift_rel": 0.15, "drifted": True, "simulated": True}])
    text = " ".join(a.text for a in _advice(rows, idle, "all"))
    assert "xu3-01 meter/board (+15 %)" in text and "simulated" in text

"""A series is everything that shapes a measurement: two settings are never averaged, compared or labelled as one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from orchestrator.analysis.coexec import coexec_table
from orchestrator.analysis.compare import baseline_comparison, cross_soc, quantization_table
from orchestrator.analysis.metrics import throughput_table
from orchestrator.analysis.series import (
    SERIES_KEYS,
    cpus_text,
    freq_label,
    series_names,
    with_labels,
    with_series,
)


def _job(job_id, ips, *, component="a15", freq=None, dtype="float32", sha="f" * 64, board="xu3-01", soc="exynos5422",
         cpus=(4, 5, 6, 7), threads=4, runtime="2.14.0", cls="big", model="mobilenet_v1", verdict="VALID"):
    return {"job_id": job_id, "board": board, "soc": soc, "component": component, "component_class": cls,
            "cpus": list(cpus), "threads": threads, "model": model, "model_display": "MobileNet v1", "dtype": dtype,
            "model_sha256": sha, "freq_requested": freq, "runtime_version": runtime, "agent_version": "1.5.0",
            "verdict": verdict, "throughput_ips": ips}


def _table(rows, latencies=None):
    results = pd.DataFrame(rows)
    lat = latencies if latencies is not None else pd.DataFrame(
        [{"job_id": r["job_id"], "latency_ms": 1000.0 / r["throughput_ips"]} for r in rows])
    return throughput_table(results, lat)


def test_labels_and_texts():
    assert freq_label("max") == "max" and freq_label("1400000") == "1.4 GHz" and freq_label("600000") == "600 MHz"
    assert freq_label(None) == "" and freq_label("") == ""
    assert cpus_text([7, 4, 5, 6]) == "4-7" and cpus_text([0, 2]) == "0,2" and cpus_text(None) == ""


def test_two_frequency_settings_are_two_series_never_averaged():
    rows = [_job("j1", 100.0, freq="max"), _job("j2", 102.0, freq="max"),
            _job("j3", 40.0, freq="1000000"), _job("j4", 42.0, freq="1000000")]
    t = _table(rows).set_index("component_label")
    assert len(t) == 2  # before: one row averaging both settings to 71 img/s
    assert t.loc["a15 @ max", "throughput_ips"] == pytest.approx(101.0)
    assert t.loc["a15 @ 1 GHz", "throughput_ips"] == pytest.approx(41.0)
    assert t.loc["a15 @ 1 GHz", "latency_p99_ms"] > t.loc["a15 @ max", "latency_p99_ms"] * 2


def test_threads_cpus_sha_and_versions_split_series_and_are_named_only_when_they_differ():
    rows = [_job("j1", 100.0), _job("j2", 60.0, cpus=(4, 5), threads=2),
            _job("j3", 90.0, sha="e" * 64), _job("j4", 95.0, runtime="2.16.1"),
            _job("j5", 10.0, dtype="int8", sha="1" * 64)]
    t = _table(rows)
    assert len(t) == 5
    labels = set(zip(t["component_label"], t["model_label"], t["dtype"]))
    assert ("a15 (cpus 4-7, 4 threads)", "MobileNet v1 [ffffffff] (runtime 2.14.0)", "float32") in labels
    assert ("a15 (cpus 4,5, 2 threads)", "MobileNet v1 [ffffffff] (runtime 2.14.0)", "float32") in labels
    assert ("a15 (cpus 4-7, 4 threads)", "MobileNet v1 [eeeeeeee] (runtime 2.14.0)", "float32") in labels
    # the int8 file has its own sha256, but only one: no sha in its label
    assert ("a15 (cpus 4-7, 4 threads)", "MobileNet v1 (runtime 2.14.0)", "int8") in labels
    # a table where nothing differs names nothing extra
    plain = _table([_job("j1", 100.0), _job("j2", 98.0)])
    assert list(plain["component_label"]) == ["a15"] and list(plain["model_label"]) == ["MobileNet v1"]
    assert list(series_names(plain)) == ["xu3-01/a15/MobileNet v1/float32"]


def test_rows_without_the_new_columns_still_form_series():
    old = pd.DataFrame([{"job_id": "j1", "board": "b", "soc": "s", "component": "c", "component_class": "cpu",
                         "model": "m", "model_display": "M", "dtype": "float32", "verdict": "VALID",
                         "throughput_ips": 5.0}])
    s = with_series(old)
    assert all(s[k].iloc[0] == "" for k in ("cpus_key", "threads_key", "freq_setting", "model_sha256"))
    t = throughput_table(old, pd.DataFrame({"job_id": ["j1"], "latency_ms": [200.0]}))
    assert t["throughput_ips"].tolist() == [5.0] and t["component_label"].tolist() == ["c"]


def test_quantization_ratio_pairs_dtypes_at_the_same_frequency():
    rows = [_job("a", 100.0, freq="max"), _job("b", 250.0, freq="max", dtype="int8", sha="1" * 64),
            _job("c", 40.0, freq="1000000"), _job("d", 60.0, freq="1000000", dtype="int8", sha="1" * 64)]
    q = quantization_table(_table(rows)).set_index("component_label")
    assert q.loc["a15 @ max", "throughput_ratio"] == pytest.approx(2.5)
    assert q.loc["a15 @ 1 GHz", "throughput_ratio"] == pytest.approx(1.5)


def test_coexec_gain_uses_the_isolated_series_of_the_same_setting():
    rows = [_job("i1", 30.0, freq="max"), _job("i2", 10.0, component="a7", cls="little", cpus=(0, 1, 2, 3), freq="max"),
            _job("i3", 12.0, freq="1000000"),
            _job("i4", 5.0, component="a7", cls="little", cpus=(0, 1, 2, 3), freq="1000000"),
            _job("c1", 38.0, component="a15+a7", cpus=range(8), threads=8, freq="max"),
            _job("c2", 16.0, component="a15+a7", cpus=range(8), threads=8, freq="1000000")]
    c = coexec_table(_table(rows)).set_index("component_label")
    assert c.loc["a15+a7 @ max", "sum_isolated_ips"] == pytest.approx(40.0)
    assert c.loc["a15+a7 @ max", "vs_sum"] == pytest.approx(0.95)
    # before: both looked up whichever isolated row came first (30 + 10), giving 0.4 here
    assert c.loc["a15+a7 @ 1 GHz", "vs_sum"] == pytest.approx(16.0 / 17.0)


def test_cross_soc_compares_like_settings_only():
    rows = [_job("a", 100.0, freq="max"), _job("b", 30.0, freq="1000000"),
            _job("c", 50.0, freq="max", board="hikey-01", soc="kirin970", component="a73", cpus=(4, 5, 6, 7)),
            _job("d", 20.0, freq="2362000", board="hikey-01", soc="kirin970", component="a73", cpus=(4, 5, 6, 7))]
    pairs = cross_soc(_table(rows))  # newer / older: kirin970 (2017) / exynos5422 (2014)
    assert pairs[["direction", "freq_setting", "ratio"]].values.tolist() == [
        ["kirin970 / exynos5422", "max", pytest.approx(0.5)]]


def test_baseline_comparison_matches_series_across_versions():
    cur = _table([_job("a", 95.0, freq="max", runtime="2.16.1"), _job("b", 40.0, freq="1000000", runtime="2.16.1")])
    base = _table([_job("a", 100.0, freq="max"), _job("b", 50.0, freq="1000000")])
    m, g = baseline_comparison(cur, base)
    got = dict(zip(m["component_label"], m["ratio"]))
    assert got == {"a15 @ max": pytest.approx(0.95), "a15 @ 1 GHz": pytest.approx(0.8)}
    assert g == pytest.approx(np.sqrt(0.95 * 0.8))


def test_with_labels_needs_the_keys():
    with pytest.raises(KeyError):
        with_labels(pd.DataFrame({"board": ["b"]}))
    assert set(SERIES_KEYS) <= set(with_series(pd.DataFrame({"board": ["b"]})).columns)

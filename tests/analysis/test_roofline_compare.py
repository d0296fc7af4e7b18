"""Roofline points, quantization and cross-SoC ratios, co-execution gain: known inputs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from orchestrator.analysis.coexec import coexec_table
from orchestrator.analysis.compare import (
    baseline_comparison,
    cross_soc,
    cross_soc_summary,
    geomean,
    quantization_table,
)
from orchestrator.analysis.model_info import analyze
from orchestrator.analysis.roofline import best_bandwidth, roofline
from tests.analysis.synthetic import FIXTURE_ZOO, boards_meta


def _row(board, soc, component, cls, model, dtype, ips, **extra):
    return {"board": board, "soc": soc, "component": component, "component_class": cls, "model": model,
            "model_display": model.title(), "dtype": dtype, "throughput_ips": ips,
            "model_file": f"tiny_cnn_{dtype}.tflite", **extra}


def test_best_bandwidth_prefers_triad():
    m = pd.DataFrame([{"board": "b", "component": "c", "kernel": "copy", "gb_per_s": 9.0},
                      {"board": "b", "component": "c", "kernel": "triad", "gb_per_s": 6.0},
                      {"board": "b", "component": "d", "kernel": "copy", "gb_per_s": 3.0},
                      {"board": "b", "component": "d", "kernel": "scale", "gb_per_s": 4.0}])
    got = best_bandwidth(m).set_index("component")
    assert got.loc["c", "bandwidth_gb_s"] == 6.0 and got.loc["d", "bandwidth_kernel"] == "scale"


def test_roofline_points_and_missing():
    meta = {"zoo_dir": str(FIXTURE_ZOO), "boards": boards_meta(peak=10.0)}
    table = pd.DataFrame([_row("b1", "socA", "big", "big", "tiny_cnn", "float32", 1000.0),
                          _row("b1", "socA", "big", "big", "tiny_cnn", "int8", 2000.0),
                          _row("b1", "socA", "little", "little", "tiny_cnn", "float32", 300.0)])
    membw = pd.DataFrame([{"board": "b1", "component": "big", "kernel": "triad", "gb_per_s": 2.0}])
    r = roofline(meta, table, membw)
    f32 = analyze(FIXTURE_ZOO / "tiny_cnn_float32.tflite")
    i8 = analyze(FIXTURE_ZOO / "tiny_cnn_int8.tflite")
    pts = r.points.set_index("dtype")
    assert pts.loc["float32", "attained_gflops"] == pytest.approx(1000.0 * f32.flops / 1e9)
    assert pts.loc["float32", "intensity_flop_per_byte"] == pytest.approx(f32.intensity_flop_per_byte)
    # ridge = 10 / 2 = 5 FLOP/byte: float32 (2.7) memory-bound, int8 (10.7) compute-bound
    assert pts.loc["float32", "bound"] == "memory" and pts.loc["int8", "bound"] == "compute"
    assert pts.loc["float32", "roof_gflops"] == pytest.approx(2.0 * f32.intensity_flop_per_byte)
    assert pts.loc["int8", "roof_gflops"] == pytest.approx(10.0)
    assert pts.loc["int8", "efficiency"] == pytest.approx(2000.0 * i8.flops / 1e9 / 10.0)
    missing = {(m.board, m.component): m.reason for m in r.missing.itertuples()}
    assert "not enough data" in missing[("b1", "little")] and "peak_gflops" in missing[("b1", "little")]
    assert "memory bandwidth" in missing[("b2", "a73")]
    assert ("b1", "big") not in missing


def test_roofline_model_file_missing_is_not_enough_data(tmp_path):
    meta = {"zoo_dir": str(tmp_path), "boards": boards_meta(peak=10.0)}
    table = pd.DataFrame([_row("b1", "socA", "big", "big", "tiny_cnn", "float32", 1000.0)])
    membw = pd.DataFrame([{"board": "b1", "component": "big", "kernel": "triad", "gb_per_s": 2.0}])
    r = roofline(meta, table, membw)
    assert r.points.empty
    assert any("not found" in reason for reason in r.missing["reason"])


def test_geomean():
    assert geomean([2.0, 0.5]) == pytest.approx(1.0)
    assert geomean([1.0, 4.0]) == pytest.approx(2.0)
    assert math.isnan(geomean([]))


def test_quantization_ratios():
    table = pd.DataFrame([_row("b1", "socA", "big", "big", "m", "float32", 10.0),
                          _row("b1", "socA", "big", "big", "m", "int8", 25.0),
                          _row("b1", "socA", "little", "little", "m", "float32", 4.0)])
    energy = pd.DataFrame([{**_row("b1", "socA", "big", "big", "m", d, 0), "energy_per_image_j": j}
                           for d, j in (("float32", 0.2), ("int8", 0.05), ("int8", 0.07))])
    q = quantization_table(table, energy)
    assert len(q) == 1  # little has no int8
    row = q.iloc[0]
    assert row["throughput_ratio"] == pytest.approx(2.5)
    assert row["energy_ratio"] == pytest.approx(0.06 / 0.2)  # mean of the int8 repeats


def test_cross_soc_ratios_and_geomean():
    table = pd.DataFrame([
        _row("b1", "socA", "a15", "big", "m1", "float32", 20.0),
        _row("b1", "socA", "a15", "big", "m2", "float32", 5.0),
        _row("b1", "socA", "a7", "little", "m1", "float32", 4.0),
        _row("b2", "socB", "a73", "big", "m1", "float32", 10.0),
        _row("b2", "socB", "a73", "big", "m2", "float32", 10.0),
        _row("b2", "socB", "gpu", "gpu", "m1", "float32", 50.0),
    ])
    pairs = cross_soc(table)
    assert set(pairs["component_class"]) == {"big"}  # little and gpu exist on one SoC only
    assert dict(zip(pairs["model"], pairs["ratio"])) == pytest.approx({"m1": 2.0, "m2": 0.5})
    s = cross_soc_summary(pairs)
    assert s.iloc[0]["geomean_ratio"] == pytest.approx(1.0) and s.iloc[0]["models"] == 2


def test_baseline_comparison():
    cur = pd.DataFrame([_row("b1", "socA", "big", "big", "m", "float32", 11.0),
                        _row("b1", "socA", "big", "big", "n", "float32", 9.0)])
    base = pd.DataFrame([_row("b1", "socA", "big", "big", "m", "float32", 10.0),
                         _row("b1", "socA", "big", "big", "k", "float32", 1.0)])
    table, g = baseline_comparison(cur, base)
    assert dict(zip(table["model"], table["ratio"].round(6))) == {"m": 1.1, "n": pytest.approx(np.nan, nan_ok=True),
                                                                  "k": pytest.approx(np.nan, nan_ok=True)}
    assert g == pytest.approx(1.1)


def test_coexec_gain():
    table = pd.DataFrame([_row("b1", "socA", "a15", "big", "m", "float32", 30.0),
                          _row("b1", "socA", "a7", "little", "m", "float32", 10.0),
                          _row("b1", "socA", "a15+a7", "big", "m", "float32", 36.0),
                          _row("b1", "socA", "a15+gpu", "big", "m", "float32", 40.0)])
    c = coexec_table(table).set_index("component")
    assert c.loc["a15+a7", "best_single"] == "a15"
    assert c.loc["a15+a7", "gain_vs_best"] == pytest.approx(1.2)
    assert c.loc["a15+a7", "vs_sum"] == pytest.approx(0.9)
    assert np.isnan(c.loc["a15+gpu", "gain_vs_best"])  # gpu never measured alone
    assert coexec_table(table.iloc[:2]).empty

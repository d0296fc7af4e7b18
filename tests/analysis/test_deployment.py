"""The deployment advisor: Pareto front of throughput vs energy per image, and the three picks."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from orchestrator.analysis.deployment import deployment, pareto_front
from orchestrator.analysis.series import SERIES_KEYS
from tests.analysis.test_series import _job, _table

NAN = math.nan


def _energy(table: pd.DataFrame, figures: dict[str, tuple[float, float]], simulated: bool = False) -> pd.DataFrame:
    """The energy summary of ``table``'s float32 series: component label -> (mean W, J/image)."""
    t = table[table["component_label"].isin(list(figures)) & (table["dtype"] == "float32")]
    return t[SERIES_KEYS].assign(
        mean_w=[figures[c][0] for c in t["component_label"]],
        energy_per_image_j=[figures[c][1] for c in t["component_label"]],
        measures="board_supply", simulated=simulated)


def test_pareto_front_keeps_only_the_unbeaten():
    thr = np.array([100.0, 50.0, 40.0, 100.0, 20.0, 50.0])
    e = np.array([1.0, 0.4, 0.5, 1.2, NAN, 0.4])
    # 2 is beaten by 1 (faster and cheaper), 3 by 0 (as fast, cheaper), 4 has no energy figure; 1 and 5 tie
    assert pareto_front(thr, e).tolist() == [True, True, False, False, False, True]
    # no energy figure at all: the fastest are the front
    assert pareto_front(np.array([3.0, 5.0, 5.0]), np.array([NAN] * 3)).tolist() == [False, True, True]
    assert pareto_front(np.array([]), np.array([])).tolist() == []


def _xu3():
    rows = [_job("a1", 100.0, freq="max"), _job("a2", 104.0, freq="max"),
            _job("b1", 60.0, freq="1000000"), _job("b2", 62.0, freq="1000000"),
            _job("c1", 40.0, component="a7", cls="little", cpus=(0, 1, 2, 3), freq="max"),
            _job("d1", 120.0, component="a15+a7", cpus=range(8), threads=8, freq="max"),
            _job("e1", 30.0, component="a7", cls="little", cpus=(0, 1, 2, 3), freq="max", dtype="int8")]
    table = _table(rows)
    energy = _energy(table, {"a15 @ max": (6.0, 0.040), "a15 @ 1 GHz": (3.5, 0.030), "a7 @ max": (2.0, 0.025),
                             "a15+a7 @ max": (7.5, 0.045)})
    return table, energy


def test_the_picks_of_one_board_and_model():
    table, energy = _xu3()
    dep = deployment(table, energy, power_cap_w=4.0)
    fp32 = dep.picks[dep.picks["dtype"] == "float32"].iloc[0]
    assert fp32["candidates"] == 4 and fp32["front"] == 4  # each is best at some trade-off
    assert fp32["fastest_label"] == "a15+a7 @ max" and fp32["fastest_throughput_ips"] == 120.0
    assert fp32["efficient_label"] == "a7 @ max" and fp32["efficient_energy_per_image_j"] == 0.025
    # under 4 W: the A15 at 1 GHz (3.5 W, 61 img/s) beats the A7 (2 W, 40 img/s); the others draw more
    assert fp32["capped_label"] == "a15 @ 1 GHz" and fp32["capped_throughput_ips"] == pytest.approx(61.0)
    # the two clock settings of the A15 are two candidates, never averaged
    labels = set(dep.candidates.loc[dep.candidates["dtype"] == "float32", "component_label"])
    assert {"a15 @ max", "a15 @ 1 GHz"} <= labels
    # int8 is a row of its own (accuracy is not measured: not traded for speed here); no energy figure there
    int8 = dep.picks[dep.picks["dtype"] == "int8"].iloc[0]
    assert int8["candidates"] == 1 and int8["fastest_label"] == "a7 @ max"
    assert pd.isna(int8["efficient_label"]) and "no energy figure" in int8["efficient_note"]
    assert pd.isna(int8["capped_label"]) and int8["capped_note"] == "no power figure"


def test_a_dominated_configuration_is_off_the_front():
    table, energy = _xu3()
    energy.loc[energy["freq_setting"] == "1000000", "energy_per_image_j"] = 0.05  # slower and dearer than max
    dep = deployment(table, energy)
    c = dep.candidates.set_index("component_label")
    assert not c.loc["a15 @ 1 GHz", "on_front"] and c.loc["a15 @ max", "on_front"]


def test_a_cap_below_every_configuration_names_the_lowest_draw():
    table, energy = _xu3()
    fp32 = deployment(table, energy, power_cap_w=1.5).picks.iloc[0]
    assert pd.isna(fp32["capped_label"])
    assert fp32["capped_note"] == "none within 1.5 W (lowest draw: a7 @ max at 2 W)"
    assert "no power cap given" in deployment(table, energy).picks.iloc[0]["capped_note"]


def test_no_power_data_still_names_the_fastest():
    table, _ = _xu3()
    dep = deployment(table, pd.DataFrame())
    fp32 = dep.picks[dep.picks["dtype"] == "float32"].iloc[0]
    assert fp32["fastest_label"] == "a15+a7 @ max" and fp32["front"] == 1
    assert pd.isna(fp32["efficient_label"])


def test_boards_and_models_are_apart_and_labels_carry_simulation():
    rows = [_job("x1", 100.0, freq="max"), _job("y1", 300.0, freq="max", board="hikey-01", soc="kirin970",
                                                     component="a73"),
            _job("z1", 10.0, freq="max", model="resnet50")]
    table = _table(rows)
    energy = _energy(table, {"a15 @ max": (5.0, 0.05), "a73 @ max": (4.0, 0.01)}, simulated=True)
    picks = deployment(table, energy).picks
    assert len(picks) == 3 and set(picks["board"]) == {"xu3-01", "hikey-01"}
    assert picks.set_index("board").loc["hikey-01", "fastest_label"] == "a73 @ max"
    assert picks["simulated"].all()


def test_inactive_power_is_no_energy_figure_and_a_bad_cap_is_refused():
    table, energy = _xu3()
    energy.loc[energy["component"] == "a7", "energy_per_image_j"] = 0.0  # active power not above idle
    fp32 = deployment(table, energy).picks.iloc[0]
    assert fp32["efficient_label"] == "a15 @ 1 GHz"
    for bad in (0.0, -3.0, NAN, math.inf):
        with pytest.raises(ValueError, match="positive number of watts"):
            deployment(table, energy, power_cap_w=bad)

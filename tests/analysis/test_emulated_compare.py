"""Figures of a board whose userland was emulated: named in cross-SoC and baseline ratios, never judged against
a real board's in a regression verdict, found by the advisor and the end of a sweep."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from orchestrator.analysis.advisor import advise
from orchestrator.analysis.coexec import coexec_table
from orchestrator.analysis.compare import baseline_comparison, cross_soc, cross_soc_summary
from orchestrator.analysis.emulation import emulated_boards, emulation_status, emulation_status_text, is_emulated
from orchestrator.analysis.metrics import throughput_table
from orchestrator.analysis.regress import regress, write_junit
from orchestrator.results.store import Store
from tests.analysis.synthetic import make_run, noisy_run, result_row

QEMU = "qemu-user armhf (cortex-a15), Debian 12"
NO_LATENCIES = pd.DataFrame({"job_id": pd.Series(dtype=str), "latency_ms": pd.Series(dtype=float)})


def _records(emulated_b2: str | None = QEMU) -> list[dict]:
    """b1 (socA, real) and b2 (socB, emulated), two models, the same class."""
    return [result_row("r", f"{board}-{model}", board=board, soc=soc, model=model, model_display=model,
                       throughput_ips=ips, emulated=emu)
            for board, soc, emu, scale in (("b1", "socA", None, 1.0), ("b2", "socB", emulated_b2, 0.05))
            for model, ips in (("m1", 100.0 * scale), ("m2", 50.0 * scale))]


def _rows(emulated_b2: str | None = QEMU) -> pd.DataFrame:
    return pd.DataFrame(_records(emulated_b2))


def test_the_throughput_table_and_its_helpers_say_which_series_are_emulated():
    table = throughput_table(_rows(), NO_LATENCIES)
    assert dict(zip(table["board"], table["emulated"])) == {"b1": "", "b2": QEMU}
    assert emulated_boards(_rows()) == {"b2": QEMU}
    old = _rows().drop(columns=["emulated"])  # rows of a store from before the column
    assert set(throughput_table(old, NO_LATENCIES)["emulated"]) == {""} and emulated_boards(old) == {}
    assert not is_emulated(old).any()


def test_cross_soc_names_the_emulated_side(monkeypatch):
    pairs = cross_soc(throughput_table(_rows(), NO_LATENCIES))
    assert set(pairs["emulated_a"]) == {""} and set(pairs["emulated_b"]) == {QEMU}
    (s,) = cross_soc_summary(pairs).to_dict("records")
    assert s["direction"] == "socA / socB" and s["emulated"] == f"socB emulated ({QEMU})"
    assert s["per_model"] == [{"model": "m1", "ratio": pytest.approx(20.0), "emulated": True},
                              {"model": "m2", "ratio": pytest.approx(20.0), "emulated": True}]
    real = cross_soc_summary(cross_soc(throughput_table(_rows(None), NO_LATENCIES))).iloc[0]
    assert real["emulated"] == "" and all("emulated" not in m for m in real["per_model"])
    # the compare command's line
    import orchestrator.cli_analysis as cli

    buf = io.StringIO()
    monkeypatch.setattr(cli, "out", Console(file=buf, width=300))
    cli._print_cross_soc(cross_soc_summary(pairs))
    line = buf.getvalue().splitlines()[1]
    assert line.endswith(f"(2 models) [socB emulated ({QEMU}): timings are not performance figures]")


def test_baseline_ratios_never_set_an_emulator_against_a_board():
    cur = throughput_table(_rows(), NO_LATENCIES)
    real = throughput_table(_rows(None), NO_LATENCIES)
    m, g = baseline_comparison(cur, real)
    b2 = m[m["board"] == "b2"]
    assert b2["ratio"].isna().all() and b2["ips"].notna().all() and b2["baseline_ips"].notna().all()
    assert set(b2["note"]) == {"not compared: emulated in this run, a real board in the baseline"}
    assert (m.loc[m["board"] == "b1", "ratio"] == 1.0).all() and g == pytest.approx(1.0)
    m, _ = baseline_comparison(real, cur)
    assert set(m.loc[m["board"] == "b2", "note"]) == {
        "not compared: emulated in the baseline, a real board in this run"}
    m, _ = baseline_comparison(cur, cur)  # emulated on both sides: compared, and said
    b2 = m[m["board"] == "b2"]
    assert (b2["ratio"] == 1.0).all()
    assert set(b2["note"]) == {"emulated on both sides: timings are not performance figures"}


def test_the_advisor_finds_emulated_boards_once():
    rows = _rows()
    rows.loc[rows["board"] == "b1", "emulated"] = "qemu-user arm64, Debian 12"
    table = throughput_table(rows, NO_LATENCIES)
    advice = [a for a in advise(rows, table, coexec_table(table), pd.DataFrame(), "none") if a.topic == "emulated"]
    assert [(a.topic, a.severity) for a in advice] == [("emulated", "note")]
    assert advice[0].text.startswith("timings of boards b1, b2 are from an emulated userland (qemu-user arm64, "
                                     f"Debian 12; {QEMU}): not performance figures; ")
    real = _rows(None)
    table = throughput_table(real, NO_LATENCIES)
    assert not [a for a in advise(real, table, coexec_table(table), pd.DataFrame(), "none") if a.topic == "emulated"]


def test_the_end_of_a_sweep_names_the_emulated_boards(tmp_path):
    store = Store(tmp_path / "runs")
    run = make_run(store, "r1", _records())
    status = emulation_status(run)
    assert status == {"b2": QEMU}
    assert emulation_status_text(status) == (f"emulated userland on b2 ({QEMU}): their timings are not "
                                             "performance figures")
    assert emulation_status(make_run(store, "r2", _records(None))) is None


# -- regression verdicts -------------------------------------------------------------------------------

EMULATED = {"emulated": QEMU}


def test_emulated_against_real_is_not_comparable(tmp_path):
    store = Store(tmp_path / "runs")
    rng = np.random.default_rng(3)
    base = noisy_run(store, "n0", rng)
    cur = noisy_run(store, "n1", rng, factors=[0.5], series=[EMULATED])  # half as fast: the emulator
    (v,) = regress(store, cur, base)
    assert v.verdict == "not comparable" and (v.emulated, v.baseline_emulated) == (QEMU, None)
    assert v.reason == (f"emulated userland ({QEMU}) in this run, a real board in the baseline: an emulator's "
                        "timings are not compared with a SoC's")
    (v,) = regress(store, base, cur)
    assert v.verdict == "not comparable" and "a real board in this run" in v.reason
    junit = write_junit(tmp_path / "j.xml", cur.run_id, base.run_id, regress(store, cur, base)).read_text()
    assert "<skipped message=" in junit and "failures=\"0\"" in junit


def test_emulated_on_both_sides_is_judged_and_said(tmp_path):
    store = Store(tmp_path / "runs")
    rng = np.random.default_rng(4)
    noisy_run(store, "n0", rng, run_sd=0.0, factors=[2.0])  # a real board of the same name, earlier: not pooled
    for rid in ("n1", "n2"):
        noisy_run(store, rid, rng, run_sd=0.0, series=[EMULATED])
    base = noisy_run(store, "n3", rng, run_sd=0.0, series=[EMULATED])
    cur = noisy_run(store, "n4", rng, run_sd=0.0, series=[EMULATED])
    (v,) = regress(store, cur, base)
    assert v.verdict == "unchanged" and v.baseline_runs == ["n3", "n2", "n1"]
    assert v.reason.endswith(f"; emulated userland ({QEMU}): timings are not performance figures")
    assert v.change_point is None  # the real run's figures are not in the emulated series' history

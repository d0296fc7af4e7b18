"""The regression rule on synthetic nightly runs: the job is the unit, runs differ as a whole.

Every synthetic run of a series has one speed offset of its own (thermal state, background load: ``run_sd``)
and each of its 3 jobs another (``job_sd`` 0.5 %). A nightly compares each run with the pooled jobs of its
baseline runs (the last good run and up to 4 good runs before it), as ``last-good`` picks them.

What the defaults (alpha 0.05, min effect 3 %, 3 repeats, 5 baseline runs) achieve depends on ``run_sd``: the
mean of one run differs from the mean of 5 others by about run_sd * sqrt(1 + 1/5), and no test on one night can
tell that from a change. At run_sd 0.75 % that is 0.88 % (with the jobs' own noise): a 3 % minimum effect is
3.4 sd away (false alarms about 0.06 % per series and night) and a 5 % slowdown 2.3 sd beyond it (found 99 %
of nights). At 1.5 % (1.7 %) no single-night setting does both; ``test_run_to_run_noise_sets_the_price``
pins those figures.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from orchestrator.analysis.regress import (
    RegressSettings,
    compare_jobs,
    last_good,
    permutation_p,
    regress,
    save_verdicts,
    smallest_p,
)
from orchestrator.results.store import Store
from tests.analysis.synthetic import LITTLE, make_run, noisy_jobs, noisy_run, result_row

QUIET = 0.0075  # run-to-run sd of a farm whose runs the defaults are made for
NOISY = 0.015


# -- the permutation test ------------------------------------------------------------

def test_exact_permutation_p():
    assert permutation_p([1, 2, 3], [4, 5, 6]) == pytest.approx(1 / 20)  # the one most extreme split of 20
    assert permutation_p([4, 5, 6], [1, 2, 3]) == pytest.approx(1 / 20)  # one-sided, in the direction seen
    assert permutation_p([5, 6, 7, 8, 9], [1, 2]) == pytest.approx(1 / 21)
    assert permutation_p([1, 1, 1], [1, 1, 1]) == 1.0
    assert permutation_p([2, 4, 9], [1, 3, 5, 7]) == pytest.approx(13 / 35)  # 13 of the C(7, 3) sums are >= 15
    assert smallest_p(3, 3) == pytest.approx(0.05) and smallest_p(3, 15) == pytest.approx(1 / 816)


def test_random_permutations_agree_with_the_exact_test():
    rng = np.random.default_rng(4)
    x, y = rng.normal(0.3, 1, 8), rng.normal(0, 1, 12)
    exact = permutation_p(x, y)  # C(20, 8) = 125970 > the default limit: random splits
    enumerated = permutation_p(x, y, exact_limit=200_000)
    assert exact == pytest.approx(enumerated, abs=0.01)
    assert permutation_p(x, y, seed=1) == pytest.approx(exact, abs=0.01)


def test_not_enough_repeats_below_what_can_be_significant():
    base = [100.0, 100.5, 99.5]
    slow = [90.0, 90.5, 89.5]
    v = compare_jobs(slow, base)
    assert v["verdict"] == "not enough repeats" and "smallest p 0.05" in v["reason"]
    assert v["throughput_ratio"] == pytest.approx(0.9) and "(not judged)" in v["reason"]
    assert compare_jobs(slow, base, settings=RegressSettings(alpha=0.06))["verdict"] == "regressed"
    v = compare_jobs(slow[:2], base * 5)
    assert v["verdict"] == "not enough repeats" and v["reason"].startswith("2 vs 15 jobs: need at least 3")
    assert compare_jobs([], base)["verdict"] == "not comparable"
    v = compare_jobs(slow, base * 5, runs=5)
    assert v["verdict"] == "regressed" and "3 vs 15 jobs (5 baseline runs)" in v["reason"]
    assert (v["n"], v["n_baseline"]) == (3, 15)


def test_either_figure_decides():
    base_tp, base_lat = [100.0, 100.4, 99.6] * 5, [10.0, 10.04, 9.96] * 5
    # throughput as before, the median latency 10 % longer (e.g. the time between inferences shrank): regressed
    v = compare_jobs([100.1, 100.3, 99.8], base_tp, [11.0, 11.05, 10.97], base_lat)
    assert v["verdict"] == "regressed" and v["latency_ratio"] == pytest.approx(1.1, abs=0.01)
    assert "median latency +10.1 %" in v["reason"]
    v = compare_jobs([106.0, 106.5, 105.6], base_tp, [10.0, 10.02, 9.97], base_lat)
    assert v["verdict"] == "improved" and v["throughput_ratio"] == pytest.approx(1.06, abs=0.01)
    # better throughput does not hide a worse latency
    assert compare_jobs([106.0, 106.5, 105.6], base_tp, [11.0, 11.05, 10.97], base_lat)["verdict"] == "regressed"
    # significant but small: unchanged
    v = compare_jobs([98.0, 98.2, 97.9], base_tp, [10.2, 10.19, 10.22], base_lat)
    assert v["throughput_p"] < 0.05 and v["verdict"] == "unchanged" and "min effect 3 %" in v["reason"]


# -- why the job is the unit ---------------------------------------------------------

def test_pooled_inferences_call_a_one_percent_run_offset_significant(tmp_path):
    """The old rule: every inference of every repeat as an independent sample. A run 1 % slower as a whole
    (an ordinary warm night) is 'significant' at any level; on its jobs it is a 1 % change, unchanged."""
    store = Store(tmp_path / "runs")
    rng = np.random.default_rng(0)
    for rid in ("r1", "r2", "r3", "r4", "r5"):
        noisy_run(store, rid, rng, run_sd=0.0, inferences=2000)
    cur = noisy_run(store, "r6", rng, run_sd=0.0, factors=[0.99], inferences=2000)
    base_lat = store.open_run("r5").read_table("latencies")["latency_ms"]
    cur_lat = cur.read_table("latencies")["latency_ms"]
    assert len(cur_lat) == 6000
    assert mannwhitneyu(cur_lat, base_lat, alternative="two-sided").pvalue < 1e-6
    (v,) = regress(store, cur, store.open_run("r5"))
    assert v.verdict == "unchanged" and v.throughput_ratio == pytest.approx(0.99, abs=0.005)
    assert v.n == 3 and v.n_baseline == 15


def test_median_latency_from_the_latencies_when_the_column_is_empty(tmp_path):
    store = Store(tmp_path / "runs")
    rows = [result_row("r1", f"j{i}", throughput_ips=100.0, latency_p50_ms=None) for i in range(3)]
    lat = {f"j{i}": np.full(50, 10.0 + i) for i in range(3)}
    base = make_run(store, "r1", rows, latencies=lat)
    rows = [result_row("r2", f"j{i}", throughput_ips=100.0, latency_p50_ms=13.0 + i) for i in range(3)]
    cur = make_run(store, "r2", rows)
    (v,) = regress(store, cur, base, alpha=0.1)
    assert v.baseline_latency_ms == pytest.approx(11.0) and v.latency_ms == pytest.approx(14.0)
    assert v.verdict == "regressed" and "median latency +27.3 %" in v.reason


# -- nightlies -----------------------------------------------------------------------

def nightly_verdicts(seed: int, nights: int = 20, settings: RegressSettings = RegressSettings(),
                     **noise) -> list[str | None]:
    """Verdicts of ``nights`` nightly runs without a change, each against the jobs of its last
    ``baseline_runs`` good runs (a run found regressed is left out of later baselines, as last-good does)."""
    rng = np.random.default_rng(seed)
    good: list[tuple[np.ndarray, np.ndarray]] = []
    verdicts: list[str | None] = []
    for _ in range(nights):
        tp, lat = noisy_jobs(rng, **noise)
        verdict = None
        if good:
            pool = good[-settings.baseline_runs:]
            verdict = compare_jobs(tp, np.concatenate([p[0] for p in pool]), lat,
                                   np.concatenate([p[1] for p in pool]), settings=settings)["verdict"]
        verdicts.append(verdict)
        if verdict != "regressed":
            good.append((tp, lat))
    return verdicts


def slowed_verdict(seed: int, factor: float = 0.95, settings: RegressSettings = RegressSettings(), **noise) -> str:
    """The verdict of a run ``factor`` as fast as its ``baseline_runs`` baseline runs, all 3 repeats each."""
    rng = np.random.default_rng(seed)
    base = [noisy_jobs(rng, **noise) for _ in range(settings.baseline_runs)]
    tp, lat = noisy_jobs(rng, factor=factor, **noise)
    return compare_jobs(tp, np.concatenate([b[0] for b in base]), lat, np.concatenate([b[1] for b in base]),
                        settings=settings)["verdict"]


def test_twenty_nightlies_without_change_raise_no_alarm(tmp_path):
    """The issue's case end to end: 20 nightly runs of two series, run-to-run noise only, each judged against
    last-good with the defaults and its verdicts recorded: no regression."""
    store = Store(tmp_path / "runs")
    rng = np.random.default_rng(0)
    seen = []
    for night in range(20):
        run = noisy_run(store, f"n{night:02d}", rng, series=[{}, LITTLE], run_sd=QUIET)
        if night == 0:
            continue
        base = last_good(store, run.run_id)
        verdicts = regress(store, run, store.open_run(base), history=False)
        save_verdicts(run, base, verdicts)
        seen += [v.verdict for v in verdicts]
    assert "regressed" not in seen
    assert seen[:2] == ["not enough repeats"] * 2  # the second night: 3 vs 3 jobs
    assert set(seen[2:]) <= {"unchanged", "improved"} and len(seen) == 38


def test_false_alarms_over_many_seeds():
    """20 seeds x 20 nightlies (360 judged). A larger simulation (10,800 nights on other seeds) gives 6 false
    alarms, about 0.06 % per series and night (most in the first nights, whose baselines have 2-4 runs): 0.2
    expected here. One would be within the design; two would mean the rule got worse."""
    verdicts = [v for seed in range(20) for v in nightly_verdicts(seed, run_sd=QUIET)]
    judged = [v for v in verdicts if v not in (None, "not enough repeats")]
    assert len(judged) == 360
    assert judged.count("regressed") <= 1


def test_five_percent_slowdown_in_three_repeats_is_found(tmp_path):
    # the rule alone, 20 seeds: found 99.6 % of the time by design, so at most one miss
    found = [slowed_verdict(seed, run_sd=QUIET) for seed in range(20)]
    assert found.count("regressed") >= 19
    # end to end, a few seeds: five runs of noise, then a run 5 % slower
    for seed in range(3):
        store = Store(tmp_path / f"s{seed}" / "runs")
        rng = np.random.default_rng(100 + seed)
        for night in range(5):
            noisy_run(store, f"n{night}", rng, run_sd=QUIET)
        slow = noisy_run(store, "n5", rng, run_sd=QUIET, factors=[0.95])
        (v,) = regress(store, slow, store.open_run(last_good(store, "n5")))
        assert v.verdict == "regressed", v.reason
        assert "3 vs 15 jobs (5 baseline runs)" in v.reason and v.throughput_p < 0.01


def test_run_to_run_noise_sets_the_price():
    """At 1.5 % run-to-run sd a single night cannot both stay quiet and find 5 %: the defaults raise a false
    alarm on about 5 % of series-nights; a 5 % minimum effect brings that below 1 % and then finds a 5 %
    slowdown only about half the time. (Raise --min-effect on such a farm, or make its runs steadier.)"""
    def false_alarms(settings):  # 100 seeds x 20 nightlies: 1800 judged
        verdicts = [v for seed in range(100) for v in nightly_verdicts(seed, settings=settings, run_sd=NOISY)]
        judged = [v for v in verdicts if v not in (None, "not enough repeats")]
        return judged.count("regressed") / len(judged)

    def found(settings):
        return np.mean([slowed_verdict(seed, settings=settings, run_sd=NOISY) == "regressed" for seed in range(200)])

    # a 10,800-night simulation on other seeds: 5.3 % and 90 %; 0.2 % and 56 % (bounds >= 3 binomial sd away)
    assert 0.03 < false_alarms(RegressSettings()) < 0.08
    assert found(RegressSettings()) > 0.85
    wide = RegressSettings(min_effect=0.05)
    assert false_alarms(wide) < 0.01
    assert found(wide) < 0.7

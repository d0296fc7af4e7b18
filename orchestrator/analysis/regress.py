"""Nightly regression verdicts: the jobs (repeats) of a run against the jobs of its baseline runs.

**The unit is the job.** The inferences of one job share its thermal state, its background load and its
process, so thousands of per-inference latencies are not thousands of independent observations: a test on
them calls any shift "significant". Runs also differ *as a whole* (a per-run offset of the order of 1-2 %),
which no test on the jobs of one run against one other run can tell from a change. Hence:

- A **series** is what :mod:`orchestrator.analysis.series` says; the run and the baseline are matched on
  :data:`~orchestrator.analysis.series.COMPARE_KEYS` (everything but the versions). A version change is
  compared anyway and named in the reason (``runtime 2.14.0 -> 2.16.1``): an upgrade is exactly what a
  nightly is there to catch.
- Per series, each VALID job gives two figures: its **throughput** (``throughput_ips``, the primary figure)
  and its **median latency** (``latency_p50_ms``; from the job's latencies when that is null).
- The **baseline** is the jobs of the baseline run pooled with those of up to ``baseline_runs - 1`` earlier
  runs that ``last-good`` would also accept (not imported, no regression recorded) and that ran the series
  with the same versions as the baseline run. Averaging K runs' offsets divides the baseline's share of
  the run-to-run noise by sqrt(K); the run judged keeps its own, which no rule on one night can remove.
- Each figure is compared by an exact **permutation test** of the difference of the means (every split of
  the pooled jobs when there are at most ``EXACT_LIMIT`` of them, else ``ROUNDS`` seeded random ones),
  one-sided in the direction of the observed change, and by the ratio of the means current / baseline.
- **regressed** when *either* figure is worse with p < ``alpha`` and by more than ``min_effect`` (throughput
  ratio < 1 - min_effect, or median-latency ratio > 1 + min_effect); **improved** when either is better
  in the same sense and neither is worse; **unchanged** otherwise.
- **not enough repeats** when either side has fewer than ``min_repeats`` valid jobs, or so few that even
  the most extreme split cannot reach p < ``alpha`` (3 vs 3 jobs: p >= 1/20); **not comparable** when a
  side has no valid job or lacks the series.

Every verdict states the number of jobs on each side and the baseline runs it rests on. With the defaults
(alpha 0.05, min effect 3 %, 3 repeats, 5 baseline runs) the permutation test rules out what per-job noise
can explain, and the minimum effect is what keeps the run-to-run offset from failing a nightly. On synthetic
runs (3 repeats, 0.5 % per-job noise; ``tests/analysis/test_regress_stats.py``): with a run-to-run sd of
0.75 %, about 0.06 % of series-nights raise a false alarm and a 5 % slowdown is found on 99 % of nights;
with 1.5 %, 5 % false alarms and 90 % found, and ``min_effect`` 0.05 gives 0.2 % and 56 %. The run-to-run
sd of each series' baseline runs is reported (``run_to_run_sd``) to choose ``min_effect`` by.

**Emulated userlands** (:mod:`orchestrator.analysis.emulation`): a series measured on a board whose userland
was emulated on one side only is **not comparable** (the emulator's timings against a SoC's would make any
verdict); emulated on both sides it is judged as usual, its reason saying that its timings are not
performance figures (such a verdict checks the pipeline, not the SoC). The baseline pool and the history only
take runs that ran the series with the same emulation (or none) as the baseline run and this run.

Change points over the store's history use per-run figures (the mean per-job throughput of the series in
each run; CUSUM: the split that maximises the cumulative deviation from the mean, reported when the two
sides differ by more than ``min_effect``); they are information, not a verdict.

Verdicts are stored in the run folder as ``regress.json``; ``last-good`` is the latest earlier run whose
``regress.json`` records no regression (a run never judged counts as good; an imported run never does).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from itertools import combinations
from math import comb
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

import numpy as np
import pandas as pd

from orchestrator.analysis import series as S
from orchestrator.analysis.emulation import NOT_PERFORMANCE, emulation_column
from orchestrator.analysis.tables import read_columns
from orchestrator.errors import StoreError
from orchestrator.results.store import RunDir, Store

__all__ = ["RegressSettings", "SeriesVerdict", "permutation_p", "compare_jobs", "regress", "change_point",
           "last_good", "save_verdicts", "write_junit", "VERDICT_FILE"]

VERDICT_FILE = "regress.json"
EXACT_LIMIT = 50_000  # splits enumerated exactly up to this many (3 vs 15 jobs: 816)
ROUNDS = 20_000  # seeded random permutations beyond
RESULT_COLUMNS = list(dict.fromkeys(["job_id", *S.SOURCE_COLUMNS, "verdict", "throughput_ips", "latency_p50_ms",
                                     "emulated"]))


@dataclass(frozen=True)
class RegressSettings:
    """The rule's parameters (see the module doc); recorded in ``regress.json``."""

    alpha: float = 0.05
    min_effect: float = 0.03
    min_repeats: int = 3
    baseline_runs: int = 5


@dataclass
class SeriesVerdict:
    key: dict[str, str]  # COMPARE_KEYS -> value
    name: str  # board/component label/model label/dtype
    verdict: str  # improved | unchanged | regressed | not enough repeats | not comparable
    reason: str = ""
    labels: dict[str, str] = field(default_factory=dict)  # board, component, model, dtype (readable)
    n: int = 0  # valid jobs of this run
    n_baseline: int = 0  # valid jobs of the baseline runs together
    baseline_runs: list[str] = field(default_factory=list)
    throughput_ips: float | None = None  # mean of the per-job figures
    baseline_throughput_ips: float | None = None
    throughput_ratio: float | None = None
    throughput_p: float | None = None
    latency_ms: float | None = None  # mean of the per-job median latencies
    baseline_latency_ms: float | None = None
    latency_ratio: float | None = None
    latency_p: float | None = None
    version_change: str | None = None
    run_to_run_sd: float | None = None  # relative sd of the baseline runs' mean throughput (information)
    change_point: dict[str, Any] | None = None
    emulated: str | None = None  # what emulated the board's userland in this run (None: a real board)
    baseline_emulated: str | None = None  # ... in the baseline run


# -- statistics ----------------------------------------------------------------

def smallest_p(n: int, m: int) -> float:
    """The smallest one-sided permutation p that ``n`` vs ``m`` jobs can give."""
    return 1.0 / comb(n + m, n) if n and m else 1.0


@lru_cache(maxsize=32)
def _splits(total: int, k: int) -> np.ndarray:
    """Every choice of ``k`` of ``total`` indices, one per row (a nightly reuses a few shapes)."""
    idx = np.fromiter((i for c in combinations(range(total), k) for i in c), dtype=np.intp,
                      count=comb(total, k) * k).reshape(-1, k)
    idx.setflags(write=False)
    return idx


def permutation_p(cur, base, *, exact_limit: int = EXACT_LIMIT, rounds: int = ROUNDS, seed: int = 0) -> float:
    """One-sided permutation p-value of mean(cur) - mean(base), in the direction observed.

    Exact (every way of splitting the pooled values into groups of the two sizes) when there are at most
    ``exact_limit`` splits; otherwise ``rounds`` seeded random splits, p = (hits + 1) / (rounds + 1).
    """
    x = np.asarray(cur, dtype=float)
    y = np.asarray(base, dtype=float)
    z = np.concatenate([x, y])
    n, total = x.size, z.size
    if n == 0 or y.size == 0:
        return 1.0
    # mean(cur) - mean(base) grows with sum(cur) for fixed pooled values: compare group sums
    observed = x.sum()
    tol = 1e-9 * max(1.0, float(np.abs(z).sum()))
    down = x.mean() <= y.mean()
    k = min(n, total - n)
    splits = comb(total, k)
    if splits <= exact_limit:
        sums = z[_splits(total, k)].sum(axis=1)
        if k != n:  # enumerated the baseline side: the current side is the rest
            sums = z.sum() - sums
        hits = np.count_nonzero(sums <= observed + tol) if down else np.count_nonzero(sums >= observed - tol)
        return float(hits / splits)
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, rounds, 2000):
        size = min(2000, rounds - start)
        sums = rng.permuted(np.broadcast_to(z, (size, total)), axis=1)[:, :n].sum(axis=1)
        hits += np.count_nonzero(sums <= observed + tol) if down else np.count_nonzero(sums >= observed - tol)
    return float((hits + 1) / (rounds + 1))


def _finite(values) -> np.ndarray:
    a = np.asarray(values if values is not None else [], dtype=float)
    return a[np.isfinite(a)]


def _figure(cur: np.ndarray, base: np.ndarray, settings: RegressSettings, higher_is_better: bool) -> dict | None:
    """Means, ratio, p and the direction beyond the rule (``worse``/``better``/None) of one figure."""
    if min(cur.size, base.size) < settings.min_repeats or smallest_p(cur.size, base.size) >= settings.alpha:
        return None
    mean, bmean = float(cur.mean()), float(base.mean())
    ratio = mean / bmean
    p = permutation_p(cur, base)
    gain = ratio - 1 if higher_is_better else 1 - ratio  # > 0: better
    state = None
    if p < settings.alpha and abs(gain) > settings.min_effect:
        state = "better" if gain > 0 else "worse"
    return {"mean": mean, "base": bmean, "ratio": ratio, "p": p, "state": state}


def _pct(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f} %"


def compare_jobs(cur_throughput, base_throughput, cur_latency=None, base_latency=None, *,
                 settings: RegressSettings = RegressSettings(), runs: int | None = None) -> dict[str, Any]:
    """Verdict fields for one series from its per-job figures (see the module doc for the rule).

    ``cur_throughput``/``base_throughput``: one value per valid job (images/s); ``cur_latency``/
    ``base_latency``: the jobs' median latencies (ms), optional; ``runs``: how many runs the baseline jobs
    come from (named in the reason).
    """
    tp_cur, tp_base = _finite(cur_throughput), _finite(base_throughput)
    lat_cur, lat_base = _finite(cur_latency), _finite(base_latency)
    n, m = int(tp_cur.size), int(tp_base.size)
    out: dict[str, Any] = {"n": n, "n_baseline": m}
    jobs = f"{n} vs {m} jobs" + (f" ({runs} baseline run{'s' if runs != 1 else ''})" if runs else "")
    if n == 0 or m == 0:
        return {**out, "verdict": "not comparable",
                "reason": f"no valid job in {'this run' if n == 0 else 'the baseline'}"}
    if min(n, m) < settings.min_repeats or smallest_p(n, m) >= settings.alpha:
        why = (f"need at least {settings.min_repeats} on each side" if min(n, m) < settings.min_repeats else
               f"no split of so few jobs reaches p < {settings.alpha:g} (smallest p {smallest_p(n, m):.2g})")
        mean, bmean = float(tp_cur.mean()), float(tp_base.mean())  # information, not judged
        return {**out, "verdict": "not enough repeats", "throughput_ips": mean, "baseline_throughput_ips": bmean,
                "throughput_ratio": mean / bmean,
                "reason": f"{jobs}: {why}; throughput {_pct(mean / bmean)} (not judged)"}
    tp = _figure(tp_cur, tp_base, settings, higher_is_better=True)
    lat = _figure(lat_cur, lat_base, settings, higher_is_better=False)
    out.update(throughput_ips=tp["mean"], baseline_throughput_ips=tp["base"], throughput_ratio=tp["ratio"],
               throughput_p=tp["p"])
    parts = [f"throughput {_pct(tp['ratio'])} (p={tp['p']:.2g})"]
    if lat:
        out.update(latency_ms=lat["mean"], baseline_latency_ms=lat["base"], latency_ratio=lat["ratio"],
                   latency_p=lat["p"])
        parts.append(f"median latency {_pct(lat['ratio'])} (p={lat['p']:.2g})")
    elif lat_cur.size or lat_base.size:
        parts.append(f"median latency not judged ({lat_cur.size} vs {lat_base.size} jobs)")
    states = {f["state"] for f in (tp, lat) if f}
    verdict = "regressed" if "worse" in states else "improved" if "better" in states else "unchanged"
    tail = jobs if verdict != "unchanged" else (
        f"{jobs}; min effect {settings.min_effect * 100:g} %, alpha {settings.alpha:g}")
    return {**out, "verdict": verdict, "reason": ", ".join(parts) + "; " + tail}


def change_point(values: list[float], min_effect: float = 0.03) -> dict[str, Any] | None:
    """CUSUM split of a history of per-run figures: index of the first value after the change, or None."""
    x = np.asarray(values, dtype=float)
    if x.size < 3 or not np.all(np.isfinite(x)):
        return None
    s = np.cumsum(x - x.mean())
    k = int(np.argmax(np.abs(s[:-1]))) + 1  # split between k-1 and k
    before, after = x[:k].mean(), x[k:].mean()
    shift = after / before - 1
    if abs(shift) <= min_effect:
        return None
    return {"index": k, "before": float(before), "after": float(after), "shift": float(shift)}


# -- runs ----------------------------------------------------------------------

def _imported(run: RunDir) -> bool:
    meta = run.meta
    return meta.get("experiment") == "import" or bool(meta.get("imported"))


def _recorded_regression(run: RunDir) -> bool:
    f = run.path / VERDICT_FILE
    if not f.exists():
        return False
    try:
        return bool(json.loads(f.read_text()).get("regressed", 0))
    except (OSError, json.JSONDecodeError) as exc:
        raise StoreError(f"{f}: unreadable verdicts ({exc})") from None


def _jobs(run: RunDir) -> pd.DataFrame:
    """The run's jobs: series keys, a ``key`` tuple, ``throughput`` and ``latency`` (per-job median); both
    figures NaN for a job that is not VALID (its series still exists, with no valid job)."""
    res = S.with_series(read_columns(run, "results", RESULT_COLUMNS))
    res["key"] = list(zip(*(res[k] for k in S.COMPARE_KEYS))) if len(res) else []
    res["emulated"] = emulation_column(res)  # "" for a real board and for rows stored before the column
    valid = res["verdict"] == "VALID"
    res["throughput"] = pd.to_numeric(res["throughput_ips"], errors="coerce").where(valid)
    res["latency"] = pd.to_numeric(res["latency_p50_ms"], errors="coerce").where(valid)
    missing = valid & res["latency"].isna()
    if missing.any():  # older or partial rows: the median of the job's own latencies
        lat = read_columns(run, "latencies", ["job_id", "latency_ms"], categorical=["job_id"])
        if len(lat):
            medians = lat.groupby("job_id", observed=True)["latency_ms"].median()
            res.loc[missing, "latency"] = res.loc[missing, "job_id"].map(medians).astype(float)
    return res


def _emulation(jobs: pd.DataFrame) -> str:
    """What emulated the userland of a series' jobs in one run (``""``: a real board; one board has one
    emulation per run: the largest text, as :func:`_history` takes it per group)."""
    return str(jobs["emulated"].max()) if len(jobs) else ""


def _emulation_note(cur: str, base: str) -> str | None:
    """Why a series is not comparable (one side emulated), or what its reason adds (both emulated); None: neither."""
    if bool(cur) != bool(base):
        this, other = ("this run", "the baseline") if cur else ("the baseline", "this run")
        return (f"emulated userland ({cur or base}) in {this}, a real board in {other}: an emulator's timings "
                "are not compared with a SoC's")
    if cur:
        change = f" -> {cur}" if base != cur else ""
        return f"emulated userland ({base if change else cur}{change}): {NOT_PERFORMANCE}"
    return None


def _run_to_run_sd(runs: list[pd.Series]) -> float | None:
    means = np.array([np.nanmean(r) for r in runs if np.isfinite(r).any()], dtype=float)
    return float(np.std(means, ddof=1) / np.mean(means)) if means.size >= 3 else None


def _versions(jobs: pd.DataFrame) -> dict[str, tuple[str, ...]]:
    return {k: tuple(sorted(set(jobs[k]) - {""})) for k in S.VERSION_KEYS}


def _version_change(cur: dict[str, tuple], base: dict[str, tuple]) -> str | None:
    parts = [f"{key.split('_')[0]} {', '.join(base[key]) or '?'} -> {', '.join(cur[key]) or '?'}"
             for key in S.VERSION_KEYS if cur[key] != base[key]]
    return "; ".join(parts) or None


class _Runs:
    """Each run's jobs read once (the pool and the history read the same runs)."""

    def __init__(self, store: Store):
        self.store = store
        self._jobs: dict[str, pd.DataFrame | None] = {}
        self._measured: list[RunDir] | None = None

    def jobs(self, run: RunDir, strict: bool = True) -> pd.DataFrame | None:
        if run.run_id not in self._jobs:
            try:
                self._jobs[run.run_id] = _jobs(run)
            except StoreError:
                if strict:
                    raise
                self._jobs[run.run_id] = None
        return self._jobs[run.run_id]

    def earlier(self, before: str, exclude: str) -> list[RunDir]:
        """Runs before ``before`` (but ``exclude``), newest first, that are not imported."""
        if self._measured is None:
            runs = (self.store.open_run(r) for r in reversed(self.store.run_ids()))
            self._measured = [r for r in runs if not _imported(r)]
        return [r for r in self._measured if r.run_id < before and r.run_id != exclude]


def _pool(runs: _Runs, run: RunDir, baseline: RunDir, base: pd.DataFrame, keys: list[tuple],
          size: int) -> dict[tuple, list[tuple[str, pd.DataFrame]]]:
    """Per series: [(run id, its jobs)] of the baseline run and up to ``size - 1`` earlier good runs."""
    pool = {k: [(baseline.run_id, g)] for k, g in base.groupby("key", sort=False) if k in keys}
    if size <= 1:
        return pool
    for earlier in runs.earlier(baseline.run_id, run.run_id):
        if all(len(v) >= size for v in pool.values()):
            break
        if _recorded_regression(earlier):
            continue
        jobs = runs.jobs(earlier, strict=False)
        if jobs is None or jobs.empty:
            continue
        for k, g in jobs.groupby("key", sort=False):
            if (k in pool and len(pool[k]) < size and g["throughput"].notna().any()
                    and _versions(g) == _versions(pool[k][0][1]) and _emulation(g) == _emulation(pool[k][0][1])):
                pool[k].append((earlier.run_id, g))
    return pool


def _history(runs: _Runs, run: RunDir, cur: pd.DataFrame, keys: list[tuple],
             emulation: dict[tuple, str]) -> dict[tuple, tuple[list, list]]:
    """Per series: run ids (oldest first, up to ``run``) and the mean per-job throughput in each (of the runs
    that ran it with the series' ``emulation``: an emulated history says nothing of a real board's)."""
    hist: dict[tuple, tuple[list[str], list[float]]] = {k: ([], []) for k in keys}
    for rd in reversed(runs.earlier(run.run_id, run.run_id)):
        jobs = runs.jobs(rd, strict=False)
        if jobs is None:
            continue
        per_run = jobs.groupby("key", sort=False).agg(value=("throughput", "mean"), emulated=("emulated", "max"))
        for k, value, emulated in zip(per_run.index, per_run["value"], per_run["emulated"]):
            if k in hist and np.isfinite(value) and emulated == emulation.get(k, ""):
                hist[k][0].append(rd.run_id)
                hist[k][1].append(float(value))
    for k, value in cur.groupby("key", sort=False)["throughput"].mean().items():
        if k in hist and np.isfinite(value):
            hist[k][0].append(run.run_id)
            hist[k][1].append(float(value))
    return hist


def _labels(keys: list[tuple]) -> dict[tuple, dict[str, str]]:
    """Readable labels of the compared series, one frame for all (versions left out: a name that stays the
    same across an upgrade keeps its history in a CI's test report)."""
    table = pd.DataFrame([dict(zip(S.COMPARE_KEYS, k)) for k in keys], columns=S.COMPARE_KEYS)
    for col in S.VERSION_KEYS:
        table[col] = ""
    table = S.with_labels(table)
    names = S.series_names(table)
    out = {}
    for i, k in enumerate(keys):
        row = table.iloc[i]
        out[k] = {"name": names.iloc[i], "board": row["board"], "component": row["component_label"],
                  "model": row["model_label"], "dtype": row["dtype"]}
    return out


def regress(store: Store, run: RunDir, baseline: RunDir, *, alpha: float = RegressSettings.alpha,
            min_effect: float = RegressSettings.min_effect, min_repeats: int = RegressSettings.min_repeats,
            baseline_runs: int = RegressSettings.baseline_runs, history: bool = True) -> list[SeriesVerdict]:
    """One verdict per series present in ``run`` or ``baseline`` (see the module doc for the rule)."""
    settings = RegressSettings(alpha=alpha, min_effect=min_effect, min_repeats=min_repeats,
                               baseline_runs=baseline_runs)
    runs = _Runs(store)
    cur = runs.jobs(run)
    base = runs.jobs(baseline)
    keys = list(dict.fromkeys(list(cur["key"]) + list(base["key"])))
    pool = _pool(runs, run, baseline, base, keys, max(1, baseline_runs))
    cur_groups = {k: g for k, g in cur.groupby("key", sort=False)}
    emulation = {k: _emulation(cur_groups[k] if k in cur_groups else pool[k][0][1]) for k in keys}
    hist = _history(runs, run, cur, keys, emulation) if history else {}
    labels = _labels(keys)
    verdicts = []
    for k in keys:
        lab = dict(labels[k])
        v = SeriesVerdict(key=dict(zip(S.COMPARE_KEYS, k)), name=lab.pop("name"), verdict="not comparable",
                          labels=lab)
        c_emu = _emulation(cur_groups[k]) if k in cur_groups else ""
        b_emu = _emulation(pool[k][0][1]) if k in pool else ""
        v.emulated, v.baseline_emulated = c_emu or None, b_emu or None
        note = _emulation_note(c_emu, b_emu)
        if k not in cur_groups or k not in pool:
            v.reason = f"series missing in {'the baseline' if k not in pool else 'this run'}"
            if c_emu or b_emu:
                v.reason += f"; emulated userland ({c_emu or b_emu}): {NOT_PERFORMANCE}"
        elif bool(c_emu) != bool(b_emu):
            v.reason = note
            v.baseline_runs = [rid for rid, _ in pool[k]]
        else:
            c = cur_groups[k]
            b = pd.concat([g for _, g in pool[k]])
            v.baseline_runs = [rid for rid, _ in pool[k]]
            for name, value in compare_jobs(c["throughput"], b["throughput"], c["latency"], b["latency"],
                                            settings=settings, runs=len(v.baseline_runs)).items():
                setattr(v, name, value)
            v.run_to_run_sd = _run_to_run_sd([g["throughput"] for _, g in pool[k]])
            v.version_change = _version_change(_versions(c), _versions(pool[k][0][1]))
            if v.version_change:
                v.reason += f"; {v.version_change}"
            if note:
                v.reason += f"; {note}"
        if k in hist:
            ids, values = hist[k]
            cp = change_point(values, min_effect)
            if cp:
                cp.update(run_id=ids[cp["index"]], metric="throughput_ips")
                v.change_point = cp
        verdicts.append(v)
    return verdicts


def save_verdicts(run: RunDir, baseline_id: str, verdicts: list[SeriesVerdict],
                  settings: RegressSettings | float | None = None) -> Path:
    """Write ``regress.json``. ``settings``: the rule's parameters (a bare number is the minimum effect, the
    other parameters at their defaults)."""
    if settings is None:
        settings = RegressSettings()
    elif not isinstance(settings, RegressSettings):
        settings = RegressSettings(min_effect=float(settings))
    path = run.path / VERDICT_FILE
    data = {"run_id": run.run_id, "baseline": baseline_id, "settings": asdict(settings),
            "min_effect": settings.min_effect,
            "regressed": sum(v.verdict == "regressed" for v in verdicts),
            "series": [asdict(v) for v in verdicts]}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def last_good(store: Store, run_id: str) -> str:
    """The latest run before ``run_id`` with no regression recorded (StoreError when there is none)."""
    for rid in reversed([r for r in store.run_ids() if r < run_id]):
        rd = store.open_run(rid)
        if _imported(rd) or _recorded_regression(rd):
            continue
        return rid
    raise StoreError(f"no earlier run without a recorded regression before {run_id!r} in {store.root}")


def write_junit(path: Path, run_id: str, baseline_id: str, verdicts: list[SeriesVerdict]) -> Path:
    """One testcase per series: regressed fails; not comparable / not enough repeats are skipped."""
    fails = sum(v.verdict == "regressed" for v in verdicts)
    skipped = sum(v.verdict in ("not comparable", "not enough repeats") for v in verdicts)
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             f'<testsuite name={quoteattr(f"regress {run_id} vs {baseline_id}")} tests="{len(verdicts)}" '
             f'failures="{fails}" errors="0" skipped="{skipped}">']
    for v in verdicts:
        lab = {k: v.labels.get(k, "") for k in ("board", "component", "model", "dtype")}
        classname, name = f"{lab['board']}.{lab['component']}", f"{lab['model']}-{lab['dtype']}"
        head = f"  <testcase classname={quoteattr(classname)} name={quoteattr(name)}"
        if v.verdict == "regressed":
            lines += [head + ">", f"    <failure message={quoteattr(v.reason)}/>", "  </testcase>"]
        elif v.verdict in ("not comparable", "not enough repeats"):
            lines += [head + ">", f"    <skipped message={quoteattr(f'{v.verdict}: {v.reason}')}/>",
                      "  </testcase>"]
        else:
            lines += [head + ">", f"    <system-out>{xml_escape(f'{v.verdict}: {v.reason}')}</system-out>",
                      "  </testcase>"]
    lines.append("</testsuite>")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Path(path)

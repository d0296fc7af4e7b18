"""Nightly regression verdicts: per-inference latency of a run against a baseline run.

A series is (board, component, model, dtype); its samples are the per-inference
latencies of the run's VALID jobs. For each series present in both runs:

- **not comparable** when either side has no valid samples (missing series,
  invalid run) or the runtime version differs;
- else Mann-Whitney U (two-sided) on the two samples, and the ratio of medians
  current / baseline with a seeded bootstrap 95 % CI (information);
- **regressed** when p < ``alpha`` and the median ratio > 1 + ``min_effect``;
  **improved** when p < ``alpha`` and the ratio < 1 - ``min_effect``;
  **unchanged** otherwise (a significant but tiny shift is not a regression).

Change points over the store's history of per-run medians (CUSUM: the split
that maximises the cumulative deviation from the mean, reported when the two
sides differ by more than ``min_effect``) are extra information only.

Verdicts are stored in the run folder as ``regress.json``; ``last-good`` is
the latest earlier run whose ``regress.json`` records no regression (a run
never judged counts as good; an imported run, without latencies, never does).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

from orchestrator.analysis.tables import read_columns
from orchestrator.errors import StoreError
from orchestrator.results.store import RunDir, Store

__all__ = ["SeriesVerdict", "compare_samples", "regress", "change_point", "last_good", "write_junit",
           "VERDICT_FILE"]

SERIES = ["board", "component", "model", "dtype"]
VERDICT_FILE = "regress.json"
MAX_SAMPLES = 20000  # per side for the bootstrap


@dataclass
class SeriesVerdict:
    board: str
    component: str
    model: str
    dtype: str
    verdict: str  # improved | unchanged | regressed | not comparable
    reason: str = ""
    n: int = 0
    n_baseline: int = 0
    median_ms: float | None = None
    baseline_median_ms: float | None = None
    ratio: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    change_point: dict[str, Any] | None = field(default=None)

    @property
    def name(self) -> str:
        return f"{self.board}/{self.component}/{self.model}/{self.dtype}"


def _bootstrap_ratio_ci(cur: np.ndarray, base: np.ndarray, rounds: int = 400, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    cur = cur if cur.size <= MAX_SAMPLES else rng.choice(cur, MAX_SAMPLES, replace=False)
    base = base if base.size <= MAX_SAMPLES else rng.choice(base, MAX_SAMPLES, replace=False)
    ratios = np.empty(rounds)
    for i in range(rounds):
        ratios[i] = np.median(rng.choice(cur, cur.size)) / np.median(rng.choice(base, base.size))
    return float(np.quantile(ratios, 0.025)), float(np.quantile(ratios, 0.975))


def compare_samples(cur, base, *, min_effect: float = 0.03, alpha: float = 0.01) -> dict[str, Any]:
    """Verdict fields for two latency samples (ms); see the module doc for the rule."""
    cur = np.asarray(cur, dtype=float)
    base = np.asarray(base, dtype=float)
    cur, base = cur[np.isfinite(cur)], base[np.isfinite(base)]
    out: dict[str, Any] = {"n": int(cur.size), "n_baseline": int(base.size)}
    if cur.size < 2 or base.size < 2:
        return {**out, "verdict": "not comparable", "reason": "fewer than 2 samples on one side"}
    med, bmed = float(np.median(cur)), float(np.median(base))
    ratio = med / bmed
    p = float(mannwhitneyu(cur, base, alternative="two-sided").pvalue)
    lo, hi = _bootstrap_ratio_ci(cur, base)
    if p < alpha and ratio > 1 + min_effect:
        verdict, reason = "regressed", f"median latency +{(ratio - 1) * 100:.1f} % (p={p:.2g})"
    elif p < alpha and ratio < 1 - min_effect:
        verdict, reason = "improved", f"median latency {(ratio - 1) * 100:.1f} % (p={p:.2g})"
    else:
        verdict = "unchanged"
        reason = f"median latency {(ratio - 1) * 100:+.1f} %, p={p:.2g} (min effect {min_effect * 100:.0f} %)"
    return {**out, "verdict": verdict, "reason": reason, "median_ms": med, "baseline_median_ms": bmed,
            "ratio": ratio, "ci_low": lo, "ci_high": hi, "p_value": p}


def change_point(values: list[float], min_effect: float = 0.03) -> dict[str, Any] | None:
    """CUSUM split of a history of per-run medians: index of the first value after the change, or None."""
    x = np.asarray(values, dtype=float)
    if x.size < 3 or not np.all(np.isfinite(x)):
        return None
    s = np.cumsum(x - x.mean())
    k = int(np.argmax(np.abs(s[:-1]))) + 1  # split between k-1 and k
    before, after = x[:k].mean(), x[k:].mean()
    shift = after / before - 1
    if abs(shift) <= min_effect:
        return None
    return {"index": k, "before_ms": float(before), "after_ms": float(after), "shift": float(shift)}


def _series_samples(run: RunDir) -> tuple[dict[tuple, np.ndarray], dict[tuple, set[str]], pd.DataFrame]:
    res = read_columns(run, "results", ["job_id"] + SERIES + ["verdict", "runtime_version"])
    lat = read_columns(run, "latencies", ["job_id", "latency_ms"])
    valid = res[res["verdict"] == "VALID"]
    merged = lat.merge(valid[["job_id"] + SERIES], on="job_id")
    samples = {k: g["latency_ms"].to_numpy() for k, g in merged.groupby(SERIES, sort=False)}
    versions = {k: set(g["runtime_version"].dropna()) for k, g in res.groupby(SERIES, sort=False)}
    return samples, versions, res


def _history(store: Store, run_id: str, keys: list[tuple]) -> dict[tuple, tuple[list[str], list[float]]]:
    hist: dict[tuple, tuple[list[str], list[float]]] = {k: ([], []) for k in keys}
    for rid in store.run_ids():
        if rid > run_id:
            continue
        try:
            samples, _, _ = _series_samples(store.open_run(rid))
        except StoreError:
            continue
        for k in keys:
            if k in samples and samples[k].size:
                hist[k][0].append(rid)
                hist[k][1].append(float(np.median(samples[k])))
    return hist


def regress(store: Store, run: RunDir, baseline: RunDir, *, min_effect: float = 0.03, alpha: float = 0.01,
            history: bool = True) -> list[SeriesVerdict]:
    cur, cur_ver, _ = _series_samples(run)
    base, base_ver, _ = _series_samples(baseline)
    keys = list(dict.fromkeys(list(cur_ver) + list(base_ver)))
    hist = _history(store, run.run_id, keys) if history else {}
    verdicts = []
    for k in keys:
        v = SeriesVerdict(*k, verdict="not comparable")
        if k not in cur_ver or k not in base_ver:
            v.reason = f"series missing in {'the baseline' if k not in base_ver else 'this run'}"
        elif cur_ver[k] != base_ver[k]:
            v.reason = (f"runtime version differs: {', '.join(sorted(cur_ver[k]))} vs "
                        f"{', '.join(sorted(base_ver[k]))}")
        elif k not in cur or k not in base:
            v.reason = f"no valid job in {'this run' if k not in cur else 'the baseline'}"
        else:
            for name, value in compare_samples(cur[k], base[k], min_effect=min_effect, alpha=alpha).items():
                setattr(v, name, value)
        if k in hist:
            ids, medians = hist[k]
            cp = change_point(medians, min_effect)
            if cp:
                cp["run_id"] = ids[cp["index"]]
                v.change_point = cp
        verdicts.append(v)
    return verdicts


def save_verdicts(run: RunDir, baseline_id: str, verdicts: list[SeriesVerdict], min_effect: float) -> Path:
    path = run.path / VERDICT_FILE
    data = {"run_id": run.run_id, "baseline": baseline_id, "min_effect": min_effect,
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
        meta = rd.meta
        if meta.get("experiment") == "import" or meta.get("imported"):
            continue
        f = rd.path / VERDICT_FILE
        if f.exists():
            try:
                if json.loads(f.read_text()).get("regressed", 0):
                    continue
            except (OSError, json.JSONDecodeError) as exc:
                raise StoreError(f"{f}: unreadable verdicts ({exc})") from None
        return rid
    raise StoreError(f"no earlier run without a recorded regression before {run_id!r} in {store.root}")


def write_junit(path: Path, run_id: str, baseline_id: str, verdicts: list[SeriesVerdict]) -> Path:
    fails = sum(v.verdict == "regressed" for v in verdicts)
    skipped = sum(v.verdict == "not comparable" for v in verdicts)
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             f'<testsuite name={quoteattr(f"regress {run_id} vs {baseline_id}")} tests="{len(verdicts)}" '
             f'failures="{fails}" errors="0" skipped="{skipped}">']
    for v in verdicts:
        head = f'  <testcase classname={quoteattr(f"{v.board}.{v.component}")} name={quoteattr(f"{v.model}-{v.dtype}")}'
        if v.verdict == "regressed":
            lines += [head + ">", f"    <failure message={quoteattr(v.reason)}/>", "  </testcase>"]
        elif v.verdict == "not comparable":
            lines += [head + ">", f"    <skipped message={quoteattr('not comparable: ' + v.reason)}/>",
                      "  </testcase>"]
        else:
            lines += [head + ">", f"    <system-out>{xml_escape(f'{v.verdict}: {v.reason}')}</system-out>",
                      "  </testcase>"]
    lines.append("</testsuite>")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Path(path)

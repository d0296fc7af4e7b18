"""What a lab engineer should do about a run: findings read from its stored figures, each with the fix.

Every finding names the series or jobs it is about and one concrete action. It is computed from what the
analysis already has (no new measurement), so the same run always gives the same advice:

- ``thermal``: jobs made INVALID by throttling; jobs that started hot or reached a zone's trip region;
- ``repeats``: series with fewer VALID repeats than a regression verdict needs;
- ``frequency``: components measured with their frequency untouched (the governor decides: not comparable
  across boards or runs) while others of the run were pinned;
- ``coexec``: co-execution series without isolated measurements of the same setting (no gain figure);
- ``energy``: idle power that drifted between the start and the end of a board's share; simulated power;
- ``emulated``: boards whose userland was emulated (their timings are the emulator's);
- ``invalid``: the most frequent reasons jobs were INVALID.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from orchestrator.analysis.emulation import emulated_boards
from orchestrator.analysis.regress import RegressSettings
from orchestrator.analysis.series import keyed

__all__ = ["Advice", "advise", "HOT_START_C", "HOT_MAX_C", "MIN_REPEATS"]

HOT_START_C = 60.0  # a window that starts above this was not measured on a cool board
HOT_MAX_C = 80.0  # near the trip points of both SoCs' first thermal stage
MIN_REPEATS = RegressSettings.min_repeats  # fewer and a regression check says "not enough repeats"


@dataclass(frozen=True)
class Advice:
    topic: str  # thermal | repeats | frequency | coexec | energy | emulated | invalid
    severity: str  # warning (figures are affected) | note (worth knowing)
    text: str


def _names(table: pd.DataFrame, limit: int = 4) -> str:
    t = keyed(table)
    names = list(dict.fromkeys(t["board"] + "/" + t["component_label"] + " " + t["model_label"] + " " + t["dtype"]))
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _reasons(results: pd.DataFrame) -> pd.Series:
    """Each row's reasons as a list (a missing column or a null is no reason)."""
    if "reasons" not in results.columns:
        return pd.Series([[]] * len(results), index=results.index, dtype=object)
    return results["reasons"].map(lambda r: [str(x) for x in r] if isinstance(r, (list, tuple, np.ndarray)) else [])


def _thermal(results: pd.DataFrame) -> list[Advice]:
    out = []
    throttled = results[_reasons(results).map(lambda r: any("thrott" in x for x in r))]
    if len(throttled):
        boards = ", ".join(sorted(set(throttled["board"])))
        out.append(Advice("thermal", "warning",
                          f"{len(throttled)} job(s) were throttled and are INVALID (boards: {boards}): lower "
                          "`cooldown_c` in the inventory so jobs start cooler, add a fan, or pin a frequency the "
                          "board sustains."))
    if "temp_start_c" in results.columns:
        hot = results[pd.to_numeric(results["temp_start_c"], errors="coerce") > HOT_START_C]
        if len(hot):
            out.append(Advice("thermal", "warning",
                              f"{len(hot)} job(s) started above {HOT_START_C:.0f} °C ({_names(hot)}): their "
                              "figures depend on job order; set `cooldown_c` below that in the inventory."))
    if "temp_max_c" in results.columns:
        peak = results[pd.to_numeric(results["temp_max_c"], errors="coerce") > HOT_MAX_C]
        if len(peak):
            out.append(Advice("thermal", "note",
                              f"{len(peak)} job(s) reached {HOT_MAX_C:.0f} °C ({_names(peak)}): close to "
                              "throttling; shorter windows (`max_duration_s`) or a cooler board keep them valid."))
    return out


def _repeats(table: pd.DataFrame) -> list[Advice]:
    valid = table["jobs"] - table["invalid"]
    few = table[valid < MIN_REPEATS]
    if few.empty:
        return []
    return [Advice("repeats", "note",
                   f"{len(few)} series have fewer than {MIN_REPEATS} VALID repeats ({_names(few)}): a "
                   f"regression check against them says \"not enough repeats\"; set `repeats: {MIN_REPEATS}` "
                   "in the experiments file for nightly runs.")]


def _frequency(table: pd.DataFrame) -> list[Advice]:
    untouched = table[(table["freq_setting"] == "") & (table["component_class"] != "npu")]
    if untouched.empty or (table["freq_setting"] != "").sum() == 0:
        return []
    return [Advice("frequency", "note",
                   f"{len(untouched)} series ran with the frequency as found ({_names(untouched)}) while others "
                   "of this run were pinned: their governor chose the clock, so they compare with nothing "
                   "pinned; add `frequencies: [max]` to their experiment.")]


def _coexec(coexec: pd.DataFrame) -> list[Advice]:
    if coexec.empty:
        return []
    missing = coexec[coexec["best_single"].isna()]
    if missing.empty:
        return []
    return [Advice("coexec", "note",
                   f"{len(missing)} co-execution series have no isolated measurement of every member at the same "
                   f"setting ({_names(missing)}): no gain figure; add the members as components of an "
                   "experiment with the same models, dtypes and frequencies.")]


def _energy(idle: pd.DataFrame, power_simulated: str) -> list[Advice]:
    out = []
    if not idle.empty and "drifted" in idle.columns and idle["drifted"].any():
        drifted = idle[idle["drifted"]]
        where = ", ".join(f"{r.board} {r.source}/{r.rail} ({r.drift_rel * 100:+.0f} %)" for r in drifted.itertuples())
        out.append(Advice("energy", "warning",
                          f"idle power drifted beyond 5 % during the run ({where}): active power is relative to "
                          "the idle at the start; check for background load or a warming board."))
    if power_simulated in ("all", "some"):
        out.append(Advice("energy", "note",
                          f"{'all' if power_simulated == 'all' else 'some'} power figures of this run are "
                          "simulated (a model, not an instrument): they show the pipeline, not the SoC."))
    return out


def _emulated(results: pd.DataFrame) -> list[Advice]:
    boards = emulated_boards(results)
    if not boards:
        return []
    emulations = "; ".join(dict.fromkeys(boards.values()))
    return [Advice("emulated", "note",
                   f"timings of board{'s' if len(boards) > 1 else ''} {', '.join(boards)} are from an emulated "
                   f"userland ({emulations}): not performance figures; throughput, latencies and every ratio made "
                   "of them show that the pipeline works, not how fast the SoC is: measure on the real boards for "
                   "figures.")]


def _invalid(results: pd.DataFrame) -> list[Advice]:
    bad = results[results["verdict"] != "VALID"]
    if bad.empty:
        return []
    counts: dict[str, int] = {}
    for reasons in _reasons(bad):
        for r in reasons:
            head = r.split(":")[0].split("(")[0].strip()
            counts[head] = counts.get(head, 0) + 1
    if not counts:
        return []
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:3]
    return [Advice("invalid", "warning",
                   f"{len(bad)} job(s) are not VALID; most frequent reasons: "
                   + "; ".join(f"{name} ({n})" for name, n in top) + ". The Jobs table lists each one.")]


def advise(results: pd.DataFrame, table: pd.DataFrame, coexec: pd.DataFrame, idle: pd.DataFrame,
           power_simulated: str) -> list[Advice]:
    """Findings of one run, warnings first."""
    found = (_thermal(results) + _invalid(results) + _energy(idle, power_simulated) + _emulated(results)
             + _frequency(table) + _repeats(table) + _coexec(coexec))
    return sorted(found, key=lambda a: a.severity != "warning")

"""The isolated throughputs a co-execution job's gains are computed against.

A member's isolated figure is the mean throughput of the run's VALID isolated jobs of the same series as the
member in the co-execution job: same board, component, model file (sha256), dtype and frequency setting (the
series of :mod:`orchestrator.analysis.series`; within one run the CPUs, threads and versions of a component are
fixed). It is read from the run's stored results when the board's share starts, so a resumed run keeps the
baselines measured before the interruption, and updated as isolated jobs finish.
"""

from __future__ import annotations

from collections import defaultdict

import pandas as pd

from orchestrator.analysis.tables import read_columns
from orchestrator.jobs import Job
from orchestrator.results.store import RunDir

__all__ = ["IsolatedBaselines"]

Key = tuple[str, str, str, str]


def _key(component: str, model_sha256: str, dtype: str, frequency: str | None) -> Key:
    return (component, model_sha256, dtype, frequency or "")


class IsolatedBaselines:
    def __init__(self) -> None:
        self._values: dict[Key, list[float]] = defaultdict(list)

    @classmethod
    def from_store(cls, run: RunDir, board: str) -> "IsolatedBaselines":
        """The VALID isolated jobs of ``board`` already stored in ``run``."""
        out = cls()
        res = read_columns(run, "results", ["board", "component", "model_sha256", "dtype", "freq_requested",
                                            "verdict", "throughput_ips", "coexec_members"])
        if res.empty:
            return out
        isolated = res["coexec_members"].map(lambda m: m is None or len(m) < 2)
        valid = res[(res["board"] == board) & (res["verdict"] == "VALID") & isolated & res["throughput_ips"].notna()]
        for rec in valid.itertuples(index=False):
            freq = None if pd.isna(rec.freq_requested) else str(rec.freq_requested)
            out._values[_key(rec.component, rec.model_sha256, rec.dtype, freq)].append(float(rec.throughput_ips))
        return out

    def add(self, job: Job, throughput_ips: float) -> None:
        """A VALID isolated job of this run finished."""
        self._values[_key(job.component, job.model_sha256, job.dtype, job.frequency)].append(float(throughput_ips))

    def for_job(self, job: Job) -> dict[str, float] | None:
        """Member name -> isolated images/s for a co-execution job, or None while a member has none."""
        out = {}
        for m in job.members:
            values = self._values.get(_key(m.name, job.model_sha256, job.dtype, job.frequency))
            if not values:
                return None
            out[m.name] = sum(values) / len(values)
        return out

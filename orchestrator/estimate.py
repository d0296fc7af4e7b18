"""How long a plan will take: per job from earlier runs' throughput where known, else its minimum."""

from __future__ import annotations

from collections import defaultdict

import pandas as pd

from orchestrator.jobs import Job
from orchestrator.results.store import Store

# Model load, provisioning round trips and result transfer per job (seconds).
JOB_OVERHEAD_S = 3.0


def known_throughput(store: Store) -> dict[tuple[str, str, str, str], float]:
    """Latest VALID images/s per (board, component, model, dtype) over the stored runs."""
    rates: dict[tuple[str, str, str, str], float] = {}
    for run in store.runs():
        try:
            df = run.read_table("results")
        except Exception:  # noqa: BLE001 - an unreadable old run only loses its estimate
            continue
        for row in df[df["verdict"] == "VALID"].itertuples():
            rates[(row.board, row.component, row.model, row.dtype)] = float(row.throughput_ips)
    return rates


def job_seconds(job: Job, rates: dict[tuple[str, str, str, str], float]) -> tuple[float, bool]:
    """Estimated seconds and whether history backed the estimate."""
    ips = rates.get((job.board, job.component, job.model, job.dtype))
    r = job.rules
    if not ips:
        return r.min_duration_s + JOB_OVERHEAD_S, False
    window = min(r.max_duration_s, max(r.min_duration_s, r.min_count / ips))
    return r.warmup_runs / ips + window + JOB_OVERHEAD_S, True


def estimate(jobs: list[Job], store: Store) -> pd.DataFrame:
    """Per board: jobs, estimated seconds, and how many estimates came from history."""
    rates = known_throughput(store)
    per: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0])
    for job in jobs:
        seconds, known = job_seconds(job, rates)
        acc = per[job.board]
        acc[0] += 1
        acc[1] += seconds
        acc[2] += int(known)
    return pd.DataFrame(
        [{"board": b, "jobs": n, "estimate_s": s, "from_history": k} for b, (n, s, k) in per.items()]
    )

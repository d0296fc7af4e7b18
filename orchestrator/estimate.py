"""How long a plan will take: per job from earlier runs' throughput where known, else its minimum; per
board, the measurements before its first job (idle power, memory bandwidth) and its start."""

from __future__ import annotations

from collections import defaultdict

import pandas as pd

from orchestrator.jobs import Job
from orchestrator.membw import cpu_components
from orchestrator.results.store import Store

# Per job beyond warm-up and window: request to the board's serving agent, model load, summary, trace
# fetch, storing (benchmarks/sweep_scaling.py: 0.16 s on one virtual board, 0.6 s with eight on two cores).
JOB_OVERHEAD_S = 0.6
# Per board before its jobs: health check, clock probe, starting the serving agent.
BOARD_START_S = 1.0
# The bandwidth microbenchmark per CPU component at 32 MiB per array (0.5 s on a virtual board).
MEMBW_S_PER_32MB = 0.5


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


def setup_seconds(jobs: list[Job], idle_s: float, membw_mb: float, idle_settle_s: float = 0.0) -> float:
    """One board's time outside its jobs: start, idle power before the first job and after the last (each
    after its settle period), bandwidth of each CPU component."""
    idle = 2 * (idle_settle_s + idle_s) if idle_s > 0 else 0.0
    return BOARD_START_S + idle + len(cpu_components(jobs)) * MEMBW_S_PER_32MB * membw_mb / 32.0


def estimate(jobs: list[Job], store: Store, idle_s: float = 0.0, membw_mb: float = 0.0,
             idle_settle_s: float = 0.0) -> pd.DataFrame:
    """Per board: jobs, estimated seconds (its setup, then its jobs), and how many job estimates came
    from history."""
    rates = known_throughput(store)
    per: dict[str, list[Job]] = defaultdict(list)
    for job in jobs:
        per[job.board].append(job)
    rows = []
    for board, board_jobs in per.items():
        seconds = [job_seconds(job, rates) for job in board_jobs]
        setup = setup_seconds(board_jobs, idle_s, membw_mb, idle_settle_s)
        rows.append({"board": board, "jobs": len(board_jobs), "setup_s": setup,
                     "estimate_s": setup + sum(s for s, _ in seconds),
                     "from_history": sum(int(known) for _, known in seconds)})
    return pd.DataFrame(rows)

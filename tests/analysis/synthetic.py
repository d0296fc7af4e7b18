"""Small synthetic runs written through the real Store, with known figures."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from orchestrator.results.schema import RESULTS, SCHEMA_VERSION
from orchestrator.results.store import RunDir, Store

FIXTURE_ZOO = Path(__file__).resolve().parents[1] / "fixtures" / "models"


def result_row(run_id: str, job_id: str, **over: Any) -> dict[str, Any]:
    row: dict[str, Any] = {name: None for name in RESULTS.names}
    row.update(schema_version=SCHEMA_VERSION, run_id=run_id, job_id=job_id, experiment="e", board="b1",
               soc="socA", hostname="h", arch="aarch64", component="big", component_class="big", cpus=[4, 5],
               threads=2, model="tiny_cnn", model_display="Tiny CNN", dtype="float32",
               model_file="tiny_cnn_float32.tflite", model_sha256="0" * 64, repeat=1, runtime_module="rt",
               runtime_version="2.3.0", agent_version="1.0.0", git_revision="abc", warmup_runs=1, min_count=10,
               min_duration_s=1.0, max_duration_s=10.0, window_start_mono_ns=10_000_000_000,
               window_end_mono_ns=12_000_000_000, count=200, duration_s=2.0, throughput_ips=100.0,
               latency_mean_ms=10.0, latency_p50_ms=10.0, latency_p90_ms=10.0, latency_p99_ms=10.0,
               latency_min_ms=10.0, latency_max_ms=10.0, verdict="VALID", reasons=[], trace_sha256="0" * 64,
               clock_offset_ns=0, clock_uncertainty_ns=500_000)
    row.update(over)
    return row


def boards_meta(peak: float | None = 10.0) -> dict[str, Any]:
    comp = {"name": "big", "class": "big", "cpus": [4, 5], "peak_gflops": peak}
    return {
        "b1": {"name": "b1", "soc": "socA", "components": [comp, {"name": "little", "class": "little", "cpus": [0]}]},
        "b2": {"name": "b2", "soc": "socB", "components": [{"name": "a73", "class": "big", "cpus": [4],
                                                           "peak_gflops": 20.0}]},
    }


def make_run(store: Store, run_id: str, rows: list[dict[str, Any]], *, latencies: dict[str, np.ndarray] | None = None,
             power: dict[str, pd.DataFrame] | None = None, idle: list[dict[str, Any]] | None = None,
             membw: list[dict[str, Any]] | None = None, meta: dict[str, Any] | None = None,
             zoo: Path | None = None) -> RunDir:
    if zoo is None:
        zoo = store.root.parent / "zoo"
        if not zoo.exists():
            shutil.copytree(FIXTURE_ZOO, zoo)
    run = store.create_run(run_id, {"created_wall": "2026-01-01T00:00:00Z", "git_revision": "abc",
                                    "experiments_file": "e.yaml", "inventory_file": "i.yml", "zoo_dir": str(zoo),
                                    "zoo_builder_hash": "f" * 64, "zoo_weights": "random, seed 0",
                                    "boards": boards_meta(), "status": "finished", **(meta or {})})
    for row in rows:
        jid = row["job_id"]
        run.write_table("results", jid, [row])
        if latencies and jid in latencies:
            lat = latencies[jid]
            run.write_table("latencies", jid, pd.DataFrame({
                "run_id": run_id, "job_id": jid, "index": np.arange(lat.size), "start_mono_ns": np.arange(lat.size),
                "end_mono_ns": np.arange(lat.size) + 1, "latency_ms": lat}))
        if power and jid in power:
            run.write_table("power", jid, power[jid].assign(run_id=run_id, job_id=jid))
    if idle:
        run.write_table("idle", "idle", [{"run_id": run_id, "duration_s": 5.0, "samples": 100, "phase": "start",
                                          "settle_s": 1.0, **i} for i in idle])
    if membw:
        run.write_table("membw", "membw", [{"run_id": run_id, **m} for m in membw])
    return run


def constant_power(t0_s: float, t1_s: float, watts: float, source: str = "meter", rail: str = "board",
                   step_s: float = 0.01) -> pd.DataFrame:
    t = np.arange(t0_s, t1_s + step_s / 2, step_s)
    return pd.DataFrame({"source": source, "rail": rail, "t_mono_s": t, "power_w": np.full(t.size, watts)})


# -- nightly runs with run-to-run noise (regression verdicts) --------------------

def noisy_jobs(rng: np.random.Generator, *, repeats: int = 3, run_sd: float = 0.0075, job_sd: float = 0.005,
               factor: float = 1.0, throughput: float = 100.0) -> tuple[np.ndarray, np.ndarray]:
    """Per-job throughput (images/s) and median latency (ms) of one run of one series.

    Runs differ as a whole (thermal state, background load): one speed offset per run (``run_sd``), then
    each job its own (``job_sd``); ``factor`` < 1 is a slowdown. The median latency follows the speed,
    with a little noise of its own.
    """
    speed = factor * (1 + rng.normal(0.0, run_sd)) * (1 + rng.normal(0.0, job_sd, repeats))
    latency = 1000.0 / (throughput * speed) * (1 + rng.normal(0.0, 0.002, repeats))
    return throughput * speed, latency


LITTLE = {"component": "little", "component_class": "little", "cpus": [0], "threads": 1}


def noisy_run(store: Store, run_id: str, rng: np.random.Generator, *, series: list[dict[str, Any]] | None = None,
              factors: list[float] | None = None, inferences: int = 0, **noise: Any) -> RunDir:
    """A run with :func:`noisy_jobs` figures for each of ``series`` (``result_row`` overrides; one default
    series when None), slowed by ``factors`` (one per series; 1.0 when None); ``inferences`` > 0 also writes
    that many per-inference latencies per job (2 % spread around the job's median). Job ids: ``s<series>-r<repeat>``."""
    rows, lat = [], {}
    series = series or [{}]
    for s_index, over in enumerate(series):
        factor = factors[s_index] if factors else 1.0
        tp, p50 = noisy_jobs(rng, factor=factor, **noise)
        for j in range(tp.size):
            jid = f"s{s_index}-r{j + 1}"
            rows.append(result_row(run_id, jid, repeat=j + 1, throughput_ips=float(tp[j]),
                                   latency_p50_ms=float(p50[j]), latency_mean_ms=float(p50[j]), **over))
            if inferences:
                lat[jid] = p50[j] * (1 + 0.02 * rng.standard_normal(inferences))
    return make_run(store, run_id, rows, latencies=lat or None)

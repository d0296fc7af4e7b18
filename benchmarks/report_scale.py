"""P5: report generation on a large synthetic store (1 M result rows, 100 M power samples).

    .venv/bin/python benchmarks/report_scale.py [--jobs 1000000] [--samples-per-job 100]
        [--latencies-per-job 10] [--keep DIR]

Builds the store with pyarrow in a temporary folder (checks the free disk
space first and scales down, with a note, when it is short), then runs
``orchestrator report`` on it in a child process and prints the wall time and
the child's peak RSS LAST. Targets: < 30 s and < 2 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator.results.schema import IDLE, LATENCIES, MEMBW, POWER, RESULTS, SCHEMA_VERSION  # noqa: E402, I001

BOARDS = [(f"b{i}", f"soc{i % 4}") for i in range(8)]
COMPONENTS = [("big", "big"), ("little", "little"), ("gpu", "gpu"), ("npu", "npu")]
MODELS = [f"m{i}" for i in range(5)]
DTYPES = ["float32", "int8"]
BYTES_PER_SAMPLE = 18  # measured on disk (two float64 columns + encoded strings), rounded up
JOBS_PER_FILE = 10_000


def _strings(values) -> pa.Array:
    return pa.array(values, type=pa.string())


def _const(value: str, n: int) -> pa.Array:
    return pa.DictionaryArray.from_arrays(np.zeros(n, dtype=np.int32), _strings([value])).cast(pa.string())


def build(root: Path, jobs: int, samples_per_job: int, latencies_per_job: int) -> str:
    run_id = "bench"
    run = root / run_id
    for sub in ("results", "latencies", "power", "idle", "membw", "inputs", "jobs"):
        (run / sub).mkdir(parents=True)
    series = [(b, s, c, cc, m, d) for b, s in BOARDS for c, cc in COMPONENTS for m in MODELS for d in DTYPES]
    boards = {b: {"name": b, "soc": s, "components": [{"name": c, "class": cc, "cpus": [0],
                                                       "peak_gflops": 10.0 if c != "npu" else None}
                                                      for c, cc in COMPONENTS]} for b, s in BOARDS}
    meta = {"run_id": run_id, "created_wall": "2026-01-01T00:00:00Z", "git_revision": "bench",
            "experiments_file": "bench", "inventory_file": "bench", "zoo_dir": str(REPO / "tests/fixtures/models"),
            "zoo_builder_hash": "0" * 64, "zoo_weights": "synthetic", "boards": boards, "status": "finished"}
    (run / "run.json").write_text(json.dumps(meta))
    rng = np.random.default_rng(0)
    for start in range(0, jobs, JOBS_PER_FILE):
        n = min(JOBS_PER_FILE, jobs - start)
        idx = np.arange(start, start + n)
        sidx = idx % len(series)
        cols = {name: np.array([series[i][k] for i in sidx[: len(series)]], dtype=object)
                for k, name in enumerate(("board", "soc", "component", "component_class", "model", "dtype"))}

        def col(name, cols=cols, n=n):  # the series cycle from this file's first job on
            return _strings(np.resize(cols[name], n))

        job_ids = _strings([f"j{i:08d}" for i in idx])
        t0 = idx * 5.0 + 10.0
        thr = 50.0 + 10 * rng.random(n)
        verdict = np.where(rng.random(n) < 0.01, "INVALID", "VALID")
        data = {name: pa.nulls(n, type=RESULTS.field(name).type) for name in RESULTS.names}
        data.update({
            "schema_version": pa.array(np.full(n, SCHEMA_VERSION, dtype=np.int16)),
            "run_id": _const(run_id, n), "job_id": job_ids, "experiment": _const("bench", n),
            "board": col("board"), "soc": col("soc"), "component": col("component"),
            "component_class": col("component_class"), "model": col("model"), "model_display": col("model"),
            "dtype": col("dtype"),
            "model_file": _strings(np.where(np.asarray(col("dtype").to_pylist()) == "int8",
                                            "tiny_cnn_int8.tflite", "tiny_cnn_float32.tflite")),
            "cpus": pa.array([[0]] * n, type=pa.list_(pa.int32())), "repeat": pa.array(idx // len(series),
                                                                                         type=pa.int32()),
            "runtime_module": _const("rt", n), "runtime_version": _const("2.3.0", n),
            "git_revision": _const("bench", n),
            "window_start_mono_ns": pa.array((t0 * 1e9).astype(np.int64)),
            "window_end_mono_ns": pa.array(((t0 + 2.0) * 1e9).astype(np.int64)),
            "count": pa.array((thr * 2).astype(np.int64)), "duration_s": pa.array(np.full(n, 2.0)),
            "throughput_ips": pa.array(thr), "verdict": _strings(verdict),
            "reasons": pa.array([[] if v == "VALID" else ["min_count not met"] for v in verdict],
                                type=pa.list_(pa.string())),
            "clock_uncertainty_ns": pa.array(np.full(n, 200_000, dtype=np.int64)),
            "meter_kind": _const("b2900", n), "meter_measures": _const("board_supply", n),
        })
        pq.write_table(pa.table(data, schema=RESULTS), run / "results" / f"part{start // JOBS_PER_FILE:05d}.parquet")
        # power: samples_per_job points from 0.5 s before to 0.5 s after each 2 s window
        m = n * samples_per_job
        rep = np.repeat(np.arange(n), samples_per_job)
        offs = np.tile(np.linspace(-0.5, 2.5, samples_per_job), n)
        power = pa.table({
            "run_id": _const(run_id, m),
            "job_id": pa.DictionaryArray.from_arrays(rep.astype(np.int32), job_ids).cast(pa.string()),
            "source": _const("meter", m), "rail": _const("board", m),
            "t_mono_s": pa.array(t0[rep] + offs), "power_w": pa.array(3.0 + rng.random(m)),
        }, schema=POWER)
        pq.write_table(power, run / "power" / f"part{start // JOBS_PER_FILE:05d}.parquet")
        if latencies_per_job:
            k = n * latencies_per_job
            rep = np.repeat(np.arange(n), latencies_per_job)
            lat = pa.table({
                "run_id": _const(run_id, k),
                "job_id": pa.DictionaryArray.from_arrays(rep.astype(np.int32), job_ids).cast(pa.string()),
                "index": pa.array(np.tile(np.arange(latencies_per_job), n).astype(np.int64)),
                "start_mono_ns": pa.array(np.zeros(k, dtype=np.int64)), "end_mono_ns": pa.array(np.zeros(k, dtype=np.int64)),
                "latency_ms": pa.array(1000.0 / thr[rep] * (1 + 0.05 * rng.random(k))),
            }, schema=LATENCIES)
            pq.write_table(lat, run / "latencies" / f"part{start // JOBS_PER_FILE:05d}.parquet")
    pq.write_table(pa.table({"run_id": [run_id] * len(BOARDS), "board": [b for b, _ in BOARDS],
                             "source": ["meter"] * len(BOARDS), "rail": ["board"] * len(BOARDS),
                             "phase": ["start"] * len(BOARDS), "settle_s": [1.0] * len(BOARDS),
                             "duration_s": [10.0] * len(BOARDS), "samples": [1000] * len(BOARDS),
                             "mean_power_w": [2.0] * len(BOARDS)}, schema=IDLE), run / "idle" / "idle.parquet")
    bw = [(b, c) for b, _ in BOARDS for c, _ in COMPONENTS if c != "gpu"]
    pq.write_table(pa.table({"run_id": [run_id] * len(bw), "board": [b for b, _ in bw],
                             "component": [c for _, c in bw], "kernel": ["triad"] * len(bw),
                             "gb_per_s": [5.0] * len(bw)}, schema=MEMBW), run / "membw" / "membw.parquet")
    return run_id


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=1_000_000)
    ap.add_argument("--samples-per-job", type=int, default=100)
    ap.add_argument("--latencies-per-job", type=int, default=10)
    ap.add_argument("--keep", type=Path, help="build the store here and keep it")
    args = ap.parse_args()

    tmp = args.keep or Path(tempfile.mkdtemp(prefix="socfarm-p5-"))
    tmp.mkdir(parents=True, exist_ok=True)
    need = args.jobs * (args.samples_per_job * BYTES_PER_SAMPLE + args.latencies_per_job * 12 + 400)
    free = shutil.disk_usage(tmp).free
    if need > 0.8 * free:
        factor = 0.8 * free / need
        args.jobs = max(JOBS_PER_FILE, int(args.jobs * factor) // JOBS_PER_FILE * JOBS_PER_FILE)
        print(f"note: ~{need / 1e9:.1f} GB needed but {free / 1e9:.1f} GB free in {tmp}: "
              f"scaled down to {args.jobs} jobs", flush=True)
    try:
        t = time.perf_counter()
        run_id = build(tmp / "runs", args.jobs, args.samples_per_job, args.latencies_per_job)
        size = sum(f.stat().st_size for f in (tmp / "runs").rglob("*") if f.is_file())
        print(f"store: {args.jobs:,} result rows, {args.jobs * args.samples_per_job:,} power samples, "
              f"{args.jobs * args.latencies_per_job:,} latency rows, {size / 1e9:.2f} GB on disk, "
              f"built in {time.perf_counter() - t:.1f} s", flush=True)
        load = os.getloadavg()[0]
        t = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "report", run_id, "--store",
                                 str(tmp / "runs"), "--reports", str(tmp / "reports")], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        stdout, stderr = proc.stdout.read(), proc.stderr.read()
        rc = os.waitstatus_to_exitcode(status)
        if rc != 0:
            print(stderr, file=sys.stderr)
            sys.exit(f"report failed with exit code {rc}")
        peak_gb = usage.ru_maxrss * 1024 / 1e9  # ru_maxrss is in KiB on Linux
        cpu_s = usage.ru_utime + usage.ru_stime
        print(stdout.strip())
        ok_t, ok_m = wall < 30, peak_gb < 2
        print(f"load average before: {load:.1f} on {os.cpu_count()} cores; report CPU time {cpu_s:.1f} s")
        print(f"P5 report generation: {wall:.1f} s (target < 30 s: {'met' if ok_t else 'MISSED'}), "
              f"peak RSS {peak_gb:.2f} GB (target < 2 GB: {'met' if ok_m else 'MISSED'})")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Reading a run with many jobs: one Parquet part per job per table (the write path) against the run compacted
into the store's dataset (one file per table per board), side by side on the same rows.

    .venv/bin/python benchmarks/store_compaction.py [--boards 16] [--jobs-per-board 100] [--latencies 200]
        [--samples 400] [--rounds 5]

Writes a run through ``RunDir.write_table`` as a sweep does (results, latencies and power parts per job;
synthetic rows: figures of this benchmark, not measurements), copies it to a second store and compacts the
copy board by board as a sweep does at the end of each board's share (timed: that is what compaction adds to
a board's share). Then, in alternating rounds so both see the same load on this shared machine, reads every
row of the three tables through ``RunDir.read_table`` (what the report and analysis read) and counts them
with DuckDB (staged parts: a glob over the run's folder; compacted: the Hive dataset). Warm page cache.
Prints the medians (wall and this process's CPU time: the CPU figure holds when other work loads the machine)
and, LAST, the read-time ratios per-job parts / compacted.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import duckdb  # noqa: E402
import pandas as pd  # noqa: E402

from orchestrator.results.schema import RESULTS, SCHEMA_VERSION  # noqa: E402
from orchestrator.results.store import RunDir, Store  # noqa: E402

TABLES = ("results", "latencies", "power")


def write_run(store: Store, boards: int, jobs_per_board: int, n_lat: int, n_power: int) -> RunDir:
    run = store.create_run("bench", {"note": "synthetic rows of benchmarks/store_compaction.py"})
    base = {name: None for name in RESULTS.names}
    for b in range(boards):
        for k in range(jobs_per_board):
            job = f"b{b:02d}-j{k:04d}"
            run.write_table("power", job, pd.DataFrame({
                "run_id": "bench", "job_id": job, "source": "meter", "rail": "board",
                "t_mono_s": [i * 1e-3 for i in range(n_power)],
                "power_w": [2.0 + (i % 7) * 0.1 for i in range(n_power)]}))
            run.write_table("latencies", job, pd.DataFrame({
                "run_id": "bench", "job_id": job, "index": range(n_lat), "start_mono_ns": range(n_lat),
                "end_mono_ns": range(1, n_lat + 1), "latency_ms": [1.0 + (i % 5) * 0.01 for i in range(n_lat)]}))
            run.write_table("results", job, [{
                **base, "schema_version": SCHEMA_VERSION, "run_id": "bench", "job_id": job, "board": f"b{b:02d}",
                "component": "cpu0", "cpus": [0], "model": "m", "dtype": "int8", "verdict": "VALID", "reasons": [],
                "count": n_lat, "throughput_ips": 100.0 + k, "power_simulated": True}])
    return run


def read_all(run: RunDir) -> int:
    return sum(len(run.read_table(t)) for t in TABLES)


def duck_count(globs: dict[str, str]) -> int:
    con = duckdb.connect()
    return sum(con.execute(f"SELECT count(*) FROM read_parquet('{g}', hive_partitioning = true)").fetchone()[0]
               for g in globs.values())


def cpu_s() -> float:
    """This process's CPU time (every thread: pyarrow's and DuckDB's pools too)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--boards", type=int, default=16)
    ap.add_argument("--jobs-per-board", type=int, default=100)
    ap.add_argument("--latencies", type=int, default=200, help="latency rows per job")
    ap.add_argument("--samples", type=int, default=400, help="power samples per job")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    jobs = args.boards * args.jobs_per_board
    tmp = Path(tempfile.mkdtemp(prefix="socfarm-compaction-"))
    try:
        t = time.perf_counter()
        staged = write_run(Store(tmp / "a" / "runs"), args.boards, args.jobs_per_board, args.latencies, args.samples)
        print(f"wrote {jobs} jobs ({args.boards} boards) as {3 * jobs} per-job parts in "
              f"{time.perf_counter() - t:.1f} s (synthetic rows)", flush=True)
        shutil.copytree(tmp / "a" / "runs" / "bench", tmp / "b" / "runs" / "bench")
        compacted = Store(tmp / "b" / "runs").open_run("bench")
        per_board, per_board_cpu = [], []
        for b in range(args.boards):
            t, c = time.perf_counter(), cpu_s()
            compacted.compact([f"b{b:02d}-j{k:04d}" for k in range(args.jobs_per_board)])
            per_board.append(time.perf_counter() - t)
            per_board_cpu.append(cpu_s() - c)
        compacted.compact()
        files = sum(len(compacted.table_files(t)) for t in TABLES)
        print(f"compaction at each board's end: median {statistics.median(per_board) * 1e3:.0f} ms per board, "
              f"{statistics.median(per_board) / args.jobs_per_board * 1e3:.1f} ms wall and "
              f"{statistics.median(per_board_cpu) / args.jobs_per_board * 1e3:.1f} ms CPU per job; "
              f"{files} files instead of {3 * jobs}", flush=True)
        staged_globs = {t: f"{staged.path}/{t}/*.parquet" for t in TABLES}
        dataset_globs = {t: f"{compacted.path.parent}/{t}/*/*/*.parquet" for t in TABLES}
        times: dict[str, list[float]] = {"parts": [], "compacted": [], "duck parts": [], "duck compacted": []}
        cpu: dict[str, list[float]] = {k: [] for k in times}
        expected = jobs * (1 + args.latencies + args.samples)
        for _ in range(args.rounds):
            for name, fn in (("parts", lambda: read_all(staged)), ("compacted", lambda: read_all(compacted)),
                             ("duck parts", lambda: duck_count(staged_globs)),
                             ("duck compacted", lambda: duck_count(dataset_globs))):
                t, c = time.perf_counter(), cpu_s()
                rows = fn()
                times[name].append(time.perf_counter() - t)
                cpu[name].append(cpu_s() - c)
                if rows != expected:
                    raise SystemExit(f"{name}: read {rows} rows, expected {expected}")
        med = {k: statistics.median(v) for k, v in times.items()}
        med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
        print(f"RunDir.read_table, 3 tables, {expected:,} rows: per-job parts {med['parts']:.2f} s, "
              f"compacted {med['compacted']:.2f} s (median of {args.rounds} alternating rounds; CPU "
              f"{med_cpu['parts']:.2f} s and {med_cpu['compacted']:.2f} s)")
        print(f"DuckDB count(*) of the 3 tables: per-job parts {med['duck parts']:.2f} s, "
              f"compacted {med['duck compacted']:.2f} s (CPU {med_cpu['duck parts']:.2f} s and "
              f"{med_cpu['duck compacted']:.2f} s)")
        ratio = {k: med[k] / med[k.replace("parts", "compacted")] for k in ("parts", "duck parts")}
        ratio_cpu = {k: med_cpu[k] / med_cpu[k.replace("parts", "compacted")] for k in ("parts", "duck parts")}
        print(f"read-time ratio per-job parts / compacted ({jobs} jobs): RunDir {ratio['parts']:.1f}x "
              f"(CPU {ratio_cpu['parts']:.1f}x), DuckDB {ratio['duck parts']:.1f}x "
              f"(CPU {ratio_cpu['duck parts']:.1f}x)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

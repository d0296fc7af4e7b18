"""P4: sweep wall time per board ÷ the sum of that board's measurement windows, for 1, 2, 4, 8 boards.

Each size runs a real sweep (real playbooks over SSH, the agent, the store) on
a fresh virtual farm; the ratio says how much of a board's time goes to
anything but measuring (agent start, model load, warm-up, transfers,
bookkeeping). Target: <= 1.10 and flat as the farm grows. Needs root.

    python benchmarks/sweep_scaling.py [--sizes 1,2,4,8] [--jobs-per-board 20] [--window-s 10] [--keep DIR]
        [--zoo models --model mobilenet_v1]

The default is a nightly sweep's shape: 20 jobs of 10 s per board, MobileNet v1 from the built zoo
(`make zoo`; without it, the tiny test model). The tiny test model runs ~10^5 inferences/s, so its
per-inference traces are far larger than a real network's (MobileNet: ~10^2/s): a stress case.
Short jobs (--jobs-per-board 4 --window-s 2) show the fixed costs (start, idle power, bandwidth,
report) instead.

Prints one row per size (with where the time went), then the worst ratio last.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator.virtual.farm import BoardSpec, VirtualFarm, teardown  # noqa: E402
from orchestrator.virtual.inventory import write_inventory  # noqa: E402

EXPERIMENTS = """
version: 1
zoo: {zoo}
rules: {{warmup_runs: 2, min_count: 10, min_duration_s: {window}, max_duration_s: 60}}
experiments:
  - name: p4
    models: [{model}]
    dtypes: [float32, int8]
    components: [big]
    repeats: {repeats}
"""


def subset_zoo(zoo: Path, model: str, dest: Path) -> Path:
    """A zoo holding only ``model`` (both dtypes): provisioning then copies just those files to each board."""
    manifest = json.loads((zoo / "manifest.json").read_text())
    manifest["models"] = [m for m in manifest["models"] if m["name"] == model]
    if not manifest["models"]:
        raise SystemExit(f"no model {model!r} in {zoo / 'manifest.json'}")
    dest.mkdir(parents=True, exist_ok=True)
    for m in manifest["models"]:
        link = dest / m["file"]
        if not link.exists():
            link.symlink_to(zoo / m["file"])
    (dest / "manifest.json").write_text(json.dumps(manifest))
    return dest


def run_size(n: int, jobs_per_board: int, window_s: float, work: Path, zoo: Path, model: str) -> dict:
    specs = [BoardSpec(f"b{i}", "odroid_xu3" if i % 2 == 0 else "hikey970") for i in range(n)]
    state = work / f"farm{n}"
    farm = VirtualFarm(state, specs, max_lifetime_s=3600)
    try:
        farm.up()
        farm.wait_ready(30)
        inv = write_inventory(farm, work / f"inv{n}.yml")
        exp = work / f"exp{n}.yaml"
        exp.write_text(EXPERIMENTS.format(zoo=zoo, model=model, window=window_s,
                                          repeats=max(1, jobs_per_board // 2)))
        common = ["-i", str(inv), "--store", str(work / f"runs{n}"), "--reports", str(work / f"rep{n}"),
                  "--state", str(work / f"state{n}"), "--json", "--quiet"]
        # provision first, so the measured sweep is the steady state of a nightly run
        subprocess.run([sys.executable, "-m", "orchestrator", "provision", "--zoo", str(zoo),
                        *common[:2], *common[-4:-2]],
                       check=True, capture_output=True, cwd=REPO)
        t0, t0_wall = time.monotonic(), time.time()
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run([sys.executable, "-m", "orchestrator", "sweep", str(exp), *common],
                              capture_output=True, text=True, cwd=REPO)
        wall = time.monotonic() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise SystemExit(f"sweep on {n} boards failed: {proc.stderr[-2000:]}")
        run_dir = Path(json.loads(proc.stdout)["run_dir"])
        results = pd.read_parquet(run_dir / "results")
        events = [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]
        per_board = results.groupby("board").duration_s.sum()
        return {"boards": n, "jobs": len(results), "wall_s": wall,
                "ratio_worst_board": float((wall / per_board).max()),
                "ratio_mean": float((wall / per_board).mean()),
                **phases(events, t0_wall, wall),
                "per_job_s": per_job_overhead(events, results),
                # the controller's own CPU (the sweep process and what it started on this machine, not the boards)
                "controller_cpu_s": (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)}
    finally:
        farm.down()
        teardown(state)


def phases(events: list[dict], t0_wall: float, wall: float) -> dict:
    """Where the wall time went, from the journal (seconds, the slowest board for per-board phases):
    start (loading, planning, leases), prov (provisioning or deciding to skip it, then the health check
    and clock probes), pre (idle power, memory bandwidth), jobs (first job start to last job end),
    tail (the report)."""
    leased = min(e["t_wall"] for e in events if e.get("state") == "leased")
    clock = {e["board"]: e["t_wall"] for e in events if e.get("state") == "clock"}
    started = {}
    for e in events:
        if e.get("state") == "started":
            started.setdefault(e["board"], e["t_wall"])
    done = {}
    for e in events:
        if e.get("state") == "done":
            done[e["board"]] = e["t_wall"]
    released = max(e["t_wall"] for e in events if e.get("state") == "released")
    first_clock = min(clock.values())
    return {"start_s": leased - t0_wall, "prov_s": first_clock - leased,
            "pre_s": max(started[b] - clock[b] for b in started),
            "jobs_s": max(done[b] - started[b] for b in done), "tail_s": t0_wall + wall - released}


def per_job_overhead(events: list[dict], results: pd.DataFrame) -> float:
    """Seconds a job costs beyond its window (the slowest board): from its first job's start to its last
    job's end, minus its windows, per job."""
    worst = 0.0
    for board, rows in results.groupby("board"):
        starts = [e["t_wall"] for e in events if e.get("board") == board and e.get("state") == "started"]
        ends = [e["t_wall"] for e in events if e.get("board") == board and e.get("state") == "done"]
        worst = max(worst, float(max(ends) - min(starts) - rows.duration_s.sum()) / len(rows))
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1,2,4,8")
    ap.add_argument("--jobs-per-board", type=int, default=20)
    ap.add_argument("--window-s", type=float, default=10.0)
    ap.add_argument("--keep", type=Path, help="keep the runs (journals, events) in this folder")
    built = (REPO / "models" / "manifest.json").exists()
    ap.add_argument("--zoo", type=Path, default=REPO / ("models" if built else "tests/fixtures/models"),
                    help="model zoo (default: models/ once `make zoo` built it, else the tiny test models)")
    ap.add_argument("--model", default="mobilenet_v1" if built else "tiny_cnn",
                    help="model of the zoo to measure (default: mobilenet_v1, or tiny_cnn without the zoo)")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="p4-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for n in (int(s) for s in args.sizes.split(",")):
            zoo = subset_zoo(args.zoo.resolve(), args.model, work / "zoo")
            rows.append(run_size(n, args.jobs_per_board, args.window_s, work, zoo, args.model))
            print(f"boards={n}: {rows[-1]}", flush=True)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"worst ratio (sweep wall time / a board's summed windows): {table.ratio_worst_board.max():.3f}")


if __name__ == "__main__":
    main()

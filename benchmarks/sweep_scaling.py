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

--simulated gives every board simulated components (orchestrator.virtual's write_inventory(simulated=True):
the agent sleeps a modelled latency, so the boards' windows cost this machine's 2 cores nothing and what is
left is the orchestrator's own cost); its default sizes are 1, 8, 32, 64 boards: one farm of the largest
size comes up and is provisioned once, then each size sweeps its first n boards (a fresh --state copied
from the provisioned one, so each measures idle power and bandwidth as a first sweep does; the background
report of one size is waited for before the next). Each row then also says how
long the farm took to come up, the controller's peak memory and open files (its process tree), per job
the wall beyond the window and the controller's CPU, the mean of each of the controller's steps (the
journal's ``steps_ms``: clock estimates, the agent's request beyond the window, fetch, store), the idle windows
that failed, and how late the farm's
board simulators ticked at worst during the sweep (a tick later than a sensor's period skips conversions).
Its figures are of simulated boards: a measure of the controller, not of any SoC.
--compare-switch-interval-s 0.005 sweeps the largest size once more with Python's default interpreter
switch interval instead of the sweep's own (orchestrator.cli), side by side.

Prints one row per size (with where the time went), then the worst ratio last.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchlib import mixed_farm_specs  # noqa: E402
from orchestrator.cli import SWEEP_SWITCH_INTERVAL_S  # noqa: E402
from orchestrator.report.background import wait_for_pending  # noqa: E402
from orchestrator.results.store import RunDir  # noqa: E402
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


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc's children lists)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                todo.extend(int(c) for c in Path(f"/proc/{p}/task/{task}/children").read_text().split())
        except OSError:
            continue
    return out


class TreeSampler(threading.Thread):
    """Peak resident memory (MiB), open file descriptors and threads of a process tree, sampled every 0.5 s
    (the controller: the sweep process and what it started on this machine)."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.done = pid, threading.Event()
        self.rss_mib = self.fds = self.threads = self.own_fds = 0.0

    def run(self) -> None:
        while not self.done.wait(0.5):
            rss = fds = threads = 0
            for p in _tree(self.pid):
                try:
                    status = Path(f"/proc/{p}/status").read_text().splitlines()
                    n_fds = len(os.listdir(f"/proc/{p}/fd"))
                except OSError:
                    continue
                fields = {k: v.split() for k, _, v in (line.partition(":") for line in status)}
                rss += int(fields.get("VmRSS", ["0"])[0])
                threads += int(fields.get("Threads", ["0"])[0])
                fds += n_fds
                if p == self.pid:
                    self.own_fds = max(self.own_fds, n_fds)
            self.rss_mib, self.fds = max(self.rss_mib, rss / 1024), max(self.fds, fds)
            self.threads = max(self.threads, threads)


def measure_sweep(n: int, exp: Path, common: list[str], simulated: bool, up_s: float,
                  switch_s: float | None = None, farm: VirtualFarm | None = None) -> dict:
    """One sweep over ``n`` boards (provisioned already): its wall, ratios, phases and controller costs.
    ``switch_s``: the sweep's interpreter switch interval instead of the one it sets itself. ``farm``: its
    simulators' worst tick lateness during the sweep is reported too."""
    if farm is not None:
        farm.take_tick_lateness_s()
    t0, t0_wall = time.monotonic(), time.time()
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    entry = ["-m", "orchestrator"] if switch_s is None else [
        "-c", f"import orchestrator.cli as c; c.SWEEP_SWITCH_INTERVAL_S = {switch_s!r}; c.entry()"]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        sweep = subprocess.Popen([sys.executable, *entry, "sweep", str(exp), *common],
                                 stdout=out, stderr=err, text=True, cwd=REPO)
        sampler = TreeSampler(sweep.pid)
        sampler.start()
        returncode = sweep.wait()
        wall = time.monotonic() - t0
        # now, not after reading the run below: that reading holds this process's interpreter, the simulators'
        sim_late_s = farm.take_tick_lateness_s() if farm is not None else None
        sampler.done.set()
        sampler.join()
        out.seek(0)
        err.seek(0)
        proc = subprocess.CompletedProcess(sweep.args, returncode, out.read(), err.read())
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"sweep on {n} boards failed: {proc.stderr[-2000:]}")
    run_dir = Path(json.loads(proc.stdout)["run_dir"])
    results = RunDir(run_dir).read_table("results")  # wherever the store keeps them (parts or dataset)
    events = [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]
    per_board = results.groupby("board").duration_s.sum()
    cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    extra = {}
    if simulated:
        if not results["emulated"].fillna("").str.startswith("simulated").all():
            raise SystemExit(f"sweep on {n} boards: rows not labelled simulated")
        extra = {"up_s": up_s, "job_overhead_ms": 1e3 * per_job_overhead(events, results),
                 **step_means(events, results),
                 # the same without the agent's warm-up runs (modelled inference outside the window)
                 "ctl_overhead_ms": 1e3 * per_job_overhead(events, results, agent_warmups(run_dir, results)),
                 "ctl_cpu_per_job_ms": 1e3 * cpu_s / len(results), "ctl_rss_mib": sampler.rss_mib,
                 "ctl_fds": sampler.fds, "sweep_fds": sampler.own_fds, "ctl_threads": sampler.threads,
                 # idle windows that failed (e.g. a sensor that never converted: its simulator fell behind)
                 "idle_failed": sum(e.get("state") == "idle_failed" for e in events)}
        if farm is not None:
            extra["sim_late_max_s"] = sim_late_s
            extra["sim_errors"] = len(farm.simulator_errors())
    return {"boards": n, "switch_ms": 1e3 * (switch_s if switch_s is not None else SWEEP_SWITCH_INTERVAL_S),
            "jobs": len(results), "wall_s": wall,
            "ratio_worst_board": float((wall / per_board).max()),
            "ratio_mean": float((wall / per_board).mean()),
            **phases(events, t0_wall, wall),
            "per_job_s": per_job_overhead(events, results),
            # the controller's own CPU (the sweep process and what it started on this machine, not the boards)
            "controller_cpu_s": cpu_s, **extra}


def run_size(n: int, jobs_per_board: int, window_s: float, work: Path, zoo: Path, model: str) -> dict:
    specs = [BoardSpec(f"b{i}", "odroid_xu3" if i % 2 == 0 else "hikey970") for i in range(n)]
    state = work / f"farm{n}"
    farm = VirtualFarm(state, specs, max_lifetime_s=3600)
    try:
        t_up = time.monotonic()
        farm.up()
        farm.wait_ready(30)
        up_s = time.monotonic() - t_up
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
        return measure_sweep(n, exp, common, False, up_s)
    finally:
        farm.down()
        teardown(state)


def run_simulated(sizes: list[int], jobs_per_board: int, window_s: float, work: Path, zoo: Path,
                  model: str, compare_switch_s: float | None = None) -> list[dict]:
    """One farm of the largest size with simulated components, provisioned once; per size a sweep over its
    first n boards, with the provisioned state copied (without the idle-power and bandwidth cache, so every
    size measures those as a first sweep does). The boards beyond n stay up, idle."""
    n_max = max(sizes)
    specs = mixed_farm_specs(n_max, "sim")
    state = work / "farm"
    farm = VirtualFarm(state, specs, max_lifetime_s=4 * 3600)
    rows = []
    try:
        t_up = time.monotonic()
        farm.up()
        farm.wait_ready(max(30, n_max))
        up_s = time.monotonic() - t_up
        inv = write_inventory(farm, work / "inventory.yml", simulated=True)
        provisioned = work / "state-provisioned"
        t_prov = time.monotonic()
        subprocess.run([sys.executable, "-m", "orchestrator", "provision", "--zoo", str(zoo), "-i", str(inv),
                        "--state", str(provisioned)], check=True, capture_output=True, cwd=REPO)
        print(f"{n_max} boards with simulated components: up in {up_s:.1f} s, provisioned in "
              f"{time.monotonic() - t_prov:.0f} s", flush=True)
        runs = [(n, None) for n in sizes] + ([(n_max, compare_switch_s)] if compare_switch_s is not None else [])
        for i, (n, switch_s) in enumerate(runs):
            st = work / f"state{i}-{n}"
            copy_state(provisioned, st)
            exp = work / f"exp{n}.yaml"
            exp.write_text(EXPERIMENTS.format(zoo=zoo, model=model, window=window_s,
                                              repeats=max(1, jobs_per_board // 2))
                           + f"    boards: [{', '.join(s.name for s in specs[:n])}]\n")
            common = ["-i", str(inv), "--store", str(work / f"runs{i}-{n}"), "--reports", str(work / f"rep{i}-{n}"),
                      "--state", str(st), "--json", "--quiet"]
            rows.append(measure_sweep(n, exp, common, True, up_s, switch_s, farm))
            print(f"boards={n} (simulated components): {rows[-1]}", flush=True)
            t_rep = time.monotonic()  # the sweep's report is written in the background: not during the next size
            wait_for_pending(st, 1800)
            print(f"  its background report took {time.monotonic() - t_rep:.1f} s more", flush=True)
        return rows
    finally:
        farm.down()
        teardown(state)


def copy_state(provisioned: Path, to: Path) -> None:
    """A fresh --state from the provisioned one, without what a sweep measured or held (idle power and
    bandwidth cache, leases, pending reports), synced to disk. With `cp`: this process's GIL is the farm's
    simulators' (one thread per board), and a copytree of ~18,000 files in it took minutes at 64 boards. A
    ``to`` left by an earlier run in the same --keep folder goes first: `cp` would copy into it, and the sweep
    would find that run's state (its stamps of another farm: a full provisioning inside the measured sweep)."""
    subprocess.run(["rm", "-rf", str(to)], check=True)
    subprocess.run(["cp", "-a", str(provisioned), str(to)], check=True)
    for name in ("measured", "leases", "reports-pending"):
        shutil.rmtree(to / name, ignore_errors=True)
    # written out now, not during the measured sweep (the virtual boards' disk is this machine's): with ~230 MB
    # in ~46,000 files left to the kernel's writeback, one 32-board sweep's first jobs reached their agents up
    # to 37 s after the controller sent them (before the agent's fsync'd spec.json; the likely cause: fsyncs
    # waiting for that writeback), and its ratio was 1.344 against 1.07-1.12
    subprocess.run(["sync"], check=True)


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


def per_job_overhead(events: list[dict], results: pd.DataFrame, warmups: dict[str, float] | None = None) -> float:
    """Seconds a job costs beyond its window (the slowest board): from its first job's start to its last
    job's end, minus its windows (and with ``warmups``, job id -> s, minus the agent's warm-up runs too), per
    job."""
    worst = 0.0
    for board, rows in results.groupby("board"):
        starts = [e["t_wall"] for e in events if e.get("board") == board and e.get("state") == "started"]
        ends = [e["t_wall"] for e in events if e.get("board") == board and e.get("state") == "done"]
        warm = sum(warmups.get(j, 0.0) for j in rows.job_id) if warmups else 0.0
        worst = max(worst, float(max(ends) - min(starts) - rows.duration_s.sum() - warm) / len(rows))
    return worst


def step_means(events: list[dict], results: pd.DataFrame) -> dict[str, float]:
    """Mean ms per job of each of the controller's steps (the journal's ``steps_ms``, every board's jobs), the
    agent's request as its part beyond the window (``agent_extra``: model load, warm-up, events, summary)."""
    steps = pd.DataFrame([{"job_id": e["job_id"], **e["steps_ms"]} for e in events
                          if e.get("state") == "done" and "steps_ms" in e])
    if steps.empty:
        return {}
    window_s = steps.job_id.map(results.set_index("job_id").duration_s)
    steps = steps.drop(columns="job_id")
    steps["agent"] -= 1e3 * window_s
    return {f"{'agent_extra' if c == 'agent' else c}_ms": float(steps[c].mean()) for c in steps.columns}


def agent_warmups(run_dir: Path, results: pd.DataFrame) -> dict[str, float]:
    """Job id -> seconds from the agent's ``started`` event to its window's start (model load, warm-up runs:
    inference the job does outside its window, on the board, not the controller's), from the job's events."""
    out = {}
    for job_id, start_ns in zip(results.job_id, results.window_start_mono_ns):
        attempts = sorted((run_dir / "jobs" / job_id).glob("attempt-*/events.jsonl"))
        for line in attempts[-1].read_text().splitlines() if attempts else []:
            event = json.loads(line)
            if event.get("event") == "started":
                out[job_id] = (int(start_ns) - event["t_mono_ns"]) / 1e9
                break
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default=None, help="board counts (default: 1,2,4,8; with --simulated 1,8,32,64)")
    ap.add_argument("--simulated", action="store_true",
                    help="boards with simulated components (a modelled latency: no CPU per window; every figure "
                         "labelled simulated)")
    ap.add_argument("--compare-switch-interval-s", type=float, metavar="S",
                    help="with --simulated: sweep the largest size once more with this interpreter switch interval "
                         "(e.g. 0.005, Python's default) instead of the sweep's own, side by side")
    ap.add_argument("--jobs-per-board", type=int, default=20)
    ap.add_argument("--window-s", type=float, default=10.0)
    ap.add_argument("--keep", type=Path, help="keep the runs (journals, events) in this folder")
    built = (REPO / "models" / "manifest.json").exists()
    ap.add_argument("--zoo", type=Path, default=REPO / ("models" if built else "tests/fixtures/models"),
                    help="model zoo (default: models/ once `make zoo` built it, else the tiny test models)")
    ap.add_argument("--model", default="mobilenet_v1" if built else "tiny_cnn",
                    help="model of the zoo to measure (default: mobilenet_v1, or tiny_cnn without the zoo)")
    args = ap.parse_args()
    sizes = args.sizes or ("1,8,32,64" if args.simulated else "1,2,4,8")
    rows = []
    with tempfile.TemporaryDirectory(prefix="p4-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        zoo = subset_zoo(args.zoo.resolve(), args.model, work / "zoo")
        if args.simulated:
            rows = run_simulated([int(s) for s in sizes.split(",")], args.jobs_per_board, args.window_s, work, zoo,
                                 args.model, args.compare_switch_interval_s)
        for n in (int(s) for s in sizes.split(",")) if not args.simulated else ():
            rows.append(run_size(n, args.jobs_per_board, args.window_s, work, zoo, args.model))
            print(f"boards={n}: {rows[-1]}", flush=True)
    table = pd.DataFrame(rows)
    own = table[table["switch_ms"] == 1e3 * SWEEP_SWITCH_INTERVAL_S] if args.simulated else table
    if args.simulated:
        print("simulated components (modelled latency): figures of the orchestrator, not of any SoC")
        last = own.iloc[-1]
        print(f"at {int(last.boards)} boards: controller peak {last.ctl_rss_mib:.0f} MiB "
              f"({last.ctl_rss_mib / last.boards:.2f} MiB/board), {last.ctl_fds:.0f} open files "
              f"({last.ctl_fds / last.boards:.2f}/board), {last.ctl_threads:.0f} threads; up {last.up_s:.1f} s")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if len(own) < len(table):
        other = table.iloc[-1]
        print(f"at {int(other.boards)} boards, switch interval {other.switch_ms:g} ms instead of "
              f"{1e3 * SWEEP_SWITCH_INTERVAL_S:g} ms: ratio {other.ratio_worst_board:.3f} vs "
              f"{last.ratio_worst_board:.3f}, controller overhead per job {other.ctl_overhead_ms:.0f} vs "
              f"{last.ctl_overhead_ms:.0f} ms")
    print(f"worst ratio (sweep wall time / a board's summed windows): {own.ratio_worst_board.max():.3f}")


if __name__ == "__main__":
    main()

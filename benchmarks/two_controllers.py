"""Two controllers, one farm: two ``--state`` folders sweep the same boards at the same time.

A virtual farm (8 boards by default, simulated components: modelled latencies, so the boards' windows cost
this machine no CPU) is provisioned once; a copy of that state folder (same facts, its own lease table) plays
the second controller. Both sweeps start together on every board. Neither lease table sees the other's: only
the lock on each board keeps them apart, and each board's own lock log
(``<work_dir>/.socfarm.lock.log``) is the proof: per board, the holdings of different holders never overlap,
and every job of each run started and ended inside that run's holding (virtual boards share this machine's
wall clock, so the journal's and the board's times compare without an offset). Needs root.

    python benchmarks/two_controllers.py [--boards 8] [--repeats 1] [--keep DIR]

Prints one row per board (holdings, jobs of each run), then both runs' outcome, and last the verdict
(OK, or what overlapped). Figures of the jobs are simulated.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator.results.store import RunDir  # noqa: E402
from orchestrator.scheduler.lock_log import LOG_NAME, holdings, outside, overlaps, read_log  # noqa: E402
from orchestrator.virtual.farm import BoardSpec, VirtualFarm, teardown  # noqa: E402
from orchestrator.virtual.inventory import write_inventory  # noqa: E402

ZOO = REPO / "tests" / "fixtures" / "models"
EXPERIMENTS = """
version: 1
zoo: {zoo}
idle_s: 0
membw_mb: 0
rules: {{warmup_runs: 1, min_count: 10, min_duration_s: 0.5, max_duration_s: 10}}
experiments:
  - name: two-controllers
    models: [tiny_cnn]
    dtypes: [float32, int8]
    components: [all]
    repeats: {repeats}
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--boards", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one, removed)")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="two-controllers-"))
    work.mkdir(parents=True, exist_ok=True)
    specs = [BoardSpec(f"b{i}", "odroid_xu3" if i % 2 == 0 else "hikey970") for i in range(args.boards)]
    farm = VirtualFarm(work / "farm", specs, max_lifetime_s=3600)
    try:
        farm.up()
        farm.wait_ready(30)
        inv = write_inventory(farm, work / "inventory.yml", simulated=True)
        exp = work / "experiments.yaml"
        exp.write_text(EXPERIMENTS.format(zoo=ZOO, repeats=args.repeats))
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-m", "orchestrator", "provision", "--zoo", str(ZOO), "-i", str(inv),
                        "--state", str(work / "state-a")], check=True, capture_output=True, cwd=REPO)
        provision_s = time.monotonic() - t0
        shutil.copytree(work / "state-a", work / "state-b", ignore=shutil.ignore_patterns("leases"))
        t0 = time.monotonic()
        procs = {side: subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "sweep", str(exp), "-i", str(inv), "--store", str(work / "runs"),
             "--reports", str(work / "reports"), "--state", str(work / f"state-{side}"), "--json", "--quiet",
             "--report", "none"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
            for side in ("a", "b")}
        outs = {}
        for side, proc in procs.items():
            out, err = proc.communicate(timeout=3600)
            if not out.strip():
                raise SystemExit(f"sweep {side} printed no result: {err[-3000:]}")
            outs[side] = {**json.loads(out), "rc": proc.returncode}
        wall_s = time.monotonic() - t0
        problems = []
        print(f"{args.boards} virtual boards (simulated components), provisioning {provision_s:.1f} s, "
              f"both sweeps {wall_s:.1f} s")
        print(f"{'board':<6} {'holdings':>8} {'jobs a':>6} {'jobs b':>6}  order")
        for spec in specs:
            held, still = holdings(read_log(farm.board(spec.name).work_dir / LOG_NAME))
            problems += [f"{spec.name}: {o}" for o in overlaps([*held, *still])]
            problems += [f"{spec.name}: still held by {h.owner}" for h in still]
            counts = []
            for side, res in outs.items():
                times = [r["t_wall"] for r in RunDir(Path(res["run_dir"])).journal_records() if r.get("board") == spec.name
                         and r.get("state") in ("started", "done")]
                counts.append(len(times) // 2)
                problems += [f"{spec.name}: run {side} acted at {t:.6f} without holding the board"
                             for t in outside(held, res["run_id"], times)]
            side_of = {res["run_id"]: side for side, res in outs.items()}
            order = " ".join(side_of.get(h.owner, "other") for h in held)  # other: provisioning, earlier runs
            print(f"{spec.name:<6} {len(held):>8} {counts[0]:>6} {counts[1]:>6}  {order}")
        for side, res in outs.items():
            given_back = sum(r.get("state") == "given_back" for r in RunDir(Path(res["run_dir"])).journal_records())
            print(f"run {side}: {res['run_id']} rc {res['rc']}, {res['done']}/{res['jobs']} jobs done, "
                  f"quarantined {sorted(res['quarantined']) or 'none'}, boards given back while waiting {given_back}")
            if res["rc"] != 0 or res["done"] != res["jobs"]:
                problems.append(f"run {side} did not complete: rc {res['rc']}, {res['done']}/{res['jobs']}")
        print("verdict: " + ("OK: no board was held by both runs at once, both runs complete" if not problems
                             else "FAILED:\n  " + "\n  ".join(problems)))
        return 0 if not problems else 1
    finally:
        farm.down()
        teardown(work / "farm")
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

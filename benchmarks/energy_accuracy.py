"""P6: energy of every job of a real sweep against the ground truth, on boards with clocks of their own.

A virtual farm (network namespaces, sshd, real playbooks, the agent over SSH) whose boards each run in
a Linux time namespace with its own CLOCK_MONOTONIC offset (seconds to hours from the controller's),
each supplied by a virtual Keysight B2900 sampling at 10 kHz (pyvisa over TCP, the bench driver's code
path) that follows the board's simulated power. `orchestrator sweep` measures; then every job's
`energy_j` is compared with the true integral of the board's power over its window as it really
happened (the window on the board's clock minus the board's true offset, which only the farm knows).
Target: |energy - truth| / truth < 0.5 % for every job. The power is simulated (a model), so this
measures the orchestration of energy (clock alignment, coverage, integration), not an instrument.
Needs root.

    python benchmarks/energy_accuracy.py [--boards xu3:1,hikey970:2] [--offsets 17.25,3600,7223.5]
        [--repeats 3] [--window-s 1.0] [--zoo models --model mobilenet_v1] [--keep DIR]

Prints one line per job (board, clock offset, window, energy, truth, error), per-board worst, then the
worst error of all last.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator.meters.virtual_b2900 import VirtualB2900  # noqa: E402
from orchestrator.results.store import Store  # noqa: E402
from orchestrator.virtual.__main__ import parse_boards  # noqa: E402
from orchestrator.virtual.farm import BoardSpec, VirtualFarm, teardown  # noqa: E402
from orchestrator.virtual.inventory import write_inventory  # noqa: E402

EXPERIMENTS = """
version: 1
zoo: {zoo}
idle_s: 1.0
membw_mb: 0
rules: {{warmup_runs: 3, min_count: 20, min_duration_s: {window}, max_duration_s: 60}}
experiments:
  - name: p6
    models: [{model}]
    dtypes: [float32, int8]
    components: [big, little]
    repeats: {repeats}
"""
TARGET = 0.005


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--boards", default="xu3:1,hikey970:2")
    ap.add_argument("--offsets", default="17.25,3600,7223.5",
                    help="CLOCK_MONOTONIC offset of each board in seconds, in board order")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--window-s", type=float, default=1.0)
    ap.add_argument("--zoo", type=Path, default=REPO / "tests" / "fixtures" / "models")
    ap.add_argument("--model", default="tiny_cnn")
    ap.add_argument("--keep", type=Path, help="keep the store and reports here")
    args = ap.parse_args()
    offsets = [float(x) for x in args.offsets.split(",")]
    boards = parse_boards(args.boards)
    if len(offsets) < len(boards):
        raise SystemExit(f"--offsets gives {len(offsets)} offsets for {len(boards)} boards")
    specs = [BoardSpec(b.name, b.soc, b.sensors, clock_offset_s=o) for b, o in zip(boards, offsets)]

    work = Path(args.keep or tempfile.mkdtemp(prefix="socfarm-p6-"))
    work.mkdir(parents=True, exist_ok=True)
    farm = VirtualFarm(work / "farm", specs, max_lifetime_s=3600)
    try:
        farm.up()
        farm.wait_ready(30)
        with contextlib.ExitStack() as stack:
            smus = {s.name: stack.enter_context(VirtualB2900(farm.simulator(s.name))) for s in specs}
            inv = write_inventory(farm, work / "inventory.yml",
                                  meters=[{"board": n, "resource": m.resource} for n, m in smus.items()])
            exp = work / "p6.yaml"
            exp.write_text(EXPERIMENTS.format(zoo=args.zoo.resolve(), model=args.model, window=args.window_s,
                                              repeats=args.repeats))
            t0 = time.monotonic()
            proc = subprocess.run(
                [sys.executable, "-m", "orchestrator", "sweep", str(exp), "-i", str(inv), "--store",
                 str(work / "runs"), "--reports", str(work / "reports"), "--state", str(work / "state"), "-q"],
                capture_output=True, text=True, timeout=3600)
            if proc.returncode != 0:
                raise SystemExit(f"sweep failed ({proc.returncode}):\n{proc.stderr[-4000:]}\n{proc.stdout[-2000:]}")
            store = Store(work / "runs")  # run ids start with their time: the last is this sweep's
            res = store.open_run(store.run_ids()[-1]).read_table("results").sort_values(["board", "job_id"])
            true = {s.name: farm.clock_offset_ns(s.name) for s in specs}
            rows = []
            for r in res.itertuples():
                offset = true[r.board]
                truth = smus[r.board].true_energy_j((r.window_start_mono_ns - offset) / 1e9,
                                                    (r.window_end_mono_ns - offset) / 1e9)
                rows.append({"board": r.board, "job": r.job_id.split("-", 1)[0], "component": r.component,
                             "dtype": r.dtype, "offset_s": offset / 1e9,
                             "offset_err_us": (r.clock_offset_ns - offset) / 1e3,
                             "clock_unc_us": r.clock_uncertainty_ns / 1e3, "window_s": r.duration_s,
                             "rate_hz": r.meter_rate_hz, "energy_j": r.energy_j, "truth_j": truth,
                             "error": abs(r.energy_j - truth) / truth if r.energy_j == r.energy_j else float("nan")})
        table = pd.DataFrame(rows)
        with pd.option_context("display.width", 200, "display.max_rows", 500):
            print(table.to_string(index=False, float_format=lambda x: f"{x:.6g}"))
        print(f"sweep: {len(table)} jobs on {len(specs)} boards in {time.monotonic() - t0:.0f} s; power is "
              "simulated (virtual B2900 following each board's modelled power)")
        for board, group in table.groupby("board"):
            print(f"{board}: offset {true[board] / 1e9:+.3f} s, worst error {group.error.max():.4%}, "
                  f"missing energy {int(group.energy_j.isna().sum())}")
        worst = table.error.max()
        ok = worst < TARGET and not table.energy_j.isna().any()
        print(f"worst |energy - truth| / truth: {worst:.4%} (target < {TARGET:.1%}: {'met' if ok else 'NOT met'})")
        return 0 if ok else 1
    finally:
        farm.down()
        teardown(work / "farm")


if __name__ == "__main__":
    sys.exit(main())

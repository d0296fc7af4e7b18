"""The virtual farm's own CPU: its board simulators sharing one /proc listing ÷ each board listing /proc itself.

Every board simulator looks at its board's processes (which processes are in the board's network
namespace, and their CPU time) every few ticks. Each board listing /proc and checking every process's
namespace itself costs the farm's process CPU in proportion to boards × processes of the machine; one
listing shared by the farm costs it once. Alternating rounds on this machine: a farm of ``--boards``
boards comes up, its boards stay idle for ``--seconds``, the farm process's CPU (user + system) and its
simulators' worst tick lateness are measured, the farm goes down; then the same with the other way.
Needs root (network namespaces). Simulated boards: a measure of the test harness, not of any SoC.

    python benchmarks/farm_sim_cpu.py [--boards 64] [--seconds 15] [--rounds 2]

Prints one row per round, then the median ratio last (shared ÷ per board; < 1 is cheaper).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchlib import mixed_farm_specs  # noqa: E402
from orchestrator.virtual.farm import VirtualFarm, teardown  # noqa: E402


def farm_cpu(n: int, seconds: float, shared: bool, state: Path) -> dict:
    """One farm of ``n`` idle boards: its process's CPU (cores) over ``seconds`` and its worst tick lateness."""
    farm = VirtualFarm(state, mixed_farm_specs(n, "cpu"), max_lifetime_s=600, share_proc_index=shared)
    try:
        farm.up()
        farm.wait_ready(max(30, n))
        time.sleep(2.0)  # past the start's first ticks
        farm.take_tick_lateness_s()
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        time.sleep(seconds)
        r1, dt = resource.getrusage(resource.RUSAGE_SELF), time.monotonic() - t0
        late = farm.take_tick_lateness_s()
        errors = farm.simulator_errors()
    finally:
        farm.down()
        teardown(state)
    if errors:
        raise SystemExit(f"simulators failed: {errors}")
    user, system = r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime
    return {"boards": n, "proc_listing": "shared" if shared else "per board", "cores": (user + system) / dt,
            "user_cores": user / dt, "sys_cores": system / dt, "tick_late_max_ms": 1e3 * late}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boards", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--rounds", type=int, default=2, help="rounds of each way, alternating")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="farm-cpu-") as tmp:
        for r in range(args.rounds):
            for shared in ((False, True) if r % 2 == 0 else (True, False)):
                rows.append(farm_cpu(args.boards, args.seconds, shared, Path(tmp) / f"farm{len(rows)}"))
                row = rows[-1]
                print(f"round {r + 1}: {row['boards']} idle boards, /proc listing {row['proc_listing']}: "
                      f"{row['cores']:.3f} cores (user {row['user_cores']:.3f}, system {row['sys_cores']:.3f}), "
                      f"worst tick {row['tick_late_max_ms']:.0f} ms late (simulated boards)", flush=True)
    ratios = [s["cores"] / p["cores"] for s, p in zip((x for x in rows if x["proc_listing"] == "shared"),
                                                     (x for x in rows if x["proc_listing"] == "per board"))]
    print(f"farm process CPU, shared listing / per board, {args.boards} idle boards: "
          f"median {statistics.median(ratios):.3f} over {len(ratios)} rounds ({', '.join(f'{x:.3f}' for x in ratios)})")


if __name__ == "__main__":
    main()

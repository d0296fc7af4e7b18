"""P2: co-execution on the two local cores / the sum of their isolated throughputs, MobileNet v1 float32.

Per round: CPU 0 alone, CPU 1 alone, both as two components of one
co-execution job (work stealing, one worker process each), and, as the
ceiling of what this machine allows at that moment, two bare invoke() loops
running at once on the two cores (no agent). The order rotates between
rounds. Prints a table (``ceiling`` = bare pair / sum of isolated,
``vs_ceiling`` = co-execution / bare pair), then the median of the per-round
co-execution / sum-of-isolated ratios LAST. Target: >= 0.95.

    python benchmarks/coexec_scaling.py [--rounds 6] [--seconds 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from agent_overhead import BARE
from benchlib import REPO, base_spec, env, median, pick_model, run_agent, table


def bare_pair_ips(model: str, seconds: float) -> float:
    """Two bare invoke() loops at once, one per core: what the machine allows right now (the ceiling)."""
    procs = [subprocess.Popen([sys.executable, "-c", BARE, str(cpu), model, str(seconds), "10"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=str(REPO), env=env())
             for cpu in (0, 1)]
    # each prints "<images/s> <median latency ms>"
    return sum(float(p.communicate(timeout=600)[0].split()[-2]) for p in procs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--seconds", type=float, default=2.0)
    args = p.parse_args()
    model, what = pick_model()
    print("model: %s; components cpu0, cpu1 (1 thread each); %.1f s windows, %d rounds"
          % (what, args.seconds, args.rounds))
    comps = [{"name": "cpu0", "kind": "cpu", "cpus": [0], "threads": 1},
             {"name": "cpu1", "kind": "cpu", "cpus": [1], "threads": 1}]
    rows = []
    for r in range(args.rounds):
        results = {}
        order = ["cpu0", "cpu1", "coexec", "bare_pair"]
        order = order[r % 4:] + order[:r % 4]
        for what_run in order:
            spec = base_spec(model, "bench-p2/%d/%s" % (r, what_run), args.seconds)
            if what_run == "bare_pair":
                results[what_run] = bare_pair_ips(str(model), args.seconds)
            elif what_run == "coexec":
                spec["components"] = comps
                results[what_run] = run_agent(spec)
            else:
                spec["component"] = comps[0] if what_run == "cpu0" else comps[1]
                results[what_run] = run_agent(spec)["throughput_ips"]
        co = results["coexec"]
        iso = results["cpu0"] + results["cpu1"]
        shares = co["components"]
        rows.append([r, results["cpu0"], results["cpu1"], co["throughput_ips"],
                     shares["cpu0"]["share_pct"], co["reorder_delay_ms"]["p99"],
                     co["throughput_ips"] / max(results["cpu0"], results["cpu1"]), results["bare_pair"],
                     results["bare_pair"] / iso, co["throughput_ips"] / results["bare_pair"],
                     co["throughput_ips"] / iso])
    print(table(["round", "cpu0_ips", "cpu1_ips", "coexec_ips", "cpu0_share_pct", "reorder_p99_ms",
                 "gain_best", "bare_pair_ips", "ceiling", "vs_ceiling", "ratio"], rows))
    print("median ceiling (bare pair / sum isolated): %.4f; median co-execution / bare pair: %.4f"
          % (median([x[8] for x in rows]), median([x[9] for x in rows])))
    print("P2 coexec/sum-of-isolated throughput ratio (median of rounds): %.4f" % median([x[-1] for x in rows]))


if __name__ == "__main__":
    main()

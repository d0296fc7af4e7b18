"""P1: the agent's measured throughput / a bare ``interpreter.invoke()`` loop, same model, same core.

Both run as separate processes pinned to the same CPU with one interpreter
thread, the same seeded input and warm-up, for the same duration; rounds
alternate (agent, bare, agent, bare, ...) so that the machine's noise hits
both alike. Prints a table (with the median-latency ratio as a second,
less noise-sensitive view), then the median of the per-round throughput
ratios LAST.
Target: >= 0.99.

    python benchmarks/agent_overhead.py [--cpu 1] [--rounds 10] [--seconds 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Tuple

from benchlib import REPO, base_spec, env, median, pick_model, run_agent, table

BARE = r"""
import os, sys, time
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
cpu, model, seconds, warmup = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
os.sched_setaffinity(0, {cpu})
from device_agent.runtime import import_runtime, load_interpreter, make_input, model_input, set_input
interp = load_interpreter(import_runtime(), model, 1)
mi = model_input(interp)
set_input(interp, mi, make_input(mi.shape, mi.dtype, 0))
invoke = interp.invoke
for _ in range(warmup):
    invoke()
lat = []
t0 = time.monotonic_ns()
end = t0 + int(seconds * 1e9)
now = t0
while now < end:
    invoke()
    before, now = now, time.monotonic_ns()
    lat.append(now - before)
lat.sort()
print(len(lat) / ((now - t0) / 1e9), lat[len(lat) // 2] / 1e6)
"""


def bare_ips(cpu: int, model: str, seconds: float, warmup: int) -> Tuple[float, float]:
    """(throughput, median latency ms) of a bare loop."""
    proc = subprocess.run([sys.executable, "-c", BARE, str(cpu), model, str(seconds), str(warmup)],
                          capture_output=True, text=True, cwd=str(REPO), env=env(), timeout=600)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    ips, p50 = proc.stdout.split()[-2:]
    return float(ips), float(p50)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpu", type=int, default=1)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--seconds", type=float, default=2.0)
    args = p.parse_args()
    model, what = pick_model()
    print("model: %s; CPU %d, 1 thread, %.1f s per measurement, %d rounds"
          % (what, args.cpu, args.seconds, args.rounds))
    rows = []
    for r in range(args.rounds):
        spec = base_spec(model, "bench-p1/%d" % r, args.seconds)
        spec["component"] = {"name": "cpu%d" % args.cpu, "kind": "cpu", "cpus": [args.cpu], "threads": 1}
        first_agent = r % 2 == 0  # alternate who goes first
        if first_agent:
            summary = run_agent(spec)
            bare, bare_p50 = bare_ips(args.cpu, str(model), args.seconds, 10)
        else:
            bare, bare_p50 = bare_ips(args.cpu, str(model), args.seconds, 10)
            summary = run_agent(spec)
        agent, agent_p50 = summary["throughput_ips"], summary["latency_ms"]["p50"]
        rows.append([r, "agent" if first_agent else "bare", agent, bare, agent_p50, bare_p50,
                     bare_p50 / agent_p50, agent / bare])
    print(table(["round", "first", "agent_ips", "bare_ips", "agent_p50_ms", "bare_p50_ms", "p50_ratio", "ratio"],
                rows))
    agent_med, bare_med = median([x[2] for x in rows]), median([x[3] for x in rows])
    print(json.dumps({"agent_ips_median": agent_med, "bare_ips_median": bare_med,
                      "ratio_of_medians": agent_med / bare_med,
                      "p50_ratio_median (bare p50 / agent p50)": median([x[6] for x in rows])}))
    print("P1 agent/bare throughput ratio (median of rounds): %.4f" % median([x[-1] for x in rows]))


if __name__ == "__main__":
    main()

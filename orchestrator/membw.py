"""The agent's memory-bandwidth microbenchmark, run on a board per CPU component.

``python3 -m device_agent membw --cpus ...`` runs one thread pinned to each of
the component's cores; its best-of-N GB/s per STREAM kernel (``best_gb_s``: the
bytes the kernel really moves, not STREAM's count) becomes rows of the run's
``membw`` table, the bandwidth roof of the roofline (``analysis/roofline.py``).
"""

from __future__ import annotations

import json
from typing import Any

from orchestrator.errors import AgentError
from orchestrator.jobs import Job, Member
from orchestrator.provision.runner import BoardFacts
from orchestrator.transport.agent import agent_command

REPEATS = 5
KERNELS = ("copy", "scale", "add", "triad")


def membw_command(facts: BoardFacts, cpus: tuple[int, ...], size_mb: float, repeats: int = REPEATS) -> str:
    return agent_command(facts.python, facts.agent_dir, "membw", "--cpus", ",".join(map(str, cpus)),
                         "--size-mb", f"{size_mb:g}", "--repeats", str(repeats))


def cpu_components(jobs: list[Job]) -> list[Member]:
    """The CPU components the jobs use, each once, in first-use order (bandwidth is per cluster)."""
    seen: dict[str, Member] = {}
    for job in jobs:
        for m in job.members:
            if m.kind == "cpu":
                seen.setdefault(m.name, m)
    return list(seen.values())


def membw_rows(run_id: str, board: str, component: str, stdout: str) -> list[dict[str, Any]]:
    """The agent's JSON line as ``membw`` rows; an error object or garbage is an ``AgentError``."""
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    try:
        result = json.loads(lines[-1])
    except (IndexError, ValueError) as exc:
        raise AgentError(f"{board}/{component}: membw printed no JSON result: {stdout[-300:]!r}") from exc
    if "error" in result:
        raise AgentError(f"{board}/{component}: membw: {result.get('error')}: {result.get('message')}")
    kernels = result.get("kernels") or {}
    missing = [k for k in KERNELS if not isinstance((kernels.get(k) or {}).get("best_gb_s"), (int, float))]
    if missing:
        raise AgentError(f"{board}/{component}: membw result lacks kernel(s) {', '.join(missing)}")
    return [{"run_id": run_id, "board": board, "component": component, "kernel": k,
             "gb_per_s": float(kernels[k]["best_gb_s"])} for k in KERNELS]

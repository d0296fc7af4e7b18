"""Shared by the benchmark scripts: which model, running the agent, small statistics, a virtual farm's boards.

The benchmarks run the agent the way the orchestrator does (``python -m
device_agent run -``, spec on stdin) and compare side by side in one run,
alternating, so that the noise of a shared machine hits both sides alike.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Tuple

REPO = Path(__file__).resolve().parents[1]
ZOO = REPO / "models"
FIXTURES = REPO / "tests" / "fixtures" / "models"


def pick_model(name: str = "mobilenet_v1", dtype: str = "float32") -> Tuple[Path, str]:
    """(path, description): the zoo's model if built, else the tiny fixture CNN."""
    for folder, want in ((ZOO, name), (FIXTURES, "tiny_cnn")):
        manifest = folder / "manifest.json"
        if not manifest.exists():
            continue
        for entry in json.loads(manifest.read_text())["models"]:
            if entry["name"] == want and entry["dtype"] == dtype and (folder / entry["file"]).exists():
                return folder / entry["file"], "%s %s (%s)" % (want, dtype, folder.relative_to(REPO))
    raise SystemExit("no model found in %s or %s" % (ZOO, FIXTURES))


def env() -> Dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO)
    return e


def run_agent(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Run one job; return its summary (exit on any error)."""
    with tempfile.TemporaryDirectory(prefix="socfarm-bench-") as out:
        spec = dict(spec, output_dir=out)
        proc = subprocess.run([sys.executable, "-m", "device_agent", "run", "-"], input=json.dumps(spec),
                              capture_output=True, text=True, cwd=str(REPO), env=env(), timeout=600)
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    if proc.returncode != 0 or not events or events[-1]["event"] != "summary":
        raise SystemExit("agent failed (%d): %s\n%s" % (proc.returncode, events[-1:] , proc.stderr[-2000:]))
    return events[-1]


def base_spec(model: Path, job_id: str, min_duration_s: float) -> Dict[str, Any]:
    return {"spec_version": 1, "job_id": job_id, "model": {"path": str(model)},
            "rules": {"warmup_runs": 10, "min_count": 20, "min_duration_s": min_duration_s,
                      "max_duration_s": min_duration_s + 30.0},
            "output_dir": "", "progress_interval_s": 5.0}


def mixed_farm_specs(n: int, tag: str) -> list:
    """``n`` virtual boards, Odroid XU3 and HiKey 970 alternating: ``xu3-<tag>-0``, ``hikey-<tag>-1``, ..."""
    from orchestrator.virtual.farm import BoardSpec  # only the farm benchmarks need it

    return [BoardSpec(f"{'xu3' if i % 2 == 0 else 'hikey'}-{tag}-{i}", "odroid_xu3" if i % 2 == 0 else "hikey970")
            for i in range(n)]


def median(values: List[float]) -> float:
    return statistics.median(values)


def table(header: List[str], rows: List[List[Any]]) -> str:
    cells = [header] + [[("%.4f" % c) if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells)

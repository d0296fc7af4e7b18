"""Load and invoke a model with LiteRT on the controller, before any board sees it.

The static checks (:mod:`orchestrator.zoo.validate`) read the flatbuffer; this
runs it, once, with the runtime the controller has (``ai_edge_litert``, else
``tflite_runtime``), in a child process (:mod:`orchestrator.zoo.litert_probe`) so
that an interpreter crash on a bad file is reported, not suffered. It catches
what reading the file cannot: a corrupt buffer the schema reader walks past,
an operator version the runtime lacks, a kernel that fails to prepare.

The controller's runtime may be newer than a board's; the check does not
prove a board can run the model, it catches what no board could.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LitertCheck", "litert_check", "PROBE"]

PROBE = Path(__file__).with_name("litert_probe.py")


@dataclass(frozen=True)
class LitertCheck:
    ok: bool | None  # None: no LiteRT runtime on the controller, nothing was checked
    runtime: str | None  # e.g. "ai-edge-litert 2.3.0"
    detail: str  # what happened, one line

    def describe(self) -> str:
        if self.ok is None:
            return f"not run on the controller ({self.detail})"
        if self.ok:
            return f"loaded and invoked once with {self.runtime} on the controller"
        return f"{self.runtime} on the controller: {self.detail}"


def _tail(text: str, lines: int = 3) -> str:
    kept = [line for line in text.splitlines() if line.strip() and "XNNPACK delegate" not in line]
    return " | ".join(kept[-lines:])


def litert_check(path: str | Path, timeout_s: float = 120.0) -> LitertCheck:
    """Run the probe on ``path``; never raises for what the model does (the result says it)."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        proc = subprocess.run([sys.executable, str(PROBE), str(path)], capture_output=True, text=True,
                              timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return LitertCheck(False, None, f"loading and invoking it once took more than {timeout_s:g} s")
    if proc.returncode < 0:
        try:
            name = signal.Signals(-proc.returncode).name
        except ValueError:
            name = f"signal {-proc.returncode}"
        detail = f"the LiteRT interpreter crashed ({name}) loading or invoking it"
        tail = _tail(proc.stderr)
        return LitertCheck(False, None, detail + (f": {tail}" if tail else ""))
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return LitertCheck(False, None, f"the LiteRT check exited with {proc.returncode}: {_tail(proc.stderr)}")
    result = json.loads(lines[-1])
    if result["ok"] is None:
        return LitertCheck(None, None, result["error"])
    if not result["ok"]:
        when = "loading" if result.get("stage") == "load" else "invoking"
        return LitertCheck(False, result["runtime"], f"{when} failed: {result['error']}")
    return LitertCheck(True, result["runtime"], "ok")

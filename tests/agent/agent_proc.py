"""Running ``python -m device_agent`` as a subprocess, the way the orchestrator does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "tests" / "fixtures" / "models"
MANIFEST = MODELS / "manifest.json"


@dataclass
class AgentRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def events(self) -> List[Dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines()]


def agent_env() -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)  # the agent is copied to boards, not installed
    return env


def run_agent(*args: str, stdin: Optional[str] = None, timeout_s: float = 60.0) -> AgentRun:
    proc = subprocess.run(
        [sys.executable, "-m", "device_agent", *args],
        input=stdin, capture_output=True, text=True, cwd=str(REPO), env=agent_env(), timeout=timeout_s,
    )
    return AgentRun(proc.returncode, proc.stdout, proc.stderr)


def run_spec(spec: Dict[str, Any], timeout_s: float = 60.0) -> AgentRun:
    return run_agent("run", "-", stdin=json.dumps(spec), timeout_s=timeout_s)


def sigterm_after(args: List[str], stdin: str, expect: List[str]) -> Tuple[List[Dict[str, Any]], int]:
    """Start the agent with ``args``, write ``stdin``, read the events named in ``expect`` (in order), then
    send SIGTERM: the events written after that, and the exit code."""
    proc = subprocess.Popen([sys.executable, "-m", "device_agent", *args], cwd=str(REPO), env=agent_env(),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        proc.stdin.write(stdin)
        proc.stdin.flush()
        for name in expect:
            assert json.loads(proc.stdout.readline())["event"] == name
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return [json.loads(line) for line in rest.splitlines()], proc.returncode


def fixture_model(dtype: str) -> Dict[str, Any]:
    """The manifest entry of the tiny CNN of that dtype, with an absolute ``path``."""
    manifest = json.loads(MANIFEST.read_text())
    for entry in manifest["models"]:
        if entry["name"] == "tiny_cnn" and entry["dtype"] == dtype:
            return dict(entry, path=str(MODELS / entry["file"]))
    raise LookupError("tiny_cnn %s not in %s" % (dtype, MANIFEST))


def job_spec(model: Dict[str, Any], output_dir: Path, **overrides: Any) -> Dict[str, Any]:
    spec = {
        "spec_version": 1,
        "job_id": "test-run/0001",
        "model": {"path": model["path"], "sha256": model["sha256"]},
        "component": {"name": "cpu1", "kind": "cpu", "cpus": [1], "threads": 1},
        "rules": {"warmup_runs": 5, "min_count": 50, "min_duration_s": 0.5, "max_duration_s": 10.0},
        "input_seed": 0,
        "output_dir": str(output_dir),
        "progress_interval_s": 0.1,
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = dict(spec[key], **value)
        else:
            spec[key] = value
    return spec

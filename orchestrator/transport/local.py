"""Transport to a board that is this machine (``ansible_connection: local``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

from orchestrator.errors import AgentError
from orchestrator.provision.runner import BoardFacts
from orchestrator.transport.agent import AgentOutcome, EventCallback, LineSink
from orchestrator.transport.clock import SAME_CLOCK, ClockOffset


class LocalTransport:
    def __init__(self, facts: BoardFacts):
        self.facts = facts

    def clock_offset(self, probes: int = 16) -> ClockOffset:
        return SAME_CLOCK  # the agent reads this very machine's CLOCK_MONOTONIC

    def close(self) -> None:
        pass

    def run(self, command: str, timeout_s: float = 60.0) -> str:
        proc = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=timeout_s)
        if proc.returncode != 0:
            raise AgentError(f"{self.facts.board}: {command!r} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc.stdout

    def run_agent(self, spec: dict[str, Any], on_event: EventCallback | None, timeout_s: float,
                  command: str = "run") -> AgentOutcome:
        env = dict(os.environ)
        env["PYTHONPATH"] = self.facts.agent_dir
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        outcome = AgentOutcome()
        sink = LineSink(outcome, on_event)
        try:
            proc = subprocess.Popen(
                [self.facts.python, "-m", "device_agent", command, "-"],
                cwd=self.facts.agent_dir,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        except OSError as exc:
            raise AgentError(f"{self.facts.board}: cannot start the agent: {exc}", retryable=False) from None
        stderr_chunks: list[str] = []
        reader = threading.Thread(target=lambda: stderr_chunks.append(proc.stderr.read()), daemon=True)
        reader.start()
        timer = threading.Timer(timeout_s, proc.kill)
        timer.start()
        try:
            try:
                proc.stdin.write(json.dumps(spec))
                proc.stdin.close()
            except BrokenPipeError:
                pass  # the agent died before reading its spec; its stderr says why
            for line in proc.stdout:
                sink.feed(line)
            outcome.returncode = proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            reader.join(timeout=5)
        outcome.stderr_tail = "".join(stderr_chunks)[-4000:]
        if outcome.returncode == -9 and outcome.summary is None:
            outcome.stderr_tail += f"\n(killed after the {timeout_s:.0f} s job timeout)"
        return outcome

    def fetch(self, remote_path: str, local_path: Path) -> None:
        local_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(remote_path, local_path)

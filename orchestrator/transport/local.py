"""Transport to a board that is this machine (``ansible_connection: local``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from orchestrator.errors import AgentError
from orchestrator.provision.runner import BoardFacts
from orchestrator.transport.agent import AgentOutcome, EventCallback, serve_args
from orchestrator.transport.clock import SAME_CLOCK, ClockOffset
from orchestrator.transport.process import close_and_wait
from orchestrator.transport.served import AgentServer, ServedTransport, ServerStreams


class LocalTransport(ServedTransport):
    def __init__(self, facts: BoardFacts, prestart: bool = False, preload: bool = True):
        """``prestart``: start the agent's process now, without waiting for it, so that its start (Python, its
        imports and the TFLite runtime's, about 0.15 s) overlaps the controller's own set-up of the board (the
        meter, the caches); the first request then waits for its ``ready`` as usual. ``preload``: the agent
        imports the TFLite runtime before its first request (False: a board whose components need none)."""
        self.facts = facts
        self.preload = preload
        self._server: AgentServer | None = None
        self._spawned: subprocess.Popen | None = self._spawn() if prestart else None

    def clock_offset(self, probes: int = 8) -> ClockOffset:
        return SAME_CLOCK  # the agent reads this very machine's CLOCK_MONOTONIC

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        proc, self._spawned = self._spawned, None
        if proc is not None:  # started, never asked: end of input ends it
            close_and_wait(proc, (proc.stdin, proc.stdout, proc.stderr))

    def run(self, command: str, timeout_s: float = 60.0) -> str:
        proc = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=timeout_s)
        if proc.returncode != 0:
            raise AgentError(f"{self.facts.board}: {command!r} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc.stdout

    def run_agent(self, spec: dict[str, Any], on_event: EventCallback | None, timeout_s: float,
                  command: str = "run") -> AgentOutcome:
        if self._server is None or not self._server.alive:
            self._server = self._start_server()
        outcome = self._server.request(command, spec, on_event, timeout_s)
        if outcome.returncode is not None and outcome.returncode < 0 and outcome.summary is None:
            outcome.stderr_tail += f"\n(ended by signal {-outcome.returncode})"
        return outcome

    def _spawn(self) -> subprocess.Popen:
        env = dict(os.environ, PYTHONPATH=self.facts.agent_dir, PYTHONDONTWRITEBYTECODE="1")
        try:
            return subprocess.Popen([self.facts.python, "-m", "device_agent", *serve_args(self.preload)],
                                    cwd=self.facts.agent_dir,
                                    env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            raise AgentError(f"{self.facts.board}: cannot start the agent: {exc}", retryable=False) from None

    def _start_server(self) -> AgentServer:
        proc, self._spawned = self._spawned, None
        if proc is None:
            proc = self._spawn()  # (a prestarted one that died says why through its missing `ready`)

        def send(data: bytes) -> None:
            try:
                proc.stdin.write(data)
                proc.stdin.flush()
            except BrokenPipeError:
                pass  # it died: its stdout ends and the request reports how

        def terminate(pid: int | None) -> None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

        def close() -> None:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass
            try:
                proc.wait(timeout=10)  # between two requests it exits at once
            except subprocess.TimeoutExpired:
                terminate(proc.pid)

        streams = ServerStreams(send=send, stdout=proc.stdout, stderr=proc.stderr, exit_status=proc.wait,
                                terminate=terminate, close=close)
        return AgentServer(self.facts.board, streams, start_timeout_s=120.0)

    def fetch(self, remote_path: str, local_path: Path) -> None:
        local_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(remote_path, local_path)


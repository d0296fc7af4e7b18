"""Run one device-agent job and collect its event stream (docs/agent-protocol.md).

Transport-independent: a transport gives us the agent's stdout lines and its
exit code; this module turns them into an ``AgentOutcome`` or an error.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from orchestrator.errors import AgentError
from orchestrator.transport.clock import ClockOffset

EventCallback = Callable[[dict[str, Any]], None]


def serve_args(preload: bool) -> list[str]:
    """The agent's arguments for a server: ``--no-preload`` for a board that needs no TFLite runtime."""
    return ["serve"] if preload else ["serve", "--no-preload"]


def agent_command(python: str, agent_dir: str, *args: str) -> str:
    """The shell command that runs ``python -m device_agent ARGS`` on a board, from the agent's folder
    (the agent is copied there, not installed)."""
    return (f"cd {shlex.quote(agent_dir)} && PYTHONPATH={shlex.quote(agent_dir)} PYTHONDONTWRITEBYTECODE=1 "
            f"exec {shlex.quote(python)} -m device_agent {' '.join(shlex.quote(a) for a in args)}")


@dataclass
class AgentOutcome:
    events: list[dict[str, Any]] = field(default_factory=list)
    returncode: int | None = None
    stderr_tail: str = ""
    unparsed_lines: list[str] = field(default_factory=list)

    def first(self, kind: str) -> dict[str, Any] | None:
        return next((e for e in self.events if e.get("event") == kind), None)

    @property
    def started(self) -> dict[str, Any] | None:
        return self.first("started")

    @property
    def summary(self) -> dict[str, Any] | None:
        return self.first("summary")

    @property
    def error(self) -> dict[str, Any] | None:
        return self.first("error")

    def raise_for_failure(self, where: str) -> dict[str, Any]:
        """The summary event, or an ``AgentError`` that says what went wrong."""
        if self.error is not None:
            err = self.error
            raise AgentError(
                f"{where}: agent {err.get('error', 'error')}: {err.get('message', '')}",
                retryable=bool(err.get("retryable")),
                error_class=str(err.get("error", "AgentError")),
            )
        if self.summary is None or self.returncode not in (0, None):
            detail = self.stderr_tail.strip().splitlines()[-5:]
            raise AgentError(
                f"{where}: agent exited with code {self.returncode} without a summary"
                + (": " + " | ".join(detail) if detail else ""),
                retryable=True,
                error_class="AgentDied",
            )
        return self.summary


class LineSink:
    """Feeds stdout lines of the agent into an outcome, calling back per event."""

    def __init__(self, outcome: AgentOutcome, on_event: EventCallback | None):
        self.outcome = outcome
        self.on_event = on_event

    def feed(self, line: str) -> None:
        line = line.strip()
        if not line:
            return
        try:
            event = json.loads(line)
            if not isinstance(event, dict) or "event" not in event:
                raise ValueError("not an event")
        except ValueError:
            self.outcome.unparsed_lines.append(line)
            return
        self.outcome.events.append(event)
        if self.on_event is not None:
            self.on_event(event)


class Transport(Protocol):
    """How the orchestrator reaches one board (local subprocess or SSH)."""

    def run_agent(self, spec: dict[str, Any], on_event: EventCallback | None, timeout_s: float,
                  command: str = "run") -> AgentOutcome:
        """``python3 -m device_agent COMMAND SPEC`` (``run`` a job, or ``idle``), its events streamed."""
        ...

    def fetch(self, remote_path: str, local_path: Path) -> None: ...

    def clock_offset(self, probes: int = 8) -> ClockOffset:
        """The board's monotonic clock relative to the controller's, estimated now by round trips."""
        ...

    def run(self, command: str, timeout_s: float = 60.0) -> str: ...

    def abort(self, reason: str) -> None:
        """From another thread: stop the job in flight now (its ``run_agent`` raises); nothing when none is."""
        ...

    def close(self) -> None: ...

"""One ``device_agent serve`` process per board, kept for the board's whole share of a sweep.

Started once (a login shell, a Python start and the imports of numpy and the
interpreter module, paid once instead of per job), it takes one request per
line on stdin and answers with the events ``run`` would write, ended by the
request's ``summary`` or ``error`` (docs/agent-protocol.md, "Serving"). The
transports give it the process's three streams; it does not care whether
they come from an SSH channel or a local pipe.

A request that does not end within its timeout kills the server (its
frequencies are restored by the agent's SIGTERM path); the next request
starts a new one.
"""

from __future__ import annotations

import collections
import json
import queue
import threading
import time
from dataclasses import dataclass
from typing import IO, Any, Callable

from orchestrator.errors import AgentError
from orchestrator.transport.agent import AgentOutcome, EventCallback, LineSink

_EOF = object()
_ABORT = object()  # put by ``abort``: the request in flight raises at once
TERMINAL = ("summary", "error")


@dataclass
class ServerStreams:
    """The serving process as the transport started it."""

    send: Callable[[bytes], None]  # write to its stdin
    stdout: IO[bytes]
    stderr: IO[bytes]
    exit_status: Callable[[], int | None]  # after its stdout ended: its exit code (-1: the session died)
    terminate: Callable[[int | None], None]  # stop it now (SIGTERM; its pid once known); must not raise
    close: Callable[[], None]  # end its stdin and release the streams; must not raise


class AgentServer:
    def __init__(self, where: str, streams: ServerStreams, start_timeout_s: float):
        self.where = where
        self.streams = streams
        self.pid: int | None = None
        self._lines: queue.Queue[Any] = queue.Queue()
        self._stderr: collections.deque[str] = collections.deque(maxlen=100)
        self._ended = False
        self._aborted: str | None = None
        self._threads = [threading.Thread(target=self._pump_stdout, name=f"{where}-agent-out", daemon=True),
                         threading.Thread(target=self._pump_stderr, name=f"{where}-agent-err", daemon=True)]
        for t in self._threads:
            t.start()
        self._await_ready(start_timeout_s)

    # -- life cycle -------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return not self._ended

    def close(self) -> None:
        """End its input: between two requests the server then exits by itself."""
        self._ended = True
        self.streams.close()

    def kill(self) -> None:
        """Stop it now (a request overran its timeout, or the server never became ready)."""
        self._ended = True
        self.streams.terminate(self.pid)
        self.streams.close()

    def abort(self, reason: str) -> None:
        """From another thread: the request or clock probe in flight raises ``reason`` at once (a non-retryable
        ``AgentError`` of class ``Aborted``) and the server is stopped (SIGTERM: the agent restores the board's
        frequencies on its way out)."""
        self._aborted = reason
        self._lines.put(_ABORT)
        self.kill()

    def _await_ready(self, timeout_s: float) -> None:
        line = self._next_line(timeout_s, f"the agent did not start serving within {timeout_s:.0f} s")
        greeting = AgentOutcome()
        if line is not _EOF:
            LineSink(greeting, None).feed(line)
        event = greeting.first("ready")
        if event is None:
            outcome = self._died(AgentOutcome())
            detail = " | ".join(outcome.stderr_tail.strip().splitlines()[-5:])
            raise AgentError(f"{self.where}: the agent did not start serving (exit code {outcome.returncode})"
                             + (f": {detail}" if detail else ""), retryable=True, error_class="AgentDied")
        self.pid = event.get("pid")

    # -- requests ----------------------------------------------------------------
    def request(self, command: str, spec: dict[str, Any], on_event: EventCallback | None,
                timeout_s: float) -> AgentOutcome:
        """Events of one request; ``returncode`` stays None while the server lives on. If the server ends
        midway, the outcome has its exit code and stderr (the caller's ``raise_for_failure`` says so)."""
        self._require_alive()
        outcome = AgentOutcome()
        sink = LineSink(outcome, on_event)
        self.streams.send((json.dumps({"command": command, "spec": spec}) + "\n").encode())
        deadline = time.monotonic() + timeout_s
        while True:
            line = self._next_line(deadline - time.monotonic(),
                                   f"job {spec.get('job_id')} did not end within {timeout_s:.0f} s", "JobTimeout")
            if line is _EOF:
                return self._died(outcome)
            before = len(outcome.events)
            sink.feed(line)
            if len(outcome.events) > before and outcome.events[-1].get("event") in TERMINAL:
                return outcome

    def clock_ns(self, timeout_s: float = 10.0) -> int:
        """One ``clock`` request: the board's monotonic clock (for ``estimate_offset``)."""
        self._require_alive()
        self.streams.send(b'{"command":"clock"}\n')
        line = self._next_line(timeout_s, f"the agent did not answer a clock probe within {timeout_s:.0f} s")
        if line is _EOF:
            outcome = self._died(AgentOutcome())
            raise AgentError(f"{self.where}: the agent ended during a clock probe (exit code {outcome.returncode})",
                             retryable=True, error_class="AgentDied")
        try:
            event = json.loads(line)
            if event.get("event") != "clock":
                raise ValueError(f"expected a clock event, got {line.strip()[:200]!r}")
            return int(event["t_mono_ns"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self.kill()
            raise AgentError(f"{self.where}: garbled answer to a clock probe: {exc}", retryable=True,
                             error_class="AgentDied") from None

    def _require_alive(self) -> None:
        if self._ended:
            raise AgentError(f"{self.where}: the agent server has ended", retryable=True, error_class="AgentDied")

    def _next_line(self, timeout_s: float, overdue: str, error_class: str = "AgentDied") -> Any:
        """The server's next stdout line (or ``_EOF``); past ``timeout_s`` the server is killed and the
        ``overdue`` message raised."""
        try:
            line = self._lines.get(timeout=max(0.0, timeout_s))
        except queue.Empty:
            self.kill()
            raise AgentError(f"{self.where}: {overdue}", retryable=True, error_class=error_class) from None
        if line is _ABORT:
            raise AgentError(f"{self.where}: aborted: {self._aborted}", error_class="Aborted")
        return line

    def _died(self, outcome: AgentOutcome) -> AgentOutcome:
        self._ended = True
        outcome.returncode = self.streams.exit_status()
        self._threads[1].join(timeout=5)
        outcome.stderr_tail = "".join(self._stderr)[-4000:]
        self.streams.close()
        return outcome

    # -- reader threads ----------------------------------------------------------
    def _pump_stdout(self) -> None:
        try:
            for raw in self.streams.stdout:
                self._lines.put(raw.decode("utf-8", errors="replace"))
        except (OSError, ValueError, EOFError):
            pass  # the stream broke: the same as its end
        finally:
            self._lines.put(_EOF)

    def _pump_stderr(self) -> None:
        try:
            for raw in self.streams.stderr:
                self._stderr.append(raw.decode("utf-8", errors="replace"))
        except (OSError, ValueError, EOFError):
            pass


class ServedTransport:
    """What a transport whose jobs go to an agent server (``_server``, started by its first request) shares."""

    _server: AgentServer | None = None

    def abort(self, reason: str) -> None:
        """From another thread: stop the job in flight now; its ``run_agent`` raises ``reason``."""
        server = self._server
        if server is not None:
            server.abort(reason)

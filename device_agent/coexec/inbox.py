"""Messages from the workers: one pipe per worker, read by the parent with a timeout.

A worker writes to its own pipe from its main thread (no queue feeder
thread competing with the inference for the interpreter lock); the parent
waits on all pipes at once. A worker error becomes its ``AgentError``; a
worker that ended without saying ``done``, or silence past the bound, is an
``InferenceError``.
"""

from __future__ import annotations

import time
from collections import deque
from multiprocessing.connection import wait
from typing import Any, Deque, List, Sequence, Tuple

from device_agent import errors
from device_agent.errors import AgentError, InferenceError, InternalError

POLL_S = 0.2
Message = Tuple[str, int, Any]  # (kind, worker, payload)


class Inbox:
    def __init__(self, conns: Sequence[Any], procs: Sequence[Any]) -> None:
        self._conns = list(conns)
        self._procs = list(procs)
        self._open = list(conns)
        self._pending: Deque[Message] = deque()
        self.done = [False] * len(conns)

    def get(self, bound_s: float) -> Message:
        while not self._pending:
            if time.monotonic() >= bound_s or not self._open:
                raise InferenceError("co-execution: workers silent past their time bound")
            for conn in wait(self._open, POLL_S):
                self._read(conn)
        kind, worker, payload = self._pending.popleft()
        if kind == "error":
            name, message, retryable = payload
            cls = getattr(errors, name, None)
            if not (isinstance(cls, type) and issubclass(cls, AgentError)):
                cls = InferenceError if retryable else InternalError
            raise cls(message)
        if kind == "done":
            self.done[worker] = True
        return kind, worker, payload

    def drain(self) -> None:
        """Read and drop whatever is ready (at shutdown: a worker blocked on a full pipe can go on)."""
        for conn in wait(self._open, 0):
            try:
                conn.recv()
            except (EOFError, OSError):
                self._open.remove(conn)

    def _read(self, conn: Any) -> None:
        worker = self._conns.index(conn)
        try:
            self._pending.append(conn.recv())
        except (EOFError, OSError):
            self._open.remove(conn)
            said_last = any(m[1] == worker and m[0] in ("done", "error") for m in self._pending)
            if not self.done[worker] and not said_last:
                p = self._procs[worker]
                p.join(1.0)
                raise InferenceError("co-execution worker %s ended (exit code %s) without reporting"
                                     % (p.name, p.exitcode))

    @property
    def all_done(self) -> bool:
        return all(self.done)


def worker_pipes(ctx: Any, n: int) -> Tuple[List[Any], List[Any]]:
    """(receive ends for the parent, send ends for the workers)."""
    pairs = [ctx.Pipe(duplex=False) for _ in range(n)]
    return [r for r, _ in pairs], [w for _, w in pairs]

"""The parent's side of a co-execution: start the workers, open the stream, reorder, stop, collect.

The window rules apply to the whole stream: each worker warms up on its own,
then all start together (``go``). The workers apply the stream's rules when
they take a frame, and the take that finds them met closes the stream (see
``worker``); the parent only sets the stop flag on errors and interrupts.
Every frame taken is finished and reported, so frames ``0..N-1`` are each
done exactly once; the parent checks that none is missing. The result holds
them all and the close time: which of them the window counts is
``window``'s rule.
"""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from device_agent.coexec.inbox import Inbox, worker_pipes
from device_agent.coexec.reorder import ReorderBuffer
from device_agent.coexec.worker import CLOSED, N_FLAGS, STOP, worker_main
from device_agent.errors import InferenceError, InternalError
from device_agent.spec import JobSpec

READY_SLACK_S = 120.0
JOIN_S = 10.0
_NS_PER_S = 1000000000


@dataclass
class StreamResult:
    ready: List[Dict[str, Any]]  # per worker, its ``ready`` report
    index: List[int] = field(default_factory=list)  # in release order: 0, 1, 2, ...
    worker: List[int] = field(default_factory=list)
    start_ns: List[int] = field(default_factory=list)
    end_ns: List[int] = field(default_factory=list)
    delay_ns: List[int] = field(default_factory=list)
    max_waiting: int = 0
    closed_ns: int = 0  # when a take found the stream's rules met (0: the stream never closed)


ProgressCallback = Callable[[str, int, float], None]


def run_stream(spec: JobSpec, on_ready: Callable[[List[Dict[str, Any]]], None], on_open: Callable[[], None],
               on_close: Callable[[], None], on_progress: ProgressCallback,
               clock_ns: Callable[[], int] = time.monotonic_ns) -> StreamResult:
    ctx = multiprocessing.get_context("spawn")
    # counter = next frame index; flags = the worker's slots (frame 0's start, latest end reported, stop,
    # frames completed, close time); all guarded by the counter's lock.
    counter = ctx.Value("q", 0)
    flags = ctx.RawArray("q", N_FLAGS)
    go = ctx.Event()
    receive, send = worker_pipes(ctx, len(spec.components))
    lifetime_s = spec.rules.max_duration_s + READY_SLACK_S
    procs = [ctx.Process(target=worker_main, name="coexec-%s" % c.name, daemon=True,
                         args=(spec, i, counter, flags, go, send[i], lifetime_s))
             for i, c in enumerate(spec.components)]
    inbox = Inbox(receive, procs)
    try:
        for p in procs:
            p.start()
        for conn in send:
            conn.close()  # the workers hold them now: a dead worker shows as end of file
        ready: List[Optional[Dict[str, Any]]] = [None] * len(procs)
        bound = time.monotonic() + READY_SLACK_S
        while any(r is None for r in ready):
            kind, worker, payload = inbox.get(bound)
            if kind == "ready":
                ready[worker] = payload
        out = StreamResult(ready=[r for r in ready if r is not None])
        on_ready(out.ready)
        on_open()
        go.set()
        _collect(spec, inbox, out, on_progress, clock_ns)
        on_close()
        with counter.get_lock():
            out.closed_ns = flags[CLOSED]
        return out
    finally:
        _shut_down(procs, counter, flags, go, inbox)


def _shut_down(procs: List[Any], counter: Any, flags: Any, go: Any, inbox: Inbox) -> None:
    """Stop every worker; keep draining their pipes meanwhile (a worker cannot exit while blocked on a full one)."""
    with counter.get_lock():
        flags[STOP] = 1
    go.set()
    deadline = time.monotonic() + JOIN_S
    while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
        inbox.drain()
        for p in procs:
            p.join(0.02)
    for p in procs:
        if p.is_alive():
            p.terminate()
            p.join(JOIN_S)


def _collect(spec: JobSpec, inbox: Inbox, out: StreamResult, on_progress: ProgressCallback,
             clock_ns: Callable[[], int]) -> None:
    rules = spec.rules
    interval_ns = max(int(spec.progress_interval_s * _NS_PER_S), 1)
    buf = ReorderBuffer()
    first_start: Optional[int] = None
    last_end = 0
    next_progress: Optional[int] = None
    bound = time.monotonic() + rules.max_duration_s + READY_SLACK_S
    while not inbox.all_done:
        kind, worker, payload = inbox.get(bound)
        if kind != "frame":
            continue
        first, frames, start, end = payload
        first_start = start if first_start is None else min(first_start, start)
        last_end = max(last_end, end)
        for i in range(first, first + frames):
            for index, (w, s, e), delay in buf.push(i, (worker, start, end), clock_ns()):
                out.index.append(index)
                out.worker.append(w)
                out.start_ns.append(s)
                out.end_ns.append(e)
                out.delay_ns.append(delay)
        elapsed = last_end - first_start
        if next_progress is None:
            next_progress = first_start + interval_ns
        if last_end >= next_progress:
            on_progress("measure", len(out.index), elapsed / _NS_PER_S)
            next_progress = last_end + interval_ns
    if len(buf):
        raise InternalError("co-execution: frames %s finished but frame %d never came back"
                            % (buf.pending()[:5], buf.next_index))
    out.max_waiting = buf.max_waiting
    if not out.index:
        raise InferenceError("co-execution: no frame was processed (the cap passed before the first one?)")

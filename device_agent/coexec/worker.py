"""One co-execution worker: a process per component, pinned to its CPUs, with its own interpreter.

Started by ``multiprocessing`` (spawn) with ``worker_main``. It pins itself,
builds its backend, runs its own warm-up, reports ``ready`` and waits for
``go``. Then it steals work (``take_frames``): under the shared counter's
lock it reports its previous call (end, frames done), checks the stop flag
and the stream's rules, takes the next ``frames_per_call`` frame indices and
advances the counter; it runs the call, and sends ``frame`` (first index,
frames, worker, start/end ns) to the parent. The stream closes at the first
take that finds, from the calls reported so far, that it lasts
``max_duration_s`` (frame 0's start to the latest end reported), or holds
``min_count`` completed frames AND lasts ``min_duration_s``: the same rules
as one component alone, applied to the whole stream. That take records the
close time and takes nothing, nor does any take after it (the window ends
there, see ``window``). A worker ends with ``done``; any
failure is sent as ``error`` (class name, message, retryable). Messages go
through the worker's own pipe, written from its main thread. SIGINT is
ignored (the parent handles it and sets the stop flag); the worker also
ends by itself after ``lifetime_s``.
"""

from __future__ import annotations

import gc
import os
import signal
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple

# Before numpy is imported: keep its BLAS from starting helper threads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from device_agent.affinity import pin  # noqa: E402
from device_agent.backends.registry import open_backend  # noqa: E402
from device_agent.errors import AgentError  # noqa: E402
from device_agent.runtime import import_runtime  # noqa: E402
from device_agent.spec import JobSpec  # noqa: E402
from device_agent.spec_components import NO_RUNTIME_KINDS  # noqa: E402

GO_TIMEOUT_S = 600.0
_NS_PER_S = 1000000000
# The slots of the shared ``flags`` array, guarded by the counter's lock.
START, LATEST_END, STOP, COMPLETED, CLOSED = range(5)
N_FLAGS = 5


def worker_main(spec: JobSpec, worker: int, counter: Any, flags: Any, go: Any, conn: Any,
                lifetime_s: float) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    comp = spec.components[worker]
    field = "components[%d]" % worker
    try:
        cpus = pin(comp.cpus)
        runtime = import_runtime() if comp.kind not in NO_RUNTIME_KINDS else None
        backend = open_backend(spec, comp, field, runtime)
        for _ in range(spec.rules.warmup_runs):
            backend.invoke()
        use = backend.delegate_use()
        conn.send(("ready", worker, {
            "pid": os.getpid(), "cpus_effective": cpus, "model": backend.model, "info": backend.info,
            "runtime": runtime.describe() if runtime is not None else None,
            "delegate": None if use is None else (use.component, use.total_ops, use.cpu_ops, use.reason),
        }))
        if not go.wait(GO_TIMEOUT_S) or flags[STOP]:
            conn.send(("done", worker, 0))
            return
        _steal(backend.invoke, backend.frames_per_call, worker, spec.rules, counter, flags, conn,
               time.monotonic() + lifetime_s)
    except AgentError as exc:
        conn.send(("error", worker, (type(exc).__name__, "%s (%s): %s" % (field, comp.name, exc), exc.retryable)))
    except Exception as exc:
        conn.send(("error", worker, ("InferenceError", "%s (%s): %s: %s" % (field, comp.name, type(exc).__name__,
                                                                             exc), True)))


@dataclass(frozen=True)
class Limits:
    """The stream's rules, in frames and ns."""

    min_count: int
    min_ns: int
    cap_ns: int

    @classmethod
    def of(cls, rules: Any) -> "Limits":
        return cls(rules.min_count, int(round(rules.min_duration_s * _NS_PER_S)),
                   int(round(rules.max_duration_s * _NS_PER_S)))


def take_frames(counter: Any, flags: Any, frames: int, end: int, done: int, limits: Limits,
                clock_ns: Callable[[], int]) -> Optional[Tuple[int, int]]:
    """One take, under the counter's lock: (first index, start ns) of the next ``frames`` frames, or None.

    ``end`` and ``done`` are the end and the frames of this worker's previous call (0, 0 before its
    first): they are reported first (``flags[LATEST_END]``, ``flags[COMPLETED]``). None when the
    parent said stop or the stream is closed; the take that finds the rules met closes the stream:
    ``flags[CLOSED]`` = its clock read. Frame 0's take sets ``flags[START]``. Starts are read under
    the lock, so they grow with the index.
    """
    if flags[STOP] or flags[CLOSED]:
        return None
    first = counter.value
    now = clock_ns()
    if first == 0:
        flags[START] = now
    else:
        if end > flags[LATEST_END]:
            flags[LATEST_END] = end
        flags[COMPLETED] += done
        elapsed = flags[LATEST_END] - flags[START]
        if elapsed >= limits.cap_ns or (flags[COMPLETED] >= limits.min_count and elapsed >= limits.min_ns):
            flags[CLOSED] = now
            return None
    counter.value = first + frames
    return first, now


def _steal(invoke: Any, frames: int, worker: int, rules: Any, counter: Any, flags: Any, conn: Any,
           end_of_life_s: float) -> None:
    """Take frames until the stream closes, the parent says stop or the worker's lifetime ends."""
    clock_ns = time.monotonic_ns
    lock = counter.get_lock()
    limits = Limits.of(rules)
    calls = 0
    end = done = 0
    gc.collect()
    gc.disable()
    try:
        while True:
            with lock:
                took = take_frames(counter, flags, frames, end, done, limits, clock_ns)
            if took is None:
                break
            first, start = took
            invoke()
            end = clock_ns()
            done = frames
            conn.send(("frame", worker, (first, frames, start, end)))
            calls += 1
            if time.monotonic() >= end_of_life_s:
                break
    finally:
        gc.enable()
    conn.send(("done", worker, calls))

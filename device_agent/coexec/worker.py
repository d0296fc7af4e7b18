"""One co-execution worker: a process per component, pinned to its CPUs, with its own interpreter.

Started by ``multiprocessing`` (spawn) with ``worker_main``. It pins itself,
builds its backend, runs its own warm-up, reports ``ready`` and waits for
``go``. Then it steals work: under the shared counter's lock it checks the
stop flag and the cap, takes the next ``frames_per_call`` frame indices and
advances the counter; it runs the call, and sends ``frame`` (first index,
frames, worker, start/end ns) to the parent. It stops taking frames once the
stream's window (frame 0's start to the latest end known) reaches
``max_duration_s``, or holds ``min_count`` frames AND lasts ``min_duration_s``:
the same rules as one component alone, applied to the whole stream. It ends with ``done``; any
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
from typing import Any

# Before numpy is imported: keep its BLAS from starting helper threads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from device_agent.affinity import pin  # noqa: E402
from device_agent.backends.registry import open_backend  # noqa: E402
from device_agent.errors import AgentError  # noqa: E402
from device_agent.runtime import import_runtime  # noqa: E402
from device_agent.spec import JobSpec  # noqa: E402

GO_TIMEOUT_S = 600.0
_NS_PER_S = 1000000000


def worker_main(spec: JobSpec, worker: int, counter: Any, flags: Any, go: Any, conn: Any,
                lifetime_s: float) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    comp = spec.components[worker]
    field = "components[%d]" % worker
    try:
        cpus = pin(comp.cpus)
        runtime = import_runtime() if comp.kind != "external" else None
        backend = open_backend(spec, comp, field, runtime)
        for _ in range(spec.rules.warmup_runs):
            backend.invoke()
        use = backend.delegate_use()
        conn.send(("ready", worker, {
            "pid": os.getpid(), "cpus_effective": cpus, "model": backend.model, "info": backend.info,
            "runtime": runtime.describe() if runtime is not None else None,
            "delegate": None if use is None else (use.component, use.total_ops, use.cpu_ops, use.reason),
        }))
        if not go.wait(GO_TIMEOUT_S) or flags[2]:
            conn.send(("done", worker, 0))
            return
        _steal(backend.invoke, backend.frames_per_call, worker, spec.rules, counter, flags, conn,
               time.monotonic() + lifetime_s)
    except AgentError as exc:
        conn.send(("error", worker, (type(exc).__name__, "%s (%s): %s" % (field, comp.name, exc), exc.retryable)))
    except Exception as exc:
        conn.send(("error", worker, ("InferenceError", "%s (%s): %s: %s" % (field, comp.name, type(exc).__name__,
                                                                             exc), True)))


def _steal(invoke: Any, frames: int, worker: int, rules: Any, counter: Any, flags: Any, conn: Any,
           end_of_life_s: float) -> None:
    """Take frames until the stream's rules are met, the cap is reached or the parent says stop.

    Under the counter's lock: ``flags[0]`` = start of frame 0 (the window start), ``flags[1]`` = the
    latest frame end known, ``flags[2]`` = stop (set by the parent). A frame's start is read under the
    lock, so starts grow with the index.
    """
    clock_ns = time.monotonic_ns
    lock = counter.get_lock()
    min_ns = int(round(rules.min_duration_s * _NS_PER_S))
    cap_ns = int(round(rules.max_duration_s * _NS_PER_S))
    calls = 0
    end = 0
    gc.collect()
    gc.disable()
    try:
        while True:
            with lock:
                if flags[2]:
                    break
                first = counter.value
                if first == 0:
                    flags[0] = start = clock_ns()
                else:
                    if end > flags[1]:
                        flags[1] = end
                    elapsed = flags[1] - flags[0]
                    if elapsed >= cap_ns or (first >= rules.min_count and elapsed >= min_ns):
                        break
                    start = clock_ns()
                counter.value = first + frames
            invoke()
            end = clock_ns()
            conn.send(("frame", worker, (first, frames, start, end)))
            calls += 1
            if time.monotonic() >= end_of_life_s:
                break
    finally:
        gc.enable()
    conn.send(("done", worker, calls))

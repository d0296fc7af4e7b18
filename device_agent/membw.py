"""Memory bandwidth microbenchmark: STREAM-like copy, scale, add, triad with numpy, one thread per CPU.

Bytes are the bytes the numpy implementation really moves: every array
operand of every ufunc call is one pass over an array (read for an input,
write for ``out=``), 8-byte doubles::

    kernel  implementation                                   passes  (STREAM counts)
    copy    np.copyto(c, a)                                  2       2  read a, write c
    scale   np.multiply(c, s, out=b)                         2       2  read c, write b
    add     np.add(a, b, out=c)                              3       3  read a, b, write c
    triad   np.multiply(c, s, out=a); np.add(a, b, out=a)    5       3  read c, write a,
                                                                        read a, b, write a

numpy has no fused multiply-add ufunc, so triad makes two passes and moves 5
arrays where STREAM counts 3; ``best_gb_s`` and ``bytes`` are the real traffic
(the figure the roofline uses), ``stream_gb_s`` and ``stream_bytes`` the
STREAM-convention figure for comparison with published STREAM results. As in
STREAM, the cache's write-allocate reads of a destination are not counted.

With ``cpus``, one worker thread per CPU, each pinned to its CPU
(``sched_setaffinity`` called in a thread moves that thread only on Linux),
each with arrays of its own allocated after pinning. ``size_mb`` is the size of
each of the three arrays summed over the threads: a thread's arrays hold
``size_mb / threads`` MiB each, so the memory used does not grow with the
number of CPUs (3 x ``size_mb`` in all, which should stay well above the
last-level cache). Without ``cpus``, one unpinned thread. The threads start
each kernel run together at a barrier; the run's time is from the barrier's
release to the end of the last thread, its bytes the sum over the threads
(numpy releases the GIL in these ufuncs, so the threads run in parallel). The
best of ``repeats`` runs of each kernel is reported.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional

import numpy as np

BYTES_PER_ELEMENT = 8  # float64, as STREAM
KERNELS = ("copy", "scale", "add", "triad")
ARRAY_PASSES = {"copy": 2, "scale": 2, "add": 3, "triad": 5}  # what the kernels below move
STREAM_ARRAYS = {"copy": 2, "scale": 2, "add": 3, "triad": 3}  # what STREAM counts
SCALAR = 3.0
DEFAULT_SIZE_MB = 64
DEFAULT_REPEATS = 10


def moved_bytes(kernel: str, n_elements: int) -> int:
    """Bytes a kernel of :func:`kernels` really moves per run over arrays of ``n_elements``."""
    return ARRAY_PASSES[kernel] * BYTES_PER_ELEMENT * n_elements


def stream_bytes(kernel: str, n_elements: int) -> int:
    """Bytes a kernel moves per run, counted the STREAM way (triad: 3 arrays)."""
    return STREAM_ARRAYS[kernel] * BYTES_PER_ELEMENT * n_elements


def kernels(a: np.ndarray, b: np.ndarray, c: np.ndarray, xp: Any = np) -> Dict[str, Callable[[], None]]:
    """The four kernels over ``a, b, c``; ``xp`` supplies copyto/multiply/add (numpy, or a counter in tests)."""
    def copy() -> None:
        xp.copyto(c, a)

    def scale() -> None:
        xp.multiply(c, SCALAR, out=b)

    def add() -> None:
        xp.add(a, b, out=c)

    def triad() -> None:
        xp.multiply(c, SCALAR, out=a)
        xp.add(a, b, out=a)

    return {"copy": copy, "scale": scale, "add": add, "triad": triad}


def run_membw(size_mb: float = DEFAULT_SIZE_MB, repeats: int = DEFAULT_REPEATS,
              clock_ns: Callable[[], int] = time.perf_counter_ns,
              cpus: Optional[Iterable[int]] = None,
              on_thread: Optional[Callable[[int, Optional[int]], None]] = None) -> Dict[str, Any]:
    """Best-of-``repeats`` GB/s (1e9 bytes/s) per kernel, one thread per CPU of ``cpus``.

    ``on_thread(index, cpu)`` is called in each worker thread once it is pinned
    (a hook for tests). A worker's exception is raised here once all threads
    have stopped.
    """
    if size_mb <= 0 or repeats < 1:
        raise ValueError("size_mb must be > 0 and repeats >= 1")
    thread_cpus: List[Optional[int]] = [None] if cpus is None else sorted(set(int(c) for c in cpus))
    if not thread_cpus:
        raise ValueError("cpus must name at least one CPU (or be None: one unpinned thread)")
    if cpus is not None and not hasattr(os, "sched_setaffinity"):
        raise OSError("pinning threads to CPUs is not supported on this platform")
    n_threads = len(thread_cpus)
    n_total = max(int(size_mb * 1024 * 1024) // BYTES_PER_ELEMENT, 1)
    n = max(n_total // n_threads, 1)  # elements per array per thread

    starts: List[int] = []
    ends: List[int] = []
    start = threading.Barrier(n_threads, action=lambda: starts.append(clock_ns()))
    end = threading.Barrier(n_threads, action=lambda: ends.append(clock_ns()))
    affinity: List[Optional[List[int]]] = [None] * n_threads
    errors: List[Exception] = []

    def worker(index: int, cpu: Optional[int]) -> None:
        try:
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})  # this thread only
                affinity[index] = sorted(os.sched_getaffinity(0))
            if on_thread is not None:
                on_thread(index, cpu)
            a = np.full(n, 1.0)
            b = np.full(n, 2.0)
            c = np.zeros(n)
            fns = kernels(a, b, c)
            for _ in range(repeats):
                for name in KERNELS:  # STREAM order, every repeat
                    start.wait()
                    fns[name]()
                    end.wait()
        except Exception as exc:  # re-raised by run_membw
            errors.append(exc)
            start.abort()
            end.abort()

    threads = [threading.Thread(target=worker, args=(i, cpu), name="membw-%s" % cpu, daemon=True)
               for i, cpu in enumerate(thread_cpus)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        real = [e for e in errors if not isinstance(e, threading.BrokenBarrierError)]
        raise (real or errors)[0]

    out = {}
    for k, name in enumerate(KERNELS):
        runs = [ends[r * len(KERNELS) + k] - starts[r * len(KERNELS) + k] for r in range(repeats)]
        best = min(runs)
        moved = moved_bytes(name, n) * n_threads
        counted = stream_bytes(name, n) * n_threads
        out[name] = {"best_gb_s": moved / best if best > 0 else float("inf"),
                     "best_s": best / 1e9, "bytes": moved, "array_passes": ARRAY_PASSES[name],
                     "stream_gb_s": counted / best if best > 0 else float("inf"), "stream_bytes": counted}
    return {"array_elements": n * n_threads, "array_bytes": n * n_threads * BYTES_PER_ELEMENT,
            "elements_per_thread": n, "repeats": repeats, "threads": n_threads,
            "cpus": None if cpus is None else thread_cpus, "thread_affinity": affinity, "kernels": out}

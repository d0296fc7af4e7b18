"""Memory bandwidth microbenchmark: STREAM-like copy, scale, add, triad with numpy, pinned.

Bytes are counted as STREAM counts them (8-byte doubles, each array element
read or written once per kernel): copy ``c = a`` and scale ``b = s*c`` move
2 arrays, add ``c = a + b`` and triad ``a = b + s*c`` move 3. numpy's
in-place ufuncs with ``out=`` avoid temporaries, except triad, which needs
one pass for ``s*c`` into ``a`` and one for ``a += b``: its real traffic is
higher than counted (4 arrays + write-back), so its GB/s is conservative, as
with any non-fused implementation. The arrays should be well above the
last-level cache (default 4 x the size given, each ``size_mb``); the best of
``repeats`` runs of each kernel is reported.
"""

from __future__ import annotations

import time
from typing import Callable, Dict, List

import numpy as np

BYTES_PER_ELEMENT = 8  # float64, as STREAM
ARRAYS_MOVED = {"copy": 2, "scale": 2, "add": 3, "triad": 3}
SCALAR = 3.0
DEFAULT_SIZE_MB = 64
DEFAULT_REPEATS = 10


def stream_bytes(kernel: str, n_elements: int) -> int:
    """Bytes a kernel moves per run, counted the STREAM way."""
    return ARRAYS_MOVED[kernel] * BYTES_PER_ELEMENT * n_elements


def kernels(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> Dict[str, Callable[[], None]]:
    def copy() -> None:
        np.copyto(c, a)

    def scale() -> None:
        np.multiply(c, SCALAR, out=b)

    def add() -> None:
        np.add(a, b, out=c)

    def triad() -> None:
        np.multiply(c, SCALAR, out=a)
        np.add(a, b, out=a)

    return {"copy": copy, "scale": scale, "add": add, "triad": triad}


def run_membw(size_mb: float = DEFAULT_SIZE_MB, repeats: int = DEFAULT_REPEATS,
              clock_ns: Callable[[], int] = time.perf_counter_ns) -> Dict[str, object]:
    """Best-of-``repeats`` GB/s (1e9 bytes/s) per kernel, arrays of ``size_mb`` MiB each."""
    if size_mb <= 0 or repeats < 1:
        raise ValueError("size_mb must be > 0 and repeats >= 1")
    n = max(int(size_mb * 1024 * 1024) // BYTES_PER_ELEMENT, 1)
    a = np.full(n, 1.0)
    b = np.full(n, 2.0)
    c = np.zeros(n)
    fns = kernels(a, b, c)
    times: Dict[str, List[int]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():  # STREAM order, every repeat
            t0 = clock_ns()
            fn()
            times[name].append(clock_ns() - t0)
    out = {}
    for name in fns:
        best = min(times[name])
        moved = stream_bytes(name, n)
        out[name] = {"best_gb_s": moved / best if best > 0 else float("inf"),
                     "best_s": best / 1e9, "bytes": moved}
    return {"array_elements": n, "array_bytes": n * BYTES_PER_ELEMENT, "repeats": repeats, "kernels": out}

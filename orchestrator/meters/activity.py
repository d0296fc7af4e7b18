"""Activity sources: the simulated board's power ``P(t)`` that the virtual SMU reads.

:class:`~orchestrator.meters.virtual_b2900.VirtualB2900` sources a constant
voltage ``V`` into the board and turns the power given by one of these sources
into the current it measures, ``I(t) = P(t) / V``. Time is ``time.monotonic()``
seconds of this machine, the clock the controller uses too.

Any object with ``power_w(t_mono_s) -> float`` is an :class:`ActivitySource`.
Two optional methods make a source cheap and exact to use:

* ``power_w_array(t: np.ndarray) -> np.ndarray``: ``P`` at many times in one
  call (the virtual SMU evaluates thousands of times per second);
* ``energy_j(t0_mono_s, t1_mono_s) -> float``: the exact integral of ``P`` over
  ``[t0, t1]`` (the ground truth of any window).

:func:`evaluate_power` and :func:`integrate_power` use them when a source has
them and fall back on ``power_w`` (a loop, a fine trapezoid grid) otherwise.

This module provides :class:`ConstantPower`, :class:`StepPower`
(piecewise-constant, for exact energy checks) and :class:`CpuActivityPower`
(follows the real CPU activity of this machine, read from ``/proc/stat``); all
three implement both optional methods.

Every loop here is bounded: the CPU sampler runs at most ``max_runtime_s`` and
keeps at most ``history_s`` of history; grid integrations work in chunks of
bounded size over a window of finite length.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from typing import Callable, Iterable, Protocol, Sequence, runtime_checkable

import numpy as np

__all__ = [
    "ActivitySource",
    "ConstantPower",
    "StepPower",
    "CpuActivityPower",
    "evaluate_power",
    "integrate_power",
    "trapezoid",
]

#: Grid points per chunk of :func:`trapezoid` (bounds its memory to a few MB).
GRID_CHUNK = 1 << 18


@runtime_checkable
class ActivitySource(Protocol):
    """The board's power draw as a function of ``time.monotonic()`` seconds.

    Optional: ``power_w_array(t)`` (vectorized) and ``energy_j(t0, t1)`` (exact
    integral), see the module docstring."""

    def power_w(self, t_mono_s: float) -> float: ...


def evaluate_power(source, t: np.ndarray) -> np.ndarray:
    """``P`` at every time of ``t`` (any shape): the source's ``power_w_array``
    when it has one, else a loop over ``power_w``."""
    t = np.asarray(t, dtype=float)
    fn = getattr(source, "power_w_array", None)
    if callable(fn):
        return np.asarray(fn(t), dtype=float).reshape(t.shape)
    flat = [float(source.power_w(float(x))) for x in t.ravel()]
    return np.asarray(flat, dtype=float).reshape(t.shape)


def trapezoid(f: Callable[[np.ndarray], np.ndarray], t0: float, t1: float, step_s: float) -> tuple[float, float]:
    """Integrate the vectorized ``f`` over ``[t0, t1]`` with a trapezoid on a
    uniform grid no coarser than ``step_s``; returns ``(integral, step used)``.

    The grid is evaluated in chunks of :data:`GRID_CHUNK` points, never point
    by point, so millions of points cost a few numpy calls."""
    if not t1 > t0:
        return 0.0, 0.0
    if not step_s > 0:
        raise ValueError("step_s must be positive")
    # (t1 - t0) carries the rounding of two large monotonic times: allow a millionth of a step
    m = max(1, int(math.ceil((t1 - t0) / step_s - 1e-6)))
    step = (t1 - t0) / m
    total = 0.0
    for a in range(0, m, GRID_CHUNK):
        b = min(m, a + GRID_CHUNK)
        k = np.arange(a, b + 1, dtype=float)
        grid = t0 + k * step
        grid[-1] = t1 if b == m else grid[-1]
        y = np.asarray(f(grid), dtype=float)
        total += float(np.sum((y[1:] + y[:-1]) * np.diff(grid)) / 2.0)
    return total, step


def integrate_power(source, t0: float, t1: float, step_s: float) -> tuple[float, float | None]:
    """Energy (J) the source draws over ``[t0, t1]``: ``(energy, None)`` from its
    exact ``energy_j`` when it has one, else ``(energy, step)`` from
    :func:`trapezoid` on a grid of ``step_s``."""
    t0, t1 = float(t0), float(t1)
    if t1 < t0:
        raise ValueError(f"window end {t1} before its start {t0}")
    fn = getattr(source, "energy_j", None)
    if callable(fn):
        return float(fn(t0, t1)), None
    return trapezoid(lambda t: evaluate_power(source, t), t0, t1, step_s)


def _step_energy(times: np.ndarray, levels: np.ndarray, t0: float, t1: float) -> float:
    """Integral over ``[t0, t1]`` of the step function worth ``levels[0]`` before
    ``times[0]`` and ``levels[i + 1]`` from ``times[i]`` on (``len(levels) == len(times) + 1``)."""
    if not t1 > t0:
        return 0.0
    i0 = int(np.searchsorted(times, t0, side="right"))
    i1 = int(np.searchsorted(times, t1, side="left"))
    edges = np.concatenate(([t0], times[i0:i1], [t1]))
    return float(np.sum(levels[i0 : i1 + 1] * np.diff(edges)))


class ConstantPower:
    """A board drawing a constant power."""

    def __init__(self, watts: float):
        self.watts = float(watts)

    def power_w(self, t_mono_s: float) -> float:
        return self.watts

    def power_w_array(self, t: np.ndarray) -> np.ndarray:
        return np.full(np.shape(t), self.watts)

    def energy_j(self, t0_mono_s: float, t1_mono_s: float) -> float:
        return self.watts * (float(t1_mono_s) - float(t0_mono_s))

    def __repr__(self) -> str:
        return f"ConstantPower({self.watts!r})"


class StepPower:
    """Piecewise-constant power: ``initial_w`` until the first step, then each
    ``(t_mono_s, watts)`` step holds from its time (inclusive) to the next."""

    def __init__(self, initial_w: float, steps: Iterable[tuple[float, float]] = ()):
        self.initial_w = float(initial_w)
        pairs = sorted((float(t), float(w)) for t, w in steps)
        self._times = [t for t, _ in pairs]
        self._watts = [w for _, w in pairs]
        self._t_arr = np.array(self._times, dtype=float)
        self._levels = np.array([self.initial_w] + self._watts, dtype=float)

    @property
    def steps(self) -> list[tuple[float, float]]:
        return list(zip(self._times, self._watts))

    def power_w(self, t_mono_s: float) -> float:
        i = bisect.bisect_right(self._times, t_mono_s)
        return self.initial_w if i == 0 else self._watts[i - 1]

    def power_w_array(self, t: np.ndarray) -> np.ndarray:
        return self._levels[np.searchsorted(self._t_arr, np.asarray(t, dtype=float), side="right")]

    def energy_j(self, t0_mono_s: float, t1_mono_s: float) -> float:
        t0, t1 = float(t0_mono_s), float(t1_mono_s)
        if t1 < t0:
            return -_step_energy(self._t_arr, self._levels, t1, t0)
        return _step_energy(self._t_arr, self._levels, t0, t1)

    def __repr__(self) -> str:
        return f"StepPower({self.initial_w!r}, {self.steps!r})"


def _read_proc_stat(path: str) -> dict[int, tuple[int, int]]:
    """Per-cpu ``(busy, total)`` jiffies from ``/proc/stat``."""
    out: dict[int, tuple[int, int]] = {}
    with open(path, "rb") as fh:
        text = fh.read().decode("ascii", "replace")
    for line in text.splitlines():
        if not (line.startswith("cpu") and len(line) > 3 and line[3].isdigit()):
            continue
        parts = line.split()
        cpu = int(parts[0][3:])
        # user nice system idle iowait irq softirq steal [guest guest_nice]:
        # guest time is already counted in user/nice, so only the first 8 add up.
        vals = [int(v) for v in parts[1:9]]
        vals += [0] * (8 - len(vals))
        total = sum(vals)
        idle = vals[3] + vals[4]
        out[cpu] = (total - idle, total)
    return out


class CpuActivityPower:
    """Board power that follows the real CPU activity of this machine.

    A background thread reads the per-cpu jiffies of ``/proc/stat`` every
    ``period_s`` (at most 100 Hz) and, for each interval, computes
    ``P = idle_w + per_cpu_active_w * sum(utilisation of each selected cpu)``.
    ``power_w(t)`` is that piecewise-constant power passed through a
    first-order low-pass with time constant ``smoothing_s`` (the board's
    power-delivery network; also tames the coarse jiffy resolution, jiffies
    tick at USER_HZ, usually 100 Hz), evaluated analytically, so it is a
    deterministic function of ``t`` once the interval holding ``t`` has been
    sampled. A call for a time the sampler has not reached yet (but not in the
    future) waits for it, at most ``settle_timeout_s``; so do
    :meth:`power_w_array` (for the latest of its times) and :meth:`energy_j`
    (for the window's end).

    With samples ``t_i``, raw power ``p_i`` over ``(t_{i-1}, t_i]`` and filtered
    power ``f_i = P(t_i)``, ``P(t) = p_i + (f_{i-1} - p_i) exp(-(t - t_{i-1}) / tau)``
    on that interval, whose integral is
    ``p_i Δ + (f_{i-1} - p_i) tau (1 - exp(-Δ / tau))``: :meth:`energy_j` is exact.

    The sampler starts on first use (or :meth:`start`) and stops on
    :meth:`stop` or by itself after ``max_runtime_s``; the history is bounded
    to ``history_s``. Times before the history hold its first value; times
    after it hold the last raw power, filtered.
    """

    MIN_PERIOD_S = 0.01
    #: Extra room of the history arrays: compacted once per this many samples.
    HISTORY_SLACK = 1024

    def __init__(
        self,
        idle_w: float = 2.0,
        per_cpu_active_w: float = 1.5,
        cpus: Sequence[int] | None = None,
        smoothing_s: float = 0.05,
        *,
        period_s: float = 0.01,
        history_s: float = 600.0,
        max_runtime_s: float = 3600.0,
        settle_timeout_s: float | None = None,
        proc_stat: str = "/proc/stat",
    ):
        self.idle_w = float(idle_w)
        self.per_cpu_active_w = float(per_cpu_active_w)
        self.smoothing_s = max(0.0, float(smoothing_s))
        self.period_s = max(self.MIN_PERIOD_S, float(period_s))
        self.max_runtime_s = float(max_runtime_s)
        self.settle_timeout_s = (
            float(settle_timeout_s) if settle_timeout_s is not None else 5 * self.period_s + 0.05
        )
        self._proc_stat = proc_stat
        available = sorted(_read_proc_stat(proc_stat))
        if cpus is None:
            self.cpus = tuple(available)
        else:
            missing = sorted(set(cpus) - set(available))
            if missing:
                raise ValueError(f"cpus {missing} not in {proc_stat} (have {available})")
            self.cpus = tuple(sorted(set(int(c) for c in cpus)))
        self._max_len = max(16, int(float(history_s) / self.period_s))
        self._cond = threading.Condition()
        self._start_lock = threading.Lock()
        self._stop_evt = threading.Event()
        self._thread: threading.Thread | None = None
        self._alive = False
        # History, in preallocated arrays (only [:_n] is valid; read under _cond):
        capacity = self._max_len + self.HISTORY_SLACK
        self._t = np.empty(capacity)  # sample instants
        self._p = np.empty(capacity)  # raw power over (t[i-1], t[i]]
        self._f = np.empty(capacity)  # filtered power at t[i]
        self._n = 0
        self._last_util: dict[int, float] = {c: 0.0 for c in self.cpus}

    # -- lifecycle --------------------------------------------------------
    def start(self) -> "CpuActivityPower":
        with self._start_lock:
            if self._thread is not None:
                return self
            r0 = _read_proc_stat(self._proc_stat)
            time.sleep(self.period_s)
            t1 = time.monotonic()
            r1 = _read_proc_stat(self._proc_stat)
            p = self._power_from(r0, r1)
            with self._cond:
                self._n = 0
                self._append(t1, p, p)
                self._alive = True
            self._stop_evt.clear()
            self._thread = threading.Thread(
                target=self._run, args=(r1, t1), name="cpu-activity-sampler", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop_evt.set()
        th = self._thread
        if th is not None and th is not threading.current_thread():
            th.join(timeout=2.0)

    def __enter__(self) -> "CpuActivityPower":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._alive

    def utilisation(self) -> dict[int, float]:
        """Utilisation (0..1) of each selected cpu over the last interval."""
        with self._cond:
            return dict(self._last_util)

    # -- sampling ---------------------------------------------------------
    def _power_from(self, prev: dict[int, tuple[int, int]], cur: dict[int, tuple[int, int]]) -> float:
        total_util = 0.0
        for c in self.cpus:
            b0, n0 = prev.get(c, (0, 0))
            b1, n1 = cur.get(c, (0, 0))
            dn = n1 - n0
            if dn > 0:
                u = min(1.0, max(0.0, (b1 - b0) / dn))
                self._last_util[c] = u
            else:  # no jiffy elapsed on this cpu: keep the previous estimate
                u = self._last_util.get(c, 0.0)
            total_util += u
        return self.idle_w + self.per_cpu_active_w * total_util

    def _append(self, t: float, p: float, f: float) -> None:
        """Append one sample (caller holds ``_cond``); drop the oldest beyond ``_max_len``."""
        if self._n == self._t.size:
            drop = self._n - self._max_len
            for a in (self._t, self._p, self._f):
                a[: self._max_len] = a[drop : self._n]
            self._n = self._max_len
        i = self._n
        self._t[i], self._p[i], self._f[i] = t, p, f
        self._n = i + 1

    def _run(self, prev: dict[int, tuple[int, int]], t_prev: float) -> None:
        deadline = t_prev + self.max_runtime_s
        next_t = t_prev + self.period_s
        try:
            while not self._stop_evt.is_set():
                now = time.monotonic()
                if now >= deadline:
                    break
                if next_t > now and self._stop_evt.wait(next_t - now):
                    break
                t = time.monotonic()
                try:
                    cur = _read_proc_stat(self._proc_stat)
                except OSError:
                    break
                with self._cond:
                    p = self._power_from(prev, cur)
                    f_prev = float(self._f[self._n - 1])
                    dt = t - float(self._t[self._n - 1])
                    f = p if self.smoothing_s <= 0 else p + (f_prev - p) * math.exp(-dt / self.smoothing_s)
                    self._append(t, p, f)
                    self._cond.notify_all()
                prev = cur
                next_t += self.period_s
                if next_t < t:  # fell behind (suspended?): resynchronise
                    next_t = t + self.period_s
        finally:
            with self._cond:
                self._alive = False
                self._cond.notify_all()

    # -- evaluation (callers hold _cond) ------------------------------------
    def _wait_until_sampled(self, t: float) -> None:
        """Wait (bounded) until the history reaches ``t`` when ``t`` is not in the future."""
        if t > self._t[self._n - 1] and self._alive and t <= time.monotonic():
            deadline = time.monotonic() + self.settle_timeout_s
            while t > self._t[self._n - 1] and self._alive:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)

    def _segments(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Start time, raw power and filtered start power of segments ``idx``
        (segment ``i`` is ``(t[i-1], t[i]]``; segment ``n`` extends past the history)."""
        n = self._n
        beyond = idx >= n
        i = np.where(beyond, n - 1, idx)
        start = self._t[np.maximum(idx - 1, 0)]
        start = np.where(beyond, self._t[n - 1], start)
        f0 = np.where(beyond, self._f[n - 1], self._f[np.maximum(idx - 1, 0)])
        return start, self._p[i], f0

    def _partial(self, x: np.ndarray, start: np.ndarray, p: np.ndarray, f0: np.ndarray) -> np.ndarray:
        """Integral of ``P`` from a segment's start to ``x`` inside it."""
        d = x - start
        if self.smoothing_s <= 0:
            return p * d
        tau = self.smoothing_s
        return p * d - (f0 - p) * tau * np.expm1(-d / tau)

    def _eval(self, t: np.ndarray) -> np.ndarray:
        n = self._n
        ts = self._t[:n]
        idx = np.searchsorted(ts, t, side="left")  # ts[idx-1] < t <= ts[idx]
        start, p, f0 = self._segments(idx)
        if self.smoothing_s <= 0:
            out = p.copy()
        else:
            out = p + (f0 - p) * np.exp(-(t - start) / self.smoothing_s)
        return np.where(t <= ts[0], self._f[0], out)

    def _integral(self, a: float, b: float) -> float:
        n = self._n
        ts = self._t[:n]
        total = 0.0
        if a < ts[0]:  # before the history: its first value
            edge = min(b, float(ts[0]))
            total += float(self._f[0]) * (edge - a)
            a = edge
        if not b > a:
            return total
        i0 = int(np.searchsorted(ts, a, side="right"))  # segment holding a (a may be its start)
        i1 = int(np.searchsorted(ts, b, side="left"))  # segment holding b (b may be its end)
        xa, xb = np.array([a]), np.array([b])
        if i0 == i1:
            s, p, f0 = self._segments(np.array([i0]))
            return total + float(self._partial(xb, s, p, f0)[0] - self._partial(xa, s, p, f0)[0])
        idx = np.arange(i0, i1 + 1)
        s, p, f0 = self._segments(idx)
        ends = np.concatenate((ts[i0:i1], xb))  # full segments end at their sample, the last at b
        full = self._partial(ends, s, p, f0)
        return total + float(np.sum(full) - self._partial(xa, s[:1], p[:1], f0[:1])[0])

    # -- the ActivitySource protocol ---------------------------------------
    def power_w(self, t_mono_s: float) -> float:
        if self._thread is None:
            self.start()
        t = float(t_mono_s)
        with self._cond:
            self._wait_until_sampled(t)
            return float(self._eval(np.array([t]))[0])

    def power_w_array(self, t: np.ndarray) -> np.ndarray:
        if self._thread is None:
            self.start()
        t = np.asarray(t, dtype=float)
        if t.size == 0:
            return np.empty(t.shape)
        with self._cond:
            self._wait_until_sampled(float(np.max(t)))
            return self._eval(t.ravel()).reshape(t.shape)

    def energy_j(self, t0_mono_s: float, t1_mono_s: float) -> float:
        """Exact integral of ``P`` over ``[t0, t1]`` (J); negative when ``t1 < t0``."""
        if self._thread is None:
            self.start()
        a, b = float(t0_mono_s), float(t1_mono_s)
        sign = 1.0
        if b < a:
            a, b, sign = b, a, -1.0
        with self._cond:
            self._wait_until_sampled(b)
            return sign * self._integral(a, b)

    def __repr__(self) -> str:
        return (
            f"CpuActivityPower(idle_w={self.idle_w}, per_cpu_active_w={self.per_cpu_active_w}, "
            f"cpus={list(self.cpus)}, smoothing_s={self.smoothing_s})"
        )

"""Activity sources: the simulated board's power ``P(t)`` that the virtual SMU reads.

:class:`~orchestrator.meters.virtual_b2900.VirtualB2900` sources a constant
voltage ``V`` into the board and turns the power given by one of these sources
into the current it measures, ``I(t) = P(t) / V``. Time is ``time.monotonic()``
seconds of this machine, the clock the controller uses too.

Any object with ``power_w(t_mono_s) -> float`` is an :class:`ActivitySource`;
this module provides :class:`ConstantPower`, :class:`StepPower`
(piecewise-constant, for exact energy checks) and :class:`CpuActivityPower`
(follows the real CPU activity of this machine, read from ``/proc/stat``).

Every loop here is bounded: the CPU sampler runs at most ``max_runtime_s`` and
keeps at most ``history_s`` of history.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from typing import Iterable, Protocol, Sequence, runtime_checkable

__all__ = [
    "ActivitySource",
    "ConstantPower",
    "StepPower",
    "CpuActivityPower",
]


@runtime_checkable
class ActivitySource(Protocol):
    """The board's power draw as a function of ``time.monotonic()`` seconds."""

    def power_w(self, t_mono_s: float) -> float: ...


class ConstantPower:
    """A board drawing a constant power."""

    def __init__(self, watts: float):
        self.watts = float(watts)

    def power_w(self, t_mono_s: float) -> float:
        return self.watts

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

    @property
    def steps(self) -> list[tuple[float, float]]:
        return list(zip(self._times, self._watts))

    def power_w(self, t_mono_s: float) -> float:
        i = bisect.bisect_right(self._times, t_mono_s)
        return self.initial_w if i == 0 else self._watts[i - 1]

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
    future) waits for it, at most ``settle_timeout_s``.

    The sampler starts on first use (or :meth:`start`) and stops on
    :meth:`stop` or by itself after ``max_runtime_s``; the history is bounded
    to ``history_s``. Times before the history hold its first value.
    """

    MIN_PERIOD_S = 0.01

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
        self._t: list[float] = []  # sample instants
        self._p: list[float] = []  # raw power over (t[i-1], t[i]]
        self._f: list[float] = []  # filtered power at t[i]
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
                self._t, self._p, self._f = [t1], [p], [p]
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
                    f_prev = self._f[-1]
                    dt = t - self._t[-1]
                    f = p if self.smoothing_s <= 0 else p + (f_prev - p) * math.exp(-dt / self.smoothing_s)
                    self._t.append(t)
                    self._p.append(p)
                    self._f.append(f)
                    if len(self._t) > self._max_len + 1024:
                        drop = len(self._t) - self._max_len
                        del self._t[:drop], self._p[:drop], self._f[:drop]
                    self._cond.notify_all()
                prev = cur
                next_t += self.period_s
                if next_t < t:  # fell behind (suspended?): resynchronise
                    next_t = t + self.period_s
        finally:
            with self._cond:
                self._alive = False
                self._cond.notify_all()

    # -- evaluation -------------------------------------------------------
    def _eval(self, t: float) -> float:
        ts = self._t
        if t <= ts[0]:
            return self._f[0]
        i = bisect.bisect_left(ts, t)  # ts[i-1] < t <= ts[i]
        if i >= len(ts):  # beyond the history: hold the last raw power
            p, t_prev, f_prev = self._p[-1], ts[-1], self._f[-1]
        else:
            p, t_prev, f_prev = self._p[i], ts[i - 1], self._f[i - 1]
        if self.smoothing_s <= 0:
            return p
        return p + (f_prev - p) * math.exp(-(t - t_prev) / self.smoothing_s)

    def power_w(self, t_mono_s: float) -> float:
        if self._thread is None:
            self.start()
        t = float(t_mono_s)
        with self._cond:
            if t > self._t[-1] and self._alive and t <= time.monotonic():
                deadline = time.monotonic() + self.settle_timeout_s
                while t > self._t[-1] and self._alive:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            return self._eval(t)

    def __repr__(self) -> str:
        return (
            f"CpuActivityPower(idle_w={self.idle_w}, per_cpu_active_w={self.per_cpu_active_w}, "
            f"cpus={list(self.cpus)}, smoothing_s={self.smoothing_s})"
        )

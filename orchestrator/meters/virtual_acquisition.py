"""The acquisition engine of the virtual B2900 (:mod:`orchestrator.meters.virtual_b2900`).

An :class:`Acquisition` is one ``:INIT``: a snapshot of the settings, its
result buffer (filled in place, readable while it fills) and its state.
:func:`run_acquisition` fills it in a thread of its own; a :class:`TraceBuffer`
is the instrument's trace buffer; :func:`ground_truth` is the server's own
account of an acquisition.

Spot readings (``:MEASure``, a channel's compliance state) are a
:class:`Reading`, one point with the same ``columns`` as an acquisition:
:func:`board_reading` for a channel feeding the board (a load drawing the
activity's power, under a voltage or a current source) and
:func:`resistor_reading` for the constant resistive load of a second channel.

Timing: point ``k``'s aperture starts at ``t_start + k * interval`` and the
point is taken once that aperture has ended. The engine does not wait point by
point: it wakes every :data:`WAKE_PERIOD_S` while points come faster than that
(else when the next one is due) and computes every point whose aperture has
ended, in a few numpy calls (:func:`mean_currents`); so a point is in the
result buffer at most :data:`WAKE_PERIOD_S` after its aperture ended (plus
what a source makes it wait for its sampler). A reading is the mean of the current
``I = P / V`` (clamped to the compliance) at ``aperture_evals`` times spread
over the aperture, as an integrating ADC would give.

CPU cost, measured on this project's 2-core machine with ``time.process_time``
around 5 s acquisitions at 10 kHz (interval 100 µs, aperture 80 µs, 8
evaluations per point, 50 000 points; the whole server process, one client
waiting in ``*OPC?``): 0.14-0.18 s of CPU, 3-3.5 % of one core, with
:class:`~orchestrator.meters.activity.ConstantPower`; 0.20-0.26 s, 4-5 %, with
:class:`~orchestrator.meters.activity.CpuActivityPower`, whose 100 Hz
``/proc/stat`` sampler alone takes about 1.5 %. Most of it is the fixed cost of
each wake-up (about 130 µs on cold caches), hence the few numpy calls per
batch. The former point-by-point loop took 1.35 s (25 %) for the same
acquisition with ``ConstantPower`` and still fell behind (5.4 s for 5 s).

Every loop here is bounded by the acquisition's point count (the engine) or by
its finite window (the ground-truth grid).
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from orchestrator.meters.activity import evaluate_power, integrate_power, trapezoid

__all__ = [
    "Acquisition",
    "Reading",
    "board_reading",
    "resistor_reading",
    "ELEMENT_ORDER",
    "GroundTruth",
    "MAX_POINTS",
    "TraceBuffer",
    "WAKE_PERIOD_S",
    "ground_truth",
    "interleave",
    "mean_currents",
    "run_acquisition",
    "window_energy",
]

MAX_POINTS = 100_000
#: The engine's wake-up period while points come faster than that (s).
WAKE_PERIOD_S = 0.004
#: Points computed per numpy batch (bounds the memory of a late batch).
MAX_BATCH = 8192
#: Elements of a point, in the instrument's fixed output order.
ELEMENT_ORDER = ("VOLT", "CURR", "TIME")


@dataclass(frozen=True)
class GroundTruth:
    """The server's own account of one acquisition (monotonic clock of this machine).

    ``window_start_mono_s``/``window_end_mono_s`` are the centres of the first
    and last points' apertures; ``energy_j`` is the energy the SMU supplied over
    that window, independently of the samples: the activity source's exact
    integral (``method="exact"``, ``fine_step_s`` is None) when it has one and
    the current stayed within compliance, else ``V * I(t)`` integrated with a
    trapezoid on a grid of ``fine_step_s`` (the trigger interval / 10,
    ``method="grid"``).
    """

    acquisition: int
    start_mono_s: float
    interval_s: float
    aperture_s: float
    points: int
    points_acquired: int
    aborted: bool
    voltage_v: float
    window_start_mono_s: float
    window_end_mono_s: float
    energy_j: float
    mean_power_w: float
    fine_step_s: float | None
    method: str = "exact"
    clock: str = "time.monotonic"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def append_to(self, log: Path) -> None:
        """Append one JSON line to ``log``; a failing log is ignored (it is a
        convenience and must never take the server down)."""
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "a", encoding="utf-8") as fh:
                fh.write(self.to_json() + "\n")
        except OSError:
            pass


class Acquisition:
    """One ``:INIT``: settings snapshot, result buffer and state.

    ``times``/``currents`` are filled in place; ``count`` points are valid (it
    only grows, after the values are written). The TIME element of point ``k``
    is ``time_offset_s + k * interval`` (the offset is 0 when the instrument's
    timer restarts at the ``:INIT``).
    """

    def __init__(
        self,
        seq: int,
        t_start: float,
        interval: float,
        *,
        aperture: float,
        points: int,
        voltage: float,
        limit: float,
        output_on: bool,
        measure_current: bool,
        time_offset_s: float = 0.0,
    ):
        self.seq = seq
        self.t_start = t_start
        self.interval = interval
        self.aperture = aperture
        self.points = points
        self.voltage = voltage
        self.limit = limit
        self.output_on = output_on
        self.measure_current = measure_current
        self.time_offset_s = time_offset_s
        self.times = np.zeros(points)
        self.currents = np.zeros(points)
        self.count = 0
        self.clamped = False  # some evaluation hit the compliance
        self.done = threading.Event()
        self.abort = threading.Event()
        self.abort_at: float | None = None
        self.thread: threading.Thread | None = None

    @property
    def expected_end(self) -> float:
        return self.t_start + (self.points - 1) * self.interval + self.aperture

    def request_abort(self) -> None:
        """Stop taking points: those whose aperture ended before now are kept."""
        if self.abort_at is None:
            self.abort_at = time.monotonic()
        self.abort.set()

    def ready(self, now: float) -> int:
        """How many points have their aperture ended at ``now``."""
        first_end = self.t_start + self.aperture
        if now < first_end:
            return 0
        k = int((now - first_end) // self.interval)  # last ready index, up to rounding
        while k + 1 < self.points and self.t_start + (k + 1) * self.interval + self.aperture <= now:
            k += 1
        while k >= 0 and self.t_start + k * self.interval + self.aperture > now:
            k -= 1
        return min(self.points, k + 1)

    def columns(self, k0: int, k1: int) -> dict[str, np.ndarray]:
        """Elements of points ``[k0, k1)`` (views, except VOLT)."""
        return {
            "VOLT": np.full(k1 - k0, self.voltage if self.output_on else 0.0),
            "CURR": self.currents[k0:k1],
            "TIME": self.times[k0:k1],
        }


class TraceBuffer:
    """The trace buffer: up to ``capacity`` points of every element."""

    def __init__(self, capacity: int = MAX_POINTS):
        self.capacity = int(capacity)
        self.count = 0
        self._cols = {e: np.empty(0) for e in ELEMENT_ORDER}

    @property
    def full(self) -> bool:
        return self.count >= self.capacity

    def clear(self) -> None:
        self.count = 0

    def resize(self, capacity: int) -> None:
        """New size; points beyond it (if any) are dropped."""
        self.capacity = int(capacity)
        self.count = min(self.count, self.capacity)

    def append(self, columns: dict[str, np.ndarray]) -> int:
        """Store as many of the given points as fit; returns how many."""
        n = min(len(columns["TIME"]), self.capacity - self.count)
        if n <= 0:
            return 0
        end = self.count + n
        for e in ELEMENT_ORDER:
            col = self._cols[e]
            if col.size < end:  # grow geometrically, up to the capacity
                grown = np.empty(min(self.capacity, max(end, 2 * col.size, 1024)))
                grown[: self.count] = col[: self.count]
                self._cols[e] = col = grown
            col[self.count : end] = columns[e][:n]
        self.count = end
        return n

    def columns(self, k0: int, k1: int) -> dict[str, np.ndarray]:
        return {e: self._cols[e][k0:k1].copy() for e in ELEMENT_ORDER}


def interleave(columns: dict[str, np.ndarray] | None, elements: tuple[str, ...]) -> np.ndarray:
    """The ``elements`` of every point, interleaved point by point; one "no
    data" (NaN) point when ``columns`` is None."""
    if columns is None:
        return np.full(len(elements), np.nan)
    return np.column_stack([columns[e] for e in elements]).reshape(-1)


def mean_currents(
    activity, t0s: np.ndarray, aperture: float, voltage: float, limit: float, output_on: bool, evals: int
) -> tuple[np.ndarray, bool]:
    """Readings of apertures starting at ``t0s``: the mean of the clamped
    current at ``evals`` times spread over each aperture. Returns the readings
    and whether the compliance clamped any evaluation."""
    t0s = np.asarray(t0s, dtype=float)
    if not output_on or voltage <= 0.0:
        return np.zeros(t0s.shape), False
    offsets = aperture * (np.arange(evals) + 0.5) / evals
    current = evaluate_power(activity, t0s[:, None] + offsets) / voltage
    # (few numpy calls: this runs a few hundred times a second, each time on cold caches)
    clamped = bool(current.max() > limit or current.min() < -limit)
    if clamped:
        current = np.clip(current, -limit, limit)
    return np.add.reduce(current, axis=1) / evals, clamped


class Reading:
    """One spot reading (``:MEASure``): a result buffer of one point, complete
    at once. ``compliance``: the source hit its limit (current limit of a
    voltage source, voltage limit of a current source). NaN is "no data" (a
    function not measured)."""

    count = 1

    def __init__(self, voltage_v: float, current_a: float, time_s: float, compliance: bool):
        self.voltage_v = float(voltage_v)
        self.current_a = float(current_a)
        self.time_s = float(time_s)
        self.compliance = bool(compliance)
        self.done = threading.Event()
        self.done.set()
        self.thread: threading.Thread | None = None

    def columns(self, k0: int, k1: int) -> dict[str, np.ndarray]:
        return {
            "VOLT": np.array([self.voltage_v])[k0:k1],
            "CURR": np.array([self.current_a])[k0:k1],
            "TIME": np.array([self.time_s])[k0:k1],
        }


def board_reading(
    activity, t0: float, aperture: float, mode: str, level: float, limit: float, output_on: bool, evals: int
) -> tuple[float, float, bool]:
    """``(volts, amps, compliance)`` over the aperture starting at ``t0`` of a
    channel feeding the board, which draws the activity's power ``P``.

    Voltage source (``mode`` VOLT, ``level`` volts, ``limit`` amps): the
    current is ``P / V`` clamped to the limit, as in an acquisition
    (:func:`mean_currents`); the voltage reads the source level. Current source
    (``mode`` CURR, ``level`` amps, ``limit`` volts): a load drawing ``P``
    develops ``V = P / I``, up to the voltage limit. Either way a load asking
    for more than the source allows gets the corner of the source's limits
    (set level and compliance), and the board is short of power. Output off,
    or a level at or below zero (the board takes no reverse supply): no
    current flows."""
    if mode == "VOLT":
        amps, clamped = mean_currents(activity, np.array([t0]), aperture, level, limit, output_on, evals)
        return (level if output_on else 0.0), float(amps[0]), clamped
    if not output_on or level <= 0.0:
        return 0.0, 0.0, False
    offsets = aperture * (np.arange(evals) + 0.5) / evals
    power = evaluate_power(activity, t0 + offsets)
    volts = power / level
    over = volts > limit
    return float(np.minimum(volts, limit).mean()), float(level), bool(over.any())


def resistor_reading(
    resistance_ohm: float, mode: str, level: float, limit: float, output_on: bool
) -> tuple[float, float, bool]:
    """``(volts, amps, compliance)`` of a channel sourcing ``level`` into a
    resistor: ``I = V / R`` up to the current limit (a voltage source then holds
    the limit and the voltage falls to ``limit * R``), ``V = I * R`` up to the
    voltage limit (likewise for a current source). Output off: nothing flows."""
    if not output_on:
        return 0.0, 0.0, False
    if mode == "VOLT":
        amps = level / resistance_ohm
        if abs(amps) > limit:
            amps = math.copysign(limit, amps)
            return amps * resistance_ohm, amps, True
        return level, amps, False
    volts = level * resistance_ohm
    if abs(volts) > limit:
        volts = math.copysign(limit, volts)
        return volts, volts / resistance_ohm, True
    return volts, level, False


def run_acquisition(acq: Acquisition, activity, *, aperture_evals: int, publish, wake_s: float = WAKE_PERIOD_S) -> None:
    """Fill ``acq`` as its points come due; ``publish(acq, k0, k1)`` after each
    batch of new points ``[k0, k1)``. Returns when every point is taken or on
    abort (points whose aperture ended before the abort are taken first)."""
    done = 0
    while done < acq.points:
        aborted = acq.abort.is_set()
        horizon = acq.abort_at if aborted and acq.abort_at is not None else time.monotonic()
        ready = acq.ready(horizon)
        while done < ready:
            k1 = min(ready, done + MAX_BATCH)
            since_start = np.arange(done, k1) * acq.interval
            if acq.measure_current:
                values, clamped = mean_currents(
                    activity, acq.t_start + since_start, acq.aperture, acq.voltage, acq.limit,
                    acq.output_on, aperture_evals,
                )
                acq.clamped |= clamped
            else:
                values = np.nan  # no data: 9.91E+37 in ASCII, NaN in binary
            acq.currents[done:k1] = values
            acq.times[done:k1] = acq.time_offset_s + since_start
            acq.count = k1
            publish(acq, done, k1)
            done = k1
        if aborted or done >= acq.points:
            break
        gap = acq.t_start + done * acq.interval + acq.aperture - time.monotonic()
        acq.abort.wait(gap if gap > wake_s else wake_s)


def ground_truth(acq: Acquisition, activity, oversample: int) -> GroundTruth | None:
    """The energy the SMU supplied between the first and last points' aperture
    centres (None when no point was taken)."""
    n = acq.count
    if n == 0:
        return None
    half = acq.aperture / 2.0
    c0 = acq.t_start + half
    c1 = acq.t_start + (n - 1) * acq.interval + half
    energy, method, step = 0.0, "exact", None
    if n >= 2 and acq.output_on and acq.voltage > 0.0:
        exact = callable(getattr(activity, "energy_j", None)) and acq.measure_current and not acq.clamped
        if exact:
            energy, _ = integrate_power(activity, c0, c1, acq.interval / oversample)
        else:  # compliance (or unknown): integrate what the SMU really supplied

            def supplied(t: np.ndarray) -> np.ndarray:
                current = evaluate_power(activity, t) / acq.voltage
                return acq.voltage * np.clip(current, -acq.limit, acq.limit)

            energy, step = trapezoid(supplied, c0, c1, acq.interval / oversample)
            method = "grid"
    duration = c1 - c0
    return GroundTruth(
        acquisition=acq.seq,
        start_mono_s=acq.t_start,
        interval_s=acq.interval,
        aperture_s=acq.aperture,
        points=acq.points,
        points_acquired=n,
        aborted=n < acq.points,
        voltage_v=acq.voltage,
        window_start_mono_s=c0,
        window_end_mono_s=c1,
        energy_j=energy,
        mean_power_w=energy / duration if duration > 0 else float("nan"),
        fine_step_s=step,
        method=method,
    )


def window_energy(activity, t0: float, t1: float, step_s: float | None = None) -> float:
    """Energy (J) ``activity`` draws over ``[t0, t1]``: exact when the source
    can, else a trapezoid on a grid of ``step_s`` (default: 10 µs, or coarser to
    stay within a million points)."""
    t0, t1 = float(t0), float(t1)
    if t1 < t0:
        raise ValueError(f"window end {t1} before its start {t0}")
    step = step_s if step_s is not None else max(1e-5, (t1 - t0) / 1_000_000)
    return integrate_power(activity, t0, t1, step)[0]

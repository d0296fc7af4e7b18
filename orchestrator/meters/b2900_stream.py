"""A B2900 acquisition of any length, read while it runs.

The instrument holds at most 100,000 points (``:TRACe:POINts``, ``:TRIGger:COUNt``),
10 s at 10 kHz: less than a job's model load, warm-up and window. So a
:class:`B2900Stream` acquires in *segments* of up to 100,000 points and reads
each from the trace buffer while it fills (``:TRACe:POINts:ACTual?``, then
``:TRACe:DATA? offset,size``, B2900 SCPI Command Reference). When a segment
is complete and read, the buffer is cleared and the next segment started at
once (``:TRAC:FEED:CONT NEV;:TRAC:CLE;:TRAC:FEED:CONT NEXT;:INIT``). With the
timer's automatic reset off (``:SYST:TIME:TIM:COUN:RES:AUTO OFF``) the TIME
element of every point counts from one reset before the first segment, so all
segments share one time base and map onto the controller's clock with the one
start time of the first :INIT. The points missing between two segments (the
time the re-arm takes) show as a gap in the timestamps; the largest gap is
reported (``max_gap_s``) and the energy integral bridges it linearly.

The caller polls (:meth:`poll`, thread-safe) often enough that each read is
small, waits for a point at or past a time (:meth:`wait_until`), and ends with
:meth:`stop`, which returns every point as one
:class:`~orchestrator.meters.energy.PowerTrace` on the controller's clock.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from ..errors import MeterError
from .b2900 import MAX_POINTS, B2900Meter
from .energy import PowerTrace

__all__ = ["B2900Stream", "StreamResult"]

#: Most points asked for in one :TRAC:DATA? (16 bytes each, 800 kB).
MAX_READ_POINTS = 50_000


@dataclass(frozen=True)
class StreamResult:
    trace: PowerTrace  # every point read, on the controller's clock
    segments: int  # acquisitions of at most MAX_POINTS the stream was made of
    max_gap_s: float  # the largest distance between two consecutive points (the interval when no gap)


class B2900Stream:
    """One continuous acquisition of ``meter``; ``start()``, ``poll()``..., ``stop()``."""

    def __init__(self, meter: B2900Meter, segment_points: int = MAX_POINTS):
        if not 2 <= int(segment_points) <= MAX_POINTS:
            raise ValueError(f"segment_points must be in 2..{MAX_POINTS}, got {segment_points}")
        self.meter = meter
        self.segment_points = int(segment_points)
        self._lock = threading.RLock()
        self._currents: list[np.ndarray] = []
        self._times: list[np.ndarray] = []
        self._in_segment = 0  # points of the running segment read so far
        self._segments = 0
        self._first_meter_t: float | None = None
        self._last_meter_t: float | None = None
        self.start_s: float | None = None  # controller time of the first :INIT (midpoint of the write)
        self.start_uncertainty_s = 0.0
        self._segment_start_s = 0.0
        self._stopped = False

    # -- life cycle ---------------------------------------------------------------
    def start(self) -> float:
        """Program the instrument and start the first segment; the controller time of that start."""
        m = self.meter
        n = self.segment_points
        m.send_setup(m.setup_commands(n) + [
            ":TRAC:FEED:CONT NEV",
            ":TRAC:CLE",
            ":TRAC:FEED SENS",
            f":TRAC:POIN {n}",
            ":TRAC:FEED:CONT NEXT",
            ":SYST:TIME:TIM:COUN:RES:AUTO OFF",
        ])
        m._check_errors(f"configuring a stream of {n}-point segments")
        # One message: a second small write right behind a first would wait for its acknowledgement
        # (Nagle's algorithm against delayed ACKs: 40 ms on Linux), and :INIT would start that much later
        # than the time taken here.
        t_before = time.monotonic()
        m._write(":SYST:TIME:TIM:COUN:RES;:INIT", "starting the acquisition (:SYST:TIME:TIM:COUN:RES;:INIT)")
        t_after = time.monotonic()
        with self._lock:
            self.start_s = (t_before + t_after) / 2.0
            self.start_uncertainty_s = (t_after - t_before) / 2.0
            self._segment_start_s = self.start_s
            self._segments = 1
        return self.start_s

    def stop(self) -> StreamResult:
        """``:ABOR``, read what the buffer still holds, check the error queue; every point read."""
        with self._lock:
            self._require_started("stop")
            self.meter._write(":ABOR", "aborting the acquisition (:ABOR)")
            self._stopped = True
            self._read_new(final=True)
            self.meter._check_errors("streaming")
            return self._result()

    def abandon(self) -> None:
        """Stop the instrument after a failure, without reading (best effort, never raises)."""
        with self._lock:
            self._stopped = True
            try:
                self.meter._write(":ABOR", "aborting the acquisition (:ABOR)")
            except MeterError:
                pass

    # -- reading -------------------------------------------------------------------
    def poll(self) -> int:
        """Read the points acquired since the last poll (re-arming a completed segment); how many."""
        with self._lock:
            self._require_started("poll")
            if self._stopped:
                return 0
            return self._read_new(final=False)

    @property
    def last_point_s(self) -> float | None:
        """Controller time of the newest point read (centre of its aperture)."""
        with self._lock:
            return None if self._last_meter_t is None else self._to_controller(self._last_meter_t)

    def wait_until(self, t_s: float, timeout_s: float) -> bool:
        """Poll until a point at or past controller time ``t_s`` was read (True) or ``timeout_s`` passed."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            self.poll()
            last = self.last_point_s
            if last is not None and last >= t_s:
                return True
            now = time.monotonic()
            if now >= deadline:
                return False
            # the point for t_s is due at about t_s + aperture/2: sleep until then, polling at least every 20 ms
            due = t_s + self.meter.aperture_s / 2.0 - now
            time.sleep(min(max(due, 0.001), 0.02, deadline - now))

    def next_poll_in_s(self, default_s: float) -> float:
        """How long a poller may sleep: ``default_s``, or less when the running segment ends sooner (so the
        next one starts with a short gap)."""
        with self._lock:
            m = self.meter
            seg_end = self._segment_start_s + (self.segment_points - 1) * m.interval_s + m.aperture_s
            return max(0.0005, min(default_s, seg_end - time.monotonic() + 0.0005))

    # -- internals -----------------------------------------------------------------
    def _require_started(self, what: str) -> None:
        if self.start_s is None:
            raise MeterError(f"B2900 at {self.meter.resource}: {what}: start() first")

    def _to_controller(self, meter_t: float | np.ndarray):
        return self.start_s + (meter_t - self._first_meter_t) + self.meter.aperture_s / 2.0

    def _read_new(self, *, final: bool) -> int:
        m = self.meter
        total = 0
        while True:
            stored = int(float(m._query(":TRAC:POIN:ACT?", "counting the points taken (:TRAC:POIN:ACT?)")))
            if stored < self._in_segment or stored > self.segment_points:
                raise m._fail("streaming", detail=f"the trace buffer holds {stored} points, "
                                                  f"{self._in_segment} were read already")
            while self._in_segment < stored:
                size = min(stored - self._in_segment, MAX_READ_POINTS)
                self._append(self._read_block(self._in_segment, size))
                self._in_segment += size
                total += size
            if self._in_segment < self.segment_points or final:
                return total
            self._rearm()

    def _read_block(self, offset: int, size: int) -> np.ndarray:
        doing = f"reading points {offset}..{offset + size - 1} of the trace buffer (:TRAC:DATA?)"
        values = self.meter._io(
            doing,
            lambda i: i.query_binary_values(f":TRAC:DATA? {offset},{size}", datatype="d", is_big_endian=True,
                                            container=np.array),
        )
        values = np.asarray(values, dtype=np.float64)
        if values.size != 2 * size:
            raise self.meter._fail(doing, detail=f"expected {2 * size} values (current, time pairs), got {values.size}")
        self.meter.check_no_data(values, doing)
        return values

    def _append(self, values: np.ndarray) -> None:
        current, meter_t = values[0::2], values[1::2]
        if self._first_meter_t is None:
            self._first_meter_t = float(meter_t[0])
        previous = self._last_meter_t
        if np.any(np.diff(meter_t) <= 0) or (previous is not None and meter_t[0] <= previous):
            raise self.meter._fail("streaming", detail="timestamps are not increasing (was the timer reset?)")
        self._currents.append(current)
        self._times.append(meter_t)
        self._last_meter_t = float(meter_t[-1])

    def _rearm(self) -> None:
        """The segment is complete and read: clear the buffer and start the next one."""
        m = self.meter
        m._write(":TRAC:FEED:CONT NEV;:TRAC:CLE;:TRAC:FEED:CONT NEXT;:INIT",
                 "starting the next segment (:TRAC:CLE;:INIT)")
        self._segment_start_s = time.monotonic()
        self._in_segment = 0
        self._segments += 1

    def _result(self) -> StreamResult:
        if not self._times or sum(t.size for t in self._times) < 2:
            raise self.meter._fail("streaming", detail="the acquisition holds fewer than 2 points")
        meter_t = np.concatenate(self._times)
        current = np.concatenate(self._currents)
        m = self.meter
        trace = PowerTrace.from_current(
            self._to_controller(meter_t), current, m.voltage_v, aperture_s=m.aperture_s, interval_s=m.interval_s,
            t_uncertainty_s=self.start_uncertainty_s, resource=m.resource)
        return StreamResult(trace=trace, segments=self._segments, max_gap_s=float(np.diff(meter_t).max()))

"""The background thread that polls every rail while the measurement window is open.

It ticks at the finest conversion period among the rails, divided by
``POLLS_PER_PERIOD`` (at least ``MIN_TICK_NS`` apart): each sensor's gate
reads its files only once a new conversion can exist, and the sub-period
ticks catch a conversion that came late within a fraction of a period. The
thread is bounded: it ends at ``stop()`` (after one last round of polls, so
that a sample lies close to the window end) or once ``max_duration_s`` has
passed, whichever comes first; it never touches the inference thread.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, List, Optional, Sequence

from device_agent.errors import PowerError
from device_agent.power.base import PowerSensor, Sample

POLLS_PER_PERIOD = 4
MIN_TICK_NS = 1000000
JOIN_TIMEOUT_S = 5.0
_NS_PER_S = 1000000000


class Sampler:
    """Collects ``Sample``s of started sensors from ``start()`` to ``stop()``."""

    def __init__(self, sensors: Sequence[PowerSensor], max_duration_s: float,
                 clock_ns: Callable[[], int] = time.monotonic_ns, polls_per_period: int = POLLS_PER_PERIOD) -> None:
        if not sensors:
            raise ValueError("no sensors to sample")
        self._sensors = list(sensors)
        self._clock_ns = clock_ns
        self._polls_per_period = polls_per_period
        self.max_duration_ns = int(max_duration_s * _NS_PER_S)
        self.samples: List[Sample] = []
        self.error: Optional[BaseException] = None
        self.timed_out = False
        self.polls = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @property
    def tick_ns(self) -> int:
        finest_ns = min(s.period_ns for s in self._sensors)
        return max(finest_ns // self._polls_per_period, MIN_TICK_NS)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("sampler already started")
        self._thread = threading.Thread(target=self._run, args=(self.tick_ns,), name="power-sampler", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the thread to end (returns at once; ``stop()`` waits for it)."""
        self._stop.set()

    def stop(self) -> List[Sample]:
        """End the thread and return the samples; raise what went wrong in it."""
        self._stop.set()
        if self._thread is None:
            return self.samples
        self._thread.join(JOIN_TIMEOUT_S)
        if self._thread.is_alive():
            raise PowerError("power sampler did not stop within %.1f s (a sensor read hangs?)" % JOIN_TIMEOUT_S)
        if self.error is not None:
            raise self.error
        if self.timed_out:
            raise PowerError(
                "power sampler reached its bound of %.1f s before the window closed: the samples do not cover it"
                % (self.max_duration_ns / _NS_PER_S)
            )
        return self.samples

    def _run(self, tick_ns: int) -> None:
        clock_ns = self._clock_ns
        start_ns = clock_ns()
        deadline_ns = start_ns + self.max_duration_ns
        next_tick_ns = start_ns
        try:
            for _ in range(self.max_duration_ns // tick_ns + 2):
                self._poll_all()
                now_ns = clock_ns()
                if now_ns >= deadline_ns:
                    break
                next_tick_ns += tick_ns
                if next_tick_ns <= now_ns:  # late: skip the missed ticks
                    next_tick_ns = now_ns + tick_ns
                if self._stop.wait((next_tick_ns - now_ns) / _NS_PER_S):
                    self._poll_all()
                    return
            self.timed_out = True
        except BaseException as exc:  # handed to the caller of stop()
            self.error = exc

    def _poll_all(self) -> None:
        self.polls += 1
        for sensor in self._sensors:
            sample = sensor.poll(self._clock_ns())
            if sample is not None:
                self.samples.append(sample)

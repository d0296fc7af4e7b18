"""The measurement loop, pure with respect to time and inference.

``measure()`` gets the inference as ``invoke()`` and the clock as
``clock_ns()``; it never reads a real clock or touches an interpreter, so it
is tested with fakes. Per measured inference the hot loop does two clock reads,
the call, two stores into preallocated lists and one integer comparison
against the next moment something has to be decided (progress tick, minimum
duration, cap); everything else happens between batches of inferences.

Rules (``docs/agent-protocol.md``):

* ``warmup_runs`` inferences run first and are discarded;
* the window starts at the start of the first measured inference and ends at
  the end of the last one; ``elapsed`` = last end - first start;
* the loop stops once ``count >= min_count`` and ``elapsed >= min_duration_s``,
  or once ``elapsed >= max_duration_s`` (no new inference starts after that,
  so the window can exceed the cap by at most the inference that crossed it);
* ``judge()`` computes the verdict, once, from named checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, List, Optional

from device_agent.spec import Rules
from device_agent.verdict import Verdict, judge

PHASE_WARMUP = "warmup"
PHASE_MEASURE = "measure"
_NS_PER_S = 1000000000
CHUNK = 8192  # inferences per preallocated timestamp chunk

# on_progress(phase, count, elapsed_s)
ProgressCallback = Callable[[str, int, float], None]


@dataclass(frozen=True)
class Measurement:
    """Result of one measurement window (warm-up excluded)."""

    start_ns: List[int] = field(repr=False)
    end_ns: List[int] = field(repr=False)
    warmup_runs: int
    verdict: Verdict

    @property
    def count(self) -> int:
        return len(self.start_ns)

    @property
    def window_start_ns(self) -> int:
        return self.start_ns[0]

    @property
    def window_end_ns(self) -> int:
        return self.end_ns[-1]

    @property
    def duration_ns(self) -> int:
        return self.window_end_ns - self.window_start_ns

    @property
    def duration_s(self) -> float:
        return self.duration_ns / _NS_PER_S


def measure(
    invoke: Callable[[], None],
    clock_ns: Callable[[], int],
    rules: Rules,
    on_progress: Optional[ProgressCallback] = None,
    progress_interval_s: float = 0.5,
    on_window_open: Optional[Callable[[], None]] = None,
    on_window_close: Optional[Callable[[], None]] = None,
) -> Measurement:
    """Warm up, then measure until the rules are satisfied or the cap is hit.

    ``on_window_open()`` runs after the warm-up, right before the first
    measured inference; ``on_window_close()`` right after the last one (e.g.
    to start and stop a power sampler thread). Neither is in the hot loop.
    """
    report = on_progress if on_progress is not None else _no_progress
    interval_ns = max(_to_ns(progress_interval_s), 1)
    _warm_up(invoke, clock_ns, rules.warmup_runs, report, interval_ns)
    if on_window_open is not None:
        on_window_open()

    # Timestamps go into preallocated chunks (index stores are cheaper than
    # appends); the chunks are joined once the window is closed.
    start_chunks: List[List[int]] = []
    end_chunks: List[List[int]] = []
    # First measured inference: opens the window.
    start = clock_ns()
    invoke()
    end = clock_ns()
    start_chunks.append([start])
    end_chunks.append([end])
    count = 1
    min_end_ns = start + _to_ns(rules.min_duration_s)
    cap_ns = start + _to_ns(rules.max_duration_s)
    next_progress_ns = start + interval_ns
    min_count = rules.min_count

    while not (end >= cap_ns or (count >= min_count and end >= min_end_ns)):
        if end >= next_progress_ns:
            report(PHASE_MEASURE, count, (end - start) / _NS_PER_S)
            next_progress_ns = _next_tick(next_progress_ns, end, interval_ns)
        if count < min_count:
            # Count-bound: run the missing inferences unless a progress tick
            # or the cap comes first.
            batch = min(min_count - count, CHUNK)
            stop_ns = min(next_progress_ns, cap_ns)
        else:
            # Time-bound: the count is met, run until the minimum duration.
            batch = CHUNK
            stop_ns = min(next_progress_ns, min_end_ns)
        starts = [0] * batch
        ends = [0] * batch
        i = 0
        # Hot loop: two clock reads, the inference, one store each, one compare.
        for i in range(batch):
            starts[i] = clock_ns()
            invoke()
            end = clock_ns()
            ends[i] = end
            if end >= stop_ns:
                break
        done = i + 1
        if done < batch:
            del starts[done:]
            del ends[done:]
        start_chunks.append(starts)
        end_chunks.append(ends)
        count += done
    if on_window_close is not None:
        on_window_close()

    start_ns = [t for chunk in start_chunks for t in chunk]
    end_ns = [t for chunk in end_chunks for t in chunk]
    return Measurement(
        start_ns=start_ns, end_ns=end_ns, warmup_runs=rules.warmup_runs,
        verdict=judge(count, end - start, rules),
    )


def _warm_up(
    invoke: Callable[[], None],
    clock_ns: Callable[[], int],
    runs: int,
    report: ProgressCallback,
    interval_ns: int,
) -> None:
    if runs <= 0:
        return
    start = clock_ns()
    next_progress_ns = start + interval_ns
    for i in range(runs):
        invoke()
        now = clock_ns()
        if now >= next_progress_ns and i + 1 < runs:
            report(PHASE_WARMUP, i + 1, (now - start) / _NS_PER_S)
            next_progress_ns = _next_tick(next_progress_ns, now, interval_ns)


def _next_tick(tick_ns: int, now_ns: int, interval_ns: int) -> int:
    """The first tick after ``now_ns`` on the grid ``tick_ns + k * interval_ns``."""
    return tick_ns + ((now_ns - tick_ns) // interval_ns + 1) * interval_ns


def _to_ns(seconds: float) -> int:
    return int(round(seconds * _NS_PER_S))


def _no_progress(phase: str, count: int, elapsed_s: float) -> None:
    pass

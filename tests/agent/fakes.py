"""A fake board for the measurement loop: a clock that only moves when asked."""

from __future__ import annotations

from typing import Iterable, List, Optional


class FakeBoard:
    """``invoke()`` advances time by the next latency; each clock read by ``read_cost_ns``.

    Records every invoke (start/end as seen by the board) so tests can tell
    warm-up calls from measured ones.
    """

    def __init__(self, latency_ns: int = 1000000, latencies_ns: Optional[Iterable[int]] = None,
                 read_cost_ns: int = 10, t0_ns: int = 10 ** 12) -> None:
        self.now_ns = t0_ns
        self.latency_ns = latency_ns
        self._latencies = iter(latencies_ns) if latencies_ns is not None else None
        self.read_cost_ns = read_cost_ns
        self.invokes: List[tuple] = []

    def clock_ns(self) -> int:
        self.now_ns += self.read_cost_ns
        return self.now_ns

    def invoke(self) -> None:
        start = self.now_ns
        latency = next(self._latencies, self.latency_ns) if self._latencies is not None else self.latency_ns
        self.now_ns += latency
        self.invokes.append((start, self.now_ns))

"""Round-trip clock offset estimation against an injected known offset."""

from __future__ import annotations

import random

import pytest

from orchestrator.transport.clock import estimate_offset


class FakeLink:
    """Controller clock advances by the link delays; the board clock is the controller's + offset."""

    def __init__(self, offset_ns: int, delays_ns: list[tuple[int, int]]):
        self.now = 1_000_000_000
        self.offset_ns = offset_ns
        self.delays = iter(delays_ns)

    def clock(self) -> int:
        return self.now

    def board(self) -> int:
        there, back = next(self.delays)
        self.now += there
        reading = self.now + self.offset_ns
        self.now += back
        return reading


def test_symmetric_link_recovers_the_offset_exactly():
    link = FakeLink(123_456_789, [(500_000, 500_000)] * 4)
    est = estimate_offset(link.board, probes=4, clock_ns=link.clock)
    assert est.offset_ns == 123_456_789 and est.uncertainty_ns == 500_000


def test_tightest_probe_wins_and_the_truth_is_within_its_uncertainty():
    rng = random.Random(7)
    delays = [(rng.randint(50_000, 5_000_000), rng.randint(50_000, 5_000_000)) for _ in range(20)]
    link = FakeLink(-987_654_321, delays)
    est = estimate_offset(link.board, probes=20, clock_ns=link.clock)
    best = min(delays, key=lambda d: d[0] + d[1])
    assert est.uncertainty_ns == (best[0] + best[1]) // 2
    assert abs(est.offset_ns - (-987_654_321)) <= est.uncertainty_ns


def test_conversion_round_trip():
    link = FakeLink(5_000, [(10, 10)])
    est = estimate_offset(link.board, probes=1, clock_ns=link.clock)
    assert est.to_controller_ns(est.to_board_ns(42)) == 42


def test_probes_must_be_positive():
    with pytest.raises(ValueError):
        estimate_offset(lambda: 0, probes=0)

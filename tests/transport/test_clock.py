"""Round-trip clock offset estimation against an injected known offset."""

from __future__ import annotations

import random

import pytest

from orchestrator.transport.clock import ClockOffset, JobClock, estimate_offset


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


def test_the_truth_lies_within_what_the_round_trips_bound():
    rng = random.Random(7)
    delays = [(rng.randint(50_000, 5_000_000), rng.randint(50_000, 5_000_000)) for _ in range(20)]
    link = FakeLink(-987_654_321, delays)
    est = estimate_offset(link.board, probes=20, clock_ns=link.clock)
    best = min(delays, key=lambda d: d[0] + d[1])
    assert est.consistent
    # the intersection of the probes' intervals is never wider than the tightest probe's ...
    assert est.uncertainty_ns <= (best[0] + best[1] + 1) // 2
    assert abs(est.offset_ns - (-987_654_321)) <= est.uncertainty_ns


def test_asymmetric_probes_bound_the_offset_tighter_than_half_a_round_trip():
    # one probe whose answer left late (the board read its clock near the end of the round trip) and one
    # whose answer left early: each bounds one side, together they pin the offset to 0.2 ms, although
    # every round trip took 2 ms
    link = FakeLink(42_000_000, [(1_900_000, 100_000), (100_000, 1_900_000)])
    est = estimate_offset(link.board, probes=2, clock_ns=link.clock)
    assert est.uncertainty_ns <= 100_000 < 1_000_000
    assert abs(est.offset_ns - 42_000_000) <= est.uncertainty_ns


def test_a_clock_step_between_probes_is_said_and_bounded_by_the_hull():
    link = FakeLink(0, [(10_000, 10_000)] * 4)
    readings = iter([0, 0, 5_000_000, 5_000_000])  # the board's clock jumps by 5 ms after two probes

    def board() -> int:
        return link.board() + next(readings)

    est = estimate_offset(board, probes=4, clock_ns=link.clock)
    assert not est.consistent
    assert est.offset_ns - est.uncertainty_ns <= 0 and 5_000_000 <= est.offset_ns + est.uncertainty_ns


def test_job_clock_interpolates_a_drifting_offset():
    before = ClockOffset(offset_ns=1_000, uncertainty_ns=50, probes=8, at_board_ns=10_000_000_000)
    after = ClockOffset(offset_ns=3_000, uncertainty_ns=80, probes=8, at_board_ns=12_000_000_000)
    clock = JobClock(before, after)
    assert clock.offset_at(11_000_000_000) == pytest.approx(2_000)
    assert clock.to_controller_ns(11_500_000_000) == pytest.approx(11_500_000_000 - 2_500)
    assert clock.step_ns == 2_000 and clock.uncertainty_ns == 80
    same = JobClock.constant(before)
    assert same.offset_at(0) == 1_000 and same.step_ns == 0


def test_conversion_round_trip():
    link = FakeLink(5_000, [(10, 10)])
    est = estimate_offset(link.board, probes=1, clock_ns=link.clock)
    assert est.to_controller_ns(est.to_board_ns(42)) == 42


def test_probes_must_be_positive():
    with pytest.raises(ValueError):
        estimate_offset(lambda: 0, probes=0)

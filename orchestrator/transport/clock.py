"""Offset between the controller's and a board's monotonic clocks (round-trip method).

A probe asks the board for its clock between two controller readings ``t0``
and ``t1``: the board read its clock ``b`` at some instant of ``[t0, t1]``, so
the offset (board minus controller) lies in ``[b - t1, b - t0]``. Several
probes each bound it; the offset lies in the intersection of their intervals,
whose midpoint is the estimate and whose half-width the uncertainty: what the
round trips really bound, often much less than half of one round trip. Should
the intervals not intersect (the board's clock stepped between two probes),
the estimate falls back to the hull of all of them, which still contains
every offset seen, and says so (``consistent``).

Around each job the offset is estimated right before and right after it
(:class:`JobClock`); a board time inside the job is mapped with the offset
interpolated between the two, so a clock drifting at a steady rate is
followed, and the row stores both estimates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

__all__ = ["ClockOffset", "JobClock", "SAME_CLOCK", "estimate_offset"]


@dataclass(frozen=True)
class ClockOffset:
    offset_ns: int  # board clock minus controller clock
    uncertainty_ns: int  # half-width of the interval the round trips bound the offset to
    probes: int
    at_board_ns: int = 0  # the board's clock when the estimate was made (mid of its readings)
    consistent: bool = True  # False: the probes' intervals did not intersect (a clock step)

    def to_board_ns(self, controller_ns: float) -> float:
        return controller_ns + self.offset_ns

    def to_controller_ns(self, board_ns: float) -> float:
        return board_ns - self.offset_ns


SAME_CLOCK = ClockOffset(0, 0, 0)


def estimate_offset(
    board_clock_ns: Callable[[], int], probes: int = 8, clock_ns: Callable[[], int] = time.monotonic_ns
) -> ClockOffset:
    """Round-trip estimate; ``board_clock_ns`` performs one exchange with the board."""
    if probes < 1:
        raise ValueError("probes must be >= 1")
    lows, highs, boards = [], [], []
    for _ in range(probes):
        t0 = clock_ns()
        board = board_clock_ns()
        t1 = clock_ns()
        lows.append(board - t1)
        highs.append(board - t0)
        boards.append(board)
    lo, hi = max(lows), min(highs)
    consistent = lo <= hi
    if not consistent:
        lo, hi = min(lows), max(highs)
    return ClockOffset(offset_ns=(lo + hi) // 2, uncertainty_ns=(hi - lo + 1) // 2, probes=probes,
                       at_board_ns=(boards[0] + boards[-1]) // 2, consistent=consistent)


@dataclass(frozen=True)
class JobClock:
    """The offsets estimated right before and right after one job."""

    before: ClockOffset
    after: ClockOffset

    @classmethod
    def constant(cls, offset: ClockOffset) -> "JobClock":
        return cls(offset, offset)

    def offset_at(self, board_ns: float) -> float:
        """The offset at a board time, interpolated linearly between the two estimates."""
        b0, b1 = self.before.at_board_ns, self.after.at_board_ns
        if b1 == b0:
            return (self.before.offset_ns + self.after.offset_ns) / 2
        frac = (board_ns - b0) / (b1 - b0)
        return self.before.offset_ns + frac * (self.after.offset_ns - self.before.offset_ns)

    def to_controller_ns(self, board_ns: float) -> float:
        return board_ns - self.offset_at(board_ns)

    def to_board_ns(self, controller_ns: float) -> float:
        # the offset changes by far less than itself over a job: evaluating it at the board time the
        # first estimate gives is exact to well below a nanosecond
        return controller_ns + self.offset_at(controller_ns + self.before.offset_ns)

    @property
    def uncertainty_ns(self) -> int:
        return max(self.before.uncertainty_ns, self.after.uncertainty_ns)

    @property
    def step_ns(self) -> int:
        """How far the offset moved during the job (drift, or a step of the board's clock)."""
        return self.after.offset_ns - self.before.offset_ns

    @property
    def consistent(self) -> bool:
        return self.before.consistent and self.after.consistent

"""Offset between the controller's and a board's monotonic clocks (round-trip method).

Each probe asks the board for its clock between two controller readings; the
board's reading is assumed to sit in the middle, so the probe's uncertainty is
half its round trip. The tightest of several probes is kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class ClockOffset:
    offset_ns: int  # board clock minus controller clock
    uncertainty_ns: int  # half the round trip of the best probe
    probes: int

    def to_board_ns(self, controller_ns: float) -> float:
        return controller_ns + self.offset_ns

    def to_controller_ns(self, board_ns: float) -> float:
        return board_ns - self.offset_ns


SAME_CLOCK = ClockOffset(0, 0, 0)


def estimate_offset(
    board_clock_ns: Callable[[], int], probes: int = 16, clock_ns: Callable[[], int] = time.monotonic_ns
) -> ClockOffset:
    """Round-trip estimate; ``board_clock_ns`` performs one exchange with the board."""
    if probes < 1:
        raise ValueError("probes must be >= 1")
    best: tuple[int, int] | None = None
    for _ in range(probes):
        t0 = clock_ns()
        board = board_clock_ns()
        t1 = clock_ns()
        half = (t1 - t0) // 2
        if best is None or half < best[1]:
            best = (board - (t0 + half), half)
    assert best is not None
    return ClockOffset(offset_ns=best[0], uncertainty_ns=best[1], probes=probes)


PROBE_SCRIPT = "import sys,time\nfor _ in sys.stdin:\n    print(time.monotonic_ns(), flush=True)\n"

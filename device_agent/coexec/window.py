"""The co-execution window (pure): which frames a co-execution's figures count, and over which interval.

The rule (``WINDOW_RULE``, also written in the summary as ``window_rule``):

* The stream *closes* the first time a worker, about to take its next frame,
  finds the stream's rules met (``min_count`` completed frames and
  ``min_duration_s``, or ``max_duration_s``; see ``worker``). No frame is
  taken after that: the worker that closed it is the first member to go idle,
  at the close.
* The window runs from the start of frame 0 to the end of the last frame
  completed by the close. A frame is *in the window* iff it completed by the
  close; the frames of one batch share its end, so a batch is in or out as
  a whole.
* Frames still running at the close (the lone tail of the slower members)
  are finished and kept in the trace (``in_window`` = 0), and counted in the
  summary's ``tail``, but not in ``count``, throughput, shares, latency or
  gains; the energy is integrated over the same window.

Every member works throughout the window, so no member's lone tail is
charged to the stream. What the window leaves out is the part of the frame
each other member had in flight at the close: the throughput is low by at
most (members - 1) frames over the window, whatever the members' speeds.

A stream that never closed (its workers ended for another reason) closes
when its first member went idle: the earliest last-frame end of a member.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

WINDOW_RULE = ("frames completed by the stream's close (the first take that found the rules met, "
               "when the first member goes idle); frames in flight at the close are the excluded tail")


@dataclass(frozen=True)
class CoexecWindow:
    start_ns: int  # start of frame 0
    end_ns: int  # end of the last frame completed by the close
    closed_ns: int  # when the stream closed (>= end_ns)
    in_window: List[bool]  # per frame, in the order given


def coexec_window(worker: Sequence[int], start_ns: Sequence[int], end_ns: Sequence[int],
                  closed_ns: Optional[int]) -> CoexecWindow:
    """The window of a stream's frames (any order); ``closed_ns`` None or 0: the stream never closed."""
    if not end_ns:
        raise ValueError("no frames")
    if not closed_ns:
        last: Dict[int, int] = {}
        for w, e in zip(worker, end_ns):
            last[w] = max(last.get(w, e), e)
        closed_ns = min(last.values())
    in_window = [e <= closed_ns for e in end_ns]
    ends = [e for e, inside in zip(end_ns, in_window) if inside]
    if not ends:
        raise ValueError("no frame completed by the close at %d ns" % closed_ns)
    return CoexecWindow(start_ns=min(start_ns), end_ns=max(ends), closed_ns=closed_ns, in_window=in_window)

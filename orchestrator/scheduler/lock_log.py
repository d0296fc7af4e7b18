"""The board's lock log (``<work_dir>/.socfarm.lock.log``, written by ``board_lock.LOCK_SCRIPT``): who held
the board when, on the board's own clock, and the checks that prove no two sweeps measured on it at once.

Each line is one JSON object: ``event`` (acquired, refused, released), ``holder`` (owner run, host, pid),
the lock script's ``pid``, ``t_wall`` and ``t_mono_ns`` on the board, and for a release ``why``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from orchestrator.errors import StoreError

LOG_NAME = ".socfarm.lock.log"


@dataclass(frozen=True)
class Holding:
    owner: str  # the holder's run id
    pid: int  # the lock script's, on the board
    start: float  # board wall clock, s
    end: float
    released: bool  # False: killed outright, its end is the next acquire (which its end made possible)


def read_log(path: Path) -> list[dict]:
    """The log's events in file order; a line that is not an event is an error naming file and line."""
    events = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        try:
            event = json.loads(line)
            if not isinstance(event, dict) or event.get("event") not in ("acquired", "refused", "released"):
                raise ValueError("not a lock event")
            float(event["t_wall"])
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"{path}:{number}: not a lock log line ({exc}): {line[:200]!r}") from None
        events.append(event)
    return events


def _owner(event: dict) -> str:
    holder = event.get("holder")
    return str(holder.get("owner")) if isinstance(holder, dict) else str(holder)


def holdings(events: Iterable[dict]) -> tuple[list[Holding], list[Holding]]:
    """Closed holdings (start order) and the ones still open at the log's end (a holder still holding it).

    An acquire while another holding is open ends that one there (its holder was killed outright, the kernel
    freed the lock); should that holder still log its release later, its holding is given its true end, and
    ``overlaps`` reports the two."""
    done: list[Holding] = []
    open_: dict[tuple[str, int], tuple[float, str]] = {}
    assumed: dict[tuple[str, int], int] = {}  # ended by the next acquire: its index in ``done``
    for e in events:
        key = (_owner(e), int(e.get("pid", 0)))
        if e["event"] == "acquired":
            for k, (start, owner) in list(open_.items()):
                assumed[k] = len(done)
                done.append(Holding(owner, k[1], start, float(e["t_wall"]), released=False))
                del open_[k]
            open_[key] = (float(e["t_wall"]), _owner(e))
        elif e["event"] == "released" and key in open_:
            start, owner = open_.pop(key)
            done.append(Holding(owner, key[1], start, float(e["t_wall"]), released=True))
        elif e["event"] == "released" and key in assumed:  # it held on after another's acquire
            index = assumed.pop(key)
            h = done[index]
            done[index] = Holding(h.owner, h.pid, h.start, float(e["t_wall"]), released=True)
    still = [Holding(owner, k[1], start, float("inf"), released=False) for k, (start, owner) in open_.items()]
    return sorted(done, key=lambda h: h.start), still


def overlaps(held: list[Holding]) -> list[str]:
    """Every pair of consecutive holdings of different holders that overlap (none, when the lock worked)."""
    ordered = sorted(held, key=lambda h: h.start)
    return [f"{a.owner} (pid {a.pid}) held it until {a.end:.6f}, {b.owner} (pid {b.pid}) from {b.start:.6f}"
            for a, b in zip(ordered, ordered[1:]) if a.end > b.start]


def outside(held: list[Holding], owner: str, times: Iterable[float]) -> list[float]:
    """The times (board wall clock) at which ``owner`` did something without holding the board."""
    mine = [h for h in held if h.owner == owner]
    return [t for t in times if not any(h.start <= t <= h.end for h in mine)]

"""Cool-down: before each job a board waits until every thermal zone of its SoC reads below ``cooldown_c``.

Without it a board that heats up under load (an XU3 is capped within
seconds at full load) gives results that depend on the jobs before it. The
controller reads the zones the inventory lists over the board's transport
(the health check's reader, ``health.zone_temps_command``), about once a
second, and says on the progress output what it waits for. Still too hot
after ``cooldown_timeout_s``: ``CooldownTimeout``, and the board's remaining
jobs fail (the board runner quarantines the board). The wait is in the
job's results row (``cooldown_wait_s``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orchestrator.config.inventory import Board
from orchestrator.errors import StableError, TransientError
from orchestrator.health import zone_temps_c, zone_temps_command
from orchestrator.transport.agent import Transport

POLL_S = 1.0
NOTE_EVERY_S = 30.0
READ_TIMEOUT_S = 30.0


class CooldownTimeout(TransientError):
    """A board's zones stayed above its cool-down temperature: its remaining jobs are not run."""


class ZoneUnreadable(StableError):
    """A thermal zone the inventory lists cannot be read on the board."""


@dataclass(frozen=True)
class Cooldown:
    waited_s: float  # 0.0: cool already
    temps_c: dict[str, float]  # the reading that ended the wait (every zone below the threshold)


def wait_until_cool(board: str, read_c: Callable[[], dict[str, float]], threshold_c: float, timeout_s: float, *,
                    clock: Callable[[], float] = time.monotonic, wait: Callable[[float], bool] = threading.Event().wait,
                    note: Callable[[str], None] = lambda text: None, poll_s: float = POLL_S,
                    note_every_s: float = NOTE_EVERY_S, simulated: bool = False) -> Cooldown | None:
    """Read the zones (``read_c``: zone -> °C) until all are below ``threshold_c``; ``wait(s)`` sleeps between
    readings and returns True when the sweep stops (then None). ``CooldownTimeout`` once ``timeout_s`` have
    passed with a zone still at or above the threshold."""
    label = " (simulated)" if simulated else ""
    start = clock()
    noted_at: float | None = None
    while True:
        temps = read_c()
        now = clock()
        hot = {zone: t for zone, t in temps.items() if t >= threshold_c}
        if not hot:
            if noted_at is None:
                return Cooldown(0.0, temps)  # cool at the first reading: no wait
            note(f"{board}: cool-down: below {threshold_c:g} °C after {now - start:.0f} s")
            return Cooldown(now - start, temps)
        zone = max(hot, key=hot.__getitem__)
        if now - start >= timeout_s:
            raise CooldownTimeout(f"{board}: cool-down: {zone} at {hot[zone]:.1f} °C{label} stayed above "
                                  f"{threshold_c:g} °C for {timeout_s:g} s")
        if noted_at is None or now - noted_at >= note_every_s:
            note(f"{board}: cool-down: {zone} at {hot[zone]:.1f} °C{label}, waiting until every zone is below "
                 f"{threshold_c:g} °C ({now - start:.0f} of at most {timeout_s:g} s)")
            noted_at = now
        if wait(poll_s):
            return None


def cool_down(board: Board, transport: Transport, stop: threading.Event, note: Callable[[str], None],
              journal: Callable[[dict[str, Any]], None]) -> Cooldown | None:
    """The board's cool-down before a job (None: the board has none configured, or the sweep stopped)."""
    thermal = board.thermal
    if thermal is None or thermal.cooldown_c is None:
        return None

    def read_c() -> dict[str, float]:
        temps = zone_temps_c(transport.run(zone_temps_command(board, thermal.zones), timeout_s=READ_TIMEOUT_S))
        missing = [z for z in thermal.zones if z not in temps]
        if missing:
            raise ZoneUnreadable(f"{board.name}: cool-down: cannot read {', '.join(missing)} under "
                                 f"{board.sysfs_root.rstrip('/')}/class/thermal (socfarm_thermal.zones lists it)")
        return {z: temps[z] for z in thermal.zones}

    done = wait_until_cool(board.name, read_c, thermal.cooldown_c, thermal.cooldown_timeout_s, wait=stop.wait,
                           note=note, poll_s=POLL_S, simulated=thermal.simulated)
    if done is not None and done.waited_s > 0:
        journal({"board": board.name, "state": "cooldown", "waited_s": round(done.waited_s, 3),
                 "temps_c": done.temps_c, "cooldown_c": thermal.cooldown_c, "t_wall": time.time()})
    return done

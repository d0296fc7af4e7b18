"""Health of a board before it measures: reachable, disk space, idle temperature."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from orchestrator.config.inventory import Board
from orchestrator.errors import TransientError


class BoardUnhealthy(TransientError):
    """The board failed its health check; it is quarantined for the rest of the run."""


@dataclass(frozen=True)
class HealthLimits:
    min_free_mb: float = 200.0
    max_idle_temp_c: float = 80.0


def health_command(board: Board) -> str:
    work = shlex.quote(board.work_dir)
    thermal = shlex.quote(board.sysfs_root.rstrip("/") + "/class/thermal")
    return (f"df -Pk {work} | tail -n 1; "
            f"for z in {thermal}/thermal_zone*/temp; do [ -r \"$z\" ] && echo \"temp $(cat \"$z\")\"; done; true")


def judge_health(board: Board, output: str, limits: HealthLimits = HealthLimits()) -> list[str]:
    """Problems found in the output of ``health_command`` (empty: healthy)."""
    problems = []
    lines = [line.split() for line in output.strip().splitlines() if line.strip()]
    df = next((parts for parts in lines if parts and parts[0] != "temp"), None)
    if df is None or len(df) < 4 or not df[3].isdigit():
        problems.append(f"cannot read free space of {board.work_dir}")
    elif int(df[3]) / 1024 < limits.min_free_mb:
        problems.append(f"only {int(df[3]) / 1024:.0f} MB free in {board.work_dir} (< {limits.min_free_mb:.0f} MB)")
    temps = [int(parts[1]) / 1000 for parts in lines if len(parts) == 2 and parts[0] == "temp" and
             parts[1].lstrip("-").isdigit()]
    if temps and max(temps) > limits.max_idle_temp_c:
        problems.append(f"idle temperature {max(temps):.1f} °C > {limits.max_idle_temp_c:.0f} °C")
    return problems

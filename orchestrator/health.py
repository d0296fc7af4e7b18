"""Health of a board before it measures: reachable, disk space, idle temperature, agent in place,
frequency governors writable."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.config.inventory import Board
from orchestrator.errors import TransientError


class BoardUnhealthy(TransientError):
    """The board failed its health check; it is quarantined for the rest of the run."""


@dataclass(frozen=True)
class HealthLimits:
    min_free_mb: float = 200.0
    max_idle_temp_c: float = 80.0


def zone_temps_command(board: Board, zones: Sequence[str] | None = None) -> str:
    """Shell: one line ``temp <zone> <millidegrees>`` per readable zone of ``zones`` (every zone of the board
    when None). Used by the health check and before every job (cool-down)."""
    thermal = board.sysfs_root.rstrip("/") + "/class/thermal"
    if zones is None:
        paths = shlex.quote(thermal) + "/thermal_zone*/temp"
    else:
        paths = " ".join(shlex.quote(f"{thermal}/{z}/temp") for z in zones)
    return (f"for p in {paths}; do [ -r \"$p\" ] && z=\"${{p%/temp}}\" && echo \"temp ${{z##*/}} $(cat \"$p\")\"; "
            "done; true")


def zone_temps_c(output: str) -> dict[str, float]:
    """Zone -> °C from the ``temp`` lines of ``zone_temps_command`` (lines without a number are skipped)."""
    temps = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "temp" and parts[2].lstrip("-").isdigit():
            temps[parts[1]] = int(parts[2]) / 1000
    return temps


def health_command(board: Board, agent_dir: str | None = None) -> str:
    work = shlex.quote(board.work_dir)
    sysfs = board.sysfs_root.rstrip("/")
    parts = [f"df -Pk {work} | tail -n 1", zone_temps_command(board)]
    if agent_dir:
        init = shlex.quote(f"{agent_dir}/device_agent/__init__.py")
        parts.append(f"[ -f {init} ] || echo 'missing agent'")
    for policy in _policies(board):
        gov = shlex.quote(f"{sysfs}/devices/system/cpu/cpufreq/{policy}/scaling_governor")
        parts.append(f"[ -w {gov} ] || echo 'readonly {policy}'")
    return "; ".join(parts) + "; true"


def _policies(board: Board) -> list[str]:
    return sorted({c.cpufreq_policy for c in board.components if c.kind == "cpu" and c.cpufreq_policy})


def judge_health(board: Board, output: str, limits: HealthLimits = HealthLimits()) -> list[str]:
    """Problems found in the output of ``health_command`` (empty: healthy)."""
    problems = []
    lines = [line.split() for line in output.strip().splitlines() if line.strip()]
    df = next((parts for parts in lines if parts and parts[0] not in ("temp", "missing", "readonly")), None)
    if df is None or len(df) < 4 or not df[3].isdigit():
        problems.append(f"cannot read free space of {board.work_dir}")
    elif int(df[3]) / 1024 < limits.min_free_mb:
        problems.append(f"only {int(df[3]) / 1024:.0f} MB free in {board.work_dir} (< {limits.min_free_mb:.0f} MB)")
    temps = zone_temps_c(output)
    hottest = max(temps, key=temps.__getitem__) if temps else None
    if hottest is not None and temps[hottest] > limits.max_idle_temp_c:
        problems.append(f"idle temperature {temps[hottest]:.1f} °C ({hottest}) > {limits.max_idle_temp_c:.0f} °C")
    if ["missing", "agent"] in lines:
        problems.append("the device agent is not on the board (run `orchestrator provision`, "
                        "or the sweep with --reprovision)")
    readonly = [parts[1] for parts in lines if len(parts) == 2 and parts[0] == "readonly"]
    if readonly:
        problems.append(f"cpufreq governor not writable for {', '.join(readonly)} (frequencies cannot be held)")
    return problems

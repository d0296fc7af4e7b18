"""Power from on-board sensors the agent sampled itself (XU3 INA231 rails, hwmon)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from orchestrator.errors import AgentError
from orchestrator.meters.session import no_power, power_columns


def sensor_power(
    summary: dict[str, Any], csv_path: Path, run_id: str, job_id: str
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Result columns (sum over rails) and per-rail samples from the agent's power.csv."""
    block = summary["power"]
    try:
        samples = pd.read_csv(csv_path, dtype={"rail": "string", "t_mono_ns": "int64", "power_w": "float64"})
    except (OSError, ValueError) as exc:
        raise AgentError(f"{job_id}: unreadable power samples {csv_path}: {exc}", error_class="TraceError") from None
    if list(samples.columns) != ["rail", "t_mono_ns", "power_w"]:
        raise AgentError(f"{job_id}: {csv_path} has columns {list(samples.columns)}", error_class="TraceError")
    rails = block.get("rails", {})
    cols = {**no_power(), "meter_kind": block.get("kind"), "meter_measures": "rails", "power_samples": len(samples)}
    if rails and all(r.get("energy_j") is not None for r in rails.values()):
        energy = float(sum(r["energy_j"] for r in rails.values()))
        cols.update(power_columns(energy, summary["duration_s"], summary.get("count")))
    rows = pd.DataFrame(
        {
            "run_id": run_id,
            "job_id": job_id,
            "source": "sensor",
            "rail": samples["rail"].astype(str),
            "t_mono_s": samples["t_mono_ns"] / 1e9,
            "power_w": samples["power_w"],
        }
    )
    return cols, rows

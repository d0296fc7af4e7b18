"""Power from on-board sensors the agent sampled itself (XU3 INA231 rails, hwmon)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from orchestrator.errors import AgentError


def sensor_samples(csv_path: Path, run_id: str, job_id: str) -> pd.DataFrame:
    """Per-rail samples (board clock) from the agent's power.csv, as power-table rows."""
    try:
        samples = pd.read_csv(csv_path, dtype={"rail": "string", "t_mono_ns": "int64", "power_w": "float64"})
    except (OSError, ValueError) as exc:
        raise AgentError(f"{job_id}: unreadable power samples {csv_path}: {exc}", error_class="TraceError") from None
    if list(samples.columns) != ["rail", "t_mono_ns", "power_w"]:
        raise AgentError(f"{job_id}: {csv_path} has columns {list(samples.columns)}", error_class="TraceError")
    return pd.DataFrame(
        {
            "run_id": run_id,
            "job_id": job_id,
            "source": "sensor",
            "rail": samples["rail"].astype(str),
            "t_mono_s": samples["t_mono_ns"] / 1e9,
            "power_w": samples["power_w"],
        }
    )

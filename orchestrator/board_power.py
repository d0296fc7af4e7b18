"""A job's power figures and a board's idle power, for the board runner.

The figures of a results row are computed by ``orchestrator.analysis.energy``
from exactly the samples stored in the power table, as the report computes
them: one integral, one definition of every figure. What the meter and the
clock say about the measurement (window not covered, sample rate below the
configured one, gaps, a clock that moved during the job) becomes a reason of
the verdict: the energy of such a job is never silently blank or wrong.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from orchestrator.analysis.energy import integrate_windows, one_job_energy
from orchestrator.errors import MeterError
from orchestrator.meters.session import MeterSession
from orchestrator.transport.clock import JobClock

#: The achieved sample rate may fall short of the configured one by this much (timer and rounding).
RATE_TOLERANCE = 0.01
#: A gap between two meter points longer than this is named. Re-arming the next 100,000-point segment
#: leaves a gap of a round trip on a bench instrument, a few ms on the virtual one; the integral bridges it
#: linearly, which changes a window's energy by at most gap/window x the power's swing over the gap.
MAX_GAP_S = 0.02
#: A clock offset that moved more than this fraction of the job's time is a step, not a drift (crystals
#: drift by tens of ppm).
MAX_DRIFT_RATE = 1e-3

ROW_POWER_COLUMNS = (
    "meter_kind", "meter_measures", "power_simulated", "power_samples", "meter_interval_s", "meter_rate_hz",
    "meter_max_gap_s", "mean_power_w", "energy_j", "idle_power_w", "active_power_w", "energy_per_image_j",
    "images_per_j", "total_energy_per_image_j", "energy_note",
)


def no_power() -> dict[str, Any]:
    return {c: None for c in ROW_POWER_COLUMNS}


@dataclass(frozen=True)
class PowerSource:
    """Who measured a job's power and how."""

    kind: str  # b2900, virtual_b2900, ina231, hwmon
    measures: str  # board_supply | rails
    simulated: bool


def power_figures(row: dict[str, Any], samples: pd.DataFrame, idle_w: dict[tuple[str, str], float],
                  source: PowerSource, meter_figures: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
    """The power columns of a results row (``row`` has the job's window and throughput) and the reasons
    that make its verdict INVALID. ``idle_w``: the board's start idle power per (source, rail)."""
    cols = {**no_power(), "meter_kind": source.kind, "meter_measures": source.measures,
            "power_simulated": source.simulated, **(meter_figures or {})}
    t0, t1 = row["window_start_mono_ns"] / 1e9, row["window_end_mono_ns"] / 1e9
    e = one_job_energy(t0, t1, row.get("throughput_ips"), samples, idle_w)
    if e["source"] is None:
        n_samples = 0
    else:
        t = samples["t_mono_s"].to_numpy()[samples["source"].to_numpy() == e["source"]]
        n_samples = int(((t >= t0) & (t <= t1)).sum())
    cols.update({
        "power_samples": n_samples,
        "mean_power_w": _num(e["mean_w"]), "energy_j": _num(e["energy_j"]), "idle_power_w": _num(e["idle_w"]),
        "active_power_w": _num(e["active_w"]), "energy_per_image_j": _num(e["energy_per_image_j"]),
        "images_per_j": _num(e["images_per_j"]), "total_energy_per_image_j": _num(e["total_energy_per_image_j"]),
        "energy_note": e["energy_note"] or None,
    })
    reasons = []
    if cols["mean_power_w"] is None:
        reasons.append(f"energy: {e['energy_note']}")
    rate, interval = cols.get("meter_rate_hz"), cols.get("meter_interval_s")
    if rate is not None and interval and rate < (1.0 - RATE_TOLERANCE) / interval:
        reasons.append(f"energy: the meter sampled at {rate:,.0f} Hz over the window, configured "
                       f"{1.0 / interval:,.0f} Hz")
    gap = cols.get("meter_max_gap_s")
    if gap is not None and gap > max(MAX_GAP_S, 2 * (interval or 0.0)):
        reasons.append(f"energy: the meter's samples have a gap of {gap * 1e3:.1f} ms in the window")
    return cols, reasons


def clock_reasons(clock: JobClock, elapsed_s: float) -> list[str]:
    """A board clock that stepped during the job makes its window's place against the meter uncertain."""
    reasons = []
    if not clock.consistent:
        reasons.append("energy: the board's clock stepped while its offset was estimated")
    allowed_ns = 2 * clock.uncertainty_ns + MAX_DRIFT_RATE * max(elapsed_s, 0.0) * 1e9
    if abs(clock.step_ns) > allowed_ns:
        reasons.append(f"energy: the board's clock moved by {clock.step_ns / 1e6:+.3f} ms against the "
                       f"controller's during the job")
    return reasons


def _integrate(samples: pd.DataFrame, job_id: str, t0_s: float, t1_s: float) -> pd.DataFrame:
    """Per source and rail, the energy and mean power of ``samples`` over one window (the report's integral)."""
    table = pa.Table.from_pandas(samples[["job_id", "source", "rail", "t_mono_s", "power_w"]], preserve_index=False)
    return integrate_windows([table], pd.DataFrame({"job_id": [job_id], "t0_s": [t0_s], "t1_s": [t1_s]}))


def _num(x) -> float | None:
    return None if x is None or pd.isna(x) else float(x)


# -- idle power ---------------------------------------------------------------------------------------


def meter_idle(meter: MeterSession, idle_s: float, settle_s: float, stop: threading.Event) -> dict[str, Any]:
    """The board's supply power with nothing running, over ``idle_s`` after ``settle_s``: one idle row
    (without run, board and phase)."""
    meter.begin()
    try:
        stop.wait(settle_s)
        t0 = time.monotonic()
        stop.wait(idle_s)
        t1 = time.monotonic()
        capture = meter.finish(until_s=t1)
    except BaseException:
        meter.abandon()
        raise
    trace = capture.stream.trace
    t0, t1 = max(t0, trace.t_start_s), min(t1, trace.t_end_s)
    if len(trace) < 2 or t1 <= t0:
        raise MeterError("the idle acquisition holds no usable window")
    samples = pd.DataFrame({"job_id": "idle", "source": "meter", "rail": "board", "t_mono_s": trace.t_mono_s,
                            "power_w": trace.power_w})
    rails = _integrate(samples, "idle", t0, t1)
    inside = (trace.t_mono_s >= t0) & (trace.t_mono_s <= t1)
    return {"source": "meter", "rail": "board", "settle_s": settle_s, "duration_s": t1 - t0,
            "samples": int(inside.sum()), "mean_power_w": float(rails["mean_w"].iloc[0])}


def sensor_idle_rows(summary: dict[str, Any], settle_s: float) -> list[dict[str, Any]]:
    """Idle rows of the on-board sensors from the agent's ``idle`` summary (without run, board and phase)."""
    return [{"source": "sensor", "rail": rail, "settle_s": settle_s, "duration_s": float(summary["duration_s"]),
             "samples": int(stats["samples"]), "mean_power_w": float(stats["mean_w"])}
            for rail, stats in summary["power"]["rails"].items()]


def idle_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    cols = ["board", "source", "rail", "phase", "mean_power_w"]
    return pd.DataFrame(rows, columns=cols) if rows else pd.DataFrame(columns=cols)


def empty_samples() -> pd.DataFrame:
    return pd.DataFrame({"run_id": pd.Series(dtype=str), "job_id": pd.Series(dtype=str),
                         "source": pd.Series(dtype=str), "rail": pd.Series(dtype=str),
                         "t_mono_s": pd.Series(dtype=np.float64), "power_w": pd.Series(dtype=np.float64)})

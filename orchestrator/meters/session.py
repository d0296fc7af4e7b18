"""A board's power meter driven around each job's measurement window.

The meter is armed before the agent starts (so it covers warm-up and the
window), stopped when the agent ends, and its samples are cut to exactly the
window the agent reports, converted from the board's clock to the
controller's with the offset estimated for that board.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from orchestrator.config.inventory import Board, MeterSpec
from orchestrator.meters.b2900 import MAX_POINTS, B2900Meter
from orchestrator.meters.energy import PowerTrace, energy_j
from orchestrator.transport.clock import ClockOffset

# Samples kept around the window in the power table (for plots and audits).
MARGIN_S = 0.1

POWER_COLUMNS = ("meter_kind", "meter_measures", "power_samples", "mean_power_w", "energy_j", "energy_per_image_j")


class MeterSession:
    def __init__(self, spec: MeterSpec, driver: B2900Meter):
        self.spec = spec
        self.driver = driver

    def begin_job(self, max_s: float) -> None:
        """Arm an acquisition long enough for the job (capped by the buffer)."""
        points = min(MAX_POINTS, int(math.ceil(max_s / self.spec.interval_s)) + 1)
        self.driver.configure(points)
        self.driver.start()

    def end_job(self) -> PowerTrace:
        """Stop the acquisition and read what it holds."""
        return self.driver.abort_and_fetch()

    def summarize(
        self, trace: PowerTrace, summary: dict[str, Any], offset: ClockOffset, run_id: str, job_id: str
    ) -> tuple[dict[str, Any], pd.DataFrame]:
        """Power columns of the result row, and the samples around the window (board clock)."""
        window = summary["window"]
        # the window is on the board's clock, the trace on the controller's
        t0 = offset.to_controller_ns(window["start_mono_ns"]) / 1e9
        t1 = offset.to_controller_ns(window["end_mono_ns"]) / 1e9
        cols = {**no_power(), "meter_kind": self.spec.kind, "meter_measures": self.spec.measures}
        inside = (trace.t_mono_s >= t0) & (trace.t_mono_s <= t1)
        cols["power_samples"] = int(inside.sum())
        if len(trace) >= 2 and trace.t_start_s <= t0 and trace.t_end_s >= t1 and t1 > t0:
            energy = energy_j(trace, t0, t1)
            cols.update(power_columns(energy, t1 - t0, summary.get("count")))
        near = (trace.t_mono_s >= t0 - MARGIN_S) & (trace.t_mono_s <= t1 + MARGIN_S)
        rows = pd.DataFrame(
            {
                "run_id": run_id,
                "job_id": job_id,
                "source": "meter",
                "rail": "board",
                "t_mono_s": trace.t_mono_s[near] + offset.offset_ns / 1e9,
                "power_w": trace.power_w[near],
            }
        )
        return cols, rows


def no_power() -> dict[str, Any]:
    return {c: None for c in POWER_COLUMNS}


def power_columns(energy_j_: float, duration_s: float, count: int | None) -> dict[str, Any]:
    return {
        "energy_j": energy_j_,
        "mean_power_w": energy_j_ / duration_s,
        "energy_per_image_j": energy_j_ / count if count else None,
    }


@contextlib.contextmanager
def open_meter(board: Board, ground_truth_dir: Path | None = None) -> Iterator[MeterSession | None]:
    """The board's meter for the duration of its jobs (a virtual one is started here)."""
    spec = board.meter
    if spec is None or spec.kind == "none":
        yield None
        return
    with contextlib.ExitStack() as stack:
        resource = spec.resource
        if spec.kind == "virtual_b2900":
            from orchestrator.meters.activity import CpuActivityPower
            from orchestrator.meters.virtual_b2900 import VirtualB2900

            cpus = sorted({c for comp in board.components for c in comp.cpus})
            activity = stack.enter_context(CpuActivityPower(spec.idle_w, spec.per_cpu_active_w, cpus=cpus))
            log = ground_truth_dir / f"{board.name}-meter-ground-truth.jsonl" if ground_truth_dir else None
            server = stack.enter_context(VirtualB2900(activity, ground_truth_log=log))
            resource = f"TCPIP::127.0.0.1::{server.port}::SOCKET"
        driver = stack.enter_context(
            B2900Meter(
                resource,
                voltage_v=spec.voltage_v,
                current_limit_a=spec.current_limit_a,
                aperture_s=spec.aperture_s,
                interval_s=spec.interval_s,
                # *RST switches the output off: when the SMU supplies the board, that powers it down.
                reset_on_configure=False,
            )
        )
        driver.identify()
        yield MeterSession(spec, driver)

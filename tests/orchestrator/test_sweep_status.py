"""The end of a sweep reports on the rows it stored from memory (a run not yet compacted is a file per job,
~2 s to read back at 1,280 jobs); what it says must be what reading the store says."""

from __future__ import annotations

import pandas as pd
import pytest

from orchestrator.analysis.emulation import emulation_status
from orchestrator.analysis.energy import energy_status
from orchestrator.analysis.tables import read_columns
from orchestrator.board_runner import STATUS_COLUMNS, SweepOutcome
from orchestrator.results.store import Store
from tests.orchestrator.test_store import a_row

ROWS = {
    "j0": {"board": "xu3-1", "emulated": None, "meter_kind": "ina231", "mean_power_w": 2.5, "power_simulated": False,
           "meter_rate_hz": 3.8},
    "j1": {"board": "xu3-sim-2", "emulated": "simulated inference (modelled latency: 12 ms)", "meter_kind": "b2900",
           "mean_power_w": None, "power_simulated": True, "meter_rate_hz": 1000.0},
    "j2": {"board": "hikey-1", "emulated": None, "meter_kind": None, "mean_power_w": None, "power_simulated": None,
           "meter_rate_hz": None},
}


def stored(tmp_path, job_ids):
    """A run with ``job_ids`` stored, and an outcome that stored them (as BoardRunner._store does)."""
    run = Store(tmp_path).create_run("r1", {})
    outcome = SweepOutcome(run=run)
    for job_id in job_ids:
        row = {**a_row("r1", job_id), **ROWS[job_id]}
        run.write_table("results", job_id, [row])
        outcome.status_rows[job_id] = {c: row[c] for c in STATUS_COLUMNS}
    return run, outcome


def test_the_status_from_memory_is_the_status_from_the_store(tmp_path):
    run, outcome = stored(tmp_path, ["j2", "j0", "j1"])
    from_memory = outcome.status_frame(run.done_job_ids())
    from_store = read_columns(run, "results", STATUS_COLUMNS).sort_values("board", ignore_index=True)
    pd.testing.assert_frame_equal(from_memory.sort_values("board", ignore_index=True), from_store)
    assert energy_status(run, from_memory) == energy_status(run) == {
        "jobs": 2, "with_energy": 1, "simulated": "some", "min_meter_rate_hz": 3.8}
    assert emulation_status(run, from_memory) == emulation_status(run)
    assert emulation_status(run, from_memory) == {"xu3-sim-2": "simulated inference (modelled latency: 12 ms)"}


@pytest.mark.parametrize("case", ["resumed", "partial"])
def test_rows_stored_by_another_process_are_read_from_the_store(tmp_path, case):
    """A resumed run's earlier jobs were stored by the process that died: this one has not seen them."""
    run, outcome = stored(tmp_path, ["j0", "j1", "j2"])
    if case == "resumed":
        outcome.status_rows.clear()
    else:
        del outcome.status_rows["j1"]
    frame = outcome.status_frame(run.done_job_ids())
    assert sorted(frame.board) == ["hikey-1", "xu3-1", "xu3-sim-2"]
    assert energy_status(run, frame)["with_energy"] == 1

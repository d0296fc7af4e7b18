"""P6 end to end: energy through `orchestrator sweep` on virtual boards whose clocks are their own.

Each board runs in a time namespace (its CLOCK_MONOTONIC offset from the controller's by seconds to an
hour), a virtual B2900 at 10 kHz supplies it and follows its simulated power, and the ground truth is the
integral of that power over the window as it really happened: the board's window minus the board's true
offset, which only the farm knows. The controller must find the offset by itself, around every job.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.meters.virtual_b2900 import VirtualB2900
from orchestrator.virtual import netns
from orchestrator.virtual.farm import BoardSpec
from orchestrator.virtual.inventory import write_inventory
from tests.conftest import FIXTURE_ZOO
from tests.store_helpers import only_run, run_table
from tests.virtual_farm.helpers import running_farm

pytestmark = [pytest.mark.netns, pytest.mark.slow]

P6 = 0.005  # |energy - truth| / truth, every job

EXPERIMENTS = f"""
version: 1
zoo: {FIXTURE_ZOO}
idle_s: 0.5
idle_settle_s: 0.2
membw_mb: 0
rules: {{warmup_runs: 2, min_count: 30, min_duration_s: 0.8, max_duration_s: 20}}
experiments:
  - name: p6
    models: [tiny_cnn]
    dtypes: [float32, int8]
    components: [big, little]
    repeats: 2
"""


@contextlib.contextmanager
def metered_farm(tmp: Path, specs: list[BoardSpec]):
    """The farm, a virtual B2900 on every board's supply, and the inventory naming them."""
    with running_farm(tmp / "farm", specs) as farm, contextlib.ExitStack() as meters:
        smus = {b.name: meters.enter_context(VirtualB2900(farm.simulator(b.name))) for b in specs}
        inv = write_inventory(farm, tmp / "inventory.yml",
                              meters=[{"board": name, "resource": smu.resource} for name, smu in smus.items()])
        yield farm, smus, inv


def sweep(tmp: Path, inv: Path, **popen) -> subprocess.Popen:
    exp = tmp / "exp.yaml"
    exp.write_text(EXPERIMENTS)
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "sweep", str(exp), "-i", str(inv), "--store", str(tmp / "runs"),
         "--reports", str(tmp / "reports"), "--state", str(tmp / "state"), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def errors_against_truth(results: pd.DataFrame, smus: dict[str, VirtualB2900],
                         true_offsets: dict[str, list[int]]) -> pd.Series:
    """Relative energy error of every job against the ground truth. A board whose clock stepped has two
    true offsets; a job's is the one its own estimate lies within microseconds of."""
    errors = {}
    for row in results.itertuples():
        offset = min(true_offsets[row.board], key=lambda o: abs(o - row.clock_offset_ns))
        assert abs(offset - row.clock_offset_ns) <= row.clock_uncertainty_ns + 1, row.job_id
        truth = smus[row.board].true_energy_j((row.window_start_mono_ns - offset) / 1e9,
                                              (row.window_end_mono_ns - offset) / 1e9)
        errors[row.job_id] = abs(row.energy_j - truth) / truth
    return pd.Series(errors)


def test_energy_within_p6_with_board_clocks_of_their_own(tmp_path):
    specs = [BoardSpec("hikey-1", "hikey970", clock_offset_s=3600.0), BoardSpec("xu3-1", "odroid_xu3")]
    with metered_farm(tmp_path, specs) as (farm, smus, inv):
        offsets = {b.name: [farm.clock_offset_ns(b.name)] for b in specs}
        proc = sweep(tmp_path, inv)
        out, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err[-5000:] + out[-2000:]
        run_dir = only_run(tmp_path / "runs")
        results = run_table(run_dir, "results")
        assert len(results) == 16 and (results.verdict == "VALID").all(), results.reasons.tolist()
        assert results.energy_j.notna().all() and (results.meter_kind == "b2900").all()
        assert results.power_simulated.all() and (results.meter_rate_hz >= 0.99e4).all()
        errors = errors_against_truth(results, smus, offsets)
    assert offsets["hikey-1"] == [3_600_000_000_000] and offsets["xu3-1"][0] != 0
    assert errors.max() < P6, errors.sort_values().tail()
    assert "energy: 16/16 jobs (simulated power)" in out


def _kill_serving_agent(farm, board: str) -> int:
    """SIGKILL the board's ``device_agent serve`` (as a crash would); its pid."""
    pids = [p for p in netns.netns_pids(farm.board(board).netns)
            if "device_agent serve" in Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode()]
    assert len(pids) == 1, pids
    os.kill(pids[0], signal.SIGKILL)
    return pids[0]


def test_a_clock_step_between_jobs_is_followed(tmp_path):
    """Midway through the sweep the board's clock steps by 0.75 s (for the processes it starts from then
    on) and its serving agent dies: the job is retried on a new agent that reads the new clock. Jobs on
    either side of the step still get their energy within P6, because the offset is estimated per job."""
    specs = [BoardSpec("hikey-1", "hikey970", clock_offset_s=42.0)]
    with metered_farm(tmp_path, specs) as (farm, smus, inv):
        before = farm.clock_offset_ns("hikey-1")
        proc = sweep(tmp_path, inv)
        journal = tmp_path / "runs"
        deadline = time.monotonic() + 600
        # wait for the second job to be done, then step the clock and kill the agent
        while time.monotonic() < deadline and proc.poll() is None:
            files = list(journal.glob("*/journal.jsonl"))
            done = [r for f in files for r in map(json.loads, f.read_text().splitlines()) if r.get("state") == "done"]
            if len(done) >= 2:
                break
            time.sleep(0.1)
        after = farm.step_clock("hikey-1", 0.75)
        killer = threading.Timer(0.3, _kill_serving_agent, args=(farm, "hikey-1"))
        killer.start()
        out, err = proc.communicate(timeout=900)
        killer.join()
        assert proc.returncode == 0, err[-5000:] + out[-2000:]
        run_dir = next(journal.glob("*/run.json")).parent  # runs/ also holds the store's dataset folders
        results = run_table(run_dir, "results")
        records = [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]
        assert any(r.get("state") == "retry" and r.get("error") == "AgentDied" for r in records)
        assert results.energy_j.notna().all() and (results.verdict == "VALID").all(), results.reasons.tolist()
        errors = errors_against_truth(results, smus, {"hikey-1": [before, after]})
    # both clocks were seen: jobs before the step on the old offset, after it on the new one
    near_new = (results.clock_offset_ns - after).abs() < 1_000_000
    assert 2 <= near_new.sum() < len(results), results[["job_id", "clock_offset_ns"]]
    assert errors.max() < P6, errors.sort_values().tail()

"""Thermal validity end to end on a virtual XU3: `orchestrator sweep` with no frequency setting, a thermal
cap injected on the big cluster while the first job runs, then the cool-down before the second job.

The first job was never pinned, yet its window ran capped: it is INVALID with the throttle reason, and its
row holds the zones' maximum (the simulator keeps capped zones at its trip temperature). The second job
starts only after the board cooled below its cooldown_c; it is VALID and its row says how long it waited.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.virtual.farm import BoardSpec
from orchestrator.virtual.inventory import COOLDOWN_C, write_inventory
from orchestrator.virtual.power_model import POWER
from tests.conftest import FIXTURE_ZOO
from tests.store_helpers import only_run, run_table
from tests.virtual_farm.helpers import running_farm

pytestmark = [pytest.mark.netns, pytest.mark.slow]

EXPERIMENTS = f"""
version: 1
zoo: {FIXTURE_ZOO}
idle_s: 0
membw_mb: 0
rules: {{warmup_runs: 2, min_count: 30, min_duration_s: 1.5, max_duration_s: 20}}
experiments:
  - name: unpinned
    models: [tiny_cnn]
    dtypes: [float32]
    components: [big]
    repeats: 2
"""


def journal_states(runs: Path) -> list[dict]:
    return [r for f in runs.glob("*/journal.jsonl") for r in map(json.loads, f.read_text().splitlines())]


def wait_for_state(proc: subprocess.Popen, runs: Path, state: str, count: int, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        if sum(1 for r in journal_states(runs) if r.get("state") == state) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"no {count} '{state}' in the journal (sweep exit {proc.poll()})")


def test_a_cap_during_an_unpinned_job_is_invalid_and_the_next_job_waits_for_the_board_to_cool(tmp_path):
    with running_farm(tmp_path / "farm", [BoardSpec("xu3-1", "odroid_xu3")]) as farm:
        inv = write_inventory(farm, tmp_path / "inventory.yml")
        exp = tmp_path / "exp.yaml"
        exp.write_text(EXPERIMENTS)
        runs = tmp_path / "runs"
        proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "sweep", str(exp), "-i", str(inv), "--store", str(runs),
             "--reports", str(tmp_path / "reports"), "--state", str(tmp_path / "state")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for_state(proc, runs, "started", 1)
            farm.throttle("xu3-1", "policy4", 1400000)  # a thermal cap while the first job runs
            wait_for_state(proc, runs, "done", 1)
            farm.throttle("xu3-1", "policy4", None)
            out, err = proc.communicate(timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, err[-5000:] + out[-2000:]
    results = run_table(only_run(runs), "results").sort_values("job_id").reset_index(drop=True)
    first, second = results.iloc[0], results.iloc[1]

    assert pd.isna(first.freq_requested) and first.verdict == "INVALID"
    throttled = [r for r in first.reasons if r.startswith("throttled: policy4 (not pinned) was capped below its "
                                                          "2000000 kHz maximum for ")]
    assert throttled and throttled[0].endswith("(min 1400000 kHz, limit down to 2000000 kHz)"), first.reasons
    assert first.freq_min_khz == 1400000 and first.freq_below_s > 0
    assert first.temp_max_c >= POWER["odroid_xu3"].throttled_c and first.temp_simulated
    assert first.cooldown_wait_s == 0.0  # the board was cool before its first job

    assert second.verdict == "VALID", second.reasons
    assert second.cooldown_wait_s > 0 and second.temp_start_c < POWER["odroid_xu3"].throttled_c
    assert pd.notna(second.temp_max_c) and second.temp_simulated
    waits = [r for r in journal_states(runs) if r.get("state") == "cooldown"]
    assert len(waits) == 1 and all(t < COOLDOWN_C for t in waits[0]["temps_c"].values())
    assert "xu3-1: cool-down: thermal_zone" in err and "(simulated), waiting until every zone is below 55 °C" in err

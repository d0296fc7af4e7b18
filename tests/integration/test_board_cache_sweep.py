"""Two local sweeps with one --state: the second reuses the first's idle power and memory bandwidth."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import FIXTURE_ZOO
from tests.integration.test_sweep_local import INVENTORY, METER, sweep
from tests.store_helpers import run_table

EXPERIMENTS = """
version: 1
zoo: {zoo}
idle_s: {idle_s}
idle_settle_s: 0.2
membw_mb: 4
rules: {{warmup_runs: 2, min_count: 20, min_duration_s: 0.3, max_duration_s: 10}}
experiments:
  - name: tiny
    models: [tiny_cnn]
    dtypes: [float32]
    components: [cpu0]
"""


def _sweep(tmp_path: Path, idle_s: float) -> tuple[dict, str, Path]:
    inv = tmp_path / "inv.yml"
    inv.write_text(INVENTORY.format(work_dir=tmp_path / "board", meter=METER))
    exp = tmp_path / "exp.yaml"
    exp.write_text(EXPERIMENTS.format(zoo=FIXTURE_ZOO, idle_s=idle_s))
    proc = sweep(tmp_path, exp, inv, "--json")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    summary = json.loads(proc.stdout)
    return summary, proc.stderr, Path(summary["run_dir"])


@pytest.mark.slow
def test_a_second_sweep_reuses_idle_power_and_bandwidth(tmp_path):
    first, err1, run1 = _sweep(tmp_path, idle_s=0.5)
    assert "reusing" not in err1
    idle1 = pd.read_parquet(run1 / "idle").set_index("phase")
    assert sorted(idle1.index) == ["end", "start"] and set(idle1.measured_run_id) == {first["run_id"]}
    assert (tmp_path / "state" / "measured" / "localhost.json").exists()

    second, err2, run2 = _sweep(tmp_path, idle_s=0.5)
    assert f"localhost: reusing idle power (meter) and memory bandwidth (cpu0) measured by run {first['run_id']}" \
        in err2, err2
    idle2 = pd.read_parquet(run2 / "idle")
    # copied into the second run's table, saying which run measured it and when; no idle after its last job
    assert idle2.phase.tolist() == ["start"] and idle2.run_id.tolist() == [second["run_id"]]
    assert idle2.measured_run_id.tolist() == [first["run_id"]]
    assert idle2.mean_power_w.iloc[0] == idle1.loc["start", "mean_power_w"]
    assert idle2.measured_wall.iloc[0] == idle1.loc["start", "measured_wall"]
    membw1, membw2 = pd.read_parquet(run1 / "membw"), pd.read_parquet(run2 / "membw")
    assert membw2.gb_per_s.tolist() == membw1.gb_per_s.tolist()
    assert set(membw2.measured_run_id) == {first["run_id"]} and set(membw2.run_id) == {second["run_id"]}
    # the job's idle power is the reused one (its active power depends on what else this shared machine runs:
    # the simulated meter follows every process's CPU activity)
    res = run_table(run2, "results")
    assert res.idle_power_w.iloc[0] == pytest.approx(idle1.loc["start", "mean_power_w"])
    assert res.energy_j.notna().all()
    journal = [json.loads(line) for line in (run2 / "journal.jsonl").read_text().splitlines()]
    assert {e["state"] for e in journal if e.get("cached")} == {"idle", "membw"}

    # a changed idle_s measures the idle power again; the bandwidth does not depend on it
    third, err3, run3 = _sweep(tmp_path, idle_s=0.6)
    assert "idle power (meter) measured again: idle_s changed (0.5 -> 0.6)" in err3, err3
    assert "reusing memory bandwidth (cpu0)" in err3
    assert set(pd.read_parquet(run3 / "idle").measured_run_id) == {third["run_id"]}
    assert set(pd.read_parquet(run3 / "membw").measured_run_id) == {first["run_id"]}

"""The product's main path on a virtual farm: 2 XU3 + 1 HiKey 970 in network namespaces, a virtual
B2900 on the HiKey's supply, real playbooks over SSH, one agent job per board over SSH, INA231 and
SMU power, then a tear-down that leaves nothing behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.config.load import load_inventory
from orchestrator.meters.virtual_b2900 import VirtualB2900
from orchestrator.transport.ssh import BoardUnreachable, SshAuthError, connect
from orchestrator.virtual.farm import BoardSpec
from orchestrator.virtual.inventory import write_inventory
from tests.conftest import FIXTURE_ZOO
from tests.store_helpers import only_run, run_table
from tests.virtual_farm.helpers import running_farm

pytestmark = [pytest.mark.netns, pytest.mark.slow]

EXPERIMENTS = f"""
version: 1
zoo: {FIXTURE_ZOO}
rules: {{warmup_runs: 2, min_count: 30, min_duration_s: 1.0, max_duration_s: 20}}
experiments:
  - name: big-cores
    models: [tiny_cnn]
    dtypes: [float32]
    components: [big]
    boards: [odroid_xu3, hikey970]
    frequencies: [max]
"""


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    boards = [BoardSpec("xu3-1", "odroid_xu3"), BoardSpec("xu3-2", "odroid_xu3"), BoardSpec("hikey-1", "hikey970")]
    with running_farm(tmp_path_factory.mktemp("farm"), boards) as farm:
        yield farm


def test_sweep_over_ssh_with_ina231_and_smu_power(farm, tmp_path):
    with VirtualB2900(farm.simulator("hikey-1"), ground_truth_log=tmp_path / "smu.jsonl") as smu:
        inv = write_inventory(farm, tmp_path / "inventory.yml", meter={"board": "hikey-1", "resource": smu.resource})
        exp = tmp_path / "exp.yaml"
        exp.write_text(EXPERIMENTS)
        proc = subprocess.run(
            [sys.executable, "-m", "orchestrator", "sweep", str(exp), "-i", str(inv), "--store", str(tmp_path / "runs"),
             "--reports", str(tmp_path / "reports"), "--state", str(tmp_path / "state")],
            capture_output=True, text=True, timeout=900,
        )
    assert proc.returncode == 0, proc.stderr[-5000:] + proc.stdout[-2000:]
    run_dir = only_run(tmp_path / "runs")
    results = run_table(run_dir, "results").set_index("board")
    assert sorted(results.index) == ["hikey-1", "xu3-1", "xu3-2"]
    assert (results.verdict == "VALID").all() and (results.throughput_ips > 0).all()
    # the agent really ran inside each board: its hostname is the board's own
    assert list(results.hostname) == list(results.index)
    # the runtime was installed on each board from the controller's wheelhouse (no internet in the namespace)
    assert (results.runtime_module == "ai_edge_litert").all()
    for board in results.index:
        assert (Path(farm.board(board).work_dir) / "venv" / "bin" / "python").exists()

    xu3 = results.loc[["xu3-1", "xu3-2"]]
    assert (xu3.meter_kind == "ina231").all() and (xu3.meter_measures == "rails").all()
    assert (xu3.mean_power_w > 0).all() and (xu3.energy_per_image_j > 0).all()
    hikey = results.loc["hikey-1"]
    assert hikey.meter_kind == "b2900" and hikey.meter_measures == "board_supply"
    assert hikey.mean_power_w > 0 and hikey.power_samples > 100
    assert (results.clock_uncertainty_ns < 50_000_000).all()
    # the big cluster ran pinned at its top frequency (XU3 A15: 2.0 GHz, HiKey 970 A73: 2.362 GHz), never below
    assert (results.freq_requested == "max").all() and (results.freq_below_s == 0).all()
    assert results.freq_min_khz.to_dict() == {"hikey-1": 2362000, "xu3-1": 2000000, "xu3-2": 2000000}

    power = run_table(run_dir, "power")
    rails = power[power.source == "sensor"].groupby("job_id").rail.unique()
    assert all(set(r) == {"a15", "a7", "mem", "gpu"} for r in rails)
    # the INA231 never yields more samples than its update period allows
    for job_id, group in power[power.source == "sensor"].groupby(["job_id", "rail"]):
        span = group.t_mono_s.max() - group.t_mono_s.min()
        assert len(group) <= span / 0.263808 + 2, job_id
    assert set(power[power.source == "meter"].rail) == {"board"}

    # the big cluster's rail works harder than the idle LITTLE one while a15 runs the model
    rail_means = power[(power.source == "sensor")].groupby("rail").power_w.mean()
    assert rail_means["a15"] > rail_means["a7"]

    # idle power measured in the same run: per rail from the XU3s' INA231s, at the supply of the HiKey
    idle = pd.read_parquet(run_dir / "idle")
    by_board = idle.groupby("board").agg(sources=("source", set), rails=("rail", set))
    assert by_board.loc["hikey-1"].to_dict() == {"sources": {"meter"}, "rails": {"board"}}
    for xu3_board in ("xu3-1", "xu3-2"):
        assert by_board.loc[xu3_board].to_dict() == {"sources": {"sensor"}, "rails": {"a15", "a7", "mem", "gpu"}}
    a15_idle = idle[(idle.board == "xu3-1") & (idle.rail == "a15")].mean_power_w.iloc[0]
    a15_busy = power[(power.source == "sensor") & (power.rail == "a15")
                     & power.job_id.isin(results[results.index == "xu3-1"].job_id)].power_w.mean()
    assert 0 < a15_idle < a15_busy
    # memory bandwidth of the component each board used, over SSH, for the roofline
    membw = pd.read_parquet(run_dir / "membw")
    assert set(zip(membw.board, membw.component)) == {("xu3-1", "a15"), ("xu3-2", "a15"), ("hikey-1", "a73")}
    assert (membw.gb_per_s > 0).all()
    report = Path(proc.stdout.strip().splitlines()[-1].removeprefix("report: ")).read_text()
    assert "idle not measured" not in report


def test_unreachable_board_and_wrong_key_are_classified(farm, tmp_path):
    inv = write_inventory(farm, tmp_path / "inventory.yml")
    lab = load_inventory(inv)
    board = lab.board("xu3-2")
    connect(board).close()
    wrong = board.model_copy(update={"ssh": board.ssh.model_copy(update={"key_file": str(tmp_path / "k")})})
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    with pytest.raises(SshAuthError):
        connect(wrong)
    farm.link_down("xu3-2")
    try:
        slow = board.model_copy(update={"ssh": board.ssh.model_copy(update={"connect_timeout_s": 2.0})})
        with pytest.raises(BoardUnreachable, match="xu3-2"):
            connect(slow)
    finally:
        farm.link_up("xu3-2")


TWO_SETTINGS = f"""
version: 1
zoo: {FIXTURE_ZOO}
membw_mb: 0
rules: {{warmup_runs: 2, min_count: 30, min_duration_s: 0.5, max_duration_s: 20}}
experiments:
  - name: a15-two-clocks
    models: [tiny_cnn]
    dtypes: [float32]
    components: [big]
    boards: [odroid_xu3]
    frequencies: [max, 1400000]
"""


def test_two_frequency_settings_are_reported_apart_with_temperatures_and_advice(farm, tmp_path):
    """One component at two clock settings: two series in every table, each job with its temperatures,
    and the report's advisor section (one repeat each: too few for a regression verdict)."""
    inv = write_inventory(farm, tmp_path / "inventory.yml")
    exp = tmp_path / "exp.yaml"
    exp.write_text(TWO_SETTINGS)
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", "sweep", str(exp), "-i", str(inv), "--store", str(tmp_path / "runs"),
         "--reports", str(tmp_path / "reports"), "--state", str(tmp_path / "state"), "--power-cap-w", "1000"],
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-5000:] + proc.stdout[-2000:]
    run_dir = only_run(tmp_path / "runs")
    results = run_table(run_dir, "results")
    assert sorted(set(results.freq_requested)) == ["1400000", "max"]
    low = results[results.freq_requested == "1400000"]
    assert (low.verdict == "VALID").all() and (low.freq_min_khz == 1400000).all()
    # (a virtual board's inference runs on this machine's CPU: its speed does not follow the simulated clock,
    # so only the settings, not their throughputs, can be told apart here)
    # every job watched its SoC's zones (simulated on a virtual board) and says so
    assert results.temp_max_c.notna().all() and (results.temp_max_c >= results.temp_start_c).all()
    assert results.temp_simulated.all() and results.cooldown_wait_s.notna().all()
    report_dir = Path(proc.stdout.strip().splitlines()[-1].removeprefix("report: ")).parent
    html = (report_dir / "index.html").read_text()
    assert "a15 @ max" in html and "a15 @ 1.4 GHz" in html
    assert 'id="advisor"' in html and "fewer than 3 VALID repeats" in html
    assert "°C start / max" in html and "Thermal state" in html and "simulated" in html
    summary = (report_dir / "summary.md").read_text()
    assert "(simulated temperatures)" in summary
    assert "| a15 @ max | a15 @ 1.4 GHz |" in summary or "| a15 @ 1.4 GHz | a15 @ max |" in summary
    # the deployment advisor weighs both settings of each board (simulated sensor power, labelled so) under a cap
    assert 'id="deployment-table"' in html
    for board in sorted(set(results.board)):
        row = next(line for line in summary.splitlines() if line.startswith(f"| {board} | Tiny CNN | float32 | 2 |"))
        assert row.count("**a15 @ ") == 3 and "sim." in row and "within" not in row, row
        assert (report_dir / f"pareto-{board}.png").exists()

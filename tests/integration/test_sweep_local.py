"""End to end on this machine: the real CLI, ansible-runner, the agent and LiteRT, tiny models."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import FIXTURE_ZOO, REPO
from tests.store_helpers import only_run, run_table

INVENTORY = """
all:
  children:
    local_host:
      hosts:
        localhost:
          ansible_connection: local
          ansible_python_interpreter: "{{{{ ansible_playbook_python }}}}"
      vars:
        socfarm_soc: host_cpu
        socfarm_work_dir: {work_dir}
        socfarm_components:
          - {{name: cpu0, class: cpu, cpus: [0]}}
          - {{name: cpu1, class: cpu, cpus: [1]}}
{meter}
"""

METER = """
        socfarm_meter:
          kind: virtual_b2900
          voltage_v: 5.0
          aperture_s: 0.00008
          interval_s: 0.0001
"""

EXPERIMENTS = """
version: 1
zoo: {zoo}
rules: {{warmup_runs: 2, min_count: 20, min_duration_s: 0.3, max_duration_s: 10}}
experiments:
  - name: tiny
    models: [tiny_cnn]
    dtypes: [float32, int8]
    components: [all]
"""


def orchestrator(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture
def farm(tmp_path: Path):
    def make(meter: bool = False, experiments: str = EXPERIMENTS, zoo: Path = FIXTURE_ZOO):
        inv = tmp_path / "inv.yml"
        inv.write_text(INVENTORY.format(work_dir=tmp_path / "board", meter=METER if meter else ""))
        exp = tmp_path / "exp.yaml"
        exp.write_text(experiments.format(zoo=zoo))
        return exp, inv

    return make


def sweep(tmp_path: Path, exp: Path, inv: Path, *extra: str) -> subprocess.CompletedProcess:
    return orchestrator("sweep", str(exp), "-i", str(inv), "--store", str(tmp_path / "runs"),
                        "--reports", str(tmp_path / "reports"), "--state", str(tmp_path / "state"), *extra,
                        cwd=tmp_path)


@pytest.mark.slow
def test_sweep_end_to_end(tmp_path, farm):
    exp, inv = farm(meter=True)
    proc = sweep(tmp_path, exp, inv)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    report = Path(proc.stdout.strip().splitlines()[-1].removeprefix("report: "))
    assert report.exists() and report.parent.parent == tmp_path / "reports"

    run_dir = only_run(tmp_path / "runs")
    results = run_table(run_dir, "results")
    assert len(results) == 4
    assert set(zip(results.component, results.dtype)) == {
        (c, d) for c in ("cpu0", "cpu1") for d in ("float32", "int8")}
    assert (results.verdict == "VALID").all()
    assert (results.throughput_ips > 0).all()
    assert (results["count"] >= 20).all() and (results.duration_s >= 0.3).all()
    for col in ("run_id", "board", "component", "model_sha256", "dtype", "runtime_version", "git_revision",
                "agent_version", "hostname"):
        assert results[col].notna().all() and (results[col] != "").all(), col
    manifest = pd.read_json(FIXTURE_ZOO / "manifest.json", typ="series")["models"]
    assert set(results.model_sha256) == {m["sha256"] for m in manifest}
    # pinned: the agent ran on exactly the component's cpus
    assert [list(c) for c in results.sort_values("component").cpus] == [[0], [0], [1], [1]]

    lat = run_table(run_dir, "latencies")
    assert len(lat) == results["count"].sum()
    assert (lat.latency_ms > 0).all()

    # the simulated meter covered every window, at 10 kHz, and every job has its energy, labelled simulated
    assert (results.meter_kind == "virtual_b2900").all()
    assert results.energy_j.notna().all() and results.energy_per_image_j.notna().all(), results.energy_note
    assert (results.meter_rate_hz >= 0.99e4).all() and (results.meter_interval_s == 1e-4).all()
    assert (results.power_samples > 0.99e4 * results.duration_s).all()
    assert results.power_simulated.all()
    assert (results.mean_power_w > 2.0).all()  # above the simulated idle power: the core was busy
    power = run_table(run_dir, "power")
    assert set(power.job_id) == set(results.job_id)
    # idle power of the board, measured in the same run before its first job and after its last
    idle = pd.read_parquet(run_dir / "idle").set_index("phase")
    assert sorted(idle.index) == ["end", "start"] and (idle.board == "localhost").all()
    assert (idle.samples > 1000).all() and (idle.mean_power_w >= 2.0).all()  # the simulated idle floor
    assert "energy: 4/4 jobs (simulated power)" in proc.stdout

    # the store's dataset, as a user reads it: every run in one call, run_id and board from the path
    dataset = pd.read_parquet(tmp_path / "runs" / "results")
    assert sorted(dataset.job_id) == sorted(results.job_id)
    assert set(dataset.run_id.astype(str)) == {run_dir.name} and set(dataset.board.astype(str)) == {"localhost"}
    import duckdb

    per_board = duckdb.sql(f"""SELECT run_id, board, count(*) AS jobs, sum(l.n) AS inferences
        FROM read_parquet('{tmp_path}/runs/results/*/*/*.parquet', hive_partitioning = true) r
        JOIN (SELECT run_id, job_id, count(*) AS n
              FROM read_parquet('{tmp_path}/runs/latencies/*/*/*.parquet', hive_partitioning = true)
              GROUP BY ALL) l USING (run_id, job_id)
        GROUP BY ALL""").fetchall()
    assert per_board == [(run_dir.name, "localhost", 4, int(results["count"].sum()))]
    assert not list(run_dir.glob("results/*.parquet"))  # compacted: one file per table for the board

    # memory bandwidth of each CPU component, measured once before its first job, for the roofline
    membw = pd.read_parquet(run_dir / "membw")
    assert sorted(set(membw.component)) == ["cpu0", "cpu1"] and len(membw) == 8
    assert set(membw.kernel) == {"copy", "scale", "add", "triad"} and (membw.gb_per_s > 0).all()

    html = report.read_text()
    assert "idle not measured" not in html
    assert "Every power figure of this run is <b>simulated</b>" in html and 'id="idle-table"' in html
    summary = (report.parent / "summary.md").read_text()
    assert "**Every power figure of this run is simulated**" in summary
    # the Models table: the zoo's built networks, with the figures of the run's manifest copy
    assert re.search(r"\| tiny_cnn \| float32 \| [\d,]+ \| [\d,]+ \| [\d,]+ \| zoo build \|", summary)
    assert "Tiny CNN" in html and "cpu0" in html and "cpu1" in html and "random" in html
    for img in (report.parent).glob("*.png"):
        assert img.stat().st_size > 1000
    assert 'src="throughput-localhost.png"' in html
    assert (report.parent / "results.csv").exists()

    # the report can be regenerated from the store alone
    again = orchestrator("report", run_dir.name, "--store", str(tmp_path / "runs"), "--reports",
                         str(tmp_path / "again"), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again" / run_dir.name / "index.html").exists()


def test_plan_touches_nothing(tmp_path, farm):
    exp, inv = farm()
    proc = sweep(tmp_path, exp, inv, "--plan", "--json")
    assert proc.returncode == 0, proc.stderr
    import json

    plan = json.loads(proc.stdout)
    assert len(plan["jobs"]) == 4
    assert plan["boards"][0]["jobs"] == 4 and plan["total_estimate_s"] > 0
    assert [m["name"] for m in plan["jobs"][0]["members"]] == ["cpu0"]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "state").exists()


def test_a_plan_of_many_jobs_lists_every_job_in_plain_columns(tmp_path, farm):
    exp, inv = farm(experiments=EXPERIMENTS.replace("components: [all]", "components: [all]\n    repeats: 60"))
    proc = sweep(tmp_path, exp, inv, "--plan")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "240 jobs" in lines  # 2 dtypes x 2 components x 60 repeats: above the boxed table's 200
    header = next(i for i, line in enumerate(lines) if line.split()[:3] == ["job", "board", "component"])
    listed = [line.split() for line in lines[header + 1:header + 241]]
    assert len({row[0] for row in listed}) == 240 and all(row[1] == "localhost" for row in listed)
    assert "estimate" in proc.stdout and not (tmp_path / "runs").exists()


def _assert_rejected(tmp_path: Path, proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr + proc.stdout
    for needle in needles:
        assert needle in proc.stderr, proc.stderr
    assert not (tmp_path / "runs").exists(), "bad input must not write to the store"
    assert not (tmp_path / "board").exists(), "bad input must not touch the board"


def test_missing_model_file_is_rejected_before_anything_is_written(tmp_path, farm):
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    for f in FIXTURE_ZOO.iterdir():
        (zoo / f.name).write_bytes(f.read_bytes())
    (zoo / "tiny_cnn_int8.tflite").unlink()
    exp, inv = farm(zoo=zoo)
    _assert_rejected(tmp_path, sweep(tmp_path, exp, inv), "missing file", "tiny_cnn_int8.tflite")


def test_corrupted_model_file_is_rejected(tmp_path, farm):
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    for f in FIXTURE_ZOO.iterdir():
        (zoo / f.name).write_bytes(f.read_bytes())
    (zoo / "tiny_cnn_float32.tflite").write_bytes(b"garbage")
    exp, inv = farm(zoo=zoo)
    _assert_rejected(tmp_path, sweep(tmp_path, exp, inv), "sha256 mismatch")


def test_unknown_component_is_rejected(tmp_path, farm):
    exp, inv = farm(experiments=EXPERIMENTS.replace("components: [all]", "components: [cpu0, npu]"))
    _assert_rejected(tmp_path, sweep(tmp_path, exp, inv),
                     "exp.yaml:9: experiments.0.components.1: unknown component 'npu'")


def test_malformed_yaml_is_rejected(tmp_path, farm):
    exp, inv = farm(experiments=EXPERIMENTS.replace("models: [tiny_cnn]", "models: [tiny_cnn"))
    _assert_rejected(tmp_path, sweep(tmp_path, exp, inv), "malformed YAML", "exp.yaml:")


def test_unknown_model_is_rejected(tmp_path, farm):
    exp, inv = farm(experiments=EXPERIMENTS.replace("models: [tiny_cnn]", "models: [vgg19]"))
    _assert_rejected(tmp_path, sweep(tmp_path, exp, inv), "exp.yaml:7: experiments.0.models.0: model 'vgg19'")


def test_unknown_run_for_report(tmp_path):
    proc = orchestrator("report", "nope", "--store", str(tmp_path / "runs"), cwd=tmp_path)
    assert proc.returncode == 2 and "no run 'nope'" in proc.stderr


def test_readme_commands_exist():
    readme = (REPO / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in ci


@pytest.mark.slow
def test_coexecution_of_the_two_cores(tmp_path, farm):
    text = EXPERIMENTS.replace("components: [all]", "components: [cpu0, cpu1, cpu0+cpu1]").replace(
        "dtypes: [float32, int8]", "dtypes: [float32]")
    exp, inv = farm(experiments=text)
    proc = sweep(tmp_path, exp, inv)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    run_dir = only_run(tmp_path / "runs")
    results = run_table(run_dir, "results").set_index("component")
    co = results.loc["cpu0+cpu1"]
    assert list(co.coexec_members) == ["cpu0", "cpu1"]
    assert abs(sum(co.coexec_share_pct) - 100.0) < 1e-6
    assert co.verdict == "VALID" and co.throughput_ips > 0 and co["count"] >= 20
    assert list(results.loc["cpu0"].coexec_members) == []
    events = (run_dir / "jobs" / co.job_id / "attempt-1" / "events.jsonl").read_text()
    # the isolated throughputs measured earlier in the run reached the agent, which reports the gains
    assert '"ratio_to_sum_isolated"' in events
    lat = run_table(run_dir, "latencies")
    co_lat = lat[lat.job_id == co.job_id]
    # the board's trace holds every frame of the stream once, in order; the stored latencies are exactly its
    # in-window frames. Those need not be consecutive: a slower member's frame taken before the close but
    # finished after it is the tail, while a faster member's later frame finished inside the window.
    trace = pd.read_csv(next((tmp_path / "board" / "jobs").glob(f"*/{co.job_id}/attempt-1"))
                        / "trace.csv")
    assert list(trace["index"]) == list(range(len(trace)))
    assert list(co_lat["index"]) == list(trace.loc[trace.in_window == 1, "index"])
    assert len(co_lat) == co["count"]
    assert co_lat.end_mono_ns.max() <= co.window_end_mono_ns


def test_external_and_gpu_components_through_the_sweep(tmp_path, farm):
    """An external backend (a real subprocess per batch) runs and is stored in frames/s; a GPU
    delegate that does not load fails its job with the reason, and the other jobs are kept."""
    fake_npu = REPO / "tests" / "agent" / "fake_npu.py"
    text = EXPERIMENTS.replace("components: [all]", "components: [cpu0, npu, mali]").replace(
        "dtypes: [float32, int8]", "dtypes: [float32]").replace("version: 1", "version: 1\nmembw_mb: 0")
    exp, inv = farm(experiments=text)
    inv.write_text(inv.read_text().replace(
        "          - {name: cpu1, class: cpu, cpus: [1]}\n",
        "          - {name: npu, class: npu, kind: external, cpus: [1], frames_per_batch: 4,\n"
        f"             command: [{sys.executable}, {fake_npu}, --frames, '{{frames}}', --sleep-ms, '2']}}\n"
        "          - {name: mali, class: gpu, kind: gpu, cpus: [1], delegate_path: /nonexistent/libdelegate.so}\n"))
    proc = sweep(tmp_path, exp, inv)
    assert proc.returncode != 0
    assert "mali" in proc.stderr and "libdelegate.so" in proc.stderr, proc.stderr
    run_dir = only_run(tmp_path / "runs")
    results = run_table(run_dir, "results").set_index("component")
    assert sorted(results.index) == ["cpu0", "npu"]
    npu = results.loc["npu"]
    assert npu.verdict == "VALID" and npu.component_class == "npu"
    # frames per second: four frames per call of the command
    assert npu.throughput_ips == pytest.approx(4 * npu["count"] / npu.duration_s)
    assert not (run_dir / "membw").exists()  # membw_mb: 0 turns it off
    failed = [e for e in map(json.loads, (run_dir / "journal.jsonl").read_text().splitlines())
              if e.get("state") == "failed"]
    assert len(failed) == 1 and "mali" in failed[0]["job_id"] and failed[0]["error"] == "SpecError"


@pytest.mark.slow
def test_nightly_sweep_against_last_good(tmp_path, farm):
    import json
    import xml.etree.ElementTree as ET

    exp, inv = farm(experiments=EXPERIMENTS.replace("dtypes: [float32, int8]", "dtypes: [int8]"))
    missing = sweep(tmp_path, exp, inv, "--baseline", "20200101T000000Z-dead")
    assert missing.returncode == 2 and "no run '20200101T000000Z-dead'" in missing.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir()), "refused before measuring"
    first = sweep(tmp_path, exp, inv, "--baseline", "last-good")
    assert first.returncode == 0 and "no regression verdicts: no earlier run" in first.stdout
    junit = tmp_path / "nightly.xml"
    second = sweep(tmp_path, exp, inv, "--baseline", "last-good", "--junit", str(junit), "--json")
    summary = json.loads(second.stdout)
    counts = summary["regressions"]["counts"]
    assert sum(counts.values()) == 2  # one series per component
    # one repeat per series: a verdict on one job against one would be noise, so none is given
    assert counts == {"not enough repeats": 2} and second.returncode == 0
    cases = ET.parse(junit).getroot().iter("testcase")
    assert len(list(cases)) == 2
    assert (tmp_path / "runs" / summary["run_id"] / "regress.json").exists()
    # the second sweep found the board provisioned with the same inputs and did not run Ansible again
    assert "provisioning localhost" in first.stderr and "provisioning localhost" not in second.stderr
    assert "already provisioned with these inputs: localhost" in second.stderr
    meta = json.loads((tmp_path / "runs" / summary["run_id"] / "run.json").read_text())
    assert meta["provision"] == {"status": "skipped", "skipped": ["localhost"]}
    # --reprovision runs the playbooks anyway (and the same state then still skips next time)
    third = sweep(tmp_path, exp, inv, "--reprovision", "--json")
    assert third.returncode in (0, 1) and "provisioning localhost" in third.stderr

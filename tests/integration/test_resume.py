"""A sweep killed (SIGKILL) or interrupted (SIGINT) midway is resumed: every job exactly once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.test_sweep_local import EXPERIMENTS, INVENTORY
from tests.store_helpers import only_run, run_table

pytestmark = pytest.mark.slow

MANY = EXPERIMENTS.replace("min_duration_s: 0.3", "min_duration_s: 0.5") + "    repeats: 3\n"


def start(tmp_path: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "sweep", *args, "--store", str(tmp_path / "runs"),
         "--reports", str(tmp_path / "reports"), "--state", str(tmp_path / "state")],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def journal(run_dir: Path) -> list[dict]:
    path = run_dir / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")] if path.exists() else []


def wait_for_done(tmp_path: Path, n: int, timeout_s: float = 300) -> Path:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = list((tmp_path / "runs").glob("*/journal.jsonl"))
        if runs and sum(r.get("state") == "done" for r in journal(runs[0].parent)) >= n:
            return runs[0].parent
        time.sleep(0.2)
    raise AssertionError(f"fewer than {n} jobs done within {timeout_s} s")


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT])
def test_resume_after_the_orchestrator_dies(tmp_path, how):
    from tests.conftest import FIXTURE_ZOO

    (tmp_path / "inv.yml").write_text(INVENTORY.format(work_dir=tmp_path / "board", meter=""))
    (tmp_path / "exp.yaml").write_text(MANY.format(zoo=FIXTURE_ZOO))
    proc = start(tmp_path, "exp.yaml", "-i", "inv.yml")
    try:
        run_dir = wait_for_done(tmp_path, 3)
        proc.send_signal(how)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    if how == signal.SIGINT:
        assert proc.returncode == 130
        assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    planned = json.loads((run_dir / "run.json").read_text())["jobs"]
    assert len(planned) == 12
    done_before = {r["job_id"] for r in journal(run_dir) if r.get("state") == "done"}
    assert 3 <= len(done_before) < 12

    resumed = start(tmp_path, "--resume", run_dir.name)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]

    results = run_table(run_dir, "results")
    assert sorted(results.job_id) == sorted(planned), "every job present exactly once"
    assert results.job_id.is_unique
    lat = run_table(run_dir, "latencies")
    assert set(lat.job_id) == set(planned)
    assert len(lat) == results["count"].sum(), "no latencies of a discarded attempt remain"
    # compacted into the store's dataset: the jobs before the stop (at the board's end after SIGINT, at the
    # resume's start after SIGKILL), then the resumed ones at the board's end; nothing left staged
    assert not list(run_dir.glob("results/*.parquet")) and not list(run_dir.glob("latencies/*.parquet"))
    assert len(list((tmp_path / "runs" / "results").glob(f"run_id={run_dir.name}/board=*/*.parquet"))) == 2
    done_after = [r["job_id"] for r in journal(run_dir) if r.get("state") == "done"]
    assert len(done_after) == len(set(done_after)) == 12, "no job measured twice"
    assert any(r.get("state") == "resumed" for r in journal(run_dir))
    assert not list((tmp_path / "state" / "leases").glob("*.lease")), "leases released"


def test_resume_refuses_changed_inputs(tmp_path):
    from tests.conftest import FIXTURE_ZOO

    (tmp_path / "inv.yml").write_text(INVENTORY.format(work_dir=tmp_path / "board", meter=""))
    (tmp_path / "exp.yaml").write_text(EXPERIMENTS.format(zoo=FIXTURE_ZOO).replace("[float32, int8]", "[int8]"))
    first = start(tmp_path, "exp.yaml", "-i", "inv.yml")
    first.communicate(timeout=300)
    run_id = only_run(tmp_path / "runs").name
    (tmp_path / "exp.yaml").write_text(EXPERIMENTS.format(zoo=FIXTURE_ZOO))
    again = start(tmp_path, "--resume", run_id)
    _, err = again.communicate(timeout=120)
    assert again.returncode == 2 and "changed since the run started" in err

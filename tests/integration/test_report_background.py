"""`sweep --report background` (the default): the result first, the report from a process of its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.report.background import pending, start_report, wait_for_pending
from orchestrator.results.store import RunDir
from tests.integration.test_sweep_local import farm, orchestrator, sweep  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow


def test_the_result_comes_first_then_the_report(tmp_path, farm):  # noqa: F811
    exp, inv = farm()
    proc = sweep(tmp_path, exp, inv, "--report", "background", "--json", "--power-cap-w", "2.5")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    summary = json.loads(proc.stdout)
    assert summary["done"] == 4 and summary["report_pid"] > 0
    run_dir = Path(summary["run_dir"])
    assert summary["report_log"] == str((run_dir / "report.log").resolve())
    assert any(r["state"] == "report_started" and r["pid"] == summary["report_pid"]
               for r in RunDir(run_dir).journal_records())

    assert wait_for_pending(tmp_path / "state", timeout_s=300) == []
    index = Path(summary["report"])
    assert index.exists() and (index.parent / "summary.md").exists() and (index.parent / "results.csv").exists()
    assert "mean power is at most 2.50 W" in (index.parent / "summary.md").read_text()  # the sweep's options reach it
    assert f"report: {index}" in (run_dir / "report.log").read_text()
    assert list((tmp_path / "state" / "reports-pending").iterdir()) == []  # its marker went with its process
    # the sweep left the store's compaction to that process: its result was not kept waiting for it
    states = [r.get("state") for r in RunDir(run_dir).journal_records()]
    assert "compacted" in states and states.index("report_started") < states.index("compacted")
    assert not list(run_dir.glob("results/*.parquet")) and not list(run_dir.glob("latencies/*.parquet"))
    dataset = tmp_path / "runs" / "results" / f"run_id={run_dir.name}"
    assert len(pd.read_parquet(dataset)) == 4


def test_the_terminal_says_where_the_report_will_be(tmp_path, farm):  # noqa: F811
    exp, inv = farm()
    proc = sweep(tmp_path, exp, inv, "--report", "background")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("report: ") and "being written in the background, process " in last
    assert wait_for_pending(tmp_path / "state", timeout_s=300) == []
    assert Path(last.removeprefix("report: ").split(" (")[0]).exists()


def test_report_none_writes_no_report(tmp_path, farm):  # noqa: F811
    exp, inv = farm()
    proc = sweep(tmp_path, exp, inv, "--report", "none", "--json")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    summary = json.loads(proc.stdout)
    assert summary["report"] is None and summary["report_pid"] is None
    assert not (tmp_path / "reports").exists()
    bad = sweep(tmp_path, exp, inv, "--report", "later")
    assert bad.returncode == 2 and "'later' is not one of" in bad.stderr, bad.stderr
    assert len(list((tmp_path / "runs").glob("*/run.json"))) == 1  # refused before anything was written


def test_a_failing_writer_removes_its_marker_and_logs_why(tmp_path):
    """The run is not in the store: the writer fails (exit 2), says why in its log, leaves no marker.

    Its log is complete once it is no longer pending (the marker is not removed before the error is written)."""
    (tmp_path / "runs").mkdir()
    run_dir = tmp_path / "run-folder"
    run_dir.mkdir()
    pend = start_report("20990101T000000Z-dead", run_dir, tmp_path / "runs", tmp_path / "reports", tmp_path / "state")
    assert wait_for_pending(tmp_path / "state", timeout_s=120) == []
    assert not pend.marker.exists()
    log = (run_dir / "report.log").read_text()
    assert "no run '20990101T000000Z-dead'" in log


def _sleeper(run_id: str, seconds: float) -> subprocess.Popen:
    """A process that looks like the writer of ``run_id`` (its id is in its command line)."""
    return subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({seconds})", run_id])


def _marker(state: Path, run_id: str, pid: int) -> Path:
    folder = state / "reports-pending"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run_id}.json"
    path.write_text(json.dumps({"run_id": run_id, "pid": pid, "index": "i", "log": "l", "started_wall": 0}))
    return path


def test_a_sweep_on_a_local_board_waits_for_pending_reports(tmp_path):
    """The writer runs on the controller: when the controller is also the board, its next measurement waits."""
    proc = _sleeper("20990101T000000Z-busy", 1.0)
    _marker(tmp_path, "20990101T000000Z-busy", proc.pid)
    notes: list[str] = []
    left = wait_for_pending(tmp_path, timeout_s=120, note=notes.append)
    assert left == [] and proc.poll() is not None  # it returned only once the writer had ended
    assert notes and "waiting for the report of 20990101T000000Z-busy" in notes[0]


def test_stale_and_foreign_markers_do_not_hold_a_sweep(tmp_path):
    done = subprocess.run([sys.executable, "-c", "pass"])
    assert done.returncode == 0
    stale = _marker(tmp_path, "20990101T000000Z-gone", 2 ** 22 + 12345)  # no such process
    other = _sleeper("something-else", 30.0)  # alive, but not a writer of that run (a reused pid)
    try:
        reused = _marker(tmp_path, "20990101T000000Z-reus", other.pid)
        (tmp_path / "reports-pending" / "garbage.json").write_text("{not json")
        assert wait_for_pending(tmp_path, timeout_s=60) == []
        assert other.poll() is None  # not held by the reused pid: it returned while that process still ran
        assert not stale.exists() and not reused.exists()
        assert pending(tmp_path) == []
    finally:
        other.kill()
        other.wait()

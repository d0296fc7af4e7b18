"""A board stores each job on its store thread while it measures the next: the order that keeps, what a
failed store does, and what waits for a store (a co-execution job's isolated baselines, the board's end).

The board is the in-process stand-in of test_board_energy (no meter); no test waits on a clock: what one
thread waits for, the other sets (with a bound, so that a missing overlap fails instead of hanging)."""

from __future__ import annotations

import threading
from pathlib import Path

import pandas as pd

from orchestrator import board_runner
from orchestrator.board_runner import BoardRunner, StepTimer, SweepOutcome
from orchestrator.config.experiment import MeasurementRules
from orchestrator.config.inventory import Board, Component
from orchestrator.errors import BoardLockLost
from orchestrator.jobs import Job, Member
from orchestrator.progress import SweepProgress
from orchestrator.provision.runner import BoardFacts
from orchestrator.results.store import RunDir, Store
from orchestrator.scheduler.leases import HoldLost
from orchestrator.scheduler.retry import RetryPolicy
from tests.orchestrator.test_board_energy import FakeBoard

BOUND_S = 30.0  # what a test waits for at most; reached only when the behaviour under test is missing
FACTS = BoardFacts(board="b0", python="python3", agent_dir="/a", agent_version="t", runtime_module="rt",
                   runtime_version="1", arch="x86_64", hostname="b0", usable_cpus=(0, 1))
BOARD = Board(name="b0", soc="host_cpu", connection="ssh", address="192.0.2.1", work_dir="/w",
              components=[Component(name="cpu0", cpus=[0]), Component(name="cpu1", cpus=[1])])


def _job(n: int, *members: str) -> Job:
    names = members or ("cpu0",)
    return Job(job_id=f"{n:04d}-{'+'.join(names)}", experiment="e", board="b0", soc="host_cpu",
               component="+".join(names), component_class="cpu", cpus=(0,), threads=1, model="tiny_cnn",
               model_display="Tiny CNN", dtype="float32", model_file="tiny_cnn_float32.tflite",
               model_sha256="a" * 64, repeat=n, rules=MeasurementRules(warmup_runs=0, min_count=1),
               members=tuple(Member(name=m, component_class="cpu", cpus=(i,), threads=1, agent_component="{}")
                             for i, m in enumerate(names)))


class RecordingBoard(FakeBoard):
    """FakeBoard that keeps every spec it was asked to run and calls ``on_run`` with it first."""

    def __init__(self, tmp: Path, on_run=None):
        super().__init__(tmp, offset_s=0.0)
        self.specs: list[dict] = []
        self.on_run = on_run or (lambda spec: None)

    def run_agent(self, spec, on_event, timeout_s, command="run"):
        self.specs.append(spec)
        self.on_run(spec)
        return super().run_agent(spec, on_event, timeout_s, command)


def _runner(monkeypatch, tmp_path: Path, link, lock_lost: HoldLost | None = None) -> tuple[BoardRunner, RunDir]:
    monkeypatch.setattr("tests.orchestrator.test_board_energy.WINDOW_S", 0.01)
    monkeypatch.setattr("orchestrator.board_runner.open_transport", lambda b, f: link)
    run = Store(tmp_path / "runs").create_run("r1", {"boards": {}})
    progress = SweepProgress(enabled=False)
    progress.start_jobs({"b0": 3})
    return BoardRunner(run, BOARD, FACTS, "abc", progress, threading.Event(),
                       retry=RetryPolicy(max_attempts=2, backoff_s=(0.0,)), lock_lost=lock_lost), run


def _states(run: RunDir) -> list[tuple[str, str]]:
    return [(e["state"], e["job_id"]) for e in run.journal_records() if "job_id" in e]


def test_a_job_is_stored_while_the_next_one_is_measured(monkeypatch, tmp_path):
    """The first job's rows are held back until the board is inside the second job's window: the store
    waits for that, and it only comes if the board went on measuring meanwhile."""
    second_running = threading.Event()
    link = RecordingBoard(tmp_path, on_run=lambda spec: spec["job_id"].startswith("0002") and second_running.set())
    runner, run = _runner(monkeypatch, tmp_path, link)
    write = RunDir.write_table

    def held_write(self, table, job_id, rows):
        if job_id.startswith("0001") and table == "results":
            assert second_running.wait(BOUND_S), "the board waited for its store before the next job"
        return write(self, table, job_id, rows)

    monkeypatch.setattr(RunDir, "write_table", held_write)
    acc = SweepOutcome(run)
    runner.run_jobs([_job(1), _job(2), _job(3)], acc)
    assert sorted(acc.done) == ["0001-cpu0", "0002-cpu0", "0003-cpu0"] and not acc.failed
    states = _states(run)
    assert states.index(("started", "0002-cpu0")) < states.index(("done", "0001-cpu0"))
    # every job is done before the board's share ends (the last store is waited for)
    assert len(pd.read_parquet(run.path / "results")) == 3
    # where each job's time went on the controller, journalled with its done (no meter on this board)
    steps = [e["steps_ms"] for e in run.journal_records() if e.get("state") == "done"]
    assert [sorted(s) for s in steps] == [["agent", "clock_after", "clock_before", "fetch", "settle", "store"]] * 3
    assert all(v >= 0 for s in steps for v in s.values())


def test_a_step_timer_gives_each_step_the_time_since_the_last_lap():
    ticks = iter([10.0, 10.5, 12.0, 12.25, 13.0])
    timer = StepTimer(clock=lambda: next(ticks))
    timer.lap("clock_before")
    timer.lap("agent")
    timer.lap("fetch")
    timer.lap("fetch")  # a step timed twice (e.g. two files) adds up
    assert timer.ms == {"clock_before": 500.0, "agent": 1500.0, "fetch": 1000.0}


def test_a_store_that_fails_measures_the_job_again(monkeypatch, tmp_path):
    link = RecordingBoard(tmp_path)
    runner, run = _runner(monkeypatch, tmp_path, link)
    write, failed = RunDir.write_table, []

    def failing_once(self, table, job_id, rows):
        if job_id.startswith("0001") and table == "results" and not failed:
            failed.append(job_id)
            raise OSError(28, "No space left on device")
        return write(self, table, job_id, rows)

    monkeypatch.setattr(RunDir, "write_table", failing_once)
    acc = SweepOutcome(run)
    runner.run_jobs([_job(1), _job(2)], acc)
    assert sorted(acc.done) == ["0001-cpu0", "0002-cpu0"] and not acc.failed
    assert [s["job_id"] for s in link.specs] == ["0001-cpu0", "0002-cpu0", "0001-cpu0"]
    assert link.specs[-1]["output_dir"].endswith("attempt-2")
    retry = [e for e in run.journal_records() if e.get("state") == "retry"]
    assert [(e["job_id"], e["attempt"], e["error"]) for e in retry] == [("0001-cpu0", 1, "OSError")]
    done = {e["job_id"]: e["attempt"] for e in run.journal_records() if e.get("state") == "done"}
    assert done == {"0001-cpu0": 2, "0002-cpu0": 1}
    results = pd.read_parquet(run.path / "results")
    assert sorted(results["job_id"]) == ["0001-cpu0", "0002-cpu0"]  # once each: the failed attempt left none


def test_a_store_that_keeps_failing_fails_its_job_only(monkeypatch, tmp_path):
    runner, run = _runner(monkeypatch, tmp_path, RecordingBoard(tmp_path))
    write = RunDir.write_table

    def failing(self, table, job_id, rows):
        if job_id.startswith("0001"):
            raise OSError(28, "No space left on device")
        return write(self, table, job_id, rows)

    monkeypatch.setattr(RunDir, "write_table", failing)
    acc = SweepOutcome(run)
    runner.run_jobs([_job(1), _job(2)], acc)
    assert acc.done == ["0002-cpu0"] and list(acc.failed) == ["0001-cpu0"]
    assert "No space left on device" in acc.failed["0001-cpu0"] and not acc.quarantined


def test_a_coexec_job_waits_for_its_isolated_baselines(monkeypatch, tmp_path):
    """The isolated jobs just before a co-execution job may still be in their store: its spec must have
    their throughput (the agent reports gains against it), so it waits for them."""
    link = RecordingBoard(tmp_path)
    runner, run = _runner(monkeypatch, tmp_path, link)
    write = RunDir.write_table

    def slow_write(self, table, job_id, rows):  # the last isolated job's store is slow: no overlap by luck
        if job_id.startswith("0002") and table == "results":
            threading.Event().wait(0.3)
        return write(self, table, job_id, rows)

    monkeypatch.setattr(RunDir, "write_table", slow_write)
    acc = SweepOutcome(run)
    runner.run_jobs([_job(1, "cpu0"), _job(2, "cpu1"), _job(3, "cpu0", "cpu1")], acc)
    assert not acc.failed, acc.failed
    coexec = link.specs[-1]
    assert set(coexec["isolated_ips"]) == {"cpu0", "cpu1"}


def test_a_hold_lost_during_a_store_fails_that_job_with_the_hold_error(monkeypatch, tmp_path):
    hold = HoldLost()
    link = RecordingBoard(tmp_path)
    link.abort = lambda reason: None  # the job in flight is a stand-in: nothing to stop
    runner, run = _runner(monkeypatch, tmp_path, link, lock_lost=hold)
    trace_frame = board_runner._trace_frame

    def losing(path, run_id, job_id):  # the store's first step: the hold goes before it stores anything
        if job_id.startswith("0001"):
            hold.lose(BoardLockLost("b0: the board's lock was taken over"))
        return trace_frame(path, run_id, job_id)

    monkeypatch.setattr(board_runner, "_trace_frame", losing)
    acc = SweepOutcome(run)
    runner.run_jobs([_job(1), _job(2), _job(3)], acc)
    assert not acc.done
    assert "b0" in acc.quarantined and sorted(acc.failed) == ["0001-cpu0", "0002-cpu0", "0003-cpu0"]
    assert all("lock" in message for message in acc.failed.values())
    assert not (run.path / "results").exists() or pd.read_parquet(run.path / "results").empty


def test_a_stopped_board_still_stores_the_job_it_measured(monkeypatch, tmp_path):
    link = RecordingBoard(tmp_path)
    runner, run = _runner(monkeypatch, tmp_path, link)
    link.on_run = lambda spec: spec["job_id"].startswith("0002") and runner.stop.set()
    acc = SweepOutcome(run)
    runner.run_jobs([_job(1), _job(2), _job(3)], acc)
    assert sorted(acc.done) == ["0001-cpu0", "0002-cpu0"] and not acc.failed
    assert sorted(pd.read_parquet(run.path / "results")["job_id"]) == ["0001-cpu0", "0002-cpu0"]

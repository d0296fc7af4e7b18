"""A sweep takes its boards in the order of their names: while one is busy, it holds none after it, so two
sweeps that want the same boards cannot each hold a part and wait for the rest."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from orchestrator.board_runner import SweepOutcome
from orchestrator.config.inventory import Board, Component, Lab
from orchestrator.progress import SweepProgress
from orchestrator.provenance import new_run_id
from orchestrator.results.store import Store
from orchestrator.scheduler.board_lock import BoardLock
from orchestrator.sweep import SweepPlan, SweepRunner


def local_board(name: str, root: Path) -> Board:
    return Board(name=name, soc="host_cpu", connection="local", work_dir=str(root / name),
                 components=[Component(name="cpu0", cpus=[0])])


def journal(run) -> list[dict]:
    path = run.path / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_for(predicate, what: str, within_s: float = 30.0) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)


def test_boards_after_a_busy_one_are_given_back_until_it_is_held(tmp_path):
    boards = [local_board(n, tmp_path) for n in ("b1", "b2", "b3")]
    plan = SweepPlan(tmp_path / "e.yaml", tmp_path / "i.yml", None, Lab(source="test", boards=boards), tmp_path,
                     None, [])
    runner = SweepRunner(plan, Store(tmp_path / "runs"), tmp_path / "state", tmp_path / "reports",
                         SweepProgress(enabled=False), lease_wait_s=120)
    run = runner.store.create_run(new_run_id(), {})
    other = BoardLock(boards[1], "other-controller").acquire()  # b2: held by a sweep this table cannot see
    result: dict = {}
    leasing = threading.Thread(target=lambda: result.update(runner._lease(run, ["b3", "b1", "b2"],
                                                                          SweepOutcome(run=run))))
    leasing.start()
    probe = None
    try:
        wait_for(lambda: any(r.get("state") == "given_back" for r in journal(run)), "b3 given back")
        time.sleep(2.5)  # rounds of waiting for b2: b3 is not taken and given back again in each
        given = [r for r in journal(run) if r.get("state") == "given_back"]
        assert [(r["board"], r["waiting_for"]) for r in given] == [("b3", "b2")]
        assert [r["board"] for r in journal(run) if r.get("state") == "leased"] == ["b1"]
        probe = BoardLock(boards[2], "third").acquire()  # b3 is free while the sweep waits for b2
        other.release()
        wait_for(lambda: any(r.get("state") == "leased" and r["board"] == "b2" for r in journal(run)), "b2 leased")
        probe.release()
        probe = None
        leasing.join(30)
        assert not leasing.is_alive()
        assert sorted(result) == ["b1", "b2", "b3"]
    finally:
        other.release()
        if probe is not None:
            probe.release()
        leasing.join(30)
        for held in result.values():
            held.close()

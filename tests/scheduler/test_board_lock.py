"""The lock on the board itself: one holder at a time, freed by the holder's end however it ends."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from orchestrator.config.inventory import Board, Component
from orchestrator.errors import BoardLockLost
from orchestrator.scheduler.board_lock import BoardLock, BoardLockError
from orchestrator.scheduler.leases import LeaseHeld


def local_board(work_dir) -> Board:
    return Board(name="here", soc="host_cpu", connection="local", work_dir=str(work_dir),
                 components=[Component(name="cpu0", cpus=[0])])


def eventually_free(board, owner="late", within_s=10.0) -> BoardLock:
    deadline = time.monotonic() + within_s
    while True:
        try:
            return BoardLock(board, owner).acquire()
        except LeaseHeld:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_one_holder_at_a_time_and_the_refusal_names_it(tmp_path):
    board = local_board(tmp_path / "work")
    first = BoardLock(board, "run-1").acquire()
    try:
        with pytest.raises(LeaseHeld, match=rf"locked on the board by run-1 \(pid {os.getpid()} on "):
            BoardLock(board, "run-2").acquire()
        holder = json.loads((tmp_path / "work" / ".socfarm.lock.json").read_text())
        assert holder["owner"] == "run-1"
    finally:
        first.release()
    second = BoardLock(board, "run-2").acquire()  # released: free at once
    second.release()
    assert not (tmp_path / "work" / ".socfarm.lock.json").exists()


def test_a_holder_killed_without_releasing_frees_the_board(tmp_path):
    board = local_board(tmp_path / "work")
    first = BoardLock(board, "crashed").acquire()
    first._stop.set()  # no more heartbeats, and no release: as if the controller was SIGKILLed ...
    pid = _script_pid(tmp_path / "work")
    os.kill(pid, signal.SIGKILL)  # ... and the board's process died with its session
    eventually_free(board).release()
    first.release()  # the session is gone already: releasing it again is harmless


def test_a_holder_that_stops_beating_loses_the_lock_after_its_ttl(tmp_path):
    board = local_board(tmp_path / "work")
    quiet = BoardLock(board, "partitioned", ttl_s=0.5).acquire()
    quiet._stop.set()  # the heartbeats stop (a cut network), the session stays open
    t0 = time.monotonic()
    eventually_free(board).release()
    assert time.monotonic() - t0 >= 0.2
    quiet.release()


def test_an_unusable_work_dir_is_a_lock_error_not_a_holder(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(BoardLockError, match="cannot take the board's lock"):
        BoardLock(local_board(tmp_path / "file" / "work"), "run").acquire()


def test_a_lock_whose_process_dies_is_lost_at_once_with_a_named_error(tmp_path):
    board = local_board(tmp_path / "work")
    lock = BoardLock(board, "run-1", ttl_s=600).acquire()  # next heartbeat in 150 s: only the end of its output
    try:
        os.kill(_script_pid(tmp_path / "work"), signal.SIGKILL)
        assert lock.lost.wait(30), "the lock's end was not noticed"
        assert isinstance(lock.lost.error, BoardLockLost)
        assert str(lock.lost.error).startswith("here: lost the lock on the board")
        assert str(tmp_path / "work" / ".socfarm.lock") in str(lock.lost.error)
    finally:
        lock.release()


def test_a_released_lock_is_not_reported_lost(tmp_path):
    lock = BoardLock(local_board(tmp_path / "work"), "run-1").acquire()
    lock.release()
    lock._watch.join(10)
    assert not lock.lost.is_set()


def test_the_board_logs_every_acquire_refusal_and_release(tmp_path):
    board = local_board(tmp_path / "work")
    first = BoardLock(board, "run-1").acquire()
    with pytest.raises(LeaseHeld):
        BoardLock(board, "run-2").acquire()
    first.release()
    BoardLock(board, "run-3").acquire().release()
    lines = [json.loads(line) for line in (tmp_path / "work" / ".socfarm.lock.log").read_text().splitlines()]
    assert [(e["event"], e["holder"]["owner"]) for e in lines] == [
        ("acquired", "run-1"), ("refused", "run-2"), ("released", "run-1"), ("acquired", "run-3"),
        ("released", "run-3")]
    assert lines[2]["why"] == "release" and json.loads(lines[1]["held_by"])["owner"] == "run-1"
    walls = [e["t_wall"] for e in lines]
    assert walls == sorted(walls) and all(e["pid"] > 0 and e["t_mono_ns"] > 0 for e in lines)


def _script_pid(work_dir) -> int:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = open(f"/proc/{entry}/cmdline", "rb").read().split(b"\0")
            except OSError:
                continue
            if b"-c" in cmdline and str(work_dir).encode() in cmdline:
                return int(entry)
    raise AssertionError("lock script not found")

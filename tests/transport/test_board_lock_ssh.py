"""The board's own lock over SSH (loopback sshd): held across sessions, freed when its session ends."""

from __future__ import annotations

import time

import pytest

from orchestrator.scheduler.board_lock import BoardLock, BoardLockError
from orchestrator.scheduler.leases import LeaseHeld
from orchestrator.transport.ssh import BoardUnreachable


def test_lock_over_ssh_is_exclusive_and_freed_with_its_session(sshd, tmp_path):
    board = sshd.board(tmp_path / "board")
    first = BoardLock(board, "run-a").acquire()
    with pytest.raises(LeaseHeld, match="locked on the board by run-a"):
        BoardLock(board, "run-b").acquire()
    first._stop.set()
    first._session.close()  # the controller's session ends without a word (a crash)
    second = None
    for _ in range(100):  # sshd ends the script when its channel closes
        try:
            second = BoardLock(board, "run-b").acquire()
            break
        except LeaseHeld:
            time.sleep(0.1)
    assert second is not None, "the board stayed locked after its holder's session ended"
    second.release()


def test_unreachable_board_is_a_lock_error(sshd, tmp_path):
    board = sshd.board(tmp_path / "board", port=1)
    with pytest.raises(BoardUnreachable, match="lo .*taking the board's lock|lo .*connecting"):
        BoardLock(board, "run").acquire()


def test_no_usable_work_dir_over_ssh_is_a_lock_error(sshd, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(BoardLockError):
        BoardLock(sshd.board(tmp_path / "file" / "board"), "run").acquire()

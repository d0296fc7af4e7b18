"""The board's lock log read back: holdings per holder, overlaps found, acts outside a holding found."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from orchestrator.errors import StoreError
from orchestrator.scheduler.board_lock import BoardLock
from orchestrator.scheduler.lock_log import LOG_NAME, holdings, outside, overlaps, read_log
from tests.scheduler.test_board_lock import _script_pid, eventually_free, local_board


def test_holdings_of_a_real_log_one_holder_killed_outright(tmp_path):
    board = local_board(tmp_path / "work")
    first = BoardLock(board, "run-1").acquire()
    t_inside = time.time()
    first.release()
    crashed = BoardLock(board, "run-2").acquire()
    crashed._stop.set()
    os.kill(_script_pid(tmp_path / "work"), signal.SIGKILL)  # no release line
    third = eventually_free(board, owner="run-3")
    held, still = holdings(read_log(tmp_path / "work" / LOG_NAME))
    assert [(h.owner, h.released) for h in held] == [("run-1", True), ("run-2", False)]
    assert [h.owner for h in still] == ["run-3"]
    assert overlaps(held + still) == []
    assert held[1].end == still[0].start  # the killed holder's end: the next acquire
    assert outside(held, "run-1", [t_inside]) == [] and outside(held, "run-2", [t_inside]) == [t_inside]
    third.release()
    crashed.release()


def test_overlapping_holdings_are_named(tmp_path):
    log = tmp_path / LOG_NAME
    lines = [("acquired", "a", 1, 10.0), ("acquired", "b", 2, 11.0), ("released", "b", 2, 12.0),
             ("released", "a", 1, 13.0)]
    log.write_text("".join(json.dumps({"event": e, "holder": {"owner": o}, "pid": p, "t_wall": t}) + "\n"
                           for e, o, p, t in lines))
    held, still = holdings(read_log(log))
    assert [(h.owner, h.start, h.end) for h in held] == [("a", 10.0, 13.0), ("b", 11.0, 12.0)] and still == []
    assert overlaps(held) == ["a (pid 1) held it until 13.000000, b (pid 2) from 11.000000"]


def test_a_torn_line_is_an_error_naming_file_and_line(tmp_path):
    log = tmp_path / LOG_NAME
    log.write_text(json.dumps({"event": "acquired", "holder": {"owner": "a"}, "pid": 1, "t_wall": 1.0}) + "\n{torn\n")
    with pytest.raises(StoreError, match=rf"{LOG_NAME}:2: not a lock log line"):
        read_log(log)

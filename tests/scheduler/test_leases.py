"""Board leases: exclusive, renewable, released only by their owner, stale ones broken."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time

import pytest

from orchestrator.errors import BoardLockLost, LeaseRenewalFailed
from orchestrator.scheduler.leases import HoldLost, LeaseHeld, LeaseKeeper, LeaseTable


def test_exclusive_until_released(tmp_path):
    table = LeaseTable(tmp_path)
    first = table.acquire("xu3-1", "run-a")
    with pytest.raises(LeaseHeld, match=r"leased by run-a \(pid"):
        table.acquire("xu3-1", "run-b")
    table.acquire("xu3-2", "run-b")  # other boards are free
    table.release(first)
    assert table.acquire("xu3-1", "run-b").owner == "run-b"


def test_release_never_frees_someone_elses_lease(tmp_path):
    table = LeaseTable(tmp_path)
    mine = table.acquire("b", "run-a")
    (tmp_path / "b.lease").unlink()
    theirs = table.acquire("b", "run-b")
    table.release(mine)
    assert table.read("b").token == theirs.token


def test_expired_lease_is_broken(tmp_path):
    table = LeaseTable(tmp_path, ttl_s=0.05)
    table.acquire("b", "run-a")
    time.sleep(0.1)
    assert table.acquire("b", "run-b").owner == "run-b"


def test_lease_of_a_dead_process_is_broken(tmp_path):
    table = LeaseTable(tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lease = table.acquire("b", "run-a")
    data = json.loads((tmp_path / "b.lease").read_text())
    data["pid"] = int(dead.stdout)
    (tmp_path / "b.lease").write_text(json.dumps(data))
    assert table.is_stale(table.read("b"))
    assert table.acquire("b", "run-b").token != lease.token


def test_keeper_renews_and_releases(tmp_path):
    table = LeaseTable(tmp_path, ttl_s=0.3)
    with LeaseKeeper(table, "b", "run-a") as keeper:
        first_expiry = keeper.lease.expires_at
        time.sleep(0.5)
        assert table.read("b").expires_at > first_expiry  # renewed, so never stale while held
        with pytest.raises(LeaseHeld):
            table.acquire("b", "run-b")
    assert table.read("b") is None


def test_corrupt_lease_file_counts_as_stale(tmp_path):
    table = LeaseTable(tmp_path)
    (tmp_path / "b.lease").write_text("{torn")
    assert table.acquire("b", "run-a").owner == "run-a"


def test_a_renewal_that_finds_another_holder_ends_the_hold_with_a_named_error(tmp_path):
    table = LeaseTable(tmp_path, ttl_s=0.3)
    keeper = LeaseKeeper(table, "b", "run-a")
    theirs = {**json.loads((tmp_path / "b.lease").read_text()), "owner": "run-b", "token": "f" * 16}
    (tmp_path / "b.lease").write_text(json.dumps(theirs))  # as if another sweep had broken it and taken it
    assert keeper.lost.wait(10), "the failed renewal was not reported"
    error = keeper.lost.error
    assert isinstance(error, LeaseRenewalFailed)
    assert str(error).startswith("b: ") and str(tmp_path / "b.lease") in str(error)
    assert "LeaseHeld" in str(error) and "run-b" in str(error)
    keeper.close()
    assert table.read("b").owner == "run-b"  # theirs is never released by us


def test_a_renewal_that_fails_on_the_state_folder_ends_the_hold_with_a_named_error(tmp_path):
    table = LeaseTable(tmp_path / "leases", ttl_s=0.3)
    keeper = LeaseKeeper(table, "b", "run-a")
    shutil.rmtree(tmp_path / "leases")  # the state folder broke under the sweep
    assert keeper.lost.wait(10), "the failed renewal was not reported"
    assert isinstance(keeper.lost.error, LeaseRenewalFailed)
    assert "FileNotFoundError" in str(keeper.lost.error) and "b.lease" in str(keeper.lost.error)
    keeper.close()  # already reported: closing does not raise the same failure again


def test_a_lost_hold_calls_its_watcher_back_from_the_losing_thread_once(tmp_path):
    table = LeaseTable(tmp_path, ttl_s=0.3)
    keeper = LeaseKeeper(table, "b", "run-a")
    calls: list[tuple[str, str]] = []
    with keeper.lost.watch(lambda error: calls.append((threading.current_thread().name, str(error)))):
        (tmp_path / "b.lease").unlink()  # the renewal finds it gone
        assert keeper.lost.wait(10)
        keeper.lost.lose(BoardLockLost("b: a second loss"))  # the first one wins; no second call
    assert len(calls) == 1 and calls[0][0] != threading.current_thread().name
    assert "b.lease" in calls[0][1] and str(keeper.lost.error) == calls[0][1]
    keeper.close()


def test_a_hold_lost_before_it_is_watched_calls_back_at_once_and_not_after_leaving():
    lost = HoldLost()
    lost.lose(BoardLockLost("b: gone"))
    calls: list[str] = []
    with lost.watch(calls.append):
        assert [str(c) for c in calls] == ["b: gone"]
    later = HoldLost()
    with later.watch(calls.append):
        pass
    later.lose(BoardLockLost("b: after"))  # nobody watches any more
    assert len(calls) == 1


def test_leaving_the_watch_waits_for_a_call_back_in_progress():
    lost, entered, leave_done = HoldLost(), threading.Event(), threading.Event()
    order: list[str] = []

    def slow_abort(error):
        entered.set()
        time.sleep(0.3)  # an agent server being stopped
        order.append("abort ended")

    def watcher():
        with lost.watch(slow_abort):
            entered.wait(10)
        order.append("left")
        leave_done.set()

    thread = threading.Thread(target=watcher)
    thread.start()
    time.sleep(0.05)
    lost.lose(BoardLockLost("b: gone"))
    assert leave_done.wait(10)
    thread.join()
    assert order == ["abort ended", "left"]


def test_a_failing_call_back_does_not_end_the_losing_thread(capsys):
    lost = HoldLost()

    def broken(error):
        raise RuntimeError("transport already closed")

    with lost.watch(broken):
        lost.lose(BoardLockLost("b: gone"))
    assert lost.is_set() and str(lost.error) == "b: gone"
    assert "RuntimeError: transport already closed" in capsys.readouterr().err

"""Board leases: exclusive, renewable, released only by their owner, stale ones broken."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import pytest

from orchestrator.errors import LeaseRenewalFailed
from orchestrator.scheduler.leases import LeaseHeld, LeaseKeeper, LeaseTable


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

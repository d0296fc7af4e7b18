"""Board leases: exclusive, renewable, released only by their owner, stale ones broken."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

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

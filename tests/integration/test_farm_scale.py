"""Farm scale on 4 virtual boards: a sweep of 32 jobs, a board whose sshd dies mid-sweep is
quarantined while the others finish, a board whose lock dies mid-job has that job aborted, and two
concurrent sweeps never share a board."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import pytest

from orchestrator.results.store import RunDir
from orchestrator.scheduler.lock_log import LOG_NAME, holdings, outside, overlaps, read_log
from orchestrator.virtual.farm import BoardSpec
from orchestrator.virtual.inventory import write_inventory
from tests.conftest import FIXTURE_ZOO
from tests.store_helpers import run_table
from tests.virtual_farm.helpers import running_farm

pytestmark = [pytest.mark.netns, pytest.mark.slow]

EXPERIMENTS = """
version: 1
zoo: {zoo}
rules: {{warmup_runs: 1, min_count: 20, min_duration_s: 0.3, max_duration_s: 10}}
experiments:
  - name: scale
    boards: [{boards}]
    models: [tiny_cnn]
    dtypes: [float32, int8]
    components: [all]
    repeats: {repeats}
"""


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    boards = [BoardSpec("xu3-a", "odroid_xu3"), BoardSpec("xu3-b", "odroid_xu3"),
              BoardSpec("hikey-a", "hikey970"), BoardSpec("hikey-b", "hikey970")]
    with running_farm(tmp_path_factory.mktemp("farm4"), boards, max_lifetime_s=1500) as farm:
        yield farm


@pytest.fixture(scope="module")
def workspace(farm, tmp_path_factory):
    """Inventory, store and controller state shared by the tests (so boards are provisioned once)."""
    ws = tmp_path_factory.mktemp("ws")
    write_inventory(farm, ws / "inventory.yml")
    return ws


def sweep(ws: Path, name: str, boards: str, repeats: int = 1, *extra: str, state: str = "state") -> subprocess.Popen:
    exp = ws / f"{name}.yaml"
    exp.write_text(EXPERIMENTS.format(zoo=FIXTURE_ZOO, boards=boards, repeats=repeats))
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "sweep", str(exp), "-i", str(ws / "inventory.yml"),
         "--store", str(ws / "runs"), "--reports", str(ws / "reports"), "--state", str(ws / state), "--json",
         *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def finish(proc: subprocess.Popen, timeout_s: float = 900) -> dict:
    out, err = proc.communicate(timeout=timeout_s)
    assert out.strip(), "no summary on stdout; stderr:\n" + "\n".join(line for line in err.splitlines()
                                                                      if line.strip())[-4000:]
    return {**json.loads(out), "rc": proc.returncode, "stderr": err}


def journal(run_dir: Path) -> list[dict]:
    return RunDir(run_dir).journal_records()  # a sweep may be writing its last line


def new_run(workspace: Path, before: set[Path]) -> Callable[[], Path | None]:
    """The folder of the run a sweep started after ``before`` was listed, once it has a journal."""
    def find() -> Path | None:
        runs = (workspace / "runs").iterdir() if (workspace / "runs").exists() else []
        new = [r for r in runs if r not in before and (r / "journal.jsonl").exists()]
        return new[0] if new else None
    return find


def await_board_state(run_dir: Callable[[], Path | None], board: str, state: str,
                      running: Callable[[], None]) -> Path:
    """Poll (at most 600 s) until the journal of the run ``run_dir()`` names (None: not yet created) has
    ``state`` for ``board``; ``running()`` asserts that the sweep still runs."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        path = run_dir()
        if path is not None and any(r.get("state") == state and r.get("board") == board for r in journal(path)):
            return path
        running()
        time.sleep(0.2)
    raise AssertionError(f"{board} never reached {state!r} in 600 s")


def still_running(proc: subprocess.Popen) -> Callable[[], None]:
    def check() -> None:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
    return check


def test_sweep_of_32_jobs_on_4_boards(workspace):
    res = finish(sweep(workspace, "all", "all", repeats=2))
    assert res["rc"] == 0, res["stderr"][-4000:]
    assert res["jobs"] == 32 and res["done"] == 32
    results = run_table(Path(res["run_dir"]), "results")
    assert len(results) == 32 and results.job_id.is_unique
    assert results.groupby("board").size().to_dict() == {b: 8 for b in ("hikey-a", "hikey-b", "xu3-a", "xu3-b")}
    # boards ran in parallel: every board began its share (clock probe, idle, bandwidth, jobs) before any
    # board had finished its last job (job windows alone need not overlap: boards idle for different times)
    recs = journal(Path(res["run_dir"]))
    began = {r["board"]: r["t_wall"] for r in recs if r.get("state") == "clock"}
    ended = {r["board"]: r["t_wall"] for r in recs if r.get("state") == "done"}
    assert set(began) == set(ended) == {"hikey-a", "hikey-b", "xu3-a", "xu3-b"}
    assert max(began.values()) < min(ended.values())


def test_board_whose_sshd_dies_is_quarantined_and_the_others_finish(farm, workspace):
    before = set((workspace / "runs").iterdir()) if (workspace / "runs").exists() else set()
    proc = sweep(workspace, "crash", "all", repeats=2)
    victim = "xu3-b"
    try:
        await_board_state(new_run(workspace, before), victim, "done", still_running(proc))
        farm.kill_sshd(victim)
        ns = farm.board(victim).netns
        pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
        subprocess.run(["kill", "-9", *pids], check=False)  # its sessions die with it
        res = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        farm.start_sshd(victim)
    assert res["rc"] == 1
    assert victim in res["quarantined"] and "xu3-b" in res["quarantined"][victim]
    run_dir = Path(res["run_dir"])
    results = run_table(run_dir, "results")
    others = results[results.board != victim]
    assert others.groupby("board").size().to_dict() == {b: 8 for b in ("hikey-a", "hikey-b", "xu3-a")}
    recs = journal(run_dir)
    assert any(r.get("state") == "quarantined" and r.get("board") == victim for r in recs)
    failed = [r for r in recs if r.get("state") == "failed" and r.get("board") == victim]
    # its lock's process dies with the rest: whichever end is noticed first names the failure
    assert failed and all(r["error"] in ("BoardUnreachable", "AgentDied", "BoardLockLost") for r in failed)


def provisioned(ws: Path) -> None:
    """Run alone, a test provisions the boards first, as the tests before it did (not inside its own waits)."""
    if not (ws / "state" / "provisioned.json").exists():
        subprocess.run([sys.executable, "-m", "orchestrator", "provision", "--zoo", str(FIXTURE_ZOO),
                        "-i", str(ws / "inventory.yml"), "--state", str(ws / "state")],
                       check=True, capture_output=True, timeout=900)


def lease_intervals(run_dir: str) -> dict[str, tuple[float, float]]:
    recs = journal(Path(run_dir))
    leased = {r["board"]: r["t_wall"] for r in recs if r.get("state") == "leased"}
    released = {r["board"]: r["t_wall"] for r in recs if r.get("state") == "released"}
    return {board: (leased[board], released[board]) for board in leased}


def assert_never_shared(a: dict, b: dict, board: str) -> None:
    """The two runs held ``board`` one after the other, and neither measured on it inside the other's hold."""
    (a0, a1), (b0, b1) = lease_intervals(a["run_dir"])[board], lease_intervals(b["run_dir"])[board]
    assert a1 <= b0 or b1 <= a0, f"two sweeps held {board} at the same time"
    for run_dir, (lo, hi) in ((a["run_dir"], (b0, b1)), (b["run_dir"], (a0, a1))):
        starts = [r["t_wall"] for r in journal(Path(run_dir)) if r.get("state") == "started"
                  and r.get("board") == board]
        assert starts and all(not (lo <= t <= hi) for t in starts)


def test_two_concurrent_sweeps_never_share_a_board(workspace):
    first = sweep(workspace, "left", "xu3-a, hikey-a", repeats=2)
    time.sleep(1.0)
    second = sweep(workspace, "right", "hikey-a, hikey-b", repeats=2)
    a, b = finish(first), finish(second)
    assert a["rc"] == 0 and b["rc"] == 0, a["stderr"][-2000:] + b["stderr"][-2000:]
    assert_never_shared(a, b, "hikey-a")


def test_sweeps_of_two_controllers_never_share_a_board(farm, workspace):
    """Another controller (here: another --state folder, so another lease table) sees the lock on the board."""
    provisioned(workspace)
    shutil.copytree(workspace / "state", workspace / "state-other", ignore=shutil.ignore_patterns("leases"),
                    dirs_exist_ok=True)  # the same provisioning facts, its own leases
    first = sweep(workspace, "mine", "all", 1, "--report", "none")
    second = sweep(workspace, "theirs", "all", 1, "--report", "none", state="state-other")  # the same boards
    a, b = finish(first), finish(second)
    assert a["rc"] == 0 and b["rc"] == 0, a["stderr"][-2000:] + b["stderr"][-2000:]
    assert a["done"] == a["jobs"] == 16 and b["done"] == b["jobs"] == 16  # both complete, nothing refused
    for board in ("hikey-a", "hikey-b", "xu3-a", "xu3-b"):
        assert_never_shared(a, b, board)  # only the board's lock can have kept them apart
        assert_lock_log_proves_it(farm, board, {a["run_id"]: a["run_dir"], b["run_id"]: b["run_dir"]})


def assert_lock_log_proves_it(farm, board: str, runs: dict[str, str]) -> None:
    """The board's own log: holdings of different holders never overlap, and each run's jobs on the board
    started and ended inside its own holdings (virtual boards share this machine's wall clock: no offset)."""
    held, still = holdings(read_log(farm.board(board).work_dir / LOG_NAME))
    assert still == [] and overlaps(held) == [], (board, still, overlaps(held))
    for run_id, run_dir in runs.items():
        times = [r["t_wall"] for r in journal(Path(run_dir)) if r.get("board") == board
                 and r.get("state") in ("started", "done")]
        assert times and any(h.owner == run_id for h in held) and outside(held, run_id, times) == [], (board, run_id)


LONG_ON_VICTIM = """
version: 1
zoo: {zoo}
rules: {{warmup_runs: 1, min_count: 20, min_duration_s: 0.3, max_duration_s: 10}}
experiments:
  - name: short
    boards: [xu3-a]
    models: [tiny_cnn]
    dtypes: [int8]
    components: [all]
  - name: long
    boards: [{victim}]
    models: [tiny_cnn]
    dtypes: [int8]
    components: [all]
    rules: {{warmup_runs: 1, min_count: 20, min_duration_s: 600, max_duration_s: 900}}
"""


def lock_script_pids(ns: str) -> list[str]:
    """The board's lock holder: the process (and a shell around it, if any) whose command line runs LOCK_SCRIPT."""
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
    found = []
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b".socfarm.lock.log" in cmdline:
            found.append(pid)
    return found


def test_a_lock_lost_mid_job_aborts_the_job_and_ends_the_boards_share(farm, workspace):
    provisioned(workspace)
    victim = "hikey-b"
    exp = workspace / "lock-lost.yaml"
    exp.write_text(LONG_ON_VICTIM.format(zoo=FIXTURE_ZOO, victim=victim))
    before = set((workspace / "runs").iterdir()) if (workspace / "runs").exists() else set()
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "sweep", str(exp), "-i", str(workspace / "inventory.yml"),
         "--store", str(workspace / "runs"), "--reports", str(workspace / "reports"),
         "--state", str(workspace / "state"), "--json", "--report", "none"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the victim's first (10 min) job is running
        await_board_state(new_run(workspace, before), victim, "started", still_running(proc))
        time.sleep(1.0)  # well inside its window
        holders = lock_script_pids(farm.board(victim).netns)
        assert holders, "no lock holder on the victim"
        subprocess.run(["kill", "-9", *holders], check=True)
        res = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert res["rc"] == 1, res["stderr"][-3000:]
    assert "BoardLockLost" not in res["quarantined"].get("xu3-a", "")
    assert res["quarantined"][victim].startswith(f"{victim}: lost the lock on the board")
    run_dir = Path(res["run_dir"])
    results = run_table(run_dir, "results")
    assert set(results.board) == {"xu3-a"} and len(results) == res["done"] > 0  # the other board carried on
    recs = journal(run_dir)
    started = [r for r in recs if r.get("state") == "started" and r.get("board") == victim]
    failed = [r for r in recs if r.get("state") == "failed" and r.get("board") == victim]
    planned = {r["job_id"] for r in recs if r.get("state") == "planned" and r.get("board") == victim}
    assert len(started) == 1 and {r["job_id"] for r in failed} == planned  # aborted, not retried; none after
    assert all(r["error"] == "BoardLockLost" for r in failed)
    assert started[0]["job_id"] in {r["job_id"] for r in failed}
    # aborted, not run to its end: the agent never sent the job's summary, and nothing of it was stored
    events = [json.loads(line) for line in (run_dir / "jobs" / started[0]["job_id"] / "attempt-1" /
                                            "events.jsonl").read_text().splitlines()]
    assert events and not any(e.get("event") == "summary" for e in events)
    for table in ("latencies", "power"):
        assert started[0]["job_id"] not in set(run_table(run_dir, table).job_id)



def test_a_lease_renewal_that_fails_mid_job_aborts_the_job_and_ends_the_boards_share(workspace):
    """In-process, with a short lease so that it is renewed every 0.2 s: the victim's lease is taken over
    (as by a sweep that broke it as stale) while its 10 min job runs."""
    from orchestrator.errors import StoreError
    from orchestrator.progress import SweepProgress
    from orchestrator.results.store import Store
    from orchestrator.scheduler.leases import LeaseTable
    from orchestrator.sweep import SweepRunner, prepare

    provisioned(workspace)
    victim = "hikey-a"
    exp = workspace / "lease-lost.yaml"
    exp.write_text(LONG_ON_VICTIM.format(zoo=FIXTURE_ZOO, victim=victim))
    runner = SweepRunner(prepare(exp, workspace / "inventory.yml"), Store(workspace / "runs"), workspace / "state",
                         workspace / "reports", SweepProgress(enabled=False), report="none")
    runner.leases = LeaseTable(workspace / "state" / "leases", ttl_s=0.6)
    lease_file = workspace / "state" / "leases" / f"{victim}.lease"
    outcome: dict = {}
    sweeping = threading.Thread(target=lambda: outcome.update(acc=runner.run()), daemon=True)
    sweeping.start()
    try:
        def created() -> Path | None:
            try:
                return runner.store.open_run(runner.run_id).path
            except (StoreError, OSError):
                return None  # not yet

        def alive() -> None:
            assert sweeping.is_alive(), "the sweep ended before the victim started a job"

        run_dir = await_board_state(created, victim, "started", alive)
        time.sleep(1.0)  # well inside its window
        theirs = {**json.loads(lease_file.read_text()), "owner": "intruder", "token": "f" * 16}
        lease_file.write_text(json.dumps(theirs))
        sweeping.join(600)
        assert not sweeping.is_alive()
    finally:
        runner.stop.set()
        sweeping.join(60)
        lease_file.unlink(missing_ok=True)
    acc = outcome["acc"]
    assert acc.quarantined[victim].startswith(f"{victim}: renewing its lease {lease_file} failed (LeaseHeld")
    assert "intruder" in acc.quarantined[victim] and "xu3-a" not in acc.quarantined
    recs = journal(run_dir)
    planned = {r["job_id"] for r in recs if r.get("state") == "planned" and r.get("board") == victim}
    failed = [r for r in recs if r.get("state") == "failed" and r.get("board") == victim]
    started = [r for r in recs if r.get("state") == "started" and r.get("board") == victim]
    assert len(started) == 1 and {r["job_id"] for r in failed} == planned
    assert all(r["error"] == "LeaseRenewalFailed" for r in failed)
    assert any(r.get("state") == "hold_lost" and r.get("board") == victim for r in recs)
    events = [json.loads(line) for line in (run_dir / "jobs" / started[0]["job_id"] / "attempt-1" /
                                            "events.jsonl").read_text().splitlines()]
    assert events and not any(e.get("event") == "summary" for e in events)  # aborted, not run to its end
    assert {r["board"] for r in recs if r.get("state") == "done"} == {"xu3-a"}  # the other board carried on

"""Each virtual board's own monotonic clock (a time namespace around its sshd), read over SSH.

Tests run in file order on one module-scoped farm; the last one tears it down. A board's reading
is bracketed by two readings of this machine's clock: since the board's clock is this machine's
plus its offset exactly, ``before + offset <= board <= after + offset``.
"""

from __future__ import annotations

import json
import os
import select
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.virtual import netns
from orchestrator.virtual.farm import BoardSpec, FarmError, default_clock_offset_s, load_record, teardown
from orchestrator.virtual.inventory import write_inventory
from tests.virtual_farm.helpers import REPO, require_netns, running_farm, ssh, ssh_cmd, start_up

pytestmark = [pytest.mark.netns, pytest.mark.slow]

SLACK_NS = 2_000_000
READ_CLOCKS = "python3 -c 'import time; print(time.monotonic_ns(), time.clock_gettime_ns(time.CLOCK_BOOTTIME))'"
# one reading per line read, as the controller's probe does, over one long-lived session
PROBE = ("import os, sys, time\nprint(os.getpid(), flush=True)\n"
         "for _ in sys.stdin:\n    print(time.monotonic_ns(), flush=True)\n")


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    """xu3-1 (default offset, 17.25 s), xu3-2 (-1.5 s: booted after this machine), hikey-1 (+3600 s)."""
    boards = [BoardSpec("xu3-1", "odroid_xu3"), BoardSpec("xu3-2", "odroid_xu3", clock_offset_s=-1.5),
              BoardSpec("hikey-1", "hikey970", clock_offset_s=3600)]
    with running_farm(tmp_path_factory.mktemp("clock"), boards, max_lifetime_s=300) as farm:
        yield farm


def board_clocks(run) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """(this machine's (monotonic, boottime) before, the board's, this machine's after) around ``run()``."""
    before = (time.monotonic_ns(), time.clock_gettime_ns(time.CLOCK_BOOTTIME))
    out = run()
    after = (time.monotonic_ns(), time.clock_gettime_ns(time.CLOCK_BOOTTIME))
    board = tuple(int(v) for v in out.split())
    return before, board, after


def assert_offset(before: int, board: int, after: int, offset_ns: int, slack_ns: int = SLACK_NS) -> None:
    assert before + offset_ns - slack_ns <= board <= after + offset_ns, (
        f"board - offset - before = {(board - offset_ns - before) / 1e6:.3f} ms, "
        f"after - (board - offset) = {(after - board + offset_ns) / 1e6:.3f} ms, offset {offset_ns / 1e9} s")


def read_over_ssh(farm, name: str) -> str:
    r = ssh(farm, name, READ_CLOCKS)
    assert r.returncode == 0, r.stderr
    return r.stdout


def time_ns_of(pid: int) -> str:
    """The time namespace of a process, e.g. 'time:[4026532837]'."""
    return os.readlink(f"/proc/{pid}/ns/time")


def listener(farm, name: str) -> int:
    return int(farm.board(name).pid_file.read_text())


def test_each_board_reads_its_own_monotonic_and_boot_clock(farm):
    offsets = {name: farm.clock_offset_ns(name) for name in farm.boards}
    assert offsets == {"xu3-1": 17_250_000_000, "xu3-2": -1_500_000_000, "hikey-1": 3_600_000_000_000}
    assert offsets["xu3-1"] == round(default_clock_offset_s(0) * 1e9)
    for name, offset in offsets.items():
        before, board, after = board_clocks(lambda: read_over_ssh(farm, name))
        assert_offset(before[0], board[0], after[0], offset)  # CLOCK_MONOTONIC
        assert_offset(before[1], board[1], after[1], offset)  # CLOCK_BOOTTIME


def test_the_farm_record_and_the_inventory_give_each_offset(farm, tmp_path):
    record = {b["name"]: b for b in load_record(farm.state_dir)["boards"]}
    for name in farm.boards:
        assert record[name]["clock_offset_ns"] == farm.clock_offset_ns(name)
        assert record[name]["clock_offset_s"] == farm.clock_offset_ns(name) / 1e9
        assert record[name]["clock_steps"] == []
    text = write_inventory(farm, tmp_path / "inventory.yml").read_text()
    assert "# clock: CLOCK_MONOTONIC = this machine's +3600.000000000 s" in text
    assert "# clock: CLOCK_MONOTONIC = this machine's -1.500000000 s" in text


def test_every_process_a_session_starts_is_in_the_boards_time_namespace(farm):
    """sshd, the session's shell and what it leaves running: one namespace per board, not ours."""
    namespaces = {name: time_ns_of(listener(farm, name)) for name in farm.boards}
    assert len(set(namespaces.values())) == len(namespaces) and time_ns_of(os.getpid()) not in namespaces.values()
    name = "hikey-1"
    r = ssh(farm, name, "sleep 30 >/dev/null 2>&1 & echo $!; echo $$; cat /proc/self/timens_offsets")
    assert r.returncode == 0, r.stderr
    background, shell, *offsets = r.stdout.splitlines()
    try:
        # the kernel's own account of the namespace the session ran in
        assert [line.split() for line in offsets] == [["monotonic", "3600", "0"], ["boottime", "3600", "0"]]
        assert time_ns_of(int(background)) == namespaces[name]
        assert netns.alive(int(background))
    finally:
        ssh(farm, name, f"kill {int(background)}")
    assert not netns.alive(int(shell))


def start_probe(farm, name: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(ssh_cmd(farm, name, f"python3 -u -c {shlex.quote(PROBE)}"), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    return proc, int(read_line(proc))


def read_line(proc: subprocess.Popen, timeout_s: float = 20.0) -> str:
    line = b""
    deadline = time.monotonic() + timeout_s
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise TimeoutError(f"no line from the probe after {timeout_s} s")
        byte = proc.stdout.read(1)
        if not byte:
            raise EOFError(f"the probe ended: {proc.stderr.read().decode(errors='replace')}")
        line += byte
    return line.decode()


def probe(proc: subprocess.Popen) -> str:
    proc.stdin.write(b"\n")
    proc.stdin.flush()
    return read_line(proc)


def test_step_clock_changes_new_sessions_while_an_open_one_keeps_its_clock(farm):
    name = "xu3-1"
    old = farm.clock_offset_ns(name)
    session, session_pid = start_probe(farm, name)
    try:
        before, board, after = board_clocks(lambda: probe(session))
        assert_offset(before[0], board[0], after[0], old)
        old_namespace = time_ns_of(session_pid)
        old_listener = listener(farm, name)

        t0 = time.monotonic()
        new = farm.step_clock(name, 90.5)
        print(f"step_clock took {time.monotonic() - t0:.3f} s")
        assert new == old + 90_500_000_000 == farm.clock_offset_ns(name)

        # a new session reads the new clock, in a new namespace
        before, board, after = board_clocks(lambda: read_over_ssh(farm, name))
        assert_offset(before[0], board[0], after[0], new)
        assert time_ns_of(listener(farm, name)) != old_namespace and not netns.alive(old_listener)
        # the session opened before the step still reads the old one, as its processes keep their namespace
        before, board, after = board_clocks(lambda: probe(session))
        assert_offset(before[0], board[0], after[0], old)
        assert time_ns_of(session_pid) == old_namespace

        # a step back, below the first offset
        assert farm.step_clock(name, -100) == old - 9_500_000_000
        before, board, after = board_clocks(lambda: read_over_ssh(farm, name))
        assert_offset(before[0], board[0], after[0], old - 9_500_000_000)
        before, board, after = board_clocks(lambda: probe(session))
        assert_offset(before[0], board[0], after[0], old)
    finally:
        session.stdin.close()
        session.wait(20)
        session.stdout.close()
        session.stderr.close()
    assert session.returncode == 0
    steps = {b["name"]: b["clock_steps"] for b in load_record(farm.state_dir)["boards"]}
    assert [(s["from_ns"], s["to_ns"]) for s in steps[name]] == [(old, old + 90_500_000_000),
                                                                  (old + 90_500_000_000, old - 9_500_000_000)]
    assert steps["hikey-1"] == [] and steps["xu3-2"] == []
    # other boards are untouched
    before, board, after = board_clocks(lambda: read_over_ssh(farm, "hikey-1"))
    assert_offset(before[0], board[0], after[0], 3_600_000_000_000)


def board_processes(farm, name: str) -> dict[str, list[int]]:
    """The board's sshd start-up chain, by program: one unshare, one timeout, one listening sshd."""
    config = str(farm.board(name).sshd_config)
    found: dict[str, list[int]] = {}
    for pid in netns.pids_with_cmdline(config):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        program = Path(cmdline.split()[0]).name.rstrip(":")  # the listener titles itself "sshd: /usr/sbin/sshd …"
        found.setdefault(program, []).append(pid)
    return found


def test_a_step_leaves_one_start_up_chain_and_refuses_a_clock_below_zero(farm):
    name = "xu3-1"
    chain = board_processes(farm, name)
    assert sorted(chain) == ["sshd", "timeout", "unshare"] and all(len(p) == 1 for p in chain.values()), chain
    assert chain["sshd"] == [listener(farm, name)]
    offset = farm.clock_offset_ns(name)
    with pytest.raises(FarmError, match="out of range"):
        farm.step_clock(name, -(time.monotonic() + offset / 1e9 + 10))
    assert farm.clock_offset_ns(name) == offset and board_processes(farm, name) == chain  # nothing was stopped
    with pytest.raises(KeyError):
        farm.step_clock("rpi-1", 1)


def test_kill_and_start_sshd_keep_the_boards_clock(farm):
    name = "xu3-2"
    offset = farm.clock_offset_ns(name)
    farm.kill_sshd(name)
    deadline = time.monotonic() + 5
    while board_processes(farm, name) and time.monotonic() < deadline:  # the chain ends with its sshd
        time.sleep(0.05)
    assert board_processes(farm, name) == {}
    farm.start_sshd(name)
    before, board, after = board_clocks(lambda: read_over_ssh(farm, name))
    assert_offset(before[0], board[0], after[0], offset)
    assert sorted(board_processes(farm, name)) == ["sshd", "timeout", "unshare"]


def test_down_leaves_no_process_in_any_boards_time_namespace(farm):
    r = ssh(farm, "hikey-1", "nohup sleep 60 >/dev/null 2>&1 & echo $!")
    assert r.returncode == 0, r.stderr
    orphan = int(r.stdout)
    namespaces = {time_ns_of(listener(farm, name)) for name in farm.boards} | {time_ns_of(orphan)}
    farm.down()
    assert farm.leftovers() == []
    survivors = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/time") in namespaces:
                    survivors.append(int(entry))
            except OSError:
                continue
    assert survivors == []


# --- the command line ------------------------------------------------------------------------------


def read_from_record(record: dict, board: dict) -> str:
    cmd = ["ssh", "-i", record["key_file"], "-o", f"UserKnownHostsFile={record['known_hosts']}",
           "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
           "-o", "ControlMaster=no", "-o", "ControlPath=none", f"root@{board['address']}", READ_CLOCKS]
    r = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize("options, expected_s", [
    (("--clock-offsets", "hikey-1=3600.5"), {"xu3-1": 17.25, "xu3-2": 3740.75, "hikey-1": 3600.5}),
    (("--same-clock",), {"xu3-1": 0.0, "xu3-2": 0.0, "hikey-1": 0.0}),
], ids=["clock-offsets", "same-clock"])
def test_cli_up_gives_boards_the_offsets_asked_for(tmp_path, options, expected_s):
    require_netns()
    state = tmp_path / "state"
    proc, _ = start_up(state, "--boards", "xu3:2,hikey970:1", *options)
    try:
        record = load_record(state)
        boards = {b["name"]: b for b in record["boards"]}
        assert {name: b["clock_offset_s"] for name, b in boards.items()} == expected_s
        for name, seconds in expected_s.items():
            before, board, after = board_clocks(lambda: read_from_record(record, boards[name]))
            assert_offset(before[0], board[0], after[0], round(seconds * 1e9))
        status = subprocess.run([sys.executable, "-m", "orchestrator.virtual", "status", "--state", str(state)],
                                cwd=REPO, check=False, capture_output=True, text=True, timeout=60)
        assert {n: b["clock_offset_s"] for n, b in json.loads(status.stdout)["boards"].items()} == expected_s
        proc.terminate()
        assert proc.wait(30) == 0
        assert "clock offsets: xu3-1 " in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        teardown(state)
    assert load_record(state)["status"] == "down"

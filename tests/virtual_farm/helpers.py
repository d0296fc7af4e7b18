"""Helpers of the virtual-farm tests: tool checks and ssh with the farm's key."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

from orchestrator.virtual.farm import BoardSpec, VirtualFarm, teardown

REPO = Path(__file__).resolve().parents[2]
TOOLS = ("ip", "unshare", "ssh", "ssh-keygen", "timeout", "taskset", "hostname")


def require_netns() -> None:
    """Fail (not skip) when namespaces cannot be made: `make test` must run these tests.

    Set SOCFARM_SKIP_NETNS=1 to skip them knowingly on a machine without root.
    """
    import pytest

    reason = netns_unavailable()
    if reason is None:
        return
    if os.environ.get("SOCFARM_SKIP_NETNS") == "1":
        pytest.skip(reason)
    pytest.fail(f"virtual farm unavailable: {reason} (run as root after scripts/system-deps.sh, "
                "or set SOCFARM_SKIP_NETNS=1 to skip knowingly)")


def netns_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root for network namespaces"
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if not Path("/usr/sbin/sshd").exists():
        missing.append("/usr/sbin/sshd")
    return f"missing {', '.join(missing)}" if missing else None


def ssh_cmd(farm: VirtualFarm, board: str, command: str, *extra: str, control_path: str | None = None) -> list[str]:
    """ssh with the farm's key and strict host key checking.

    No connection sharing unless ``control_path`` is given: then a
    ControlPersist master (60 s) is started, as ansible does.
    """
    if control_path is None:
        sharing = ["-o", "ControlMaster=no", "-o", "ControlPath=none"]
    else:
        sharing = ["-o", "ControlMaster=auto", "-o", f"ControlPath={control_path}", "-o", "ControlPersist=60"]
    return ["ssh", "-i", str(farm.key_file), "-o", f"UserKnownHostsFile={farm.known_hosts}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
            *sharing, *extra, f"root@{farm.board(board).address}", command]


def ssh(farm: VirtualFarm, board: str, command: str, *extra: str, timeout_s: float = 20.0,
        control_path: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(ssh_cmd(farm, board, command, *extra, control_path=control_path),
                          check=False, capture_output=True, text=True, timeout=timeout_s)


def pids_matching(pattern: str) -> list[int]:
    """pids whose command line matches ``pattern`` (pgrep -f), this process's children included."""
    out = subprocess.run(["pgrep", "-f", pattern], check=False, capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


@contextlib.contextmanager
def running_farm(state: Path, boards: list[BoardSpec], max_lifetime_s: float = 900) -> Iterator[VirtualFarm]:
    """A farm up and accepting SSH; torn down afterwards (also on failure), leaving nothing behind."""
    require_netns()
    farm = VirtualFarm(state, boards, max_lifetime_s=max_lifetime_s)
    try:
        farm.up()
        farm.wait_ready(20)
        yield farm
    finally:
        try:
            farm.down()
        finally:
            teardown(state)
        assert farm.leftovers() == []
        namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert f"sf{farm.farm_id}-" not in namespaces


def start_up(state: Path, *args: str) -> tuple[subprocess.Popen, str]:
    """Start ``python -m orchestrator.virtual up`` in the background and wait for its READY line;
    returns (process, inventory path)."""
    import pytest

    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.virtual", "up", "--state", str(state),
                             "--max-lifetime-s", "60", *args],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(30)
    if not line or not line[0].startswith("READY "):
        proc.kill()
        _, err = proc.communicate(timeout=30)
        pytest.fail(f"no READY line: {line!r}; stderr: {err[-2000:]}")
    return proc, line[0].split(" ", 1)[1].strip()

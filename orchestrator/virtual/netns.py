"""Thin wrappers around iproute2 and /proc for the virtual farm (root only)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

IP = "ip"
NETNS_DIR = Path("/run/netns")
CMD_TIMEOUT_S = 15.0


class NetnsError(RuntimeError):
    """An ip(8) command failed."""


def run(*cmd: str, check: bool = True, timeout_s: float = CMD_TIMEOUT_S) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(cmd), check=False, capture_output=True, text=True, timeout=timeout_s)
    if check and proc.returncode != 0:
        raise NetnsError(f"{' '.join(cmd)} -> rc {proc.returncode}: {proc.stderr.strip()}")
    return proc


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(IP, *args, check=check)


def netns_list() -> set[str]:
    try:
        return {p.name for p in NETNS_DIR.iterdir()}
    except FileNotFoundError:
        return set()


def links() -> set[str]:
    """Interface names of the root namespace."""
    out = ip("-o", "link", "show").stdout
    names = set()
    for line in out.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.add(parts[1].strip().split("@", 1)[0])
    return names


def ipv4_addresses() -> set[str]:
    """Every IPv4 address/prefix of the root namespace, e.g. '10.231.7.1/24'."""
    out = ip("-o", "-4", "addr", "show").stdout
    return {line.split()[3] for line in out.splitlines() if len(line.split()) > 3}


def netns_pids(ns: str) -> set[int]:
    """Processes whose network namespace is ``ns`` (empty if it does not exist)."""
    if ns not in netns_list():
        return set()
    proc = ip("netns", "pids", ns, check=False)
    return {int(p) for p in proc.stdout.split() if p.isdigit()}


def netns_mounted(ns: str) -> bool:
    target = str(NETNS_DIR / ns)
    try:
        with open("/proc/self/mounts") as f:
            return any(line.split()[1] == target for line in f if len(line.split()) > 1)
    except OSError:
        return False


def is_mountpoint(path: Path) -> bool:
    """True if something is mounted on ``path`` (in this process's mount namespace)."""
    target = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4] == target for line in f)
    except OSError:
        return False


def unmount_tree(path: Path) -> None:
    """Unmount ``path`` and everything mounted below it (lazily where busy), then remove the empty mount
    point and its parent if that is empty too (an emulated board's root, see userland.py)."""
    if not Path(path).exists():
        return
    if run("umount", "-R", str(path), check=False).returncode != 0 and is_mountpoint(path):
        run("umount", "-R", "-l", str(path), check=False)
    if not is_mountpoint(path):
        for folder in (Path(path), Path(path).parent):
            try:
                folder.rmdir()
            except OSError:
                break


def alive(pid: int) -> bool:
    """True for a running process (zombies count as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def pids_with_cmdline(fragment: str) -> set[int]:
    """Live processes whose command line contains ``fragment``."""
    found = set()
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if fragment in cmdline and alive(int(entry)):
            found.add(int(entry))
    return found


def kill_all(pids: set[int], *, grace_s: float = 1.0, timeout_s: float = 5.0) -> set[int]:
    """SIGTERM, then SIGKILL after ``grace_s``; returns the pids still alive at ``timeout_s``."""
    pending = {p for p in pids if alive(p)}
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, timeout_s - grace_s)):
        for p in pending:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        end = time.monotonic() + max(wait_s, 0.0)
        while pending and time.monotonic() < end:
            pending = {p for p in pending if alive(p)}
            if pending:
                time.sleep(0.02)
        if not pending:
            break
    return pending



def etc_dir(name: str) -> Path:
    """Per-namespace /etc overrides (``ip netns exec`` bind-mounts its files over /etc)."""
    return Path("/etc/netns") / name


def write_etc(name: str, hostname: str, address: str) -> None:
    """Name resolution that answers at once inside the namespace.

    The host's resolver is unreachable from a board, so every lookup (Ansible's
    fact gathering calls getfqdn) would wait for its timeout: give the board a
    hosts file with its own name and a resolver that fails immediately.
    """
    d = etc_dir(name)
    d.mkdir(parents=True, exist_ok=True)
    (d / "hosts").write_text(f"127.0.0.1 localhost\n{address} {hostname}\n")
    (d / "resolv.conf").write_text("# no resolver inside a virtual board\noptions timeout:1 attempts:1\n")

"""Keys, configuration and start command of a virtual board's sshd."""

from __future__ import annotations

import math
import shlex
import subprocess
import sys
from pathlib import Path

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = "ssh-keygen"
PRIVSEP_DIR = Path("/run/sshd")  # sshd refuses to start without it
ROOT_HOME = "/root"  # the home of the user the boards log in as
DOTFILES = (".bashrc", ".profile", ".bash_profile", ".bash_login", ".bash_logout")


def ensure_key(path: Path, comment: str) -> Path:
    """An ed25519 key pair at ``path`` / ``path.pub`` (generated once)."""
    if not (path.exists() and path.with_name(path.name + ".pub").exists()):
        path.parent.mkdir(parents=True, exist_ok=True)
        for p in (path, path.with_name(path.name + ".pub")):
            p.unlink(missing_ok=True)
        subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                       check=True, capture_output=True, timeout=30)
    path.chmod(0o600)
    return path


def public_key(path: Path) -> str:
    """'ssh-ed25519 AAAA…' (type and key, no comment) of a key pair's public half."""
    kind, b64 = path.with_name(path.name + ".pub").read_text().split()[:2]
    return f"{kind} {b64}"


def render_config(*, address: str, host_key: Path, pid_file: Path, authorized_keys: Path,
                  chroot: Path | None = None) -> str:
    """``chroot``: every session runs in that root (an emulated userland, see userland.py)."""
    return "\n".join([
        "# generated for a virtual board; see orchestrator/virtual/farm.py",
        f"ListenAddress {address}",
        "Port 22",
        f"HostKey {host_key}",
        f"PidFile {pid_file}",
        f"AuthorizedKeysFile {authorized_keys}",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        "UseDNS no",
        "PrintMotd no",
        "PrintLastLog no",
        # ansible forks plus fabric sessions plus ControlPersist masters
        "MaxStartups 200:30:400",
        "MaxSessions 100",
        "ClientAliveInterval 10",
        "ClientAliveCountMax 3",
        "Subsystem sftp internal-sftp",
        "AcceptEnv LANG LC_*",
        "LogLevel INFO",
        *([f"ChrootDirectory {chroot}"] if chroot else []),
        "",
    ])


def start_command(*, netns: str, hostname: str, config: Path, max_lifetime_s: float,
                  clock_offset_ns: int = 0) -> list[str]:
    """sshd in ``netns`` with its own UTS namespace (``hostname`` prints the board's name) and its own
    time namespace (CLOCK_MONOTONIC and CLOCK_BOOTTIME ``clock_offset_ns`` ahead of the caller's, see
    ``in_time_namespace``), without this machine's dotfiles (``without_dotfiles``), in the foreground,
    bounded by ``timeout``.

    Processes: ``ip netns exec`` execs the time-namespace launcher, which execs ``unshare``; that
    ``unshare`` stays as the parent (``--fork``: a time namespace's offsets apply to children) and
    takes its child down with it (``--kill-child``); the child execs ``timeout``, whose child is
    the listening sshd (the pid in its ``PidFile``). All of them stay in the process group of the
    first process: ``unshare`` blocks SIGTERM while it waits, so ``timeout`` runs with
    ``--foreground`` (it would otherwise move to a group of its own, out of reach of a signal to
    the group, and a SIGKILL to the group would orphan sshd)."""
    lifetime_s = max(1, math.ceil(max_lifetime_s))  # 'timeout 0' would mean no limit
    inner = (
        # no IPv6 inside the board: its only network is the farm's IPv4 subnet
        "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 2>/dev/null; "
        "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6 2>/dev/null; "
        f"hostname {shlex.quote(hostname)} && exec timeout --foreground -k 5 {lifetime_s} "
        f"{SSHD} -D -e -f {shlex.quote(str(config))}")
    board = without_dotfiles(inner, "--uts", "--fork", "--kill-child")
    return ["ip", "netns", "exec", netns, *in_time_namespace(clock_offset_ns, board)]


# Runs as ``python -c TIMENS_LAUNCHER OFFSET_NS COMMAND...``. unshare(1) takes whole seconds only
# (util-linux 2.38), so the namespace is made here, to the nanosecond: the offsets of a new time
# namespace can be written until a process enters it, which happens at the exec below (or, on
# kernels that do not switch at exec, at the fork of ``unshare --fork``).
TIMENS_LAUNCHER = r"""
import ctypes, os, sys
CLONE_NEWTIME = 0x80
offset = int(sys.argv[1])
def fail(what, err):
    sys.stderr.write(f"board clock: {what}: {os.strerror(err)}\n")
    sys.exit(1)
own = {}  # the offsets of this process's own time namespace: the new ones are relative to its clock
try:
    with open("/proc/self/timens_offsets") as f:
        for line in f:
            name, sec, nsec = line.split()
            own[name] = int(sec) * 10**9 + int(nsec)
except OSError as e:
    fail("no time namespaces in this kernel (CONFIG_TIME_NS, Linux 5.6 or later)", e.errno)
libc = ctypes.CDLL(None, use_errno=True)
if libc.unshare(CLONE_NEWTIME) != 0:
    fail("unshare(CLONE_NEWTIME)", ctypes.get_errno())
lines = "".join("%s %d %d\n" % (clock, *divmod(own.get(clock, 0) + offset, 10**9))
                for clock in ("monotonic", "boottime"))
try:
    with open("/proc/self/timens_offsets", "w") as f:
        f.write(lines)
except OSError as e:
    fail("cannot set the offsets (%s; a clock may not go below 0)" % lines.strip().replace("\n", ", "), e.errno)
os.execvp(sys.argv[2], sys.argv[2:])
"""


def in_time_namespace(offset_ns: int, command: list[str]) -> list[str]:
    """``command`` in a new time namespace whose CLOCK_MONOTONIC and CLOCK_BOOTTIME read ``offset_ns``
    more than the caller's (CLOCK_REALTIME is not namespaced), to the nanosecond. Everything the
    command starts sees the offset clocks (the command itself too, on kernels that switch namespace
    at exec); a process keeps the time namespace it started in."""
    return [sys.executable, "-I", "-S", "-c", TIMENS_LAUNCHER, str(int(offset_ns)), *command]


def without_dotfiles(shell_command: str, *unshare_flags: str) -> list[str]:
    """``shell_command`` in a private mount namespace where root's shell start-up files read empty.

    The login shells of an sshd started so must not run this machine's dotfiles: a profile
    that waits for a lock (a version manager's rehash, say) hangs every session once one
    session was killed holding it, and a real board does not have our dotfiles. Only the
    files are masked (/dev/null bound over each): the rest of the home stays, since this
    machine's Python may live there. The mounts stay inside (private propagation) and are
    gone with the namespace's last process."""
    masks = " && ".join(f"{{ [ ! -e {ROOT_HOME}/{name} ] || mount --bind /dev/null {ROOT_HOME}/{name}; }}"
                        for name in DOTFILES)
    return ["unshare", *unshare_flags, "--mount", "--propagation", "private", "sh", "-c",
            f"{masks} && {shell_command}"]


def ensure_privsep_dir() -> None:
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)

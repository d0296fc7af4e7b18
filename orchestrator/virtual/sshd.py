"""Keys, configuration and start command of a virtual board's sshd."""

from __future__ import annotations

import math
import shlex
import subprocess
from pathlib import Path

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = "ssh-keygen"
PRIVSEP_DIR = Path("/run/sshd")  # sshd refuses to start without it
ROOT_HOME = "/root"  # the home of the user the boards log in as


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


def render_config(*, address: str, host_key: Path, pid_file: Path, authorized_keys: Path) -> str:
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
        "",
    ])


def start_command(*, netns: str, hostname: str, config: Path, home: Path,
                  max_lifetime_s: float) -> list[str]:
    """sshd in ``netns`` with its own UTS namespace (``hostname`` prints the board's name)
    and its own mount namespace, where ``home`` is mounted over root's home directory,
    in the foreground, bounded by ``timeout``.

    A board's login shells must not run this machine's dotfiles: a shell profile that
    waits for a lock (a version manager's rehash, say) would hang every session on every
    board once one session was killed holding it, and a real board has its own home."""
    lifetime_s = max(1, math.ceil(max_lifetime_s))  # 'timeout 0' would mean no limit
    inner = (
        # no IPv6 inside the board: its only network is the farm's IPv4 subnet
        "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 2>/dev/null; "
        "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6 2>/dev/null; "
        f"mount --bind {shlex.quote(str(home))} {ROOT_HOME} && "
        f"hostname {shlex.quote(hostname)} && exec timeout -k 5 {lifetime_s} "
        f"{SSHD} -D -e -f {shlex.quote(str(config))}")
    # the mount stays inside the board: private propagation, gone with its last process
    return ["ip", "netns", "exec", netns, "unshare", "--uts", "--mount", "--propagation", "private",
            "sh", "-c", inner]


def ensure_privsep_dir() -> None:
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)

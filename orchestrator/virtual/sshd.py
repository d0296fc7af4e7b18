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


def start_command(*, netns: str, hostname: str, config: Path, max_lifetime_s: float) -> list[str]:
    """sshd in ``netns`` with its own UTS namespace (``hostname`` prints the board's name),
    without this machine's dotfiles (``without_dotfiles``), in the foreground, bounded by ``timeout``."""
    lifetime_s = max(1, math.ceil(max_lifetime_s))  # 'timeout 0' would mean no limit
    inner = (
        # no IPv6 inside the board: its only network is the farm's IPv4 subnet
        "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 2>/dev/null; "
        "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6 2>/dev/null; "
        f"hostname {shlex.quote(hostname)} && exec timeout -k 5 {lifetime_s} "
        f"{SSHD} -D -e -f {shlex.quote(str(config))}")
    return ["ip", "netns", "exec", netns, *without_dotfiles(inner, "--uts")]


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

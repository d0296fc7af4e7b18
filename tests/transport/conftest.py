"""A real sshd on loopback (127.0.0.1, a free port) with generated keys."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.config.inventory import Board, Component, SshSpec
from orchestrator.virtual.sshd import without_dotfiles

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


@dataclass
class LoopbackSshd:
    port: int
    key: Path
    other_key: Path
    known_hosts: Path
    proc: subprocess.Popen

    def board(self, work_dir: Path, **ssh: object) -> Board:
        spec = {"user": "root", "port": self.port, "key_file": str(self.key), "known_hosts": str(self.known_hosts),
                "connect_timeout_s": 5.0, **ssh}
        return Board(name="lo", soc="host_cpu", connection="ssh", address="127.0.0.1", work_dir=str(work_dir),
                     components=[Component(name="cpu0", cpus=[0])], ssh=SshSpec(**spec))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory) -> LoopbackSshd:
    if not Path(SSHD).exists():
        pytest.fail("sshd is missing: install openssh-server (scripts/system-deps.sh does)")
    d = tmp_path_factory.mktemp("sshd")
    for name in ("host", "client", "stranger"):
        _keygen(d / name)
    port = _free_port()
    (d / "authorized_keys").write_text((d / "client.pub").read_text())
    (d / "sshd_config").write_text(
        f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {d / 'host'}\nPidFile {d / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nMaxStartups 50\nMaxSessions 50\n"
        "Subsystem sftp internal-sftp\n"
    )
    host_pub = (d / "host.pub").read_text().split()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
    # its sessions must not run this machine's ~/.bashrc
    proc = subprocess.Popen(without_dotfiles(f"exec {SSHD} -D -e -f {d / 'sshd_config'}"),
                            stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("loopback sshd did not start")
    yield LoopbackSshd(port, d / "client", d / "stranger", d / "known_hosts", proc)
    proc.terminate()
    proc.wait(timeout=10)

"""Transport to a board over SSH (fabric), with strict host keys and classified errors.

Jobs go to one serving agent per board (``device_agent serve`` on an SSH
channel kept open, orchestrator.transport.served); their events stream back
line by line, the agent keeps each spec next to the job's outputs, and files
come back over SFTP.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import paramiko
from fabric import Connection
from invoke.exceptions import UnexpectedExit

from orchestrator.config.inventory import Board
from orchestrator.errors import AgentError, SocfarmError
from orchestrator.errors import BoardUnreachable, HostKeyError, SshAuthError  # noqa: F401 - here for callers
from orchestrator.transport.agent import AgentOutcome, EventCallback, agent_command, serve_args
from orchestrator.transport.clock import ClockOffset, estimate_offset
from orchestrator.transport.served import AgentServer, ServedTransport, ServerStreams


def classify(board: Board, exc: BaseException, doing: str) -> SocfarmError:
    """Map paramiko/socket failures to our error classes (says whether a retry can help)."""
    where = f"{board.name} ({board.ssh.user}@{board.address}:{board.ssh.port}): {doing}"
    if isinstance(exc, paramiko.AuthenticationException):
        key = board.ssh.key_file or "default keys"
        return SshAuthError(f"{where}: authentication failed with {key}: {exc}")
    if isinstance(exc, paramiko.BadHostKeyException):
        return HostKeyError(f"{where}: host key mismatch (possible impostor or reinstalled board): {exc}")
    if isinstance(exc, paramiko.SSHException) and "not found in known_hosts" in str(exc):
        known = board.ssh.known_hosts or "~/.ssh/known_hosts"
        return HostKeyError(f"{where}: host key not in {known}: {exc}")
    if isinstance(exc, UnexpectedExit) and exc.result.exited == -1:
        return BoardUnreachable(f"{where}: the SSH session died (no exit status)")
    # anything else that breaks a session (socket, protocol, command) leaves the board's state unknown
    return BoardUnreachable(f"{where}: {type(exc).__name__}: {str(exc).strip()[:500]}")


#: How often a connection's paramiko thread wakes up with nothing received, to see whether it should stop and
#: whether a handshake is overdue (paramiko's default: every 0.1 s). A sweep holds two connections per board
#: (its lock's and its jobs'); at 64 boards, 0.1 s is 1,280 wake-ups a second, each taking the controller's
#: interpreter lock from the threads that measure: in a 64-board sweep of 2 jobs per board those threads took
#: 10-18 s of the controller's 22-37 s of CPU, and 2-3 s once they woke every 2 s. Closing is not slower:
#: paramiko's close does not wait for the thread, which ends at its next wake-up.
IDLE_POLL_S = 1.0


class _Transport(paramiko.Transport):
    _active_check_timeout = IDLE_POLL_S  # paramiko's own name for it (a class attribute, read at start)


def connect(board: Board) -> Connection:
    """An open SSH connection to ``board`` that rejects unknown host keys."""
    connect_kwargs: dict[str, Any] = {"look_for_keys": board.ssh.key_file is None, "allow_agent": True,
                                      "banner_timeout": board.ssh.connect_timeout_s,
                                      "auth_timeout": board.ssh.connect_timeout_s, "transport_factory": _Transport}
    if board.ssh.key_file:
        connect_kwargs["key_filename"] = [os.path.expanduser(board.ssh.key_file)]
        connect_kwargs["allow_agent"] = False
    conn = Connection(
        board.address or board.name,
        user=board.ssh.user,
        port=board.ssh.port,
        connect_timeout=board.ssh.connect_timeout_s,
        connect_kwargs=connect_kwargs,
    )
    conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    known = os.path.expanduser(board.ssh.known_hosts or "~/.ssh/known_hosts")
    try:
        conn.client.load_host_keys(known)
    except FileNotFoundError:
        pass  # every host is then unknown, and RejectPolicy says so by name
    try:
        conn.open()
    except Exception as exc:  # noqa: BLE001 - classified below
        conn.close()
        raise classify(board, exc, "connecting") from exc
    return conn


class SshTransport(ServedTransport):
    def __init__(self, board: Board, python: str, agent_dir: str, preload: bool = True):
        """``preload``: the agent server imports the TFLite runtime before its first request (False: a board
        whose components need none)."""
        self.board = board
        self.python = python
        self.agent_dir = agent_dir
        self.preload = preload
        self._conn: Connection | None = None
        self._server: AgentServer | None = None

    @property
    def conn(self) -> Connection:
        if self._conn is None or not self._conn.is_connected:
            self._conn = connect(self.board)
        return self._conn

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> "SshTransport":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, command: str, timeout_s: float = 60.0) -> str:
        """Run a short command; its stdout. Failures are classified."""
        try:
            result = self.conn.run(command, hide=True, warn=True, timeout=timeout_s, in_stream=False)
        except Exception as exc:  # noqa: BLE001
            self.close()
            raise classify(self.board, exc, f"running {command!r}") from exc
        if result.exited != 0:
            raise BoardUnreachable(f"{self.board.name}: {command!r} exited {result.exited}: {result.stderr.strip()}")
        return result.stdout

    def clock_offset(self, probes: int = 8) -> ClockOffset:
        """The board's monotonic clock relative to ours, probed through the serving agent (the process
        whose clock stamps the measurement window)."""
        try:
            server = self._serving()
            return estimate_offset(server.clock_ns, probes)
        except AgentError:
            raise
        except Exception as exc:  # noqa: BLE001
            self.close()
            raise classify(self.board, exc, "probing the clock") from exc

    def _serving(self) -> AgentServer:
        if self._server is None or not self._server.alive:
            self._server = self._start_server()
        return self._server

    def run_agent(self, spec: dict[str, Any], on_event: EventCallback | None, timeout_s: float,
                  command: str = "run") -> AgentOutcome:
        doing = f"running job {spec.get('job_id')}"
        try:
            outcome = self._serving().request(command, spec, on_event, timeout_s)
        except AgentError:
            raise
        except Exception as exc:  # noqa: BLE001
            self.close()
            raise classify(self.board, exc, doing) from exc
        if outcome.returncode == -1 and not self._connected():  # no exit status, and the link is down
            self.close()
            raise BoardUnreachable(f"{self.board.name} ({self.board.address}): {doing}: the SSH session died "
                                   "(no exit status)")
        return outcome

    def _connected(self) -> bool:
        transport = self._conn.client.get_transport() if self._conn is not None else None
        return transport is not None and transport.is_active()

    def _start_server(self) -> AgentServer:
        """``device_agent serve`` on a channel of its own, for every job of this connection."""
        timeout_s = self.board.ssh.connect_timeout_s
        channel = self.conn.client.get_transport().open_session(timeout=timeout_s)
        channel.exec_command(agent_command(self.python, self.agent_dir, *serve_args(self.preload)))

        def exit_status() -> int | None:
            return channel.recv_exit_status() if channel.status_event.wait(timeout_s) else -1

        def terminate(pid: int | None) -> None:
            channel.close()
            conn = self._conn
            if pid is not None and conn is not None and conn.is_connected:
                try:  # SIGTERM: the agent restores the board's frequencies on its way out
                    conn.run(f"kill -TERM {int(pid)}", hide=True, warn=True, timeout=timeout_s, in_stream=False)
                except Exception:  # noqa: BLE001 - best effort: the board may be gone
                    pass

        def close() -> None:
            channel.close()  # its stdin ends: the server exits

        streams = ServerStreams(send=channel.sendall, stdout=channel.makefile("rb"),
                                stderr=channel.makefile_stderr("rb"), exit_status=exit_status,
                                terminate=terminate, close=close)
        return AgentServer(self.board.name, streams, start_timeout_s=max(60.0, 4 * timeout_s))

    def fetch(self, remote_path: str, local_path: Path) -> None:
        local_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn.get(remote_path, str(local_path))
        except Exception as exc:  # noqa: BLE001
            self.close()
            raise classify(self.board, exc, f"fetching {remote_path}") from exc

"""A lock held on the board itself, next to the lease in the controller's state folder.

The lease table only sees sweeps that share its ``--state`` folder. Two sweeps started from two
controllers, or from two folders of one controller, would each find their own table empty and
measure on the same board at once. So a sweep also holds a lock on every board it leases:

The holder runs ``LOCK_SCRIPT`` on the board (over its own SSH session; a local subprocess for the
local board). The script takes an ``flock`` on ``<work_dir>/.socfarm.lock``, which the board's kernel
releases when the process ends, however it ends; it writes who holds it to ``.socfarm.lock.json``
and answers ``locked``, then waits for heartbeats. End of input, ``release`` or a missed heartbeat
(``ttl_s``: a controller that vanished without closing its session, a cut network) end it and free
the board. A second holder is answered ``held <who>`` at once. No stale lock is ever broken by
hand: only the holder's end frees it.

Every acquire, refusal and release is appended to ``<work_dir>/.socfarm.lock.log`` (one JSON line each:
``event``, ``holder``, the script's ``pid``, the board's ``t_wall`` and ``t_mono_ns``; a release also says
``why``), written with O_APPEND and fsync'd, the release line before the lock is freed: the board's own
record of who held it when. A holder killed outright leaves no release line (the next acquire bounds it).

The holder notices the lock's loss as soon as the script's session ends (its output reaches end of file) and
at the latest at the next heartbeat that cannot be sent: ``lost`` is then set with a ``BoardLockLost``.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Callable, Iterator

from orchestrator.config.inventory import Board
from orchestrator.errors import BoardLockLost, SocfarmError
from orchestrator.scheduler.leases import HoldLost, LeaseHeld
from orchestrator.transport.process import close_and_wait

LOCK_SCRIPT = r"""
import fcntl, json, os, select, sys, time
work_dir, ttl, holder = sys.argv[1], float(sys.argv[2]), sys.argv[3]
os.makedirs(work_dir, exist_ok=True)
fd = os.open(os.path.join(work_dir, ".socfarm.lock"), os.O_RDWR | os.O_CREAT, 0o644)
info = os.path.join(work_dir, ".socfarm.lock.json")
def log(event, **more):
    try:
        who = json.loads(holder)
    except ValueError:
        who = holder
    line = json.dumps({"event": event, "holder": who, "pid": os.getpid(), "t_wall": time.time(),
                       "t_mono_ns": time.monotonic_ns(), **more}) + "\n"
    try:
        out = os.open(os.path.join(work_dir, ".socfarm.lock.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(out, line.encode())
            os.fsync(out)
        finally:
            os.close(out)
    except OSError:
        pass
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError:
    try:
        with open(info) as f:
            current = f.read().strip() or "{}"
    except OSError:
        current = "{}"
    log("refused", held_by=current)
    print("held " + current, flush=True)
    sys.exit(0)
log("acquired")
with open(info + ".tmp", "w") as f:
    f.write(holder)
os.replace(info + ".tmp", info)
print("locked", flush=True)
why = "error"
try:
    while True:
        ready, _, _ = select.select([0], [], [], ttl)
        data = os.read(0, 4096) if ready else b""
        if not data or b"release" in data:
            why = "release" if data else ("end of input" if ready else "missed heartbeat")
            break
finally:
    os.unlink(info)
    log("released", why=why)
"""


class BoardLockError(SocfarmError):
    """The lock could not be taken for another reason than another holder (board unreachable, no python3)."""


@dataclass
class _Session:
    """The lock script's process: its stdin, its stdout and a way to end it."""

    send: Callable[[bytes], None]
    stdout: IO[bytes]
    close: Callable[[], None]
    untimed: Callable[[], None] = lambda: None  # after the answer: reads of stdout wait for its end, however long


class BoardLock:
    """The board's lock, kept by heartbeats until :meth:`release`; ``lost`` once it can no longer be kept."""

    def __init__(self, board: Board, owner: str, ttl_s: float = 60.0, lost: HoldLost | None = None):
        self.board = board
        self.owner = owner
        self.ttl_s = ttl_s
        self.lost = lost if lost is not None else HoldLost()
        self._stop = threading.Event()
        self._session: _Session | None = None
        self._thread: threading.Thread | None = None
        self._watch: threading.Thread | None = None

    def holder(self) -> str:
        return json.dumps({"owner": self.owner, "host": socket.gethostname(), "pid": os.getpid(),
                           "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})

    def acquire(self) -> "BoardLock":
        """Take the lock, or raise ``LeaseHeld`` (naming the holder) or ``BoardLockError``."""
        args = [self.board.work_dir, str(self.ttl_s), self.holder()]
        session = self._open(args)
        try:
            answer = session.stdout.readline().decode("utf-8", errors="replace").strip()
        except (OSError, ValueError) as exc:
            answer = f"no answer ({exc})"
        if answer == "locked":
            session.untimed()
            self._session = session
            self._thread = threading.Thread(target=self._beat, name=f"lock-{self.board.name}", daemon=True)
            self._thread.start()
            self._watch = threading.Thread(target=self._await_end, args=(session.stdout,),
                                           name=f"lock-end-{self.board.name}", daemon=True)
            self._watch.start()
            return self
        session.close()
        if answer.startswith("held "):
            raise LeaseHeld(f"board {self.board.name} is locked on the board by {_describe(answer[5:])}")
        raise BoardLockError(f"{self.board.name}: cannot take the board's lock in {self.board.work_dir}: "
                             f"{answer or 'the lock script ended without answering'}")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._session is not None:
            try:
                self._session.send(b"release\n")
            except Exception:  # noqa: BLE001 - the session is gone: the lock went with it
                pass
            self._session.close()
            self._session = None

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl_s / 4):
            try:
                self._session.send(b"\n")
            except Exception as exc:  # noqa: BLE001 - the session died: the board freed the lock
                self._lose(f"a heartbeat could not be sent ({type(exc).__name__}: {exc})")
                return

    def _await_end(self, stdout: IO[bytes]) -> None:
        """The script writes nothing after ``locked``: its output ends when it does, the lock with it."""
        try:
            while stdout.readline():
                pass
        except Exception:  # noqa: BLE001 - a broken stream: the same as its end
            pass
        self._lose("the lock's process on the board ended (its session reached end of file)")

    def _lose(self, cause: str) -> None:
        if self._stop.is_set():
            return  # released by us
        self.lost.lose(BoardLockLost(f"{self.board.name}: lost the lock on the board "
                                     f"({self.board.work_dir}/.socfarm.lock): {cause}; another sweep may take the "
                                     "board, so its share of this sweep ends"))

    # -- the script's process -------------------------------------------------------
    def _open(self, args: list[str]) -> _Session:
        if self.board.connection == "local":
            proc = subprocess.Popen([sys.executable, "-c", LOCK_SCRIPT, *args], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

            def send(data: bytes) -> None:
                proc.stdin.write(data)
                proc.stdin.flush()

            return _Session(send, proc.stdout, lambda: close_and_wait(proc, (proc.stdin, proc.stdout)))
        return self._open_ssh(args)

    def _open_ssh(self, args: list[str]) -> _Session:
        from orchestrator.transport.ssh import classify, connect

        conn = connect(self.board)  # a session of its own: jobs and their timeouts never touch it
        try:
            channel = conn.client.get_transport().open_session(timeout=self.board.ssh.connect_timeout_s)
            channel.settimeout(max(30.0, self.board.ssh.connect_timeout_s))  # for the answer; heartbeats only send
            channel.exec_command(f"python3 -c {shlex.quote(LOCK_SCRIPT)} {' '.join(shlex.quote(a) for a in args)}")
        except Exception as exc:  # noqa: BLE001
            conn.close()
            raise classify(self.board, exc, "taking the board's lock") from exc

        def close() -> None:
            channel.close()
            conn.close()

        return _Session(channel.sendall, channel.makefile("rb"), close, lambda: channel.settimeout(None))


@contextmanager
def locked_boards(boards: list[Board], owner: str) -> Iterator[tuple[list[str], dict[str, str]]]:
    """Each board's lock, held for the ``with`` block: yields the names locked and, per board that could not
    be locked, why (held by another sweep, unreachable)."""
    held: list[BoardLock] = []
    refused: dict[str, str] = {}
    try:
        for board in boards:
            try:
                held.append(BoardLock(board, owner).acquire())
            except SocfarmError as exc:
                refused[board.name] = str(exc)
        yield [lock.board.name for lock in held], refused
    finally:
        for lock in held:
            lock.release()


def _describe(holder_json: str) -> str:
    try:
        h = json.loads(holder_json)
        return f"{h['owner']} (pid {h['pid']} on {h['host']}, since {h['since']})"
    except (ValueError, KeyError, TypeError):
        return "another sweep (holder unknown)"

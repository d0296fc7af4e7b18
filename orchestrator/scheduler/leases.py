"""Board leases: at most one sweep measures on a board at a time.

A lease is a JSON file ``<dir>/<board>.lease`` created with O_EXCL (atomic on
one filesystem) holding owner, host, pid, token and an expiry that the holder
renews while it works. A lease is stale when it expired, or when its holder
process on this host is gone; a stale lease is broken under an flock so that
two sweeps breaking the same lease cannot both win.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import socket
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

from orchestrator.errors import LeaseRenewalFailed, SocfarmError, TransientError


class LeaseHeld(TransientError):
    """Another sweep holds the board."""


class HoldLost(threading.Event):
    """Set once a board's hold (its lease here, or its lock on the board) can no longer be kept; ``error`` says
    why (the first loss wins). The board's runner ends its share on it, also mid-job: it ``watch``es the hold,
    and the thread that finds the hold lost calls it back at once (no thread of its own polls for it)."""

    def __init__(self) -> None:
        super().__init__()
        self.error: SocfarmError | None = None
        self._lock = threading.Lock()
        self._on_lost: list[Callable[[SocfarmError], None]] = []

    def lose(self, error: SocfarmError) -> None:
        with self._lock:
            if self.error is not None:
                return  # told already
            self.error = error
            self.set()
            for on_lost in list(self._on_lost):
                _call_quietly(on_lost, error)

    @contextmanager
    def watch(self, on_lost: Callable[[SocfarmError], None]) -> Iterator[None]:
        """While inside, ``on_lost(error)`` is called once the hold is lost (at once when it already is), from
        the thread that lost it; leaving waits for a call in progress to end (an abort of the job in flight
        ends before its transport is closed)."""
        with self._lock:
            self._on_lost.append(on_lost)
            if self.error is not None:
                _call_quietly(on_lost, self.error)
        try:
            yield
        finally:
            with self._lock:
                self._on_lost.remove(on_lost)


def _call_quietly(on_lost: Callable[[SocfarmError], None], error: SocfarmError) -> None:
    """A failing callback must not end the renewal or heartbeat thread that found the hold lost."""
    try:
        on_lost(error)
    except Exception as exc:  # noqa: BLE001 - said on stderr; the hold's error still ends the board's share
        print(f"socfarm: after losing a board's hold ({error}): {type(exc).__name__}: {exc}", file=sys.stderr)


@dataclass(frozen=True)
class Lease:
    board: str
    owner: str  # run id
    host: str
    pid: int
    token: str
    acquired_at: float  # wall clock, for people
    expires_at: float  # wall clock

    def describe(self) -> str:
        left = self.expires_at - time.time()
        return f"{self.owner} (pid {self.pid} on {self.host}, expires in {left:.0f} s)"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LeaseTable:
    def __init__(self, directory: Path, ttl_s: float = 120.0):
        self.dir = Path(directory)
        self.ttl_s = ttl_s
        self.dir.mkdir(parents=True, exist_ok=True)

    def _path(self, board: str) -> Path:
        return self.dir / f"{board}.lease"

    def read(self, board: str) -> Lease | None:
        try:
            return Lease(**json.loads(self._path(board).read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError):
            return None  # torn or foreign file: treated as stale below

    def all(self) -> list[Lease]:
        return [lease for p in sorted(self.dir.glob("*.lease")) if (lease := self.read(p.stem))]

    def is_stale(self, lease: Lease | None) -> bool:
        if lease is None:
            return True
        if time.time() > lease.expires_at:
            return True
        return lease.host == socket.gethostname() and not _pid_alive(lease.pid)

    def acquire(self, board: str, owner: str) -> Lease:
        lease = Lease(board, owner, socket.gethostname(), os.getpid(), secrets.token_hex(8), time.time(),
                      time.time() + self.ttl_s)
        with self._guard():
            path = self._path(board)
            if path.exists():
                current = self.read(board)
                if not self.is_stale(current):
                    raise LeaseHeld(f"board {board} is leased by {current.describe()}")
                path.unlink()  # stale: expired or its holder died
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "w") as fh:
                json.dump(asdict(lease), fh)
        return lease

    def renew(self, lease: Lease) -> Lease:
        renewed = Lease(**{**asdict(lease), "expires_at": time.time() + self.ttl_s})
        with self._guard():
            current = self.read(lease.board)
            if current is None or current.token != lease.token:
                now = "its file is gone" if current is None else f"it is now held by {current.describe()}"
                raise LeaseHeld(f"lost the lease on {lease.board}: {now}")
            tmp = self._path(lease.board).with_suffix(".tmp")
            tmp.write_text(json.dumps(asdict(renewed)))
            os.replace(tmp, self._path(lease.board))
        return renewed

    def release(self, lease: Lease) -> None:
        """Release if we still own it (never someone else's)."""
        with self._guard():
            current = self.read(lease.board)
            if current is not None and current.token == lease.token:
                self._path(lease.board).unlink()

    def _guard(self):
        return _Flock(self.dir / ".lock")


class _Flock:
    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


class LeaseKeeper:
    """Holds a lease and renews it in the background until closed. A renewal that fails, whatever the cause
    (the lease taken by another holder, an error of the state folder), sets ``lost`` with a
    ``LeaseRenewalFailed`` and renews no more: never a silent end."""

    def __init__(self, table: LeaseTable, board: str, owner: str, lost: HoldLost | None = None):
        self.table = table
        self.lost = lost if lost is not None else HoldLost()
        self.lease = table.acquire(board, owner)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"lease-{board}", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.table.ttl_s / 3):
            try:
                self.lease = self.table.renew(self.lease)
            except Exception as exc:  # noqa: BLE001 - any cause: reported through ``lost``, never swallowed
                board = self.lease.board
                self.lost.lose(LeaseRenewalFailed(
                    f"{board}: renewing its lease {self.table._path(board)} failed ({type(exc).__name__}: {exc}); "
                    "another sweep may take the board, so its share of this sweep ends"))
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            self.table.release(self.lease)
        except OSError:
            if self.lease_lost is None:
                raise
            # the renewal failed already (reported through ``lost``): the folder that broke it breaks this too

    @property
    def lease_lost(self) -> LeaseRenewalFailed | None:
        """Why the renewal failed (None while it did not)."""
        error = self.lost.error
        return error if isinstance(error, LeaseRenewalFailed) else None

    def __enter__(self) -> "LeaseKeeper":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

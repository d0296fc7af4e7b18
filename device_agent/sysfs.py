"""The only module that touches sysfs: read, write-and-verify, existence checks.

``Sysfs(root)`` resolves paths relative to ``root`` (``/sys`` on a board, a
temporary folder in tests). Reads return the file's text stripped of
surrounding whitespace; a failed read raises ``SysfsError`` naming the file.
``write()`` does one ``write(2)`` on the existing file (never creates it),
then reads the file back and raises ``SysfsWriteError`` when the read-back
value differs from the requested one.
"""

from __future__ import annotations

import math
import os
from typing import List, Union

from device_agent.errors import SysfsError, SysfsWriteError

Value = Union[int, str]


class Sysfs:
    """Files below one sysfs root, addressed by paths relative to it."""

    def __init__(self, root: str) -> None:
        self.root = root

    def path(self, rel: str) -> str:
        """Absolute path of ``rel`` (must be relative and stay below the root)."""
        if os.path.isabs(rel) or ".." in rel.split("/"):
            raise ValueError("sysfs path must be relative without '..', got %r" % rel)
        return os.path.join(self.root, rel)

    def exists(self, rel: str) -> bool:
        return os.path.exists(self.path(rel))

    def is_dir(self, rel: str) -> bool:
        return os.path.isdir(self.path(rel))

    def is_file(self, rel: str) -> bool:
        return os.path.isfile(self.path(rel))

    def listdir(self, rel: str) -> List[str]:
        """Sorted entries of a folder; ``SysfsError`` if it cannot be listed."""
        path = self.path(rel)
        try:
            return sorted(os.listdir(path))
        except OSError as exc:
            raise SysfsError("cannot list %s: %s" % (path, _reason(exc)))

    def read(self, rel: str) -> str:
        path = self.path(rel)
        try:
            with open(path, "r", encoding="ascii", errors="replace") as f:
                return f.read().strip()
        except OSError as exc:
            raise SysfsError("cannot read %s: %s" % (path, _reason(exc)))

    def read_int(self, rel: str) -> int:
        text = self.read(rel)
        try:
            return int(text)
        except ValueError:
            raise SysfsError("%s: expected an integer, read %r" % (self.path(rel), text))

    def read_float(self, rel: str) -> float:
        text = self.read(rel)
        try:
            value = float(text)
        except ValueError:
            raise SysfsError("%s: expected a number, read %r" % (self.path(rel), text))
        if not math.isfinite(value):
            raise SysfsError("%s: expected a finite number, read %r" % (self.path(rel), text))
        return value

    def write(self, rel: str, value: Value, verify: bool = True) -> None:
        """Write ``value`` (as text, newline-terminated like ``echo``); verify by reading back."""
        path = self.path(rel)
        requested = str(value)
        data = (requested + "\n").encode("ascii")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC)  # never O_CREAT: sysfs files exist or not
            try:
                written = os.write(fd, data)
            finally:
                os.close(fd)
        except OSError as exc:
            raise SysfsWriteError("cannot write %r to %s: %s" % (requested, path, _reason(exc)))
        if written != len(data):
            raise SysfsWriteError("short write of %r to %s: %d of %d bytes" % (requested, path, written, len(data)))
        if not verify:
            return
        try:
            back = self.read(rel)
        except SysfsError as exc:
            raise SysfsWriteError("wrote %r to %s but cannot read it back: %s" % (requested, path, exc))
        if not _same(value, back):
            raise SysfsWriteError("wrote %r to %s but read back %r" % (requested, path, back))


def _same(requested: Value, back: str) -> bool:
    if isinstance(requested, int) and not isinstance(requested, bool):
        try:
            return int(back) == requested
        except ValueError:
            return False
    return back == str(requested).strip()


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__

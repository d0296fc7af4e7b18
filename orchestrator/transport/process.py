"""Ending a helper process the controller started and talks to over pipes."""

from __future__ import annotations

import subprocess
from typing import IO, Iterable, Optional


def close_and_wait(proc: subprocess.Popen, streams: Iterable[Optional[IO]], timeout_s: float = 10.0) -> None:
    """Close ``streams`` (its end of input makes it exit), wait for it, and kill it if it has not ended within
    ``timeout_s``."""
    for stream in streams:
        try:
            if stream is not None:
                stream.close()
        except OSError:
            pass
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

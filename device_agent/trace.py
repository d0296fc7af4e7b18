"""``trace.csv``: one row per measured inference, written atomically."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from typing import Sequence

TRACE_NAME = "trace.csv"
HEADER = "index,start_mono_ns,end_mono_ns\n"
_ROWS_PER_CHUNK = 4096


@dataclass(frozen=True)
class TraceFile:
    path: str
    sha256: str
    rows: int


def write_trace(output_dir: str, start_ns: Sequence[int], end_ns: Sequence[int]) -> TraceFile:
    """Write ``<output_dir>/trace.csv`` via a temporary file + rename; hash what was written."""
    if len(start_ns) != len(end_ns):
        raise ValueError("start_ns and end_ns differ in length")
    path = os.path.join(output_dir, TRACE_NAME)
    digest = hashlib.sha256()
    fd, tmp_path = tempfile.mkstemp(prefix=".trace-", suffix=".csv.tmp", dir=output_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            _write(f, digest, HEADER)
            n = len(start_ns)
            for first in range(0, n, _ROWS_PER_CHUNK):
                last = min(first + _ROWS_PER_CHUNK, n)
                chunk = "".join(
                    "%d,%d,%d\n" % (i, start_ns[i], end_ns[i]) for i in range(first, last)
                )
                _write(f, digest, chunk)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, path)
    except BaseException:
        try:
            os.unlink(tmp_path)
        except OSError:
            pass
        raise
    return TraceFile(path=path, sha256=digest.hexdigest(), rows=len(start_ns))


def _write(f, digest, text: str) -> None:
    data = text.encode("ascii")
    digest.update(data)
    f.write(data)

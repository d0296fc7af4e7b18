"""Files of the output folder, written atomically (temporary file, fsync, rename) and hashed."""

from __future__ import annotations

import hashlib
import os
import tempfile
from typing import Iterable


def write_atomic(path: str, chunks: Iterable[str]) -> str:
    """Write the ASCII ``chunks`` to ``path`` via a temporary file + rename; return their sha256."""
    folder, name = os.path.split(path)
    stem, ext = os.path.splitext(name)
    digest = hashlib.sha256()
    fd, tmp_path = tempfile.mkstemp(prefix="." + stem + "-", suffix=ext + ".tmp", dir=folder or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            for text in chunks:
                data = text.encode("ascii")
                digest.update(data)
                f.write(data)
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
    return digest.hexdigest()

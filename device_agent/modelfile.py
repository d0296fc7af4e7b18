"""The model file on the board: presence and checksum."""

from __future__ import annotations

import hashlib
import os
from typing import Dict, Optional, Tuple

from device_agent.errors import SpecError

_CHUNK_BYTES = 1 << 20

# A served agent checks the same model file job after job: its digest is kept while the file's identity
# (device, inode, size, modification time) stays the same; a rewritten or replaced file is read again.
_digests: Dict[Tuple[str, int, int, int, int], str] = {}


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            chunk = f.read(_CHUNK_BYTES)
            if not chunk:
                break
            digest.update(chunk)
    return digest.hexdigest()


def verify_model_file(path: str, expected_sha256: Optional[str]) -> str:
    """Return the file's sha256; raise ``SpecError`` if missing or not matching."""
    if not os.path.isfile(path):
        raise SpecError("model.path: model file not found: %s" % path)
    try:
        actual = _cached_sha256(path)
    except OSError as exc:
        raise SpecError("model.path: cannot read model file %s: %s" % (path, exc))
    if expected_sha256 is not None and actual != expected_sha256:
        raise SpecError(
            "model.sha256: checksum mismatch for %s: expected %s, file has %s"
            % (path, expected_sha256, actual)
        )
    return actual


def _cached_sha256(path: str) -> str:
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _digests:
        _digests[key] = sha256_file(path)
    return _digests[key]

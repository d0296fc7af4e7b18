"""The model file on the board: presence and checksum."""

from __future__ import annotations

import hashlib
import os
from typing import Optional

from device_agent.errors import SpecError

_CHUNK_BYTES = 1 << 20


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
        actual = sha256_file(path)
    except OSError as exc:
        raise SpecError("model.path: cannot read model file %s: %s" % (path, exc))
    if expected_sha256 is not None and actual != expected_sha256:
        raise SpecError(
            "model.sha256: checksum mismatch for %s: expected %s, file has %s"
            % (path, expected_sha256, actual)
        )
    return actual

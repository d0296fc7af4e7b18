"""JSON-lines events on the agent's event stream (stdout)."""

from __future__ import annotations

import json
import time
from typing import IO, Any, Optional

from device_agent import PROTOCOL_VERSION

_RESERVED = ("v", "event", "job_id", "t_mono_ns", "t_wall_ns")


class EventWriter:
    """Writes one JSON object per line, flushed, each stamped with both clocks."""

    def __init__(self, stream: IO[str], job_id: Optional[str] = None) -> None:
        self._stream = stream
        self.job_id = job_id

    def emit(self, kind: str, **fields: Any) -> None:
        clash = [k for k in fields if k in _RESERVED]
        if clash:
            raise ValueError("event field(s) %s are reserved" % ", ".join(clash))
        event = {
            "v": PROTOCOL_VERSION,
            "event": kind,
            "job_id": self.job_id,
            "t_mono_ns": time.monotonic_ns(),
            "t_wall_ns": time.time_ns(),
        }
        event.update(fields)
        line = json.dumps(event, separators=(",", ":"), allow_nan=False)
        self._stream.write(line + "\n")
        self._stream.flush()

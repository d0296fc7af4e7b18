"""The reorder buffer: results arrive in any order, leave in frame order.

``push(index, item, now_ns)`` stores a finished frame and returns every frame
that can now be released (the next expected index and all consecutive ones
after it), each with its reorder delay: ``now_ns`` of the release minus the
``now_ns`` at which it arrived. A frame pushed twice, or one before the
next expected index, is a ``ValueError`` (each frame is processed once).
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

Released = Tuple[int, Any, int]  # (index, item, delay_ns)


class ReorderBuffer:
    def __init__(self, first_index: int = 0) -> None:
        self.next_index = first_index
        self._waiting: Dict[int, Tuple[Any, int]] = {}
        self.max_waiting = 0

    def __len__(self) -> int:
        return len(self._waiting)

    def push(self, index: int, item: Any, now_ns: int) -> List[Released]:
        if index < self.next_index or index in self._waiting:
            raise ValueError("frame %d delivered twice" % index)
        self._waiting[index] = (item, now_ns)
        self.max_waiting = max(self.max_waiting, len(self._waiting))
        out: List[Released] = []
        while self.next_index in self._waiting:
            item, arrived_ns = self._waiting.pop(self.next_index)
            out.append((self.next_index, item, now_ns - arrived_ns))
            self.next_index += 1
        return out

    def pending(self) -> List[int]:
        """Indices still held (a gap before them was never filled)."""
        return sorted(self._waiting)

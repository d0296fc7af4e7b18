"""What every backend offers the measurement loop and the co-execution workers.

``invoke()`` processes ``frames_per_call`` frames (one inference, or one
external batch); ``describe()`` is what ``started`` reports about it;
``delegate_use()`` is the op placement fact for ``judge()`` (``gpu`` only);
``close()`` releases it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional

from device_agent.verdict import DelegateUse


@dataclass
class Backend:
    invoke: Callable[[], None]
    frames_per_call: int = 1
    model: Dict[str, Any] = field(default_factory=dict)  # input_shape, input_dtype (when known)
    info: Dict[str, Any] = field(default_factory=dict)  # kind-specific fields for events
    delegate: Optional[DelegateUse] = None
    close: Callable[[], None] = lambda: None

    def delegate_use(self) -> Optional[DelegateUse]:
        return self.delegate

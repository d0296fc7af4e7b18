"""What platform and power sessions share: undo everything they changed, newest first, always."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator, List, Tuple, Type

from device_agent.errors import AgentError


class RestoringSession:
    """A session that changes board state on ``start()`` and restores it on ``close()``.

    Subclasses implement ``start`` and ``close``; ``close`` uses ``_stop_sampler`` and ``_unwind``.
    """

    label = "session"
    sampler: Any = None

    def start(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _stop_sampler(self) -> None:
        if self.sampler is not None and self.sampler.running:
            try:
                self.sampler.stop()
            except BaseException as exc:  # its own error is reported by the session's finish()
                print("device_agent: %s sampler: %s" % (self.label, exc), file=sys.stderr)

    @staticmethod
    def _unwind(stack: List[Any], undo: Callable[[Any], None], errors: Tuple[Type[BaseException], ...],
                describe: Callable[[Any, BaseException], str]) -> None:
        """Undo every item (newest first) even when some fail; raise the first failure."""
        first = None  # type: Any
        while stack:
            item = stack.pop()
            try:
                undo(item)
            except errors as exc:
                if first is None:
                    first = type(exc)(describe(item, exc))
        if first is not None:
            raise first

    @contextmanager
    def active(self) -> Iterator[Any]:
        try:
            self.start()
            yield self
        except BaseException:
            try:
                self.close()
            except AgentError as exc:
                print("device_agent: %s: %s" % (type(exc).__name__, exc), file=sys.stderr)
            raise
        self.close()

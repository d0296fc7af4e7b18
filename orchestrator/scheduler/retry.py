"""Which failures are worth another attempt, and how long to wait before it."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.errors import AgentError, BoardUnreachable, MeterError, StableError, TransientError


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    backoff_s: tuple[float, ...] = (2.0, 8.0)

    def delay_s(self, attempt: int) -> float:
        """Wait before attempt ``attempt + 1`` (attempts count from 1)."""
        return self.backoff_s[min(attempt - 1, len(self.backoff_s) - 1)]


def error_class(exc: BaseException) -> str:
    """The class recorded in the journal: board, agent, measurement or meter trouble."""
    if isinstance(exc, BoardUnreachable):
        return "BoardUnreachable"
    if isinstance(exc, MeterError):
        return "MeterError"
    if isinstance(exc, AgentError):
        return exc.error_class
    return type(exc).__name__


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, AgentError):
        return exc.retryable
    if isinstance(exc, StableError):
        return False
    return isinstance(exc, (TransientError, OSError))


def is_board_failure(exc: BaseException) -> bool:
    """The board itself is in trouble (not just this job): repeated, it quarantines the board."""
    return isinstance(exc, BoardUnreachable)

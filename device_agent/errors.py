"""Errors the agent reports as an ``error`` event.

Every error says whether retrying the same job can help (``retryable``); the
exit code follows from it: 2 when it will fail again, 3 when it may not.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_STABLE = 2
EXIT_RETRYABLE = 3


class AgentError(Exception):
    """Base of every error the agent reports."""

    retryable = False

    @property
    def exit_code(self) -> int:
        return EXIT_RETRYABLE if self.retryable else EXIT_STABLE


class SpecError(AgentError):
    """The job spec is invalid, or names a model/CPU/folder that is not usable.

    The message names the offending field (``rules.min_count: ...``).
    """


class RuntimeMissing(AgentError):
    """Neither ``ai_edge_litert`` nor ``tflite_runtime`` can be imported."""


class ModelError(AgentError):
    """The interpreter cannot load the model, or its input is unsupported."""


class InferenceError(AgentError):
    """An inference failed while warming up or measuring."""

    retryable = True


class OutputError(AgentError):
    """The trace file could not be written (disk full, I/O error)."""

    retryable = True


class InternalError(AgentError):
    """An unexpected exception: a bug in the agent (message names the cause)."""


class Interrupted(AgentError):
    """The agent was stopped by a signal (SIGTERM, SIGINT) before finishing."""

    retryable = True


class SysfsError(AgentError):
    """A sysfs file (a power sensor) cannot be read, or holds no usable value.

    The message names the file. Not retryable: the board is set up wrongly
    (missing driver, no permission, sensor not converting).
    """


class SysfsWriteError(SysfsError):
    """A sysfs write failed, or reading the file back gave another value.

    The message names the file, the value requested and the value read back.
    """


class PowerError(AgentError):
    """The power samples do not cover the measurement window (sampler stopped early or hung)."""

"""Error tree of the orchestrator.

Every error says whether retrying can help (``StableError`` will fail again,
``TransientError`` may not) and maps to a documented exit code of the CLI.
"""

from __future__ import annotations


class SocfarmError(Exception):
    """Base of every error the orchestrator reports to its user."""

    exit_code = 1


class StableError(SocfarmError):
    """Will fail again until the input changes: configuration, capability."""

    exit_code = 2


class TransientError(SocfarmError):
    """May succeed when retried: SSH drop, timeout, meter glitch."""

    exit_code = 3


class ConfigError(StableError):
    """A configuration file (experiments, inventory, manifest) is invalid.

    ``problems`` holds one human-readable line per problem, each already
    prefixed with ``file:line: field``.
    """

    def __init__(self, message: str, problems: list[str] | None = None):
        self.problems = list(problems or [])
        text = message if not self.problems else message + "\n" + "\n".join(f"  {p}" for p in self.problems)
        super().__init__(text)


class ZooError(StableError):
    """The model zoo is missing, incomplete or does not match its manifest."""


class ProvisionError(SocfarmError):
    """The provisioning playbook failed on a board."""


class AgentError(SocfarmError):
    """The device agent reported an error or died without a summary."""

    def __init__(self, message: str, *, retryable: bool = False, error_class: str = "AgentError"):
        super().__init__(message)
        self.retryable = retryable
        self.error_class = error_class


class MeterError(TransientError):
    """A power meter did not answer, answered garbage, or reported an error."""


class StoreError(StableError):
    """The results store is missing a run, or a stored file is corrupt."""


# SSH failures, classified (orchestrator.transport.ssh raises them): here so that code which only names them
# does not import paramiko
class BoardUnreachable(TransientError):
    """No TCP connection, a dropped link, or an SSH session that died."""


class SshAuthError(StableError):
    """The board refused our key (wrong key, wrong user)."""


class HostKeyError(StableError):
    """The board's host key is unknown or does not match known_hosts."""


# A board's hold (the controller's lease, the lock on the board) that could not be kept: the board's share of the
# sweep ends, since another sweep may now measure on it
class LeaseRenewalFailed(TransientError):
    """The lease of a board in the controller's state folder could not be renewed (taken by another holder,
    its folder unwritable, anything)."""


class BoardLockLost(TransientError):
    """The lock on the board itself ended while the sweep held it (its session or holder process died)."""

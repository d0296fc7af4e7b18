"""CPU pinning: check the requested CPUs are present, then pin to exactly them."""

from __future__ import annotations

import os
from typing import Iterable, List, Set

from device_agent.errors import SpecError

_TASK_DIR = "/proc/self/task"


def available_cpus() -> Set[int]:
    """CPUs this process may run on (falls back to 0..cpu_count-1)."""
    getaffinity = getattr(os, "sched_getaffinity", None)
    if getaffinity is not None:
        return set(getaffinity(0))
    return set(range(os.cpu_count() or 1))


def check_cpus(cpus: Iterable[int], field: str = "component.cpus") -> None:
    """Raise ``SpecError`` (naming ``field``) if a CPU is not available."""
    wanted = sorted(set(cpus))
    present = available_cpus()
    missing = [c for c in wanted if c not in present]
    if missing:
        raise SpecError(
            "%s: CPU id(s) %s not available on this board (available: %s)"
            % (field, missing, sorted(present))
        )


def pin(cpus: Iterable[int]) -> List[int]:
    """Pin every thread of this process to exactly ``cpus``; return the effective set.

    ``sched_setaffinity(0, ...)`` only moves the calling thread on Linux, so the
    threads that already exist (e.g. started by numpy's BLAS at import) are moved
    too; threads created later (the interpreter's pool) inherit the mask.
    """
    wanted = set(cpus)
    check_cpus(wanted)
    setaffinity = getattr(os, "sched_setaffinity", None)
    if setaffinity is None:
        raise SpecError("component.cpus: CPU pinning is not supported on this platform")
    try:
        setaffinity(0, wanted)
    except OSError as exc:
        raise SpecError("component.cpus: cannot pin to %s: %s" % (sorted(wanted), exc))
    for tid in _thread_ids():
        try:
            setaffinity(tid, wanted)
        except OSError:
            pass  # the thread ended meanwhile
    return sorted(os.sched_getaffinity(0))


def _thread_ids() -> List[int]:
    try:
        return [int(name) for name in os.listdir(_TASK_DIR)]
    except OSError:
        return []

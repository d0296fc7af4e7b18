"""Where a virtual board's activity comes from: the CPU time of its own processes.

An activity source is called periodically and returns, per virtual cluster,
the utilisation over the interval since its previous call, in busy cores
(0..number of cores). :class:`NetnsActivity` measures it from ``/proc``: every
thread of every process whose network namespace is the board's is charged to
the clusters its CPU affinity allows (``Cpus_allowed_list`` intersected with
the map from virtual clusters to this machine's CPUs).

Limits (documented, not hidden): ``utime+stime`` tick in 1/CLK_TCK s (10 ms),
and the CPU time a thread used after the last sample before it exited is not
seen, so processes shorter than the sampling interval are missed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

CLK_TCK = os.sysconf("SC_CLK_TCK")
REVALIDATE_S = 1.0  # re-check namespace membership of known pids this often


class Activity(Protocol):
    def __call__(self) -> Mapping[str, float]:
        """Utilisation per cluster (busy cores) since the previous call."""
        ...


class FixedActivity:
    """Constant utilisation, for unit tests. ``set()`` changes it."""

    def __init__(self, utilisation: Mapping[str, float] | None = None):
        self._u = dict(utilisation or {})

    def set(self, utilisation: Mapping[str, float]) -> None:
        self._u = dict(utilisation)

    def __call__(self) -> Mapping[str, float]:
        return dict(self._u)


def parse_cpu_list(text: str) -> frozenset[int]:
    """'0-2,5' -> {0, 1, 2, 5}."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return frozenset(cpus)


def _stat_ticks(text: str) -> int:
    # comm may contain spaces and parentheses: fields start after the last ')'
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)


def _allowed_cpus(status_path: str) -> frozenset[int] | None:
    try:
        with open(status_path) as f:
            for line in f:
                if line.startswith("Cpus_allowed_list:"):
                    return parse_cpu_list(line.split(":", 1)[1])
    except OSError:
        return None
    return None


class NetnsActivity:
    """CPU utilisation of the processes inside one network namespace.

    ``cpu_map`` maps each virtual cluster (e.g. ``"a15"``) to the real CPUs
    that stand in for it (e.g. ``[1]``).
    """

    def __init__(self, netns_name: str, cpu_map: Mapping[str, list[int]], *,
                 netns_dir: Path = Path("/run/netns"), proc: Path = Path("/proc")):
        self.netns_name = netns_name
        self.cpu_map = {k: frozenset(v) for k, v in cpu_map.items()}
        self._netns_path = Path(netns_dir) / netns_name
        self._proc = str(proc)
        self._ns_id: tuple[int, int] | None = None
        self._member: dict[int, tuple[bool, float]] = {}  # pid -> (in ns, checked at)
        self._last_ticks: dict[tuple[int, int], int] = {}  # (pid, tid) -> utime+stime
        self._last_t: float | None = None

    def _namespace(self) -> tuple[int, int] | None:
        if self._ns_id is None:
            try:
                st = os.stat(self._netns_path)
            except OSError:
                return None
            self._ns_id = (st.st_dev, st.st_ino)
        return self._ns_id

    def _is_member(self, pid: int, ns: tuple[int, int], now: float) -> bool:
        known = self._member.get(pid)
        if known is not None and now - known[1] < REVALIDATE_S:
            return known[0]
        try:
            st = os.stat(f"{self._proc}/{pid}/ns/net")
            member = (st.st_dev, st.st_ino) == ns
        except OSError:
            member = False
        self._member[pid] = (member, now)
        return member

    def pids(self) -> list[int]:
        """Processes currently in the namespace."""
        ns = self._namespace()
        if ns is None:
            return []
        now = time.monotonic()
        return [int(p) for p in os.listdir(self._proc) if p.isdigit() and self._is_member(int(p), ns, now)]

    def __call__(self) -> dict[str, float]:
        now = time.monotonic()
        busy_s = {name: 0.0 for name in self.cpu_map}
        ns = self._namespace()
        seen_pids: set[int] = set()
        ticks_now: dict[tuple[int, int], int] = {}
        if ns is not None:
            for entry in os.listdir(self._proc):
                if not entry.isdigit():
                    continue
                pid = int(entry)
                seen_pids.add(pid)
                if not self._is_member(pid, ns, now):
                    continue
                self._charge_threads(pid, ticks_now, busy_s)
        for pid in [p for p in self._member if p not in seen_pids]:
            del self._member[pid]
        self._last_ticks = ticks_now
        last_t, self._last_t = self._last_t, now
        if last_t is None or now <= last_t:
            return {name: 0.0 for name in self.cpu_map}
        dt = now - last_t
        return {name: busy / dt for name, busy in busy_s.items()}

    def _charge_threads(self, pid: int, ticks_now: dict, busy_s: dict[str, float]) -> None:
        task_dir = f"{self._proc}/{pid}/task"
        try:
            tids = os.listdir(task_dir)
        except OSError:
            return
        for tid_s in tids:
            tid = int(tid_s)
            try:
                with open(f"{task_dir}/{tid_s}/stat") as f:
                    ticks = _stat_ticks(f.read())
            except (OSError, ValueError, IndexError):
                continue
            key = (pid, tid)
            ticks_now[key] = ticks
            previous = self._last_ticks.get(key)
            if previous is None:
                # first sight: a thread born since the last sample used all its time in it
                previous = 0 if self._last_t is not None else ticks
            delta = ticks - previous
            if delta <= 0:
                continue
            allowed = _allowed_cpus(f"{task_dir}/{tid_s}/status")
            if allowed is None:
                continue
            shares = {name: len(allowed & real) for name, real in self.cpu_map.items()}
            total = sum(shares.values())
            if total == 0:
                continue  # runs only on CPUs no virtual cluster stands for
            for name, share in shares.items():
                if share:
                    busy_s[name] += delta / CLK_TCK * share / total

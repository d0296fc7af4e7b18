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
import threading
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


class ProcessIndex:
    """Which network namespace each process of this machine is in, from one ``/proc`` listing.

    Shared by the boards of one farm: a listing serves every board that asks within ``max_age_s`` of
    it, so the farm lists ``/proc`` and stats each process's ``ns/net`` once per refresh instead of once
    per board (at 64 boards the per-board scans were three quarters of the simulators' CPU). A process's
    namespace is looked up again after ``REVALIDATE_S`` (pids are reused).

    One board's tick lists again; the others meanwhile take the listing before it (at most ``max_age_s``
    plus one listing old) instead of queueing behind it: with a whole farm waiting on one listing, a sweep's
    start (hundreds of processes born and gone within seconds) held every simulator's tick up by seconds,
    and XU3 sensors then missed conversions in their idle windows.
    """

    def __init__(self, *, proc: Path = Path("/proc"), max_age_s: float = 0.0):
        self._proc = str(proc)
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._listed_at: float | None = None
        self._ns_of: dict[int, tuple[tuple[int, int] | None, float]] = {}  # pid -> (namespace, checked at)
        self._by_ns: dict[tuple[int, int], list[int]] = {}
        self.refreshes = 0

    def pids_in(self, ns: tuple[int, int]) -> list[int]:
        """The processes in namespace ``ns`` (its ``(st_dev, st_ino)``) as of a listing at most ``max_age_s`` old."""
        if self._listed_at is None:  # nothing listed yet: wait for the first listing
            with self._lock:
                if self._listed_at is None:
                    self._refresh(time.monotonic())
        elif time.monotonic() - self._listed_at >= self.max_age_s and self._lock.acquire(blocking=False):
            try:  # (a listing under way in another thread: the previous one serves meanwhile)
                now = time.monotonic()
                if now - self._listed_at >= self.max_age_s:
                    self._refresh(now)
            finally:
                self._lock.release()
        return list(self._by_ns.get(ns, ()))

    def _refresh(self, now: float) -> None:
        ns_of: dict[int, tuple[tuple[int, int] | None, float]] = {}
        by_ns: dict[tuple[int, int], list[int]] = {}
        for entry in os.listdir(self._proc):
            if not entry.isdigit():
                continue
            pid = int(entry)
            known = self._ns_of.get(pid)
            if known is None or now - known[1] >= REVALIDATE_S:
                try:
                    st = os.stat(f"{self._proc}/{pid}/ns/net")
                    known = ((st.st_dev, st.st_ino), now)
                except OSError:
                    known = (None, now)
            ns_of[pid] = known
            if known[0] is not None:
                by_ns.setdefault(known[0], []).append(pid)
        self._ns_of, self._by_ns, self._listed_at = ns_of, by_ns, now
        self.refreshes += 1


class NetnsActivity:
    """CPU utilisation of the processes inside one network namespace.

    ``cpu_map`` maps each virtual cluster (e.g. ``"a15"``) to the real CPUs
    that stand in for it (e.g. ``[1]``). ``index``: the farm's shared :class:`ProcessIndex`
    (default: one of its own, listing ``/proc`` at every call).
    """

    def __init__(self, netns_name: str, cpu_map: Mapping[str, list[int]], *,
                 netns_dir: Path = Path("/run/netns"), proc: Path = Path("/proc"),
                 index: ProcessIndex | None = None):
        self.netns_name = netns_name
        self.cpu_map = {k: frozenset(v) for k, v in cpu_map.items()}
        self._netns_path = Path(netns_dir) / netns_name
        self._proc = str(proc)
        self._index = index if index is not None else ProcessIndex(proc=proc)
        self._ns_id: tuple[int, int] | None = None
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

    def pids(self) -> list[int]:
        """Processes currently in the namespace."""
        ns = self._namespace()
        return [] if ns is None else self._index.pids_in(ns)

    def __call__(self) -> dict[str, float]:
        now = time.monotonic()
        busy_s = {name: 0.0 for name in self.cpu_map}
        ticks_now: dict[tuple[int, int], int] = {}
        for pid in self.pids():
            self._charge_threads(pid, ticks_now, busy_s)
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

"""A board's idle power and memory bandwidth, kept across sweeps with an expiry.

Both are measurements of their own before a board's first job (``idle_s`` after
``idle_settle_s``, and the bandwidth microbenchmark per CPU component: about
4 s per board with the defaults), which a short sweep pays in full. They change
slowly, so a sweep keeps what it measured in ``<state>/measured/<board>.json``
and the next sweep with the same ``--state`` copies it into its own tables
instead of measuring again, as long as

- it is younger than the experiments file's ``idle_max_age_h`` (24 h) or
  ``membw_max_age_h`` (168 h); 0 measures in every run;
- nothing it depends on changed: the board's provisioning stamp (playbooks, agent,
  its inventory entry), its kernel (``uname -r`` from the facts provisioning
  gathered), the frequency setting found on the board (governor, min and max of
  every cpufreq policy and devfreq node its inventory names, read before the
  decision), the meter's or sensors' inventory entry, ``idle_s`` and
  ``idle_settle_s`` (idle), the component's CPUs and ``membw_mb`` (bandwidth).

A reused figure is copied into the run's ``idle`` / ``membw`` table with
``measured_run_id`` and ``measured_wall`` saying which run measured it and when
(freshly measured rows carry their own run and time). Only the idle power before
the first job is kept: a run that reused it does not measure the idle power after
its last job either (the drift check needs a run that measured its own start).
A cache file that cannot be read is named in a warning and the figures are
measured again (and the file rewritten); it never fails a sweep.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import pyarrow as pa

from orchestrator.config.inventory import Board
from orchestrator.errors import SocfarmError
from orchestrator.jobs import Member
from orchestrator.membw import KERNELS
from orchestrator.provision.runner import BoardFacts
from orchestrator.provision.stamps import STAMPS_FILE
from orchestrator.results.schema import TABLES
from orchestrator.results.store import RunDir

CACHE_DIR = "measured"
FORMAT = 1
#: A measurement stamped this far in the controller's future means its clock was changed: not trusted.
FUTURE_SLACK_S = 300.0

#: The run's idle and membw tables with the two columns that say where each figure comes from.
MEASURED_FIELDS = [pa.field("measured_run_id", pa.string()), pa.field("measured_wall", pa.timestamp("ns", tz="UTC"))]
STORED_SCHEMAS = {t: pa.schema([*TABLES[t], *MEASURED_FIELDS]) for t in ("idle", "membw")}

_IDLE_ROW = {"source": str, "rail": str, "settle_s": float, "duration_s": float, "samples": int,
             "mean_power_w": float}

_WHAT = {
    "provisioning": "the board was provisioned with other inputs (playbooks, agent or its inventory entry)",
    "kernel": "its kernel changed",
    "frequency": "its frequency setting changed",
    "meter": "its meter's inventory entry changed",
    "power_sensors": "its sensors' inventory entry changed",
    "idle_s": "idle_s changed",
    "idle_settle_s": "idle_settle_s changed",
    "cpus": "the component's CPUs changed",
    "membw_mb": "membw_mb changed",
}


@dataclass(frozen=True)
class Reused:
    """A figure measured by an earlier run, to copy into this one."""

    rows: list[dict[str, Any]]  # idle: rows without run, board and phase; membw: kernel and gb_per_s
    run_id: str
    measured_wall: float  # seconds since the epoch
    age_h: float


def write_measured(run: RunDir, table: str, part: str, rows: list[dict[str, Any]], measured_run_id: str,
                   measured_wall: float) -> Path:
    """Store ``rows`` of the run's ``idle`` or ``membw`` table with the run and time they were measured."""
    stamp = pd.Timestamp(int(round(measured_wall * 1e9)), unit="ns", tz="UTC")
    full = [{**r, "measured_run_id": measured_run_id, "measured_wall": stamp} for r in rows]
    return run.write_table(table, part, full, schema=STORED_SCHEMAS[table])


def frequency_files(board: Board) -> list[str]:
    """The sysfs files (relative to the board's sysfs root) that make its frequency setting: governor, min and
    max of every cpufreq policy and devfreq node its inventory names."""
    files = []
    for c in board.components:
        if c.kind == "cpu" and c.cpufreq_policy:
            files += [f"devices/system/cpu/cpufreq/{c.cpufreq_policy}/scaling_{f}"
                      for f in ("governor", "min_freq", "max_freq")]
        if c.kind == "gpu" and c.devfreq:
            files += [f"class/devfreq/{c.devfreq}/{f}" for f in ("governor", "min_freq", "max_freq")]
    if board.gpu is not None:
        files += [f"class/devfreq/{board.gpu.devfreq}/{f}" for f in ("governor", "min_freq", "max_freq")]
    return sorted(set(files))


def frequency_command(board: Board) -> str | None:
    """Shell printing ``path:value`` for each readable file of ``frequency_files`` (None: the board has none)."""
    files = frequency_files(board)
    if not files:
        return None
    root = board.sysfs_root.rstrip("/")
    return "cd " + shlex.quote(root or "/") + " && grep -H . " + " ".join(map(shlex.quote, files)) + \
        " 2>/dev/null; true"


def parse_frequency(output: str) -> dict[str, str]:
    state = {}
    for line in output.splitlines():
        path, sep, value = line.partition(":")
        if sep:
            state[path.strip()] = value.strip()
    return state


class MeasurementCache:
    """One board's idle power and bandwidth as earlier sweeps of this ``--state`` measured them.

    ``note`` gets one line per decision worth telling (a figure measured again and why, an unreadable cache);
    nothing here raises: at worst a figure is measured again."""

    def __init__(self, state_dir: Path, board: Board, facts: BoardFacts, *, idle_s: float, idle_settle_s: float,
                 membw_mb: float, idle_max_age_h: float, membw_max_age_h: float,
                 note: Callable[[str], None] = lambda text: None, now: Callable[[], float] = time.time):
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / CACHE_DIR / f"{board.name}.json"
        self.board = board
        self.facts = facts
        self.idle_s, self.idle_settle_s, self.membw_mb = idle_s, idle_settle_s, membw_mb
        self.max_age_h = {"idle": idle_max_age_h, "membw": membw_max_age_h}
        self.note = note
        self.now = now
        self._common: dict[str, Any] | None = None
        self._data: dict[str, Any] | None = None
        self.reused: dict[str, list[str]] = {"idle": [], "membw": []}
        self.reused_from: set[tuple[str, float]] = set()

    # -- what a figure depends on ---------------------------------------------------------------------
    def _board_key(self, transport: Any) -> dict[str, Any]:
        """Provisioning stamp, kernel and frequency setting: read once per run (the latter from the board)."""
        if self._common is None:
            stamp = None
            try:
                entry = json.loads((self.state_dir / STAMPS_FILE).read_text()).get(self.board.name) or {}
                stamp = entry.get("stamp") if isinstance(entry, dict) else None
            except (OSError, ValueError, AttributeError):
                pass
            frequency: Any = {}
            command = frequency_command(self.board)
            if command is not None:
                try:
                    frequency = parse_frequency(transport.run(command, timeout_s=30.0))
                except (SocfarmError, OSError) as exc:
                    frequency = None  # unknown: never equal to what a cached figure was measured with
                    self.note(f"{self.board.name}: frequency setting not read ({exc}): idle power and "
                              "bandwidth are measured again")
            self._common = {"provisioning": stamp, "kernel": self.facts.kernel, "frequency": frequency}
        return self._common

    def idle_key(self, source: str, transport: Any) -> dict[str, Any]:
        entry = self.board.meter if source == "meter" else self.board.power_sensors
        spec = entry.model_dump(mode="json") if entry is not None else None
        return {**self._board_key(transport), ("meter" if source == "meter" else "power_sensors"): spec,
                "idle_s": self.idle_s, "idle_settle_s": self.idle_settle_s}

    def membw_key(self, member: Member, transport: Any) -> dict[str, Any]:
        return {**self._board_key(transport), "cpus": list(member.cpus), "membw_mb": self.membw_mb}

    # -- look-up ----------------------------------------------------------------------------------------
    def idle(self, source: str, transport: Any) -> Reused | None:
        """The board's cached idle power of ``source`` (meter, sensor) if still valid, else None."""
        return self._safely(lambda: self._lookup("idle", source, self.idle_key(source, transport),
                                                 f"idle power ({source})"))

    def membw(self, member: Member, transport: Any) -> Reused | None:
        """The cached memory bandwidth of a CPU component if still valid, else None."""
        return self._safely(lambda: self._lookup("membw", member.name, self.membw_key(member, transport),
                                                 f"memory bandwidth of {member.name}"))

    def _safely(self, look: Callable[[], Reused | None]) -> Reused | None:
        try:
            return look()
        except Exception as exc:  # noqa: BLE001 - a cache must never fail a sweep: measure instead
            self.note(f"warning: {self.board.name}: cache {self.path} not usable ({type(exc).__name__}: {exc}): "
                      "measured again")
            return None

    def _lookup(self, kind: str, name: str, key: dict[str, Any], what: str) -> Reused | None:
        max_age_h = self.max_age_h[kind]
        entry = (self._load().get(kind) or {}).get(name)
        if entry is None:
            return None
        try:
            run_id, wall, rows = _valid_entry(kind, entry)
        except (KeyError, TypeError, ValueError) as exc:
            self.note(f"warning: {self.board.name}: unreadable cached {what} in {self.path} ({exc}): measured again")
            return None
        if max_age_h <= 0:
            return None  # the user asked for a measurement in every run
        changed = [k for k in sorted(set(key) | set(entry.get("key") or {}))
                   if (entry.get("key") or {}).get(k) != key.get(k)]
        if changed:
            self.note(f"{self.board.name}: {what} measured again: "
                      + "; ".join(_describe(k, (entry.get("key") or {}).get(k), key.get(k)) for k in changed))
            return None
        now = self.now()
        age_h = (now - wall) / 3600.0
        if wall > now + FUTURE_SLACK_S:
            self.note(f"{self.board.name}: {what} measured again: the cached one is dated in the future "
                      "(was the clock changed?)")
            return None
        if age_h > max_age_h:
            self.note(f"{self.board.name}: {what} measured again: the cached one is {age_h:.1f} h old "
                      f"({kind}_max_age_h {max_age_h:g})")
            return None
        self.reused[kind].append(name)
        self.reused_from.add((run_id, wall))
        return Reused(rows=rows, run_id=run_id, measured_wall=wall, age_h=max(age_h, 0.0))

    def summary(self) -> str | None:
        """One line for the progress display: what this run reused and from when (None: nothing)."""
        parts = []
        if self.reused["idle"]:
            parts.append(f"idle power ({', '.join(self.reused['idle'])})")
        if self.reused["membw"]:
            parts.append(f"memory bandwidth ({', '.join(self.reused['membw'])})")
        if not parts:
            return None
        runs = sorted(self.reused_from, key=lambda r: r[1])
        ages = ", ".join(f"{run} {max(0.0, (self.now() - wall) / 3600):.1f} h ago" for run, wall in runs)
        return (f"{self.board.name}: reusing {' and '.join(parts)} measured by run {ages} "
                "(idle_max_age_h / membw_max_age_h; 0 measures every run)")

    # -- storing ----------------------------------------------------------------------------------------
    def store_idle(self, source: str, rows: list[dict[str, Any]], run_id: str, wall: float,
                   transport: Any) -> None:
        """Keep the idle power of ``source`` that run ``run_id`` measured at ``wall`` before its first job."""
        self._safely(lambda: self._store("idle", source, self.idle_key(source, transport),
                                         [{k: r[k] for k in _IDLE_ROW} for r in rows], run_id, wall))

    def store_membw(self, member: Member, rows: list[dict[str, Any]], run_id: str, wall: float,
                    transport: Any) -> None:
        """Keep a CPU component's memory bandwidth that run ``run_id`` measured at ``wall``."""
        self._safely(lambda: self._store("membw", member.name, self.membw_key(member, transport),
                                         [{"kernel": r["kernel"], "gb_per_s": r["gb_per_s"]} for r in rows],
                                         run_id, wall))

    def _store(self, kind: str, name: str, key: dict[str, Any], rows: list[dict[str, Any]], run_id: str,
               wall: float) -> None:
        if key.get("frequency") is None:
            return  # measured under a frequency setting that could not be read: nothing to compare it with
        data = self._load()
        data.setdefault(kind, {})[name] = {"key": key, "run_id": run_id, "measured_wall": wall, "rows": rows}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
            os.replace(tmp, self.path)
        except OSError as exc:
            self.note(f"warning: {self.board.name}: could not keep the {kind} figures in {self.path} ({exc}); "
                      "the next sweep measures them again")

    def _load(self) -> dict[str, Any]:
        """The board's cache file (read once; an unreadable one is named and replaced by an empty one)."""
        if self._data is not None:
            return self._data
        self._data = {"format": FORMAT, "board": self.board.name}
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            return self._data
        except OSError as exc:
            self.note(f"warning: {self.board.name}: cannot read {self.path} ({exc}): idle power and bandwidth "
                      "are measured again")
            return self._data
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("board") != self.board.name:
                raise ValueError(f"not a format-{FORMAT} cache of board {self.board.name}")
            for kind in ("idle", "membw"):
                if not isinstance(data.get(kind, {}), dict):
                    raise ValueError(f"{kind}: not a mapping")
        except ValueError as exc:
            self.note(f"warning: {self.board.name}: corrupt cache {self.path} ({exc}): idle power and bandwidth "
                      "are measured again and the file rewritten")
            return self._data
        self._data = data
        return data


def _valid_entry(kind: str, entry: Any) -> tuple[str, float, list[dict[str, Any]]]:
    """(run id, wall time, rows) of a cache entry; KeyError/TypeError/ValueError when it is not one."""
    if not isinstance(entry, dict):
        raise TypeError("not a mapping")
    run_id, wall, rows = entry["run_id"], entry["measured_wall"], entry["rows"]
    if not isinstance(run_id, str) or not run_id:
        raise ValueError("no run id")
    if isinstance(wall, bool) or not isinstance(wall, (int, float)) or not math.isfinite(wall):
        raise ValueError("no measurement time")
    if not isinstance(rows, list) or not rows or not isinstance(entry.get("key"), dict):
        raise ValueError("no rows")
    out = []
    for row in rows:
        if not isinstance(row, dict):
            raise TypeError("a row is not a mapping")
        if kind == "idle":
            clean = {}
            for col, typ in _IDLE_ROW.items():
                value = row[col]
                if typ is str and not isinstance(value, str):
                    raise ValueError(f"{col}: not text")
                if typ is not str and (isinstance(value, bool) or not isinstance(value, (int, float))
                                       or not math.isfinite(value)):
                    raise ValueError(f"{col}: not a number")
                clean[col] = typ(value)
            if clean["mean_power_w"] < 0:
                raise ValueError("negative power")
        else:
            value = row["gb_per_s"]
            if row["kernel"] not in KERNELS or isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value <= 0:
                raise ValueError(f"bad kernel row {row!r}")
            clean = {"kernel": row["kernel"], "gb_per_s": float(value)}
        out.append(clean)
    if kind == "membw" and sorted(r["kernel"] for r in out) != sorted(KERNELS):
        raise ValueError("not one row per kernel")
    return run_id, float(wall), out


def _describe(key: str, old: Any, new: Any) -> str:
    what = _WHAT.get(key, f"{key} changed")
    if key in ("kernel", "idle_s", "idle_settle_s", "membw_mb", "cpus"):
        return f"{what} ({_short(old)} -> {_short(new)})"
    if key == "frequency" and isinstance(old, dict) and isinstance(new, dict):
        diffs = [f"{p}: {old.get(p)} -> {new.get(p)}" for p in sorted(set(old) | set(new)) if old.get(p) != new.get(p)]
        return f"{what} ({'; '.join(diffs[:3])}{', …' if len(diffs) > 3 else ''})"
    return what


def _short(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)

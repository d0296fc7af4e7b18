"""One board's share of a sweep: its jobs one after another, each measured and stored.

Per job: wait until the SoC's thermal zones read below the board's
``cooldown_c`` (``orchestrator.cooldown``), journal ``started``, estimate the
board's clock offset, start the board's meter, run the agent through the
board's transport, estimate the offset again, read the meter until it covers
the window's end, fetch and verify the trace (and the agent's own power
samples). Then, while the board already measures its next job, a store
thread of the board computes the power figures from the samples to be stored
(``orchestrator.board_power``), writes the job's Parquet rows and journals
``done`` (one job in flight: a co-execution job waits for it, since its
isolated baselines may be in it; a store that fails retries the job like a
failed measurement). Anything that fails is
journalled ``failed`` with its error class. Before the first job and after the
last, the board's idle power is measured (after a settle period).

A board whose hold ends (``lock_lost``: its lock on the board, or its lease in the controller's state folder)
measures no more: a job in flight is aborted at once (its agent stopped), stored nothing, and is failed with the
hold's error (``BoardLockLost``, ``LeaseRenewalFailed``) like the board's remaining jobs.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import pyarrow as pa

from orchestrator.analysis.emulation import STATUS_COLUMNS as EMULATION_STATUS_COLUMNS
from orchestrator.analysis.emulation import timing_source
from orchestrator.analysis.energy import STATUS_COLUMNS as ENERGY_STATUS_COLUMNS
from orchestrator.analysis.energy import start_idle_w
from orchestrator.board_power import (
    PowerSource,
    clock_reasons,
    empty_samples,
    idle_frame,
    meter_idle,
    no_power,
    power_figures,
    sensor_idle_rows,
)
from orchestrator.board_cache import MeasurementCache, write_measured
from orchestrator.checksum import sha256_file
from orchestrator.config.inventory import Board, ThermalSpec
from orchestrator.cooldown import Cooldown, cool_down
from orchestrator.errors import AgentError, BoardLockLost, SocfarmError
from orchestrator.health import BoardUnhealthy, health_command, judge_health
from orchestrator.isolated import IsolatedBaselines
from orchestrator.jobs import Job
from orchestrator.membw import cpu_components, membw_command, membw_rows
from orchestrator.meters.sensors import sensor_samples
from orchestrator.meters.session import Capture, MeterSession, open_meter
from orchestrator.progress import SweepProgress
from orchestrator.provision.runner import BoardFacts
from orchestrator.results.schema import SCHEMA_VERSION, TABLES
from orchestrator.results.store import RunDir
from orchestrator.scheduler.leases import HoldLost
from orchestrator.scheduler.retry import RetryPolicy, error_class, is_board_failure, is_retryable
from orchestrator.transport.agent import AgentOutcome, Transport
from orchestrator.transport.clock import JobClock
from orchestrator.transport.local import LocalTransport


#: The results columns the end of a sweep reports on (``SweepOutcome.status_frame``).
STATUS_COLUMNS = ENERGY_STATUS_COLUMNS + [c for c in EMULATION_STATUS_COLUMNS if c not in ENERGY_STATUS_COLUMNS]


@dataclass
class SweepOutcome:
    run: RunDir
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    invalid: list[str] = field(default_factory=list)
    quarantined: dict[str, str] = field(default_factory=dict)
    report: Path | None = None  # reports/<run>/index.html (written, or being written when report_pid is set)
    report_pid: int | None = None  # the background writer's process (``--report background``)
    report_log: Path | None = None
    # of each results row this process stored, what the end of a sweep says (energy, emulation): job id -> values
    status_rows: dict[str, dict[str, Any]] = field(default_factory=dict)

    def status_frame(self, done: set[str]) -> pd.DataFrame:
        """``STATUS_COLUMNS`` of the ``done`` jobs' results: from memory when this process stored them all,
        else (a resumed run: jobs of an earlier process) read from the store. Read, a run not yet compacted is a
        file per job: ~2 s at 1,280 jobs, at the end of every sweep."""
        if set(self.status_rows) != done:
            from orchestrator.analysis.tables import read_columns

            return read_columns(self.run, "results", STATUS_COLUMNS)
        schema = pa.schema([TABLES["results"].field(c) for c in STATUS_COLUMNS])
        return pa.Table.from_pylist([self.status_rows[j] for j in sorted(done)], schema=schema).to_pandas()


@dataclass(frozen=True)
class MeasuredJob:
    """A job whose window is over and whose files are here: what storing it takes."""

    job: Job
    attempt: int
    outcome: AgentOutcome
    summary: dict[str, Any]
    clock: JobClock
    meter: MeterSession | None
    capture: Capture | None
    cooldown: Cooldown | None
    trace_csv: Path
    power_csv: Path | None
    #: where the controller's time went, step -> ms (journalled with ``done``: see :class:`StepTimer`)
    steps_ms: dict[str, float] = field(default_factory=dict)


class StoreBehind:
    """A board's store thread: at most one measured job in flight (:meth:`submit`, then :meth:`settle`)."""

    def __init__(self, name: str):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._inflight: tuple[MeasuredJob, Future] | None = None

    @property
    def job(self) -> Job | None:
        return self._inflight[0].job if self._inflight is not None else None

    def submit(self, measured: MeasuredJob, store: Callable[[MeasuredJob], None]) -> None:
        if self._inflight is not None:
            raise RuntimeError("a store is in flight: settle it first")
        self._inflight = (measured, self._pool.submit(store, measured))

    def settle(self) -> tuple[MeasuredJob | None, BaseException | None]:
        """Wait for the store in flight: (its job, what it raised or None); (None, None) when none is."""
        if self._inflight is None:
            return None, None
        (measured, future), self._inflight = self._inflight, None
        return measured, future.exception()

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class StepTimer:
    """Milliseconds per step of one job on the controller, for the journal's ``done`` entry (``steps_ms``):
    clock_before / clock_after (the clock estimates around the window), agent (the request: model load,
    warm-up, window, summary), meter (reading the supply meter up to the window's end), fetch (trace and
    power files, verified), settle (waiting for the previous job's store), store (this job's rows, on the
    store thread). Where a job's time beyond its window goes, as the farm grows."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.ms: dict[str, float] = {}
        self._clock = clock
        self._t = clock()

    def lap(self, step: str) -> None:
        """The time since the last lap (or the start) is ``step``'s (added to it, if it had one)."""
        now = self._clock()
        self.ms[step] = round(self.ms.get(step, 0.0) + 1e3 * (now - self._t), 3)
        self._t = now


#: round trips to the board's clock before and after each job: a supply meter's samples are aligned with the
#: board's window through them (and a clock step between the two estimates makes the job INVALID), so a board
#: with a meter takes the best of 8; without one the offsets are only recorded (clock_* columns), and 3 keep
#: them within a round trip at a third of the cost (each probe is a request to the board's serving agent)
CLOCK_PROBES_METER = 8
CLOCK_PROBES = 3


def needs_runtime(board: Board) -> bool:
    """Whether a job on ``board`` may load the TFLite runtime: not when every component is ``simulated``
    (a modelled latency). Its agent server then starts without importing it (``serve --no-preload``): ~0.1 s
    of CPU per board that 64 virtual boards would all spend at once, on this machine, before their first job."""
    return any(c.kind != "simulated" for c in board.components)


def open_transport(board: Board, facts: BoardFacts) -> Transport:
    if board.connection == "local":
        return LocalTransport(facts, prestart=True, preload=needs_runtime(board))
    from orchestrator.transport.ssh import SshTransport  # paramiko: only for boards that need it

    return SshTransport(board, python=facts.python, agent_dir=facts.agent_dir, preload=needs_runtime(board))


def _trace_frame(path: Path, run_id: str, job_id: str) -> pd.DataFrame:
    try:
        trace = pd.read_csv(path, dtype={"index": "int64", "start_mono_ns": "int64", "end_mono_ns": "int64"})
    except (OSError, ValueError) as exc:
        raise AgentError(f"{job_id}: unreadable trace {path}: {exc}", retryable=True, error_class="TraceError")
    if list(trace.columns[:3]) != ["index", "start_mono_ns", "end_mono_ns"]:
        raise AgentError(f"{job_id}: trace {path} has columns {list(trace.columns)}", error_class="TraceError")
    if "in_window" in trace.columns:  # co-execution: the tail finished after the stream closed is not measured
        trace = trace[trace["in_window"] == 1]
    trace = trace[["index", "start_mono_ns", "end_mono_ns"]].copy()  # co-execution adds worker columns
    trace.insert(0, "job_id", job_id)
    trace.insert(0, "run_id", run_id)
    trace["latency_ms"] = (trace["end_mono_ns"] - trace["start_mono_ns"]) / 1e6
    return trace


def result_row(
    run_id: str,
    job: Job,
    facts: BoardFacts,
    outcome: AgentOutcome,
    git_rev: str,
    clock: JobClock,
    power: dict[str, Any],
    thermal: ThermalSpec | None = None,
    cooldown: Cooldown | None = None,
    emulated: str | None = None,
) -> dict[str, Any]:
    """The job's results row (schema ``RESULTS``); ``emulated``: the board's ``Board.emulated`` (what emulated
    its userland, null for a real board) and/or its simulated components (``timing_source``), carried by every
    row so that its timings stay labelled."""
    summary = outcome.summary or {}
    started = outcome.started or {}
    runtime = started.get("runtime") or {}
    lat = summary.get("latency_ms", {})
    window = summary.get("window", {})
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "job_id": job.job_id,
        "experiment": job.experiment,
        "board": job.board,
        "soc": job.soc,
        "hostname": str(started.get("hostname", facts.hostname)),
        "arch": facts.arch,
        "emulated": emulated,
        "component": job.component,
        "component_class": job.component_class,
        "cpus": list(job.cpus),
        "threads": job.threads,
        "model": job.model,
        "model_display": job.model_display,
        "dtype": job.dtype,
        "model_file": job.model_file,
        "model_sha256": job.model_sha256,
        "repeat": job.repeat,
        "runtime_module": str(runtime.get("module", facts.runtime_module)),
        "runtime_version": str(runtime.get("version", facts.runtime_version)),
        "agent_version": str(started.get("agent_version", facts.agent_version)),
        "git_revision": git_rev,
        "warmup_runs": job.rules.warmup_runs,
        "min_count": job.rules.min_count,
        "min_duration_s": job.rules.min_duration_s,
        "max_duration_s": job.rules.max_duration_s,
        "started_wall": pd.Timestamp(int(started.get("t_wall_ns", 0)), unit="ns", tz="UTC"),
        "window_start_mono_ns": window.get("start_mono_ns"),
        "window_end_mono_ns": window.get("end_mono_ns"),
        "count": summary.get("count"),
        "duration_s": summary.get("duration_s"),
        "throughput_ips": summary.get("throughput_ips"),
        "latency_mean_ms": lat.get("mean"),
        "latency_p50_ms": lat.get("p50"),
        "latency_p90_ms": lat.get("p90"),
        "latency_p99_ms": lat.get("p99"),
        "latency_min_ms": lat.get("min"),
        "latency_max_ms": lat.get("max"),
        "verdict": summary.get("verdict"),
        "reasons": list(summary.get("reasons", [])),
        "trace_sha256": (summary.get("trace") or {}).get("sha256"),
        **_frequency_columns(job, summary),
        **_thermal_columns(summary, thermal, cooldown),
        "coexec_members": [m.name for m in job.members] if job.is_coexec else [],
        "coexec_share_pct": [float((summary.get("components") or {}).get(m.name, {}).get("share_pct", 0.0))
                             for m in job.members] if job.is_coexec else [],
        **_clock_columns(clock, window),
        **power,
    }


def _clock_columns(clock: JobClock, window: dict[str, Any]) -> dict[str, Any]:
    """The offsets estimated before and after the job, and the one used: interpolated at the window's centre."""
    start, end = window.get("start_mono_ns"), window.get("end_mono_ns")
    centre = (start + end) / 2 if start is not None and end is not None else clock.before.at_board_ns
    return {
        "clock_offset_ns": int(round(clock.offset_at(centre))),
        "clock_uncertainty_ns": clock.uncertainty_ns,
        "clock_offset_before_ns": clock.before.offset_ns,
        "clock_offset_after_ns": clock.after.offset_ns,
    }


def _frequency_columns(job: Job, summary: dict[str, Any]) -> dict[str, Any]:
    """Requested frequency and, over the job's clusters, the lowest sampled one and the time below it."""
    domains = ((summary.get("platform") or {}).get("cpufreq") or {}).values()
    mins = [d["min_khz"] for d in domains if d.get("min_khz") is not None]
    below = [d["below_s"] for d in domains if d.get("below_s") is not None]
    return {
        "freq_requested": job.frequency,
        "freq_min_khz": min(mins) if mins else None,
        "freq_below_s": max(below) if below else None,
    }


def _thermal_columns(summary: dict[str, Any], thermal: ThermalSpec | None,
                     cooldown: Cooldown | None) -> dict[str, Any]:
    """The hottest of the SoC's zones at the window's start and over the window, the cool-down before the job."""
    zones = ((summary.get("platform") or {}).get("thermal") or {}).values()
    maxes = [z["max_mdegc"] for z in zones if z.get("max_mdegc") is not None]
    starts = [z["start_mdegc"] for z in zones if z.get("start_mdegc") is not None]
    said = bool(maxes) or cooldown is not None
    return {
        "temp_start_c": max(starts) / 1000 if starts else None,
        "temp_max_c": max(maxes) / 1000 if maxes else None,
        "cooldown_wait_s": cooldown.waited_s if cooldown is not None else None,
        "temp_simulated": (thermal is not None and thermal.simulated) if said else None,
    }


class BoardRunner:
    def __init__(
        self,
        run: RunDir,
        board: Board,
        facts: BoardFacts,
        git_rev: str,
        progress: SweepProgress,
        stop: threading.Event,
        retry: RetryPolicy = RetryPolicy(),
        idle_s: float = 0.0,
        membw_mb: float = 0.0,
        lock_lost: HoldLost | None = None,
        idle_settle_s: float = 0.0,
        cache: MeasurementCache | None = None,
    ):
        self.lock_lost = lock_lost if lock_lost is not None else HoldLost()
        self.cache = cache  # idle power and bandwidth measured by earlier sweeps (None: measure every run)
        self._idle_reused: set[str] = set()  # sources whose start idle an earlier run measured
        self.idle_s = idle_s
        self.idle_settle_s = idle_settle_s
        self._idle_rows: list[dict[str, Any]] = []  # this run's idle power of the board (both phases)
        self._idle_w: tuple[int, dict[tuple[str, str], float]] = (0, {})  # of how many rows, and what
        self.membw_mb = membw_mb
        self.retry = retry
        self._isolated = IsolatedBaselines()  # this run's VALID isolated throughputs (from the store on resume)
        self.run = run
        self.board = board
        self.facts = facts
        self.git_rev = git_rev
        self.progress = progress
        self.stop = stop
        self._cooldown: Cooldown | None = None  # before the current job
        self._next_attempt: dict[str, int] = {}  # job id -> its next attempt, after a failed store
        self._last_window_c: dict[str, float] | None = None  # zone -> hottest °C of the last measured job's window

    def run_jobs(self, jobs: list[Job], acc: SweepOutcome) -> None:
        """The board's jobs one at a time; transient failures are retried, a failing board quarantined."""
        pending = list(jobs)
        if self.board.emulated and pending:
            self.progress.board_emulated(self.board.name, self.board.emulated)
        simulated = sorted({m.name for j in pending for m in j.members if m.kind == "simulated"})
        if simulated:
            self.progress.board_emulated(self.board.name, timing_source(None, simulated) or "")
        try:
            self._isolated = IsolatedBaselines.from_store(self.run, self.board.name)
            transport = open_transport(self.board, self.facts)
            try:
                self._check_health(transport)
                offset = transport.clock_offset()
                self.run.journal({"board": self.board.name, "state": "clock", "offset_ns": offset.offset_ns,
                                  "uncertainty_ns": offset.uncertainty_ns, "t_wall": time.time()})
                with open_meter(self.board, self.run.path) as meter:
                    self._measure_idle(meter, transport, "start")
                    if self.membw_mb > 0:
                        self._measure_membw(transport, pending)
                    reused = self.cache.summary() if self.cache is not None else None
                    if reused:
                        self.progress.note(reused)
                    # a hold lost mid-job: the job in flight is aborted at once (its request raises)
                    with self.lock_lost.watch(lambda error: transport.abort(str(error))):
                        self._measure_jobs(pending, transport, meter, acc)
                    if not self.stop.is_set() and not self.lock_lost.is_set():
                        self._measure_idle(meter, transport, "end")
            finally:
                transport.close()
        except SocfarmError as exc:  # the board or its meter is unusable: quarantine it for this run
            self._quarantine(exc, pending, acc)
        except Exception as exc:  # noqa: BLE001 - a bug must not take the other boards' measurements down
            self._quarantine(SocfarmError(f"{self.board.name}: internal error: {type(exc).__name__}: {exc}"),
                             pending, acc, traceback.format_exc())

    def _measure_jobs(self, pending: list[Job], transport: Transport, meter: MeterSession | None,
                      acc: SweepOutcome) -> None:
        """Measure ``pending`` in order, each job stored behind the next one's measurement. A job leaves
        ``pending`` once it is stored or failed: what is left when this raises is the board's to fail."""
        behind = StoreBehind(f"{self.board.name}-store")
        try:
            while not self.stop.is_set():
                todo = [j for j in pending if j is not behind.job]
                if todo and todo[0].is_coexec and behind.job is not None:
                    self._settle(behind, pending, acc)  # the isolated baselines it needs may be in that store
                    continue
                if not todo:
                    if behind.job is None:
                        return
                    self._settle(behind, pending, acc)  # the last one (it may come back for a retry)
                    continue
                job = todo[0]
                self._cooldown = self._cool_down(transport)
                if self.stop.is_set():
                    break
                self._check_hold()  # another sweep may take the board: measure no more
                measured = self._run_with_retries(job, transport, meter, acc)
                if measured is None:  # failed, or stopped before a retry
                    pending.remove(job)
                settle = StepTimer()
                self._settle(behind, pending, acc)  # the job before, stored while this one was measured
                if measured is not None:
                    settle.lap("settle")
                    measured.steps_ms.update(settle.ms)
                    behind.submit(measured, lambda m: self._store(m, acc))
        finally:
            self._settle(behind, pending, acc, retry=False)
            behind.close()

    def _settle(self, behind: StoreBehind, pending: list[Job], acc: SweepOutcome, retry: bool = True) -> None:
        """Wait for the store in flight. Stored: the job leaves ``pending``. Failed: the job is measured again
        (a retryable error with attempts left), or failed; a lost hold ends the board's share, the job left in
        ``pending`` to fail with the others (after ``retry=False``: failed here, the share is ending)."""
        m, exc = behind.settle()
        if m is None:
            return
        if exc is None:
            pending.remove(m.job)
            return
        self.run.discard_incomplete(m.job.job_id)
        hold = self._hold_error() if self.lock_lost.is_set() else None
        if not isinstance(exc, (SocfarmError, OSError)):  # a bug: the board's internal error
            pending.remove(m.job)
            self._fail(m.job, exc, acc)
            raise exc
        if hold is not None and retry:
            raise hold from exc
        if not retry or not is_retryable(exc) or m.attempt >= self.retry.max_attempts:
            pending.remove(m.job)
            self._fail(m.job, hold or exc, acc)
            return
        self._next_attempt[m.job.job_id] = m.attempt + 1
        self.run.journal({"job_id": m.job.job_id, "state": "retry", "board": m.job.board, "attempt": m.attempt,
                          "error": error_class(exc), "message": str(exc), "delay_s": 0.0, "t_wall": time.time()})
        self.progress.note(f"{m.job.job_id}: storing attempt {m.attempt} failed ({error_class(exc)}), measuring "
                           f"it again")

    def _cool_down(self, transport: Transport) -> Cooldown | None:
        """The cool-down before a job. After a job whose window kept every zone below ``cooldown_c`` (the
        agent's samples), the board has been idle since and is cool: no reading over the link (one round trip
        per job less). After anything else (the first job, a failure, a hot window) the zones are read."""
        thermal, last = self.board.thermal, self._last_window_c
        self._last_window_c = None  # used once: a job that failed before its window ended leaves nothing to go by
        if (thermal is not None and thermal.cooldown_c is not None and last is not None
                and all(last.get(z, thermal.cooldown_c) < thermal.cooldown_c for z in thermal.zones)):
            return Cooldown(0.0, {z: last[z] for z in thermal.zones})
        return cool_down(self.board, transport, self.stop, self.progress.note, self.run.journal)

    def _hold_error(self) -> SocfarmError:
        return self.lock_lost.error or BoardLockLost(
            f"{self.board.name}: lost the lock on the board; another sweep may take the board, so its share of "
            "this sweep ends")

    def _check_hold(self) -> None:
        if self.lock_lost.is_set():
            raise self._hold_error()

    def _measure_idle(self, meter: MeterSession | None, transport: Transport, phase: str) -> None:
        """Idle power of the board (``phase`` start: before its first job, subtracted by the analysis; end:
        after its last, to see drift), each source after ``idle_settle_s`` with nothing running."""
        if self.idle_s <= 0:
            return
        if meter is not None:
            self._idle_part(f"{self.board.name}-meter-{phase}", phase, lambda: [
                meter_idle(meter, self.idle_s, self.idle_settle_s, self.stop)], fatal=phase == "start",
                transport=transport)
        if self.board.power_sensors is not None:
            self._idle_part(f"{self.board.name}-sensors-{phase}", phase, lambda: self._sensor_idle(transport),
                            fatal=False, transport=transport)

    def _idle_part(self, part: str, phase: str, measure, fatal: bool, transport: Transport | None = None) -> None:
        """One source's idle rows, stored once per run (kept across a resume). A failure of the supply
        meter before the first job quarantines the board (its jobs would have no energy); any other is
        journalled and noted: the report then says idle was not measured. Before the first job, an idle power
        that an earlier sweep measured and the cache still holds is copied instead; the run then measures no
        idle power after its last job either."""
        stored = self.run.path / "idle" / f"{part}.parquet"
        source = "meter" if "-meter-" in part else "sensor"
        if stored.exists():  # measured before a resume: its rows still define this board's idle power
            rows = pd.read_parquet(stored).to_dict("records")
            if phase == "start" and any(r.get("measured_run_id") not in (None, self.run.run_id) for r in rows):
                self._idle_reused.add(source)
            self._idle_rows += rows
            return
        if self.stop.is_set() or (phase == "end" and source in self._idle_reused):
            return
        reused = self.cache.idle(source, transport) if self.cache is not None and phase == "start" else None
        if reused is not None:
            rows = [{"run_id": self.run.run_id, "board": self.board.name, "phase": phase, **r} for r in reused.rows]
            write_measured(self.run, "idle", part, rows, reused.run_id, reused.measured_wall)
            self._idle_rows += rows
            self._idle_reused.add(source)
            self.run.journal({"board": self.board.name, "state": "idle", "source": source, "phase": phase,
                              "mean_power_w": sum(r["mean_power_w"] for r in rows), "cached": True,
                              "measured_run_id": reused.run_id, "measured_wall": reused.measured_wall,
                              "t_wall": time.time()})
            return
        try:
            rows = measure()
        except SocfarmError as exc:
            if fatal:
                raise
            self.run.journal({"board": self.board.name, "state": "idle_failed", "source": source, "phase": phase,
                              "message": str(exc), "t_wall": time.time()})
            self.progress.note(f"{self.board.name}: {phase} idle power of the {source} not measured: {exc}")
            return
        rows = [{"run_id": self.run.run_id, "board": self.board.name, "phase": phase, **r} for r in rows]
        wall = time.time()
        write_measured(self.run, "idle", part, rows, self.run.run_id, wall)
        if self.cache is not None and phase == "start":
            self.cache.store_idle(source, rows, self.run.run_id, wall, transport)
        self._idle_rows += rows
        self.run.journal({"board": self.board.name, "state": "idle", "source": source, "phase": phase,
                          "mean_power_w": sum(r["mean_power_w"] for r in rows), "t_wall": time.time()})

    def _sensor_idle(self, transport: Transport) -> list[dict[str, Any]]:
        """Per-rail idle power from the board's own sensors, sampled by the agent with nothing running."""
        self.stop.wait(self.idle_settle_s)
        spec = {"spec_version": 1, "job_id": f"idle-{self.board.name}", "duration_s": self.idle_s,
                "output_dir": f"{self.board.work_dir}/jobs/{self.run.run_id}/idle",
                "sysfs_root": self.board.sysfs_root, "power": self._power_spec()}
        outcome = transport.run_agent(spec, None, self.idle_s + 120.0, command="idle")
        summary = outcome.raise_for_failure(f"{self.board.name}/idle")
        try:
            return sensor_idle_rows(summary, self.idle_settle_s)
        except (KeyError, TypeError, ValueError) as exc:
            raise AgentError(f"{self.board.name}/idle: malformed idle summary: {exc}") from None

    def _power_spec(self) -> dict[str, Any] | None:
        """The agent's ``power`` block for the board's on-board sensors (None: it has none)."""
        sensors = self.board.power_sensors
        if sensors is None:
            return None
        spec: dict[str, Any] = {"kind": sensors.kind, "rails": dict(sensors.rails)}
        if sensors.update_period_us:
            spec["update_period_us"] = sensors.update_period_us
        return spec

    def _measure_membw(self, transport: Transport, jobs: list[Job]) -> None:
        """Memory bandwidth per CPU component of the board (once per run), for the roofline.

        A failure is noted and journalled, not fatal: the jobs do not depend on it."""
        for member in cpu_components(jobs):
            part = f"{self.board.name}-{member.name}"
            if (self.run.path / "membw" / f"{part}.parquet").exists() or self.stop.is_set():
                continue  # measured before a resume
            reused = self.cache.membw(member, transport) if self.cache is not None else None
            if reused is not None:  # an earlier sweep's figures, still valid: copied with where they come from
                rows = [{"run_id": self.run.run_id, "board": self.board.name, "component": member.name, **r}
                        for r in reused.rows]
                write_measured(self.run, "membw", part, rows, reused.run_id, reused.measured_wall)
                self.run.journal({"board": self.board.name, "state": "membw", "component": member.name,
                                  "triad_gb_s": next(r["gb_per_s"] for r in rows if r["kernel"] == "triad"),
                                  "cached": True, "measured_run_id": reused.run_id,
                                  "measured_wall": reused.measured_wall, "t_wall": time.time()})
                continue
            try:
                out = transport.run(membw_command(self.facts, member.cpus, self.membw_mb), timeout_s=300.0)
                rows = membw_rows(self.run.run_id, self.board.name, member.name, out)
            except SocfarmError as exc:
                self.run.journal({"board": self.board.name, "state": "membw_failed", "component": member.name,
                                  "message": str(exc), "t_wall": time.time()})
                self.progress.note(f"{self.board.name}/{member.name}: memory bandwidth not measured: {exc}")
                continue
            wall = time.time()
            write_measured(self.run, "membw", part, rows, self.run.run_id, wall)
            if self.cache is not None:
                self.cache.store_membw(member, rows, self.run.run_id, wall, transport)
            self.run.journal({"board": self.board.name, "state": "membw", "component": member.name,
                              "triad_gb_s": rows[-1]["gb_per_s"], "t_wall": time.time()})

    def _check_health(self, transport: Transport) -> None:
        problems = judge_health(self.board, transport.run(health_command(self.board, self.facts.agent_dir)))
        if problems:
            raise BoardUnhealthy(f"{self.board.name} failed its health check: {'; '.join(problems)}")

    def _quarantine(self, exc: Exception, pending: list[Job], acc: SweepOutcome, trace: str | None = None) -> None:
        acc.quarantined[self.board.name] = str(exc)
        entry = {"board": self.board.name, "state": "quarantined", "error": error_class(exc),
                 "message": str(exc), "t_wall": time.time()}
        if trace is not None:  # a bug of ours: keep where it happened for the report of it
            entry["traceback"] = trace
        self.run.journal(entry)
        where = " (traceback in the run's journal.jsonl)" if trace is not None else ""
        self.progress.note(f"{self.board.name} quarantined for the rest of the run: {exc}{where}")
        for job in pending:
            self._fail(job, exc, acc)

    def _run_with_retries(self, job: Job, transport: Transport, meter: MeterSession | None,
                          acc: SweepOutcome) -> MeasuredJob | None:
        """The job measured (its window over, its files here), or None: failed, or stopped before a retry."""
        for attempt in range(self._next_attempt.pop(job.job_id, 1), self.retry.max_attempts + 1):
            try:
                self._check_hold()
                return self._measure(job, attempt, transport, meter)
            except (SocfarmError, OSError) as exc:
                self.run.discard_incomplete(job.job_id)
                if self.lock_lost.is_set():  # the job was aborted, or failed as its hold went: the board's end
                    raise self._hold_error() from exc
                last = attempt == self.retry.max_attempts
                if is_board_failure(exc) and last:
                    raise  # the board stays unreachable: quarantine it
                if not is_retryable(exc) or last:
                    self._fail(job, exc, acc)
                    return None
                delay = self.retry.delay_s(attempt)
                self.run.journal({"job_id": job.job_id, "state": "retry", "board": job.board, "attempt": attempt,
                                  "error": error_class(exc), "message": str(exc), "delay_s": delay,
                                  "t_wall": time.time()})
                self.progress.note(f"{job.job_id}: attempt {attempt} failed ({error_class(exc)}), retrying in "
                                   f"{delay:.0f} s")
                transport.close()  # reconnect on the next attempt
                if self.stop.wait(delay):
                    return None
        return None

    def _fail(self, job: Job, exc: Exception, acc: SweepOutcome) -> None:
        acc.failed[job.job_id] = str(exc)
        self.run.journal({"job_id": job.job_id, "state": "failed", "board": job.board, "t_wall": time.time(),
                          "error": error_class(exc), "message": str(exc)})
        self.progress.job_failed(job, str(exc))

    def _spec(self, job: Job, attempt: int) -> dict[str, Any]:
        work = self.board.work_dir
        spec = job.agent_spec(
            model_path=f"{work}/models/{job.model_file}",
            output_dir=f"{work}/jobs/{self.run.run_id}/{job.job_id}/attempt-{attempt}",
        )
        spec["sysfs_root"] = self.board.sysfs_root
        if job.is_coexec:
            isolated = self._isolated.for_job(job)
            if isolated is not None:
                spec["isolated_ips"] = isolated  # measured earlier in this run: the agent reports the gains
        power = self._power_spec()
        if power is not None:
            spec["power"] = power
        return spec

    def _power(self, m: MeasuredJob, row: dict[str, Any]) -> pd.DataFrame:
        """The job's power samples for the power table (the agent's on-board sensors, the supply meter's
        around the window); ``row`` gets its power figures, and the reasons that make it INVALID."""
        job, summary, meter, clock = m.job, m.summary, m.meter, m.clock
        samples, source, meter_figures = [], None, None
        if m.power_csv is not None:
            samples.append(sensor_samples(m.power_csv, self.run.run_id, job.job_id))
            sensors = self.board.power_sensors
            source = PowerSource(summary["power"].get("kind") or sensors.kind, "rails", sensors.simulated)
        if meter is not None and m.capture is not None:
            # a supply meter measures the whole board: it takes precedence for the row's figures
            window = (summary["window"]["start_mono_ns"], summary["window"]["end_mono_ns"])
            rows, meter_figures = meter.samples(m.capture, window, clock, self.run.run_id, job.job_id)
            samples.append(rows)
            source = PowerSource(self.board.meter.kind, self.board.meter.measures, meter.simulated)
        power = pd.concat(samples, ignore_index=True) if samples else empty_samples()
        if source is None:
            return power
        cols, reasons = power_figures(row, power, self._start_idle_w(), source, meter_figures)
        row.update(cols)
        if meter is not None:
            reasons += clock_reasons(clock, (clock.after.at_board_ns - clock.before.at_board_ns) / 1e9)
        if reasons:
            row["reasons"] = [*row["reasons"], *reasons]
            row["verdict"] = "INVALID"
        return power

    def _start_idle_w(self) -> dict[tuple[str, str], float]:
        """The board's start idle power per (source, rail), from this run's idle rows (computed once per
        change of them, not per job)."""
        n = len(self._idle_rows)
        if self._idle_w[0] != n:
            self._idle_w = (n, start_idle_w(idle_frame(self._idle_rows), self.board.name))
        return self._idle_w[1]

    def _fetch_verified(self, transport: Transport, block: dict[str, Any], local_dir: Path, job: Job,
                        name: str) -> Path:
        local = local_dir / name
        transport.fetch(block["path"], local)
        if sha256_file(local) != block["sha256"]:
            raise AgentError(f"{job.job_id}: {name} checksum mismatch after transfer", retryable=True,
                             error_class="TraceError")
        return local

    def _measure(self, job: Job, attempt: int, transport: Transport, meter: MeterSession | None) -> MeasuredJob:
        """One attempt at the job on the board: its window, the clock around it, the meter's capture, and its
        files fetched and verified. Nothing is stored yet (:meth:`_store`)."""
        run = self.run
        run.journal({"job_id": job.job_id, "state": "started", "board": job.board, "attempt": attempt,
                     "t_wall": time.time()})
        self.progress.job_started(job)
        timeout_s = job.rules.max_duration_s * 2 + 300
        steps = StepTimer()
        local_dir = run.job_dir(job.job_id) / f"attempt-{attempt}"
        local_dir.mkdir(parents=True, exist_ok=True)
        with open(local_dir / "events.jsonl", "a", encoding="utf-8") as events_file:

            def on_event(event: dict[str, Any]) -> None:
                events_file.write(json.dumps(event, separators=(",", ":")) + "\n")
                self.progress.agent_event(job, event)

            probes = CLOCK_PROBES_METER if meter is not None else CLOCK_PROBES
            before = transport.clock_offset(probes)
            steps.lap("clock_before")
            if meter is not None:
                meter.begin()
            try:
                outcome = transport.run_agent(self._spec(job, attempt), on_event, timeout_s)
                summary = outcome.raise_for_failure(f"{job.board}/{job.job_id}")
                steps.lap("agent")
                clock = JobClock(before, transport.clock_offset(probes))
                steps.lap("clock_after")
                capture = None
                if meter is not None:  # read the meter until it holds a point at or past the window's end
                    end_s = clock.to_controller_ns(summary["window"]["end_mono_ns"]) / 1e9
                    capture = meter.finish(until_s=end_s)
                    steps.lap("meter")
            except BaseException:
                if meter is not None:
                    meter.abandon()
                raise
        trace = self._fetch_verified(transport, summary["trace"], local_dir, job, "trace.csv")
        power_csv = (self._fetch_verified(transport, summary["power"], local_dir, job, "power.csv")
                     if summary.get("power") else None)
        steps.lap("fetch")
        zones = (summary.get("platform") or {}).get("thermal") or {}
        self._last_window_c = {z: v["max_mdegc"] / 1000 for z, v in zones.items() if v.get("max_mdegc") is not None}
        return MeasuredJob(job, attempt, outcome, summary, clock, meter, capture, self._cooldown, trace, power_csv,
                           steps.ms)

    def _store(self, m: MeasuredJob, acc: SweepOutcome) -> None:
        """A measured job's rows (results, latencies, power with its figures) written, then ``done``
        journalled: on the board's store thread, while the board measures its next job."""
        run, job = self.run, m.job
        store = StepTimer()
        latencies = _trace_frame(m.trace_csv, run.run_id, job.job_id)
        row = result_row(run.run_id, job, self.facts, m.outcome, self.git_rev, m.clock, no_power(),
                         self.board.thermal, m.cooldown,
                         timing_source(self.board.emulated, [c.name for c in job.members if c.kind == "simulated"]))
        power = self._power(m, row)

        self._check_hold()  # lost before the window's figures are stored: another sweep may have measured too
        if len(power):
            run.write_table("power", job.job_id, power)
        run.write_table("latencies", job.job_id, latencies)
        run.write_table("results", job.job_id, [row])
        store.lap("store")
        steps_ms = {**m.steps_ms, **store.ms}
        run.journal({"job_id": job.job_id, "state": "done", "board": job.board, "attempt": m.attempt,
                     "t_wall": time.time(), "verdict": row["verdict"], "steps_ms": steps_ms})
        acc.done.append(job.job_id)
        acc.status_rows[job.job_id] = {c: row[c] for c in STATUS_COLUMNS}
        if row["verdict"] == "VALID" and not job.is_coexec:
            self._isolated.add(job, row["throughput_ips"])
        if row["verdict"] != "VALID":
            acc.invalid.append(job.job_id)
        self.progress.job_done(job, row)

"""`orchestrator sweep`: validate everything, then provision, measure, store, report.

Nothing is written before all inputs are validated (``prepare``); after that
every finished job is stored at once (``RunDir.write_table``), so a crash
loses at most the job that was running.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from orchestrator.config.experiment import ExperimentsFile
from orchestrator.config.inventory import Board, Lab
from orchestrator.config.load import load_experiments, load_inventory
from orchestrator.errors import AgentError, ProvisionError, SocfarmError, ZooError
from orchestrator.jobs import Job
from orchestrator.meters.session import MeterSession, open_meter
from orchestrator.planner import plan
from orchestrator.progress import SweepProgress
from orchestrator.provenance import git_revision, new_run_id
from orchestrator.provision.runner import BoardFacts, describe_event, provision
from orchestrator.report.html import write_report
from orchestrator.results.schema import SCHEMA_VERSION
from orchestrator.results.store import RunDir, Store
from orchestrator.transport.agent import AgentOutcome
from orchestrator.transport.local import LocalTransport
from orchestrator.checksum import sha256_file
from orchestrator.zoo.manifest import Manifest, load_manifest, verify_files


@dataclass
class SweepPlan:
    experiments_path: Path
    inventory_path: Path
    spec: ExperimentsFile
    lab: Lab
    zoo_dir: Path
    manifest: Manifest
    jobs: list[Job]

    def boards(self) -> list[Board]:
        used = {j.board for j in self.jobs}
        return [b for b in self.lab.boards if b.name in used]

    def model_files(self) -> list[dict[str, str]]:
        seen: dict[str, str] = {}
        for j in self.jobs:
            seen[j.model_file] = j.model_sha256
        return [{"file": f, "sha256": s} for f, s in sorted(seen.items())]


def prepare(experiments_path: Path, inventory_path: Path) -> SweepPlan:
    """Load and check every input; raise before anything is written."""
    experiments_path = Path(experiments_path)
    spec, doc = load_experiments(experiments_path)
    lab = load_inventory(Path(inventory_path))
    zoo_dir = (experiments_path.parent / spec.zoo).resolve()
    manifest = load_manifest(zoo_dir / "manifest.json")
    jobs = plan(spec, lab, manifest, doc.where)
    used = {(j.model, j.dtype) for j in jobs}
    needed = manifest.model_copy(update={"models": [m for m in manifest.models if (m.name, m.dtype) in used]})
    problems = verify_files(needed, zoo_dir)
    if problems:
        raise ZooError(
            f"the model zoo in {zoo_dir} does not match its manifest (rebuild it with `orchestrator zoo build`):\n  "
            + "\n  ".join(problems)
        )
    return SweepPlan(experiments_path, Path(inventory_path), spec, lab, zoo_dir, manifest, jobs)


@dataclass
class SweepOutcome:
    run: RunDir
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    invalid: list[str] = field(default_factory=list)
    report: Path | None = None


def _trace_frame(path: Path, run_id: str, job_id: str) -> pd.DataFrame:
    try:
        trace = pd.read_csv(path, dtype={"index": "int64", "start_mono_ns": "int64", "end_mono_ns": "int64"})
    except (OSError, ValueError) as exc:
        raise AgentError(f"{job_id}: unreadable trace {path}: {exc}", retryable=True, error_class="TraceError")
    if list(trace.columns) != ["index", "start_mono_ns", "end_mono_ns"]:
        raise AgentError(f"{job_id}: trace {path} has columns {list(trace.columns)}", error_class="TraceError")
    trace.insert(0, "job_id", job_id)
    trace.insert(0, "run_id", run_id)
    trace["latency_ms"] = (trace["end_mono_ns"] - trace["start_mono_ns"]) / 1e6
    return trace


def result_row(
    run: RunDir, job: Job, facts: BoardFacts, outcome: AgentOutcome, git_rev: str, power: dict[str, Any]
) -> dict[str, Any]:
    summary = outcome.summary or {}
    started = outcome.started or {}
    runtime = started.get("runtime", {})
    lat = summary.get("latency_ms", {})
    window = summary.get("window", {})
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run.run_id,
        "job_id": job.job_id,
        "experiment": job.experiment,
        "board": job.board,
        "soc": job.soc,
        "hostname": str(started.get("hostname", facts.hostname)),
        "arch": facts.arch,
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
        "trace_sha256": summary.get("trace", {}).get("sha256"),
        **power,
    }


class SweepRunner:
    def __init__(
        self,
        plan: SweepPlan,
        store: Store,
        state_dir: Path,
        reports_dir: Path,
        progress: SweepProgress,
        run_id: str | None = None,
    ):
        self.plan = plan
        self.store = store
        self.state_dir = Path(state_dir)
        self.reports_dir = Path(reports_dir)
        self.progress = progress
        self.run_id = run_id or new_run_id()
        self.git_rev = git_revision()
        self.stop = threading.Event()

    # -- setup ----------------------------------------------------------------
    def _create_run(self) -> RunDir:
        p = self.plan
        run = self.store.create_run(
            self.run_id,
            {
                "created_wall": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "git_revision": self.git_rev,
                "experiments_file": str(p.experiments_path.resolve()),
                "inventory_file": str(p.inventory_path.resolve()),
                "zoo_dir": str(p.zoo_dir),
                "zoo_builder_hash": p.manifest.builder_hash,
                "zoo_weights": p.manifest.weights,
                "boards": {b.name: b.model_dump(mode="json", by_alias=True) for b in p.boards()},
                "jobs": [j.job_id for j in p.jobs],
                "status": "running",
            },
        )
        shutil.copy2(p.experiments_path, run.path / "inputs" / p.experiments_path.name)
        shutil.copy2(p.inventory_path, run.path / "inputs" / p.inventory_path.name)
        shutil.copy2(p.zoo_dir / "manifest.json", run.path / "inputs" / "zoo-manifest.json")
        for job in p.jobs:
            run.journal({"job_id": job.job_id, "state": "planned", "board": job.board, "t_wall": time.time()})
        return run

    def _provision(self, run: RunDir) -> tuple[dict[str, BoardFacts], dict[str, str]]:
        boards = [b.name for b in self.plan.boards()]
        self.progress.note(f"provisioning {', '.join(boards)} (ansible-runner, playbooks/site.yml)")

        def on_event(event: dict[str, Any]) -> None:
            line = describe_event(event)
            if line:
                self.progress.provision_step(line)

        result = provision(
            self.plan.inventory_path,
            self.state_dir,
            limit=boards,
            extravars={"models_files": self.plan.model_files(), "models_src_dir": str(self.plan.zoo_dir)},
            on_event=on_event,
            cancel=self.stop,
        )
        run.update_meta(
            provision={"status": result.status, "rc": result.rc, "failed": result.failed,
                       "facts": {k: v.__dict__ for k, v in result.facts.items()}}
        )
        missing = {b: "no facts after provisioning" for b in boards if b not in result.facts and b not in result.failed}
        return result.facts, {**result.failed, **missing}

    # -- execution ------------------------------------------------------------
    def _run_job(self, run: RunDir, job: Job, facts: BoardFacts, meter: MeterSession | None, outcome_acc: SweepOutcome):
        transport = LocalTransport(facts) if self._board(job.board).connection == "local" else None
        if transport is None:
            raise ProvisionError(f"{job.board}: only local boards are supported by this version")
        board_dir = self._board(job.board).work_dir
        remote_out = f"{board_dir}/jobs/{run.run_id}/{job.job_id}"
        spec = job.agent_spec(model_path=f"{board_dir}/models/{job.model_file}", output_dir=remote_out)
        run.journal({"job_id": job.job_id, "state": "started", "board": job.board, "t_wall": time.time()})
        self.progress.job_started(job)
        events_path = run.job_dir(job.job_id) / "events.jsonl"

        with open(events_path, "a", encoding="utf-8") as events_file:
            def on_event(event: dict[str, Any]) -> None:
                events_file.write(json.dumps(event, separators=(",", ":")) + "\n")
                self.progress.agent_event(job, event)

            timeout_s = job.rules.max_duration_s * 2 + 300
            if meter is not None:
                meter.begin_job(timeout_s)
            try:
                outcome = transport.run_agent(spec, on_event, timeout_s)
            finally:
                power_trace = meter.end_job() if meter is not None else None
        summary = outcome.raise_for_failure(f"{job.board}/{job.job_id}")
        local_trace = run.job_dir(job.job_id) / "trace.csv"
        transport.fetch(summary["trace"]["path"], local_trace)
        if sha256_file(local_trace) != summary["trace"]["sha256"]:
            raise AgentError(f"{job.job_id}: trace checksum mismatch after transfer", retryable=True,
                             error_class="TraceError")
        latencies = _trace_frame(local_trace, run.run_id, job.job_id)
        power_cols, power_rows = (meter.summarize(power_trace, summary, run.run_id, job.job_id)
                                  if meter is not None else (MeterSession.no_meter(), None))
        row = result_row(run, job, facts, outcome, self.git_rev, power_cols)
        if power_rows is not None:
            run.write_table("power", job.job_id, power_rows)
        run.write_table("latencies", job.job_id, latencies)
        run.write_table("results", job.job_id, [row])
        run.journal({"job_id": job.job_id, "state": "done", "board": job.board, "t_wall": time.time(),
                     "verdict": row["verdict"]})
        outcome_acc.done.append(job.job_id)
        if row["verdict"] != "VALID":
            outcome_acc.invalid.append(job.job_id)
        self.progress.job_done(job, row)

    def _board(self, name: str) -> Board:
        board = self.plan.lab.board(name)
        assert board is not None
        return board

    def _run_board(self, run: RunDir, board: Board, jobs: list[Job], facts: BoardFacts, acc: SweepOutcome) -> None:
        pending = list(jobs)
        try:
            with open_meter(board, run.path) as meter:
                while pending and not self.stop.is_set():
                    job = pending.pop(0)
                    try:
                        self._run_job(run, job, facts, meter, acc)
                    except (SocfarmError, OSError) as exc:
                        self._fail(run, job, exc, acc)
        except SocfarmError as exc:  # the board's meter failed: its remaining jobs cannot be measured
            for job in pending:
                self._fail(run, job, exc, acc)

    def _fail(self, run: RunDir, job: Job, exc: Exception, acc: SweepOutcome) -> None:
        acc.failed[job.job_id] = str(exc)
        run.journal({"job_id": job.job_id, "state": "failed", "board": job.board, "t_wall": time.time(),
                     "error": getattr(exc, "error_class", type(exc).__name__), "message": str(exc)})
        self.progress.job_failed(job, str(exc))

    def run(self) -> SweepOutcome:
        run = self._create_run()
        acc = SweepOutcome(run=run)
        try:
            facts, failed_boards = self._provision(run)
            by_board: dict[str, list[Job]] = {}
            for job in self.plan.jobs:
                by_board.setdefault(job.board, []).append(job)
            for board, reason in failed_boards.items():
                for job in by_board.pop(board, []):
                    acc.failed[job.job_id] = f"provisioning failed: {reason}"
                    run.journal({"job_id": job.job_id, "state": "failed", "board": board, "t_wall": time.time(),
                                 "error": "ProvisionError", "message": reason})
            self.progress.start_jobs({b: len(js) for b, js in by_board.items()})
            with ThreadPoolExecutor(max_workers=max(1, len(by_board))) as pool:
                futures = [
                    pool.submit(self._run_board, run, self._board(b), js, facts[b], acc) for b, js in by_board.items()
                ]
                for f in futures:
                    f.result()
        except KeyboardInterrupt:
            self.stop.set()
            run.update_meta(status="interrupted")
            raise
        finally:
            self.progress.close()
        run.update_meta(status="finished", finished_wall=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        done=len(acc.done), failed=len(acc.failed), invalid=len(acc.invalid))
        if acc.done:
            acc.report = write_report(run, self.reports_dir / run.run_id)
        return acc


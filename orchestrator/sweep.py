"""`orchestrator sweep`: validate everything, then provision, measure, store, report.

Nothing is written before all inputs are validated (``prepare``); after that
every finished job is stored at once (``RunDir.write_table``), so a crash
loses at most the job that was running.
"""

from __future__ import annotations

import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.board_cache import MeasurementCache
from orchestrator.board_runner import BoardRunner, SweepOutcome
from orchestrator.config.experiment import ExperimentsFile
from orchestrator.config.inventory import Board, Lab
from orchestrator.config.load import load_experiments, load_inventory
from orchestrator.errors import ConfigError, SocfarmError, ZooError
from orchestrator.jobs import Job
from orchestrator.planner import plan
from orchestrator.progress import SweepProgress
from orchestrator.provenance import git_revision, new_run_id
from orchestrator.provision.runner import BoardFacts, describe_event, provision, save_facts
from orchestrator.provision.stamps import already_provisioned, board_stamps, save_stamps
from orchestrator.report.background import start_report, wait_for_pending
from orchestrator.results.store import RunDir, Store
from orchestrator.resume_check import board_entry, changed_inputs, write_job_shapes
from orchestrator.scheduler.board_lock import BoardLock
from orchestrator.scheduler.leases import HoldLost, LeaseHeld, LeaseKeeper, LeaseTable
from orchestrator.scheduler.retry import error_class
from orchestrator.zoo.add import commit, current_manifest, merged
from orchestrator.zoo.listed import check_listed
from orchestrator.zoo.manifest import Manifest, load_manifest, verify_files


def prepare_resume(store: Store, run_id: str) -> tuple[RunDir, "SweepPlan"]:
    """The run to continue and its plan, re-made from the same inputs (refused if they changed)."""
    run = store.open_run(run_id)
    meta = run.meta
    experiments = Path(meta["experiments_file"])
    stored = run.path / "inputs" / experiments.name
    if not experiments.exists() or experiments.read_bytes() != stored.read_bytes():
        raise ConfigError(f"cannot resume {run_id}: {experiments} changed since the run started "
                          f"(the run used the copy in {stored})")
    plan = prepare(experiments, Path(meta["inventory_file"]))
    if [j.job_id for j in plan.jobs] != meta["jobs"]:
        raise ConfigError(f"cannot resume {run_id}: the inventory or zoo now plans different jobs")
    changed = changed_inputs(run, plan.jobs, plan.boards())
    if changed:
        raise ConfigError(f"cannot resume {run_id}: inputs that shape its jobs changed since the run started "
                          f"(restore them, or start a new run):\n  " + "\n  ".join(changed))
    return run, plan


REPORT_MODES = ("wait", "background", "none")


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
    # models listed by path: checked now, added to the zoo only once the whole plan is valid
    spec, adding = check_listed(spec, doc.where, experiments_path.parent, zoo_dir)
    manifest = merged(current_manifest(zoo_dir), adding) if adding else load_manifest(zoo_dir / "manifest.json")
    jobs = plan(spec, lab, manifest, doc.where)
    if adding:
        manifest = commit(zoo_dir, adding)
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
class _Held:
    """A leased board: this controller's lease and the board's own lock; ``lost`` once either cannot be kept."""

    keeper: LeaseKeeper
    lock: BoardLock
    lost: HoldLost

    def close(self) -> None:
        self.lock.release()
        self.keeper.close()


class SweepRunner:
    def __init__(
        self,
        plan: SweepPlan,
        store: Store,
        state_dir: Path,
        reports_dir: Path,
        progress: SweepProgress,
        run_id: str | None = None,
        lease_wait_s: float = 600.0,
        reprovision: bool = False,
        report: str = "wait",
        power_cap_w: float | None = None,
    ):
        if report not in REPORT_MODES:
            raise ValueError(f"report mode {report!r}: one of {', '.join(REPORT_MODES)}")
        self.report_mode = report
        self.power_cap_w = power_cap_w
        self.lease_wait_s = lease_wait_s
        self.reprovision = reprovision
        self.leases = LeaseTable(Path(state_dir) / "leases")
        self.plan = plan
        self.store = store
        self.state_dir = Path(state_dir)
        self.reports_dir = Path(reports_dir)
        self.progress = progress
        self.run_id = run_id or new_run_id()
        self.git_rev = git_revision()
        self.stop = threading.Event()
        self._refused: dict[str, str] = {}  # board -> error class of why it could not be leased

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
                "boards": {b.name: board_entry(b) for b in p.boards()},
                "jobs": [j.job_id for j in p.jobs],
                "status": "running",
            },
        )
        shutil.copy2(p.experiments_path, run.path / "inputs" / p.experiments_path.name)
        shutil.copy2(p.inventory_path, run.path / "inputs" / p.inventory_path.name)
        shutil.copy2(p.zoo_dir / "manifest.json", run.path / "inputs" / "zoo-manifest.json")
        write_job_shapes(run, p.jobs)
        for job in p.jobs:
            run.journal({"job_id": job.job_id, "state": "planned", "board": job.board, "t_wall": time.time()})
        return run

    def _provision(self, run: RunDir, boards: list[str]) -> tuple[dict[str, BoardFacts], dict[str, str]]:
        """Provision the boards that need it; a board last provisioned with the same inputs is skipped."""
        stamps = board_stamps([self._board(b) for b in boards])
        current = {} if self.reprovision else already_provisioned(self.state_dir, stamps, self.plan.model_files())
        todo = [b for b in boards if b not in current]
        if current:
            self.progress.note(f"already provisioned with these inputs: {', '.join(sorted(current))} "
                               "(--reprovision to run the playbooks anyway)")
        if not todo:
            run.update_meta(provision={"status": "skipped", "skipped": sorted(current)})
            return current, {}
        self.progress.note(f"provisioning {', '.join(todo)} (ansible-runner, playbooks/site.yml)")

        def on_event(event: dict[str, Any]) -> None:
            line = describe_event(event)
            if line:
                self.progress.provision_step(line)

        result = provision(
            self.plan.inventory_path,
            self.state_dir,
            limit=todo,
            extravars={
                "models_files": self.plan.model_files(),
                "models_src_dir": str(self.plan.zoo_dir),
                "socfarm_controller_cache": str((self.state_dir / "cache").resolve()),
            },
            on_event=on_event,
            cancel=self.stop,
        )
        run.update_meta(
            provision={"status": result.status, "rc": result.rc, "failed": result.failed, "skipped": sorted(current),
                       "facts": {k: v.__dict__ for k, v in result.facts.items()}}
        )
        save_facts(self.state_dir, result.facts)
        save_stamps(self.state_dir, {b: stamps[b] for b in result.facts if b not in result.failed},
                    self.plan.model_files())
        missing = {b: "no facts after provisioning" for b in todo if b not in result.facts and b not in result.failed}
        return {**current, **result.facts}, {**result.failed, **missing}

    def _board(self, name: str) -> Board:
        board = self.plan.lab.board(name)
        assert board is not None
        return board

    def _run_boards(
        self, run: RunDir, by_board: dict[str, list[Job]], facts: dict[str, BoardFacts], acc: SweepOutcome,
        lock_lost: dict[str, HoldLost],
    ) -> None:
        """Every board in its own thread, its jobs one at a time; Ctrl-C lets running jobs end."""
        pool = ThreadPoolExecutor(max_workers=max(1, len(by_board)), thread_name_prefix="board")

        def share(runner: BoardRunner, jobs: list[Job]) -> None:
            runner.run_jobs(jobs, acc)
            if not self._compaction_deferred():
                run.try_compact([j.job_id for j in jobs])  # the board's finished jobs: one file per table

        futures = [
            pool.submit(share, BoardRunner(run, self._board(b), facts[b], self.git_rev, self.progress, self.stop,
                                           idle_s=self.plan.spec.idle_s, membw_mb=self.plan.spec.membw_mb,
                                           lock_lost=lock_lost.get(b), idle_settle_s=self.plan.spec.idle_settle_s,
                                           cache=self._cache(b, facts[b])),
                        jobs)
            for b, jobs in by_board.items()
        ]
        try:
            for future in futures:
                future.result()
        except KeyboardInterrupt:
            self.stop.set()  # no new job starts; the running ones see the same SIGINT and stop
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _compaction_deferred(self) -> bool:
        """With a report written in the background, that process moves the run's parts into the store's
        dataset (``orchestrator report --compact``) before it reads them: the sweep's result is not kept
        waiting for it. Until then the parts are read where they are; a writer that dies leaves them for the
        next compaction (``--resume``, ``orchestrator compact``)."""
        return self.report_mode == "background"

    def _cache(self, board: str, facts: BoardFacts) -> MeasurementCache:
        """The board's idle power and bandwidth as earlier sweeps of this --state measured them."""
        spec = self.plan.spec
        return MeasurementCache(self.state_dir, self._board(board), facts, idle_s=spec.idle_s,
                                idle_settle_s=spec.idle_settle_s, membw_mb=spec.membw_mb,
                                idle_max_age_h=spec.idle_max_age_h, membw_max_age_h=spec.membw_max_age_h,
                                note=self.progress.note)

    def _lease(self, run: RunDir, boards: list[str], acc: SweepOutcome) -> dict[str, "_Held"]:
        """Lease every board (waiting up to lease_wait_s for busy ones); unleased boards are reported.

        Boards are held in the order of their names: while a board is busy, the boards after it that this sweep
        got are given back, and tried again only once it is held. Two sweeps that want the same boards then never
        each hold a part and wait for the other's (until ``lease_wait_s``): the one that holds the first board
        they share gets the rest of them too."""
        held: dict[str, _Held] = {}
        deadline = time.monotonic() + self.lease_wait_s
        waiting = list(boards)
        announced = False
        blocked: str | None = None  # the first board found busy: none after it is tried until it is held
        while waiting:
            trying = [b for b in waiting if blocked is None or b <= blocked]
            # each board's lock is an SSH session to open: all at once, not one after another
            with ThreadPoolExecutor(max_workers=len(trying), thread_name_prefix="lease") as pool:
                attempts = {board: pool.submit(self._take, board, run.run_id) for board in trying}
            got: dict[str, _Held] = {}
            for board, attempt in attempts.items():
                try:
                    got[board] = attempt.result()
                except LeaseHeld as exc:
                    if time.monotonic() >= deadline:
                        self._refuse(run, board, exc, acc)
                        waiting.remove(board)
                    elif not announced:
                        self.progress.note(f"waiting for {exc}")
                        announced = True
                    continue
                except SocfarmError as exc:  # its lock cannot be taken at all (unreachable): no use waiting
                    self._refuse(run, board, exc, acc)
                    waiting.remove(board)
                    continue
                waiting.remove(board)
            busy = [b for b in trying if b in waiting]
            blocked = min(busy) if busy else None
            for board in sorted(b for b in [*held, *got] if blocked is not None and b > blocked):
                h = held.pop(board, None) or got.pop(board)  # after a busy board: given back, waited for
                h.close()
                waiting.append(board)
                run.journal({"board": board, "state": "given_back", "waiting_for": blocked, "t_wall": time.time()})
            for board, h in got.items():
                held[board] = h
                run.journal({"board": board, "state": "leased", "token": h.keeper.lease.token,
                             "t_wall": time.time()})
            if busy and self.stop.wait(1.0):
                break
        return held

    def _take(self, board: str, owner: str) -> "_Held":
        """The lease in this controller's table, then the lock on the board (sweeps of other controllers or
        --state folders see only that one)."""
        lost = HoldLost()
        keeper = LeaseKeeper(self.leases, board, owner, lost=lost)
        try:
            lock = BoardLock(self._board(board), owner, lost=lost).acquire()
        except BaseException:
            keeper.close()
            raise
        return _Held(keeper, lock, lost)

    def _refuse(self, run: RunDir, board: str, exc: Exception, acc: SweepOutcome) -> None:
        acc.quarantined[board] = str(exc)
        self._refused[board] = error_class(exc)
        run.journal({"board": board, "state": "lease_refused", "error": error_class(exc), "message": str(exc),
                     "t_wall": time.time()})

    def run(self, resume: RunDir | None = None) -> SweepOutcome:
        """Run every planned job, or with ``resume`` the jobs of that run that have no result yet."""
        run = resume if resume is not None else self._create_run()
        acc = SweepOutcome(run=run)
        if resume is not None:
            run.try_compact()  # what the interrupted run finished, and a compaction it left halfway
        done = run.done_job_ids()
        jobs = [j for j in self.plan.jobs if j.job_id not in done]
        if resume is not None:
            for job in jobs:
                run.discard_incomplete(job.job_id)
            run.journal({"state": "resumed", "pending": len(jobs), "done": len(done), "t_wall": time.time()})
            run.update_meta(status="running")
        by_board: dict[str, list[Job]] = {}
        for job in jobs:
            by_board.setdefault(job.board, []).append(job)
        self._await_local_reports(list(by_board))
        held = self._lease(run, list(by_board), acc)
        try:
            for board in set(by_board) - set(held):
                self._fail_all(run, board, by_board.pop(board), self._refused.get(board, "LeaseHeld"),
                               acc.quarantined[board], acc)
            facts, failed_boards = self._provision(run, list(by_board)) if by_board else ({}, {})
            for board, reason in failed_boards.items():
                self._fail_all(run, board, by_board.pop(board, []), "ProvisionError",
                               f"provisioning failed: {reason}", acc)
            self.progress.start_jobs({b: len(js) for b, js in by_board.items()})
            self._run_boards(run, by_board, facts, acc, {b: h.lost for b, h in held.items()})
        except KeyboardInterrupt:
            run.update_meta(status="interrupted")
            run.journal({"state": "interrupted", "t_wall": time.time()})
            raise
        finally:
            self.progress.close()
            for board, h in held.items():
                if h.lost.error is not None:  # also when the board's jobs were over: never a silent end
                    run.journal({"board": board, "state": "hold_lost", "error": error_class(h.lost.error),
                                 "message": str(h.lost.error), "t_wall": time.time()})
                try:
                    h.close()
                except OSError as exc:  # the other boards are released all the same
                    run.journal({"board": board, "state": "release_failed", "error": type(exc).__name__,
                                 "message": str(exc), "t_wall": time.time()})
                    continue
                run.journal({"board": board, "state": "released", "t_wall": time.time()})
        stored = run.done_job_ids()  # every board has ended: no job is stored after this
        if not (self._compaction_deferred() and stored):  # else the report's process does it
            run.try_compact()  # what a board's own compaction left (it failed), and the idle and membw parts
        run.update_meta(status="finished", finished_wall=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        done=len(stored), failed=len(acc.failed), invalid=len(acc.invalid),
                        quarantined=acc.quarantined)
        if stored:
            self._report(run, acc)
        return acc

    def _report(self, run: RunDir, acc: SweepOutcome) -> None:
        """The run's report: written now (``wait``), by a process of its own after this one prints its result
        (``background``), or not at all (``none``: ``orchestrator report RUN`` writes it later)."""
        if self.report_mode == "background":
            pending = start_report(run.run_id, run.path, self.store.root, self.reports_dir, self.state_dir,
                                   power_cap_w=self.power_cap_w)
            acc.report, acc.report_pid, acc.report_log = pending.index, pending.pid, pending.log
            run.journal({"state": "report_started", "pid": pending.pid, "t_wall": time.time()})
        elif self.report_mode == "wait":
            from orchestrator.report.html import write_report  # matplotlib: imported once there is a report to make

            acc.report = write_report(run, self.reports_dir / run.run_id, power_cap_w=self.power_cap_w)

    def _await_local_reports(self, boards: list[str]) -> None:
        """Reports written in the background run on this machine: when it is also one of the boards, their load
        must not reach its measurements."""
        if any(self._board(b).connection == "local" for b in boards):
            left = wait_for_pending(self.state_dir, self.lease_wait_s, self.progress.note)
            if left:
                self.progress.note(f"still being written after {self.lease_wait_s:.0f} s: the report of "
                                   f"{', '.join(r.run_id for r in left)}; measuring anyway")

    def _fail_all(self, run: RunDir, board: str, jobs: list[Job], error: str, message: str,
                  acc: SweepOutcome) -> None:
        for job in jobs:
            acc.failed[job.job_id] = message
            run.journal({"job_id": job.job_id, "state": "failed", "board": board, "t_wall": time.time(),
                         "error": error, "message": message})

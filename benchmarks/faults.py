"""Faults during a sweep: a seeded schedule injects them on virtual boards; the run's journal and results say
what the orchestrator made of each.

A farm of virtual boards (network namespaces with sshd, half Odroid XU3s with their sysfs INA231 sensors, half
HiKey 970s each on a virtual Keysight B2900 served by this process), provisioned, then one
`orchestrator sweep` across all of them. While it runs, each fault of the schedule waits until its board
has done its share of jobs and has a job in progress, then is injected:

  power_loss        every process of the board's namespace SIGKILLed (sshd, sessions, agent, lock holder);
                    power back (sshd started again) after --down-s
  sshd_kill         the board's sshd, listener and sessions, SIGKILLed; started again after --down-s
  link_down         the board's link down (its veth, from the bridge side: the board keeps its routes) for
                    --down-s, then up
  meter_disconnect  the HiKey's B2900 drops every connection a few hundred points into its acquisition
  disk_full         a full 64 KiB tmpfs mounted over the board's work/jobs folder (in the mount namespace of
                    the board's sshd, which everything the board runs shares) for --down-s
  agent_kill        the serving device agent SIGKILLed
  controller_kill   the `orchestrator sweep` process group SIGKILLed, then `orchestrator sweep --resume RUN`
  clock_jump        the board's serving agent SIGKILLed and its clocks stepped by +--clock-step-s for the
                    processes it starts from then on, so the job's retry runs on the new clock (a serving
                    agent keeps the clock it started with); judged also by whether the jobs after it were
                    stored with the new clock offset

Per fault, from the run's journal and results (the schedule only says when and where):
injected; detected (a journal record of the victim board, or a `resumed` record for the controller,
after the injection: retry, failed, quarantined, a non-VALID job); the error classes named; retries;
jobs lost (planned, on the board, with neither a results row nor a final `failed` record); jobs duplicated
(more than one results row or more than one `done` record); and the verdicts of the board's jobs that ran
from the injection on. Totals last. Target: 0 lost, 0 duplicated, every fault detected with a named class.
Figures are of a virtual farm: emulated boards, simulated power.

    python benchmarks/faults.py [--boards 8] [--jobs-per-board 8] [--seed 1] [--kinds power_loss,...]
        [--down-s 4] [--keep DIR]

Needs root (network namespaces).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator.meters.virtual_b2900 import VirtualB2900  # noqa: E402
from orchestrator.results.store import Store  # noqa: E402
from orchestrator.virtual import netns  # noqa: E402
from orchestrator.virtual.farm import BoardSpec, VirtualFarm, teardown  # noqa: E402
from orchestrator.virtual.inventory import write_inventory  # noqa: E402

KINDS = ("power_loss", "sshd_kill", "link_down", "meter_disconnect", "disk_full", "agent_kill",
         "controller_kill", "clock_jump")
BOARD_KINDS = tuple(k for k in KINDS if k != "controller_kill")
# journal states that say something went wrong on a board
TROUBLE = {"retry", "failed", "quarantined", "idle_failed", "membw_failed", "lease_refused", "hold_lost"}
ENDS_SHARE = {"power_loss", "sshd_kill"}  # the board lock's process dies with them
GENERIC = {"SocfarmError", "AgentError", "Exception", "InternalError"}  # a class that names no cause

EXPERIMENTS = """
version: 1
zoo: {zoo}
idle_s: 0.3
idle_settle_s: 0.1
membw_mb: 0
rules: {{warmup_runs: 1, min_count: 20, min_duration_s: {window}, max_duration_s: 30}}
experiments:
  - name: faults
    models: [tiny_cnn]
    dtypes: [float32, int8]
    components: [big]
    repeats: {repeats}
"""


@dataclass
class Fault:
    kind: str
    board: str | None  # None: the controller
    after_done: int  # the victim board's (the run's, for the controller) done jobs before it may strike
    t_injected: float | None = None
    t_restored: float | None = None
    note: str = ""
    error: str | None = None  # the injection itself failed (then it is reported, not hidden)
    clock_ns: int | None = None  # clock_jump: the board's clock offset for processes started after it


@dataclass
class Context:
    farm: VirtualFarm
    smus: dict[str, VirtualB2900]
    down_s: float
    clock_step_s: float
    run_id: str | None = None
    threads: list[threading.Thread] = field(default_factory=list)


# --- the schedule -------------------------------------------------------------------------------


def board_specs(n: int, simulated: bool = True) -> list[BoardSpec]:
    """XU3s and HiKeys in turn; named ``xu3-sim-N``/``hikey-sim-N`` when their components are simulated."""
    sim = "sim-" if simulated else ""
    return [BoardSpec(f"xu3-{sim}{i // 2}" if i % 2 == 0 else f"hikey-{sim}{i // 2}",
                      "odroid_xu3" if i % 2 == 0 else "hikey970") for i in range(n)]


def plan_schedule(kinds: list[str], specs: list[BoardSpec], jobs_per_board: int, seed: int) -> list[Fault]:
    """Each board fault on a board of its own while boards last (the meter's on a HiKey), then sharing; a
    board's faults strike one after another. A fault strikes after 1 .. jobs-3 of its board's jobs, so the
    board has jobs left to recover on."""
    rng = random.Random(seed)
    hikeys = [s.name for s in specs if s.soc == "hikey970"]
    others = [s.name for s in specs]
    rng.shuffle(hikeys)
    rng.shuffle(others)
    faults: list[Fault] = []
    used: list[str] = []
    for kind in [k for k in kinds if k != "controller_kill"]:
        pool = hikeys if kind == "meter_disconnect" else others
        if not pool:
            raise SystemExit(f"{kind} needs a HiKey 970 board (a board on a B2900): use --boards 2 or more")
        ends = {f.board for f in faults if f.kind in ENDS_SHARE}
        board = min(pool, key=lambda b: (kind in ENDS_SHARE and b in ends, used.count(b), pool.index(b)))
        used.append(board)
        faults.append(Fault(kind, board, rng.randint(1, max(1, jobs_per_board - 3))))
    # a board's faults strike in this order: those that may end its share (its lock's holder dies) last
    faults.sort(key=lambda f: f.kind in ENDS_SHARE)
    if "controller_kill" in kinds:
        total = jobs_per_board * len(specs)
        faults.append(Fault("controller_kill", None, rng.randint(len(specs), max(len(specs), total // 2))))
    return faults


# --- injecting ----------------------------------------------------------------------------------


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _kill(pids, sig=signal.SIGKILL) -> int:
    n = 0
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
            n += 1
    return n


def _later(ctx: Context, fault: Fault, delay_s: float, restore) -> None:
    """Undo the fault after ``delay_s`` in a thread (the schedule goes on meanwhile)."""

    def run() -> None:
        time.sleep(delay_s)
        try:
            restore()
        except Exception as exc:  # noqa: BLE001 - reported in the table
            fault.error = f"restoring: {type(exc).__name__}: {exc}"
        fault.t_restored = time.time()

    th = threading.Thread(target=run, name=f"restore-{fault.kind}", daemon=True)
    th.start()
    ctx.threads.append(th)


def agent_pids(farm: VirtualFarm, board: str) -> list[int]:
    return [p for p in netns.netns_pids(farm.board(board).netns) if "device_agent serve" in _cmdline(p)]


def sshd_listener(farm: VirtualFarm, board: str) -> int | None:
    try:
        return int(farm.board(board).pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def inject(ctx: Context, fault: Fault) -> bool:
    """Inject ``fault`` now; False: not possible at this moment (try again at the next poll)."""
    farm, b = ctx.farm, fault.board
    if fault.kind in ("agent_kill", "clock_jump") and not agent_pids(farm, b):
        return False  # between agents (a retry starting one): the next poll
    fault.t_injected = time.time()
    if fault.kind == "power_loss":
        pids = netns.netns_pids(farm.board(b).netns)
        fault.note = f"{_kill(pids)} processes"
        _later(ctx, fault, ctx.down_s, lambda: farm.start_sshd(b))
    elif fault.kind == "sshd_kill":
        listener = sshd_listener(farm, b)
        sessions = [p for p in netns.netns_pids(farm.board(b).netns)
                    if p != listener and _cmdline(p).startswith("sshd")]
        farm.kill_sshd(b)
        fault.note = f"listener and {_kill(sessions)} sessions"
        _later(ctx, fault, ctx.down_s, lambda: farm.start_sshd(b))
    elif fault.kind == "link_down":
        farm.link_down(b)
        fault.note = f"{ctx.down_s:g} s"
        _later(ctx, fault, ctx.down_s, lambda: farm.link_up(b))
    elif fault.kind == "meter_disconnect":
        ctx.smus[b].inject_disconnect_after(300)
        fault.note = "after 300 points"
        fault.t_restored = fault.t_injected
    elif fault.kind == "disk_full":
        listener = sshd_listener(farm, b)
        target = farm.board(b).work_dir / "jobs"
        ns = ["nsenter", "-t", str(listener), "-m", "--"]
        subprocess.run([*ns, "mount", "-t", "tmpfs", "-o", "size=64k", "socfarm-full", str(target)],
                       check=True, capture_output=True, timeout=10)
        subprocess.run([*ns, "sh", "-c", f"dd if=/dev/zero of={target}/fill bs=4k 2>/dev/null; true"],
                       check=False, capture_output=True, timeout=10)
        fault.note = f"{ctx.down_s:g} s"
        _later(ctx, fault, ctx.down_s, lambda: subprocess.run([*ns, "umount", "-l", str(target)], check=False,
                                                              capture_output=True, timeout=10))
    elif fault.kind == "agent_kill":
        fault.note = f"{_kill(agent_pids(farm, b))} agent"
        fault.t_restored = fault.t_injected
    elif fault.kind == "clock_jump":
        killed = _kill(agent_pids(farm, b))  # first, while its job runs: the retry then starts a new agent,
        fault.clock_ns = farm.step_clock(b, ctx.clock_step_s)  # over a new connection, on the new clock
        fault.note = f"+{ctx.clock_step_s:g} s, {killed} agent"
        fault.t_restored = time.time()
    else:
        raise ValueError(fault.kind)
    return True


# --- the run ------------------------------------------------------------------------------------


def _journal(run_dir: Path) -> list[dict]:
    path = run_dir / "journal.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # a line being written
            out.append(json.loads(line))
    return out


def _measuring(mine: list[dict]) -> str | None:
    """The job a board is measuring, from its records: its latest ``started`` one while no end of that job
    (done, failed, retry) follows. A board stores a job while it measures the next (the board runner's
    store thread), so its last record is often the previous job's ``done`` while a job is in progress."""
    last = max((i for i, r in enumerate(mine) if r.get("state") == "started"), default=None)
    if last is None:
        return None
    job = mine[last]["job_id"]
    ended = any(r.get("job_id") == job and r.get("state") in ("done", "failed", "retry") for r in mine[last + 1:])
    return None if ended else job


def _settled(fault: Fault, records: list[dict]) -> bool:
    """The board fault is undone and its board has journalled the end or retry of the job it struck (or of
    one started since), or its share has ended (quarantined) since the fault struck. (The previous job's
    ``done``, stored behind the struck one, says nothing of the fault.)"""
    mine = [r for r in records if r.get("board") == fault.board]
    struck = _measuring([r for r in mine if r["t_wall"] <= fault.t_injected])
    since = {r["job_id"] for r in mine if r.get("state") == "started" and r["t_wall"] > fault.t_injected}
    return fault.t_restored is not None and (
        any(r["t_wall"] > fault.t_restored and r.get("state") in ("done", "failed", "retry")
            and (r.get("job_id") == struck or r.get("job_id") in since) for r in mine)
        or any(r["t_wall"] > fault.t_injected and r.get("state") == "quarantined" for r in mine))


def _due(fault: Fault, records: list[dict], faults: list[Fault]) -> bool:
    """The fault may strike now.

    The controller: its mark of done jobs is reached and every board fault so far is undone and its board
    has journalled a job's end (or retry) since, so that the kill masks no other fault's effect. A board: the controller is not down (a kill's resume has begun), the board's earlier faults
    (in schedule order) are over and it has done a job since, its own mark of done jobs is reached, and a
    job of it is in progress."""
    if any(f.kind == "controller_kill" and f.t_injected is not None
           and not any(r.get("state") == "resumed" and r["t_wall"] >= f.t_injected for r in records)
           for f in faults):
        return False
    if fault.board is None:  # not before every board fault so far is over and its board has moved on since
        if any(f.t_injected is not None and not _settled(f, records) for f in faults if f.board is not None):
            return False
        return sum(r.get("state") == "done" for r in records) >= fault.after_done
    earlier = [f for f in faults[:faults.index(fault)] if f.board == fault.board]
    if any(f.t_restored is None for f in earlier):
        return False
    since = max([f.t_restored for f in earlier] + [r["t_wall"] for r in records if r.get("state") == "resumed"],
                default=0.0)
    mine = [r for r in records if r.get("board") == fault.board and r.get("job_id") and r["t_wall"] > since]
    done = sum(r.get("state") == "done" for r in records if r.get("board") == fault.board)
    begun = {r["job_id"] for r in mine if r.get("state") == "started"}  # started after the earlier fault
    if done < fault.after_done or (earlier and not any(r.get("state") == "done" and r["job_id"] in begun
                                                       for r in mine)):
        return False
    return _measuring(mine) is not None


def _sweep_like(args: list[str], log: Path) -> subprocess.Popen:
    """``orchestrator ARGS`` in a process group of its own (so a kill takes what it started too)."""
    with open(log, "a") as out:
        return subprocess.Popen([sys.executable, "-m", "orchestrator", *args], cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _sweep(args: list[str], log: Path) -> subprocess.Popen:
    return _sweep_like(["sweep", *args], log)


def run_schedule(work: Path, n_boards: int, kinds: list[str], jobs_per_board: int, seed: int, *,
                 window_s: float = 1.0, down_s: float = 4.0, clock_step_s: float = 30.0, timeout_s: float = 900.0,
                 simulated: bool = True, provision_timeout_s: float = 1800.0,
                 zoo: Path = REPO / "tests" / "fixtures" / "models", log=print) -> dict:
    """Run the faulted sweep on a fresh farm (always torn down); returns ``{"faults", "run_dir", "rc",
    "wall_s", "log"}``. ``timeout_s`` bounds the sweep (its resume included), ``provision_timeout_s`` the
    provisioning before it (a venv and the runtime per board: minutes on a loaded machine)."""
    work.mkdir(parents=True, exist_ok=True)
    specs = board_specs(n_boards, simulated)
    faults = plan_schedule(kinds, specs, jobs_per_board, seed)
    state = work / "farm"
    farm = VirtualFarm(state, specs, max_lifetime_s=timeout_s + 600)
    smus: dict[str, VirtualB2900] = {}
    proc: subprocess.Popen | None = None
    prov: subprocess.Popen | None = None
    try:
        farm.up()
        farm.wait_ready(30)
        for s in specs:
            if s.soc == "hikey970":
                smus[s.name] = VirtualB2900(farm.simulator(s.name)).start()
        inv = write_inventory(farm, work / "inventory.yml",
                              meters=[{"board": n, "resource": m.resource} for n, m in smus.items()],
                              simulated=simulated)
        exp = work / "experiments.yaml"
        exp.write_text(EXPERIMENTS.format(zoo=zoo, window=window_s, repeats=max(1, jobs_per_board // 2)))
        common = ["-i", str(inv), "--store", str(work / "runs"), "--reports", str(work / "reports"),
                  "--state", str(work / "state"), "--quiet", "--report", "none"]
        # provisioned first, so that the faults strike the sweep itself (bounded: the whole group is killed)
        prov = _sweep_like(["provision", "--zoo", str(zoo), "-i", str(inv), "--state", str(work / "state")],
                           work / "provision.log")
        try:
            prov.wait(provision_timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(prov.pid, signal.SIGKILL)
            prov.wait(30)
            raise TimeoutError(f"provisioning took over {provision_timeout_s:g} s (log: {work / 'provision.log'})") from None
        if prov.returncode != 0:
            raise SystemExit(f"provisioning failed (exit {prov.returncode}): see {work / 'provision.log'}")
        ctx = Context(farm, smus, down_s, clock_step_s)
        sweep_log = work / "sweep.log"
        t0 = time.monotonic()
        deadline = t0 + timeout_s
        proc = _sweep([str(exp), *common], sweep_log)
        run_dir: Path | None = None
        pending = list(faults)
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the faulted sweep did not end within {timeout_s:g} s (log: {sweep_log})")
            if run_dir is None:
                runs = sorted((work / "runs").glob("*/journal.jsonl"))
                run_dir = runs[0].parent if runs else None
            records = _journal(run_dir) if run_dir else []
            for fault in list(pending):
                if not records or not _due(fault, records, faults):
                    continue
                if fault.kind == "controller_kill":
                    fault.t_injected = time.time()
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(30)
                    fault.note = f"after {sum(r.get('state') == 'done' for r in records)} jobs done"
                    proc = _sweep(["--resume", run_dir.name, *common], sweep_log)
                    fault.t_restored = time.time()
                elif not inject(ctx, fault):
                    continue
                log(f"{time.monotonic() - t0:6.1f} s  injected {fault.kind} on {fault.board or 'the controller'}"
                    f" ({fault.note})")
                pending.remove(fault)
            if proc.poll() is not None:  # done (faults still pending are reported as not injected)
                break
            time.sleep(0.1)
        for th in ctx.threads:
            th.join(max(1.0, deadline - time.monotonic()))
        for fault in pending:
            ended = run_dir is not None and any(r.get("state") == "quarantined" and r.get("board") == fault.board
                                                for r in _journal(run_dir))
            fault.error = "not injected: " + ("the board's share had ended before its turn" if ended
                                              else "the sweep ended before its turn")
        if run_dir is None:
            raise SystemExit(f"no run was created; log: {sweep_log}")
        return {"faults": faults, "run_dir": run_dir, "rc": proc.returncode, "wall_s": time.monotonic() - t0,
                "log": sweep_log}
    finally:
        for child in (prov, proc):
            if child is not None and child.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.wait(30)
        for m in smus.values():
            m.stop()
        try:
            farm.down()
        finally:
            teardown(state)


# --- judging from the run -----------------------------------------------------------------------


def job_outcomes(run_dir: Path) -> dict:
    """From the store: planned jobs, results rows per job, `done` records per job, each job's last record."""
    run = Store(run_dir.parent).open_run(run_dir.name)
    planned = list(run.meta["jobs"])
    results = run.read_table("results")
    records = run.journal_records()
    rows = results.groupby("job_id").size().to_dict() if len(results) else {}
    verdict = dict(zip(results.job_id, results.verdict)) if len(results) else {}
    done: dict[str, int] = {}
    last: dict[str, dict] = {}
    for r in records:
        if r.get("job_id"):
            last[r["job_id"]] = r
            if r.get("state") == "done":
                done[r["job_id"]] = done.get(r["job_id"], 0) + 1
    lost = [j for j in planned if not rows.get(j) and last.get(j, {}).get("state") != "failed"]
    duplicated = [j for j in planned if rows.get(j, 0) > 1 or done.get(j, 0) > 1]
    final = {j: verdict.get(j) or (f"failed:{last[j].get('error')}" if j in last and
                                   last[j].get("state") == "failed" else "lost") for j in planned}
    return {"planned": planned, "records": records, "lost": lost, "duplicated": duplicated, "final": final,
            "results": results}


def judge(faults: list[Fault], run_dir: Path) -> list[dict]:
    """One row per fault, from the journal and the results."""
    out = job_outcomes(run_dir)
    records = out["records"]
    job_board = dict(zip(out["results"].job_id, out["results"].board)) if len(out["results"]) else {}
    for r in records:
        if r.get("job_id") and r.get("board"):
            job_board.setdefault(r["job_id"], r["board"])
    rows = []
    for fault in faults:
        row = {"fault": fault.kind, "board": fault.board or "controller", "injected": fault.t_injected is not None,
               "detected": False, "classified": "", "retried": 0, "lost": 0, "duplicated": 0, "verdicts": "",
               "note": fault.error or fault.note}
        if fault.t_injected is None:
            rows.append(row)
            continue
        later = [f.t_injected for f in faults if f.board == fault.board and f is not fault
                 and f.t_injected is not None and f.t_injected > fault.t_injected]
        t1 = min(later, default=float("inf"))
        if fault.board is None:
            seen = [r for r in records if r.get("state") == "resumed" and r.get("t_wall", 0) >= fault.t_injected]
            row["detected"] = bool(seen)
            # the resume names what it found: jobs without a result (re-run) and the parts of dead attempts
            # the parts of cut-short jobs the resume removed: the `discarded` records (which have no time) it
            # journals right before its own
            discarded, i = 0, records.index(seen[0]) - 1 if seen else -1
            while i >= 0 and records[i].get("state") == "discarded":
                discarded, i = discarded + 1, i - 1
            row["classified"] = (f"resumed: {seen[0]['pending']} pending, {seen[0]['done']} done"
                                 + (f", {discarded} partial job{'s' if discarded > 1 else ''} discarded"
                                    if discarded else "")) if seen else ""
            jobs = set(out["planned"])
            # the jobs the kill cut short (started, not done): the resume must measure each once more
            cut = {r["job_id"] for r in records if r.get("state") == "started" and r["t_wall"] < fault.t_injected}
            cut -= {r["job_id"] for r in records if r.get("state") in ("done", "failed")
                    and r["t_wall"] < fault.t_injected}
            row["retried"] = sum(any(r.get("job_id") == j and r.get("state") == "done"
                                     and r["t_wall"] > fault.t_injected for r in records) for j in cut)
        else:
            window = [r for r in records if r.get("board") == fault.board
                      and fault.t_injected <= r.get("t_wall", 0) < t1]
            trouble = [r for r in window if r.get("state") in TROUBLE
                       or (r.get("state") == "done" and r.get("verdict") not in (None, "VALID"))]
            row["detected"] = bool(trouble)
            classes = sorted({r.get("error") or f"verdict {r.get('verdict')}" for r in trouble})
            row["classified"] = ",".join(classes)
            row["retried"] = sum(r.get("state") == "retry" for r in window)
            # the board's jobs that ran (or were failed) from the injection until its next fault
            jobs = {r["job_id"] for r in window if r.get("job_id")}
            # the job in progress when it struck
            running = [r for r in records if r.get("board") == fault.board and r.get("job_id")
                       and r.get("t_wall", 0) < fault.t_injected]
            if running:
                jobs.add(running[-1]["job_id"])
            if not row["detected"] and not any(out["final"][j] != "VALID" for j in jobs if j in out["final"]):
                row["classified"] = "absorbed (no job affected)"
            if fault.clock_ns is not None:
                row["classified"] += "," + clock_followed(fault, records, out["results"])
        row["lost"] = sum(j in jobs for j in out["lost"])
        row["duplicated"] = sum(j in jobs for j in out["duplicated"])
        counts: dict[str, int] = {}
        for j in sorted(jobs):
            v = out["final"].get(j, "lost")
            counts[v] = counts.get(v, 0) + 1
        row["verdicts"] = " ".join(f"{v}:{n}" for v, n in sorted(counts.items()))
        rows.append(row)
    totals = {"fault": "TOTAL", "board": f"{len(out['planned'])} jobs", "injected": sum(r["injected"] for r in rows),
              "detected": sum(bool(r["detected"]) for r in rows),
              "classified": sum(classified(r) for r in rows), "retried": sum(r["retried"] for r in rows),
              "lost": len(out["lost"]), "duplicated": len(out["duplicated"]),
              "verdicts": " ".join(f"{v}:{n}" for v, n in sorted(_count(out["final"].values()).items())),
              "note": ""}
    rows.append(totals)
    return rows


def clock_followed(fault: Fault, records: list[dict], results) -> str:
    """Whether the board's jobs started after the jump were stored with the board's new clock offset (the
    farm's truth within each row's own clock uncertainty), so their windows sit right against the power
    samples."""
    after = {r["job_id"] for r in records if r.get("board") == fault.board and r.get("state") == "started"
             and r["t_wall"] > fault.t_injected}
    rows = results[results.job_id.isin(after)] if len(results) else results
    if not len(rows):
        return "clock not seen (no job after it)"
    wrong = sum(abs(int(o) - fault.clock_ns) > int(u) + 1000
                for o, u in zip(rows.clock_offset_ns, rows.clock_uncertainty_ns))
    return f"clock followed ({len(rows)} jobs)" if not wrong else f"clock NOT followed ({wrong} jobs)"


def classified(row: dict) -> bool:
    """Detected with a named cause (a specific error class, a resume), or absorbed without harm."""
    text = row["classified"]
    if not row["injected"] or not text or "NOT followed" in text or "not seen" in text:
        return False
    if text.startswith(("absorbed", "resumed")):
        return True
    return all(c not in GENERIC for c in text.split(",") if not c.startswith("clock"))


def _count(values) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def format_table(rows: list[dict]) -> str:
    cols = ["fault", "board", "injected", "detected", "classified", "retried", "lost", "duplicated", "verdicts",
            "note"]
    cells = [[str(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(x[i]) for x in cells)) for i, c in enumerate(cols)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()  # noqa: E731
    return "\n".join([line(cols), line(["-" * w for w in widths]), *(line(c) for c in cells)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boards", type=int, default=8)
    ap.add_argument("--jobs-per-board", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, of {', '.join(KINDS)}")
    ap.add_argument("--window-s", type=float, default=1.0,
                    help="each job's measurement window (the XU3's sensors convert every ~0.26 s: shorter windows "
                         "are often INVALID for want of coverage, with or without faults)")
    ap.add_argument("--down-s", type=float, default=4.0, help="how long power, sshd, link or disk stay out")
    ap.add_argument("--clock-step-s", type=float, default=30.0)
    ap.add_argument("--timeout-s", type=float, default=900.0)
    ap.add_argument("--inference", choices=("simulated", "cpu"), default="simulated",
                    help="simulated: a modelled latency the agent sleeps (boards cost this machine no CPU); "
                         "cpu: the tiny test model runs on this machine's CPUs")
    ap.add_argument("--keep", type=Path, help="keep the farm's state, the run and the sweep's log here")
    args = ap.parse_args()
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        ap.error(f"unknown fault kinds {unknown}; known: {', '.join(KINDS)}")
    with tempfile.TemporaryDirectory(prefix="faults-") as tmp:
        work = args.keep or Path(tmp)
        res = run_schedule(work, args.boards, kinds, args.jobs_per_board, args.seed, window_s=args.window_s,
                           down_s=args.down_s, clock_step_s=args.clock_step_s, timeout_s=args.timeout_s,
                           simulated=args.inference == "simulated", log=lambda text: print(text, flush=True))
        rows = judge(res["faults"], res["run_dir"])
    what = "simulated inference" if args.inference == "simulated" else "tiny test model on this machine's CPUs"
    print(f"{args.boards} virtual boards (emulated; {what}, simulated power), {args.jobs_per_board} jobs each, "
          f"seed {args.seed}, sweep exit {res['rc']}, {res['wall_s']:.0f} s")
    print(format_table(rows))
    total = rows[-1]
    print(f"lost {total['lost']}, duplicated {total['duplicated']}, classified {total['classified']}/"
          f"{total['injected']} of {len(rows) - 1} faults")


if __name__ == "__main__":
    main()

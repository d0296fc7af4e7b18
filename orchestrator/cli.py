"""The `orchestrator` command: parse arguments, call services, map errors to exit codes.

Exit codes: 0 success; 1 some jobs failed; 2 bad input (config, zoo, store:
will fail again); 3 transient failure (may succeed when retried); 130 interrupted.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import sys
import threading
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestrator.cli_analysis import POWER_CAP
from orchestrator.errors import SocfarmError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Device-farm experiments for CNN inference.")
zoo_app = typer.Typer(no_args_is_help=True, help="Build and inspect the model zoo.")
app.add_typer(zoo_app, name="zoo")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

INVENTORY = typer.Option(Path("inventory/local.yml"), "--inventory", "-i", help="Ansible inventory of the farm.")
STORE = typer.Option(Path("runs"), "--store", help="Results store (one folder per run).")
REPORTS = typer.Option(Path("reports"), "--reports", help="Where reports/<run-id>/ are written.")
STATE = typer.Option(Path(".state"), "--state", help="Controller state: ansible artifacts and fact cache.")
SWEEP_SWITCH_INTERVAL_S = 0.0005  # see sweep(): the interpreter lock's hand-over to a thread woken by I/O


class ReportMode(str, enum.Enum):
    """When a sweep's report is written."""

    background = "background"
    wait = "wait"
    none = "none"


@app.command()
def sweep(
    experiments: Optional[Path] = typer.Argument(None, help="Experiments YAML (omit with --resume)."),
    inventory: Path = INVENTORY,
    store: Path = STORE,
    reports: Path = REPORTS,
    state: Path = STATE,
    plan_only: bool = typer.Option(False, "--plan", help="Print the expanded job list and estimates; touch no board."),
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue RUN_ID where it stopped."),
    lease_wait_s: float = typer.Option(600.0, "--lease-wait", help="Seconds to wait for boards another sweep holds."),
    reprovision: bool = typer.Option(False, "--reprovision",
                                     help="Run the playbooks even on boards provisioned with the same inputs."),
    baseline: Optional[str] = typer.Option(None, "--baseline",
                                           help="After the run, judge regressions against RUN_ID or last-good."),
    junit: Optional[Path] = typer.Option(None, "--junit", help="With --baseline: write JUnit XML here."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    report: ReportMode = typer.Option(
        ReportMode.background, "--report", envvar="SOCFARM_REPORT", case_sensitive=False,
        help="background: the report is written by a process of its own once the result is printed (its log in "
             "the run's report.log); wait: written before the command ends; none: later, with `orchestrator "
             "report RUN`."),
    power_cap_w: Optional[float] = POWER_CAP,
) -> None:
    """Provision the boards, run every job of EXPERIMENTS, store the results and write a report."""
    from orchestrator.analysis.emulation import emulation_status, emulation_status_text
    from orchestrator.analysis.energy import energy_status, energy_status_text
    from orchestrator.progress import SweepProgress
    from orchestrator.results.store import Store
    from orchestrator.sweep import SweepRunner, prepare, prepare_resume

    results = Store(store)
    if resume:
        run, plan = prepare_resume(results, resume)
    elif experiments is None:
        raise typer.BadParameter("give an experiments file, or --resume RUN_ID")
    else:
        run, plan = None, prepare(experiments, inventory)
    if plan_only:
        _print_plan(plan.jobs, results, as_json, plan.spec.idle_s, plan.spec.membw_mb, plan.spec.idle_settle_s)
        return
    if baseline and baseline != "last-good":
        results.open_run(baseline)  # a baseline that does not exist is bad input: refuse before measuring
    # A sweep's threads (per board: its runner, its store, its SSH transport, its agent's pipes) mostly wait on
    # I/O; every reply is a hand-over of the interpreter lock, which a thread that computes keeps for up to the
    # switch interval (5 ms by default) while the woken thread waits. A few dozen hand-overs per job on a large
    # farm: a shorter interval takes that wait off every job's path (benchmarks/sweep_scaling.py --simulated).
    sys.setswitchinterval(SWEEP_SWITCH_INTERVAL_S)
    runner = SweepRunner(plan, results, state, reports, SweepProgress(err, enabled=not quiet),
                         run_id=resume, lease_wait_s=lease_wait_s, reprovision=reprovision,
                         report=report.value, power_cap_w=power_cap_w)
    outcome = runner.run(resume=run)
    verdicts = _judge_regressions(results, outcome.run, baseline, junit) if baseline else None
    done = outcome.run.done_job_ids()
    energy = emulated = None
    if done:  # the rows as this process stored them (not read back: a file per job until the run is compacted)
        rows = outcome.status_frame(done)
        energy, emulated = energy_status(outcome.run, rows), emulation_status(outcome.run, rows)
    summary = {
        "run_id": outcome.run.run_id,
        "run_dir": str(outcome.run.path),
        "jobs": len(plan.jobs),
        "done": len(done),
        "invalid": len(outcome.invalid),
        "failed": len(outcome.failed),
        "quarantined": outcome.quarantined,
        "report": str(outcome.report) if outcome.report else None,
        # set while the report is being written in the background (the file appears when that process ends)
        "report_pid": outcome.report_pid,
        "report_log": str(outcome.report_log) if outcome.report_log else None,
        "regressions": verdicts,
        "energy": energy,
        "emulated": emulated,  # board -> what emulated its userland (its timings are not performance figures)
    }
    if as_json:
        out.print_json(json.dumps(summary))
    else:
        out.print(
            f"run {summary['run_id']}: {summary['done']}/{summary['jobs']} jobs done, "
            f"{summary['invalid']} invalid, {summary['failed']} failed; results in {summary['run_dir']}",
            highlight=False,
        )
        if emulated is not None:
            out.print(emulation_status_text(emulated), highlight=False, markup=False)
        if energy is not None:
            out.print(energy_status_text(energy), highlight=False, markup=False)
        for board, reason in outcome.quarantined.items():
            out.print(f"quarantined {board}: {reason}", highlight=False, markup=False)
        if verdicts is not None and verdicts["baseline"] is None:
            out.print(f"no regression verdicts: {verdicts['note']}", highlight=False, markup=False)
        elif verdicts is not None:
            out.print(f"regressions against {verdicts['baseline']}: {verdicts['counts']}", highlight=False)
        if outcome.report and outcome.report_pid:
            out.print(f"report: {outcome.report} (being written in the background, process {outcome.report_pid}; "
                      f"log {outcome.report_log})", highlight=False)
        elif outcome.report:
            out.print(f"report: {outcome.report}", highlight=False)
    if outcome.failed or (verdicts and verdicts["counts"].get("regressed")):
        raise typer.Exit(1)


def _judge_regressions(store, run, baseline: str, junit: Optional[Path]) -> dict:
    """The nightly verdicts of ``run`` against ``baseline`` (saved with the run, optionally as JUnit)."""
    from collections import Counter

    from orchestrator.analysis.regress import RegressSettings, last_good, regress, save_verdicts, write_junit
    from orchestrator.errors import StoreError

    try:
        base_id = last_good(store, run.run_id) if baseline == "last-good" else baseline
    except StoreError as exc:  # the first nightly run has nothing to be compared with
        return {"baseline": None, "counts": {}, "note": str(exc)}
    settings = RegressSettings()  # the defaults, recorded with the verdicts they gave
    verdicts = regress(store, run, store.open_run(base_id), alpha=settings.alpha, min_effect=settings.min_effect,
                       min_repeats=settings.min_repeats, baseline_runs=settings.baseline_runs)
    save_verdicts(run, base_id, verdicts, settings)
    if junit:
        write_junit(junit, run.run_id, base_id, verdicts)
    return {"baseline": base_id, "counts": dict(Counter(v.verdict for v in verdicts))}


#: A plan of more jobs is listed in plain aligned columns instead of a boxed table.
PLAN_TABLE_MAX_ROWS = 200


def plain_columns(columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """``rows`` under ``columns``, each column as wide as its widest cell, two spaces apart."""
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip()
                     for line in (columns, *rows))


def _print_plan(jobs, store, as_json: bool, idle_s: float, membw_mb: float, idle_settle_s: float = 0.0) -> None:
    from orchestrator.estimate import estimate

    est = estimate(jobs, store, idle_s, membw_mb, idle_settle_s)
    total_s = float(est["estimate_s"].max()) if len(est) else 0.0  # boards run in parallel
    if as_json:
        out.print_json(json.dumps({
            "jobs": [{**dataclasses.asdict(j), "rules": j.rules.model_dump()} for j in jobs],
            "boards": est.to_dict("records"),
            "total_estimate_s": total_s,
        }, default=list))
        return
    columns = ("job", "board", "component", "cpus", "model", "dtype", "repeat")
    rows = [(j.job_id, j.board, j.component, ",".join(map(str, j.cpus)), j.model, j.dtype, str(j.repeat))
            for j in jobs]
    if len(rows) <= PLAN_TABLE_MAX_ROWS:
        table = Table(title=f"{len(jobs)} jobs")
        for col in columns:
            table.add_column(col)
        for row in rows:
            table.add_row(*row)
        out.print(table)
    else:  # a boxed table of a farm's nightly (1,280 jobs at 64 boards) took seconds to draw
        out.print(f"{len(jobs)} jobs", highlight=False)
        out.print(plain_columns(columns, rows), highlight=False, markup=False)
    per_board = Table(title="estimate (boards run in parallel, jobs on one board one after another)")
    for col in ("board", "jobs", "idle + bandwidth + start", "estimate", "from history"):
        per_board.add_column(col)
    for row in est.itertuples():
        per_board.add_row(row.board, str(row.jobs), f"{row.setup_s:.0f} s", f"{row.estimate_s / 60:.1f} min",
                          f"{row.from_history}/{row.jobs}")
    out.print(per_board)
    out.print(f"total: about {total_s / 60:.1f} min", highlight=False)


@app.command()
def report(
    run_id: str = typer.Argument(..., help="Run id (a folder of the store)."),
    store: Path = STORE,
    reports: Path = REPORTS,
) -> None:
    """Regenerate reports/<RUN>/index.html from the store alone."""
    from orchestrator.report.html import write_report
    from orchestrator.results.store import Store

    run = Store(store).open_run(run_id)
    out.print(f"report: {write_report(run, reports / run.run_id)}", highlight=False)


@zoo_app.command("build")
def zoo_build(
    model_set: str = typer.Option("study", "--set", help="study (the five CNNs) or tiny (test models)."),
    out_dir: Path = typer.Option(Path("models"), "--out", help="Zoo folder (manifest.json + .tflite files)."),
    force: bool = typer.Option(False, "--force", help="Rebuild even when the cache is valid."),
) -> None:
    """Build the model zoo (float32 + int8 .tflite, random seeded weights); cached by builder hash."""
    from orchestrator.zoo.architectures import STUDY, TINY
    from orchestrator.zoo.build import build_zoo

    sets = {"study": STUDY, "tiny": TINY}
    if model_set not in sets:
        raise SocfarmError(f"--set must be one of {', '.join(sets)}, not {model_set!r}")
    manifest = build_zoo(out_dir, names=sets[model_set], force=force, on_progress=lambda m: err.print(m, highlight=False, markup=False))
    out.print(f"zoo: {len(manifest.models)} models in {out_dir / 'manifest.json'}", highlight=False)


@zoo_app.command("add")
def zoo_add(
    files: list[Path] = typer.Argument(..., help="The .tflite files to add."),
    name: Optional[str] = typer.Option(None, "--name", help="Model name (one file only; default: the file's stem)."),
    zoo_dir: Path = typer.Option(Path("models"), "--zoo", help="Zoo folder (manifest.json + .tflite files)."),
    source: Optional[str] = typer.Option(None, "--source",
                                         help="Where the model comes from, recorded (default: the file's path)."),
    replace: bool = typer.Option(False, "--replace", help="Replace an added model of the same name and dtype."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Check .tflite files (format, one fixed-shape float32/int8/uint8 input, builtin ops, a LiteRT run here),
    analyse them (MACs, params, bytes) and record them in the zoo with their sha256 and source."""
    from orchestrator.zoo.add import add_models

    added = add_models(zoo_dir, files, name=name, source=source, replace=replace,
                       on_progress=lambda m: err.print(m, highlight=False, markup=False))
    if as_json:
        out.print_json(json.dumps([{**a.entry.model_dump(mode="json"), "status": a.status,
                                    "notes": list(a.inspection.notes)} for a in added]))
        return
    for a in added:
        e, info = a.entry, a.inspection.info
        verb = {"present": "already in the zoo", "restored": "restored", "replaced": "replaced"}.get(a.status, "added")
        out.print(f"{verb}: {e.name} ({e.dtype}) -> {zoo_dir / e.file}", highlight=False, markup=False)
        out.print(f"  {e.macs:,} MACs, {info.flops:,} FLOPs, {e.params:,} params, {e.bytes:,} bytes, "
                  f"{info.bytes_moved:,} bytes moved per inference, input {e.input_dtype} {e.input_shape}",
                  highlight=False, markup=False)
        out.print(f"  sha256 {e.sha256}; source {e.source}", highlight=False, markup=False)
        if e.litert_check:
            out.print(f"  {e.litert_check}", highlight=False, markup=False)
        for note in a.inspection.notes:
            out.print(f"  note: {note}", highlight=False, markup=False)
    out.print(f"zoo: {zoo_dir / 'manifest.json'}", highlight=False, markup=False)


from orchestrator.cli_analysis import register as _register_analysis; _register_analysis(app)  # noqa: E402,E702
from orchestrator.cli_farm import register as _register_farm; _register_farm(app)  # noqa: E402,E702


def main(argv: Optional[list[str]] = None) -> None:
    try:
        rc = app(args=argv, standalone_mode=False)
    except SocfarmError as exc:
        err.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted", highlight=False)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort,):
        sys.exit(130)
    except Exception as exc:  # usage errors: a message and exit 2, not a traceback
        if isinstance(exc, _usage_errors()):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    sys.exit(rc if isinstance(rc, int) else 0)


def _usage_errors() -> tuple[type[BaseException], ...]:
    """Click's errors, and those of the click that typer >= 0.2x carries inside itself (not click's classes)."""
    import click

    found: list[type[BaseException]] = [click.ClickException]
    try:
        from typer._click.exceptions import ClickException as TyperClickException
    except ImportError:
        pass
    else:
        found.append(TyperClickException)
    return tuple(found)


def entry() -> None:
    """The `orchestrator` process (console script, ``python -m orchestrator``): ``main``, then an exit without
    the interpreter's teardown of pandas, pyarrow and the rest (about 0.1 s at the end of every sweep) once
    every output is flushed and no other thread is left to join. In-process callers use ``main``."""
    try:
        main()
    except SystemExit as exc:
        code = exc.code
        if (code is None or isinstance(code, int)) and all(t.daemon for t in threading.enumerate()
                                                           if t is not threading.main_thread()):
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass
            os._exit(code or 0)
        raise


if __name__ == "__main__":
    entry()

"""Farm commands: `orchestrator provision`, `orchestrator inventory check`, `orchestrator farm status`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from orchestrator.config.inventory import Board, Lab
from orchestrator.provision.runner import load_facts, save_facts

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

inventory_app = typer.Typer(no_args_is_help=True, help="Check the farm's inventory.")
farm_app = typer.Typer(no_args_is_help=True, help="The state of the farm.")

INVENTORY = typer.Option(Path("inventory/local.yml"), "--inventory", "-i", help="Ansible inventory of the farm.")
STATE = typer.Option(Path(".state"), "--state", help="Controller state: ansible artifacts, fact cache, leases.")


def provision_command(
    inventory: Path = INVENTORY,
    state: Path = STATE,
    limit: Optional[list[str]] = typer.Option(None, "--limit", help="Only these boards or groups (repeatable)."),
    zoo: Path = typer.Option(Path("models"), "--zoo", help="Model zoo whose files are installed on the boards."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Run the provisioning playbooks on the boards and cache their facts (a no-op on provisioned boards)."""
    from orchestrator.config.load import load_inventory
    from orchestrator.provision.runner import ProvisionResult, describe_event, provision
    from orchestrator.provision.stamps import board_stamps, save_stamps
    from orchestrator.scheduler.board_lock import locked_boards
    from orchestrator.zoo.manifest import load_manifest

    lab = load_inventory(inventory)
    selected = lab.select(limit or ["all"])
    if not selected:
        raise typer.BadParameter(f"--limit {limit} selects no board of {inventory}")
    manifest = load_manifest(zoo / "manifest.json")
    model_files = [{"file": m.file, "sha256": m.sha256} for m in manifest.models]
    # a board a sweep measures on (from any controller) is not provisioned under it
    with locked_boards(selected, f"provision-{os.getpid()}") as (boards, refused):
        if boards:
            result = provision(
                inventory,
                state,
                limit=boards,
                extravars={
                    "models_files": model_files,
                    "models_src_dir": str(zoo.resolve()),
                    "socfarm_controller_cache": str((state / "cache").resolve()),
                },
                on_event=lambda e: (line := describe_event(e)) and err.print(f"  {line}", highlight=False,
                                                                             markup=False),
            )
        else:
            result = ProvisionResult(status="skipped", rc=0, facts={}, failed={}, changed={}, artifact_dir=state)
    save_facts(state, result.facts)
    stamps = board_stamps([b for b in lab.boards if b.name in result.facts and b.name not in result.failed])
    save_stamps(state, stamps, model_files)  # a sweep with these inputs then skips these boards
    failed = {**result.failed, **{b: f"not provisioned: {why}" for b, why in refused.items()}}
    summary = {"status": result.status if not refused else "failed", "changed": result.changed, "failed": failed,
               "boards": sorted(result.facts)}
    if as_json:
        out.print_json(json.dumps(summary))
    else:
        for board in [b.name for b in selected]:
            state_text = f"FAILED: {failed[board]}" if board in failed else (
                f"ok, {result.changed.get(board, 0)} changed")
            out.print(f"{board}: {state_text}", highlight=False, markup=False)
    if failed:
        raise typer.Exit(3)


def check_board(board: Board, facts: dict[str, Any] | None) -> list[str]:
    """What the board's SoC description lacks, and where it disagrees with the board's facts."""
    problems = []
    for comp in board.components:
        if board.soc != "host_cpu" and comp.kind == "cpu" and comp.cpufreq_policy is None:
            problems.append(f"{board.name}: component {comp.name}: no cpufreq_policy")
        if comp.kind == "gpu" and comp.devfreq is None:
            problems.append(f"{board.name}: component {comp.name}: no devfreq (its frequency cannot be pinned)")
        if comp.peak_gflops is None:
            problems.append(f"{board.name}: component {comp.name}: no peak_gflops (the roofline needs it)")
    if board.soc != "host_cpu" and board.gpu is None:
        problems.append(f"{board.name}: no socfarm_gpu (devfreq node)")
    if board.meter is None and board.power_sensors is None:
        problems.append(f"{board.name}: neither socfarm_meter nor socfarm_power_sensors: no energy figures")
    if facts is None:
        return problems
    topo = facts.get("topology") or {}
    usable = set(facts.get("usable_cpus") or topo.get("usable_cpus") or [])
    policies = topo.get("cpufreq_policies") or {}
    for comp in board.components:
        missing = sorted(set(comp.cpus) - usable) if usable else []
        if missing:
            problems.append(f"{board.name}: component {comp.name}: cpus {missing} not usable on the board "
                            f"(has {sorted(usable)})")
        if comp.cpufreq_policy and comp.cpufreq_policy not in policies:
            problems.append(f"{board.name}: component {comp.name}: cpufreq policy {comp.cpufreq_policy} not on "
                            f"the board (has {', '.join(sorted(policies)) or 'none'})")
        if comp.devfreq and comp.devfreq not in (topo.get("devfreq") or []):
            problems.append(f"{board.name}: component {comp.name}: devfreq node {comp.devfreq} not on the board "
                            f"(has {', '.join(topo.get('devfreq') or []) or 'none'})")
    if board.gpu and board.gpu.devfreq not in (topo.get("devfreq") or []):
        problems.append(f"{board.name}: devfreq node {board.gpu.devfreq} not on the board "
                        f"(has {', '.join(topo.get('devfreq') or []) or 'none'})")
    return problems


@inventory_app.command("check")
def inventory_check(
    inventory: Path = INVENTORY,
    state: Path = STATE,
    facts: bool = typer.Option(False, "--facts", help="Also compare with the facts of the last provisioning."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Validate the inventory against what each SoC group must describe; with --facts, against the boards."""
    from orchestrator.config.load import load_inventory

    lab = load_inventory(inventory)
    known = load_facts(state) if facts else {}
    report = {}
    for board in lab.boards:
        if facts and board.name not in known:
            report[board.name] = [f"{board.name}: no facts yet (run `orchestrator provision`)"]
            continue
        report[board.name] = check_board(board, known.get(board.name) if facts else None)
    if as_json:
        out.print_json(json.dumps(report))
    else:
        for board, problems in report.items():
            out.print(f"{board}: " + ("ok" if not problems else f"{len(problems)} problem(s)"), highlight=False)
            for p in problems:
                out.print(f"  {p}", highlight=False, markup=False)
    if any(report.values()):
        raise typer.Exit(2)


@farm_app.command("status")
def farm_status(
    inventory: Path = INVENTORY,
    state: Path = STATE,
    store: Path = typer.Option(Path("runs"), "--store"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Boards, who holds which lease, their last provisioning facts and last results."""
    from orchestrator.config.load import load_inventory
    from orchestrator.results.store import Store
    from orchestrator.scheduler.leases import LeaseTable

    lab: Lab = load_inventory(inventory)
    leases = LeaseTable(state / "leases")
    known = load_facts(state)
    last: dict[str, dict[str, Any]] = {}
    for run in Store(store).runs():
        meta = run.meta
        for board, reason in (meta.get("quarantined") or {}).items():
            last.setdefault(board, {})["quarantined_in"] = f"{run.run_id}: {reason}"
        for rec in run.journal_records():
            if rec.get("state") == "done" and rec.get("board"):
                last.setdefault(rec["board"], {}).update(last_run=run.run_id, last_result=rec.get("t_wall"))
    rows = []
    for board in lab.boards:
        lease = leases.read(board.name)
        f = known.get(board.name, {})
        rows.append({
            "board": board.name,
            "soc": board.soc,
            "address": board.address,
            "lease": None if lease is None or leases.is_stale(lease) else lease.describe(),
            "runtime": f"{f.get('runtime_module')} {f.get('runtime_version')}" if f else None,
            "arch": f.get("arch") if f else None,
            "glibc": f.get("glibc") if f else None,
            "last_run": last.get(board.name, {}).get("last_run"),
            "quarantined": last.get(board.name, {}).get("quarantined_in"),
        })
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table(title=f"{len(rows)} boards in {inventory}")
    for col in ("board", "soc", "address", "lease", "runtime", "userland", "last run", "last quarantine"):
        table.add_column(col)
    for r in rows:
        userland = f"{r['arch']}, glibc {r['glibc']}" if r["arch"] else "–"
        table.add_row(r["board"], r["soc"], r["address"] or "", r["lease"] or "free", r["runtime"] or "not provisioned",
                      userland, r["last_run"] or "–", r["quarantined"] or "–")
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command("provision")(provision_command)
    app.add_typer(inventory_app, name="inventory")
    app.add_typer(farm_app, name="farm")

"""Experiments x inventory x zoo -> the ordered list of jobs. Pure: no I/O.

Every problem found is collected (not just the first) and reported with the
file, line and field of the experiments file that caused it.
"""

from __future__ import annotations

from typing import Callable

from orchestrator.config.experiment import Experiment, ExperimentsFile, MatchRule
from orchestrator.config.inventory import DRIVEN_KINDS, Board, Component, Lab
from orchestrator.config.yaml_source import Loc
from orchestrator.errors import ConfigError
from orchestrator.jobs import Job, Member, make_job_id
from orchestrator.zoo.manifest import Manifest

Where = Callable[[Loc], str]


def _plain_where(loc: Loc) -> str:
    return ".".join(str(p) for p in loc)


COEXEC = "+"


def _select_components(board: Board, selectors: list[str]) -> list[Component]:
    """Components named by name, by class (big, little, gpu, ...) or 'all', in inventory order."""
    wanted = set(selectors)
    return [c for c in board.components if "all" in wanted or c.name in wanted or c.component_class in wanted]


def _component_sets(board: Board, selectors: list[str]) -> list[list[Component]]:
    """One set per isolated component, then one per co-execution selector ("big+little")."""
    singles = [s for s in selectors if COEXEC not in s]
    sets = [[c] for c in _select_components(board, singles)] if singles else []
    for sel in selectors:
        if COEXEC in sel:
            sets.append(_select_components(board, sel.split(COEXEC)))
    return sets


def _selector_problem(board: Board, sel: str) -> str | None:
    if COEXEC not in sel:
        return None if _select_components(board, [sel]) else "unknown"
    parts = sel.split(COEXEC)
    if any(not _select_components(board, [p]) for p in parts):
        return "unknown"
    chosen = _select_components(board, parts)
    if len(chosen) < 2:
        return "selects fewer than two components"
    cpus = [c for comp in chosen for c in comp.cpus]
    return "components share CPUs" if len(cpus) != len(set(cpus)) else None


def _matches(rule: MatchRule, job: Job, board: Board) -> bool:
    checks = (
        (rule.boards, {job.board, *board.groups}),
        (rule.components, {job.component, job.component_class}),
        (rule.models, {job.model}),
        (rule.dtypes, {job.dtype}),
    )
    return all(wanted is None or bool(set(wanted) & values) for wanted, values in checks)


def _kept(job: Job, board: Board, exp: Experiment) -> bool:
    if exp.include is not None and not any(_matches(r, job, board) for r in exp.include):
        return False
    return not any(_matches(r, job, board) for r in exp.exclude)


_DTYPE_ORDER = ("float32", "int8", "uint8")


def _dtypes(exp: Experiment, manifest: Manifest, model: str) -> list[str]:
    """The dtypes ``model`` is measured in: the experiment's when it lists them; otherwise the default
    (float32, int8) for built networks, and the dtypes the zoo has for a model added with `zoo add`."""
    if "dtypes" in exp.model_fields_set:
        return list(exp.dtypes)
    entries = [e for e in manifest.models if e.name == model]
    if entries and all(e.added for e in entries):
        return sorted({e.dtype for e in entries}, key=_DTYPE_ORDER.index)
    return list(exp.dtypes)


def plan(spec: ExperimentsFile, lab: Lab, manifest: Manifest, where: Where = _plain_where) -> list[Job]:
    problems: list[str] = []
    jobs: list[Job] = []
    known_selectors = {"all"} | {b.name for b in lab.boards} | {g for b in lab.boards for g in b.groups}

    for ei, exp in enumerate(spec.experiments):
        base: Loc = ("experiments", ei)
        rules = exp.rules or spec.rules

        for bi, sel in enumerate(exp.boards):
            if sel not in known_selectors:
                problems.append(
                    f"{where(base + ('boards', bi))}: no board or group {sel!r} in {lab.source} "
                    f"(boards: {', '.join(b.name for b in lab.boards)})"
                )
        boards = lab.select(exp.boards)

        for mi, model in enumerate(exp.models):
            for dtype in _dtypes(exp, manifest, model):
                if manifest.find(model, dtype) is None:
                    has = manifest.dtypes_of(model)
                    names = sorted({m.name for m in manifest.models})
                    problems.append(
                        f"{where(base + ('models', mi))}: model {model!r} ({dtype}) is not in the zoo " + (
                            f"(it has {model} in {', '.join(has)} only)" if has else f"(has: {', '.join(names)})")
                    )

        for ci, sel in enumerate(exp.components):
            if sel == "all":
                continue
            found = {b.name: _selector_problem(b, sel) for b in boards}
            missing = [b for b, problem in found.items() if problem == "unknown"]
            if missing:
                known = sorted({c.name for b in boards for c in b.components}
                               | {c.component_class for b in boards for c in b.components})
                problems.append(
                    f"{where(base + ('components', ci))}: unknown component {sel!r} on board(s) "
                    f"{', '.join(missing)} (known names and classes: {', '.join(known)})"
                )
            for b, problem in found.items():
                if problem not in (None, "unknown"):
                    problems.append(f"{where(base + ('components', ci))}: co-execution {sel!r} on {b}: {problem}")
        if exp.frequencies:
            for board in boards:
                for members in _component_sets(board, exp.components):
                    for c in members:
                        if c.kind not in DRIVEN_KINDS and c.frequency_domain is None:
                            field = "devfreq" if c.kind == "gpu" else "cpufreq_policy"
                            problems.append(f"{where(base + ('frequencies',))}: component {c.name} of {board.name} "
                                            f"has no {field} in the inventory, so it cannot be pinned")
        if problems:
            continue

        for board in boards:
            for members in _component_sets(board, exp.components):
                for model in exp.models:
                    for dtype in _dtypes(exp, manifest, model):
                        entry = manifest.find(model, dtype)
                        for freq, repeat in ((f, r) for f in (exp.frequencies or [None])
                                             for r in range(1, exp.repeats + 1)):
                            freq = None if freq is None else str(freq)
                            job = (
                                Job(
                                    job_id=make_job_id(len(jobs), board.name, COEXEC.join(c.name for c in members),
                                                       model, dtype, repeat, freq),
                                    experiment=exp.name,
                                    board=board.name,
                                    soc=board.soc,
                                    component=COEXEC.join(c.name for c in members),
                                    component_class=COEXEC.join(c.component_class for c in members),
                                    cpus=tuple(cpu for c in members for cpu in c.cpus),
                                    threads=sum(c.effective_threads for c in members),
                                    model=model,
                                    model_display=entry.display_name,
                                    dtype=dtype,
                                    model_file=entry.file,
                                    model_sha256=entry.sha256,
                                    repeat=repeat,
                                    rules=rules,
                                    members=tuple(Member.of(c) for c in members),
                                    frequency=freq,
                                    input_shape=tuple(entry.input_shape),
                                    thermal_zones=tuple(board.thermal.zones) if board.thermal else (),
                                )
                            )
                            if _kept(job, board, exp):
                                jobs.append(job)
        if not boards:
            problems.append(f"{where(base + ('boards',))}: selects no board")

    if problems:
        raise ConfigError("the experiments cannot be planned", problems)
    if not jobs:
        raise ConfigError("the experiments expand to zero jobs", [where(("experiments",))])
    return jobs

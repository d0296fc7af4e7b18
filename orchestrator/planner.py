"""Experiments x inventory x zoo -> the ordered list of jobs. Pure: no I/O.

Every problem found is collected (not just the first) and reported with the
file, line and field of the experiments file that caused it.
"""

from __future__ import annotations

from typing import Callable

from orchestrator.config.experiment import ExperimentsFile
from orchestrator.config.inventory import Board, Component, Lab
from orchestrator.config.yaml_source import Loc
from orchestrator.errors import ConfigError
from orchestrator.jobs import Job, make_job_id
from orchestrator.zoo.manifest import Manifest

Where = Callable[[Loc], str]


def _plain_where(loc: Loc) -> str:
    return ".".join(str(p) for p in loc)


def _select_components(board: Board, selectors: list[str]) -> list[Component]:
    """Components named by name, by class (big, little, gpu, ...) or 'all', in inventory order."""
    wanted = set(selectors)
    return [c for c in board.components if "all" in wanted or c.name in wanted or c.component_class in wanted]


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
            for dtype in exp.dtypes:
                if manifest.find(model, dtype) is None:
                    names = sorted({m.name for m in manifest.models})
                    problems.append(
                        f"{where(base + ('models', mi))}: model {model!r} ({dtype}) is not in the zoo "
                        f"(has: {', '.join(names)})"
                    )

        for ci, sel in enumerate(exp.components):
            if sel == "all":
                continue
            missing = [b.name for b in boards if not _select_components(b, [sel])]
            if missing:
                known = sorted({c.name for b in boards for c in b.components}
                               | {c.component_class for b in boards for c in b.components})
                problems.append(
                    f"{where(base + ('components', ci))}: unknown component {sel!r} on board(s) "
                    f"{', '.join(missing)} (known names and classes: {', '.join(known)})"
                )
        if problems:
            continue

        for board in boards:
            for comp in _select_components(board, exp.components):
                for model in exp.models:
                    for dtype in exp.dtypes:
                        entry = manifest.find(model, dtype)
                        for repeat in range(1, exp.repeats + 1):
                            jobs.append(
                                Job(
                                    job_id=make_job_id(len(jobs), board.name, comp.name, model, dtype, repeat),
                                    experiment=exp.name,
                                    board=board.name,
                                    soc=board.soc,
                                    component=comp.name,
                                    component_class=comp.component_class,
                                    cpus=tuple(comp.cpus),
                                    threads=comp.effective_threads,
                                    model=model,
                                    model_display=entry.display_name,
                                    dtype=dtype,
                                    model_file=entry.file,
                                    model_sha256=entry.sha256,
                                    repeat=repeat,
                                    rules=rules,
                                )
                            )
        if not boards:
            problems.append(f"{where(base + ('boards',))}: selects no board")

    if problems:
        raise ConfigError("the experiments cannot be planned", problems)
    if not jobs:
        raise ConfigError("the experiments expand to zero jobs", [where(("experiments",))])
    return jobs

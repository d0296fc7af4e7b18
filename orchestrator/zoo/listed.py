"""Models an experiments file lists by path (``models: [mobilenet_v1, ./my_net.tflite]``).

Each path (relative to the experiments file) is checked like ``zoo add`` does,
before any board is touched, and stands for the name it gets in the zoo (the
file's stem): job ids, results and reports use that name. Problems name the
experiments file, line and field, then the model file and the operator or
tensor. :func:`check_listed` writes nothing; the sweep commits the additions
(:func:`orchestrator.zoo.add.commit`) once the whole plan is valid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from orchestrator.config.experiment import ExperimentsFile, is_model_path
from orchestrator.config.yaml_source import Loc
from orchestrator.errors import ConfigError
from orchestrator.zoo.add import Added, check_files
from orchestrator.zoo.validate import ModelRefused

__all__ = ["check_listed"]


def _listed(spec: ExperimentsFile) -> list[tuple[Loc, str]]:
    """(location, item) of every path in ``models:`` and in include/exclude rules."""
    found: list[tuple[Loc, str]] = []
    for ei, exp in enumerate(spec.experiments):
        base: Loc = ("experiments", ei)
        found += [(base + ("models", mi), m) for mi, m in enumerate(exp.models) if is_model_path(m)]
        for field, rules in (("include", exp.include or []), ("exclude", exp.exclude)):
            for ri, rule in enumerate(rules):
                found += [(base + (field, ri, "models", mi), m) for mi, m in enumerate(rule.models or [])
                          if is_model_path(m)]
    return found


def _renamed(items: list[str], names: dict[str, str]) -> list[str]:
    return list(dict.fromkeys(names.get(m, m) for m in items))


def check_listed(spec: ExperimentsFile, where: Callable[[Loc], str], base_dir: Path,
                 zoo_dir: Path) -> tuple[ExperimentsFile, list[Added]]:
    """The experiments with every model path replaced by its zoo name, and the additions to commit."""
    listed = _listed(spec)
    if not listed:
        return spec, []
    problems: list[str] = []
    by_path: dict[Path, Added] = {}
    first_loc: dict[Path, Loc] = {}
    names: dict[str, str] = {}
    for loc, item in listed:
        path = (base_dir / item).resolve()
        if path not in by_path and path not in first_loc:
            first_loc[path] = loc
            try:
                (added,) = check_files(zoo_dir, [path])
            except ModelRefused as exc:
                problems += [f"{where(loc)}: {p}" for p in exc.problems]
                continue
            twin = next((a for a in by_path.values() if (a.entry.name, a.entry.dtype) == (added.entry.name,
                                                                                         added.entry.dtype)), None)
            if twin is not None:
                problems.append(f"{where(loc)}: {path} and {twin.path} would both be {added.entry.name} "
                                f"({added.entry.dtype}) in the zoo; rename one, or add it with `orchestrator zoo "
                                "add FILE --name NAME` and list the name")
                continue
            by_path[path] = added
        if path in by_path:
            names[item] = by_path[path].entry.name
    if problems:
        raise ConfigError("models listed by path cannot be measured (nothing was added to the zoo)", problems)
    experiments = []
    for exp in spec.experiments:
        update: dict = {"models": _renamed(exp.models, names)}
        for field in ("include", "exclude"):
            rules = getattr(exp, field)
            if rules:
                update[field] = [r.model_copy(update={"models": _renamed(r.models, names)}) if r.models else r
                                 for r in rules]
        experiments.append(exp.model_copy(update=update))
    return spec.model_copy(update={"experiments": experiments}), list(by_path.values())

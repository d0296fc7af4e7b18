"""What a resumed run must find unchanged: every input that shapes one of its jobs.

A run records, when it starts, each board's inventory entry (``run.json`` ``boards``: components, CPUs,
threads, meter and sensor settings, thermal limits) and each job's shape (``inputs/jobs.json``: the job as
planned, with the sha256 of its model file and its measurement rules). ``--resume`` re-plans from the same
files and refuses when any of it differs, naming each difference, because the rest of the run would measure
something else than its first part under the same job ids.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from typing import Any, Iterator

from orchestrator.config.inventory import Board
from orchestrator.jobs import Job
from orchestrator.results.store import RunDir

__all__ = ["job_shape", "board_entry", "write_job_shapes", "changed_inputs", "JOBS_FILE"]

JOBS_FILE = "jobs.json"
MAX_LISTED = 12


def job_shape(job: Job) -> dict[str, Any]:
    """The job as planned, as JSON (everything the agent's spec and the results row are made from)."""
    shape = dataclasses.asdict(job)
    shape["rules"] = job.rules.model_dump(mode="json")
    return json.loads(json.dumps(shape))  # tuples -> lists, as read back


def board_entry(board: Board) -> dict[str, Any]:
    return board.model_dump(mode="json", by_alias=True)


def write_job_shapes(run: RunDir, jobs: list[Job]) -> None:
    path = run.path / "inputs" / JOBS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({j.job_id: job_shape(j) for j in jobs}, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)


def _leaves(old: Any, new: Any, path: str) -> Iterator[tuple[str, Any, Any]]:
    """(path, old, new) of every differing leaf of two JSON values."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            yield from _leaves(old.get(key), new.get(key), f"{path}.{key}" if path else str(key))
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new) and any(
            isinstance(x, (dict, list)) for x in old + new):
        for i, (a, b) in enumerate(zip(old, new)):
            yield from _leaves(a, b, f"{path}[{i}]")
    elif old != new:
        yield path, old, new


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:16] + "…" + text[-8:]


def changed_inputs(run: RunDir, jobs: list[Job], boards: list[Board]) -> list[str]:
    """What differs between the run's recorded inputs and a new plan of the same jobs (empty: nothing)."""
    problems = []
    recorded = run.meta.get("boards") or {}
    for board in boards:
        if board.name not in recorded:
            continue
        for path, old, new in _leaves(recorded[board.name], board_entry(board), ""):
            problems.append(f"inventory, board {board.name}: {path}: {_show(old)} -> {_show(new)}")
    shapes_file = run.path / "inputs" / JOBS_FILE
    if shapes_file.exists():  # runs started before the file existed are checked on their job ids only
        stored = json.loads(shapes_file.read_text())
        seen: dict[tuple[str, str, str], list[str]] = defaultdict(list)
        for job in jobs:
            if job.job_id in stored:
                for path, old, new in _leaves(stored[job.job_id], job_shape(job), ""):
                    if not path.startswith("members"):  # the members repeat the board's entry, reported above
                        seen[(path, _show(old), _show(new))].append(job.job_id)
        for (path, old, new), ids in seen.items():
            what = "model file (zoo checksum) " if path == "model_sha256" else ""
            problems.append(f"{what}{path}: {old} -> {new} in {len(ids)} job(s), e.g. {ids[0]}")
    if len(problems) > MAX_LISTED:
        problems = problems[:MAX_LISTED] + [f"... and {len(problems) - MAX_LISTED} more"]
    return problems

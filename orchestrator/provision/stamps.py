"""What a board was last provisioned with, so a sweep can skip a provisioning that would change nothing.

A board's stamp is a hash of what provisioning puts on it: the playbooks, the
agent's source and the board's own inventory description; the model files
(name and sha256) are kept beside it. After a successful provisioning both are
recorded in ``<state>/provisioned.json``; a sweep whose stamp matches, whose
models the board already has and that has the board's facts does not run
Ansible for it again (``sweep --reprovision``
forces it; ``orchestrator provision`` always runs). What changes on the board
behind our back is still caught: the health check looks for the agent, and the
agent verifies every model's sha256 before it runs.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from orchestrator.config.inventory import Board
from orchestrator.provenance import REPO_ROOT
from orchestrator.provision.runner import PLAYBOOKS, BoardFacts, load_facts, merge_state, read_state

AGENT_SOURCE = REPO_ROOT / "device_agent"
STAMPS_FILE = "provisioned.json"


def _tree_digest() -> str:
    """The playbooks and the agent's source, as provisioning ships them (no byte-code caches)."""
    h = hashlib.sha256()
    for root in (PLAYBOOKS, AGENT_SOURCE):
        for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            h.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def board_stamps(boards: list[Board]) -> dict[str, str]:
    tree = _tree_digest()
    return {b.name: hashlib.sha256((tree + "\0" + json.dumps(b.model_dump(mode="json", by_alias=True),
                                                              sort_keys=True)).encode()).hexdigest()
            for b in boards}


def load_stamps(state_dir: Path) -> dict[str, Any]:
    return read_state(Path(state_dir) / STAMPS_FILE, "provisioning stamps")


def save_stamps(state_dir: Path, stamps: dict[str, str], model_files: list[dict[str, str]]) -> None:
    """Record the stamps and models of freshly provisioned boards (merged with the others)."""
    models = {m["file"]: m["sha256"] for m in model_files}
    merge_state(Path(state_dir) / STAMPS_FILE, "provisioning stamps",
                {b: {"stamp": s, "models": models, "t_wall": time.time()} for b, s in stamps.items()})


def already_provisioned(state_dir: Path, stamps: dict[str, str],
                        model_files: list[dict[str, str]]) -> dict[str, BoardFacts]:
    """Cached facts of the boards last provisioned with these stamps and (at least) these models."""
    known, facts = load_stamps(state_dir), load_facts(state_dir)
    wanted = {m["file"]: m["sha256"] for m in model_files}
    out = {}
    for board, stamp in stamps.items():
        entry = known.get(board) or {}
        has = entry.get("models") or {}
        if entry.get("stamp") != stamp or board not in facts or any(has.get(f) != h for f, h in wanted.items()):
            continue
        try:
            out[board] = BoardFacts.from_saved(facts[board])
        except TypeError:
            continue  # facts of an older layout: provision again
    return out

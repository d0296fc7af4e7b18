"""Read the experiments file and the inventory into validated models."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from orchestrator.config import inventory_cache
from orchestrator.config.experiment import ExperimentsFile
from orchestrator.config.inventory import Board, Lab
from orchestrator.config.yaml_source import SourceDoc, load_yaml, validation_problems
from orchestrator.errors import ConfigError


def load_experiments(path: Path) -> tuple[ExperimentsFile, SourceDoc]:
    doc = load_yaml(path)
    if not isinstance(doc.data, dict):
        raise ConfigError("invalid experiments file", [f"{path}:1: expected a mapping at the top level"])
    try:
        return ExperimentsFile.model_validate(doc.data), doc
    except ValidationError as exc:
        raise ConfigError("invalid experiments file", validation_problems(doc, exc)) from None


def tool_path(name: str) -> str:
    """An Ansible executable: the one beside this interpreter first, then PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise ConfigError(f"{name} not found beside {sys.executable} or on PATH (is ansible-core installed?)")
    return found


def ansible_env() -> dict[str, str]:
    """Environment for Ansible subprocesses: this venv's bin/ first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("ANSIBLE_NOCOLOR", "1")
    return env


def inventory_listing(path: Path, export: bool = False) -> dict[str, Any]:
    """What ``ansible-inventory --list`` makes of an inventory (Ansible's own precedence).

    With ``export``, group variables stay on their groups instead of being merged into hosts.
    Always runs ansible-inventory (``inventory_listings`` goes through the inventory cache).
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: inventory not found")
    proc = subprocess.run(
        [tool_path("ansible-inventory"), "-i", str(path), "--list", *(["--export"] if export else [])],
        capture_output=True,
        text=True,
        env=ansible_env(),
        timeout=120,
    )
    # ansible-inventory only warns on an unparsable source; treat that as fatal.
    warned = "Unable to parse" in proc.stderr or "Failed to parse" in proc.stderr
    if proc.returncode != 0 or warned:
        detail = "\n".join(line for line in proc.stderr.splitlines() if line.strip())
        raise ConfigError(f"{path}: ansible-inventory cannot read it", [detail])
    duplicates = re.findall(r"Found duplicate mapping key '([^']+)'\.\s*Origin: (\S+)", proc.stderr)
    if duplicates:
        raise ConfigError(f"{path}: duplicate names (Ansible would silently keep the last one)",
                          [f"{origin}: {key!r} defined twice" for key, origin in duplicates])
    return json.loads(proc.stdout)


def soc_conflicts(export: dict[str, Any]) -> list[str]:
    """Hosts whose groups disagree on ``socfarm_soc`` (Ansible would pick one by precedence)."""
    parents: dict[str, list[str]] = {}
    for group, entry in export.items():
        if group == "_meta":
            continue
        for child in entry.get("children", []):
            parents.setdefault(child, []).append(group)
        for host in entry.get("hosts", []):
            parents.setdefault(f"host:{host}", []).append(group)

    def ancestors(node: str) -> set[str]:
        seen: set[str] = set()
        todo = list(parents.get(node, []))
        while todo:
            g = todo.pop()
            if g not in seen:
                seen.add(g)
                todo.extend(parents.get(g, []))
        return seen

    problems = []
    for node in sorted(n for n in parents if n.startswith("host:")):
        socs = {g: export[g]["vars"]["socfarm_soc"] for g in ancestors(node)
                if "socfarm_soc" in export.get(g, {}).get("vars", {})}
        if len(set(socs.values())) > 1:
            detail = ", ".join(f"{g}: {soc}" for g, soc in sorted(socs.items()))
            problems.append(f"host {node[5:]} is in groups with different socfarm_soc ({detail})")
    return problems


def _host_groups(listing: dict[str, Any]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}

    def walk(group: str, trail: list[str]) -> None:
        entry = listing.get(group, {})
        for host in entry.get("hosts", []):
            groups.setdefault(host, [])
            for g in trail + [group]:
                if g not in ("all", "ungrouped") and g not in groups[host]:
                    groups[host].append(g)
        for child in entry.get("children", []):
            walk(child, trail + [group])

    walk("all", [])
    return groups


# Board field -> the inventory variable it comes from (for error messages).
_INVENTORY_VARS = {
    "soc": "socfarm_soc",
    "work_dir": "socfarm_work_dir",
    "components": "socfarm_components",
    "meter": "socfarm_meter",
    "address": "ansible_host",
    "sysfs_root": "socfarm_sysfs_root",
    "gpu": "socfarm_gpu",
    "power_sensors": "socfarm_power_sensors",
    "thermal": "socfarm_thermal",
    "emulated": "socfarm_emulated",
}


def lab_from_listing(listing: dict[str, Any], source: str) -> Lab:
    hostvars = listing.get("_meta", {}).get("hostvars", {})
    problems: list[str] = []
    boards: list[Board] = []
    for host, groups in _host_groups(listing).items():
        hv = hostvars.get(host, {})
        ssh = {
            "user": hv.get("ansible_user"),
            "port": hv.get("ansible_port"),
            "key_file": hv.get("ansible_ssh_private_key_file"),
            "known_hosts": hv.get("socfarm_known_hosts"),
        }
        raw = {
            "name": host,
            "soc": hv.get("socfarm_soc"),
            "groups": tuple(groups),
            "connection": "local" if hv.get("ansible_connection") == "local" else "ssh",
            "address": hv.get("ansible_host", host),
            "work_dir": hv.get("socfarm_work_dir"),
            "sysfs_root": hv.get("socfarm_sysfs_root"),
            "components": hv.get("socfarm_components"),
            "gpu": hv.get("socfarm_gpu"),
            "power_sensors": hv.get("socfarm_power_sensors"),
            "thermal": hv.get("socfarm_thermal"),
            "meter": hv.get("socfarm_meter"),
            "emulated": hv.get("socfarm_emulated"),
            "ssh": {k: v for k, v in ssh.items() if v is not None},
        }
        raw = {k: v for k, v in raw.items() if v is not None}
        try:
            boards.append(Board.model_validate(raw))
        except ValidationError as exc:
            for err in exc.errors():
                loc = [str(p) for p in err["loc"]] or ["(host)"]
                field = ".".join([_INVENTORY_VARS.get(loc[0], loc[0]), *loc[1:]])
                msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
                problems.append(f"{source}: host {host}: {field}: {msg}")
    if problems:
        raise ConfigError("invalid inventory", problems)
    if not boards:
        raise ConfigError(f"{source}: the inventory has no hosts")
    return Lab(source=source, boards=boards)


def inventory_listings(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both listings of an inventory: ``--list`` (merged) and ``--export`` (group variables on their groups).

    For a static inventory that has not changed (nor its group_vars, host_vars, Ansible
    config, ANSIBLE_* environment or Ansible), they come from the inventory cache
    (``inventory_cache``); otherwise from two ansible-inventory runs, side by side (each is
    mostly Ansible's start-up), which are then kept if they are clean (errors are never kept).
    """
    path = Path(path)
    tool = tool_path("ansible-inventory") if path.exists() else None
    key = inventory_cache.inventory_key(path, tool) if tool else None
    cached = inventory_cache.fetch(key) if key else None
    if cached is not None:
        return cached
    with ThreadPoolExecutor(max_workers=2) as pool:
        merged = pool.submit(inventory_listing, path)
        export = pool.submit(inventory_listing, path, True)
        listing, exported = merged.result(), export.result()
    # kept only if nothing changed while Ansible read it (else the listings may not match the key)
    if key and inventory_cache.inventory_key(path, tool) == key:
        inventory_cache.store(key, listing, exported)
    return listing, exported


def load_inventory(path: Path) -> Lab:
    listing, export = inventory_listings(path)
    conflicts = soc_conflicts(export)
    if conflicts:
        raise ConfigError(f"{path}: a board cannot belong to two SoCs", conflicts)
    return lab_from_listing(listing, str(path))

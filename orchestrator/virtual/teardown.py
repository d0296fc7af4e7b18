"""A farm's record on disk (``farm.json``), what is left of it, and its removal.

``farm.json`` is written before anything is created, so everything here
works from a fresh process given only the state directory: after a crash,
``teardown(state_dir)`` removes what the farm left (processes, sysfs mounts,
veths, namespaces, bridge, routing guard).
"""

from __future__ import annotations

import shutil

import json
import os
import time
from pathlib import Path

from orchestrator.errors import StableError
from orchestrator.virtual import netns

FARM_FILE = "farm.json"
SUBNET = "10.231"
GUARD_BASE = 23100  # ip rule priority and routing table of a farm's guard: GUARD_BASE + k


class FarmError(StableError):
    """The virtual farm could not be brought up, reached or torn down."""


def farm_names(farm_id: str, k: int) -> dict:
    return {"bridge": f"sfbr{farm_id}", "bridge_address": f"{SUBNET}.{k}.1",
            "subnet": f"{SUBNET}.{k}.0/24", "guard": GUARD_BASE + k}


def load_record(state_dir: Path) -> dict | None:
    path = Path(state_dir) / FARM_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def save_record(state_dir: Path, record: dict) -> None:
    path = Path(state_dir) / FARM_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)


def _guard_present(guard: int) -> bool:
    out = netns.ip("rule", "show", "priority", str(guard), check=False).stdout
    return bool(out.strip())


def leftovers_of(record: dict | None) -> list[str]:
    """What of the farm described by ``record`` still exists (empty once it is down)."""
    if not record:
        return []
    found: list[str] = []
    namespaces = netns.netns_list()
    link_names = netns.links()
    if record["bridge"] in link_names:
        found.append(f"link {record['bridge']}")
    if _guard_present(record["guard"]):
        found.append(f"ip rule {record['guard']}")
    for b in record["boards"]:
        if b["netns"] in namespaces:
            found.append(f"netns {b['netns']}")
        if netns.is_mountpoint(_sys_root(b)):
            found.append(f"mount {_sys_root(b)}")
        if b.get("root") and netns.is_mountpoint(Path(b["root"])):
            found.append(f"mount {b['root']}")
        if netns.netns_mounted(b["netns"]):
            found.append(f"mount /run/netns/{b['netns']}")
        if b["veth_host"] in link_names:
            found.append(f"link {b['veth_host']}")
        if netns.etc_dir(b["netns"]).exists():
            found.append(f"dir {netns.etc_dir(b['netns'])}")
        for pid in sorted(netns.netns_pids(b["netns"])):
            found.append(f"pid {pid} in {b['netns']}")
        for pid in sorted(netns.pids_with_cmdline(_sshd_config(b))):
            if not any(f.startswith(f"pid {pid} ") for f in found):
                found.append(f"pid {pid} (sshd of {b['name']})")
    return found


def _sshd_config(board_record: dict) -> str:
    return str(Path(board_record["dir"]) / "sshd_config")


def _sys_root(board_record: dict) -> Path:
    return Path(board_record["dir"]) / "sys"


def teardown(state_dir: Path, *, timeout_s: float = 15.0) -> list[str]:
    """Remove the farm recorded in ``state_dir``: processes, veths, namespaces, bridge, guard.

    Works after a crash. Returns the leftovers (empty on success).
    """
    record = load_record(state_dir)
    if record is None or record.get("status") == "down":
        return []  # nothing recorded, or already removed (its names may belong to a newer farm now)
    deadline = time.monotonic() + timeout_s
    for b in record["boards"]:
        pids = netns.netns_pids(b["netns"])
        pids |= netns.pids_with_cmdline(_sshd_config(b))  # the listener and its timeout wrapper
        left = netns.kill_all(pids, timeout_s=max(1.0, deadline - time.monotonic()))
        if left:
            raise FarmError(f"{b['name']}: processes survive SIGKILL: {sorted(left)}")
    for b in record["boards"]:
        if b.get("root"):  # an emulated userland: its root holds binds of the sysfs tree and work folder
            netns.unmount_tree(Path(b["root"]))
        sys_root = _sys_root(b)
        for _ in range(10):  # a failed start may have stacked mounts; never loop for ever
            if not netns.is_mountpoint(sys_root):
                break
            if netns.run("umount", str(sys_root), check=False).returncode != 0:
                netns.run("umount", "-l", str(sys_root), check=False)  # busy: detach now, free when idle
                break
    links = netns.links()
    for b in record["boards"]:  # veths first: netns deletion is asynchronous
        if b["veth_host"] in links:
            netns.ip("link", "del", b["veth_host"], check=False)
    for b in record["boards"]:
        if b["netns"] in netns.netns_list():
            netns.ip("netns", "del", b["netns"], check=False)
        shutil.rmtree(netns.etc_dir(b["netns"]), ignore_errors=True)
    if record["bridge"] in netns.links():
        netns.ip("link", "del", record["bridge"], check=False)
    for _ in range(10):
        if not _guard_present(record["guard"]):
            break
        netns.ip("rule", "del", "priority", str(record["guard"]), check=False)
    netns.ip("route", "flush", "table", str(record["guard"]), check=False)
    left = leftovers_of(record)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = leftovers_of(record)
    record["status"] = "down" if not left else "down-incomplete"
    save_record(state_dir, record)
    return left

"""An Ansible inventory for a running virtual farm.

Same variable names as the real farm's ``inventory/farm.yml``: one group per
SoC type whose ``vars`` describe the SoC (on a real farm they live in
``inventory/group_vars/<group>.yml``), and per host its address, work
directory and sysfs root. On a virtual board the components' ``cpus`` are
this machine's CPUs that stand in for each cluster (the farm's ``cpu_map``);
the comment gives the real board's CPUs. Check with
``ansible-inventory -i FILE --list``.

``simulated=True`` gives every board ``simulated`` components instead (same
names, classes and CPUs): their inference is a modelled latency the agent
sleeps for (``SIMULATED_LATENCY``: per SoC and cluster class, a fixed part
plus a part per MiB of the model file), so the boards' windows cost this
machine no CPU and a sweep measures the orchestrator's own cost. Every
figure of them is labelled simulated.
"""

from __future__ import annotations

import json
from decimal import Decimal
import os
import re
from pathlib import Path
from typing import Sequence

from orchestrator.virtual.farm import VirtualBoard, VirtualFarm
from orchestrator.virtual.userland import emulation

GROUPS = ("odroid_xu3", "hikey970")  # inventory group = our SoC name
METER_DEFAULTS = {"kind": "b2900", "resource": None, "measures": "board_supply", "voltage_v": 12.0,
                  "current_limit_a": 3.0, "aperture_s": 0.00008, "interval_s": 0.0001}  # 10 kHz
#: SoC group -> cluster class -> (ms_per_inference, ms_per_mib) of its simulated component: a modelled latency
#: (MobileNet v1 float32, 16 MiB: ~85 ms on an XU3's A15s, ~60 ms on a HiKey 970's A73s), not a calibration
SIMULATED_LATENCY = {"odroid_xu3": {"big": (5.0, 5.0), "little": (12.0, 12.0)},
                     "hikey970": {"big": (4.0, 3.5), "little": (9.0, 8.0)}}
SIMULATED_SIGMA = 0.05
COOLDOWN_C = 55.0  # the real boards' default (inventory/group_vars); a virtual board idles at ~40 °C
_PLAIN = re.compile(r"^[A-Za-z0-9_./][A-Za-z0-9_./@+-]*( [A-Za-z0-9_./@+-]+)*$")  # safe in flow and block context
_NUMBERLIKE = re.compile(r"^[-+]?(\d[\d_]*)?(\.\d*)?([eE][-+]?\d+)?$")
_BASED_INT = re.compile(r"^[-+]?0[xXoObB]")


def _s(value) -> str:
    """A YAML scalar: plain when unambiguous, else double-quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and "e" in repr(value).lower():
        # YAML 1.1 (PyYAML, Ansible) reads 8e-05 as a string: write the number out in full
        text = format(Decimal(repr(value)), "f")
        return text if "." in text else text + ".0"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if _PLAIN.match(text) and not _NUMBERLIKE.match(text) and not _BASED_INT.match(text) and text.lower() not in (
            "true", "false", "yes", "no", "on", "off", "null", "~"):
        return text
    return json.dumps(text)


def _flow(mapping: dict) -> str:
    return "{" + ", ".join(f"{k}: {_s(v)}" for k, v in mapping.items()) + "}"


def _cpus(cpus) -> str:
    return "[" + ", ".join(str(c) for c in cpus) + "]"


def _sensor_lines(b: VirtualBoard, indent: str) -> list[str]:
    if not b.layout.rails:
        return []
    rails = ", ".join(f"{r.name}: {_s(r.path)}" for r in b.layout.rails)
    return [f"{indent}socfarm_power_sensors:",
            f"{indent}  kind: {b.layout.sensor_kind}",
            f"{indent}  simulated: true  # the board simulator's model, not a chip",
            f"{indent}  rails: {{{rails}}}"]


def _thermal_lines(b: VirtualBoard, indent: str) -> list[str]:
    """The zones the board simulator heats (its model, not sensors), and the cool-down of a real board."""
    zones = ", ".join(z.path.rsplit("/", 1)[-1] for z in b.layout.thermal_zones)
    return [f"{indent}socfarm_thermal:",
            f"{indent}  zones: [{zones}]",
            f"{indent}  cooldown_c: {_s(COOLDOWN_C)}",
            f"{indent}  simulated: true  # the board simulator's model, not a sensor"]


def _meters(farm: VirtualFarm, meters: list[dict]) -> dict[str, dict]:
    """Board name -> its meter's variables (defaults filled in)."""
    out: dict[str, dict] = {}
    for meter in meters:
        meter = dict(meter)
        host = meter.pop("board", None)
        if host not in farm.boards:
            raise ValueError(f"meter board {host!r} is not in the farm ({', '.join(farm.boards)})")
        if host in out:
            raise ValueError(f"board {host!r} has two meters")
        out[host] = {**METER_DEFAULTS, **meter}
        if not out[host].get("resource"):
            raise ValueError("a meter needs a VISA 'resource', e.g. TCPIP::127.0.0.1::5025::SOCKET")
    return out


def _component_line(group: str, c, cpus, simulated: bool) -> str:
    if not simulated:
        return f"          - {{name: {c.name}, class: {c.cls}, cpus: {_cpus(cpus)}, cpufreq_policy: {c.policy}}}"
    ms, per_mib = SIMULATED_LATENCY[group][c.cls]
    return (f"          - {{name: {c.name}, class: {c.cls}, kind: simulated, cpus: {_cpus(cpus)}, "
            f"ms_per_inference: {_s(ms)}, ms_per_mib: {_s(per_mib)}, sigma: {_s(SIMULATED_SIGMA)}}}")


def render_inventory(farm: VirtualFarm, *, meter: dict | None = None, meters: Sequence[dict] = (),
                     simulated: bool = False) -> str:
    """The farm's inventory; ``meter`` (one) or ``meters`` (several) put a supply meter
    ``{"board": NAME, "resource": VISA, ...}`` on boards; ``simulated``: every component is of the
    ``simulated`` kind (a modelled latency, labelled simulated wherever it appears)."""
    if not farm.boards:
        raise ValueError("the farm is not up: no boards to describe")
    by_board = _meters(farm, [*([meter] if meter is not None else []), *meters])
    state = farm.state_dir
    lines = [
        f"# Generated by orchestrator.virtual for farm {farm.farm_id} ({state}); rewritten on every 'up'.",
        "all:",
        "  vars:",
        "    ansible_user: root",
        f"    ansible_ssh_private_key_file: {_s(farm.key_file)}",
        "    ansible_ssh_common_args: "
        + json.dumps(f"-o UserKnownHostsFile={farm.known_hosts} -o StrictHostKeyChecking=yes"),
        f"    socfarm_known_hosts: {_s(farm.known_hosts)}",
        "  children:",
    ]
    for group in GROUPS:
        members = [b for b in farm.boards.values() if b.spec.soc == group]
        if not members:
            continue
        first = members[0]
        layout = first.layout
        variants = {b.spec.sensors for b in members}
        lines += [f"    {group}:",
                  "      vars:",
                  f"        socfarm_soc: {layout.soc_id}",
                  "        ansible_python_interpreter: /usr/bin/python3",
                  *(["        # simulated components: a modelled latency (seeded lognormal the agent sleeps for), "
                     "no inference: not performance figures"] if simulated else []),
                  "        socfarm_components:"]
        for c in layout.clusters:
            entry = _component_line(group, c, first.cpu_map[c.name], simulated)
            lines.append(f"{entry:<80}# real farm: cpus [{','.join(map(str, c.cpus))}]")
        lines.append(f"        socfarm_gpu: {_flow({'devfreq': layout.devfreq.name, 'name': layout.devfreq.gpu})}")
        lines += _thermal_lines(first, "        ")
        if len(variants) == 1:
            lines += _sensor_lines(first, "        ")
        lines.append("      hosts:")
        for b in members:
            offset_s = farm.clock_offset_ns(b.name) / 1e9
            lines += [f"        {b.name}:",
                      f"          # clock: CLOCK_MONOTONIC = this machine's {offset_s:+.9f} s",
                      *([f"          socfarm_emulated: {_s(emulation(b.spec))}"] if b.spec.userland else []),
                      f"          ansible_host: {b.address}",
                      f"          socfarm_work_dir: {_s(b.work_dir)}",
                      f"          socfarm_sysfs_root: {_s(b.sys_root)}"]
            if len(variants) > 1:
                lines += _sensor_lines(b, "          ")
            if b.name in by_board:
                lines.append(f"          socfarm_meter: {_flow(by_board[b.name])}")
    return "\n".join(lines) + "\n"


def write_inventory(farm: VirtualFarm, path: Path, *, meter: dict | None = None, meters: Sequence[dict] = (),
                    simulated: bool = False) -> Path:
    """Write the farm's inventory to ``path`` (atomically) and return the path (``simulated``: see
    ``render_inventory``)."""
    path = Path(path)
    text = render_inventory(farm, meter=meter, meters=meters, simulated=simulated)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path

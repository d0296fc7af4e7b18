"""``python -m orchestrator.virtual up|down|status --state DIR``

``up`` starts the farm, writes ``DIR/inventory.yml``, prints one line
``READY <inventory path>`` when every board accepts SSH, then holds the farm
(its sysfs simulators run in this process) until SIGTERM/SIGINT or
``--max-lifetime-s``, and tears it down. ``down`` removes the farm recorded in
``DIR/farm.json`` (also after a crash; it first asks a running ``up`` to stop).
``status`` prints the record, which boards answer and what exists.

``--userland emulated`` gives each board a real ARM Debian root file system run
through qemu-user (see orchestrator/virtual/userland.py): provisioning and the
agent then run on the board's own instruction set and Python; emulated
timings are not performance figures.

``--inference simulated`` gives every board ``simulated`` components (named
``xu3-sim-1``, ``hikey-sim-1``, ...): their inference is a modelled latency the
agent sleeps for, so the boards cost this machine no CPU and a sweep measures
the orchestrator itself; every figure of them is labelled simulated.

Each board's CLOCK_MONOTONIC is offset from this machine's (by default by
seconds to hours, different per board; ``--clock-offsets xu3-1=3600,hikey-1=0.5``
sets some, ``--same-clock`` gives every board this machine's clock).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

from orchestrator.virtual import netns
from orchestrator.virtual.farm import (
    BoardSpec,
    FarmError,
    VirtualFarm,
    leftovers_of,
    load_record,
    ssh_banner,
    teardown,
)
from orchestrator.virtual.inventory import write_inventory

DEFAULT_SUITE = "bookworm"
# CLI board kinds: kind -> (SoC, board name prefix)
KINDS = {"xu3": ("odroid_xu3", "xu3"), "odroid_xu3": ("odroid_xu3", "xu3"),
         "hikey970": ("hikey970", "hikey"), "hikey": ("hikey970", "hikey")}


def parse_boards(text: str, sensors: str = "vendor", userland: str = "host",
                 simulated: bool = False) -> list[BoardSpec]:
    """'xu3:2,hikey970:1' -> xu3-1, xu3-2, hikey-1. With ``userland="emulated"`` every board runs a Debian
    root file system of its SoC's architecture, bookworm unless the kind says ``@SUITE``
    ('xu3:1,hikey970:1,hikey970@bullseye:1'). ``simulated``: the names say so (xu3-sim-1, hikey-sim-1)."""
    if userland not in ("host", "emulated"):
        raise ValueError(f"--userland: 'host' or 'emulated', got {userland!r}")
    specs: list[BoardSpec] = []
    counts: dict[str, int] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        kind, _, n = item.partition(":")
        kind, at, suite = kind.partition("@")
        if at and userland != "emulated":
            raise ValueError(f"{item!r}: a Debian suite (@{suite}) needs --userland emulated")
        if kind not in KINDS:
            raise ValueError(f"unknown board kind {kind!r}; known: {', '.join(KINDS)}")
        soc, prefix = KINDS[kind]
        prefix = f"{prefix}-sim" if simulated else prefix
        try:
            count = int(n or "1")
        except ValueError:
            raise ValueError(f"{item!r}: count must be an integer") from None
        if count < 1:
            raise ValueError(f"{item!r}: count must be at least 1")
        for _ in range(count):
            counts[prefix] = counts.get(prefix, 0) + 1
            specs.append(BoardSpec(f"{prefix}-{counts[prefix]}", soc, sensors,
                                   userland=(suite or DEFAULT_SUITE) if userland == "emulated" else None))
    if not specs:
        raise ValueError("no boards given")
    return specs


def parse_clock_offsets(text: str, names: list[str]) -> dict[str, float]:
    """'xu3-1=3600,hikey-1=-2.5' -> {'xu3-1': 3600.0, 'hikey-1': -2.5} (seconds, boards of ``names``)."""
    offsets: dict[str, float] = {}
    items = [p.strip() for p in text.split(",") if p.strip()]
    if not items:
        raise ValueError("--clock-offsets wants NAME=SECONDS[,NAME=SECONDS...], e.g. xu3-1=3600,hikey-1=0.5")
    for item in items:
        name, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not name or not value:
            raise ValueError(f"--clock-offsets: {item!r} is not NAME=SECONDS (e.g. xu3-1=3600)")
        if name not in names:
            raise ValueError(f"--clock-offsets: no board {name!r} in this farm; boards: {', '.join(names)}")
        if name in offsets:
            raise ValueError(f"--clock-offsets: board {name!r} is given twice")
        try:
            seconds = float(value)
        except ValueError:
            raise ValueError(f"--clock-offsets: {name}={value!r}: the offset must be a number of seconds") from None
        if not math.isfinite(seconds):
            raise ValueError(f"--clock-offsets: {name}={value!r}: the offset must be a finite number of seconds")
        offsets[name] = seconds
    return offsets


def with_clock_offsets(specs: list[BoardSpec], *, clock_offsets: str | None = None,
                       same_clock: bool = False) -> list[BoardSpec]:
    """The specs with the clock offsets of ``--clock-offsets`` / ``--same-clock`` (others keep their default)."""
    if same_clock and clock_offsets:
        raise ValueError("--same-clock and --clock-offsets exclude each other")
    if same_clock:
        return [dataclasses.replace(s, clock_offset_s=0.0) for s in specs]
    if clock_offsets is None:
        return specs
    offsets = parse_clock_offsets(clock_offsets, [s.name for s in specs])
    return [dataclasses.replace(s, clock_offset_s=offsets[s.name]) if s.name in offsets else s for s in specs]


def _meter(text: str | None) -> dict | None:
    if not text:
        return None
    board, sep, resource = text.partition("=")
    if not sep or not resource:
        raise ValueError("--meter wants BOARD=RESOURCE, e.g. hikey-1=TCPIP::127.0.0.1::5025::SOCKET")
    return {"board": board, "resource": resource}


def cmd_up(args: argparse.Namespace) -> int:
    simulated = args.inference == "simulated"
    specs = with_clock_offsets(parse_boards(args.boards, args.sensors, args.userland, simulated),
                               clock_offsets=args.clock_offsets, same_clock=args.same_clock)
    meter = _meter(args.meter)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    farm = VirtualFarm(Path(args.state), specs, farm_id=args.farm_id, max_lifetime_s=args.max_lifetime_s,
                       log=lambda text: print(text, file=sys.stderr, flush=True))
    t0 = time.monotonic()
    try:
        farm.up()
        farm.wait_ready(args.ready_timeout_s)
        inventory = write_inventory(farm, farm.state_dir / "inventory.yml", meter=meter, simulated=simulated)
        print(f"READY {inventory}", flush=True)
        print(f"farm {farm.farm_id}: {len(specs)} boards"
              + (" with simulated components (modelled latency, not performance figures)" if simulated else "")
              + f" on {farm.bridge} ({farm.bridge_address}/24) up in "
              f"{time.monotonic() - t0:.2f} s; holding for at most {args.max_lifetime_s:g} s; clock offsets: "
              + ", ".join(f"{s.name} {farm.clock_offset_ns(s.name) / 1e9:+.9g} s" for s in specs),
              file=sys.stderr, flush=True)
        stop.wait(args.max_lifetime_s)
    except FarmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # finish the teardown
        try:
            farm.down()
        except FarmError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print("DOWN", file=sys.stderr, flush=True)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    state = Path(args.state).resolve()
    record = load_record(state)
    if record is None:
        print(f"no farm recorded in {state}", file=sys.stderr)
        return 0
    owner = record.get("owner_pid")
    if record.get("status") != "down" and owner and owner != os.getpid() and netns.alive(owner):
        os.kill(owner, signal.SIGTERM)  # the holding process stops its simulators and tears down
        deadline = time.monotonic() + args.timeout_s
        while netns.alive(owner) and time.monotonic() < deadline:
            time.sleep(0.05)
    left = teardown(state, timeout_s=args.timeout_s)
    if left:
        print("leftovers: " + ", ".join(left), file=sys.stderr)
        return 1
    print(f"farm {record['farm_id']} is down", file=sys.stderr)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    record = load_record(Path(args.state).resolve())
    if record is None:
        print(json.dumps({"status": "absent"}))
        return 1
    owner = record.get("owner_pid")
    out = {"farm_id": record["farm_id"], "status": record["status"], "bridge": record["bridge"],
           "owner_pid": owner, "owner_alive": bool(owner) and netns.alive(owner),
           "boards": {b["name"]: {"address": b["address"], "soc": b["soc"],
                                  "clock_offset_s": b.get("clock_offset_s"),
                                  "ssh": ssh_banner(b["address"]) if record["status"] == "up" else False}
                      for b in record["boards"]},
           "leftovers": leftovers_of(record)}
    print(json.dumps(out, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.virtual", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start a farm and hold it in the foreground")
    up.add_argument("--state", required=True, help="state directory (keys, farm.json, boards/, inventory.yml)")
    up.add_argument("--boards", default="xu3:2,hikey970:1", help="e.g. xu3:2,hikey970:1")
    up.add_argument("--sensors", choices=("vendor", "hwmon"), default="vendor", help="XU3 INA231 layout")
    up.add_argument("--userland", choices=("host", "emulated"), default="host",
                    help="host: boards run this machine's programs; emulated: a Debian root file system of the "
                         "board's architecture (XU3 armhf, HiKey 970 arm64) under qemu-user, bookworm unless "
                         "a kind says @SUITE (hikey970@bullseye:1); built once per recipe into "
                         "~/.cache/socfarm-rootfs (SOCFARM_ROOTFS_CACHE)")
    up.add_argument("--inference", choices=("real", "simulated"), default="real",
                    help="real: components run TFLite on this machine's CPUs; simulated: every component is of "
                         "the simulated kind (a modelled latency the agent sleeps for: no CPU, labelled simulated)")
    up.add_argument("--max-lifetime-s", type=float, default=3600.0)
    up.add_argument("--ready-timeout-s", type=float, default=30.0)
    up.add_argument("--farm-id", default=None, help="1-6 lowercase letters/digits (default: random)")
    up.add_argument("--meter", default=None, help="BOARD=VISA_RESOURCE: add socfarm_meter to that board")
    clocks = up.add_mutually_exclusive_group()
    clocks.add_argument("--clock-offsets", default=None, metavar="NAME=SECONDS,...",
                        help="board CLOCK_MONOTONIC minus this machine's, e.g. xu3-1=3600,hikey-1=-2.5 "
                             "(default: seconds to hours, different per board)")
    clocks.add_argument("--same-clock", action="store_true",
                        help="every board reads this machine's monotonic clock (offset 0; for debugging)")
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="tear down the farm recorded in --state (also after a crash)")
    down.add_argument("--state", required=True)
    down.add_argument("--timeout-s", type=float, default=20.0)
    down.set_defaults(func=cmd_down)
    status = sub.add_parser("status", help="print what the farm in --state looks like")
    status.add_argument("--state", required=True)
    status.set_defaults(func=cmd_status)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:
        parser.error(str(exc))
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""A farm of virtual boards: network namespaces on a bridge, each with a real sshd.

Per farm (``farm_id``), in the root namespace: a bridge ``sfbr<id>`` with
address ``10.231.<k>.1/24`` (``k`` chosen from the id, skipping subnets in
use, so farms coexist) and a policy-routing guard that makes everything the
boards send beyond their own subnet unreachable (whatever ``ip_forward`` says).
Per board: namespace ``sf<id>-<name>``, a veth pair whose host end is a bridge
port and whose board end is ``eth0`` with ``10.231.<k>.<11+i>/24``, loopback
up, default route via the bridge; a real ``sshd -D`` inside the namespace in
its own UTS namespace (``hostname`` prints the board's name) and its own time
namespace (CLOCK_MONOTONIC and CLOCK_BOOTTIME offset from this machine's, as a
board's clocks are: :attr:`BoardSpec.clock_offset_s`, :meth:`VirtualFarm.step_clock`),
bounded by ``timeout``; a fake sysfs tree on a small tmpfs mounted at
``boards/<name>/sys`` (a RAM file system like /sys: sensors are rewritten
many times a second), kept alive by a :class:`BoardSimulator` in this process
and fed with the CPU time of the namespace's processes; a work directory
(``boards/<name>/work``: namespaces share the filesystem).

``state_dir`` holds the client key (``id_ed25519``), ``known_hosts`` (every
board's address with its host key, so clients keep strict checking), and
``farm.json``, which is written before anything is created so that
:func:`teardown` can remove a farm, or what a crash left of it, from a fresh
process.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import math
import numbers
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from orchestrator.virtual import netns, sshd, userland
from orchestrator.virtual.activity import NetnsActivity, ProcessIndex
from orchestrator.virtual.board_sim import BoardSimulator
from orchestrator.virtual.sysfs import SocLayout, build_tree, layout_for
from orchestrator.virtual.teardown import (
    SUBNET,
    FarmError,
    farm_names,
    leftovers_of,
    load_record,
    save_record,
    teardown,
)

__all__ = ["BoardSpec", "FarmError", "VirtualBoard", "VirtualFarm", "default_clock_offset_s", "default_cpu_map",
           "leftovers_of", "load_record", "seconds_to_ns", "teardown"]

FIRST_HOST = 11
LOCK_FILE = Path("/run/lock/socfarm-virtual-farm.lock")
SOC_ALIASES = {"xu3": "odroid_xu3", "odroid_xu3": "odroid_xu3", "hikey970": "hikey970", "hikey": "hikey970"}
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
ID_RE = re.compile(r"^[a-z0-9]{1,6}$")
MAX_CLOCK_OFFSET_S = 10 * 365 * 86400.0  # ten years: far from the kernel's limit, far beyond any real board


def default_clock_offset_s(index: int) -> float:
    """Board ``index``'s default clock offset: 17.25 s, 1 h 2 min 20.75 s, 2 h 4 min 24.25 s, … (+3723.5 s
    per board). Distinct, positive, seconds to hours apart, and with a fraction of a second, so that
    an offset handled as whole seconds somewhere shows; quarter seconds are exact in binary."""
    return 17.25 + 3723.5 * index


def seconds_to_ns(seconds: float) -> int:
    """Seconds as written (``repr``) to integer nanoseconds: 3740.75 -> 3740750000000, 0.1 -> 100000000."""
    return int((Decimal(repr(float(seconds))) * 1_000_000_000).to_integral_value())


def _offset_seconds(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{what}: a number of seconds, got {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds) or abs(seconds) > MAX_CLOCK_OFFSET_S:
        raise ValueError(f"{what}: {seconds!r} s is not a finite offset within ±{MAX_CLOCK_OFFSET_S:g} s")
    return seconds


@dataclass(frozen=True)
class BoardSpec:
    name: str
    soc: str  # "odroid_xu3" | "hikey970" (aliases: "xu3", "hikey")
    sensors: str = "vendor"  # "vendor" | "hwmon" (XU3 only; HiKey 970 has no INA231)
    # the board's CLOCK_MONOTONIC (and CLOCK_BOOTTIME) minus this machine's, in seconds (either sign,
    # as long as the board's clock stays positive); None: default_clock_offset_s(its index in the farm)
    clock_offset_s: float | None = None
    # None: the board runs this machine's userland; a Debian suite ("bookworm", "bullseye"): a real root
    # file system of the SoC's architecture (armhf, arm64) under qemu-user (orchestrator/virtual/userland.py)
    userland: str | None = None

    def __post_init__(self) -> None:
        if not NAME_RE.match(self.name):
            raise ValueError(f"board name {self.name!r}: lowercase letters, digits and '-', at most 31")
        if self.soc not in SOC_ALIASES:
            raise ValueError(f"board {self.name}: unknown SoC {self.soc!r}; known: {', '.join(SOC_ALIASES)}")
        object.__setattr__(self, "soc", SOC_ALIASES[self.soc])
        layout_for(self.soc, self.sensors)  # validates the sensor variant
        if self.clock_offset_s is not None:
            object.__setattr__(self, "clock_offset_s",
                               _offset_seconds(self.clock_offset_s, f"board {self.name}: clock offset"))
        if self.userland is not None:
            userland.recipe_for(self.soc, self.userland, mirror="-")  # validates the suite


@dataclass(frozen=True)
class VirtualBoard:
    """Where everything of one running board is."""

    spec: BoardSpec
    index: int
    netns: str
    address: str
    veth_host: str
    dir: Path
    sys_root: Path
    work_dir: Path
    host_key: Path
    sshd_config: Path
    pid_file: Path
    log_file: Path
    layout: SocLayout
    cpu_map: dict[str, list[int]] = field(default_factory=dict)
    # emulated userland: where the board's root is mounted (its sshd chroots there), else None
    root: Path | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def to_json(self) -> dict:
        return {"name": self.name, "soc": self.spec.soc, "sensors": self.spec.sensors, "index": self.index,
                "netns": self.netns, "address": self.address, "veth_host": self.veth_host,
                "dir": str(self.dir), "cpu_map": self.cpu_map, "userland": self.spec.userland,
                "root": str(self.root) if self.root else None}


def default_cpu_map(layout: SocLayout, real_cpus: list[int] | None = None) -> dict[str, list[int]]:
    """Little cluster on the first half of this machine's CPUs, big on the second half."""
    cpus = sorted(real_cpus if real_cpus is not None else os.sched_getaffinity(0))
    half = max(1, len(cpus) // 2)
    little, big = cpus[:half], cpus[half:] or cpus[:1]
    return {c.name: (little if c.cls == "little" else big) for c in layout.clusters}


# --- the farm -----------------------------------------------------------------------------------


#: A board simulator's tick on a small farm (cpufreq writes applied, power integrated, sensors re-read).
TICK_S = 0.02
#: Ticks per second of the whole farm, at most: its simulators share one interpreter, and each tick (and each
#: look at the board's processes, every ``ACTIVITY_TICKS`` ticks, through the farm's one ``ProcessIndex``)
#: costs it CPU. A tick that starts late by more than a sensor's period skips that sensor's conversions:
#: ``take_tick_lateness_s`` says how late they ran (benchmarks/farm_sim_cpu.py).
FARM_TICKS_PER_S = 800.0
ACTIVITY_TICKS = 5


def default_tick_s(n_boards: int) -> float:
    """``TICK_S``, longer on a farm of more than ``FARM_TICKS_PER_S * TICK_S`` (16) boards."""
    return max(TICK_S, n_boards / FARM_TICKS_PER_S)


class VirtualFarm:
    """``with VirtualFarm(state_dir, [BoardSpec("xu3-1", "odroid_xu3"), ...]) as farm:``

    ``tick_s``: each board simulator's tick (default ``default_tick_s`` of the board count); it looks at the
    board's processes every ``ACTIVITY_TICKS`` ticks, at least every 0.1 s."""

    def __init__(self, state_dir: Path, boards: list[BoardSpec], *, farm_id: str | None = None,
                 max_lifetime_s: float = 3600.0, tick_s: float | None = None, real_cpus: list[int] | None = None,
                 log=None, share_proc_index: bool = True):
        names = [b.name for b in boards]
        if not boards or len(set(names)) != len(names):
            raise ValueError(f"need at least one board and unique names, got {names}")
        if len(boards) > 200:
            raise ValueError("at most 200 boards per farm")
        self.farm_id = farm_id or secrets.token_hex(2)
        if not ID_RE.match(self.farm_id):
            raise ValueError(f"farm_id {self.farm_id!r}: 1-6 lowercase letters or digits")
        self.state_dir = Path(state_dir).resolve()
        self.specs = list(boards)
        self.max_lifetime_s = max_lifetime_s
        self.tick_s = tick_s if tick_s is not None else default_tick_s(len(boards))
        self.real_cpus = real_cpus
        self.share_proc_index = share_proc_index  # False: each board lists /proc itself (a benchmark's baseline)
        self.log = log or (lambda text: None)
        self.boards: dict[str, VirtualBoard] = {}
        self.k: int | None = None
        self._sims: dict[str, BoardSimulator] = {}
        self._sshd: dict[str, subprocess.Popen] = {}
        # each board's clock offset (ns) for processes started from now on, and its steps so far
        self._clock_ns: dict[str, int] = {
            spec.name: seconds_to_ns(spec.clock_offset_s if spec.clock_offset_s is not None
                                     else default_clock_offset_s(i))
            for i, spec in enumerate(self.specs)}
        self._clock_steps: dict[str, list[dict]] = {spec.name: [] for spec in self.specs}
        self._created: float | None = None
        self._lock = threading.RLock()
        self._closed = threading.Event()
        self._is_up = False

    # --- public paths ---------------------------------------------------------------------

    @property
    def key_file(self) -> Path:
        return self.state_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / "known_hosts"

    @property
    def bridge(self) -> str:
        return f"sfbr{self.farm_id}"

    @property
    def bridge_address(self) -> str:
        if self.k is None:
            raise FarmError("farm is not up")
        return f"{SUBNET}.{self.k}.1"

    def board(self, name: str) -> VirtualBoard:
        try:
            return self.boards[name]
        except KeyError:
            raise KeyError(f"no board {name!r} in farm {self.farm_id}") from None

    def clock_offset_ns(self, name: str) -> int:
        """The board's CLOCK_MONOTONIC minus this process's, in ns, exactly (CLOCK_BOOTTIME has the same
        offset), for processes the board starts from now on (see :meth:`step_clock`)."""
        if name not in self._clock_ns:
            raise KeyError(f"no board {name!r} in farm {self.farm_id}")
        return self._clock_ns[name]

    def simulator(self, name: str) -> BoardSimulator:
        return self._sims[name]

    def take_tick_lateness_s(self) -> float:
        """The latest any board's simulator started a tick after its planned time, since the previous call."""
        return max((sim.take_late_max_s() for sim in self._sims.values()), default=0.0)

    def simulator_errors(self) -> dict[str, str]:
        """Boards whose simulator hit an exception or stopped early (should be empty)."""
        out = {}
        for name, sim in self._sims.items():
            if sim.error is not None:
                out[name] = f"{sim.errors} failing ticks, last: {sim.error!r}"
            elif not sim.running:
                out[name] = "simulator stopped"
        return out

    # --- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> VirtualFarm:
        return self.up()  # a failed up() has already torn down what it built

    def __exit__(self, *exc) -> None:
        self.down()

    def up(self) -> VirtualFarm:
        with self._lock:
            if self._is_up:
                return self
            self._closed = threading.Event()
            _preflight()
            rootfs = self._root_filesystems()  # may take minutes once per recipe: before anything is created
            self._created = time.time()
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self._clear_stale()
            sshd.ensure_key(self.key_file, f"socfarm-virtual-farm-{self.farm_id}")
            sshd.ensure_privsep_dir()
            try:
                with _farm_lock():
                    self.k = _pick_subnet(self.farm_id)
                    self._plan()
                    self._check_names_free()
                    self._save("starting")
                    self._create_bridge()
                for b in self.boards.values():
                    self._create_board_network(b)
                for b in self.boards.values():
                    self._prepare_board_files(b)
                    if b.root is not None:
                        userland.mount_root(b.root, rootfs[b.name], b.dir, binds=(b.sys_root, b.work_dir),
                                            hostname=b.name, address=b.address)
                self._write_known_hosts()
                for b in self.boards.values():
                    self._start_sshd(b)
                activity_period_s = max(0.1, ACTIVITY_TICKS * self.tick_s)
                # one /proc listing serves every board that samples within half a period of it
                index = ProcessIndex(max_age_s=activity_period_s / 2) if self.share_proc_index else None
                for b in self.boards.values():
                    sim = BoardSimulator(b.sys_root, b.layout, NetnsActivity(b.netns, b.cpu_map, index=index),
                                         tick_s=self.tick_s, activity_period_s=activity_period_s,
                                         max_lifetime_s=self.max_lifetime_s)
                    self._sims[b.name] = sim.start()
                self._is_up = True
                self._save("up")
            except BaseException as exc:
                try:
                    self.down()
                except FarmError as cleanup:
                    exc.add_note(f"cleanup after the failed start: {cleanup}")
                raise
            threading.Thread(target=self._watchdog, name=f"farm-{self.farm_id}-lifetime", daemon=True).start()
            return self

    def down(self) -> list[str]:
        """Tear everything down; returns leftovers (empty on success)."""
        with self._lock:
            self._closed.set()
            for sim in self._sims.values():
                sim.stop()
            self._sims.clear()
            for name, proc in list(self._sshd.items()):
                _stop_popen(proc)
                del self._sshd[name]
            self._is_up = False
            left = teardown(self.state_dir)
            if left:
                raise FarmError(f"farm {self.farm_id}: teardown left {left}")
            return left

    def leftovers(self) -> list[str]:
        return leftovers_of(load_record(self.state_dir))

    def wait_ready(self, timeout_s: float = 10.0) -> None:
        """Block until every board's sshd answers on port 22 with an SSH banner."""
        deadline = time.monotonic() + timeout_s
        pending = set(self.boards)
        while pending:
            for name in sorted(pending):
                proc = self._sshd.get(name)
                if proc is not None and proc.poll() is not None:
                    raise FarmError(f"{name}: sshd exited with {proc.returncode}: {self._log_tail(name)}")
                if ssh_banner(self.boards[name].address, timeout_s=0.5):
                    pending.discard(name)
            if pending:
                if time.monotonic() > deadline:
                    raise FarmError(f"boards not ready after {timeout_s} s: {sorted(pending)}; "
                                    + "; ".join(f"{n}: {self._log_tail(n)}" for n in sorted(pending)))
                time.sleep(0.05)

    # --- fault injection --------------------------------------------------------------------

    def kill_sshd(self, name: str, *, timeout_s: float = 5.0) -> None:
        """Kill the board's listening sshd (SIGKILL, like a crash): port 22 then refuses.
        Sessions already open keep running, as they would on a board."""
        self._stop_sshd(self.board(name), signal.SIGKILL, timeout_s)

    def start_sshd(self, name: str, *, timeout_s: float = 10.0) -> None:
        """(Re)start a board's sshd, e.g. after :meth:`kill_sshd` (in a new time namespace with the
        board's current clock offset)."""
        b = self.board(name)
        with self._lock:
            old = self._sshd.get(name)
            if old is not None and old.poll() is None:
                return
            self._start_sshd(b)
        self._wait_banner(name, timeout_s)

    def step_clock(self, name: str, delta_s: float, *, timeout_s: float = 10.0) -> int:
        """Step the board's clocks by ``delta_s`` (either sign) for the processes it starts from now on;
        returns the new :meth:`clock_offset_ns`.

        The offsets of a time namespace are fixed once a process is in it, so the board's sshd is
        stopped and started again in a new namespace with the new offset (port 22 refuses for the
        moment this takes); ``farm.json`` notes the step. New SSH connections, and everything they
        start, read the new clock. Processes already running keep the namespace, and so the clock,
        they started in, exactly as on Linux: an open session and what it runs (a serving device
        agent, say), and also new sessions multiplexed over a connection opened before the step (an
        ssh ControlMaster, a paramiko/fabric client kept open), which that connection's sshd process
        serves. A real board's clock does not step: this stands in for drift between two probes."""
        b = self.board(name)
        delta_ns = seconds_to_ns(_offset_seconds(delta_s, f"{name}: clock step"))
        with self._lock:
            if not self._is_up:
                raise FarmError(f"farm {self.farm_id} is not up")
            old_ns = self._clock_ns[name]
            new_ns = old_ns + delta_ns
            _check_clock(name, new_ns)
            self._stop_sshd(b, signal.SIGTERM, timeout_s)
            self._clock_ns[name] = new_ns
            self._clock_steps[name].append({"from_ns": old_ns, "to_ns": new_ns,
                                            "monotonic_ns": time.monotonic_ns(), "time": time.time()})
            self._save("up")
            self._start_sshd(b)
        self._wait_banner(name, timeout_s)
        return new_ns

    def link_down(self, name: str) -> None:
        netns.ip("link", "set", self.board(name).veth_host, "down")

    def link_up(self, name: str) -> None:
        netns.ip("link", "set", self.board(name).veth_host, "up")

    def throttle(self, name: str, policy: str, khz: int | None) -> None:
        """Inject (or with ``None`` remove) a thermal cap on a board's policy/cluster or GPU."""
        self._sims[name].throttle(policy, khz)

    # --- internals --------------------------------------------------------------------------

    def _root_filesystems(self) -> dict[str, Path]:
        """Each emulated board's root file system, built (or found in the cache) now."""
        out: dict[str, Path] = {}
        for spec in self.specs:
            if spec.userland is not None:
                out[spec.name] = userland.ensure_rootfs(userland.recipe_for(spec.soc, spec.userland), log=self.log)
        return out

    def _plan(self) -> None:
        boards_dir = self.state_dir / "boards"
        for i, spec in enumerate(self.specs):
            d = boards_dir / spec.name
            layout = layout_for(spec.soc, spec.sensors)
            self.boards[spec.name] = VirtualBoard(
                spec=spec, index=i, netns=f"sf{self.farm_id}-{spec.name}",
                address=f"{SUBNET}.{self.k}.{FIRST_HOST + i}", veth_host=f"sfv{self.farm_id}h{i}",
                dir=d, sys_root=d / "sys", work_dir=d / "work", host_key=d / "ssh_host_ed25519_key",
                sshd_config=d / "sshd_config", pid_file=d / "sshd.pid", log_file=d / "sshd.log",
                layout=layout, cpu_map=default_cpu_map(layout, self.real_cpus),
                root=userland.root_mountpoint(self.farm_id, spec.name) if spec.userland else None)

    def _check_names_free(self) -> None:
        """Refuse to start (before recording anything) if another farm uses our names."""
        links = netns.links()
        taken = [n for n in [self.bridge, *(b.veth_host for b in self.boards.values())] if n in links]
        taken += [b.netns for b in self.boards.values() if b.netns in netns.netns_list()]
        if taken:
            self.boards.clear()
            raise FarmError(f"farm id {self.farm_id!r} is in use by another farm ({', '.join(taken)}); "
                            "choose another farm_id")

    def _save(self, status: str) -> None:
        assert self.k is not None
        record = {"version": 1, "status": status, "farm_id": self.farm_id, "k": self.k,
                  "state_dir": str(self.state_dir), "owner_pid": os.getpid(), "created": self._created or time.time(),
                  "max_lifetime_s": self.max_lifetime_s, "key_file": str(self.key_file),
                  "known_hosts": str(self.known_hosts),
                  "boards": [{**b.to_json(), **self._clock_record(b.name)} for b in self.boards.values()],
                  **farm_names(self.farm_id, self.k)}
        save_record(self.state_dir, record)

    def _clock_record(self, name: str) -> dict:
        """The board's clock in ``farm.json``: its offset for new processes (board CLOCK_MONOTONIC minus
        the farm process's), and each step (``from_ns`` -> ``to_ns``, when, on this machine's clocks)."""
        ns = self._clock_ns[name]
        return {"clock_offset_ns": ns, "clock_offset_s": ns / 1e9, "clock_steps": list(self._clock_steps[name])}

    def _clear_stale(self) -> None:
        record = load_record(self.state_dir)
        if record is None or record.get("status") == "down":
            return
        owner = record.get("owner_pid")
        if owner and owner != os.getpid() and netns.alive(owner) and leftovers_of(record):
            raise FarmError(f"{self.state_dir} holds farm {record['farm_id']} of running process {owner}; "
                            "bring it down first")
        left = teardown(self.state_dir)
        if left:
            raise FarmError(f"stale farm in {self.state_dir} could not be removed: {left}")

    def _create_bridge(self) -> None:
        n = farm_names(self.farm_id, self.k)
        netns.ip("link", "add", self.bridge, "type", "bridge")
        netns.ip("addr", "add", f"{n['bridge_address']}/24", "dev", self.bridge)
        _disable_ipv6(self.bridge)
        netns.ip("link", "set", self.bridge, "up")
        # guard: what boards send beyond their subnet (other than to this host) is unreachable
        table = str(n["guard"])
        netns.ip("route", "add", n["subnet"], "dev", self.bridge, "table", table)
        netns.ip("route", "add", "unreachable", "default", "table", table)
        netns.ip("rule", "add", "iif", self.bridge, "priority", table, "table", table)

    def _create_board_network(self, b: VirtualBoard) -> None:
        peer = f"sfv{self.farm_id}b{b.index}"
        netns.ip("netns", "add", b.netns)
        netns.ip("link", "add", b.veth_host, "type", "veth", "peer", "name", peer, "netns", b.netns)
        _disable_ipv6(b.veth_host)
        netns.ip("link", "set", b.veth_host, "master", self.bridge, "up")
        netns.ip("-n", b.netns, "link", "set", peer, "name", "eth0")
        netns.ip("-n", b.netns, "addr", "add", f"{b.address}/24", "dev", "eth0")
        netns.ip("-n", b.netns, "link", "set", "lo", "up")
        netns.ip("-n", b.netns, "link", "set", "eth0", "up")
        netns.ip("-n", b.netns, "route", "add", "default", "via", self.bridge_address)
        netns.write_etc(b.netns, b.name, b.address)

    def _prepare_board_files(self, b: VirtualBoard) -> None:
        if b.sys_root.exists() and not netns.is_mountpoint(b.sys_root):
            shutil.rmtree(b.sys_root)  # a fresh kernel state for every boot
        b.sys_root.mkdir(parents=True, exist_ok=True)
        # a RAM file system, like /sys: the simulator rewrites sensor files many times a second
        netns.run("mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "socfarm-sys", str(b.sys_root))
        build_tree(b.sys_root, b.spec.soc, sensors=b.spec.sensors)
        b.work_dir.mkdir(parents=True, exist_ok=True)
        sshd.ensure_key(b.host_key, f"root@{b.name}")
        b.sshd_config.write_text(sshd.render_config(
            address=b.address, host_key=b.host_key, pid_file=b.pid_file,
            authorized_keys=self.key_file.with_name(self.key_file.name + ".pub"), chroot=b.root))

    def _write_known_hosts(self) -> None:
        lines = [f"{b.address} {sshd.public_key(b.host_key)}" for b in self.boards.values()]
        tmp = self.known_hosts.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, self.known_hosts)

    def _start_sshd(self, b: VirtualBoard) -> None:
        _check_clock(b.name, self._clock_ns[b.name])
        b.pid_file.unlink(missing_ok=True)
        cmd = sshd.start_command(netns=b.netns, hostname=b.name, config=b.sshd_config,
                                 max_lifetime_s=self.max_lifetime_s, clock_offset_ns=self._clock_ns[b.name])
        with open(b.log_file, "ab") as log:
            self._sshd[b.name] = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                                  start_new_session=True, close_fds=True)

    def _stop_sshd(self, b: VirtualBoard, sig: int, timeout_s: float) -> None:
        """Stop the board's listening sshd with ``sig`` and wait until port 22 refuses; sessions stay.

        The listener is the pid in its PidFile; its ``unshare`` parent and ``timeout`` (the Popen's
        process group, see ``sshd.start_command``) end with it."""
        pid = _read_pid(b.pid_file)
        with self._lock:
            proc = self._sshd.pop(b.name, None)
        if pid is not None and netns.alive(pid):
            os.kill(pid, sig)
        if proc is not None:
            _stop_popen(proc)
        b.pid_file.unlink(missing_ok=True)
        deadline = time.monotonic() + timeout_s
        while _port_open(b.address, 22):
            if time.monotonic() > deadline:
                raise FarmError(f"{b.name}: port 22 still open after stopping sshd")
            time.sleep(0.05)

    def _wait_banner(self, name: str, timeout_s: float) -> None:
        b = self.board(name)
        deadline = time.monotonic() + timeout_s
        while not ssh_banner(b.address, timeout_s=0.5):
            if time.monotonic() > deadline:
                raise FarmError(f"{name}: sshd did not come back: {self._log_tail(name)}")
            time.sleep(0.05)

    def _log_tail(self, name: str, n: int = 400) -> str:
        try:
            return self.boards[name].log_file.read_text(errors="replace")[-n:].strip() or "(empty log)"
        except OSError:
            return "(no log)"

    def _watchdog(self) -> None:
        if not self._closed.wait(self.max_lifetime_s):
            with contextlib.suppress(Exception):
                self.down()


# --- helpers ------------------------------------------------------------------------------------


def _preflight() -> None:
    if os.geteuid() != 0:
        raise FarmError("the virtual farm needs root (network namespaces, veths, bridge)")
    missing = [t for t in ("ip", "unshare", "timeout", "ssh-keygen", "hostname", "mount", "umount")
               if shutil.which(t) is None]
    if not Path(sshd.SSHD).exists():
        missing.append(sshd.SSHD)
    if missing:
        raise FarmError(f"missing tools: {', '.join(missing)}")
    if not Path("/proc/self/timens_offsets").exists():
        raise FarmError("this kernel has no time namespaces (CONFIG_TIME_NS, Linux 5.6 or later): "
                        "boards cannot have clocks of their own")


def _check_clock(name: str, offset_ns: int) -> None:
    """A board's CLOCK_MONOTONIC (ours plus its offset) must not be negative: the kernel refuses it."""
    now_ns = time.monotonic_ns()
    if now_ns + offset_ns < 0 or abs(offset_ns) > MAX_CLOCK_OFFSET_S * 1e9:
        raise FarmError(f"{name}: a clock offset of {offset_ns / 1e9:+.9f} s is out of range (the board's "
                        f"CLOCK_MONOTONIC would read {(now_ns + offset_ns) / 1e9:.3f} s; it must not be negative, "
                        f"and the offset within ±{MAX_CLOCK_OFFSET_S:g} s)")


@contextlib.contextmanager
def _farm_lock():
    """Serialise subnet choice between farms started at the same time."""
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK_FILE, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _pick_subnet(farm_id: str) -> int:
    used = set()
    for addr in netns.ipv4_addresses():
        octets = addr.split("/")[0].split(".")
        if ".".join(octets[:2]) == SUBNET:
            used.add(int(octets[2]))
    start = int(hashlib.sha256(farm_id.encode()).hexdigest(), 16) % 250
    for step in range(250):
        k = 1 + (start + step) % 250
        if k not in used:
            return k
    raise FarmError(f"no free /24 left in {SUBNET}.0.0/16")


def _disable_ipv6(interface: str) -> None:
    """No link-local IPv6 chatter on the farm's own interfaces (IPv4 only)."""
    knob = Path(f"/proc/sys/net/ipv6/conf/{interface}/disable_ipv6")
    with contextlib.suppress(OSError):
        knob.write_text("1\n")


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _stop_popen(proc: subprocess.Popen, timeout_s: float = 3.0) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout_s)


def _port_open(address: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def ssh_banner(address: str, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=timeout_s) as s:
            s.settimeout(timeout_s)
            return s.recv(64).startswith(b"SSH-")
    except OSError:
        return False

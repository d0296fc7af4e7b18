"""The virtual board's "kernel": it makes a fake sysfs tree behave.

A :class:`BoardSimulator` thread ticks every ``tick_s`` and

* applies what was written to cpufreq and devfreq files, as the kernel would:
  the current frequency follows the governor (performance -> max, powersave
  -> min, userspace -> setspeed, any other CPU governor -> max, load-following
  GPU governors -> min since no GPU work runs here), clamped to [min, max] and
  to an injected thermal cap. A write the kernel would refuse with EINVAL (not
  an OPP, unknown governor, min above max, setspeed without the userspace
  governor) is reverted on the next tick: files cannot refuse a write, so the
  revert plus the writer's read-back after a settle time is the equivalent.
  ``settle_s`` says how long to wait before reading back;
* heats the thermal zones with the power of the rails they see, and keeps them
  above the trip point while a cap is injected with :meth:`throttle`;
* refreshes the INA231 sensors: vendor layout only while ``enable`` is 1,
  every ``update_period`` µs (re-read every tick, so a write changes the rate),
  never more often; hwmon layout every ``update_interval`` ms. Each value is
  the mean power since the sensor's previous update, integrated from the
  board's activity, like the chip's averaging ADC, with a little ADC noise
  (``noise_rel``) so that consecutive readings differ as on the chip.

Activity comes from an :mod:`~orchestrator.virtual.activity` source, sampled
every ``activity_period_s``. The thread stops by itself after
``max_lifetime_s``.

The simulator is also the activity source of a virtual SMU on the board's
supply (:mod:`orchestrator.meters.activity` protocol): the whole-board power
computed at each tick holds until the next tick, and the last ``history_s`` of
that step function are kept (:meth:`BoardSimulator.power_w` of a time,
:meth:`~BoardSimulator.power_w_array`, exact :meth:`~BoardSimulator.energy_j`
of a window).
"""

from __future__ import annotations

import bisect
import os
import random
import threading
import time
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.virtual.activity import Activity, FixedActivity, NetnsActivity
from orchestrator.virtual.power_model import POWER, SocPower, rail_readings, relax
from orchestrator.virtual.sysfs import (
    HWMON_DEFAULT_UPDATE_INTERVAL_MS,
    INA231_DEFAULT_UPDATE_PERIOD_US,
    UNSUPPORTED,
    SocLayout,
    read_attr,
    write_attr,
)

__all__ = ["Activity", "BoardSimulator", "FixedActivity", "NetnsActivity"]

MIN_UPDATE_PERIOD_US = 1000
MAX_UPDATE_PERIOD_US = 10_000_000
TEMP_WRITE_PERIOD_S = 0.25
EMPTY_WRITE_GRACE_S = 0.2
RECENT_WRITE_S = 0.05  # well above the coarse timestamp granularity of file systems
MAX_CONSECUTIVE_FAILURES = 250  # ~5 s of failing ticks: the tree is gone, stop
SUPPLY_HISTORY_S = 600.0


@dataclass
class _Knobs:
    """The accepted state of one cpufreq policy or devfreq node."""

    name: str  # cluster name or "gpu"
    node: str  # policy name or devfreq node name
    opps: tuple[int, ...]
    governors: tuple[str, ...]
    paths: dict[str, str]  # role ("governor", "min", "max", "setspeed") -> file
    cur_paths: tuple[str, ...]
    load_following_min: bool  # other governors pick min (GPU) instead of max (CPU)
    governor: str = ""
    min: int = 0
    max: int = 0
    setspeed: int | None = None
    cur: int = 0
    cap: int | None = None


@dataclass
class _Sensor:
    rail: str
    base: str
    enabled: bool = False
    period_s: float = 0.0
    due: float | None = None
    since_t: float = 0.0
    since_j: float = 0.0
    updates: int = 0
    period_text: str = ""
    enable_text: str = ""


@dataclass
class _Zone:
    temp_path: str
    tracks: tuple[str, ...]
    temp_c: float
    written_at: float = field(default=-1e9)
    written: int = -1


class _InputReader:
    """Reads writable attributes cheaply and safely, every tick.

    * A file whose inode, size and mtime are unchanged and whose mtime is not
      recent is not read again (one stat instead of open/read/close). Recent
      files are always read, so two writes within one coarse timestamp tick
      are both seen.
    * A writer truncates the file before writing (the kernel's store is
      atomic, a file's is not), and the truncation does not always move the
      mtime: an empty (or missing) file is a write in progress (``None``)
      until it has stayed so for ``EMPTY_WRITE_GRACE_S`` by our own clock;
      then it is returned as ``""`` and refused by the caller.
    """

    def __init__(self) -> None:
        self._seen: dict[str, tuple[tuple[int, int, int], str]] = {}
        self._empty_since: dict[str, float] = {}

    def read(self, path: str) -> str | None:
        try:
            st = os.stat(path)
            key = (st.st_ino, st.st_size, st.st_mtime_ns)
            cached = self._seen.get(path)
            if cached is not None and cached[0] == key and time.time() - st.st_mtime > RECENT_WRITE_S:
                return cached[1]
            fd = os.open(path, os.O_RDONLY)
            try:
                text = os.read(fd, 4096).decode(errors="replace").strip()
            finally:
                os.close(fd)
        except OSError:
            key, text = None, ""
        if not text:
            self._seen.pop(path, None)
            first = self._empty_since.setdefault(path, time.monotonic())
            return None if time.monotonic() - first < EMPTY_WRITE_GRACE_S else ""
        self._empty_since.pop(path, None)
        self._seen[path] = (key, text)
        return text


def _parse_int(text: str) -> int | None:
    try:
        return int(text, 10)
    except ValueError:
        return None


class _SupplyHistory:
    """The whole-board supply power as a step function of time.

    The value recorded at tick ``t_k`` holds on ``[t_k, t_{k+1})``; before the
    first kept tick the first value holds, after the last one the last value.
    ``_e[k]`` is the energy from the first tick ever recorded to ``t_k``, so the
    energy of a window is a difference of two look-ups. Only the last
    ``history_s`` are kept (trimmed by whole chunks). Readers asking for a time
    the simulator has not reached yet, but that is not in the future, wait for
    the tick that covers it, at most ``wait_s``.
    """

    def __init__(self, history_s: float, wait_s: float):
        self.history_s = float(history_s)
        self.wait_s = float(wait_s)
        self._t = array("d")
        self._v = array("d")
        self._e = array("d")
        self._cond = threading.Condition()
        self._closed = False

    def record(self, t: float, watts: float) -> None:
        with self._cond:
            if self._t and t <= self._t[-1]:
                self._v[-1] = watts  # same instant: the newer value wins
            else:
                e = self._e[-1] + self._v[-1] * (t - self._t[-1]) if self._t else 0.0
                self._t.append(t)
                self._v.append(watts)
                self._e.append(e)
                if t - self._t[0] > 1.1 * self.history_s + 1.0:
                    k = bisect.bisect_left(self._t, t - self.history_s)
                    del self._t[:k], self._v[:k], self._e[:k]
            self._cond.notify_all()

    def close(self) -> None:
        """No more ticks: readers stop waiting."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _wait_for(self, t: float) -> None:
        # caller holds _cond and the history is not empty
        if t > self._t[-1] and not self._closed and t <= time.monotonic():
            deadline = time.monotonic() + self.wait_s
            while t > self._t[-1] and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)

    def _cumulative(self, x: float) -> float:
        k = max(0, bisect.bisect_right(self._t, x) - 1)
        return self._e[k] + self._v[k] * (x - self._t[k])

    def value(self, t: float) -> float | None:
        with self._cond:
            if not self._t:
                return None
            self._wait_for(t)
            return self._v[max(0, bisect.bisect_right(self._t, t) - 1)]

    def values(self, t):
        import numpy as np  # see BoardSimulator.power_w_array

        t = np.asarray(t, dtype=float)
        with self._cond:
            if not self._t:
                return None
            if t.size == 0:
                return np.empty(t.shape)
            lo_t, hi_t = float(np.min(t)), float(np.max(t))
            self._wait_for(hi_t)
            lo = max(0, bisect.bisect_right(self._t, lo_t) - 1)
            hi = max(lo + 1, bisect.bisect_right(self._t, hi_t))
            times = np.array(self._t[lo:hi])
            watts = np.array(self._v[lo:hi])
        idx = np.maximum(np.searchsorted(times, t, side="right") - 1, 0)
        return watts[idx]

    def energy(self, t0: float, t1: float) -> float | None:
        with self._cond:
            if not self._t:
                return None
            self._wait_for(max(t0, t1))
            return self._cumulative(t1) - self._cumulative(t0)


class BoardSimulator:
    """Runs the board's kernel side in a thread; ``with BoardSimulator(...) as sim:``."""

    def __init__(self, root: Path, layout: SocLayout, activity: Activity, *, tick_s: float = 0.02,
                 activity_period_s: float = 0.1, max_lifetime_s: float = 3600.0,
                 power: SocPower | None = None, noise_rel: float = 0.002, seed: int = 0,
                 history_s: float = SUPPLY_HISTORY_S):
        if tick_s <= 0 or max_lifetime_s <= 0:
            raise ValueError("tick_s and max_lifetime_s must be positive")
        self.root = Path(root)
        self.layout = layout
        self.activity = activity
        self.tick_s = tick_s
        self.activity_period_s = max(activity_period_s, tick_s)
        self.max_lifetime_s = max_lifetime_s
        self.model = power or POWER[layout.soc]
        self.noise_rel = noise_rel
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.errors = 0  # ticks that raised (the last exception is in .error)
        self._late_max_s = 0.0  # the latest a tick started after its planned time, since take_late_max_s()
        self._in = _InputReader()
        self._knobs: dict[str, _Knobs] = {}

        def files(base: str, roles: dict[str, str]) -> dict[str, str]:
            return {role: os.path.join(self.root, base, name) for role, name in roles.items()}

        for c in layout.clusters:
            self._knobs[c.name] = _Knobs(
                c.name, c.policy, c.opps_khz, c.governors,
                files(c.path, {"governor": "scaling_governor", "min": "scaling_min_freq",
                               "max": "scaling_max_freq", "setspeed": "scaling_setspeed"}),
                tuple(os.path.join(self.root, c.path, n) for n in ("scaling_cur_freq", "cpuinfo_cur_freq")),
                False)
        d = layout.devfreq
        self._knobs["gpu"] = _Knobs(
            "gpu", d.name, d.opps_hz, d.governors,
            files(d.path, {"governor": "governor", "min": "min_freq", "max": "max_freq",
                           "setspeed": "userspace/set_freq"}),
            tuple(os.path.join(self.root, d.path, n) for n in ("cur_freq", "target_freq")), True)
        if layout.sensor_kind == "ina231":
            default_period = (str(INA231_DEFAULT_UPDATE_PERIOD_US), INA231_DEFAULT_UPDATE_PERIOD_US * 1e-6)
        else:
            default_period = (str(HWMON_DEFAULT_UPDATE_INTERVAL_MS), HWMON_DEFAULT_UPDATE_INTERVAL_MS * 1e-3)
        self._sensors = [_Sensor(r.name, os.path.join(self.root, r.path), period_text=default_period[0],
                                 period_s=default_period[1], enable_text="0")
                         for r in layout.rails]
        self._zones = [_Zone(os.path.join(self.root, z.path, "temp"), z.tracks, self.model.ambient_c)
                       for z in layout.thermal_zones]
        self._busy: dict[str, float] = {c.name: 0.0 for c in layout.clusters}
        self._energy_j: dict[str, float] = {}
        self._rails: dict = {}
        self._last_step: float | None = None
        self._last_activity: float = -1e9
        # whole-board power per tick, for power_w(t) and energy_j(t0, t1); readers wait at
        # most a few ticks for one that has not happened yet
        self._supply = _SupplyHistory(history_s, wait_s=10 * tick_s + 0.1)

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> BoardSimulator:
        if self._thread is not None:
            raise RuntimeError("simulator already started")
        self._load_state()
        self._step(time.monotonic())  # the tree is consistent before start() returns
        self._thread = threading.Thread(target=self._run, name=f"board-sim:{self.root}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def __enter__(self) -> BoardSimulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def take_late_max_s(self) -> float:
        """How late (s) the latest tick started after its planned time since the previous call; then resets.
        Ticks late by more than a sensor's period mean the board's sensors skipped conversions."""
        late, self._late_max_s = self._late_max_s, 0.0
        return late

    @property
    def error(self) -> BaseException | None:
        """The last exception a tick raised, if any (the thread carries on)."""
        return self._error

    @property
    def settle_s(self) -> float:
        """Wait this long after a write before reading it back."""
        return 3 * self.tick_s

    # --- fault injection and ground truth ----------------------------------------------------

    def throttle(self, name: str, khz: int | None) -> None:
        """Cap a policy (``"policy4"`` or ``"a15"``) or the GPU (devfreq name or ``"gpu"``) at
        ``khz`` (rounded down to an OPP); ``None`` removes the cap."""
        knobs = self._find(name)
        with self._lock:
            if khz is None:
                knobs.cap = None
                return
            cap = khz * 1000 if knobs.name == "gpu" else khz
            below = [f for f in knobs.opps if f <= cap]
            knobs.cap = below[-1] if below else knobs.opps[0]

    def throttled(self) -> dict[str, int]:
        with self._lock:
            return {k.node: k.cap for k in self._knobs.values() if k.cap is not None}

    def _find(self, name: str) -> _Knobs:
        for k in self._knobs.values():
            if name in (k.name, k.node):
                return k
        raise KeyError(f"{self.layout.soc} has no policy or devfreq node {name!r}")

    def utilisation(self) -> dict[str, float]:
        with self._lock:
            return dict(self._busy)

    def rail_power_w(self) -> dict[str, float]:
        """Instantaneous power of every rail (also of rails without a sensor)."""
        with self._lock:
            return {name: r.power_w for name, r in self._rails.items()}

    def energy_j(self, t0_mono_s: float | None = None,
                 t1_mono_s: float | None = None) -> dict[str, float] | float:
        """Ground truth.

        Without arguments: energy per rail since start() (``dict``, J). With a
        window: the exact energy (J, ``float``) of the whole-board supply power
        over ``[t0_mono_s, t1_mono_s]``, the integral of the step function
        :meth:`power_w` follows (the activity source protocol of
        :mod:`orchestrator.meters.activity`).
        """
        if t0_mono_s is None and t1_mono_s is None:
            with self._lock:
                return dict(self._energy_j)
        if t0_mono_s is None or t1_mono_s is None:
            raise TypeError("energy_j needs both ends of the window, or neither")
        t0, t1 = float(t0_mono_s), float(t1_mono_s)
        energy = self._supply.energy(t0, t1)
        return energy if energy is not None else self._latest_supply_w() * (t1 - t0)

    def _latest_supply_w(self) -> float:
        with self._lock:
            return self.model.rest_of_board_w + sum(r.power_w for r in self._rails.values())

    def power_w(self, t_mono_s: float | None = None) -> float:
        """Whole-board supply power (what a meter at the barrel jack sees).

        Without argument: the latest value. At a time: the value computed at the
        last tick at or before it (it holds until the next tick; times before the
        kept history get its first value). For a time the simulator has not
        reached yet but that is not in the future, waits (a few ticks at most)
        for the tick that covers it.
        """
        if t_mono_s is not None:
            watts = self._supply.value(float(t_mono_s))
            if watts is not None:
                return watts
        return self._latest_supply_w()

    def power_w_array(self, t):
        """:meth:`power_w` at every time of the numpy array ``t`` (waits for the latest one).

        numpy is imported here, not at the top: the farm itself does not need it."""
        watts = self._supply.values(t)
        if watts is None:
            import numpy as np

            return np.full(np.shape(t), self._latest_supply_w())
        return watts

    def sensor_updates(self) -> dict[str, int]:
        with self._lock:
            return {s.rail: s.updates for s in self._sensors}

    def current_freqs(self) -> dict[str, int]:
        with self._lock:
            return {k.name: k.cur for k in self._knobs.values()}

    # --- the loop ----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._supply.close()  # no more ticks: readers of power_w(t) stop waiting

    def _loop(self) -> None:
        deadline = time.monotonic() + self.max_lifetime_s
        failures = 0
        planned: float | None = None
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= deadline:
                break
            if planned is not None and now - planned > self._late_max_s:
                self._late_max_s = now - planned
            try:
                self._step(now)
                failures = 0
            except Exception as exc:  # noqa: BLE001 - a kernel keeps going; the owner can inspect
                self._error = exc
                self.errors += 1
                failures += 1
                if failures >= MAX_CONSECUTIVE_FAILURES:
                    break
            wake = now + self.tick_s
            for s in self._sensors:
                if s.due is not None:
                    wake = min(wake, s.due)
            planned = min(wake, deadline)
            self._stop.wait(max(0.0, planned - time.monotonic()))

    def _load_state(self) -> None:
        for k in self._knobs.values():
            k.governor = read_attr(Path(k.paths["governor"]))
            if k.governor not in k.governors:
                k.governor = k.governors[0]
            k.min = _parse_int(read_attr(Path(k.paths["min"]))) or k.opps[0]
            k.max = _parse_int(read_attr(Path(k.paths["max"]))) or k.opps[-1]
            k.setspeed = _parse_int(read_attr(Path(k.paths["setspeed"]))) if k.governor == "userspace" else None
            k.cur = 0  # written on the first step
        for s in self._sensors:
            self._read_sensor_controls(s, time.monotonic())

    def _step(self, now: float) -> None:
        dt = 0.0 if self._last_step is None else now - self._last_step
        self._last_step = now
        if now - self._last_activity >= self.activity_period_s:
            self._last_activity = now
            busy = dict(self.activity())
            with self._lock:
                self._busy = {c.name: float(busy.get(c.name, 0.0)) for c in self.layout.clusters}
        with self._lock:
            for k in self._knobs.values():
                self._apply(k)
            freqs = {k.name: k.cur for k in self._knobs.values()}
            rails = rail_readings(self.layout, self.model, freqs, self._busy)
            # integrate with the power held over the last interval (left rectangle)
            for name, r in (self._rails or rails).items():
                self._energy_j[name] = self._energy_j.get(name, 0.0) + r.power_w * dt
            self._rails = rails
            caps = {k.name for k in self._knobs.values() if k.cap is not None}
            supply_w = self.model.rest_of_board_w + sum(r.power_w for r in rails.values())
        self._supply.record(now, supply_w)
        self._thermal(now, dt, rails, caps)
        for s in self._sensors:
            self._sensor(s, now, rails)

    # --- cpufreq / devfreq -------------------------------------------------------------------

    def _apply(self, k: _Knobs) -> None:
        gov_path, set_path = k.paths["governor"], k.paths["setspeed"]
        text = self._in.read(gov_path)
        if text is not None and text != k.governor:
            if text in k.governors:
                previous, k.governor = k.governor, text
                if text == "userspace":
                    # honour a setspeed written together with the governor, else start at cur
                    wanted = _parse_int(self._in.read(set_path) or "")
                    k.setspeed = wanted if wanted in k.opps else k.cur
                elif previous == "userspace":
                    k.setspeed = None
            else:
                write_attr(gov_path, k.governor)
        self._apply_limits(k)
        text = self._in.read(set_path)
        if text is None:
            pass
        elif k.governor == "userspace":
            wanted = _parse_int(text)
            if wanted in k.opps:
                k.setspeed = wanted
            if text != str(k.setspeed):
                write_attr(set_path, k.setspeed)
        elif text != UNSUPPORTED:
            write_attr(set_path, UNSUPPORTED)
        if k.governor == "performance":
            cur = k.max
        elif k.governor == "powersave":
            cur = k.min
        elif k.governor == "userspace":
            cur = k.setspeed if k.setspeed is not None else k.cur
        else:
            cur = k.min if k.load_following_min else k.max
        cur = min(max(cur, k.min), k.max)
        if k.cap is not None:
            cur = min(cur, k.cap)
        if cur != k.cur:
            k.cur = cur
            for path in k.cur_paths:
                write_attr(path, cur)

    def _apply_limits(self, k: _Knobs) -> None:
        min_path, max_path = k.paths["min"], k.paths["max"]
        min_text, max_text = self._in.read(min_path), self._in.read(max_path)
        if min_text is None or max_text is None:
            return
        changed_min, changed_max = min_text != str(k.min), max_text != str(k.max)
        if not (changed_min or changed_max):
            return
        want_min, want_max = _parse_int(min_text), _parse_int(max_text)
        new_min = want_min if changed_min and want_min in k.opps else k.min
        new_max = want_max if changed_max and want_max in k.opps else k.max
        if new_min > new_max:
            # EINVAL for whichever write made the range empty (both if both did)
            if changed_max and new_max != k.max and k.min <= new_max:
                new_min = k.min
            elif changed_min and new_min != k.min and new_min <= k.max:
                new_max = k.max
            else:
                new_min, new_max = k.min, k.max
        k.min, k.max = new_min, new_max
        if min_text != str(k.min):
            write_attr(min_path, k.min)
        if max_text != str(k.max):
            write_attr(max_path, k.max)

    # --- thermal -----------------------------------------------------------------------------

    def _thermal(self, now: float, dt: float, rails: Mapping, capped: set[str]) -> None:
        for z in self._zones:
            watts = sum(rails[t].power_w for t in z.tracks if t in rails)
            z.temp_c = relax(z.temp_c, self.model.ambient_c + self.model.c_per_w * watts, dt, self.model.tau_s)
            if capped & set(z.tracks):
                z.temp_c = max(z.temp_c, self.model.throttled_c)
            milli_c = round(z.temp_c) * 1000  # the sensors report whole degrees
            if milli_c != z.written and now - z.written_at >= TEMP_WRITE_PERIOD_S:
                z.written_at, z.written = now, milli_c
                write_attr(z.temp_path, milli_c)

    # --- power sensors -----------------------------------------------------------------------

    def _read_sensor_controls(self, s: _Sensor, now: float) -> None:
        """Read enable/period; revert values the driver would refuse; reschedule on change."""
        vendor = self.layout.sensor_kind == "ina231"
        if vendor:
            period_file, enable_file = "update_period", "enable"
            scale, lo, hi = 1e-6, MIN_UPDATE_PERIOD_US, MAX_UPDATE_PERIOD_US
        else:
            period_file, enable_file = "update_interval", None
            scale, lo, hi = 1e-3, 1, MAX_UPDATE_PERIOD_US // 1000
        period_path = os.path.join(s.base, period_file)
        text = self._in.read(period_path)
        if text is not None and text != s.period_text:
            value = _parse_int(text)
            if value is not None and lo <= value <= hi:
                s.period_text, s.period_s = text, value * scale
                if s.due is not None:
                    s.due = s.since_t + s.period_s
            elif s.period_text:
                write_attr(period_path, s.period_text)
        enabled = True
        if enable_file is not None:
            enable_path = os.path.join(s.base, enable_file)
            text = self._in.read(enable_path)
            if text is not None and text != s.enable_text:
                value = _parse_int(text)
                if value in (0, 1):
                    s.enable_text = text
                elif s.enable_text:
                    write_attr(enable_path, s.enable_text)
            enabled = _parse_int(s.enable_text) == 1
        if enabled and not s.enabled:
            s.since_t, s.since_j = now, self._energy_j.get(s.rail, 0.0)
            s.due = now + s.period_s
        elif not enabled:
            s.due = None
        s.enabled = enabled

    def _sensor(self, s: _Sensor, now: float, rails: Mapping) -> None:
        self._read_sensor_controls(s, now)
        if s.due is None or now < s.due:
            return
        with self._lock:
            energy = self._energy_j.get(s.rail, 0.0)
            s.updates += 1
        span = now - s.since_t
        power = (energy - s.since_j) / span if span > 0 else rails[s.rail].power_w
        volts = rails[s.rail].voltage_v
        if self.noise_rel:  # ADC noise: consecutive readings differ, as on the chip
            power = max(0.0, power * (1.0 + self._rng.gauss(0.0, self.noise_rel)))
            volts = volts * (1.0 + self._rng.gauss(0.0, self.noise_rel / 4))
        amps = power / volts if volts else 0.0
        if self.layout.sensor_kind == "ina231":
            write_attr(os.path.join(s.base, "sensor_W"), f"{power:.6f}")
            write_attr(os.path.join(s.base, "sensor_A"), f"{amps:.6f}")
            write_attr(os.path.join(s.base, "sensor_V"), f"{volts:.6f}")
        else:
            write_attr(os.path.join(s.base, "power1_input"), round(power * 1e6))
            write_attr(os.path.join(s.base, "curr1_input"), round(amps * 1e3))
            write_attr(os.path.join(s.base, "in1_input"), round(volts * 1e3))
            write_attr(os.path.join(s.base, "in0_input"), round(amps * 0.010 * 1e3))  # 10 mΩ shunt
        s.since_t, s.since_j = now, energy
        s.due += s.period_s
        if s.due <= now:  # fell behind: skip, never catch up with a burst
            s.due = now + s.period_s

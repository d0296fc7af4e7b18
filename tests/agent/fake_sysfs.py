"""Fake sysfs trees for the power sensors (and frequency domains, thermal zones), and a test-only fake driver thread.

``ina231_dir``/``hwmon_dir`` lay out one sensor folder the way the kernels
do. ``FakeDriver`` publishes a new conversion every ``period_s`` into the
folders it drives (for INA231 only while ``enable`` reads 1, like the vendor
driver: the values stay zero otherwise). The three files of a conversion
change at one instant, as a driver updates its cached values at once (see
``publish``). The thread is bounded: it stops at ``stop()`` or after
``max_s`` seconds.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

Values = Tuple[float, float, float]  # W, A, V

ADDRESSES = {"a15": "0040", "mem": "0041", "gpu": "0044", "a7": "0045"}


def ina231_rel(rail: str, bus: int = 3) -> str:
    return "bus/i2c/drivers/INA231/%d-%s" % (bus, ADDRESSES[rail])


def ina231_dir(root: Path, rel: str, enable: int = 0, update_period_us: int = 263808,
               values: Values = (0.0, 0.0, 0.0)) -> Path:
    d = root / rel
    d.mkdir(parents=True, exist_ok=True)
    (d / "enable").write_text("%d\n" % enable)
    (d / "update_period").write_text("%d\n" % update_period_us)
    write_ina231(d, values)
    return d


def hwmon_dir(root: Path, rel: str, name: str = "ina231", update_interval_ms: int = 50,
              values: Values = (0.0, 0.0, 0.0)) -> Path:
    d = root / rel
    d.mkdir(parents=True, exist_ok=True)
    (d / "name").write_text(name + "\n")
    (d / "update_interval").write_text("%d\n" % update_interval_ms)
    write_hwmon(d, values)
    return d


def publish(d: Path, files: Dict[str, str]) -> None:
    """Make ``files`` (name -> text) the sensor's values, all at one instant.

    A driver updates its cached values at once; here each value file is a link
    into ``.conv/cur/``, and ``cur`` (a link to a per-conversion folder) is
    swapped atomically. The folder of the conversion before last is removed.
    """
    conv = d / ".conv"
    conv.mkdir(exist_ok=True)
    cur = conv / "cur"
    k = int(os.readlink(str(cur))) + 1 if cur.is_symlink() else 0
    folder = conv / str(k)
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
        link = d / name
        if not link.is_symlink():
            link.symlink_to(os.path.join(".conv", "cur", name))
    tmp = conv / "cur.new"
    tmp.symlink_to(str(k))
    os.replace(str(tmp), str(cur))
    shutil.rmtree(str(conv / str(k - 2)), ignore_errors=True)


def write_ina231(d: Path, values: Values) -> None:
    w, a, v = values
    publish(d, {"sensor_W": "%.6f\n" % w, "sensor_A": "%.6f\n" % a, "sensor_V": "%.6f\n" % v})


def write_hwmon(d: Path, values: Values) -> None:
    w, a, v = values
    publish(d, {"power1_input": "%d\n" % round(w * 1e6), "curr1_input": "%d\n" % round(a * 1e3),
                "in1_input": "%d\n" % round(v * 1e3)})


class FakeDriver:
    """Publishes conversion k of rail r, ``values(r, k)``, every ``period_s`` (k = 0, 1, ...)."""

    def __init__(self, dirs: Dict[str, Path], period_s: float, values: Callable[[str, int], Values],
                 kind: str = "ina231", max_s: float = 30.0) -> None:
        self.dirs = dirs
        self.period_s = period_s
        self.values = values
        self.kind = kind
        self.max_s = max_s
        self.published: Dict[str, List[Values]] = {rail: [] for rail in dirs}
        # monotonic ns just after conversion k of a rail was published (a reader can see it from then on)
        self.published_ns: Dict[str, List[int]] = {rail: [] for rail in dirs}
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> "FakeDriver":
        self._thread = threading.Thread(target=self._run, name="fake-driver", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10.0)
            assert not self._thread.is_alive()

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_s
        for _ in range(int(self.max_s / self.period_s) + 1):
            for rail, d in self.dirs.items():
                if self.kind == "ina231":
                    if (d / "enable").read_text().strip() != "1":
                        continue
                    values = self.values(rail, len(self.published[rail]))
                    write_ina231(d, values)
                else:
                    values = self.values(rail, len(self.published[rail]))
                    write_hwmon(d, values)
                self.published_ns[rail].append(time.monotonic_ns())
                self.published[rail].append(values)
            if time.monotonic() >= deadline or self._stop.wait(self.period_s):
                return


# --- frequency domains and thermal zones (static files: a test writes a cap itself) -----------

def cpufreq_policy_dir(root: Path, policy: str, available_khz: Tuple[int, ...], governor: str = "ondemand",
                       cur_khz: Optional[int] = None, limit_khz: Optional[int] = None,
                       related_cpus: str = "0 1 2 3") -> Path:
    """A cpufreq policy as the kernel shows it, at its top frequency unless told otherwise."""
    d = root / "devices/system/cpu/cpufreq" / policy
    d.mkdir(parents=True, exist_ok=True)
    top = max(available_khz)
    files = {
        "cpuinfo_min_freq": min(available_khz), "cpuinfo_max_freq": top, "related_cpus": related_cpus,
        "scaling_available_frequencies": " ".join(map(str, sorted(available_khz))) + " ",
        "scaling_available_governors": "ondemand userspace powersave conservative performance ",
        "scaling_governor": governor, "scaling_min_freq": min(available_khz),
        "scaling_max_freq": top if limit_khz is None else limit_khz,
        "scaling_cur_freq": top if cur_khz is None else cur_khz,
    }
    for name, value in files.items():
        (d / name).write_text("%s\n" % value)
    return d


def devfreq_dir(root: Path, node: str, available_hz: Tuple[int, ...], governor: str = "simple_ondemand") -> Path:
    d = root / "class/devfreq" / node
    d.mkdir(parents=True, exist_ok=True)
    files = {"available_frequencies": " ".join(map(str, sorted(available_hz))) + " ",
             "available_governors": "simple_ondemand performance powersave userspace ", "governor": governor,
             "min_freq": min(available_hz), "max_freq": max(available_hz), "cur_freq": min(available_hz)}
    for name, value in files.items():
        (d / name).write_text("%s\n" % value)
    return d


def thermal_zone_dir(root: Path, index: int, milli_c: int, kind: str = "cpu-thermal") -> Path:
    d = root / "class/thermal" / ("thermal_zone%d" % index)
    d.mkdir(parents=True, exist_ok=True)
    (d / "type").write_text(kind + "\n")
    (d / "temp").write_text("%d\n" % milli_c)
    return d


def cap(policy_dir: Path, khz: int, limit: bool = True) -> None:
    """A thermal cap as a kernel shows it: the current frequency at ``khz`` and (``limit``) the policy's
    limit lowered to it; with ``limit=False`` only the frequency drops (a cap the limit does not show)."""
    (policy_dir / "scaling_cur_freq").write_text("%d\n" % khz)
    if limit:
        (policy_dir / "scaling_max_freq").write_text("%d\n" % khz)

"""Fake sysfs trees with the layouts of real boards (Odroid XU3, HiKey 970).

A tree is an ordinary directory that the device agent is told is its sysfs
root. Paths, file names and value formats follow the kernels the boards run:

* cpufreq per policy (``devices/system/cpu/cpufreq/policyN``) with the real
  OPP tables, plus ``cpuN/cpufreq`` links to the policy as on a real kernel;
* the GPU's devfreq node (``class/devfreq/<node>``, frequencies in Hz);
* thermal zones (``class/thermal/thermal_zoneN/{type,temp}``, millidegrees);
* on the XU3, the four INA231 rail sensors, either as the vendor kernel shows
  them (``bus/i2c/drivers/INA231/3-00xx``: ``sensor_W/A/V`` in decimal SI
  units, ``enable``, ``update_period`` in µs) or as mainline ``ina2xx``
  hwmon devices (``class/hwmon/hwmonN``: µW, mA, mV, ``update_interval`` ms).

The files are static until a :class:`~orchestrator.virtual.board_sim.BoardSimulator`
plays the kernel's part. :class:`SocLayout` says which nodes exist (relative
paths), so that tests, the simulator and the inventory generator never spell a
path twice.

OPP tables: XU3 from the Hardkernel/mainline exynos5422 tables; HiKey 970 from
the hi3670 device tree and the Mali-G72 devfreq table of the Linux BSP (the
Android build also has higher GPU OPPs).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

SOCS = ("odroid_xu3", "hikey970")
SENSOR_VARIANTS = ("vendor", "hwmon")

UNSUPPORTED = "<unsupported>"
CPU_ROOT = "devices/system/cpu"


@dataclass(frozen=True)
class CpuCluster:
    """One cpufreq policy: a cluster of identical cores."""

    name: str  # e.g. "a15": the component name used everywhere else
    cls: str  # "little" | "big"
    policy: str  # e.g. "policy4"
    cpus: tuple[int, ...]  # the board's own (virtual) CPU ids
    opps_khz: tuple[int, ...]  # ascending
    governors: tuple[str, ...]
    default_governor: str
    path: str  # relative to the sysfs root


@dataclass(frozen=True)
class DevfreqNode:
    name: str  # e.g. "11800000.gpu"
    gpu: str  # e.g. "Mali-T628 MP6"
    opps_hz: tuple[int, ...]  # ascending
    governors: tuple[str, ...]
    default_governor: str
    path: str


@dataclass(frozen=True)
class ThermalZone:
    index: int
    type: str
    tracks: tuple[str, ...]  # rails/clusters whose heat it sees
    path: str


@dataclass(frozen=True)
class PowerRail:
    """One INA231 sensor and the rail it measures."""

    name: str  # "a15" | "a7" | "gpu" | "mem"
    i2c_address: str  # e.g. "3-0040"
    path: str  # sensor directory (vendor or hwmon layout)


@dataclass(frozen=True)
class SocLayout:
    soc: str  # inventory group / our name: "odroid_xu3" | "hikey970"
    soc_id: str  # "exynos5422" | "kirin970"
    n_cpus: int
    clusters: tuple[CpuCluster, ...]
    devfreq: DevfreqNode
    thermal_zones: tuple[ThermalZone, ...]
    sensor_kind: str | None  # "ina231" (vendor driver) | "hwmon" | None
    rails: tuple[PowerRail, ...]

    def cluster(self, name: str) -> CpuCluster:
        """A cluster by component name ("a15") or policy name ("policy4")."""
        for c in self.clusters:
            if name in (c.name, c.policy):
                return c
        raise KeyError(f"{self.soc} has no cluster or policy {name!r}")

    def rail(self, name: str) -> PowerRail:
        for r in self.rails:
            if r.name == name:
                return r
        raise KeyError(f"{self.soc} has no power rail {name!r}")

    @property
    def cpu_dir(self) -> str:
        return CPU_ROOT


def _steps(lo: int, hi: int, step: int) -> tuple[int, ...]:
    return tuple(range(lo, hi + 1, step))


# --- static SoC descriptions ---------------------------------------------------------------

_XU3_CPU_GOVERNORS = ("conservative", "ondemand", "userspace", "powersave", "interactive", "performance")
_HIKEY_CPU_GOVERNORS = ("conservative", "ondemand", "userspace", "powersave", "performance", "schedutil")
_GPU_GOVERNORS = ("userspace", "powersave", "performance", "simple_ondemand")

# rail name, i2c address (vendor driver: 0x40 A15, 0x41 memory, 0x44 GPU, 0x45 A7)
_XU3_RAILS = (("a15", "3-0040"), ("mem", "3-0041"), ("gpu", "3-0044"), ("a7", "3-0045"))
_XU3_I2C_BUS = "devices/platform/12c90000.i2c/i2c-3"

_SPECS: dict[str, dict] = {
    "odroid_xu3": {
        "soc_id": "exynos5422",
        "clusters": (
            ("a7", "little", "policy0", (0, 1, 2, 3), _steps(200000, 1400000, 100000),
             _XU3_CPU_GOVERNORS, "ondemand"),
            ("a15", "big", "policy4", (4, 5, 6, 7), _steps(200000, 2000000, 100000),
             _XU3_CPU_GOVERNORS, "ondemand"),
        ),
        "devfreq": ("11800000.gpu", "Mali-T628 MP6",
                    (177000000, 266000000, 350000000, 420000000, 480000000, 543000000, 600000000),
                    _GPU_GOVERNORS, "simple_ondemand"),
        # the four TMU probes sit in the A15 cluster; the fifth in the GPU
        "thermal": (("cpu0-thermal", ("a15", "a7")), ("cpu1-thermal", ("a15", "a7")),
                    ("cpu2-thermal", ("a15", "a7")), ("cpu3-thermal", ("a15", "a7")),
                    ("gpu-thermal", ("gpu",))),
        "rails": _XU3_RAILS,
    },
    "hikey970": {
        "soc_id": "kirin970",
        "clusters": (
            ("a53", "little", "policy0", (0, 1, 2, 3),
             (509000, 1018000, 1210000, 1402000, 1556000, 1690000, 1844000),
             _HIKEY_CPU_GOVERNORS, "schedutil"),
            ("a73", "big", "policy4", (4, 5, 6, 7),
             (682000, 1018000, 1210000, 1364000, 1498000, 1652000, 1863000, 2093000, 2362000),
             _HIKEY_CPU_GOVERNORS, "schedutil"),
        ),
        "devfreq": ("e82c0000.mali", "Mali-G72 MP12",
                    (103750000, 150909000, 237000000, 332000000, 415000000, 550000000, 667000000,
                     767000000),
                    _GPU_GOVERNORS, "simple_ondemand"),
        "thermal": (("soc_thermal", ("a73", "a53", "gpu")), ("cls0", ("a53",)), ("cls1", ("a73",)),
                    ("gpu", ("gpu",))),
        "rails": (),
    },
}

# Defaults of the sensors, as their drivers set them.
INA231_DEFAULT_UPDATE_PERIOD_US = 263808
HWMON_DEFAULT_UPDATE_INTERVAL_MS = 35
AMBIENT_MILLI_C = 38000


def layout_for(soc: str, sensors: str = "vendor") -> SocLayout:
    """The layout of ``soc`` without touching the disk."""
    if soc not in _SPECS:
        raise ValueError(f"unknown SoC {soc!r}; known: {', '.join(SOCS)}")
    if sensors not in SENSOR_VARIANTS:
        raise ValueError(f"unknown sensor layout {sensors!r}; known: {', '.join(SENSOR_VARIANTS)}")
    spec = _SPECS[soc]
    clusters = tuple(
        CpuCluster(name, cls, policy, cpus, opps, govs, gov, f"{CPU_ROOT}/cpufreq/{policy}")
        for name, cls, policy, cpus, opps, govs, gov in spec["clusters"]
    )
    dname, gpu, opps_hz, dgovs, dgov = spec["devfreq"]
    devfreq = DevfreqNode(dname, gpu, opps_hz, dgovs, dgov, f"class/devfreq/{dname}")
    zones = tuple(
        ThermalZone(i, ztype, tracks, f"class/thermal/thermal_zone{i}")
        for i, (ztype, tracks) in enumerate(spec["thermal"])
    )
    rails: tuple[PowerRail, ...] = ()
    kind = None
    if spec["rails"]:
        if sensors == "vendor":
            kind = "ina231"
            rails = tuple(PowerRail(n, a, f"bus/i2c/drivers/INA231/{a}") for n, a in spec["rails"])
        else:
            kind = "hwmon"
            rails = tuple(PowerRail(n, a, f"class/hwmon/hwmon{i}") for i, (n, a) in enumerate(spec["rails"]))
    n_cpus = 1 + max(cpu for c in clusters for cpu in c.cpus)
    return SocLayout(soc, spec["soc_id"], n_cpus, clusters, devfreq, zones, kind, rails)


# --- file helpers ---------------------------------------------------------------------------


def write_attr(path: str | Path, value: object) -> None:
    """Replace a sysfs attribute's content atomically (a reader never sees half a value)."""
    path = os.fspath(path)
    text = value if isinstance(value, str) else str(value)
    if not text.endswith("\n"):
        text += "\n"
    directory, name = os.path.split(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
    try:
        os.fchmod(fd, 0o644)
        os.write(fd, text.encode())
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def read_attr(path: Path) -> str:
    """The attribute's content without surrounding whitespace ('' if missing)."""
    try:
        return path.read_text().strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return ""


def kernel_list(values) -> str:
    """Lists as the kernel prints them: each value followed by one space."""
    return "".join(f"{v} " for v in values)


def cpu_range(cpus) -> str:
    """"0-3" style, like ``online``/``possible``."""
    cpus = sorted(cpus)
    parts, start, prev = [], cpus[0], cpus[0]
    for c in cpus[1:] + [None]:
        if c is not None and c == prev + 1:
            prev = c
            continue
        parts.append(f"{start}-{prev}" if prev != start else f"{start}")
        if c is not None:
            start = prev = c
    return ",".join(parts)


def _files(base: Path, files: dict[str, object]) -> None:
    base.mkdir(parents=True, exist_ok=True)
    for name, value in files.items():
        target = base / name
        target.parent.mkdir(parents=True, exist_ok=True)
        write_attr(target, value)


# --- the tree -------------------------------------------------------------------------------


def build_tree(root: Path, soc: str, *, sensors: str = "vendor") -> SocLayout:
    """Create the sysfs tree of ``soc`` under ``root`` (existing files are reset)."""
    layout = layout_for(soc, sensors)
    root = Path(root)
    cpu_root = root / CPU_ROOT
    everything = tuple(range(layout.n_cpus))
    _files(cpu_root, {"online": cpu_range(everything), "possible": cpu_range(everything),
                      "present": cpu_range(everything), "offline": ""})
    for c in layout.clusters:
        top = c.opps_khz[-1]
        _files(root / c.path, {
            "related_cpus": " ".join(map(str, c.cpus)),
            "affected_cpus": " ".join(map(str, c.cpus)),
            "cpuinfo_min_freq": c.opps_khz[0],
            "cpuinfo_max_freq": top,
            "cpuinfo_transition_latency": 100000,
            "scaling_available_frequencies": kernel_list(c.opps_khz),
            "scaling_available_governors": kernel_list(c.governors),
            "scaling_driver": "cpufreq-dt",
            "scaling_governor": c.default_governor,
            "scaling_min_freq": c.opps_khz[0],
            "scaling_max_freq": top,
            "scaling_cur_freq": top,
            "cpuinfo_cur_freq": top,
            "scaling_setspeed": UNSUPPORTED,
        })
        for cpu in c.cpus:
            cpu_dir = cpu_root / f"cpu{cpu}"
            cpu_dir.mkdir(parents=True, exist_ok=True)
            if cpu != 0:  # cpu0 cannot be hot-unplugged, so it has no 'online'
                write_attr(cpu_dir / "online", 1)
            link = cpu_dir / "cpufreq"
            if not link.is_symlink():
                link.symlink_to(f"../cpufreq/{c.policy}")
    d = layout.devfreq
    _files(root / d.path, {
        "available_frequencies": kernel_list(d.opps_hz),
        "available_governors": kernel_list(d.governors),
        "governor": d.default_governor,
        "min_freq": d.opps_hz[0],
        "max_freq": d.opps_hz[-1],
        "cur_freq": d.opps_hz[0],
        "target_freq": d.opps_hz[0],
        "polling_interval": 100,
        "userspace/set_freq": UNSUPPORTED,
    })
    for z in layout.thermal_zones:
        _files(root / z.path, {"type": z.type, "temp": AMBIENT_MILLI_C, "mode": "enabled"})
    for r in layout.rails:
        if layout.sensor_kind == "ina231":
            _files(root / r.path, {
                "name": "INA231",
                "sensor_W": "0.000000", "sensor_A": "0.000000", "sensor_V": "0.000000",
                "enable": 0,
                "update_period": INA231_DEFAULT_UPDATE_PERIOD_US,
            })
        else:
            device = root / _XU3_I2C_BUS / r.i2c_address
            _files(device, {"name": "ina231"})
            _files(root / r.path, {
                "name": "ina231",
                "in0_input": 0,  # shunt voltage, mV
                "in1_input": 0,  # bus voltage, mV
                "curr1_input": 0,  # mA
                "power1_input": 0,  # µW
                "update_interval": HWMON_DEFAULT_UPDATE_INTERVAL_MS,
                "shunt_resistor": 10000,  # µΩ
            })
            link = root / r.path / "device"
            if not link.is_symlink():
                link.symlink_to(os.path.relpath(device, root / r.path))
    return layout

"""Boards, their components and their power meters, as the inventory describes them.

Data only. ``config/load.py`` builds these from what ``ansible-inventory --list``
prints, so group_vars / host_vars precedence is Ansible's own.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, field_validator, model_validator

from orchestrator.config.experiment import NAME_PATTERN

ComponentClass = Literal["big", "little", "cpu", "gpu", "npu"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


ComponentKind = Literal["cpu", "gpu", "external", "simulated"]
# the fields that only one kind of component may set
_KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "cpu": (),
    "gpu": ("delegate_path", "delegate_options", "devfreq"),
    "external": ("command", "frames_per_batch", "timeout_s"),
    "simulated": ("ms_per_inference", "ms_per_mib", "sigma"),
}
#: kinds whose inference is not the board's own work (no frequency domain the board controls, one thread)
DRIVEN_KINDS = ("external", "simulated")


class Component(Strict):
    """One measurable part of a SoC, as the agent drives it (docs/agent-protocol.md):

    - ``cpu``: a TFLite interpreter on a CPU cluster (``cpus``, ``threads``);
    - ``gpu``: the same interpreter with a delegate library (``delegate_path``,
      ``delegate_options``), driven from ``cpus``; ``devfreq`` names its frequency node;
    - ``external``: a command run per batch of ``frames_per_batch`` frames (e.g. an NPU
      runner), driven from ``cpus``; ``{model}``, ``{frames}`` and ``{batch}`` in its argv
      are replaced by the model path on the board, the batch size and the call number;
    - ``simulated``: a modelled latency, no inference: each call sleeps for a seeded lognormal draw
      (median ``ms_per_inference`` + ``ms_per_mib`` x the model file's MiB, shape ``sigma``). For virtual
      boards that must not burn the controller's cores; every row of its jobs is labelled simulated.
    """

    name: str = Field(pattern=NAME_PATTERN)
    kind: ComponentKind = "cpu"
    component_class: ComponentClass = Field("cpu", alias="class", description="for cross-SoC comparison")
    cpus: list[int] = Field(min_length=1)
    threads: PositiveInt | None = Field(None, description="interpreter threads; default: one per cpu")
    cpufreq_policy: str | None = Field(None, description="cpufreq policy of this cluster, e.g. policy4")
    peak_gflops: PositiveFloat | None = Field(None, description="theoretical fp32 peak, for the roofline")
    delegate_path: str | None = Field(None, description="gpu: the delegate library on the board")
    delegate_options: dict[str, str | int | float] = Field(default_factory=dict,
                                                           description="gpu: options passed to the delegate")
    devfreq: str | None = Field(None, description="gpu: devfreq node under class/devfreq/, to pin")
    command: list[str] | None = Field(None, min_length=1, description="external: argv run per batch")
    frames_per_batch: PositiveInt = 1
    timeout_s: PositiveFloat = 60.0
    ms_per_inference: PositiveFloat | None = Field(None, description="simulated: median latency of a call (ms)")
    ms_per_mib: float = Field(0.0, ge=0, description="simulated: ms added per MiB of the model file")
    sigma: float = Field(0.05, ge=0, description="simulated: the lognormal's shape (0: no spread)")

    @model_validator(mode="after")
    def _fields_of_its_kind(self) -> "Component":
        if self.kind == "gpu" and not self.delegate_path:
            raise ValueError("a gpu component needs 'delegate_path' (the delegate library on the board)")
        if self.kind == "external" and not self.command:
            raise ValueError("an external component needs 'command' (the argv run per batch)")
        if self.kind == "simulated" and self.ms_per_inference is None:
            raise ValueError("a simulated component needs 'ms_per_inference' (its modelled latency, ms)")
        foreign = [f for kind, fields in _KIND_FIELDS.items() if kind != self.kind for f in fields
                   if f in self.model_fields_set]
        if foreign:
            raise ValueError(f"{', '.join(foreign)}: not a field of a {self.kind} component")
        if self.kind in DRIVEN_KINDS and self.threads is not None:
            raise ValueError(f"threads: not a field of a{'n' if self.kind == 'external' else ''} {self.kind} "
                             "component")
        return self

    @property
    def effective_threads(self) -> int:
        if self.kind in DRIVEN_KINDS:
            return 1
        return self.threads or (1 if self.kind == "gpu" else len(self.cpus))

    @property
    def frequency_domain(self) -> str | None:
        """The cpufreq policy or devfreq node a frequency setting applies to."""
        return self.devfreq if self.kind == "gpu" else self.cpufreq_policy if self.kind == "cpu" else None

    def agent_spec(self) -> dict:
        """The agent's ``component`` object for this component."""
        spec: dict = {"name": self.name, "kind": self.kind, "cpus": list(self.cpus)}
        if self.kind not in DRIVEN_KINDS:
            spec["threads"] = self.effective_threads
        if self.kind == "gpu":
            spec["delegate_path"] = self.delegate_path
            if self.delegate_options:
                spec["delegate_options"] = dict(self.delegate_options)
        if self.kind == "external":
            spec.update(command=list(self.command or []), frames_per_batch=self.frames_per_batch,
                        timeout_s=self.timeout_s)
        if self.kind == "simulated":
            spec.update(ms_per_inference=self.ms_per_inference, ms_per_mib=self.ms_per_mib, sigma=self.sigma)
        return spec


class MeterSpec(Strict):
    """A power meter attached to a board (driven from the controller)."""

    kind: Literal["b2900", "virtual_b2900", "none"]
    resource: str | None = Field(None, description="VISA resource, e.g. TCPIP::10.0.0.9::5025::SOCKET")
    measures: Literal["board_supply", "rails"] = "board_supply"
    voltage_v: PositiveFloat = 5.0
    current_limit_a: PositiveFloat = 3.0
    aperture_s: PositiveFloat = 0.001
    interval_s: PositiveFloat = 0.002
    # virtual meter only: the simulated board's power model
    idle_w: PositiveFloat = 2.0
    per_cpu_active_w: PositiveFloat = 1.5

    @model_validator(mode="after")
    def _resource_for_real_meters(self) -> "MeterSpec":
        if self.kind == "b2900" and not self.resource:
            raise ValueError("a b2900 meter needs a VISA 'resource'")
        if self.interval_s < self.aperture_s:
            raise ValueError("interval_s must be >= aperture_s")
        return self


class PowerSensorsSpec(Strict):
    """On-board sensors the agent reads itself (XU3 INA231 rails, hwmon ina2xx)."""

    kind: Literal["ina231", "hwmon"]
    rails: dict[str, str] = Field(min_length=1, description="rail -> sensor folder relative to the sysfs root")
    update_period_us: PositiveInt | None = Field(None, description="INA231 conversion period to set (µs)")
    simulated: bool = Field(False, description="the sensors are simulated (an emulated board's modelled power): "
                                               "every figure from them is labelled simulated")


class ThermalSpec(Strict):
    """The SoC's thermal zones: sampled in every job's window, and read before every job to cool down.

    ``cooldown_c``: before each job the board waits until every zone reads below it (polling about once a
    second); still above after ``cooldown_timeout_s``, the board's remaining jobs fail (``CooldownTimeout``).
    Pick it above the board's idle temperature and well below its first trip point (the default 55 °C
    suits an XU3 with its fan, ~45-50 °C idle, trips from 85 °C, and a HiKey 970 with a heatsink and fan).
    ``null`` measures without waiting: results may then depend on the order of the jobs."""

    zones: list[str] = Field(min_length=1, description="thermal_zoneN names under class/thermal/")
    cooldown_c: PositiveFloat | None = Field(55.0, description="wait before each job until every zone is below "
                                                               "this (°C); null: no wait")
    cooldown_timeout_s: PositiveFloat = Field(300.0, description="longest wait; then the board's jobs fail")
    simulated: bool = Field(False, description="the zones are simulated (a virtual board's model): every "
                                               "temperature from them is labelled simulated")

    @field_validator("zones")
    @classmethod
    def _zone_names(cls, zones: list[str]) -> list[str]:
        bad = [z for z in zones if not re.fullmatch(r"thermal_zone[0-9]+", z)]
        if bad:
            raise ValueError(f"not a thermal_zoneN name: {', '.join(map(repr, bad))}")
        dupes = sorted({z for z in zones if zones.count(z) > 1})
        if dupes:
            raise ValueError(f"listed twice: {', '.join(dupes)}")
        return zones


class GpuSpec(Strict):
    devfreq: str = Field(description="devfreq node name under class/devfreq/")
    name: str | None = None


class SshSpec(Strict):
    """How the controller reaches a board (the same values Ansible uses)."""

    user: str = "root"
    port: PositiveInt = 22
    key_file: str | None = None
    known_hosts: str | None = Field(None, description="known_hosts file; default: ~/.ssh/known_hosts")
    connect_timeout_s: PositiveFloat = 10.0


class Board(Strict):
    name: str
    soc: str = Field(description="SoC type, e.g. exynos5422; one per inventory group")
    groups: tuple[str, ...] = ()
    connection: Literal["local", "ssh"] = "ssh"
    address: str | None = None
    work_dir: str = Field(description="where the agent, runtime venv and models live on the board")
    sysfs_root: str = Field("/sys", description="sysfs as the agent sees it (a fake tree on virtual boards)")
    components: list[Component] = Field(min_length=1)
    gpu: GpuSpec | None = None
    power_sensors: PowerSensorsSpec | None = None
    thermal: ThermalSpec | None = Field(None, description="thermal zones and cool-down; none: no temperature "
                                                          "recorded, no cool-down")
    meter: MeterSpec | None = None
    ssh: SshSpec = SshSpec()
    emulated: str | None = Field(None, description="the board's userland is emulated (e.g. 'qemu-user armhf, "
                                                   "Debian 12' on a virtual board): what emulates it. Its "
                                                   "timings are then not performance figures and are labelled "
                                                   "so; none: a real board (or the controller's own userland)")

    @field_validator("emulated")
    @classmethod
    def _says_what_emulates(cls, emulated: str | None) -> str | None:
        if emulated is not None and not emulated.strip():
            raise ValueError("an empty description: say what emulates the board (e.g. 'qemu-user armhf, "
                             "Debian 12'), or leave it out for a real board")
        return emulated.strip() if emulated is not None else None

    @model_validator(mode="after")
    def _unique_components(self) -> "Board":
        names = [c.name for c in self.components]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"component names must be unique, repeated: {', '.join(dupes)}")
        return self

    def component(self, name: str) -> Component | None:
        return next((c for c in self.components if c.name == name), None)


class Lab(Strict):
    """Every board of one inventory."""

    source: str
    boards: list[Board]

    def board(self, name: str) -> Board | None:
        return next((b for b in self.boards if b.name == name), None)

    def select(self, selectors: list[str]) -> list[Board]:
        """Boards named by board name, group name or 'all', in inventory order."""
        wanted = set(selectors)
        return [b for b in self.boards if "all" in wanted or b.name in wanted or wanted & set(b.groups)]

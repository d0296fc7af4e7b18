"""A job: one measurement of one model on one component of one board."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from orchestrator.config.experiment import MeasurementRules
from orchestrator.config.inventory import Component


class JobStatus(IntEnum):
    """Only moves forward (see ``advance``)."""

    PLANNED = 0
    RUNNING = 1
    DONE = 2
    FAILED = 3


def advance(current: JobStatus, new: JobStatus) -> JobStatus:
    return max(current, new)


@dataclass(frozen=True)
class Member:
    """One component taking part in a job (a co-execution job has several)."""

    name: str
    component_class: str
    cpus: tuple[int, ...]
    threads: int
    # the agent's component object (canonical JSON: hashable, and the spec is built from it)
    agent_component: str
    cpufreq_policy: str | None = None
    kind: str = "cpu"
    devfreq: str | None = None

    @classmethod
    def of(cls, c: Component) -> "Member":
        return cls(c.name, c.component_class, tuple(c.cpus), c.effective_threads,
                   agent_component=json.dumps(c.agent_spec(), sort_keys=True), cpufreq_policy=c.cpufreq_policy,
                   kind=c.kind, devfreq=c.devfreq)

    @property
    def frequency_domain(self) -> tuple[str, str] | None:
        """("cpufreq", policy) or ("devfreq", node) that a frequency setting applies to."""
        if self.kind == "cpu" and self.cpufreq_policy:
            return ("cpufreq", self.cpufreq_policy)
        if self.kind == "gpu" and self.devfreq:
            return ("devfreq", self.devfreq)
        return None

    def spec(self) -> dict[str, Any]:
        return json.loads(self.agent_component)


@dataclass(frozen=True)
class Job:
    job_id: str
    experiment: str
    board: str
    soc: str
    component: str
    component_class: str
    cpus: tuple[int, ...]
    threads: int
    model: str
    model_display: str
    dtype: str
    model_file: str
    model_sha256: str
    repeat: int
    rules: MeasurementRules
    members: tuple[Member, ...] = ()
    frequency: str | None = None  # "max" or kHz as text; None leaves the board's settings alone
    input_shape: tuple[int, ...] | None = None  # from the zoo manifest: the agent checks the model against it
    thermal_zones: tuple[str, ...] = ()  # the board's SoC's zones (inventory), sampled in the window

    @property
    def is_coexec(self) -> bool:
        return len(self.members) > 1

    def agent_spec(self, model_path: str, output_dir: str, input_seed: int = 0) -> dict[str, Any]:
        """The device agent's job spec (docs/agent-protocol.md, version 1)."""
        spec: dict[str, Any] = {
            "spec_version": 1,
            "job_id": self.job_id,
            "model": {"path": model_path, "sha256": self.model_sha256,
                      **({"input_shape": list(self.input_shape)} if self.input_shape else {})},
            "rules": self.rules.model_dump(),
            "input_seed": input_seed,
            "output_dir": output_dir,
            "progress_interval_s": 0.5,
        }
        platform = self.platform_spec()
        if platform:
            spec["platform"] = platform
        if self.is_coexec:
            spec["components"] = [m.spec() for m in self.members]
        else:
            spec["component"] = self.members[0].spec()
        return spec

    def platform_spec(self) -> dict[str, Any]:
        """The agent's ``platform`` block: every member's frequency domain (an external component has none the
        board controls) held at the requested setting, or without one watched, so that a cap during the window
        makes the job INVALID (a cpu member's policy is ``loaded``: its cluster is busy); and the SoC's thermal
        zones, sampled in the window. Empty when there is nothing to hold or watch."""
        held = None
        if self.frequency is not None:
            held = {"governor": "performance"} if self.frequency == "max" else {"pin_khz": int(self.frequency)}
        platform: dict[str, Any] = {}
        for m in self.members:
            if m.frequency_domain is not None:
                group, domain = m.frequency_domain
                watch = {"watch": True, **({"loaded": True} if m.kind == "cpu" else {})}
                platform.setdefault(group, {})[domain] = dict(held) if held is not None else watch
        if self.thermal_zones:
            platform["thermal_zones"] = list(self.thermal_zones)
        return platform

    def describe(self) -> str:
        return f"{self.board}/{self.component} {self.model_display} {self.dtype} #{self.repeat}"


def make_job_id(index: int, board: str, component: str, model: str, dtype: str, repeat: int,
               frequency: str | None = None) -> str:
    raw = f"{index:04d}-{board}-{component}-{model}-{dtype}" + (f"-f{frequency}" if frequency else "") + f"-r{repeat}"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", raw)

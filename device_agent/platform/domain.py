"""A frequency domain in sysfs: a cpufreq policy or a devfreq node, in kHz either way.

cpufreq (``devices/system/cpu/cpufreq/policyN``) speaks kHz; devfreq
(``class/devfreq/<node>``) speaks Hz. ``FreqDomain`` hides the difference:
every value it reads or writes is in kHz.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

from device_agent.errors import SysfsError
from device_agent.sysfs import Sysfs

CPUFREQ_DIR = "devices/system/cpu/cpufreq"
DEVFREQ_DIR = "class/devfreq"


@dataclass(frozen=True)
class FreqDomain:
    kind: str  # "cpufreq" | "devfreq"
    name: str  # "policy4" | "11800000.gpu"
    rel_dir: str
    governor_file: str
    min_file: str
    max_file: str
    cur_file: str
    available_file: str
    governors_file: str
    hz_per_unit: int  # 1 for kHz files (cpufreq), 1000 for Hz files (devfreq)

    def rel(self, name: str) -> str:
        return self.rel_dir + "/" + name

    def missing_files(self, sysfs: Sysfs) -> List[str]:
        names = (self.governor_file, self.min_file, self.max_file, self.cur_file, self.available_file)
        return [n for n in names if not sysfs.is_file(self.rel(n))]

    def to_khz(self, value: int) -> int:
        return value // self.hz_per_unit

    def from_khz(self, khz: int) -> int:
        return khz * self.hz_per_unit

    def available_khz(self, sysfs: Sysfs) -> Tuple[int, ...]:
        text = sysfs.read(self.rel(self.available_file))
        try:
            return tuple(sorted(self.to_khz(int(v)) for v in text.split()))
        except ValueError:
            raise SysfsError("%s: expected a list of frequencies, read %r"
                             % (sysfs.path(self.rel(self.available_file)), text))

    def governors(self, sysfs: Sysfs) -> Tuple[str, ...]:
        if not sysfs.is_file(self.rel(self.governors_file)):
            return ()
        return tuple(sysfs.read(self.rel(self.governors_file)).split())

    def read_khz(self, sysfs: Sysfs, name: str) -> int:
        return self.to_khz(sysfs.read_int(self.rel(name)))

    def cur_khz(self, sysfs: Sysfs) -> int:
        return self.read_khz(sysfs, self.cur_file)


def cpufreq_domain(policy: str) -> FreqDomain:
    return FreqDomain("cpufreq", policy, CPUFREQ_DIR + "/" + policy, "scaling_governor", "scaling_min_freq",
                      "scaling_max_freq", "scaling_cur_freq", "scaling_available_frequencies",
                      "scaling_available_governors", 1)


def devfreq_domain(node: str) -> FreqDomain:
    return FreqDomain("devfreq", node, DEVFREQ_DIR + "/" + node, "governor", "min_freq", "max_freq",
                      "cur_freq", "available_frequencies", "available_governors", 1000)

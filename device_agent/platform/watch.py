"""Watch one frequency domain without holding it, and what counts as throttling when nothing is pinned.

Nothing is written. ``check()`` runs before the job and needs the domain's
folder with its current-frequency, limit and available-frequencies files; it
reads

* ``max_khz``, the hardware maximum: ``cpuinfo_max_freq`` of a cpufreq policy
  (the top of ``scaling_available_frequencies`` when the driver has no such
  file), the top of ``available_frequencies`` of a devfreq node;
* ``governor`` (``""`` when the domain has no governor file) and the limit
  and current frequency at that moment, for the ``platform`` event.

The sampler then reads the current frequency and the limit (``scaling_max_freq``
/ ``max_freq``) of the domain every round. A watched domain is **throttled**
at a sample when

(a) its limit is below ``max_khz``. Linux caps a hot CPU cluster or GPU
    through this limit (thermal cooling devices lower the policy's maximum),
    and no governor ever writes it, so a governor at full load never fires
    this; or
(b) the spec says the job keeps the domain busy (``loaded``, a cpufreq
    policy a ``cpu`` component runs on), its governor runs a busy domain at
    its limit (``performance``, ``ondemand``, ``schedutil``, ``interactive``)
    and its current frequency is below the limit: a cap that does not show in
    the limit (firmware, or an injected cap on a virtual board). Governors that
    choose lower frequencies by design (``conservative`` ramps up step by step,
    ``powersave``, ``userspace``) and GPU nodes (their load follows the CPU
    that feeds them) are judged by (a) alone.

A limit lowered on purpose fires (a) too: a job meant to run below the
maximum pins its frequency (``pin_khz``) instead. Each sample holds until the
next one, as for held domains (``throttle.watch_stats``).
"""

from __future__ import annotations

from typing import Any, Dict

from device_agent.errors import SpecError
from device_agent.platform.domain import FreqDomain
from device_agent.spec_platform import FreqRequest
from device_agent.sysfs import Sysfs

# governors that keep a busy domain at its limit (see (b) above)
AT_LIMIT_GOVERNORS = ("performance", "ondemand", "schedutil", "interactive")
HW_MAX_FILE = "cpuinfo_max_freq"  # cpufreq only


class FreqWatch:
    def __init__(self, sysfs: Sysfs, domain: FreqDomain, request: FreqRequest, field: str) -> None:
        self.sysfs = sysfs
        self.domain = domain
        self.request = request
        self.field = field
        self.max_khz = 0
        self.governor = ""
        self.limit_khz = 0  # at check()
        self.cur_khz = 0  # at check()

    @property
    def loaded(self) -> bool:
        return self.request.loaded

    @property
    def cur_bound(self) -> bool:
        """Whether (b) applies: the current frequency is expected at the limit."""
        return self.loaded and self.domain.kind == "cpufreq" and self.governor in AT_LIMIT_GOVERNORS

    def check(self) -> None:
        """Check the node against the board and read its maximum; nothing is written."""
        d, s = self.domain, self.sysfs
        if not s.is_dir(d.rel_dir):
            raise SpecError("%s: no %s domain %s (no folder %s)" % (self.field, d.kind, d.name, s.path(d.rel_dir)))
        missing = [n for n in (d.cur_file, d.max_file, d.available_file) if not s.is_file(d.rel(n))]
        if missing:
            raise SpecError("%s: %s is not a %s folder (missing %s)"
                            % (self.field, s.path(d.rel_dir), d.kind, ", ".join(missing)))
        available = d.available_khz(s)
        if not available:
            raise SpecError("%s: %s lists no available frequency" % (self.field, d.name))
        self.max_khz = available[-1]
        if d.kind == "cpufreq" and s.is_file(d.rel(HW_MAX_FILE)):
            self.max_khz = d.read_khz(s, HW_MAX_FILE)
        self.governor = s.read(d.rel(d.governor_file)) if s.is_file(d.rel(d.governor_file)) else ""
        self.limit_khz = d.read_khz(s, d.max_file)
        self.cur_khz = d.cur_khz(s)

    def describe(self) -> Dict[str, Any]:
        return {"mode": "watch", "max_khz": self.max_khz, "limit_khz": self.limit_khz, "cur_khz": self.cur_khz,
                "governor": self.governor, "loaded": self.loaded}

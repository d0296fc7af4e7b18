"""A job's platform settings from check to restore.

``PlatformSession.open()`` checks every requested domain and zone against the
board before anything is written (``SpecError`` naming the field);
``active()`` holds the frequencies (in spec order) and restores them (newest
first) on every exit: normal end, error, ``Interrupted`` (SIGTERM/SIGINT).
Domains the spec only watches are never written: they are sampled, with
their limit (``platform/watch.py``).
A restore failure is raised unless another error is already on its way
(then it goes to stderr). ``window_open()``/``window_close()`` start and stop
the sampler; ``finish()`` writes ``platform.csv`` and returns the summary
block and the facts for ``judge()``.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from device_agent.atomicfile import write_atomic
from device_agent.errors import AgentError, SpecError
from device_agent.platform.domain import cpufreq_domain, devfreq_domain
from device_agent.platform.hold import FreqHold
from device_agent.platform.sampler import PlatformSample, PlatformSampler
from device_agent.platform.thermal import check_zone
from device_agent.platform.throttle import freq_held, freq_stats, freq_watched, temp_stats, watch_stats
from device_agent.platform.watch import FreqWatch
from device_agent.restoring import RestoringSession
from device_agent.spec_platform import PlatformSpec
from device_agent.sysfs import Sysfs
from device_agent.verdict import FreqHeld, FreqWatched

PLATFORM_NAME = "platform.csv"
HEADER = "name,quantity,t_mono_ns,value\n"


class PlatformSession(RestoringSession):
    label = "platform"

    def __init__(self, spec: PlatformSpec, sysfs: Sysfs, holds: List[FreqHold], max_duration_s: float,
                 watches: Sequence[FreqWatch] = ()) -> None:
        self.spec = spec
        self.sysfs = sysfs
        self.holds = holds
        self.watches = list(watches)
        self._max_duration_s = max_duration_s
        self._applied: List[FreqHold] = []
        self.sampler: Optional[PlatformSampler] = None

    @classmethod
    def open(cls, spec: PlatformSpec, sysfs_root: str, max_duration_s: float) -> "PlatformSession":
        sysfs = Sysfs(sysfs_root)
        if not sysfs.is_dir("."):
            raise SpecError("sysfs_root: not a directory: %s" % sysfs_root)
        holds = [FreqHold(sysfs, cpufreq_domain(r.name), r, "platform.cpufreq.%s" % r.name)
                 for r in spec.held("cpufreq")]
        holds += [FreqHold(sysfs, devfreq_domain(r.name), r, "platform.devfreq.%s" % r.name)
                  for r in spec.held("devfreq")]
        watches = [FreqWatch(sysfs, cpufreq_domain(r.name), r, "platform.cpufreq.%s" % r.name)
                   for r in spec.watched("cpufreq")]
        watches += [FreqWatch(sysfs, devfreq_domain(r.name), r, "platform.devfreq.%s" % r.name)
                    for r in spec.watched("devfreq")]
        problems = []
        for item in [*holds, *watches]:
            try:
                item.check()
            except SpecError as exc:
                problems.append(str(exc))
        for i, zone in enumerate(spec.thermal_zones):
            try:
                check_zone(sysfs, zone, "platform.thermal_zones[%d]" % i)
            except AgentError as exc:
                problems.append(str(exc))
        if problems:
            raise SpecError("; ".join(problems))
        return cls(spec, sysfs, holds, max_duration_s, watches)

    def start(self) -> None:
        for hold in self.holds:
            self._applied.append(hold)
            hold.apply()
        watched = [w.domain for w in self.watches]
        self.sampler = PlatformSampler(self.sysfs, [h.domain for h in self.holds] + watched,
                                       self.spec.thermal_zones, self._max_duration_s, limits=watched)

    def close(self) -> None:
        """Stop the sampler, restore every applied domain (newest first); raise the first failure."""
        self._stop_sampler()
        self._unwind(self._applied, lambda hold: hold.restore(), (AgentError,),
                     lambda hold, exc: "%s: cannot restore: %s" % (hold.field, exc))

    def describe(self) -> Dict[str, Any]:
        """Requested and effective values (watched domains: what they read), for the ``platform`` event."""
        return {
            "cpufreq": self._described("cpufreq"),
            "devfreq": self._described("devfreq"),
            "thermal_zones": list(self.spec.thermal_zones),
        }

    def _described(self, kind: str) -> Dict[str, Any]:
        out = {h.domain.name: h.describe() for h in self.holds if h.domain.kind == kind}
        out.update((w.domain.name, w.describe()) for w in self.watches if w.domain.kind == kind)
        return out

    def window_open(self) -> None:
        if self.sampler is not None:
            self.sampler.start()

    def window_close(self) -> None:
        if self.sampler is not None:
            self.sampler.request_stop()

    def finish(self, output_dir: str, start_ns: int,
               end_ns: int) -> Tuple[Dict[str, Any], List[Union[FreqHeld, FreqWatched]]]:
        """Write ``platform.csv``; the summary's ``platform`` block and the facts of every domain (``freq_held``
        for held ones, ``no_throttle`` for watched ones)."""
        samples = self.sampler.stop() if self.sampler is not None else []
        path = os.path.join(output_dir, PLATFORM_NAME)
        sha256 = write_atomic(path, _rows(samples))
        facts = []  # type: List[Union[FreqHeld, FreqWatched]]
        block: Dict[str, Any] = {"path": path, "sha256": sha256, "rows": len(samples), "cpufreq": {}, "devfreq": {}}
        for h in self.holds:
            stats = freq_stats(samples, h.domain.name, h.held_khz, start_ns, end_ns)
            block[h.domain.kind][h.domain.name] = dict(h.describe(), **stats)
            facts.append(freq_held(h.domain.name, h.held_khz, stats))
        for w in self.watches:
            stats = watch_stats(samples, w.domain.name, w.max_khz, w.cur_bound, start_ns, end_ns)
            block[w.domain.kind][w.domain.name] = dict(w.describe(), **stats)
            facts.append(freq_watched(w.domain.name, w.max_khz, stats))
        block["thermal"] = {z: temp_stats(samples, z) for z in self.spec.thermal_zones}
        return block, facts


def _rows(samples: Sequence[PlatformSample]) -> Iterator[str]:
    yield HEADER
    for s in samples:
        yield "%s,%s,%d,%d\n" % (s.name, s.quantity, s.t_mono_ns, s.value)

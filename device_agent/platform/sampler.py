"""The platform sampler: a bounded thread that reads every domain's current
frequency (and the limit of each domain that is watched, not held) and every
watched zone's temperature every ``period_s`` (~100 ms).

It never touches the inference loop. It starts when the window opens and is
told to stop when it closes (one last round is read then), or ends by itself
after ``max_duration_s``. A read error ends it; ``stop()`` re-raises it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

from device_agent.errors import PowerError
from device_agent.platform.domain import FreqDomain
from device_agent.platform.thermal import read_temp_mdegc
from device_agent.sysfs import Sysfs

PERIOD_S = 0.1
JOIN_TIMEOUT_S = 5.0
CUR_FREQ_KHZ = "cur_freq_khz"
LIMIT_KHZ = "limit_khz"  # the limit: scaling_max_freq / max_freq, in kHz
TEMP_MDEGC = "temp_mdegc"


@dataclass(frozen=True)
class PlatformSample:
    name: str  # "policy4", "11800000.gpu", "thermal_zone0"
    quantity: str  # CUR_FREQ_KHZ | LIMIT_KHZ | TEMP_MDEGC
    t_mono_ns: int
    value: int


class PlatformSampler:
    def __init__(self, sysfs: Sysfs, domains: Sequence[FreqDomain], zones: Sequence[str], max_duration_s: float,
                 period_s: float = PERIOD_S, clock_ns: Callable[[], int] = time.monotonic_ns,
                 limits: Sequence[FreqDomain] = ()) -> None:
        self._sysfs = sysfs
        self._domains = list(domains)
        self._limits = list(limits)  # domains whose limit is read too (one sample per round each)
        self._zones = list(zones)
        self._period_s = period_s
        self._max_duration_s = max_duration_s
        self._clock_ns = clock_ns
        self.samples: List[PlatformSample] = []
        self.error: Optional[BaseException] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="platform-sampler", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self) -> List[PlatformSample]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT_S)
            if self._thread.is_alive():
                raise PowerError("platform sampler did not stop within %.1f s (a sysfs read hangs?)" % JOIN_TIMEOUT_S)
        if self.error is not None:
            raise self.error
        return self.samples

    def _run(self) -> None:
        deadline = time.monotonic() + self._max_duration_s
        try:
            while True:
                self.samples.extend(self._round())
                if self._stop.wait(self._period_s) or time.monotonic() >= deadline:
                    self.samples.extend(self._round())
                    return
        except BaseException as exc:  # handed to the caller of stop()
            self.error = exc

    def _round(self) -> List[PlatformSample]:
        out = []
        for d in self._domains:
            khz = d.cur_khz(self._sysfs)
            out.append(PlatformSample(d.name, CUR_FREQ_KHZ, self._clock_ns(), khz))
        for d in self._limits:
            khz = d.read_khz(self._sysfs, d.max_file)
            out.append(PlatformSample(d.name, LIMIT_KHZ, self._clock_ns(), khz))
        for z in self._zones:
            out.append(PlatformSample(z, TEMP_MDEGC, self._clock_ns(), read_temp_mdegc(self._sysfs, z)))
        return out

"""Hold one frequency domain: save, write, verify after a settle, always restore.

``performance``: ``max`` = the top available frequency, then the governor
``performance``. ``pin_khz``: ``min`` = ``max`` = that frequency (it must be
one of the available ones: ``SpecError`` naming the field otherwise), the
governor untouched. Writes are ordered so that ``min <= max`` holds after
each of them (a kernel refuses the other order with EINVAL).

A kernel may apply a write asynchronously (and refuse it late, as the
virtual board's does): ``apply()`` polls for up to ``settle_s`` until the
written files read back what was written AND the current frequency equals
the held one. If the files hold other values at the end: ``SysfsWriteError``.
If only the current frequency differs (a thermal cap already active), the
hold stands and ``effective_khz`` says what the domain runs at; the sampler
and ``judge()`` then flag the window.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

from device_agent.errors import SpecError, SysfsWriteError
from device_agent.platform.domain import FreqDomain
from device_agent.spec_platform import FreqRequest
from device_agent.sysfs import Sysfs

SETTLE_S = 0.2
POLL_S = 0.01


@dataclass(frozen=True)
class Saved:
    governor: str
    min_khz: int
    max_khz: int


class FreqHold:
    def __init__(self, sysfs: Sysfs, domain: FreqDomain, request: FreqRequest, field: str,
                 settle_s: float = SETTLE_S, sleep: Callable[[float], None] = time.sleep) -> None:
        self.sysfs = sysfs
        self.domain = domain
        self.request = request
        self.field = field
        self.settle_s = settle_s
        self._sleep = sleep
        self.saved: Optional[Saved] = None
        self.held_khz = 0
        self.effective_khz = 0

    @property
    def mode(self) -> str:
        return "pin" if self.request.pin_khz is not None else "performance"

    def check(self) -> None:
        """Check the node and the request against the board, before anything is written."""
        d, s = self.domain, self.sysfs
        if not s.is_dir(d.rel_dir):
            raise SpecError("%s: no %s domain %s (no folder %s)" % (self.field, d.kind, d.name, s.path(d.rel_dir)))
        missing = d.missing_files(s)
        if missing:
            raise SpecError("%s: %s is not a %s folder (missing %s)"
                            % (self.field, s.path(d.rel_dir), d.kind, ", ".join(missing)))
        available = d.available_khz(s)
        if not available:
            raise SpecError("%s: %s lists no available frequency" % (self.field, d.name))
        if self.request.pin_khz is not None:
            if self.request.pin_khz not in available:
                raise SpecError("%s.pin_khz: %d kHz is not a frequency %s offers (available kHz: %s)"
                                % (self.field, self.request.pin_khz, d.name, " ".join(map(str, available))))
            self.held_khz = self.request.pin_khz
        else:
            governors = d.governors(s)
            if governors and self.request.governor not in governors:
                raise SpecError("%s.governor: %s does not offer governor %r (available: %s)"
                                % (self.field, d.name, self.request.governor, " ".join(governors)))
            self.held_khz = available[-1]

    def apply(self) -> None:
        d, s = self.domain, self.sysfs
        self.saved = Saved(s.read(d.rel(d.governor_file)), d.read_khz(s, d.min_file), d.read_khz(s, d.max_file))
        lowest = d.available_khz(s)[0]
        if self.mode == "pin":
            writes = [(d.min_file, lowest), (d.max_file, self.held_khz), (d.min_file, self.held_khz)]
            expected = [(d.min_file, self.held_khz), (d.max_file, self.held_khz)]
            for name, khz in writes:
                self._write(name, d.from_khz(khz))
            self._settle([(n, d.from_khz(k)) for n, k in expected])
        else:
            self._write(d.max_file, d.from_khz(self.held_khz))
            self._write(d.governor_file, self.request.governor or "performance")
            self._settle([(d.max_file, d.from_khz(self.held_khz)),
                          (d.governor_file, self.request.governor or "performance")])

    def restore(self) -> None:
        """Write the saved values back (min via the lowest frequency so min <= max always holds)."""
        if self.saved is None:
            return
        d, s, saved = self.domain, self.sysfs, self.saved
        lowest = d.available_khz(s)[0]
        self._write(d.min_file, d.from_khz(lowest))
        self._write(d.max_file, d.from_khz(saved.max_khz))
        self._write(d.min_file, d.from_khz(saved.min_khz))
        self._write(d.governor_file, saved.governor)
        self._settle([(d.min_file, d.from_khz(saved.min_khz)), (d.max_file, d.from_khz(saved.max_khz)),
                      (d.governor_file, saved.governor)], want_cur=False)
        self.saved = None

    def describe(self) -> dict:
        out = {"mode": self.mode, "requested_khz": self.held_khz, "effective_khz": self.effective_khz}
        if self.mode == "performance":
            out["governor"] = self.request.governor
        return out

    def _write(self, name: str, value: object) -> None:
        self.sysfs.write(self.domain.rel(name), value if isinstance(value, str) else int(value), verify=False)

    def _settle(self, expected: List[Tuple[str, object]], want_cur: bool = True) -> None:
        deadline = time.monotonic() + self.settle_s
        while True:
            wrong = [(n, v, self.sysfs.read(self.domain.rel(n))) for n, v in expected]
            wrong = [w for w in wrong if w[2] != str(w[1])]
            cur = self.domain.cur_khz(self.sysfs)
            if not wrong and (not want_cur or cur == self.held_khz):
                break
            if time.monotonic() >= deadline:
                if wrong:
                    name, value, back = wrong[0]
                    raise SysfsWriteError("wrote %r to %s but read back %r after %.2f s"
                                          % (str(value), self.sysfs.path(self.domain.rel(name)), back, self.settle_s))
                break
            self._sleep(POLL_S)
        if want_cur:
            self.effective_khz = cur


"""The verdict of a job: computed once, by ``judge()``, from named checks.

Checks (each failed one adds one reason):

* ``min_duration``: the window lasted at least ``rules.min_duration_s``;
* ``min_count``: the window holds at least ``rules.min_count`` inferences;
* ``freq_held`` (with ``platform``): no held frequency domain ran below the
  frequency it was set to while the window was open;
* ``no_throttle`` (with ``platform``): no watched (not held) frequency domain
  was throttled while the window was open (``platform/watch.py`` says when a
  domain that nobody pinned counts as throttled);
* ``delegate_full`` (with a ``gpu`` component): every op of the model runs on
  the delegate, and the delegate is not as slow as the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple, Union

from device_agent.spec import Rules

VALID = "VALID"
INVALID = "INVALID"
_NS_PER_S = 1000000000


@dataclass(frozen=True)
class Check:
    """One named condition of the verdict; ``reason`` says why it failed."""

    name: str
    passed: bool
    reason: str


@dataclass(frozen=True)
class Verdict:
    verdict: str
    reasons: Tuple[str, ...]
    checks: Tuple[Check, ...]


@dataclass(frozen=True)
class FreqHeld:
    """How a held frequency domain behaved over the window."""

    domain: str  # "policy4", "11800000.gpu"
    held_khz: int
    below_s: float
    min_khz: int


@dataclass(frozen=True)
class FreqWatched:
    """How a watched (not held) frequency domain behaved over the window."""

    domain: str
    max_khz: int  # the hardware maximum
    below_s: float  # time throttled
    min_khz: int  # lowest frequency while throttled
    limit_min_khz: int  # lowest limit (scaling_max_freq / max_freq) in the window


@dataclass(frozen=True)
class DelegateUse:
    """Where the ops of a ``gpu`` component's model ran."""

    component: str
    total_ops: int
    cpu_ops: int
    reason: str = ""  # set when the fallback was found by timing, not by op placement

    @property
    def fully_delegated(self) -> bool:
        return self.cpu_ops == 0 and not self.reason


def judge(count: int, duration_ns: int, rules: Rules,
          freqs: Sequence[Union[FreqHeld, FreqWatched]] = (), delegates: Sequence[DelegateUse] = ()) -> Verdict:
    """The single place the verdict is computed: VALID iff every check passes."""
    cap = "within max_duration_s=%s" % _fmt(rules.max_duration_s)
    duration_s = duration_ns / _NS_PER_S
    checks = [
        Check(
            "min_duration",
            duration_ns >= _to_ns(rules.min_duration_s),
            "min_duration_s not met: %.6f < %s %s" % (duration_s, _fmt(rules.min_duration_s), cap),
        ),
        Check(
            "min_count",
            count >= rules.min_count,
            "min_count not met: %d < %d %s" % (count, rules.min_count, cap),
        ),
    ]
    for f in freqs:
        if isinstance(f, FreqWatched):
            checks.append(Check(
                "no_throttle",
                f.below_s <= 0,
                "throttled: %s (not pinned) was capped below its %d kHz maximum for %.3g s (min %d kHz, "
                "limit down to %d kHz)" % (f.domain, f.max_khz, f.below_s, f.min_khz, f.limit_min_khz),
            ))
            continue
        checks.append(Check(
            "freq_held",
            f.below_s <= 0,
            "throttled: %s ran below %d kHz for %.3g s (min %d kHz)" % (f.domain, f.held_khz, f.below_s, f.min_khz),
        ))
    for d in delegates:
        if d.reason:
            text = "delegate fallback: %s: %s" % (d.component, d.reason)
        else:
            text = "delegate fallback: %s: %d of %d ops on CPU" % (d.component, d.cpu_ops, d.total_ops)
        checks.append(Check("delegate_full", d.fully_delegated, text))
    reasons = tuple(c.reason for c in checks if not c.passed)
    return Verdict(INVALID if reasons else VALID, reasons, tuple(checks))


def _to_ns(seconds: float) -> int:
    return int(round(seconds * _NS_PER_S))


def _fmt(seconds: float) -> str:
    return repr(float(seconds))

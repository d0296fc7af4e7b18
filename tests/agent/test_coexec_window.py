"""The co-execution window on fake members of 4:1 speed (fake clock, no processes, no sleeps).

Fake members steal frames from one counter on a simulated clock; their messages go through the parent's
real collection (``stream._collect``) and summary (``run.run_coexec``). The window counts the frames
completed by the stream's close, so a slow member's lone tail is not charged: the co-execution throughput
is the sum of the members' throughputs, short by at most one call of each member over the window.
"""

from __future__ import annotations

import csv
import heapq
import io
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable, List, Optional, Tuple

import pytest

from device_agent.coexec import run as coexec_run
from device_agent.coexec.stream import StreamResult, _collect
from device_agent.events import EventWriter
from device_agent.spec import parse_spec

T0 = 10 ** 12
MS = 1000000


@dataclass(frozen=True)
class Member:
    name: str
    latency_ns: int  # per call
    frames: int = 1  # per call (an external accelerator's batch)

    @property
    def ips(self) -> float:
        return self.frames * 1e9 / self.latency_ns


FAST = Member("fast", 1 * MS)  # 1000 frames/s
SLOW = Member("slow", 4 * MS)  # 250 frames/s: 4:1
NPU = Member("npu", 16 * MS, frames=4)  # 250 frames/s in batches of 4

# take(now, member, frames, end of its previous call, frames of its previous call) -> first index or None
Take = Callable[[int, int, int, int, int], Optional[int]]


def steal(members: List[Member], take: Take, lag_ns: int = 1) -> List[tuple]:
    """Work stealing on a fake clock: member i asks first at T0 + i * lag_ns, then as each call ends; a
    refused take leaves it idle. The members' messages, in the order they arrive (end time)."""
    asks = [(T0 + i * lag_ns, i, 0, 0) for i in range(len(members))]
    heapq.heapify(asks)
    sent = []
    while asks:
        now, i, end, done = heapq.heappop(asks)
        first = take(now, i, members[i].frames, end, done)
        if first is None:
            sent.append((now, i, ("done", i, 0)))
            continue
        end = now + members[i].latency_ns
        sent.append((end, i, ("frame", i, (first, members[i].frames, now, end))))
        heapq.heappush(asks, (end, i, end, members[i].frames))
    return [m for _, _, m in sorted(sent, key=lambda s: (s[0], s[1]))]


def closing_at(close_at_ns: int) -> Tuple[Take, SimpleNamespace]:
    """Fake members' counter: frames in index order until the first take at or after ``close_at_ns``,
    which closes the stream (``state.closed_ns``); no frame is taken after that."""
    state = SimpleNamespace(next=0, closed_ns=0)

    def take(now: int, member: int, frames: int, end: int, done: int) -> Optional[int]:
        if state.closed_ns or now >= close_at_ns:
            state.closed_ns = state.closed_ns or now
            return None
        first, state.next = state.next, state.next + frames
        return first

    return take, state


class FakeInbox:
    def __init__(self, messages: List[tuple], n: int) -> None:
        self._messages = list(messages)
        self.done = [False] * n

    def get(self, bound_s: float) -> tuple:
        kind, worker, payload = self._messages.pop(0)
        if kind == "done":
            self.done[worker] = True
        return kind, worker, payload

    @property
    def all_done(self) -> bool:
        return all(self.done)


def make_spec(tmp_path, members: List[Member], **rules):
    comps = [{"name": m.name, "kind": "cpu", "cpus": [i]} for i, m in enumerate(members)]
    return parse_spec({
        "spec_version": 1, "job_id": "window/0001", "model": {"path": "/m.tflite", "sha256": None},
        "components": comps, "isolated_ips": {m.name: m.ips for m in members},
        "rules": dict({"warmup_runs": 0, "min_count": 1, "min_duration_s": 0.001, "max_duration_s": 10.0},
                      **rules),
        "output_dir": str(tmp_path), "progress_interval_s": 1.0,
    })


def summarise(monkeypatch, spec, messages: List[tuple], closed_ns: int) -> dict:
    """``run_coexec`` on the fake members' messages, collected by the parent's code."""
    def fake_run_stream(spec, on_ready, on_open, on_close, on_progress, clock_ns):
        out = StreamResult(ready=[{"delegate": None, "info": {}} for _ in spec.components])
        _collect(spec, FakeInbox(messages, len(spec.components)), out, on_progress, clock_ns)
        out.closed_ns = closed_ns
        return out

    monkeypatch.setattr(coexec_run, "run_stream", fake_run_stream)
    fields, facts = coexec_run.run_coexec(spec, EventWriter(io.StringIO()), "0" * 64, lambda: None,
                                          lambda: None, lambda: T0)
    assert facts["count"] == fields["count"]
    return fields


def trace_rows(fields: dict) -> List[dict]:
    with open(fields["trace"]["path"], newline="") as f:
        return list(csv.DictReader(f))


def assert_sum_of_members(fields: dict, members: List[Member]) -> None:
    """Throughput = sum of the members' throughputs, short by at most one call of each member over the
    window (the frame each had in flight at the close); never above it."""
    total = sum(m.ips for m in members)
    granularity = sum(m.frames for m in members) / fields["duration_s"]
    assert total - granularity <= fields["throughput_ips"] <= total * (1 + 1e-9)
    assert fields["coexec"]["ratio_to_sum_isolated"] == pytest.approx(fields["throughput_ips"] / total)
    assert 1 - granularity / total <= fields["coexec"]["ratio_to_sum_isolated"] <= 1 + 1e-9


def test_4_to_1_members_the_slow_members_lone_tail_is_not_charged(tmp_path, monkeypatch):
    # Closes at 21 ms (the fast member's take after its 21st frame); the slow member's 6th frame runs
    # 20-24 ms alone. Charging it (window to 24 ms) gave 27 frames / 24 ms = 1125/s, ratio 0.90.
    take, state = closing_at(T0 + 20 * MS + MS // 2)
    members = [FAST, SLOW]
    fields = summarise(monkeypatch, make_spec(tmp_path, members), steal(members, take), state.closed_ns)
    assert_sum_of_members(fields, members)
    assert fields["count"] == 21 + 5 and fields["duration_s"] == pytest.approx(0.021)
    assert fields["throughput_ips"] == pytest.approx(26 / 0.021)
    assert fields["window"]["start_mono_ns"] == T0 and fields["window"]["end_mono_ns"] == T0 + 21 * MS
    assert fields["coexec"]["gain_over_best_single"] == pytest.approx(fields["throughput_ips"] / 1000.0)
    comps = fields["components"]
    assert (comps["fast"]["frames"], comps["slow"]["frames"]) == (21, 5)
    assert comps["fast"]["share_pct"] + comps["slow"]["share_pct"] == pytest.approx(100.0)
    assert comps["fast"]["throughput_ips"] + comps["slow"]["throughput_ips"] == pytest.approx(fields["throughput_ips"])
    # the tail: reported, flagged in the trace, not counted
    assert (comps["fast"]["tail_frames"], comps["slow"]["tail_frames"]) == (0, 1)
    assert fields["tail"] == {"frames": 1, "closed_mono_ns": T0 + 21 * MS, "last_end_mono_ns": T0 + 24 * MS + 1}
    rows = trace_rows(fields)
    assert len(rows) == fields["trace"]["rows"] == 27
    assert [(r["worker"], int(r["end_mono_ns"])) for r in rows if r["in_window"] == "0"] == [("slow", T0 + 24 * MS + 1)]
    assert fields["window_rule"]


@pytest.mark.parametrize("close_ms", [20.0, 20.25, 20.5, 21.0, 21.75, 22.5, 23.5])
def test_4_to_1_whatever_the_phase_of_the_slow_member_at_the_close(tmp_path, monkeypatch, close_ms):
    take, state = closing_at(T0 + int(close_ms * MS))
    members = [FAST, SLOW]
    fields = summarise(monkeypatch, make_spec(tmp_path, members), steal(members, take), state.closed_ns)
    assert_sum_of_members(fields, members)
    rows = trace_rows(fields)
    assert all(int(r["end_mono_ns"]) <= fields["window"]["end_mono_ns"] for r in rows if r["in_window"] == "1")
    assert all(int(r["end_mono_ns"]) > state.closed_ns for r in rows if r["in_window"] == "0")
    assert fields["count"] + fields["tail"]["frames"] == len(rows)


def test_4_to_1_with_a_batched_member_a_straddling_batch_is_out_as_a_whole(tmp_path, monkeypatch):
    # The NPU's second batch (frames 16-32 ms) straddles the close at 21 ms: all 4 of its frames are tail.
    take, state = closing_at(T0 + 20 * MS + MS // 2)
    members = [FAST, NPU]
    fields = summarise(monkeypatch, make_spec(tmp_path, members), steal(members, take), state.closed_ns)
    assert_sum_of_members(fields, members)
    assert fields["components"]["npu"]["frames"] == 4 and fields["components"]["npu"]["tail_frames"] == 4
    assert fields["count"] == 21 + 4 and fields["tail"]["frames"] == 4
    npu_rows = [r for r in trace_rows(fields) if r["worker"] == "npu"]
    assert [r["in_window"] for r in npu_rows] == ["1"] * 4 + ["0"] * 4


def worker_take(spec) -> Tuple[Take, list]:
    """The workers' own take (``worker.take_frames``) on a fake counter and flags."""
    from device_agent.coexec.worker import N_FLAGS, Limits, take_frames

    counter, flags = SimpleNamespace(value=0), [0] * N_FLAGS
    limits = Limits.of(spec.rules)

    def take(now: int, member: int, frames: int, end: int, done: int) -> Optional[int]:
        took = take_frames(counter, flags, frames, end, done, limits, lambda: now)
        return None if took is None else took[0]

    return take, flags


@pytest.mark.parametrize("members", [[FAST, SLOW], [SLOW, FAST], [FAST, NPU]], ids=["fast+slow", "slow+fast",
                                                                                  "fast+npu"])
@pytest.mark.parametrize("rules", [{"min_count": 1, "min_duration_s": 0.0205},
                                   {"min_count": 60, "min_duration_s": 0.001},
                                   {"min_count": 1000, "min_duration_s": 0.001, "max_duration_s": 0.0305}],
                         ids=["by-duration", "by-count", "by-cap"])
def test_the_workers_rule_closes_the_stream_when_the_first_member_goes_idle(tmp_path, monkeypatch, members,
                                                                            rules):
    from device_agent.coexec.worker import CLOSED
    from device_agent.verdict import judge

    spec = make_spec(tmp_path, members, **rules)
    take, flags = worker_take(spec)
    messages = steal(members, take)
    closed_ns = flags[CLOSED]
    frames = [m[2] for m in messages if m[0] == "frame"]
    assert closed_ns and all(start < closed_ns for _, _, start, _ in frames)  # nothing taken after the close
    last_end = {}
    for kind, member, payload in messages:
        if kind == "frame":
            last_end[member] = payload[3]
    assert closed_ns == min(last_end.values())  # the member that closed it went idle then, the others later
    fields = summarise(monkeypatch, spec, messages, closed_ns)
    assert_sum_of_members(fields, members)
    duration_ns = fields["window"]["end_mono_ns"] - fields["window"]["start_mono_ns"]
    verdict = judge(fields["count"], duration_ns, spec.rules)
    assert verdict.verdict == ("INVALID" if "max_duration_s" in rules else "VALID"), verdict.reasons

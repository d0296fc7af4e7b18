from __future__ import annotations

import pytest

from device_agent import measure as measure_mod
from device_agent.measure import measure
from device_agent.verdict import INVALID, VALID, judge
from device_agent.spec import Rules
from device_agent.stats import throughput_ips
from tests.agent.fakes import FakeBoard

MS = 1000000
S = 1000000000


def rules(warmup_runs=0, min_count=1, min_duration_s=0.1, max_duration_s=1.0):
    return Rules(warmup_runs=warmup_runs, min_count=min_count,
                 min_duration_s=min_duration_s, max_duration_s=max_duration_s)


def run(board, r, interval_s=1000.0, progress=None):
    return measure(board.invoke, board.clock_ns, r, progress, interval_s)


def test_count_met_first_keeps_going_until_min_duration():
    board = FakeBoard(latency_ns=1 * MS)
    m = run(board, rules(min_count=5, min_duration_s=0.1))
    assert m.verdict.verdict == VALID and m.verdict.reasons == ()
    assert m.duration_ns >= 0.1 * S
    # stops with the first inference that ends past the minimum duration
    assert m.end_ns[-2] - m.start_ns[0] < 0.1 * S
    assert 95 <= m.count <= 105


def test_duration_met_first_keeps_going_until_min_count():
    board = FakeBoard(latency_ns=10 * MS)
    m = run(board, rules(min_count=50, min_duration_s=0.1, max_duration_s=10.0))
    assert m.verdict.verdict == VALID
    assert m.count == 50  # exactly: both minimums are met with the 50th
    assert m.duration_ns >= 0.49 * S


def test_max_duration_caps_the_window_and_makes_it_invalid():
    board = FakeBoard(latency_ns=10 * MS)
    m = run(board, rules(min_count=1000, min_duration_s=0.1, max_duration_s=1.0))
    assert m.verdict.verdict == INVALID
    assert m.verdict.reasons == ("min_count not met: %d < 1000 within max_duration_s=1.0" % m.count,)
    assert 95 <= m.count <= 101
    cap_ns = m.start_ns[0] + 1 * S
    assert m.end_ns[-1] >= cap_ns  # the inference that crossed the cap ...
    assert m.end_ns[-2] < cap_ns  # ... is the last one: none starts after it
    assert len(board.invokes) == m.count


def test_max_equal_to_min_duration_is_valid_when_count_met():
    board = FakeBoard(latency_ns=10 * MS)
    m = run(board, rules(min_count=10, min_duration_s=0.5, max_duration_s=0.5))
    assert m.verdict.verdict == VALID
    assert m.duration_ns >= 0.5 * S


def test_warmup_inferences_are_not_counted_or_traced():
    board = FakeBoard(latency_ns=1 * MS)
    m = run(board, rules(warmup_runs=7, min_count=20, min_duration_s=0.001))
    assert m.count == 20 and m.warmup_runs == 7
    assert len(board.invokes) == 7 + 20
    last_warmup_end = board.invokes[6][1]
    assert m.start_ns[0] >= last_warmup_end
    measured = board.invokes[7:]
    assert all(s <= b0 and b1 <= e for s, e, (b0, b1) in zip(m.start_ns, m.end_ns, measured))


def test_window_is_first_start_to_last_end_and_throughput_is_count_over_duration():
    board = FakeBoard(latencies_ns=[3 * MS, 1 * MS, 2 * MS] * 100)
    m = run(board, rules(min_count=30, min_duration_s=0.05))
    assert m.window_start_ns == m.start_ns[0] == board.invokes[0][0]
    assert m.window_start_ns == min(m.start_ns)
    assert m.window_end_ns == m.end_ns[-1] == max(m.end_ns)
    assert m.duration_ns == m.end_ns[-1] - m.start_ns[0]
    assert m.duration_s == pytest.approx(m.duration_ns / 1e9)
    assert throughput_ips(m.count, m.duration_ns) == pytest.approx(m.count / m.duration_s)


def test_timestamps_are_ordered_and_latencies_recorded():
    board = FakeBoard(latencies_ns=[5 * MS, 1 * MS] * 50, read_cost_ns=7)
    m = run(board, rules(min_count=40, min_duration_s=0.001))
    assert len(m.start_ns) == len(m.end_ns) == m.count == 40
    for i in range(m.count):
        assert m.end_ns[i] > m.start_ns[i]
        if i:
            assert m.start_ns[i] > m.end_ns[i - 1]
    durations = [e - s for s, e in zip(m.start_ns, m.end_ns)]
    assert durations[:2] == [5 * MS + 7, 1 * MS + 7]


def test_chunk_boundaries_join_without_loss(monkeypatch):
    monkeypatch.setattr(measure_mod, "CHUNK", 3)
    board = FakeBoard(latency_ns=1 * MS)
    m = run(board, rules(min_count=10, min_duration_s=0.0175), interval_s=0.004)
    assert m.count == len(board.invokes) == 18
    assert m.start_ns == sorted(set(m.start_ns))
    assert [s for s, _ in board.invokes] == m.start_ns
    assert [e for _, e in board.invokes] == [e - 10 for e in m.end_ns]


def test_progress_is_rate_limited_and_reports_both_phases():
    board = FakeBoard(latency_ns=10 * MS)
    seen = []
    run(board, rules(warmup_runs=30, min_count=5, min_duration_s=1.0, max_duration_s=2.0),
        interval_s=0.1, progress=lambda *a: seen.append(a))
    warm = [a for a in seen if a[0] == "warmup"]
    meas = [a for a in seen if a[0] == "measure"]
    assert seen == warm + meas  # warm-up first
    assert 1 <= len(warm) <= 3
    assert 8 <= len(meas) <= 10  # about one per 0.1 s over a 1 s window, not one per inference
    elapsed = [a[2] for a in meas]
    assert all(b - a >= 0.1 - 1e-9 for a, b in zip(elapsed, elapsed[1:]))
    counts = [a[1] for a in meas]
    assert counts == sorted(counts) and counts[-1] < 100


def test_invoke_errors_propagate():
    def boom():
        raise RuntimeError("delegate failed")

    board = FakeBoard()
    with pytest.raises(RuntimeError, match="delegate failed"):
        measure(boom, board.clock_ns, rules())


def test_judge_is_valid_only_when_every_check_passes():
    r = rules(min_count=50, min_duration_s=2.0, max_duration_s=30.0)
    ok = judge(50, 2 * S, r)
    assert ok.verdict == VALID and ok.reasons == ()
    assert [c.name for c in ok.checks] == ["min_duration", "min_count"]
    few = judge(12, 30 * S, r)
    assert few.verdict == INVALID
    assert few.reasons == ("min_count not met: 12 < 50 within max_duration_s=30.0",)
    short = judge(60, S, r)
    assert short.reasons == ("min_duration_s not met: 1.000000 < 2.0 within max_duration_s=30.0",)
    both = judge(1, S, r)
    assert [c.name for c in both.checks if not c.passed] == ["min_duration", "min_count"]
    assert len(both.reasons) == 2


def test_window_hooks_run_right_around_the_window_and_not_per_inference():
    board = FakeBoard(latency_ns=1 * MS)
    calls = []
    m = measure(board.invoke, board.clock_ns, rules(warmup_runs=3, min_count=20, min_duration_s=0.01), None, 1000.0,
                on_window_open=lambda: calls.append(("open", board.now_ns, len(board.invokes))),
                on_window_close=lambda: calls.append(("close", board.now_ns, len(board.invokes))))
    assert [c[0] for c in calls] == ["open", "close"]
    (_, open_ns, invokes_before), (_, close_ns, invokes_at_close) = calls
    assert invokes_before == 3  # after the warm-up, before the first measured inference
    assert open_ns < m.window_start_ns
    assert invokes_at_close == 3 + m.count and close_ns >= m.window_end_ns

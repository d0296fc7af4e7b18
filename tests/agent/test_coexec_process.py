"""Co-execution end to end: two CPU components (CPU 0 and CPU 1) on one frame stream, tiny model."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

from device_agent.affinity import available_cpus
from tests.agent.agent_proc import fixture_model, job_spec, run_spec

pytestmark = pytest.mark.skipif(not {0, 1} <= available_cpus(), reason="needs CPUs 0 and 1")
HERE = Path(__file__).resolve().parent


def coexec_job(tmp_path, components, **overrides):
    spec = job_spec(fixture_model("float32"), tmp_path / "job", **overrides)
    del spec["component"]
    spec["components"] = components
    return spec


TWO_CPUS = [{"name": "cpu0", "kind": "cpu", "cpus": [0]}, {"name": "cpu1", "kind": "cpu", "cpus": [1]}]


def read_trace(path):
    with open(str(path), newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["index", "start_mono_ns", "end_mono_ns", "worker", "reorder_delay_ns", "in_window"]
    return [(int(r[0]), int(r[1]), int(r[2]), r[3], int(r[4]), int(r[5])) for r in rows[1:]]


def assert_window_is_the_counted_frames(summary, rows):
    """The window's rule: counted = frames ended by the close; the window ends at the last of them."""
    inside = [r for r in rows if r[5] == 1]
    tail = [r for r in rows if r[5] == 0]
    assert summary["count"] == len(inside) and summary["tail"]["frames"] == len(tail)
    assert summary["window"]["start_mono_ns"] == rows[0][1]
    assert summary["window"]["end_mono_ns"] == max(r[2] for r in inside) <= summary["tail"]["closed_mono_ns"]
    assert all(r[2] > summary["tail"]["closed_mono_ns"] for r in tail)
    assert summary["window_rule"]
    for name, c in summary["components"].items():
        assert c["frames"] == sum(1 for r in inside if r[3] == name)
        assert c["tail_frames"] == sum(1 for r in tail if r[3] == name)


def test_two_cpus_share_one_stream_each_frame_once_in_order(tmp_path):
    spec = coexec_job(tmp_path, TWO_CPUS, rules={"min_count": 300, "min_duration_s": 0.5},
                      isolated_ips={"cpu0": 1000.0, "cpu1": 800.0})
    run = run_spec(spec, timeout_s=120)
    assert run.returncode == 0, run.stderr
    started, summary = run.events[0], run.events[-1]
    assert started["event"] == "started"
    assert [c["name"] for c in started["components"]] == ["cpu0", "cpu1"]
    assert [c["cpus_effective"] for c in started["components"]] == [[0], [1]]
    assert summary["event"] == "summary" and summary["verdict"] == "VALID", summary["reasons"]
    rows = read_trace(summary["trace"]["path"])
    assert [r[0] for r in rows] == list(range(summary["trace"]["rows"]))  # every frame exactly once, in order
    assert_window_is_the_counted_frames(summary, rows)
    assert summary["count"] >= 300 and summary["duration_s"] >= 0.5
    starts = [r[1] for r in rows]
    assert starts == sorted(starts)  # frames were taken in index order
    comps = summary["components"]
    assert sum(c["frames"] for c in comps.values()) == summary["count"]
    assert sum(c["share_pct"] for c in comps.values()) == pytest.approx(100.0)
    assert {r[3] for r in rows} <= {"cpu0", "cpu1"}
    assert sum(c["throughput_ips"] for c in comps.values()) == pytest.approx(summary["throughput_ips"])
    assert set(summary["reorder_delay_ms"]) == {"mean", "p50", "p90", "p99", "max"}
    gains = summary["coexec"]
    assert gains["best_single"] == "cpu0"
    assert gains["gain_over_best_single"] == pytest.approx(summary["throughput_ips"] / 1000.0)
    assert gains["ratio_to_sum_isolated"] == pytest.approx(summary["throughput_ips"] / 1800.0)


def test_external_component_joins_the_stream_by_batches(tmp_path):
    script = HERE / "fake_npu.py"
    comps = [{"name": "cpu0", "kind": "cpu", "cpus": [0]},
             {"name": "npu", "kind": "external", "cpus": [1], "frames_per_batch": 4,
              "command": [sys.executable, str(script), "--frames", "{frames}", "--sleep-ms", "3"]}]
    spec = coexec_job(tmp_path, comps, rules={"warmup_runs": 1, "min_count": 40, "min_duration_s": 0.3})
    run = run_spec(spec, timeout_s=120)
    assert run.returncode == 0, run.stderr
    summary = run.events[-1]
    rows = read_trace(summary["trace"]["path"])
    assert [r[0] for r in rows] == list(range(summary["trace"]["rows"]))
    assert_window_is_the_counted_frames(summary, rows)
    npu = [r for r in rows if r[3] == "npu"]
    assert npu and len(npu) % 4 == 0
    npu_inside = [r for r in npu if r[5] == 1]  # a batch is in the window or out of it as a whole
    assert len(npu_inside) % 4 == 0 and summary["components"]["npu"]["frames"] == len(npu_inside)
    assert sum(c["share_pct"] for c in summary["components"].values()) == pytest.approx(100.0)


def test_cpus_of_two_components_must_not_overlap(tmp_path):
    comps = [{"name": "a", "kind": "cpu", "cpus": [0]}, {"name": "b", "kind": "cpu", "cpus": [0]}]
    run = run_spec(coexec_job(tmp_path, comps))
    assert run.returncode == 2
    assert "components[1].cpus: CPU 0 is also used by component 'a'" in run.events[-1]["message"]


def test_a_missing_cpu_in_one_component_is_a_spec_error(tmp_path):
    comps = [TWO_CPUS[0], {"name": "far", "kind": "cpu", "cpus": [max(available_cpus()) + 50]}]
    run = run_spec(coexec_job(tmp_path, comps))
    assert run.returncode == 2 and run.events[-1]["error"] == "SpecError"
    assert "components[1].cpus: CPU id(s)" in run.events[-1]["message"]


def test_a_worker_that_fails_ends_the_job_with_its_error(tmp_path):
    comps = [TWO_CPUS[0], {"name": "gpu", "kind": "gpu", "cpus": [1], "delegate_path": "/nonexistent/lib.so"}]
    run = run_spec(coexec_job(tmp_path, comps), timeout_s=120)
    assert run.returncode == 2, run.stderr
    last = run.events[-1]
    assert last["error"] == "SpecError" and "components[1].delegate_path: cannot load delegate" in last["message"]


def test_sigterm_stops_the_workers_and_reports_interrupted(tmp_path):
    import json
    import os
    import signal
    import subprocess
    import time

    from tests.agent.agent_proc import REPO, agent_env

    spec = coexec_job(tmp_path, TWO_CPUS, rules={"min_duration_s": 30.0, "max_duration_s": 60.0})
    proc = subprocess.Popen([sys.executable, "-m", "device_agent", "run", "-"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=str(REPO),
                            env=agent_env())
    proc.stdin.write(json.dumps(spec))
    proc.stdin.close()
    started = None
    for line in proc.stdout:
        event = json.loads(line)
        if event["event"] == "started":
            started = event
        if event["event"] == "progress":
            break
    pids = [c["pid"] for c in started["components"]]
    proc.send_signal(signal.SIGTERM)
    rest = [json.loads(x) for x in proc.stdout]
    proc.wait(30)
    assert proc.returncode == 3 and rest[-1]["error"] == "Interrupted"
    deadline = time.monotonic() + 5
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in pids if os.path.exists("/proc/%d" % p)
                 and "Z" not in open("/proc/%d/stat" % p).read().split()[2]]
        time.sleep(0.05)
    assert alive == []

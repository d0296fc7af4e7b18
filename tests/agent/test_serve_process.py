"""``python -m device_agent serve``: many requests in one process, each answered like ``run``/``idle`` would."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading

from device_agent.affinity import available_cpus
from device_agent.modelfile import verify_model_file
from device_agent.serve import serve
from tests.agent.agent_proc import REPO, agent_env, fixture_model, job_spec, sigterm_after

CPUS = sorted(available_cpus())
QUICK = {"warmup_runs": 1, "min_count": 5, "min_duration_s": 0.2, "max_duration_s": 5.0}


def request(spec, command="run"):
    return json.dumps({"command": command, "spec": spec}) + "\n"


def answers(stdout: str):
    """The ready event, then the events of each request (each list ends with its summary or error)."""
    events = [json.loads(line) for line in stdout.splitlines()]
    ready, groups, current = events[0], [], []
    for e in events[1:]:
        current.append(e)
        if e["event"] in ("summary", "error", "clock"):
            groups.append(current)
            current = []
    assert not current, "events after the last summary/error"
    return ready, groups


def test_clock_requests_are_answered_at_once_with_the_boards_clock(tmp_path):
    spec = job_spec(fixture_model("float32"), tmp_path / "a", job_id="c/1", rules=QUICK)
    stdin = ('{"command": "clock"}\n' * 3 + request(spec) + '{"command": "clock"}\n'
             + '{"command": "clock", "spec": {}}\n')
    proc = subprocess.run([sys.executable, "-m", "device_agent", "serve"], input=stdin, capture_output=True,
                          text=True, cwd=str(REPO), env=agent_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    ready, groups = answers(proc.stdout)
    assert [[e["event"] for e in g] for g in groups[:3]] == [["clock"]] * 3  # one event each, nothing else
    assert groups[3][-1]["event"] == "summary" and groups[4] == [groups[4][0]] and groups[4][0]["event"] == "clock"
    clocks = [g[0]["t_mono_ns"] for g in groups[:3]] + [groups[4][0]["t_mono_ns"]]
    assert clocks == sorted(clocks) and all(g[0]["job_id"] is None for g in groups[:3])
    # a clock request carries nothing else: anything more is a malformed request, answered as such
    assert groups[5][-1]["event"] == "error" and "clock request" in groups[5][-1]["message"]


def test_requests_are_answered_in_order_by_one_process(tmp_path):
    f32, i8 = fixture_model("float32"), fixture_model("int8")
    first = job_spec(f32, tmp_path / "a", job_id="r/1", rules=QUICK, component={"cpus": [CPUS[-1]]})
    bad = job_spec(f32, tmp_path / "b", job_id="r/2", rules={"min_count": -3})
    third = job_spec(i8, tmp_path / "c", job_id="r/3", rules=QUICK, component={"cpus": [CPUS[0]]})
    stdin = request(first) + "not json\n" + '{"command": "dance", "spec": {}}\n' + request(bad) + request(third)
    proc = subprocess.run([sys.executable, "-m", "device_agent", "serve"], input=stdin, capture_output=True,
                          text=True, cwd=str(REPO), env=agent_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    ready, groups = answers(proc.stdout)
    assert ready["event"] == "ready" and ready["job_id"] is None and ready["commands"] == ["run", "idle", "clock"]
    assert [g[-1]["event"] for g in groups] == ["summary", "error", "error", "error", "summary"]
    assert [g[-1]["job_id"] for g in groups] == ["r/1", None, None, "r/2", "r/3"]
    assert "invalid JSON" in groups[1][-1]["message"]
    assert "request.command" in groups[2][-1]["message"] and "dance" in groups[2][-1]["message"]
    assert "rules.min_count" in groups[3][-1]["message"]
    started = [next(e for e in g if e["event"] == "started") for g in (groups[0], groups[4])]
    assert [s["pid"] for s in started] == [ready["pid"]] * 2  # one process served both jobs
    assert [s["cpus_effective"] for s in started] == [[CPUS[-1]], [CPUS[0]]]
    assert started[1]["model"]["sha256"] == i8["sha256"]
    for folder, spec in (("a", first), ("c", third), ("b", bad)):  # the board keeps what it was asked
        assert json.loads((tmp_path / folder / "spec.json").read_text()) == spec
    assert (tmp_path / "a" / "trace.csv").exists() and (tmp_path / "c" / "trace.csv").exists()


def test_sigterm_ends_the_running_request_then_the_server(tmp_path):
    spec = job_spec(fixture_model("float32"), tmp_path, job_id="r/long",
                    rules={"warmup_runs": 0, "min_count": 1, "min_duration_s": 20.0, "max_duration_s": 30.0})
    events, code = sigterm_after(["serve"], request(spec) + request(spec), ["ready", "started"])  # 2nd never starts
    assert [e["event"] for e in events] == ["error"]
    assert events[0]["error"] == "Interrupted" and events[0]["job_id"] == "r/long" and events[0]["retryable"]
    assert code == 3


def test_sigterm_while_waiting_for_a_request_exits_3():
    events, code = sigterm_after(["serve"], "", ["ready"])
    assert events == [] and code == 3


def test_each_request_starts_from_the_servers_own_affinity(tmp_path, monkeypatch):
    """An isolated job pins the process; the next request (a co-execution's main loop, say) must not
    inherit that pinning."""
    import device_agent.serve as served

    initial = os.sched_getaffinity(0)
    assert len(initial) > 1, "needs two CPUs to tell pinned from unpinned"
    original, seen = served.execute, []

    def spy(*args, **kwargs):
        seen.append(os.sched_getaffinity(0))
        return original(*args, **kwargs)

    monkeypatch.setattr(served, "execute", spy)
    spec = job_spec(fixture_model("float32"), tmp_path, job_id="r/pin", rules=QUICK, component={"cpus": [CPUS[-1]]})
    out = io.StringIO()
    try:
        assert serve(io.StringIO(request(spec) + request(dict(spec, job_id="r/pin2"))), out) == 0
    finally:
        os.sched_setaffinity(0, initial)
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["job_id"] for e in events if e["event"] == "summary"] == ["r/pin", "r/pin2"]
    assert seen == [initial, initial]


def test_model_digest_is_read_again_when_the_file_changes(tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"a" * 4096)
    first = verify_model_file(str(model), None)
    assert verify_model_file(str(model), first) == first  # cached: same identity
    stat = model.stat()
    model.write_bytes(b"b" * 4096)  # same size ...
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # ... new modification time
    second = verify_model_file(str(model), None)
    assert second != first


def _runtime_mapped(pid: int) -> bool:
    """Whether the process has the TFLite runtime's native library mapped (it imported the runtime)."""
    maps = open(f"/proc/{pid}/maps").read()
    return "ai_edge_litert" in maps or "tflite_runtime" in maps


def _numpy_mapped(pid: int) -> bool:
    """Whether the process has numpy's native core mapped (it imported numpy)."""
    return "_multiarray_umath" in open(f"/proc/{pid}/maps").read()


def test_no_preload_serves_a_simulated_job_without_ever_importing_the_runtime(tmp_path):
    """``serve`` imports the runtime before its ``ready``; ``serve --no-preload`` (a board of simulated
    components) does not, and a simulated job needs none: the process never maps the runtime's library, nor
    numpy's (~0.15 s of CPU per agent, 64 virtual boards' agents at once on one machine)."""
    sim = {"name": "npu", "kind": "simulated", "cpus": [0], "ms_per_inference": 1.0, "ms_per_mib": 0.0, "sigma": 0.0}
    spec = job_spec(fixture_model("float32"), tmp_path / "job", job_id="s/1", component=sim,
                    rules={"warmup_runs": 1, "min_count": 5, "min_duration_s": 0.05})
    del spec["component"]["threads"]
    mapped = {}
    for args in (["serve"], ["serve", "--no-preload"]):
        proc = subprocess.Popen([sys.executable, "-m", "device_agent", *args], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(REPO),
                                env=agent_env())
        watchdog = threading.Timer(60, proc.kill)  # a hung agent ends the reads below (EOF) instead of the run
        watchdog.start()
        try:
            assert json.loads(proc.stdout.readline())["event"] == "ready", proc.stderr.read()
            at_ready = _runtime_mapped(proc.pid)
            proc.stdin.write(request(spec))
            proc.stdin.flush()
            events = [json.loads(proc.stdout.readline())]
            while events[-1]["event"] not in ("summary", "error"):
                events.append(json.loads(proc.stdout.readline()))
            assert events[-1]["event"] == "summary" and events[-1]["verdict"] == "VALID", events[-1]
            mapped[args[-1]] = (at_ready, _runtime_mapped(proc.pid), _numpy_mapped(proc.pid))
        finally:
            proc.stdin.close()
            watchdog.cancel()  # before the assertion: a failing run is not held 60 s more by the timer's thread
            assert proc.wait(timeout=30) == 0
            proc.stdout.close()
            proc.stderr.close()
    assert mapped == {"serve": (True, True, True), "--no-preload": (False, False, False)}

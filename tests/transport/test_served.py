"""AgentServer over a local process's pipes: start-up failures, a server dying midway, a request overrunning."""

from __future__ import annotations

import subprocess
import sys

import pytest

from orchestrator.errors import AgentError
from orchestrator.transport.served import AgentServer, ServerStreams

READY = 'print(\'{"v":1,"event":"ready","job_id":null,"t_mono_ns":0,"t_wall_ns":0,"pid":1,"agent_version":"x"}\')'


def server(script: str, start_timeout_s: float = 10.0):
    proc = subprocess.Popen([sys.executable, "-u", "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    terminated = []

    def send(data: bytes) -> None:
        proc.stdin.write(data)
        proc.stdin.flush()

    def terminate(pid):
        terminated.append(pid)
        proc.kill()
        proc.wait()

    def close():
        proc.stdin.close()
        proc.wait(timeout=10)

    streams = ServerStreams(send=send, stdout=proc.stdout, stderr=proc.stderr, exit_status=proc.wait,
                            terminate=terminate, close=close)
    return AgentServer("fake", streams, start_timeout_s), proc, terminated


def test_a_process_that_never_serves_is_an_agent_died_error_with_its_stderr():
    with pytest.raises(AgentError) as info:
        server("import sys; print('no runtime here', file=sys.stderr); sys.exit(5)")
    assert info.value.error_class == "AgentDied" and info.value.retryable
    assert "exit code 5" in str(info.value) and "no runtime here" in str(info.value)


def test_a_silent_process_is_killed_after_the_start_timeout():
    with pytest.raises(AgentError) as info:
        server("import time; time.sleep(60)", start_timeout_s=0.5)
    assert "did not start serving within" in str(info.value)


def test_a_server_that_dies_midway_gives_its_exit_code_and_stderr():
    script = READY + "\nimport sys; sys.stdin.readline(); print('{\"v\":1,\"event\":\"started\",\"job_id\":\"j\"}')" \
        "\nprint('segfault-ish', file=sys.stderr); sys.exit(7)"
    srv, proc, _ = server(script)
    events = []
    outcome = srv.request("run", {"job_id": "j"}, events.append, timeout_s=10)
    assert [e["event"] for e in events] == ["started"]
    assert outcome.returncode == 7 and "segfault-ish" in outcome.stderr_tail and not srv.alive
    with pytest.raises(AgentError) as info:
        outcome.raise_for_failure("fake")
    assert info.value.error_class == "AgentDied"
    with pytest.raises(AgentError):
        srv.request("run", {"job_id": "k"}, None, timeout_s=10)  # a dead server takes no request


def test_a_request_past_its_timeout_terminates_the_server():
    srv, proc, terminated = server(READY + "\nimport sys, time; sys.stdin.readline(); time.sleep(60)")
    with pytest.raises(AgentError) as info:
        srv.request("run", {"job_id": "j"}, None, timeout_s=0.5)
    assert info.value.error_class == "JobTimeout" and info.value.retryable
    assert terminated == [1] and proc.poll() is not None and not srv.alive


def test_requests_are_answered_one_after_another_and_close_ends_the_server():
    script = READY + """
import json, sys
for line in sys.stdin:
    req = json.loads(line)
    job = req["spec"]["job_id"]
    print(json.dumps({"v": 1, "event": "progress", "job_id": job}))
    print(json.dumps({"v": 1, "event": "summary", "job_id": job, "command": req["command"]}))
"""
    srv, proc, terminated = server(script)
    first = srv.request("run", {"job_id": "a"}, None, timeout_s=10)
    second = srv.request("idle", {"job_id": "b"}, None, timeout_s=10)
    assert [e["event"] for e in first.events] == ["progress", "summary"] and first.returncode is None
    assert second.summary == {"v": 1, "event": "summary", "job_id": "b", "command": "idle"}
    srv.close()
    assert proc.wait(timeout=10) == 0 and terminated == []


def test_an_abort_from_another_thread_ends_the_request_in_flight_and_stops_the_server():
    import threading

    script = READY + "\nimport sys, time; sys.stdin.readline()" \
        "\nprint('{\"v\":1,\"event\":\"started\",\"job_id\":\"j\"}'); time.sleep(600)"
    srv, proc, terminated = server(script)
    events = []
    started = threading.Event()

    def on_event(event):
        events.append(event)
        started.set()

    aborter = threading.Thread(target=lambda: started.wait(30) and srv.abort("the board's lock was lost"))
    aborter.start()
    with pytest.raises(AgentError) as info:
        srv.request("run", {"job_id": "j"}, on_event, timeout_s=600)
    aborter.join(30)
    assert info.value.error_class == "Aborted" and not info.value.retryable
    assert "aborted: the board's lock was lost" in str(info.value)
    assert [e["event"] for e in events] == ["started"] and terminated == [1] and proc.poll() is not None
    assert not srv.alive

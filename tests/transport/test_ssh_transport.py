"""SSH transport (fabric) against a real sshd on loopback: agent jobs, SFTP, clock, classified errors."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time

import pytest

from orchestrator.checksum import sha256_file
from orchestrator.errors import AgentError
from orchestrator.transport.ssh import (
    IDLE_POLL_S,
    BoardUnreachable,
    HostKeyError,
    SshAuthError,
    SshTransport,
    connect,
)
from tests.conftest import FIXTURE_ZOO, REPO


@pytest.fixture
def transport(sshd, tmp_path):
    board = sshd.board(tmp_path / "board")
    with SshTransport(board, python=sys.executable, agent_dir=str(REPO)) as t:
        yield t


def spec(tmp_path, **rules):
    model = FIXTURE_ZOO / "tiny_cnn_float32.tflite"
    return {
        "spec_version": 1,
        "job_id": "ssh-1",
        "model": {"path": str(model), "sha256": sha256_file(model)},
        "component": {"name": "cpu0", "kind": "cpu", "cpus": [0], "threads": 1},
        "rules": {"warmup_runs": 1, "min_count": 10, "min_duration_s": 0.2, "max_duration_s": 5, **rules},
        "output_dir": str(tmp_path / "board" / "jobs" / "ssh-1"),
    }


def test_agent_job_over_ssh_streams_events_and_fetches_a_verified_trace(transport, tmp_path):
    events = []
    outcome = transport.run_agent(spec(tmp_path), events.append, timeout_s=60)
    summary = outcome.raise_for_failure("lo")
    assert [e["event"] for e in events][0] == "started" and events[-1]["event"] == "summary"
    assert summary["count"] >= 10 and summary["verdict"] == "VALID"
    local = tmp_path / "fetched" / "trace.csv"
    transport.fetch(summary["trace"]["path"], local)
    assert sha256_file(local) == summary["trace"]["sha256"]
    assert (tmp_path / "board" / "jobs" / "ssh-1" / "spec.json").exists()


def test_agent_spec_error_comes_back_as_a_stable_agent_error(transport, tmp_path):
    outcome = transport.run_agent(spec(tmp_path, min_count=-3), None, timeout_s=60)
    assert outcome.returncode is None  # the serving agent lives on
    with pytest.raises(AgentError) as info:
        outcome.raise_for_failure("lo")
    assert not info.value.retryable and "min_count" in str(info.value)
    # ... and serves the next job, in the same process
    again = transport.run_agent(dict(spec(tmp_path), job_id="ssh-2"), None, timeout_s=60)
    assert again.raise_for_failure("lo")["verdict"] == "VALID"
    assert again.started["pid"] == transport._server.pid


def gone(pid, within_s=15.0):
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{pid}"):
            return True
        time.sleep(0.05)
    return False


def test_a_job_past_its_timeout_kills_the_agent_and_the_next_job_gets_a_new_one(transport, tmp_path):
    transport.run_agent(dict(spec(tmp_path), job_id="first"), None, timeout_s=60).raise_for_failure("lo")
    first_pid = transport._server.pid
    long = {"min_count": 1, "min_duration_s": 30, "max_duration_s": 60}
    with pytest.raises(AgentError) as info:
        # silent (no progress events): only being killed ends it before its window does
        transport.run_agent(dict(spec(tmp_path, **long), job_id="slow", progress_interval_s=1000), None, timeout_s=1.5)
    assert info.value.error_class == "JobTimeout" and info.value.retryable
    assert gone(first_pid), "the overrunning agent still runs on the board"
    after = transport.run_agent(dict(spec(tmp_path), job_id="next"), None, timeout_s=60)
    assert after.raise_for_failure("lo")["verdict"] == "VALID"
    assert after.started["pid"] != first_pid


def test_an_agent_killed_midway_is_an_agent_died_error(transport, tmp_path):
    job = dict(spec(tmp_path, min_count=1, min_duration_s=30, max_duration_s=60), job_id="victim")

    def on_event(event):
        if event["event"] == "started":
            os.kill(event["pid"], signal.SIGKILL)

    outcome = transport.run_agent(job, on_event, timeout_s=60)
    assert outcome.summary is None and outcome.returncode is not None
    with pytest.raises(AgentError) as info:
        outcome.raise_for_failure("lo")
    assert info.value.error_class == "AgentDied" and info.value.retryable
    # the connection is fine: the next job starts a new agent
    assert transport.run_agent(dict(spec(tmp_path), job_id="after"), None, 60).raise_for_failure("lo")


def test_clock_offset_of_the_same_machine_is_near_zero(transport):
    offset = transport.clock_offset(probes=8)
    assert offset.probes == 8
    assert offset.uncertainty_ns < 50_000_000
    # same kernel clock: the true offset is 0, so the estimate lies within its uncertainty
    assert abs(offset.offset_ns) <= offset.uncertainty_ns + 1_000_000


def test_a_connection_s_thread_wakes_every_idle_poll_s_and_ends_after_close(sshd, tmp_path):
    """Paramiko reads the poll interval from the transport it was given: its socket's timeout says whether our
    interval reached it (its own is 0.1 s; a paramiko that renamed the attribute would fail here)."""
    assert IDLE_POLL_S != 0.1
    conn = connect(sshd.board(tmp_path))
    thread = conn.client.get_transport()
    try:
        assert thread.sock.gettimeout() == IDLE_POLL_S
        assert conn.run("echo up", hide=True, in_stream=False).stdout.strip() == "up"
    finally:
        conn.close()
    thread.join(timeout=30 * IDLE_POLL_S)  # it ends at its next wake-up (bounded: the test cannot hang)
    assert not thread.is_alive()


def test_wrong_key_is_an_authentication_error(sshd, tmp_path):
    board = sshd.board(tmp_path, key_file=str(sshd.other_key))
    with pytest.raises(SshAuthError, match="authentication failed"):
        connect(board)


def test_unknown_host_key_is_refused(sshd, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(HostKeyError, match="not in"):
        connect(sshd.board(tmp_path, known_hosts=str(empty)))


def test_nothing_listening_is_unreachable(sshd, tmp_path):
    board = sshd.board(tmp_path, port=1)  # nothing listens on port 1
    with pytest.raises(BoardUnreachable, match="connecting"):
        connect(board)


def test_sshd_binary_present():
    assert shutil.which("ssh-keygen")

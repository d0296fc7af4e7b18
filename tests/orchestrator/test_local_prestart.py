"""The local board's agent started ahead of its first job (``LocalTransport(prestart=True)``)."""

from __future__ import annotations

import sys

from orchestrator.board_runner import needs_runtime
from orchestrator.config.inventory import Board, Component
from orchestrator.provision.runner import BoardFacts
from orchestrator.transport.local import LocalTransport
from tests.agent.agent_proc import REPO, fixture_model, job_spec

QUICK = {"warmup_runs": 1, "min_count": 5, "min_duration_s": 0.2, "max_duration_s": 5.0}


def _facts() -> BoardFacts:
    return BoardFacts(board="localhost", python=sys.executable, agent_dir=str(REPO), agent_version="",
                      runtime_module="", runtime_version="", arch="", hostname="", usable_cpus=(0,))


def test_a_prestarted_agent_answers_the_first_job_and_is_the_one_that_served_it(tmp_path):
    transport = LocalTransport(_facts(), prestart=True)
    pid = transport._spawned.pid  # running before anything was asked
    try:
        spec = job_spec(fixture_model("float32"), tmp_path / "a", job_id="p/1", rules=QUICK)
        outcome = transport.run_agent(spec, None, timeout_s=120)
        assert outcome.summary is not None and outcome.summary["verdict"] == "VALID", outcome.stderr_tail
        assert transport._spawned is None and transport._server.pid == pid  # its `ready` came from that process
    finally:
        transport.close()
    assert not _running(pid)  # closing ended it


def test_a_prestarted_agent_that_was_never_asked_ends_on_close():
    transport = LocalTransport(_facts(), prestart=True)
    proc = transport._spawned
    transport.close()
    assert proc.poll() == 0 and transport._spawned is None  # end of input: a clean exit, not a kill


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def test_a_board_of_simulated_components_starts_its_agent_without_the_runtime():
    sim = Component(name="npu", kind="simulated", cpus=[0], ms_per_inference=2.0, **{"class": "npu"})
    cpu = Component(name="big", cpus=[0])
    assert not needs_runtime(Board(name="s", soc="kirin970", work_dir="/w", components=[sim]))
    assert needs_runtime(Board(name="m", soc="kirin970", work_dir="/w", components=[sim, cpu]))
    for preload, args in ((True, ["serve"]), (False, ["serve", "--no-preload"])):
        transport = LocalTransport(_facts(), prestart=True, preload=preload)
        spawned = transport._spawned.args
        assert spawned[-len(args):] == args and spawned[-len(args) - 1] == "device_agent"
        transport.close()

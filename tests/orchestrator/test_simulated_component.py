"""The controller's side of the ``simulated`` component kind: inventory fields, the agent spec, the planner,
and the label every row, job line and report of it carries."""

from __future__ import annotations

import io
import threading

import pytest
from pydantic import ValidationError
from rich.console import Console

from orchestrator.analysis.emulation import emulation_status_text, label_of, timing_source
from orchestrator.board_runner import BoardRunner, SweepOutcome
from orchestrator.config.inventory import Board, Component
from orchestrator.errors import SocfarmError
from orchestrator.progress import SweepProgress, timing_text
from orchestrator.results.store import Store
from tests.orchestrator.test_cooldown import FACTS
from tests.orchestrator.test_thermal_spec import jobs_for

SIM = Component(name="npu", kind="simulated", cpus=[3], ms_per_inference=4.0, ms_per_mib=0.5,
                **{"class": "npu"})


def sim_board() -> Board:
    return Board(name="s", soc="kirin970", work_dir="/w", components=[SIM])


def test_a_simulated_component_and_its_agent_spec():
    assert SIM.agent_spec() == {"name": "npu", "kind": "simulated", "cpus": [3], "ms_per_inference": 4.0,
                                "ms_per_mib": 0.5, "sigma": 0.05}
    assert SIM.effective_threads == 1 and SIM.frequency_domain is None


@pytest.mark.parametrize("fields, message", [
    ({}, "a simulated component needs 'ms_per_inference'"),
    ({"ms_per_inference": 2, "threads": 2}, "threads: not a field of a simulated component"),
    ({"ms_per_inference": 2, "command": ["x"]}, "command: not a field of a simulated component"),
    ({"ms_per_inference": 2, "sigma": -1}, "sigma"),
    ({"ms_per_inference": -2}, "ms_per_inference"),
])
def test_bad_simulated_components(fields, message):
    with pytest.raises(ValidationError, match=message):
        Component(name="npu", kind="simulated", cpus=[3], **fields)
    with pytest.raises(ValidationError, match="ms_per_inference: not a field of a cpu component"):
        Component(name="big", cpus=[3], ms_per_inference=2.0)


def test_jobs_of_a_simulated_component_carry_it_to_the_agent_and_ask_no_frequency_domain():
    (job,) = jobs_for(["npu"], b=sim_board())
    assert job.agent_spec("/m.tflite", "/out")["component"]["kind"] == "simulated"
    assert job.platform_spec() == {}
    (held,) = jobs_for(["npu"], frequencies=["max"], b=sim_board())  # nothing to pin: not a planning error
    assert held.frequency == "max"


def test_the_label_says_simulated_for_a_simulated_component():
    text = timing_source(None, ["npu"])
    assert text == "simulated inference (modelled latency: npu)" and label_of(text) == "simulated"
    assert timing_source(None, []) is None and label_of(timing_source("qemu-user arm64", [])) == "emulated"
    assert label_of(timing_source("qemu-user arm64", ["npu"])) == "emulated/simulated"
    assert timing_text({"throughput_ips": 250.0, "emulated": text}) == "250.0 img/s (simulated)"
    assert emulation_status_text({"s": text}) == ("simulated inference on s (simulated inference (modelled latency: "
                                                   "npu)): their timings are not performance figures")


def test_a_board_with_simulated_components_says_so_before_its_jobs(monkeypatch, tmp_path):
    def unreachable(board_, facts):
        raise SocfarmError("s: unreachable")

    monkeypatch.setattr("orchestrator.board_runner.open_transport", unreachable)
    b = sim_board()
    job_list = jobs_for(["npu"], b=b)
    run = Store(tmp_path / "runs").create_run("r1", {"boards": {}})
    buf = io.StringIO()
    progress = SweepProgress(Console(file=buf, force_terminal=False, width=200), enabled=True)
    progress.start_jobs({"s": len(job_list)})
    BoardRunner(run, b, FACTS, "abc", progress, threading.Event()).run_jobs(job_list, SweepOutcome(run))
    assert buf.getvalue().splitlines()[0] == ("s: simulated inference (modelled latency: npu): its timings are not "
                                              "performance figures; those job lines say (simulated)")

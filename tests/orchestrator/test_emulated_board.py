"""A board with an emulated userland (``socfarm_emulated``): read from the inventory, carried by every results
row, said on the progress output. Its timings are the emulator's, not the SoC's."""

from __future__ import annotations

import io
import threading

import pandas as pd
import pytest
from rich.console import Console

from orchestrator.board_power import no_power
from orchestrator.board_runner import BoardRunner, SweepOutcome, result_row
from orchestrator.config.load import lab_from_listing, load_inventory
from orchestrator.errors import ConfigError, SocfarmError
from orchestrator.progress import SweepProgress
from orchestrator.results.schema import RESULTS, SCHEMA_VERSION
from orchestrator.results.store import Store
from orchestrator.transport.agent import AgentOutcome
from orchestrator.transport.clock import JobClock, estimate_offset
from tests.orchestrator.test_cooldown import FACTS
from tests.orchestrator.test_thermal_spec import board, jobs_for

QEMU = "qemu-user armhf (cortex-a15), Debian 12"

INVENTORY = """
all:
  children:
    odroid_xu3:
      hosts:
        xu3-1: {ansible_host: 10.0.0.11, socfarm_emulated: "qemu-user armhf (cortex-a15), Debian 12"}
        xu3-2: {ansible_host: 10.0.0.12, socfarm_emulated: null}
        xu3-3: {ansible_host: 10.0.0.13}
      vars:
        socfarm_soc: exynos5422
        socfarm_work_dir: /var/tmp/socfarm
        socfarm_components:
          - {name: a15, class: big, cpus: [4, 5, 6, 7]}
"""


def _listing(**hostvars) -> dict:
    """What ansible-inventory --list prints for one host b1 with these variables (and the required ones)."""
    hv = {"socfarm_soc": "exynos5422", "socfarm_work_dir": "/w",
          "socfarm_components": [{"name": "a15", "class": "big", "cpus": [4]}], **hostvars}
    return {"_meta": {"hostvars": {"b1": hv}}, "all": {"children": ["ungrouped"]}, "ungrouped": {"hosts": ["b1"]}}


# --- inventory -------------------------------------------------------------------------------------------


def test_the_inventory_says_which_boards_are_emulated(write):
    lab = load_inventory(write("inv.yml", INVENTORY))
    assert [(b.name, b.emulated) for b in lab.boards] == [("xu3-1", QEMU), ("xu3-2", None), ("xu3-3", None)]


@pytest.mark.parametrize("value, expected", [
    ("qemu-user arm64 (cortex-a73), Debian 12", "qemu-user arm64 (cortex-a73), Debian 12"),
    ("  qemu-user armhf  ", "qemu-user armhf"),
    (None, None),
])
def test_good_values(value, expected):
    lab = lab_from_listing(_listing(socfarm_emulated=value), "inv.yml")
    assert lab.board("b1").emulated == expected


@pytest.mark.parametrize("value, message", [
    (True, "Input should be a valid string"),
    (12, "Input should be a valid string"),
    (["qemu-user"], "Input should be a valid string"),
    ({"arch": "armhf"}, "Input should be a valid string"),
    ("", "an empty description"),
    ("   ", "an empty description"),
])
def test_bad_values_name_file_host_and_variable(value, message):
    with pytest.raises(ConfigError) as info:
        lab_from_listing(_listing(socfarm_emulated=value), "inv.yml")
    assert "inv.yml: host b1: socfarm_emulated: " in str(info.value) and message in str(info.value)


# --- the results row -------------------------------------------------------------------------------------


def _row(emulated):
    (job,) = jobs_for(["big"])
    clock = JobClock(estimate_offset(lambda: 0, 1), estimate_offset(lambda: 0, 1))
    summary = {"event": "summary", "window": {"start_mono_ns": 1, "end_mono_ns": 2}, "verdict": "VALID",
               "throughput_ips": 12.5}
    return result_row("r", job, FACTS, AgentOutcome(events=[{"event": "started"}, summary]), "abc", clock,
                      no_power(), None, None, emulated)


def test_every_row_carries_the_emulation_and_is_stored_with_it(tmp_path):
    assert SCHEMA_VERSION == 4 and "emulated" in RESULTS.names
    row, real = _row(QEMU), _row(None)
    assert row["emulated"] == QEMU and real["emulated"] is None and row["schema_version"] == 4
    assert set(row) == set(RESULTS.names)  # the store refuses a row that is not the schema
    run = Store(tmp_path / "runs").create_run("r", {})
    run.write_table("results", "emu", [{**row, "job_id": "emu"}])
    run.write_table("results", "real", [{**real, "job_id": "real"}])
    stored = run.read_table("results").set_index("job_id")
    assert stored.loc["emu", "emulated"] == QEMU and pd.isna(stored.loc["real", "emulated"])


# --- progress output -------------------------------------------------------------------------------------


def _progress() -> tuple[SweepProgress, io.StringIO]:
    buf = io.StringIO()
    return SweepProgress(Console(file=buf, force_terminal=False, width=200), enabled=True), buf


def test_the_job_line_of_an_emulated_board_says_so():
    progress, buf = _progress()
    (job,) = jobs_for(["big"])
    progress.start_jobs({job.board: 2})
    progress.job_done(job, {"throughput_ips": 12.5, "verdict": "VALID", "emulated": QEMU})
    progress.job_done(job, {"throughput_ips": 80.0, "verdict": "VALID", "emulated": None})
    emulated, real = buf.getvalue().splitlines()
    assert emulated.endswith("12.5 img/s (emulated) VALID") and emulated.startswith("[1/2]")
    assert real.endswith("80.0 img/s VALID") and "emulated" not in real


def test_a_board_says_once_before_its_jobs_that_its_timings_are_not_performance_figures(monkeypatch, tmp_path):
    def unreachable(board_, facts):
        raise SocfarmError("x: unreachable")

    monkeypatch.setattr("orchestrator.board_runner.open_transport", unreachable)
    b = board(emulated=QEMU)
    job_list = jobs_for(["big"], b=b)
    run = Store(tmp_path / "runs").create_run("r1", {"boards": {}})
    progress, buf = _progress()
    progress.start_jobs({"x": len(job_list)})
    BoardRunner(run, b, FACTS, "abc", progress, threading.Event()).run_jobs(job_list, SweepOutcome(run))
    first = buf.getvalue().splitlines()[0]
    assert first == (f"x: emulated userland ({QEMU}): its timings are not performance figures; its job lines "
                     "say (emulated)")
    progress, buf = _progress()  # a real board: nothing said
    progress.start_jobs({"x": len(job_list)})
    BoardRunner(run, board(), FACTS, "abc", progress, threading.Event()).run_jobs(job_list, SweepOutcome(run))
    assert "emulated" not in buf.getvalue()

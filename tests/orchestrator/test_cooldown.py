"""Thermal state per job: the row's columns and the cool-down before each job (fake clocks and fake
temperature readers: no real waiting)."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.board_runner import BoardRunner, SweepOutcome, result_row
from orchestrator.config.inventory import ThermalSpec
from orchestrator.cooldown import Cooldown, CooldownTimeout, ZoneUnreadable, cool_down, wait_until_cool
from orchestrator.progress import SweepProgress
from orchestrator.provision.runner import BoardFacts
from orchestrator.results.schema import RESULTS, SCHEMA_VERSION
from orchestrator.results.store import Store
from orchestrator.transport.agent import AgentOutcome
from orchestrator.transport.clock import JobClock, estimate_offset
from tests.orchestrator.test_thermal_spec import ZONES, board, jobs_for

# --- the results row -------------------------------------------------------------------------------------


FACTS = BoardFacts(board="x", python="python3", agent_dir="/a", agent_version="t", runtime_module="rt",
                   runtime_version="1", arch="aarch64", hostname="x", usable_cpus=(4, 5))


def _row(summary_platform, thermal, cooldown):
    (job,) = jobs_for(["big"])
    clock = JobClock(estimate_offset(lambda: 0, 1), estimate_offset(lambda: 0, 1))
    summary = {"event": "summary", "window": {"start_mono_ns": 1, "end_mono_ns": 2}, "verdict": "INVALID",
               "reasons": ["throttled: policy4 (not pinned) ..."], **summary_platform}
    return result_row("r", job, FACTS, AgentOutcome(events=[{"event": "started"}, summary]), "abc", clock, {},
                      thermal, cooldown)


def test_row_thermal_columns():
    platform = {"platform": {"cpufreq": {"policy4": {"mode": "watch", "min_khz": 1400000, "below_s": 0.5}},
                             "thermal": {"thermal_zone0": {"max_mdegc": 96000, "start_mdegc": 52000},
                                         "thermal_zone4": {"max_mdegc": 61000, "start_mdegc": 54000}}}}
    row = _row(platform, ThermalSpec(zones=ZONES, simulated=True), Cooldown(12.5, {"thermal_zone0": 54.0}))
    assert {k: row[k] for k in ("temp_start_c", "temp_max_c", "cooldown_wait_s", "temp_simulated",
                                "freq_requested", "freq_min_khz", "freq_below_s")} == {
        "temp_start_c": 54.0, "temp_max_c": 96.0, "cooldown_wait_s": 12.5, "temp_simulated": True,
        "freq_requested": None, "freq_min_khz": 1400000, "freq_below_s": 0.5}
    assert SCHEMA_VERSION >= 3 and row["schema_version"] == SCHEMA_VERSION  # the thermal columns came with 3
    for col in ("temp_start_c", "temp_max_c", "cooldown_wait_s", "temp_simulated"):
        assert col in RESULTS.names


def test_row_without_zones_or_cool_down_says_null():
    row = _row({}, None, None)
    assert (row["temp_start_c"], row["temp_max_c"], row["cooldown_wait_s"], row["temp_simulated"]) == (
        None, None, None, None)
    row = _row({}, ThermalSpec(zones=ZONES), Cooldown(0.0, {"thermal_zone0": 40.0}))  # an older agent: no stats
    assert (row["temp_max_c"], row["cooldown_wait_s"], row["temp_simulated"]) == (None, 0.0, False)


# --- the cool-down, on a fake clock ----------------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        return False


def readings(*temps_c: dict[str, float]):
    """A reader returning each reading in turn, then the last one forever."""
    seq = list(temps_c)

    def read() -> dict[str, float]:
        return seq.pop(0) if len(seq) > 1 else seq[0]
    return read


def test_a_cool_board_does_not_wait():
    clock = FakeClock()
    done = wait_until_cool("b", readings({"thermal_zone0": 41.0}), 55.0, 300.0, clock=clock, wait=clock.wait)
    assert done == Cooldown(0.0, {"thermal_zone0": 41.0}) and clock.waits == []


def test_a_hot_board_waits_until_every_zone_is_below_the_threshold():
    clock, notes = FakeClock(), []
    read = readings({"thermal_zone0": 71.2, "thermal_zone4": 50.0}, {"thermal_zone0": 60.0, "thermal_zone4": 56.0},
                    {"thermal_zone0": 54.0, "thermal_zone4": 55.0},  # 55.0 is not below 55
                    {"thermal_zone0": 53.0, "thermal_zone4": 54.9})
    done = wait_until_cool("b", read, 55.0, 300.0, clock=clock, wait=clock.wait, note=notes.append, simulated=True)
    assert done == Cooldown(3.0, {"thermal_zone0": 53.0, "thermal_zone4": 54.9})
    assert clock.waits == [1.0, 1.0, 1.0]
    assert notes == ["b: cool-down: thermal_zone0 at 71.2 °C (simulated), waiting until every zone is below 55 °C "
                     "(0 of at most 300 s)", "b: cool-down: below 55 °C after 3 s"]


def test_a_board_that_stays_hot_is_an_error_naming_the_zone():
    clock, notes = FakeClock(), []
    with pytest.raises(CooldownTimeout) as err:
        wait_until_cool("xu3-1", readings({"thermal_zone0": 71.2, "thermal_zone1": 60.0}), 55.0, 300.0, clock=clock,
                        wait=clock.wait, note=notes.append)
    assert str(err.value) == "xu3-1: cool-down: thermal_zone0 at 71.2 °C stayed above 55 °C for 300 s"
    assert len(clock.waits) == 300 and len(notes) == 10  # progress every 30 s, not every poll


def test_a_stopped_sweep_stops_waiting():
    clock = FakeClock()
    stopped = wait_until_cool("b", readings({"thermal_zone0": 80.0}), 55.0, 300.0, clock=clock,
                              wait=lambda s: True)
    assert stopped is None


class FakeLink:
    """Answers ``zone_temps_command`` by running it on a fake sysfs tree, like a board's shell."""

    def __init__(self, sysfs: Path):
        self.sysfs = sysfs
        self.commands: list[str] = []

    def run(self, command: str, timeout_s: float = 60.0) -> str:
        self.commands.append(command)
        return subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=30, check=True).stdout


def zone(sysfs: Path, name: str, milli_c: int) -> None:
    (sysfs / "class/thermal" / name).mkdir(parents=True, exist_ok=True)
    (sysfs / "class/thermal" / name / "temp").write_text(f"{milli_c}\n")


def test_cool_down_reads_the_listed_zones_through_the_transport(tmp_path):
    sysfs = tmp_path / "sys"
    zone(sysfs, "thermal_zone0", 41000)
    zone(sysfs, "thermal_zone4", 43500)
    zone(sysfs, "thermal_zone9", 99000)  # not the SoC's: not listed, not waited for
    b = board(sysfs_root=str(sysfs))
    journal: list[dict] = []
    link = FakeLink(sysfs)
    done = cool_down(b, link, threading.Event(), lambda text: None, journal.append)
    assert done == Cooldown(0.0, {"thermal_zone0": 41.0, "thermal_zone4": 43.5})
    assert len(link.commands) == 1 and journal == []  # nothing waited: nothing journalled
    assert cool_down(board(thermal=ThermalSpec(zones=ZONES, cooldown_c=None)), link, threading.Event(),
                     lambda text: None, journal.append) is None
    assert cool_down(board(thermal=None), link, threading.Event(), lambda text: None, journal.append) is None
    assert len(link.commands) == 1


def test_a_listed_zone_the_board_lacks_is_named(tmp_path):
    sysfs = tmp_path / "sys"
    zone(sysfs, "thermal_zone0", 41000)
    with pytest.raises(ZoneUnreadable, match=r"x: cool-down: cannot read thermal_zone4 under .*/sys/class/thermal"):
        cool_down(board(sysfs_root=str(sysfs)), FakeLink(sysfs), threading.Event(), lambda text: None, print)


# --- in the board runner: a board that never cools down ---------------------------------------------------


class HotBoard(FakeLink):
    """A board whose zones stay hot: the health check passes (below 80 °C), no job may start."""

    def __init__(self, sysfs: Path):
        super().__init__(sysfs)
        self.agent_runs = 0

    def run(self, command: str, timeout_s: float = 60.0) -> str:
        if command.startswith("df -Pk"):  # the health check: room on disk, below its 80 °C limit
            return "/dev/vda 263174212 20000000 5000000 10% /\ntemp thermal_zone0 71200\n"
        return super().run(command, timeout_s)

    def clock_offset(self, probes: int = 8):
        return estimate_offset(lambda: 0, probes)

    def run_agent(self, *args, **kwargs):
        self.agent_runs += 1
        raise AssertionError("no job may run on a board that did not cool down")

    def close(self) -> None:
        pass

    def abort(self, reason: str) -> None:
        raise AssertionError(f"no board's hold is lost in these tests: {reason}")


def test_a_board_that_does_not_cool_down_fails_its_jobs_with_a_named_error(monkeypatch, tmp_path):
    sysfs = tmp_path / "sys"
    zone(sysfs, "thermal_zone0", 71200)
    zone(sysfs, "thermal_zone4", 50000)
    b = board(sysfs_root=str(sysfs), thermal=ThermalSpec(zones=ZONES, cooldown_timeout_s=1e-9))
    job_list = jobs_for(["big", "gpu"], b=b)
    link = HotBoard(sysfs)
    monkeypatch.setattr("orchestrator.board_runner.open_transport", lambda board_, facts: link)
    monkeypatch.setattr("orchestrator.cooldown.POLL_S", 0.0)
    run = Store(tmp_path / "runs").create_run("r1", {"boards": {}})
    progress = SweepProgress(enabled=False)
    progress.start_jobs({"x": len(job_list)})
    acc = SweepOutcome(run)
    BoardRunner(run, b, FACTS, "abc", progress, threading.Event()).run_jobs(job_list, acc)
    message = "x: cool-down: thermal_zone0 at 71.2 °C stayed above 55 °C for 1e-09 s"
    assert acc.quarantined == {"x": message} and link.agent_runs == 0
    assert set(acc.failed) == {j.job_id for j in job_list} and set(acc.failed.values()) == {message}
    quarantined = [r for r in run.journal_records() if r.get("state") == "quarantined"]
    assert quarantined[0]["error"] == "CooldownTimeout"
    assert pd.DataFrame(run.journal_records()).query("state == 'failed'").error.unique().tolist() == ["CooldownTimeout"]


class BuggyBoard(HotBoard):
    """A board whose job raises an error no layer classifies: a bug of ours, not of the board."""

    def run(self, command: str, timeout_s: float = 60.0) -> str:
        if command.startswith("df -Pk"):
            return "/dev/vda 263174212 20000000 5000000 10% /\ntemp thermal_zone0 41200\n"
        return super().run(command, timeout_s)

    def run_agent(self, *args, **kwargs):
        raise TypeError("argument must be an int, or have a fileno() method.")


def test_an_internal_error_quarantines_the_board_and_keeps_its_traceback(monkeypatch, tmp_path):
    sysfs = tmp_path / "sys"
    zone(sysfs, "thermal_zone0", 41200)
    zone(sysfs, "thermal_zone4", 40000)
    b = board(sysfs_root=str(sysfs), thermal=ThermalSpec(zones=ZONES))
    job_list = jobs_for(["big"], b=b)
    monkeypatch.setattr("orchestrator.board_runner.open_transport", lambda board_, facts: BuggyBoard(sysfs))
    run = Store(tmp_path / "runs").create_run("r1", {"boards": {}})
    progress = SweepProgress(enabled=False)
    progress.start_jobs({"x": len(job_list)})
    acc = SweepOutcome(run)
    BoardRunner(run, b, FACTS, "abc", progress, threading.Event()).run_jobs(job_list, acc)
    assert acc.quarantined == {"x": "x: internal error: TypeError: argument must be an int, or have a fileno() "
                                     "method."}
    quarantined = [r for r in run.journal_records() if r.get("state") == "quarantined"]
    assert "in run_agent" in quarantined[0]["traceback"] and "TypeError" in quarantined[0]["traceback"]


def test_after_a_window_that_stayed_cool_the_next_job_needs_no_reading(tmp_path):
    sysfs = tmp_path / "sys"
    zone(sysfs, "thermal_zone0", 41000)
    zone(sysfs, "thermal_zone4", 43500)
    b = board(sysfs_root=str(sysfs))
    link = FakeLink(sysfs)
    run = Store(tmp_path / "runs").create_run("r1", {"boards": {}})
    runner = BoardRunner(run, b, FACTS, "abc", SweepProgress(enabled=False), threading.Event())
    assert runner._cool_down(link) == Cooldown(0.0, {"thermal_zone0": 41.0, "thermal_zone4": 43.5})
    assert len(link.commands) == 1  # the first job: read
    runner._last_window_c = {"thermal_zone0": 50.0, "thermal_zone4": 54.9}  # the last window stayed below 55 °C
    assert runner._cool_down(link) == Cooldown(0.0, {"thermal_zone0": 50.0, "thermal_zone4": 54.9})
    assert len(link.commands) == 1
    assert runner._cool_down(link) is not None and len(link.commands) == 2  # used once: no job since, read
    for last in ({"thermal_zone0": 50.0, "thermal_zone4": 55.0}, {"thermal_zone0": 50.0}):  # hot, or a zone unknown
        runner._last_window_c = last
        runner._cool_down(link)
    assert len(link.commands) == 4

"""Idle power and memory bandwidth kept across sweeps (``orchestrator.board_cache``): reuse, expiry,
invalidation by each input they depend on, and an unreadable cache that is measured again, never a crash."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from orchestrator.analysis.tables import read_columns
from orchestrator.board_cache import CACHE_DIR, MeasurementCache, frequency_command, parse_frequency
from orchestrator.board_runner import BoardRunner, SweepOutcome
from orchestrator.config.experiment import ExperimentsFile
from orchestrator.config.inventory import Board, Component, Lab, MeterSpec, PowerSensorsSpec
from orchestrator.errors import AgentError
from orchestrator.jobs import Member
from orchestrator.planner import plan
from orchestrator.progress import SweepProgress
from orchestrator.provision.runner import BoardFacts
from orchestrator.provision.stamps import STAMPS_FILE
from orchestrator.results.store import Store
from tests.orchestrator.helpers import manifest

T0 = 1_700_000_000.0
IDLE_ROWS = [{"run_id": "r1", "board": "b0", "phase": "start", "source": "meter", "rail": "board", "settle_s": 1.0,
              "duration_s": 3.0, "samples": 30000, "mean_power_w": 2.5}]
MEMBW_ROWS = [{"run_id": "r1", "board": "b0", "component": "big", "kernel": k, "gb_per_s": g}
              for k, g in (("copy", 9.5), ("scale", 9.0), ("add", 10.5), ("triad", 10.25))]
FREQ = {"policy4": ("performance", 200000, 2000000)}


class FakeLink:
    """The board's transport as far as the cache uses it: the frequency files."""

    def __init__(self, freq: dict[str, tuple[str, int, int]] | None = None, fail: bool = False):
        self.freq = dict(FREQ if freq is None else freq)
        self.fail = fail
        self.commands: list[str] = []

    def run(self, command: str, timeout_s: float = 60.0) -> str:
        self.commands.append(command)
        if self.fail:
            raise AgentError("b0: connection dropped")
        lines = []
        for policy, (gov, lo, hi) in self.freq.items():
            base = f"devices/system/cpu/cpufreq/{policy}/scaling_"
            lines += [f"{base}governor:{gov}", f"{base}min_freq:{lo}", f"{base}max_freq:{hi}"]
        return "\n".join(lines) + "\n"


def board(**over: Any) -> Board:
    fields = dict(name="b0", soc="exynos5422", connection="ssh", address="192.0.2.1", work_dir="/w",
                  components=[Component(name="big", cpus=[4, 5], cpufreq_policy="policy4")],
                  meter=MeterSpec(kind="b2900", resource="TCPIP::192.0.2.9::5025::SOCKET"),
                  power_sensors=PowerSensorsSpec(kind="ina231", rails={"a15": "bus/i2c/4-0040"}))
    fields.update(over)
    return Board(**fields)


def facts(kernel: str = "6.1.0-13-arm64") -> BoardFacts:
    return BoardFacts(board="b0", python="python3", agent_dir="/a", agent_version="t", runtime_module="rt",
                      runtime_version="1", arch="armv7l", hostname="b0", usable_cpus=(4, 5), kernel=kernel)


def member(b: Board, name: str = "big") -> Member:
    return Member.of(b.component(name))


def stamp(state: Path, value: str = "s1") -> None:
    (state / STAMPS_FILE).write_text(json.dumps({"b0": {"stamp": value, "models": {}, "t_wall": T0}}))


@pytest.fixture
def state(tmp_path: Path) -> Path:
    d = tmp_path / "state"
    d.mkdir()
    stamp(d)
    return d


def cache(state: Path, b: Board | None = None, f: BoardFacts | None = None, now: float = T0, **over: Any):
    notes: list[str] = []
    settings = dict(idle_s=3.0, idle_settle_s=1.0, membw_mb=32.0, idle_max_age_h=24.0, membw_max_age_h=168.0)
    settings.update(over)
    c = MeasurementCache(state, b or board(), f or facts(), note=notes.append, now=lambda: now, **settings)
    return c, notes


def fill(state: Path, link: FakeLink | None = None, **over: Any) -> None:
    """What a first sweep keeps: the meter's and sensors' idle power and the big cluster's bandwidth."""
    c, notes = cache(state, **over)
    link = link or FakeLink()
    c.store_idle("meter", IDLE_ROWS, "r1", T0, link)
    c.store_idle("sensor", [{**IDLE_ROWS[0], "source": "sensor", "rail": "a15", "mean_power_w": 0.4}], "r1", T0,
                 link)
    c.store_membw(member(board()), MEMBW_ROWS, "r1", T0, link)
    assert not notes


def test_a_second_sweep_reuses_what_the_first_measured(state):
    fill(state)
    c, notes = cache(state, now=T0 + 3600)
    idle = c.idle("meter", FakeLink())
    assert idle is not None and idle.run_id == "r1" and idle.measured_wall == T0 and idle.age_h == pytest.approx(1)
    assert idle.rows == [{k: IDLE_ROWS[0][k] for k in ("source", "rail", "settle_s", "duration_s", "samples",
                                                       "mean_power_w")}]
    assert c.idle("sensor", FakeLink()).rows[0]["mean_power_w"] == 0.4
    bw = c.membw(member(board()), FakeLink())
    assert [(r["kernel"], r["gb_per_s"]) for r in bw.rows] == [(r["kernel"], r["gb_per_s"]) for r in MEMBW_ROWS]
    assert not notes
    line = c.summary()
    assert "idle power (meter, sensor)" in line and "memory bandwidth (big)" in line and "r1 1.0 h ago" in line


def test_the_frequency_setting_is_read_once_per_run(state):
    fill(state)
    c, _ = cache(state)
    link = FakeLink()
    c.idle("meter", link), c.idle("sensor", link), c.membw(member(board()), link)
    assert len(link.commands) == 1 and "grep -H" in link.commands[0]


def test_a_board_without_frequency_domains_costs_no_round_trip(state):
    plain = board(components=[Component(name="big", cpus=[0])])
    assert frequency_command(plain) is None
    c, _ = cache(state, b=plain)
    link = FakeLink()
    c.store_idle("meter", IDLE_ROWS, "r1", T0, link)
    assert c.idle("meter", link) is not None and link.commands == []


def test_frequency_command_and_parsing():
    cmd = frequency_command(board(sysfs_root="/srv/fake sys"))
    assert cmd.startswith("cd '/srv/fake sys' && grep -H . ")
    assert "devices/system/cpu/cpufreq/policy4/scaling_governor" in cmd
    assert parse_frequency(FakeLink().run("x")) == {
        "devices/system/cpu/cpufreq/policy4/scaling_governor": "performance",
        "devices/system/cpu/cpufreq/policy4/scaling_min_freq": "200000",
        "devices/system/cpu/cpufreq/policy4/scaling_max_freq": "2000000"}


@pytest.mark.parametrize("kind, max_age_h, age_h, reused", [
    ("idle", 24.0, 23.9, True), ("idle", 24.0, 24.1, False),
    ("membw", 168.0, 167.0, True), ("membw", 168.0, 169.0, False),
    ("idle", 0.0, 0.0, False), ("membw", 0.0, 0.0, False),
])
def test_expiry(state, kind, max_age_h, age_h, reused):
    fill(state)
    c, notes = cache(state, now=T0 + age_h * 3600, **{f"{kind}_max_age_h": max_age_h})
    got = c.idle("meter", FakeLink()) if kind == "idle" else c.membw(member(board()), FakeLink())
    assert (got is not None) == reused
    if not reused and max_age_h > 0:
        assert notes == [f"b0: {'idle power (meter)' if kind == 'idle' else 'memory bandwidth of big'} measured "
                         f"again: the cached one is {age_h:.1f} h old ({kind}_max_age_h {max_age_h:g})"]


def test_an_entry_dated_in_the_future_is_not_trusted(state):
    fill(state)
    c, notes = cache(state, now=T0 - 3600)
    assert c.idle("meter", FakeLink()) is None and "dated in the future" in notes[0]


def _changed(state: Path, what: str):
    """A cache for the same board with one input changed, and the link to use."""
    link = FakeLink()
    if what == "provisioning":
        stamp(state, "s2")
        return cache(state), link
    if what == "kernel":
        return cache(state, f=facts("6.1.0-14-arm64")), link
    if what == "frequency":
        return cache(state), FakeLink({"policy4": ("schedutil", 200000, 2000000)})
    if what == "meter":
        return cache(state, b=board(meter=MeterSpec(kind="b2900", resource="TCPIP::192.0.2.10::5025::SOCKET"))), link
    if what == "power_sensors":
        return cache(state, b=board(power_sensors=PowerSensorsSpec(kind="ina231", rails={"a15": "bus/i2c/4-0045"}))), \
            link
    if what == "cpus":
        return cache(state, b=board(components=[Component(name="big", cpus=[4, 5, 6, 7],
                                                          cpufreq_policy="policy4")])), link
    return cache(state, **{what: 5.0}), link  # idle_s, idle_settle_s, membw_mb


# input -> (idle of the meter measured again, of the sensors, bandwidth), and what the note says
INVALIDATION = {
    "provisioning": ((True, True, True), "provisioned with other inputs"),
    "kernel": ((True, True, True), "its kernel changed (6.1.0-13-arm64 -> 6.1.0-14-arm64)"),
    "frequency": ((True, True, True), "scaling_governor: performance -> schedutil"),
    "meter": ((True, False, False), "its meter's inventory entry changed"),
    "power_sensors": ((False, True, False), "its sensors' inventory entry changed"),
    "idle_s": ((True, True, False), "idle_s changed (3 -> 5)"),
    "idle_settle_s": ((True, True, False), "idle_settle_s changed (1 -> 5)"),
    "cpus": ((False, False, True), "the component's CPUs changed (4,5 -> 4,5,6,7)"),
    "membw_mb": ((False, False, True), "membw_mb changed (32 -> 5)"),
}


@pytest.mark.parametrize("what", sorted(INVALIDATION))
def test_each_input_invalidates_what_depends_on_it(state, what):
    fill(state)
    (c, notes), link = _changed(state, what)
    expected, said = INVALIDATION[what]
    got = (c.idle("meter", link) is None, c.idle("sensor", link) is None, c.membw(member(c.board), link) is None)
    assert got == expected
    assert notes and all(said in n and "measured again" in n for n in notes), notes


def test_frequency_not_readable_measures_again_and_keeps_nothing(state):
    fill(state)
    c, notes = cache(state)
    down = FakeLink(fail=True)
    assert c.idle("meter", down) is None and "frequency setting not read" in notes[0]
    c.store_idle("meter", [{**IDLE_ROWS[0], "mean_power_w": 9.9}], "r2", T0, down)
    again, _ = cache(state)
    assert again.idle("meter", FakeLink()).rows[0]["mean_power_w"] == 2.5  # the unverifiable figure was not kept


@pytest.mark.parametrize("content", [
    b"{\"format\": 1, \"board\": \"b0\", \"idle\": {\"meter\": {",  # torn write
    b"\x00\xff garbage",
    b"[1, 2, 3]",
    b"{\"format\": 99, \"board\": \"b0\"}",
    b"{\"format\": 1, \"board\": \"b1\"}",
    b"{\"format\": 1, \"board\": \"b0\", \"idle\": [1]}",
])
def test_a_corrupt_cache_file_is_measured_again_with_a_warning(state, content):
    fill(state)
    path = state / CACHE_DIR / "b0.json"
    path.write_bytes(content)
    c, notes = cache(state)
    assert c.idle("meter", FakeLink()) is None and c.membw(member(board()), FakeLink()) is None
    assert len(notes) == 1 and notes[0].startswith("warning: b0: corrupt cache") and str(path) in notes[0]
    # the fresh measurement replaces the file, and the next sweep reuses it
    c.store_idle("meter", IDLE_ROWS, "r2", T0, FakeLink())
    assert cache(state)[0].idle("meter", FakeLink()).run_id == "r2"


@pytest.mark.parametrize("entry", [
    "not a mapping",
    {"key": {}, "run_id": "r1", "measured_wall": T0, "rows": []},
    {"key": {}, "run_id": "r1", "measured_wall": "yesterday", "rows": [{}]},
    {"key": {}, "run_id": "r1", "measured_wall": T0, "rows": [{"source": "meter"}]},
    {"key": {}, "run_id": "r1", "measured_wall": T0, "rows": [{**IDLE_ROWS[0], "mean_power_w": "NaN"}]},
    {"key": {}, "run_id": "r1", "measured_wall": T0, "rows": [{**IDLE_ROWS[0], "mean_power_w": -1.0}]},
])
def test_an_unreadable_entry_is_measured_again_with_a_warning(state, entry):
    fill(state)
    path = state / CACHE_DIR / "b0.json"
    data = json.loads(path.read_text())
    data["idle"]["meter"] = entry
    data["membw"]["big"]["rows"] = data["membw"]["big"]["rows"][:3]  # triad missing
    path.write_text(json.dumps(data))
    c, notes = cache(state)
    assert c.idle("meter", FakeLink()) is None and c.membw(member(board()), FakeLink()) is None
    assert c.idle("sensor", FakeLink()) is not None  # the rest of the file is still used
    assert [n.split(" (")[0] for n in notes] == [
        "warning: b0: unreadable cached idle power", f"warning: b0: unreadable cached memory bandwidth of big in {path}"]


def test_an_unwritable_cache_is_a_warning(state):
    (state / CACHE_DIR).write_text("a file where the folder should be")
    c, notes = cache(state)
    c.store_idle("meter", IDLE_ROWS, "r1", T0, FakeLink())
    assert notes[-1].startswith("warning: b0: could not keep the idle figures")  # after: cannot read it


# -- in the board runner ------------------------------------------------------------------------------------

DF = "/dev/vda 263174212 20000000 5000000 10% /\n"


class SensorBoard:
    """A board with on-board sensors and no meter, answering in this process: idle through the agent's
    ``idle`` command, bandwidth through ``membw``; it counts what it was asked to measure."""

    def __init__(self, idle_w: float = 0.5):
        self.idle_w = idle_w
        self.asked: list[str] = []

    def run(self, command: str, timeout_s: float = 60.0) -> str:
        if " membw " in command:
            self.asked.append("membw")
            return json.dumps({"kernels": {k: {"best_gb_s": 4.0 + i} for i, k in
                                           enumerate(("copy", "scale", "add", "triad"))}}) + "\n"
        return DF if command.startswith("df ") else ""

    def clock_offset(self, probes: int = 8):
        from orchestrator.transport.clock import estimate_offset
        return estimate_offset(time.monotonic_ns, probes)

    def run_agent(self, spec: dict[str, Any], on_event, timeout_s: float, command: str = "run"):
        from orchestrator.transport.agent import AgentOutcome
        assert command == "idle", "no jobs in these runs"
        self.asked.append("idle")
        summary = {"event": "summary", "duration_s": spec["duration_s"],
                   "power": {"rails": {"a15": {"samples": 10, "mean_w": self.idle_w}}}}
        return AgentOutcome(events=[summary])

    def close(self) -> None:
        pass

    def abort(self, reason: str) -> None:
        raise AssertionError(f"no board's hold is lost in these tests: {reason}")


def _board_run(monkeypatch, state: Path, store: Path, run_id: str, link: SensorBoard, **cache_over: Any):
    b = board(meter=None)
    spec = ExperimentsFile.model_validate({
        "experiments": [{"name": "e", "models": ["mobilenet_v1"], "dtypes": ["float32"]}]})
    jobs = plan(spec, Lab(source="inv.yml", boards=[b]), manifest())
    run = Store(store).create_run(run_id, {"boards": {}})
    progress = SweepProgress(enabled=False)
    notes: list[str] = []
    monkeypatch.setattr(progress, "note", notes.append)
    c, _ = cache(state, b=b, now=time.time(), idle_s=0.05, idle_settle_s=0.0, **cache_over)
    c.note = notes.append
    runner = BoardRunner(run, b, facts(), "abc", progress, threading.Event(), idle_s=0.05, membw_mb=32.0,
                         cache=c)
    monkeypatch.setattr("orchestrator.board_runner.open_transport", lambda board, f: link)
    monkeypatch.setattr(runner, "_run_with_retries", lambda *a: None)  # the jobs are not what is tested here
    runner.run_jobs(jobs, SweepOutcome(run))
    return run, notes


def test_the_board_runner_copies_cached_figures_into_the_run(monkeypatch, tmp_path, state):
    first_link = SensorBoard(idle_w=0.5)
    first, _ = _board_run(monkeypatch, state, tmp_path / "runs", "r1", first_link)
    assert first_link.asked == ["idle", "membw", "idle"]  # start idle, bandwidth, end idle
    idle = pd.read_parquet(first.path / "idle")
    assert sorted(idle.phase) == ["end", "start"] and set(idle.measured_run_id) == {"r1"}

    second_link = SensorBoard(idle_w=9.0)  # whatever it would measure now, the cached figure is used
    second, notes = _board_run(monkeypatch, state, tmp_path / "runs", "r2", second_link)
    assert second_link.asked == []  # nothing measured: neither idle (start nor end) nor bandwidth
    idle = pd.read_parquet(second.path / "idle")
    assert idle.phase.tolist() == ["start"] and idle.run_id.tolist() == ["r2"]
    assert idle.measured_run_id.tolist() == ["r1"] and idle.mean_power_w.tolist() == [0.5]
    first_idle = pd.read_parquet(first.path / "idle").set_index("phase")
    assert idle.measured_wall.iloc[0] == first_idle.loc["start", "measured_wall"]
    membw = pd.read_parquet(second.path / "membw")
    assert membw.measured_run_id.tolist() == ["r1"] * 4 and membw.run_id.tolist() == ["r2"] * 4
    assert membw.gb_per_s.tolist() == pd.read_parquet(first.path / "membw").gb_per_s.tolist()
    # the analysis reads the table's own columns as before
    assert read_columns(second, "idle", ["board", "phase", "mean_power_w"]).mean_power_w.tolist() == [0.5]
    assert any("reusing idle power (sensor) and memory bandwidth (big) measured by run r1" in n for n in notes)
    journal = [json.loads(line) for line in (second.path / "journal.jsonl").read_text().splitlines()]
    assert {(e["state"], e.get("cached"), e.get("measured_run_id")) for e in journal} >= {
        ("idle", True, "r1"), ("membw", True, "r1")}

    # 0 h: measured in every run, the figures of this run are its own
    third_link = SensorBoard(idle_w=0.7)
    third, _ = _board_run(monkeypatch, state, tmp_path / "runs", "r3", third_link, idle_max_age_h=0.0,
                          membw_max_age_h=0.0)
    assert third_link.asked == ["idle", "membw", "idle"]
    assert set(pd.read_parquet(third.path / "idle").measured_run_id) == {"r3"}


def test_the_board_runner_survives_a_corrupt_cache(monkeypatch, tmp_path, state):
    (state / CACHE_DIR).mkdir()
    (state / CACHE_DIR / "b0.json").write_text("{ not json")
    link = SensorBoard()
    run, notes = _board_run(monkeypatch, state, tmp_path / "runs", "r1", link)
    assert link.asked == ["idle", "membw", "idle"]
    assert any(n.startswith("warning: b0: corrupt cache") for n in notes), notes
    assert json.loads((state / CACHE_DIR / "b0.json").read_text())["idle"]["sensor"]["run_id"] == "r1"


# -- the experiments file's settings ------------------------------------------------------------------------


def test_max_ages_in_the_experiments_file(write):
    from orchestrator.config.load import load_experiments
    from orchestrator.errors import ConfigError

    body = "version: 1\n{ages}experiments:\n  - {{name: e, models: [m]}}\n"
    spec, _ = load_experiments(write("default.yaml", body.format(ages="")))
    assert (spec.idle_max_age_h, spec.membw_max_age_h) == (24.0, 168.0)
    spec, _ = load_experiments(write("zero.yaml", body.format(ages="idle_max_age_h: 0\nmembw_max_age_h: 0.5\n")))
    assert (spec.idle_max_age_h, spec.membw_max_age_h) == (0.0, 0.5)
    with pytest.raises(ConfigError) as info:
        load_experiments(write("bad.yaml", body.format(ages="idle_max_age_h: -1\nmembw_max_age_h: a week\n")))
    text = "\n".join(info.value.problems)
    assert "bad.yaml:2: idle_max_age_h" in text and "bad.yaml:3: membw_max_age_h" in text, text

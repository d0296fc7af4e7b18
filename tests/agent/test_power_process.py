"""End to end with power sensors: ``python -m device_agent run -`` on a fake sysfs tree driven by a fake driver."""

from __future__ import annotations

import csv
import hashlib

import pytest

from device_agent.affinity import available_cpus
from tests.agent.agent_proc import fixture_model, job_spec, run_spec
from tests.agent.fake_sysfs import FakeDriver, hwmon_dir, ina231_dir, ina231_rel

CPU = 1 if 1 in available_cpus() else min(available_cpus())
PERIOD_S = 0.05
RAIL_W = {"a15": 2.5, "a7": 0.25, "mem": 0.125, "gpu": 0.0625}  # each rail draws a constant power


def constant_power(rail, k):
    """Conversion k of a rail: its constant W, the voltage moving a little, A = W / V."""
    v = 1.0 + 0.001 * (k % 50)
    return (RAIL_W[rail], round(RAIL_W[rail] / v, 6), v)


def fake_tree(root, kind):
    """(sensor folders by rail, the spec's rails)."""
    if kind == "ina231":
        rels = {r: ina231_rel(r) for r in RAIL_W}
        dirs = {r: ina231_dir(root, rel, enable=0, update_period_us=263808) for r, rel in rels.items()}
    else:
        rels = {r: "class/hwmon/hwmon%d" % i for i, r in enumerate(RAIL_W)}
        dirs = {r: hwmon_dir(root, rel, update_interval_ms=int(PERIOD_S * 1000)) for r, rel in rels.items()}
    return dirs, rels


def power_job(tmp_path, kind, rels, **rules):
    power = {"kind": kind, "rails": rels}
    if kind == "ina231":
        power["update_period_us"] = int(PERIOD_S * 1e6)
    return job_spec(
        fixture_model("float32"), tmp_path / "job",
        component={"cpus": [CPU], "name": "cpu%d" % CPU},
        rules=dict({"warmup_runs": 5, "min_count": 50, "min_duration_s": 0.6, "max_duration_s": 10.0}, **rules),
        sysfs_root=str(tmp_path / "sys"), power=power,
    )


def read_power_csv(path):
    with open(str(path), newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["rail", "t_mono_ns", "power_w"]
    return [(r[0], int(r[1]), float(r[2])) for r in rows[1:]]


@pytest.mark.parametrize("kind", ["ina231", "hwmon"])
def test_power_rails_are_sampled_over_the_window(tmp_path, kind):
    dirs, rels = fake_tree(tmp_path / "sys", kind)
    spec = power_job(tmp_path, kind, rels)
    with FakeDriver(dirs, PERIOD_S, constant_power, kind=kind):
        run = run_spec(spec)
    assert run.returncode == 0, run.stderr
    summary = run.events[-1]
    assert summary["event"] == "summary" and summary["verdict"] == "VALID"
    start_ns, end_ns = summary["window"]["start_mono_ns"], summary["window"]["end_mono_ns"]
    duration_s = summary["duration_s"]

    power = summary["power"]
    out = tmp_path / "job" / "power.csv"
    assert set(power) == {"kind", "path", "sha256", "rows", "rails"}
    assert power["kind"] == kind and power["path"] == str(out)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == power["sha256"]
    rows = read_power_csv(out)
    assert len(rows) == power["rows"]
    assert list(power["rails"]) == list(RAIL_W)

    # sampled from right before the window opens to right after it closes: warm-up excluded
    margin_ns = 20 * 10 ** 6
    assert all(start_ns - margin_ns <= t <= end_ns + margin_ns for _, t, _ in rows)
    for rail, watts in RAIL_W.items():
        stats = power["rails"][rail]
        mine = [(t, w) for r, t, w in rows if r == rail]
        assert stats["samples"] == len(mine)
        assert all(w == watts for _, w in mine)
        assert stats["mean_w"] == pytest.approx(watts, rel=1e-9)
        assert stats["energy_j"] == pytest.approx(watts * duration_s, rel=1e-9)
        # one sample per conversion period: never more than elapsed / period + 1
        times = [t for t, _ in mine]
        assert all(b - a >= PERIOD_S * 1e9 for a, b in zip(times, times[1:]))
        assert 0.5 * duration_s / PERIOD_S <= len(mine) <= (times[-1] - times[0]) / 1e9 / PERIOD_S + 1

    if kind == "ina231":  # restored as found
        for d in dirs.values():
            assert (d / "enable").read_text().strip() == "0"
            assert (d / "update_period").read_text().strip() == "263808"


def test_missing_sensor_folder_is_a_spec_error_naming_the_rail(tmp_path):
    dirs, rels = fake_tree(tmp_path / "sys", "ina231")
    rels["gpu"] = "bus/i2c/drivers/INA231/3-0046"  # no such sensor
    run = run_spec(power_job(tmp_path, "ina231", rels))
    assert run.returncode == 2, run.stderr
    assert len(run.events) == 1
    error = run.events[0]
    assert error["event"] == "error" and error["error"] == "SpecError" and error["retryable"] is False
    assert "power.rails.gpu: sensor folder not found" in error["message"]
    assert "3-0046" in error["message"]
    assert all((d / "enable").read_text().strip() == "0" for d in dirs.values())  # nothing touched


def test_sensor_that_never_converts_is_an_error_not_zeros(tmp_path):
    dirs, rels = fake_tree(tmp_path / "sys", "ina231")  # no driver: the values stay zero
    run = run_spec(power_job(tmp_path, "ina231", rels, warmup_runs=0, min_count=1, min_duration_s=0.2))
    assert run.returncode == 2, run.stderr
    error = run.events[-1]
    assert error["event"] == "error" and error["error"] == "SysfsError" and error["retryable"] is False
    assert "power.rails.a15: no conversion read during the window" in error["message"]
    assert not any(e["event"] == "summary" for e in run.events)
    assert not (tmp_path / "job" / "power.csv").exists()
    for d in dirs.values():  # restored on error too
        assert (d / "enable").read_text().strip() == "0"
        assert (d / "update_period").read_text().strip() == "263808"


def idle_spec(tmp_path, rels, duration_s=0.5, **over):
    spec = {"spec_version": 1, "job_id": "idle-b1", "duration_s": duration_s, "output_dir": str(tmp_path / "idle"),
            "sysfs_root": str(tmp_path / "sys"),
            "power": {"kind": "ina231", "rails": rels, "update_period_us": int(PERIOD_S * 1e6)}}
    spec.update(over)
    return spec


def test_idle_samples_the_sensors_with_nothing_running(tmp_path):
    import json

    from tests.agent.agent_proc import run_agent

    dirs, rels = fake_tree(tmp_path / "sys", "ina231")
    with FakeDriver(dirs, PERIOD_S, constant_power, kind="ina231"):
        run = run_agent("idle", "-", stdin=json.dumps(idle_spec(tmp_path, rels)))
    assert run.returncode == 0, run.stderr
    started, summary = run.events
    assert started["event"] == "started" and summary["event"] == "summary"
    assert summary["duration_s"] >= 0.5
    power = summary["power"]
    assert hashlib.sha256((tmp_path / "idle" / "power.csv").read_bytes()).hexdigest() == power["sha256"]
    for rail, watts in RAIL_W.items():
        assert power["rails"][rail]["mean_w"] == pytest.approx(watts, rel=1e-9)
        assert power["rails"][rail]["samples"] >= 0.5 * 0.5 / PERIOD_S
    assert all((d / "enable").read_text().strip() == "0" for d in dirs.values())  # restored


@pytest.mark.parametrize("over, needle", [
    ({"duration_s": 0}, "duration_s: must be > 0"),
    ({"power": None}, "power: must be an object"),
    ({"extra": 1}, "extra: unknown"),
])
def test_bad_idle_spec_is_a_spec_error(tmp_path, over, needle):
    import json

    from tests.agent.agent_proc import run_agent

    _, rels = fake_tree(tmp_path / "sys", "ina231")
    run = run_agent("idle", "-", stdin=json.dumps(idle_spec(tmp_path, rels, **over)))
    assert run.returncode == 2 and run.events[-1]["error"] == "SpecError", run.stdout + run.stderr
    assert needle in run.events[-1]["message"]

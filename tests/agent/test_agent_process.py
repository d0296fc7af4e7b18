"""End to end: ``python -m device_agent run -`` on the real tiny models."""

from __future__ import annotations

import csv
import hashlib
import json

import pytest

from device_agent.affinity import available_cpus
from tests.agent.agent_proc import fixture_model, job_spec, run_agent, run_spec, sigterm_after

COMMON = ("v", "event", "job_id", "t_mono_ns", "t_wall_ns")
CPU = 1 if 1 in available_cpus() else min(available_cpus())


def check_common(events, job_id):
    for e in events:
        assert e["v"] == 1 and e["job_id"] == job_id
        assert all(isinstance(e[k], int) for k in ("t_mono_ns", "t_wall_ns"))
    monos = [e["t_mono_ns"] for e in events]
    assert monos == sorted(monos)


def read_trace(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["index", "start_mono_ns", "end_mono_ns"]
    return [tuple(int(x) for x in r) for r in rows[1:]]


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_run_on_tiny_model(tmp_path, dtype):
    model = fixture_model(dtype)
    out = tmp_path / "job"  # does not exist yet: the agent creates it
    spec = job_spec(model, out, component={"cpus": [CPU], "name": "cpu%d" % CPU})
    run = run_spec(spec)
    assert run.returncode == 0, run.stderr
    events = run.events  # every stdout line is a JSON object
    kinds = [e["event"] for e in events]
    assert kinds[0] == "started" and kinds[-1] == "summary"
    assert set(kinds[1:-1]) <= {"progress"} and len(kinds) >= 3
    check_common(events, "test-run/0001")

    started, summary = events[0], events[-1]
    assert started["runtime"]["module"] == "ai_edge_litert"
    assert started["model"] == {"path": model["path"], "sha256": model["sha256"],
                                "input_shape": model["input_shape"], "input_dtype": model["input_dtype"]}
    assert started["cpus_effective"] == [CPU] and started["threads"] == 1
    assert started["component"] == {"name": "cpu%d" % CPU, "kind": "cpu", "cpus": [CPU], "threads": 1}

    progress = [e for e in events if e["event"] == "progress"]
    assert all(p["phase"] in ("warmup", "measure") for p in progress)
    assert len(progress) < 100  # rate-limited, not one per inference

    assert summary["verdict"] == "VALID" and summary["reasons"] == []
    assert summary["count"] >= 50 and summary["warmup_runs"] == 5
    assert summary["duration_s"] >= 0.5
    assert summary["throughput_ips"] > 0
    assert summary["throughput_ips"] == pytest.approx(summary["count"] / summary["duration_s"])
    w = summary["window"]
    assert w["end_mono_ns"] - w["start_mono_ns"] == round(summary["duration_s"] * 1e9)
    assert w["end_wall_ns"] - w["start_wall_ns"] == w["end_mono_ns"] - w["start_mono_ns"]
    assert started["t_mono_ns"] <= w["start_mono_ns"] < w["end_mono_ns"] <= summary["t_mono_ns"]
    lat = summary["latency_ms"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]

    trace = summary["trace"]
    assert trace["path"] == str(out / "trace.csv") and trace["rows"] == summary["count"]
    assert hashlib.sha256((out / "trace.csv").read_bytes()).hexdigest() == trace["sha256"]
    rows = read_trace(out / "trace.csv")
    assert len(rows) == summary["count"]
    assert [r[0] for r in rows] == list(range(len(rows)))
    for (_, s0, e0), (_, s1, e1) in zip(rows, rows[1:]):
        assert s0 < e0 <= s1 < e1
    assert rows[0][1] == w["start_mono_ns"] and rows[-1][2] == w["end_mono_ns"]


def test_max_duration_reached_gives_invalid_summary(tmp_path):
    spec = job_spec(fixture_model("float32"), tmp_path,
                    rules={"warmup_runs": 0, "min_count": 10 ** 9, "min_duration_s": 0.2, "max_duration_s": 0.3})
    run = run_spec(spec)
    assert run.returncode == 0, run.stderr
    summary = run.events[-1]
    assert summary["event"] == "summary" and summary["verdict"] == "INVALID"
    assert summary["reasons"] == ["min_count not met: %d < 1000000000 within max_duration_s=0.3" % summary["count"]]
    assert summary["trace"]["rows"] == summary["count"] > 0


def assert_single_error(run, error, field_or_text, job_id="test-run/0001", exit_code=2):
    assert run.returncode == exit_code, run.stderr
    events = run.events
    assert len(events) == 1, run.stdout
    e = events[0]
    assert e["event"] == "error" and e["error"] == error and e["job_id"] == job_id
    assert e["retryable"] is (exit_code == 3)
    assert field_or_text in e["message"]
    assert all(k in e for k in COMMON)
    return e


def test_negative_min_count_is_one_error_event_and_exit_2(tmp_path):
    spec = job_spec(fixture_model("float32"), tmp_path, rules={"min_count": -3})
    assert_single_error(run_spec(spec), "SpecError", "rules.min_count")


def test_missing_model_exits_2(tmp_path):
    model = dict(fixture_model("float32"), path=str(tmp_path / "gone.tflite"))
    assert_single_error(run_spec(job_spec(model, tmp_path)), "SpecError", "model.path")


def test_checksum_mismatch_exits_2(tmp_path):
    model = dict(fixture_model("float32"), sha256="0" * 64)
    assert_single_error(run_spec(job_spec(model, tmp_path)), "SpecError", "model.sha256")


def test_cpu_not_present_exits_2(tmp_path):
    absent = max(available_cpus()) + 1000
    spec = job_spec(fixture_model("float32"), tmp_path, component={"cpus": [absent]})
    assert_single_error(run_spec(spec), "SpecError", "component.cpus")


def test_invalid_json_on_stdin_exits_2():
    e = assert_single_error(run_agent("run", "-", stdin="{not json"), "SpecError", "invalid JSON", job_id=None)
    assert "stdin" in e["message"]


def test_spec_file_argument(tmp_path):
    spec_path = tmp_path / "spec.json"
    spec = job_spec(fixture_model("int8"), tmp_path / "out",
                    rules={"warmup_runs": 0, "min_count": 5, "min_duration_s": 0.05, "max_duration_s": 5.0})
    spec_path.write_text(json.dumps(spec))
    run = run_agent("run", str(spec_path))
    assert run.returncode == 0, run.stderr
    assert run.events[-1]["event"] == "summary"
    assert_single_error(run_agent("run", str(tmp_path / "nope.json")), "SpecError", "cannot read", job_id=None)


def test_usage_errors_exit_2():
    run = run_agent("frobnicate")
    assert run.returncode == 2 and run.stdout == ""


def test_version_command():
    run = run_agent("version")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 1
    info = json.loads(lines[0])
    # the runtime, numpy and Python versions, and the self-check model's output (test_runtime_selfcheck.py)
    assert set(info) == {"agent_version", "runtime", "numpy", "python", "self_check"}
    assert info["runtime"]["module"] == "ai_edge_litert"


def test_sigterm_during_measurement_is_a_retryable_error(tmp_path):
    spec = job_spec(fixture_model("float32"), tmp_path,
                    rules={"warmup_runs": 0, "min_count": 1, "min_duration_s": 20.0, "max_duration_s": 30.0})
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    events, code = sigterm_after(["run", str(spec_path)], "", ["started"])
    assert events[-1]["event"] == "error" and events[-1]["error"] == "Interrupted"
    assert events[-1]["retryable"] is True
    assert code == 3

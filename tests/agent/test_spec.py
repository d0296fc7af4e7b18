from __future__ import annotations

import copy
import hashlib

import pytest

from device_agent.affinity import available_cpus, check_cpus
from device_agent.errors import SpecError
from device_agent.modelfile import verify_model_file
from device_agent.spec import DEFAULT_INPUT_SEED, DEFAULT_PROGRESS_INTERVAL_S, parse_spec

BASE = {
    "spec_version": 1,
    "job_id": "r20261125-1a2b/0003",
    "model": {"path": "/var/tmp/m.tflite", "sha256": "9f" * 32},
    "component": {"name": "cpu1", "kind": "cpu", "cpus": [1], "threads": 1},
    "rules": {"warmup_runs": 5, "min_count": 50, "min_duration_s": 2.0, "max_duration_s": 30.0},
    "input_seed": 0,
    "output_dir": "/var/tmp/socfarm/jobs/x",
    "progress_interval_s": 0.5,
}


def spec_with(path, value):
    """A copy of BASE with ``a.b`` set to value (or removed when value is DELETE)."""
    raw = copy.deepcopy(BASE)
    *parents, leaf = path.split(".")
    node = raw
    for p in parents:
        node = node[p]
    if value is DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return raw


DELETE = object()


def test_valid_spec_parses():
    spec = parse_spec(copy.deepcopy(BASE))
    assert spec.job_id == "r20261125-1a2b/0003"
    assert spec.component.cpus == (1,) and spec.component.threads == 1
    assert spec.rules.min_count == 50 and spec.rules.max_duration_s == 30.0
    assert spec.model.sha256 == "9f" * 32


def test_optional_fields_default():
    raw = copy.deepcopy(BASE)
    del raw["input_seed"], raw["progress_interval_s"], raw["model"]["sha256"], raw["component"]["threads"]
    raw["component"]["cpus"] = [0, 1]
    spec = parse_spec(raw)
    assert spec.input_seed == DEFAULT_INPUT_SEED
    assert spec.progress_interval_s == DEFAULT_PROGRESS_INTERVAL_S
    assert spec.model.sha256 is None
    assert spec.component.threads == 2  # default = number of cpus


def test_integer_durations_are_accepted_as_seconds():
    spec = parse_spec(spec_with("rules.min_duration_s", 2))
    assert spec.rules.min_duration_s == 2.0 and isinstance(spec.rules.min_duration_s, float)


@pytest.mark.parametrize(
    "path, value, field, words",
    [
        ("rules.min_count", -5, "rules.min_count", ">= 1"),
        ("rules.min_count", 0, "rules.min_count", ">= 1"),
        ("rules.warmup_runs", -1, "rules.warmup_runs", ">= 0"),
        ("rules.min_duration_s", 0, "rules.min_duration_s", "> 0"),
        ("rules.min_duration_s", -1.5, "rules.min_duration_s", "> 0"),
        ("rules.max_duration_s", 0.0, "rules.max_duration_s", "> 0"),
        ("rules.max_duration_s", 1.0, "rules.max_duration_s", ">= rules.min_duration_s"),
        ("rules.min_duration_s", float("nan"), "rules.min_duration_s", "finite"),
        ("rules.min_count", 5.0, "rules.min_count", "integer"),
        ("rules.min_count", "50", "rules.min_count", "integer"),
        ("rules.min_count", True, "rules.min_count", "integer"),
        ("rules.min_duration_s", "2", "rules.min_duration_s", "number"),
        ("rules.min_count", DELETE, "rules.min_count", "missing"),
        ("rules.extra", 1, "rules.extra", "unknown key"),
        ("surprise", 1, "surprise", "unknown key"),
        ("component.affinity", [1], "component.affinity", "unknown key"),
        ("job_id", DELETE, "job_id", "missing"),
        ("job_id", "", "job_id", "empty"),
        ("job_id", 3, "job_id", "string"),
        ("model", DELETE, "model", "missing"),
        ("model", "m.tflite", "model", "object"),
        ("model.path", DELETE, "model.path", "missing"),
        ("model.sha256", "xyz", "model.sha256", "64 hex"),
        ("component.kind", "npu", "component.kind", "one of"),
        ("component.cpus", [], "component.cpus", "non-empty"),
        ("component.cpus", [1, 1], "component.cpus", "duplicate"),
        ("component.cpus", [-1], "component.cpus[0]", ">= 0"),
        ("component.cpus", 1, "component.cpus", "array"),
        ("component.threads", 0, "component.threads", ">= 1"),
        ("input_seed", -1, "input_seed", ">= 0"),
        ("progress_interval_s", 0, "progress_interval_s", "> 0"),
        ("spec_version", 2, "spec_version", "must be 1"),
        ("output_dir", None, "output_dir", "string"),
    ],
)
def test_bad_field_is_a_spec_error_naming_the_field(path, value, field, words):
    with pytest.raises(SpecError) as info:
        parse_spec(spec_with(path, value))
    message = str(info.value)
    assert field + ":" in message
    assert words in message
    assert not info.value.retryable and info.value.exit_code == 2


def test_every_problem_is_reported_at_once():
    raw = spec_with("rules.min_count", -1)
    raw["rules"]["min_duration_s"] = -2
    raw["bogus"] = 1
    message = str(pytest.raises(SpecError, parse_spec, raw).value)
    for field in ("rules.min_count", "rules.min_duration_s", "bogus"):
        assert field + ":" in message


def test_spec_must_be_an_object():
    with pytest.raises(SpecError, match="spec: must be a JSON object"):
        parse_spec([1, 2])


def test_cpu_that_does_not_exist_is_a_spec_error():
    missing = max(available_cpus()) + 1000
    with pytest.raises(SpecError, match=r"component\.cpus: .*\[%d\] not available" % missing):
        check_cpus([0, missing])
    check_cpus(sorted(available_cpus()))  # no error


def test_missing_model_file_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError, match=r"model\.path: model file not found"):
        verify_model_file(str(tmp_path / "absent.tflite"), None)


def test_sha256_mismatch_is_a_spec_error(tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(b"not really a model")
    actual = hashlib.sha256(b"not really a model").hexdigest()
    assert verify_model_file(str(path), actual) == actual
    assert verify_model_file(str(path), None) == actual
    with pytest.raises(SpecError, match=r"model\.sha256: checksum mismatch .*expected 0{64}, file has %s" % actual):
        verify_model_file(str(path), "0" * 64)

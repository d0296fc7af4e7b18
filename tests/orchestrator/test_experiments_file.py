"""Experiments YAML: valid files load; every error names file, line and field."""

from __future__ import annotations

import pytest

from orchestrator.config.load import load_experiments
from orchestrator.errors import ConfigError

VALID = """
version: 1
zoo: models
rules:
  warmup_runs: 2
  min_count: 10
  min_duration_s: 1.0
  max_duration_s: 5.0
experiments:
  - name: iso
    models: [mobilenet_v1, squeezenet]
    dtypes: [float32]
    components: [cpu0]
    repeats: 2
"""


def problems_of(write, text: str) -> str:
    path = write("exp.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_experiments(path)
    return str(info.value)


def test_valid_file_loads_with_defaults(write):
    spec, doc = load_experiments(write("exp.yaml", VALID))
    exp = spec.experiments[0]
    assert exp.boards == ["all"]
    assert exp.repeats == 2
    assert spec.rules.min_count == 10
    assert exp.rules is None
    assert doc.line_of(("experiments", 0, "models")) == 10


def test_malformed_yaml_names_file_and_line(write):
    text = "version: 1\nexperiments:\n  - name: a\n    models: [x, y\n"
    msg = problems_of(write, text)
    assert "malformed YAML" in msg
    assert "exp.yaml:5" in msg or "exp.yaml:4" in msg


def test_unknown_key_is_an_error_at_its_line(write):
    msg = problems_of(write, VALID.replace("    repeats: 2", "    repeats: 2\n    repeets: 3"))
    assert "exp.yaml:14: experiments.0.repeets: unknown key" in msg


def test_negative_count_names_line_and_field(write):
    msg = problems_of(write, VALID.replace("min_count: 10", "min_count: -4"))
    assert "exp.yaml:5: rules.min_count" in msg
    assert "greater than 0" in msg


def test_max_below_min_duration(write):
    msg = problems_of(write, VALID.replace("max_duration_s: 5.0", "max_duration_s: 0.5"))
    assert "exp.yaml:3: rules" in msg
    assert "max_duration_s (0.5) must be >= min_duration_s (1.0)" in msg


def test_wrong_type_and_unknown_dtype(write):
    msg = problems_of(write, VALID.replace("repeats: 2", "repeats: many").replace("[float32]", "[float16]"))
    assert "exp.yaml:11: experiments.0.dtypes.0" in msg
    assert "exp.yaml:13: experiments.0.repeats" in msg


def test_duplicate_key_is_rejected(write):
    msg = problems_of(write, VALID.replace("zoo: models", "zoo: models\nzoo: other"))
    assert "exp.yaml:3: zoo: duplicate key" in msg


def test_missing_experiments_and_empty_models(write):
    assert "experiments: Field required" in problems_of(write, "version: 1\n")
    msg = problems_of(write, VALID.replace("[mobilenet_v1, squeezenet]", "[]"))
    assert "exp.yaml:10: experiments.0.models" in msg


def test_duplicate_model_in_list(write):
    msg = problems_of(write, VALID.replace("[mobilenet_v1, squeezenet]", "[squeezenet, squeezenet]"))
    assert "exp.yaml:10: experiments.0.models: Value error, model 'squeezenet' listed twice" in msg


def test_top_level_must_be_a_mapping(write):
    assert "expected a mapping" in problems_of(write, "- a\n- b\n")


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_experiments(tmp_path / "nope.yaml")


def test_the_readme_example_is_a_valid_experiments_file(write):
    """The annotated example in the README is what users copy: it must load as it stands."""
    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Experiments file"):]
    example = section[section.index("```yaml\n") + len("```yaml\n"):section.index("\n```", section.index("```yaml"))]
    spec, _ = load_experiments(write("readme.yaml", example + "\n"))
    assert spec.membw_mb == 32 and spec.idle_s == 3.0
    exp = spec.experiments[0]
    assert exp.name == "isolated-cpu" and exp.frequencies == ["max"] and exp.rules.min_count == 50

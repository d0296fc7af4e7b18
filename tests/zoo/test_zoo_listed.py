"""Models listed by path in an experiments file: checked at planning, named by their zoo name in jobs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from orchestrator.config.load import load_experiments
from orchestrator.errors import ConfigError
from orchestrator.planner import plan
from orchestrator.zoo.add import commit, current_manifest, merged
from orchestrator.zoo.listed import check_listed
from orchestrator.zoo.manifest import load_manifest, verify_files
from tests.conftest import FIXTURE_ZOO
from tests.orchestrator.helpers import lab
from tests.zoo.zoo_helpers import ADD, with_one_weight_changed

@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """An experiments folder: the fixture zoo in zoo/, and a user's own models in own/."""
    shutil.copytree(FIXTURE_ZOO, tmp_path / "zoo")
    (tmp_path / "own").mkdir()
    for name in ("tiny_uint8.tflite", "tiny_custom_op.tflite", "tiny_float16_input.tflite",
                 "tiny_dynamic_batch.tflite"):
        shutil.copy(ADD / name, tmp_path / "own" / name)
    return tmp_path


def planned(folder: Path, write, text: str):
    path = write("exp.yaml", text)
    spec, doc = load_experiments(path)
    spec, adding = check_listed(spec, doc.where, path.parent, folder / "zoo")
    manifest = merged(current_manifest(folder / "zoo"), adding)
    return plan(spec, lab(), manifest, doc.where), adding


def zoo_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (folder / "zoo").iterdir() if p.name != ".manifest.lock"}


def test_a_path_is_planned_under_its_zoo_name_and_added_only_on_commit(folder, write):
    before = zoo_files(folder)
    jobs, adding = planned(folder, write, """
        version: 1
        zoo: zoo
        experiments:
          - name: mine
            models: [tiny_cnn, ./own/tiny_uint8.tflite]
            components: [cpu0]
    """)
    # the built network in float32 and int8 (the default), the added one in its own dtype
    assert [(j.model, j.dtype) for j in jobs] == [("tiny_cnn", "float32"), ("tiny_cnn", "int8"),
                                                  ("tiny_uint8", "uint8")]
    assert "-tiny_uint8-uint8-" in jobs[2].job_id
    assert jobs[2].model_file == "tiny_uint8_uint8.tflite" and jobs[2].input_shape == (1, 16, 16, 3)
    assert zoo_files(folder) == before  # planning wrote nothing
    manifest = commit(folder / "zoo", adding)
    entry = manifest.find("tiny_uint8", "uint8")
    assert entry.source == str(folder / "own" / "tiny_uint8.tflite")
    assert load_manifest(folder / "zoo" / "manifest.json") == manifest
    assert verify_files(manifest, folder / "zoo") == []
    # planning again: the file is already there, nothing changes
    jobs_again, adding_again = planned(folder, write, """
        version: 1
        zoo: zoo
        experiments:
          - name: mine
            models: [tiny_cnn, ./own/tiny_uint8.tflite]
            components: [cpu0]
    """)
    assert [a.status for a in adding_again] == ["present"]
    assert [j.job_id for j in jobs_again] == [j.job_id for j in jobs]


def test_refusals_name_the_experiments_line_the_file_and_the_op_or_tensor(folder, write):
    before = zoo_files(folder)
    with pytest.raises(ConfigError) as exc:
        planned(folder, write, """
            version: 1
            zoo: zoo
            experiments:
              - name: mine
                models:
                  - tiny_cnn
                  - ./own/tiny_custom_op.tflite
                  - ./own/tiny_float16_input.tflite
                  - ./own/missing.tflite
        """)
    problems = exc.value.problems
    exp = folder / "exp.yaml"
    assert problems[0].startswith(f"{exp}:7: experiments.0.models.1: {folder / 'own' / 'tiny_custom_op.tflite'}: "
                                  "custom op 'SocfarmTestOnlyOp'")
    assert problems[1].startswith(f"{exp}:8: experiments.0.models.2: {folder / 'own' / 'tiny_float16_input.tflite'}"
                                  ": input tensor 'serving_default_image_fp16:0' (index 0) is float16")
    assert problems[2] == f"{exp}:9: experiments.0.models.3: {folder / 'own' / 'missing.tflite'}: file not found"
    assert len(problems) == 3
    assert zoo_files(folder) == before


def test_explicit_dtypes_must_include_the_added_models_dtype(folder, write):
    with pytest.raises(ConfigError, match=r"exp.yaml:5: experiments.0.models.0: model 'tiny_uint8' \(float32\) "
                                          r"is not in the zoo \(it has tiny_uint8 in uint8 only\)"):
        planned(folder, write, """
            version: 1
            zoo: zoo
            experiments:
              - name: mine
                models: [./own/tiny_uint8.tflite]
                dtypes: [float32]
        """)
    jobs, _ = planned(folder, write, """
        version: 1
        zoo: zoo
        experiments:
          - name: mine
            models: [./own/tiny_uint8.tflite]
            dtypes: [uint8]
            components: [cpu1]
    """)
    assert [(j.model, j.dtype, j.component) for j in jobs] == [("tiny_uint8", "uint8", "cpu1")]


def test_rules_may_name_the_path_too(folder, write):
    jobs, _ = planned(folder, write, """
        version: 1
        zoo: zoo
        experiments:
          - name: mine
            models: [./own/tiny_uint8.tflite, ./own/tiny_dynamic_batch.tflite]
            exclude: [{models: [./own/tiny_uint8.tflite], components: [cpu1]}]
    """)
    assert sorted((j.model, j.component) for j in jobs) == [
        ("tiny_dynamic_batch", "cpu0"), ("tiny_dynamic_batch", "cpu1"), ("tiny_uint8", "cpu0")]


def test_two_files_that_would_share_a_name_are_refused(folder, write):
    (folder / "other").mkdir()
    with_one_weight_changed(ADD / "tiny_uint8.tflite", folder / "other" / "tiny_uint8.tflite")
    with pytest.raises(ConfigError, match="would both be tiny_uint8 .uint8. in the zoo"):
        planned(folder, write, """
            version: 1
            zoo: zoo
            experiments:
              - name: a
                models: [./own/tiny_uint8.tflite]
              - name: b
                models: [./other/tiny_uint8.tflite]
        """)


def test_paths_into_a_zoo_folder_that_does_not_exist_yet(tmp_path, write):
    shutil.copy(ADD / "tiny_uint8.tflite", tmp_path / "net.tflite")
    path = write("exp.yaml", """
        version: 1
        zoo: new-zoo
        experiments:
          - name: mine
            models: [net.tflite]
    """)
    spec, doc = load_experiments(path)
    spec, adding = check_listed(spec, doc.where, tmp_path, tmp_path / "new-zoo")
    assert spec.experiments[0].models == ["net"]
    assert not (tmp_path / "new-zoo").exists()
    manifest = commit(tmp_path / "new-zoo", adding)
    assert [(e.name, e.dtype) for e in manifest.models] == [("net", "uint8")]

"""`zoo add`: a model someone brings is checked, analysed and recorded, or refused naming the op or tensor.

Fixtures: the tiny files of tests/fixtures/zoo_add (made by tests/fixtures/make_zoo_add_fixtures.py) and
two real models from the mediapipe wheel on PyPI (tests/conftest.py: ``mediapipe_models``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from orchestrator.analysis.model_info import analyze
from orchestrator.cli import main as cli_main
from orchestrator.zoo import litert_check as litert_check_mod
from orchestrator.zoo.add import add_models, check_files
from orchestrator.zoo.litert_check import litert_check
from orchestrator.zoo.manifest import load_manifest, verify_files
from orchestrator.zoo.tflite_stats import model_stats
from orchestrator.zoo.validate import ModelRefused, inspect_model
from tests.conftest import FIXTURE_ZOO
from tests.zoo.zoo_helpers import ADD, sha256, snapshot, with_one_weight_changed


@pytest.fixture
def zoo(tmp_path: Path) -> Path:
    """A zoo with entries already in it: a copy of the committed fixture zoo (tiny_cnn float32 + int8)."""
    dest = tmp_path / "zoo"
    shutil.copytree(FIXTURE_ZOO, dest)
    return dest


# --------------------------------------------------------------------------- accepted


def test_uint8_model_added_with_sha256_macs_and_source(zoo):
    before = load_manifest(zoo / "manifest.json")
    src = ADD / "tiny_uint8.tflite"
    (added,) = add_models(zoo, [src])
    assert added.status == "added"
    e = added.entry
    assert (e.name, e.dtype, e.input_dtype, e.input_shape) == ("tiny_uint8", "uint8", "uint8", [1, 16, 16, 3])
    assert e.sha256 == sha256(src) and e.bytes == src.stat().st_size
    stats, info = model_stats(src), analyze(src)
    # two 16x16 -> 8x8x4 conv 3x3 (864 MACs x 8), 1x1 conv 8x8x4 -> 8 (2048), dense 8 -> 4 (32)
    assert e.macs == stats.macs == info.macs == 8 * 8 * 4 * 27 + 8 * 8 * 8 * 4 + 8 * 4
    assert e.params == stats.params and e.flops == info.flops
    assert e.param_dtypes == {"int8": 172, "int32": 12}  # quantized weights and int32 biases
    assert e.source == str(src.resolve())
    assert "loaded and invoked" in e.litert_check
    # recorded next to what was there, the file copied under the zoo's naming
    after = load_manifest(zoo / "manifest.json")
    assert after.models[:2] == before.models
    assert after.find("tiny_uint8", "uint8") == e and e.file == "tiny_uint8_uint8.tflite"
    assert verify_files(after, zoo) == []


def test_third_party_model_added(zoo, mediapipe_models):
    face = mediapipe_models["face_detection_short_range"]
    (added,) = add_models(zoo, [face.path], source=face.source)
    e = added.entry
    assert (e.name, e.dtype, e.input_shape) == ("face_detection_short_range", "float32", [1, 128, 128, 3])
    assert e.sha256 == face.sha256 and e.source.startswith("PyPI mediapipe==0.10.14")
    assert e.macs == model_stats(face.path).macs == 30_760_960
    assert e.param_dtypes == {"float16": e.params}  # float16 weights, float32 input and output
    assert load_manifest(zoo / "manifest.json").find(e.name, "float32") == e


def test_dynamic_batch_is_measured_at_the_stored_batch(zoo):
    (added,) = add_models(zoo, [ADD / "tiny_dynamic_batch.tflite"], name="batchy")
    assert added.entry.name == "batchy" and added.entry.input_shape == [1, 16, 16, 3]
    assert any("dynamic batch" in n and "[-1, 16, 16, 3]" in n for n in added.inspection.notes)


def test_same_file_again_changes_nothing_and_another_file_needs_replace(zoo):
    add_models(zoo, [ADD / "tiny_uint8.tflite"], name="mine")
    files = snapshot(zoo)
    (again,) = add_models(zoo, [ADD / "tiny_uint8.tflite"], name="mine")
    assert again.status == "present" and snapshot(zoo) == files
    # a float32 file may share the name (another dtype), like the built networks do
    (f32,) = add_models(zoo, [ADD / "tiny_dynamic_batch.tflite"], name="mine")
    assert f32.entry.dtype == "float32"
    assert load_manifest(zoo / "manifest.json").dtypes_of("mine") == ["uint8", "float32"]


def test_replace_needs_to_be_asked_for(tmp_path, zoo):
    add_models(zoo, [ADD / "tiny_dynamic_batch.tflite"], name="net")
    files = snapshot(zoo)
    # same architecture, other weights: the file with one weight byte changed
    second = with_one_weight_changed(ADD / "tiny_dynamic_batch.tflite", tmp_path / "net.tflite")
    with pytest.raises(ModelRefused, match=r"already has net \(float32\).*--replace"):
        add_models(zoo, [second])
    assert snapshot(zoo) == files
    (replaced,) = add_models(zoo, [second], replace=True)
    assert replaced.status == "replaced"
    manifest = load_manifest(zoo / "manifest.json")
    assert manifest.find("net", "float32").sha256 == sha256(second)
    assert verify_files(manifest, zoo) == []


# --------------------------------------------------------------------------- refused, the zoo untouched


REFUSED = [
    ("tiny_custom_op.tflite", r"custom op 'SocfarmTestOnlyOp' \(operator 2 of subgraph 0\)"),
    ("tiny_float16_input.tflite", r"input tensor 'serving_default_image_fp16:0' \(index 0\) is float16"),
    ("tiny_dynamic_hw.tflite",
     r"input tensor 'serving_default_any_size_image:0' \(index 0\) has a dynamic shape: "
     r"shape_signature \[1, -1, -1, 3\] leaves dimension\(s\) 1, 2 open"),
    ("tiny_two_inputs.tflite", r"2 input tensors \(tensor 'serving_default_left:0'.*'serving_default_right:0'"),
    ("tiny_future_op_version.tflite",
     r"refused by LiteRT on the controller: .*loading failed: .*CONV_2D.*version.*99"),
]


@pytest.mark.parametrize("name, message", REFUSED)
def test_refused_naming_the_file_and_the_op_or_tensor(zoo, name, message):
    files = snapshot(zoo)
    with pytest.raises(ModelRefused) as exc:
        add_models(zoo, [ADD / name])
    (problem,) = exc.value.problems
    assert problem.startswith(f"{ADD / name}: ")
    assert re.search(message, problem), problem
    assert snapshot(zoo) == files  # manifest and files as they were


def test_real_custom_op_model_refused_with_the_op_name(zoo, mediapipe_models):
    selfie = mediapipe_models["selfie_segmentation"]
    files = snapshot(zoo)
    with pytest.raises(ModelRefused) as exc:
        add_models(zoo, [selfie.path])
    (problem,) = exc.value.problems
    assert f"{selfie.path}: custom op 'Convolution2DTransposeBias' (operator 244 of subgraph 0)" in problem
    assert snapshot(zoo) == files


GARBAGE = {
    "text.tflite": b"this is not a model\n" * 10,
    "random.tflite": np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
    "empty.tflite": b"",
    "identifier_only.tflite": b"\x10\x00\x00\x00TFL3" + b"\x00" * 8,
}


@pytest.mark.parametrize("name", sorted(GARBAGE))
def test_garbage_refused(tmp_path, zoo, name):
    path = tmp_path / name
    path.write_bytes(GARBAGE[name])
    files = snapshot(zoo)
    with pytest.raises(ModelRefused) as exc:
        add_models(zoo, [path])
    (problem,) = exc.value.problems
    assert problem.startswith(f"{path}: ")
    assert ("not a TFLite model" in problem or "not a readable TFLite flatbuffer" in problem
            or "refused by LiteRT" in problem or "schema version" in problem or "no subgraph" in problem), problem
    assert snapshot(zoo) == files


def test_truncated_model_refused(tmp_path, zoo):
    path = tmp_path / "cut.tflite"
    path.write_bytes((ADD / "tiny_uint8.tflite").read_bytes()[:1500])
    with pytest.raises(ModelRefused, match=rf"{path}: (not a readable TFLite flatbuffer|refused by LiteRT)"):
        add_models(zoo, [path])


def test_one_bad_file_refuses_the_whole_batch_and_every_problem_is_listed(tmp_path, zoo):
    files = snapshot(zoo)
    with pytest.raises(ModelRefused) as exc:
        add_models(zoo, [ADD / "tiny_uint8.tflite", ADD / "tiny_custom_op.tflite", ADD / "tiny_float16_input.tflite",
                         tmp_path / "missing.tflite"])
    assert len(exc.value.problems) == 3
    assert "nothing was added" in str(exc.value)
    assert snapshot(zoo) == files


def test_builder_names_and_bad_names_refused(zoo):
    with pytest.raises(ModelRefused, match="'tiny_cnn' is a network of the zoo builder"):
        add_models(zoo, [ADD / "tiny_uint8.tflite"], name="tiny_cnn")
    with pytest.raises(ModelRefused, match="model name 'my net' must match"):
        add_models(zoo, [ADD / "tiny_uint8.tflite"], name="my net")


def test_a_corrupt_manifest_is_not_overwritten(zoo):
    (zoo / "manifest.json").write_text("{not json")
    with pytest.raises(Exception, match="invalid JSON in zoo manifest"):
        add_models(zoo, [ADD / "tiny_uint8.tflite"])
    assert (zoo / "manifest.json").read_text() == "{not json"


def test_a_failed_write_leaves_the_manifest_and_files_as_they_were(zoo, monkeypatch):
    from orchestrator.zoo import add as add_mod

    files = snapshot(zoo)

    def failing_save(manifest, path):
        raise OSError("disk full")

    monkeypatch.setattr(add_mod, "save_manifest", failing_save)
    with pytest.raises(OSError, match="disk full"):
        add_models(zoo, [ADD / "tiny_uint8.tflite"])
    assert snapshot(zoo) == files


# --------------------------------------------------------------------------- the LiteRT check itself


def test_litert_check_reports_a_crash_of_the_interpreter(tmp_path, monkeypatch):
    crasher = tmp_path / "crash.py"
    crasher.write_text("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    monkeypatch.setattr(litert_check_mod, "PROBE", crasher)
    check = litert_check(ADD / "tiny_uint8.tflite")
    assert check.ok is False and "crashed (SIGSEGV)" in check.detail


def test_litert_check_runs_the_model(mediapipe_models):
    check = litert_check(mediapipe_models["face_detection_short_range"].path)
    assert check.ok is True and check.runtime.startswith("ai-edge-litert ")


def test_static_checks_alone_pass_what_only_litert_refuses():
    inspect_model(ADD / "tiny_future_op_version.tflite")  # reads fine
    assert check_files_error(ADD / "tiny_future_op_version.tflite", run_litert=False) is None
    assert "version '99'" in check_files_error(ADD / "tiny_future_op_version.tflite", run_litert=True)


def check_files_error(path: Path, run_litert: bool) -> str | None:
    try:
        check_files(path.parent / "no-zoo-here", [path], run_litert=run_litert)
    except ModelRefused as exc:
        return str(exc)
    return None


# --------------------------------------------------------------------------- the command


def run_cli(*args: str, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        cli_main(list(args))
    captured = capsys.readouterr()
    return exc.value.code, captured.out, captured.err


def test_cli_zoo_add(zoo, capsys):
    code, out, err = run_cli("zoo", "add", str(ADD / "tiny_uint8.tflite"), "--zoo", str(zoo), "--name", "u8",
                             "--source", "made by tests/fixtures/make_zoo_add_fixtures.py", capsys=capsys)
    assert code == 0, err
    assert "added: u8 (uint8)" in out and "8,992 MACs" in out and "184 params" in out
    entry = load_manifest(zoo / "manifest.json").find("u8", "uint8")
    assert entry.source == "made by tests/fixtures/make_zoo_add_fixtures.py"
    code, out, err = run_cli("zoo", "add", str(ADD / "tiny_uint8.tflite"), "--zoo", str(zoo), "--name", "u8",
                             "--json", capsys=capsys)
    assert code == 0 and json.loads(out)[0]["status"] == "present"


def test_cli_zoo_add_refusal_exit_code_and_message(zoo, capsys):
    files = snapshot(zoo)
    code, out, err = run_cli("zoo", "add", str(ADD / "tiny_custom_op.tflite"), "--zoo", str(zoo), capsys=capsys)
    assert code == 2
    assert "custom op 'SocfarmTestOnlyOp'" in err and str(ADD / "tiny_custom_op.tflite") in err
    assert snapshot(zoo) == files
    code, _, err = run_cli("zoo", "add", str(ADD / "tiny_uint8.tflite"), str(ADD / "tiny_dynamic_batch.tflite"),
                           "--name", "x", "--zoo", str(zoo), capsys=capsys)
    assert code == 2 and "--name names one model" in err


def test_cli_zoo_add_into_a_new_folder(tmp_path, capsys):
    zoo = tmp_path / "new-zoo"
    code, out, err = run_cli("zoo", "add", str(ADD / "tiny_uint8.tflite"), "--zoo", str(zoo), capsys=capsys)
    assert code == 0, err
    manifest = load_manifest(zoo / "manifest.json")
    assert manifest.builder_hash == "" and [e.name for e in manifest.models] == ["tiny_uint8"]
    assert verify_files(manifest, zoo) == []
    assert os.listdir(zoo) and "added models only" in manifest.weights


# --------------------------------------------------------------------------- the agent runs what was added


@pytest.mark.parametrize("name, dtype", [("tiny_uint8.tflite", "uint8"), ("tiny_dynamic_batch.tflite", "float32")])
def test_agent_measures_an_added_model(tmp_path, zoo, name, dtype):
    from device_agent.affinity import available_cpus
    from tests.agent.agent_proc import job_spec, run_spec

    (added,) = add_models(zoo, [ADD / name])
    e = added.entry
    cpu = min(available_cpus())
    spec = job_spec({"path": str(zoo / e.file), "sha256": e.sha256}, tmp_path / "job",
                    component={"cpus": [cpu], "name": f"cpu{cpu}"},
                    rules={"warmup_runs": 2, "min_count": 20, "min_duration_s": 0.2, "max_duration_s": 10.0})
    spec["model"]["input_shape"] = e.input_shape  # what the orchestrator sends: checked by the agent
    run = run_spec(spec)
    assert run.returncode == 0, run.stderr
    started, summary = run.events[0], run.events[-1]
    assert started["model"]["input_dtype"] == dtype == e.input_dtype
    assert started["model"]["input_shape"] == e.input_shape
    assert summary["verdict"] == "VALID" and summary["count"] >= 20


# --------------------------------------------------------------------------- the builder keeps added models


@pytest.mark.zoo
@pytest.mark.slow
def test_build_keeps_added_models_whatever_the_builder(tmp_path):
    from orchestrator.zoo.build import build_zoo

    (added,) = add_models(tmp_path, [ADD / "tiny_uint8.tflite"])  # an add-only zoo first
    built = build_zoo(tmp_path, names=["tiny_cnn"], dtypes=["float32"])
    assert built.find("tiny_uint8", "uint8") == added.entry and built.builder_hash
    rebuilt = build_zoo(tmp_path, names=["tiny_cnn"], dtypes=["float32"], seed=1)  # another builder hash
    assert rebuilt.builder_hash != built.builder_hash
    assert rebuilt.find("tiny_uint8", "uint8") == added.entry
    assert load_manifest(tmp_path / "manifest.json") == rebuilt
    assert verify_files(rebuilt, tmp_path) == []

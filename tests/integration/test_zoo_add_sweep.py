"""End to end on this machine: a third-party .tflite (MediaPipe's, from its PyPI wheel) listed by path in the
experiments, swept on the local board with the real CLI, ansible-runner, the agent and LiteRT; a model with a
custom op refused before any board is touched."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from orchestrator.analysis.model_info import analyze
from orchestrator.zoo.manifest import load_manifest
from tests.conftest import FIXTURE_ZOO, REPO
from tests.integration.test_sweep_local import INVENTORY, METER, orchestrator, sweep
from tests.store_helpers import only_run, run_table

EXPERIMENTS = """
version: 1
zoo: zoo
rules: {warmup_runs: 2, min_count: 20, min_duration_s: 0.3, max_duration_s: 20}
experiments:
  - name: own-models
    models: [./own/face_detection_short_range.tflite, ./own/tiny_uint8.tflite]
    components: [cpu0]
"""

# The local inventory, with a peak for the roofline table (which shows each model's work per image).
PEAK = "{name: cpu0, class: cpu, cpus: [0], peak_gflops: 20.0}"


@pytest.fixture
def lab(tmp_path: Path, mediapipe_models):
    shutil.copytree(FIXTURE_ZOO, tmp_path / "zoo")
    own = tmp_path / "own"
    own.mkdir()
    shutil.copy(mediapipe_models["face_detection_short_range"].path, own)
    shutil.copy(mediapipe_models["selfie_segmentation"].path, own)
    shutil.copy(REPO / "tests" / "fixtures" / "zoo_add" / "tiny_uint8.tflite", own)
    inv = tmp_path / "inv.yml"
    inv.write_text(INVENTORY.format(work_dir=tmp_path / "board", meter=METER)
                   .replace("{name: cpu0, class: cpu, cpus: [0]}", PEAK))
    exp = tmp_path / "exp.yaml"
    exp.write_text(EXPERIMENTS)
    return exp, inv


@pytest.mark.slow
def test_sweep_of_a_third_party_model_added_with_zoo_add_and_by_path(tmp_path, lab, mediapipe_models):
    """Both ways in: MediaPipe's face detector through ``orchestrator zoo add`` and then named, the uint8
    fixture listed by path and added on the fly."""
    exp, inv = lab
    add = orchestrator("zoo", "add", str(tmp_path / "own" / "face_detection_short_range.tflite"), "--zoo",
                       str(tmp_path / "zoo"), cwd=tmp_path)
    assert add.returncode == 0, add.stderr + add.stdout
    assert "face_detection_short_range" in add.stdout
    exp.write_text(EXPERIMENTS.replace("./own/face_detection_short_range.tflite", "face_detection_short_range"))
    proc = sweep(tmp_path, exp, inv)
    assert proc.returncode == 0, proc.stderr + proc.stdout

    # added to the zoo under its file's name, with its sha256, source and figures
    face = mediapipe_models["face_detection_short_range"]
    manifest = load_manifest(tmp_path / "zoo" / "manifest.json")
    entry = manifest.find("face_detection_short_range", "float32")
    assert entry.sha256 == face.sha256 and entry.source == str(tmp_path / "own" / face.path.name)
    info = analyze(face.path)
    assert entry.macs == info.macs == 30_760_960 and entry.flops == info.flops
    u8 = manifest.find("tiny_uint8", "uint8")
    assert u8 is not None and manifest.find("tiny_cnn", "float32") is not None  # the zoo's entries kept

    run_dir = only_run(tmp_path / "runs")
    results = run_table(run_dir, "results")
    assert sorted(zip(results.model, results.dtype)) == [("face_detection_short_range", "float32"),
                                                         ("tiny_uint8", "uint8")]
    assert (results.verdict == "VALID").all(), results[["model", "verdict"]]
    assert (results.throughput_ips > 0).all() and (results["count"] >= 20).all()
    assert set(results.model_sha256) == {face.sha256, u8.sha256}
    assert all("face_detection_short_range-float32" in j or "tiny_uint8-uint8" in j for j in results.job_id)
    # the run keeps the manifest it used: the added model's MACs and source travel with the results
    used = json.loads((run_dir / "inputs" / "zoo-manifest.json").read_text())
    recorded = next(m for m in used["models"] if m["name"] == "face_detection_short_range")
    assert recorded["macs"] == 30_760_960 and recorded["source"] == entry.source

    report = Path(proc.stdout.strip().splitlines()[-1].removeprefix("report: "))
    html = report.read_text()
    summary = (report.parent / "summary.md").read_text()
    assert "face_detection_short_range" in html and "face_detection_short_range" in summary
    assert "tiny_uint8" in html and "| tiny_uint8 | uint8 |" in summary
    # the Models table: the added model with its MACs and where it came from
    assert f"| face_detection_short_range | float32 | 30,760,960 | {info.params:,} |" in summary
    assert "<td>30,760,960</td>" in html and entry.source in html
    # the roofline table: the model's work per image, from the file (2 x MACs + pooling and adds)
    rows = re.findall(r"<tr><td class=\"l\">localhost</td><td class=\"l\">cpu0[^<]*</td>"
                      r"<td class=\"l\">face_detection_short_range</td>\s*<td class=\"l\">float32</td>"
                      r"<td>[^<]*</td><td>([^<]*)</td>", html)
    assert rows, "no roofline row for the added model"
    assert float(rows[0]) == pytest.approx(info.flops / 1e9, abs=5e-4)
    assert info.flops >= 2 * info.macs


def test_custom_op_model_refused_before_any_board_is_touched(tmp_path, lab):
    exp, inv = lab
    exp.write_text(EXPERIMENTS.replace("./own/tiny_uint8.tflite", "./own/selfie_segmentation.tflite"))
    before = sorted(p.name for p in (tmp_path / "zoo").iterdir())
    proc = sweep(tmp_path, exp, inv)
    assert proc.returncode == 2, proc.stderr + proc.stdout
    assert "exp.yaml:7: experiments.0.models.1:" in proc.stderr  # the file starts with a blank line
    assert "custom op 'Convolution2DTransposeBias'" in proc.stderr and "selfie_segmentation.tflite" in proc.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "board").exists()
    assert sorted(p.name for p in (tmp_path / "zoo").iterdir()) == before  # not even the good model was added

    add = orchestrator("zoo", "add", str(tmp_path / "own" / "selfie_segmentation.tflite"), "--zoo",
                       str(tmp_path / "zoo"), cwd=tmp_path)
    assert add.returncode == 2
    assert "custom op 'Convolution2DTransposeBias' (operator 244 of subgraph 0)" in add.stderr

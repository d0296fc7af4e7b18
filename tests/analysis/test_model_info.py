"""Model analyzer: hand-computed figures of the committed tiny fixture; published figures of the study zoo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.analysis.model_info import analyze
from orchestrator.errors import ZooError
from tests.conftest import FIXTURE_ZOO, REPO

# tiny_cnn, input 1x32x32x3 (see tests/zoo/test_zoo_stats.py for the layer list)
IN, C1, DW, PW, GAP, FC = 32 * 32 * 3, 16 * 16 * 8, 16 * 16 * 8, 16 * 16 * 16, 16, 10
MACS = [C1 * 27, DW * 9, PW * 8, 0, 10 * 16, 0]
FLOPS = [2 * MACS[0], 2 * MACS[1], 2 * MACS[2], PW, 2 * MACS[4], 0]  # MEAN: input elements
PARAMS = [216 + 8, 72 + 8, 128 + 16, 0, 160 + 10, 0]
# activations: non-constant inputs + outputs, in elements
ACT = [IN + C1, C1 + DW, DW + PW, PW + GAP, GAP + FC, FC + FC]
# constant inputs in elements: weights+bias (MEAN reads its int32 axis: 2 elements... see below)


@pytest.mark.parametrize("dtype,act_bytes,weight_bytes", [
    ("float32", 4, [224 * 4, 80 * 4, 144 * 4, 8, 170 * 4, 0]),  # MEAN axis: int32[2] = 8 bytes
    ("int8", 1, [216 + 8 * 4, 72 + 8 * 4, 128 + 16 * 4, 8, 160 + 10 * 4, 0]),  # int8 weights, int32 biases
])
def test_tiny_layers_by_hand(dtype, act_bytes, weight_bytes):
    info = analyze(FIXTURE_ZOO / f"tiny_cnn_{dtype}.tflite")
    assert [layer.op for layer in info.layers] == [
        "CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "MEAN", "FULLY_CONNECTED", "SOFTMAX"]
    assert [layer.macs for layer in info.layers] == MACS
    assert [layer.flops for layer in info.layers] == FLOPS
    assert [layer.params for layer in info.layers] == PARAMS
    assert [layer.activation_bytes for layer in info.layers] == [a * act_bytes for a in ACT]
    assert [layer.weight_bytes for layer in info.layers] == weight_bytes
    assert info.macs == 106_656 and info.params == 618 and info.flops == sum(FLOPS)
    moved = sum(weight_bytes) + sum(ACT) * act_bytes
    assert info.bytes_moved == moved
    assert info.intensity_flop_per_byte == pytest.approx(sum(FLOPS) / moved)
    assert info.layers[0].intensity_flop_per_byte == pytest.approx(FLOPS[0] / (weight_bytes[0] + ACT[0] * act_bytes))


def test_int8_has_four_times_the_intensity_of_float32_activations():
    f, i = analyze(FIXTURE_ZOO / "tiny_cnn_float32.tflite"), analyze(FIXTURE_ZOO / "tiny_cnn_int8.tflite")
    assert f.flops == i.flops
    assert f.activation_bytes == 4 * i.activation_bytes


def test_not_a_model(tmp_path):
    bad = tmp_path / "x.tflite"
    bad.write_bytes(b"garbage!garbage!")
    with pytest.raises(ZooError, match="not a TFLite flatbuffer"):
        analyze(bad)


def test_cli_json_and_table():
    f = str(FIXTURE_ZOO / "tiny_cnn_float32.tflite")
    proc = subprocess.run([sys.executable, "-m", "orchestrator", "model", "info", f, "--json", "--per-layer"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["totals"]["macs"] == 106_656 and len(data["layers"]) == 6
    proc = subprocess.run([sys.executable, "-m", "orchestrator", "model", "info", f], capture_output=True, text=True,
                          cwd=REPO)
    assert proc.returncode == 0 and "106,656" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "orchestrator", "model", "info", "/nonexistent.tflite"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and "cannot read" in proc.stderr


# Published figures (multiply-accumulates per 224x224 image, parameters):
#   MobileNet v1 1.0-224: 569 M mult-adds, 4.2 M params (Howard et al. 2017, Table 8)
#   SqueezeNet 1.0: 0.82 G MACs (torchvision model table), 1,248,424 params (Iandola et al. 2016, Table 1)
#   ResNet-50: 3.86 G MACs ("3.8 x 10^9 FLOPs" as multiply-adds, He et al. 2016, Table 1), 25.6 M params
PUBLISHED = {
    "mobilenet_v1": (569e6, 4.2e6),
    "squeezenet": (0.82e9, 1_248_424),
    "resnet50": (3.86e9, 25.6e6),
}
STUDY_ZOO = Path(os.environ.get("SOCFARM_ZOO", REPO / "models"))


@pytest.mark.zoo
@pytest.mark.parametrize("name", sorted(PUBLISHED))
@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_study_models_match_published_figures(name, dtype):
    manifest = STUDY_ZOO / "manifest.json"
    if not manifest.exists():
        pytest.fail(f"the study zoo is not built ({manifest} missing): run `make zoo` (needs TensorFlow) or set "
                    f"SOCFARM_ZOO, or deselect these checks with -m 'not zoo'", pytrace=False)
    info = analyze(STUDY_ZOO / f"{name}_{dtype}.tflite")
    macs, params = PUBLISHED[name]
    assert abs(info.macs - macs) <= 0.02 * macs, info.macs
    assert abs(info.params - params) <= 0.02 * params, info.params  # ResNet-50 in the file: BN folded
    assert info.flops >= 2 * info.macs

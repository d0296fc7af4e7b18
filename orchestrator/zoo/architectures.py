"""Keras definitions of the networks of the study, built with seeded random weights.

No pretrained weights are downloaded: inference throughput and energy depend
on the architecture (layer shapes, operator mix), not on the weight values.

TensorFlow is imported lazily inside the builders, so importing this module
(for the registry: names, display names, published figures) is cheap and
works on machines without TensorFlow.

Every builder takes a ``seed`` and is deterministic for a given seed and
TensorFlow version: the same seed gives the same architecture and the same
weights. After the Keras initialisers have run, every bias and batch-norm
statistic is replaced by small seeded random values, so that no bias is
all-zero (the TFLite converter drops all-zero biases of dense layers, which
would make the graph differ from that of a trained model).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # pragma: no cover
    from tensorflow import keras

__all__ = [
    "ArchSpec",
    "ARCHITECTURES",
    "STUDY",
    "TINY",
    "build_alexnet",
    "build_googlenet",
    "build_mobilenet_v1",
    "build_resnet50",
    "build_squeezenet",
    "build_tiny_cnn",
]


def _tf():
    """Import TensorFlow, or explain how to install it."""
    try:
        import tensorflow as tf
    except ImportError as exc:  # pragma: no cover - depends on the environment
        from orchestrator.errors import ZooError

        raise ZooError(
            "building the model zoo needs TensorFlow, which is not installed: "
            "run `pip install -e .[zoo]`"
        ) from exc
    return tf


def _start(seed: int):
    """Return ``tf.keras`` after resetting the Keras session and all random seeds."""
    keras = _tf().keras
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    return keras


def _finish(model: "keras.Model", seed: int) -> "keras.Model":
    """Give every bias and batch-norm statistic small seeded non-zero values."""
    import numpy as np

    rng = np.random.default_rng([seed, 0x5EED])
    for var in model.weights:
        leaf = var.path.rsplit("/", 1)[-1] if hasattr(var, "path") else var.name
        leaf = leaf.split(":")[0]
        shape = tuple(var.shape)
        if leaf in ("bias", "beta", "moving_mean"):
            value = rng.uniform(-0.05, 0.05, shape)
        elif leaf in ("gamma", "moving_variance"):
            value = rng.uniform(0.8, 1.2, shape)
        else:
            continue
        var.assign(value.astype(np.float32))
    return model


# --------------------------------------------------------------------------
# AlexNet


def build_alexnet(seed: int = 0) -> "keras.Model":
    """Single-tower AlexNet, layer for layer as torchvision ``alexnet``.

    Input 224x224x3; conv 64-192-384-256-256, three dense layers
    9216-4096-4096-1000. The adaptive 6x6 average pool of torchvision is the
    identity at 224 and is left out. 61,100,840 parameters, ~714M MACs.
    """
    keras = _start(seed)
    L = keras.layers
    inp = keras.Input((224, 224, 3), name="input")
    x = L.ZeroPadding2D(2, name="conv1_pad")(inp)
    x = L.Conv2D(64, 11, strides=4, activation="relu", name="conv1")(x)  # 55x55
    x = L.MaxPooling2D(3, strides=2, name="pool1")(x)  # 27x27
    x = L.Conv2D(192, 5, padding="same", activation="relu", name="conv2")(x)
    x = L.MaxPooling2D(3, strides=2, name="pool2")(x)  # 13x13
    x = L.Conv2D(384, 3, padding="same", activation="relu", name="conv3")(x)
    x = L.Conv2D(256, 3, padding="same", activation="relu", name="conv4")(x)
    x = L.Conv2D(256, 3, padding="same", activation="relu", name="conv5")(x)
    x = L.MaxPooling2D(3, strides=2, name="pool5")(x)  # 6x6
    x = L.Flatten(name="flatten")(x)
    x = L.Dropout(0.5, name="drop6")(x)
    x = L.Dense(4096, activation="relu", name="fc6")(x)
    x = L.Dropout(0.5, name="drop7")(x)
    x = L.Dense(4096, activation="relu", name="fc7")(x)
    x = L.Dense(1000, name="fc8")(x)
    out = L.Softmax(name="prob")(x)
    return _finish(keras.Model(inp, out, name="alexnet"), seed)


# --------------------------------------------------------------------------
# GoogLeNet (Inception v1)

# (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj), Szegedy et al. 2015, Table 1.
_INCEPTION_V1 = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


def _inception(keras, x, name: str, cfg: tuple[int, int, int, int, int, int]):
    L = keras.layers
    c1, r3, c3, r5, c5, pp = cfg

    def conv(t, filters, k, suffix):
        return L.Conv2D(filters, k, padding="same", activation="relu", name=f"inception_{name}_{suffix}")(t)

    b1 = conv(x, c1, 1, "1x1")
    b2 = conv(conv(x, r3, 1, "3x3_reduce"), c3, 3, "3x3")
    b3 = conv(conv(x, r5, 1, "5x5_reduce"), c5, 5, "5x5")
    b4 = L.MaxPooling2D(3, strides=1, padding="same", name=f"inception_{name}_pool")(x)
    b4 = conv(b4, pp, 1, "pool_proj")
    return L.Concatenate(axis=-1, name=f"inception_{name}_output")([b1, b2, b3, b4])


def build_googlenet(seed: int = 0) -> "keras.Model":
    """GoogLeNet / Inception v1 (Szegedy et al. 2015), without the auxiliary heads.

    As in the paper's Table 1 (5x5 branches, no batch norm). The local
    response normalisation layers are left out (as in most re-implementations;
    they carry no parameters and no MACs, and have no int8 TFLite kernel).
    6,998,552 parameters, ~1.58G MACs.
    """
    keras = _start(seed)
    L = keras.layers
    inp = keras.Input((224, 224, 3), name="input")
    x = L.Conv2D(64, 7, strides=2, padding="same", activation="relu", name="conv1_7x7_s2")(inp)  # 112
    x = L.MaxPooling2D(3, strides=2, padding="same", name="pool1_3x3_s2")(x)  # 56
    x = L.Conv2D(64, 1, padding="same", activation="relu", name="conv2_3x3_reduce")(x)
    x = L.Conv2D(192, 3, padding="same", activation="relu", name="conv2_3x3")(x)
    x = L.MaxPooling2D(3, strides=2, padding="same", name="pool2_3x3_s2")(x)  # 28
    x = _inception(keras, x, "3a", _INCEPTION_V1["3a"])
    x = _inception(keras, x, "3b", _INCEPTION_V1["3b"])
    x = L.MaxPooling2D(3, strides=2, padding="same", name="pool3_3x3_s2")(x)  # 14
    for block in ("4a", "4b", "4c", "4d", "4e"):
        x = _inception(keras, x, block, _INCEPTION_V1[block])
    x = L.MaxPooling2D(3, strides=2, padding="same", name="pool4_3x3_s2")(x)  # 7
    x = _inception(keras, x, "5a", _INCEPTION_V1["5a"])
    x = _inception(keras, x, "5b", _INCEPTION_V1["5b"])
    x = L.GlobalAveragePooling2D(name="pool5_7x7_s1")(x)
    x = L.Dropout(0.4, name="pool5_drop")(x)
    x = L.Dense(1000, name="loss3_classifier")(x)
    out = L.Softmax(name="prob")(x)
    return _finish(keras.Model(inp, out, name="googlenet"), seed)


# --------------------------------------------------------------------------
# MobileNet v1 and ResNet-50: the Keras application definitions.


def build_mobilenet_v1(seed: int = 0) -> "keras.Model":
    """MobileNet v1, 224x224, width multiplier 1.0 (``keras.applications.MobileNet``)."""
    keras = _start(seed)
    model = keras.applications.MobileNet(
        input_shape=(224, 224, 3), alpha=1.0, depth_multiplier=1, include_top=True, weights=None, classes=1000
    )
    return _finish(model, seed)


def build_resnet50(seed: int = 0) -> "keras.Model":
    """ResNet-50 v1 (``keras.applications.ResNet50``; stride 2 on the first 1x1 of a stage)."""
    keras = _start(seed)
    model = keras.applications.ResNet50(input_shape=(224, 224, 3), include_top=True, weights=None, classes=1000)
    return _finish(model, seed)


# --------------------------------------------------------------------------
# SqueezeNet 1.0


def _max_pool_ceil(keras, x, name: str):
    """3x3/2 max pooling with Caffe's ceil rounding of the output size.

    Pads one zero row/column at the bottom/right when the floor and ceil
    sizes differ; the input is a ReLU output (>= 0), so zero padding is
    equivalent to -inf padding.
    """
    L = keras.layers
    size = x.shape[1]
    if (size - 3) % 2:
        x = L.ZeroPadding2D(((0, 1), (0, 1)), name=f"{name}_pad")(x)
    return L.MaxPooling2D(3, strides=2, name=name)(x)


def _fire(keras, x, name: str, squeeze: int, expand: int):
    L = keras.layers
    s = L.Conv2D(squeeze, 1, activation="relu", name=f"{name}_squeeze1x1")(x)
    e1 = L.Conv2D(expand, 1, activation="relu", name=f"{name}_expand1x1")(s)
    e3 = L.Conv2D(expand, 3, padding="same", activation="relu", name=f"{name}_expand3x3")(s)
    return L.Concatenate(axis=-1, name=f"{name}_concat")([e1, e3])


def build_squeezenet(seed: int = 0) -> "keras.Model":
    """SqueezeNet 1.0 (Iandola et al. 2016), as torchvision ``squeezenet1_0``.

    Input 224x224x3, max pooling with ceil rounding (109 -> 54 -> 27 -> 13).
    1,248,424 parameters, ~0.82G MACs.
    """
    keras = _start(seed)
    L = keras.layers
    inp = keras.Input((224, 224, 3), name="input")
    x = L.Conv2D(96, 7, strides=2, activation="relu", name="conv1")(inp)  # 109
    x = _max_pool_ceil(keras, x, "pool1")  # 54
    x = _fire(keras, x, "fire2", 16, 64)
    x = _fire(keras, x, "fire3", 16, 64)
    x = _fire(keras, x, "fire4", 32, 128)
    x = _max_pool_ceil(keras, x, "pool4")  # 27
    x = _fire(keras, x, "fire5", 32, 128)
    x = _fire(keras, x, "fire6", 48, 192)
    x = _fire(keras, x, "fire7", 48, 192)
    x = _fire(keras, x, "fire8", 64, 256)
    x = _max_pool_ceil(keras, x, "pool8")  # 13
    x = _fire(keras, x, "fire9", 64, 256)
    x = L.Dropout(0.5, name="drop9")(x)
    x = L.Conv2D(1000, 1, activation="relu", name="conv10")(x)
    x = L.GlobalAveragePooling2D(name="pool10")(x)
    out = L.Softmax(name="prob")(x)
    return _finish(keras.Model(inp, out, name="squeezenet"), seed)


# --------------------------------------------------------------------------
# Tiny network for tests


def build_tiny_cnn(seed: int = 0) -> "keras.Model":
    """A very small CNN for fast tests (a few KB as TFLite).

    input 32x32x3
    conv 3x3/2, 8 filters, same, ReLU  -> 16x16x8
    depthwise 3x3/1, same, ReLU        -> 16x16x8
    conv 1x1, 16 filters, ReLU         -> 16x16x16
    global average pooling             -> 16
    dense 10, softmax                  -> 10
    618 parameters, 106,656 MACs.
    """
    keras = _start(seed)
    L = keras.layers
    inp = keras.Input((32, 32, 3), name="input")
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="conv")(inp)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu", name="dwconv")(x)
    x = L.Conv2D(16, 1, activation="relu", name="pwconv")(x)
    x = L.GlobalAveragePooling2D(name="pool")(x)
    x = L.Dense(10, name="fc")(x)
    out = L.Softmax(name="prob")(x)
    return _finish(keras.Model(inp, out, name="tiny_cnn"), seed)


# --------------------------------------------------------------------------
# Registry


@dataclass(frozen=True)
class ArchSpec:
    """One network of the zoo.

    ``ref_params`` / ``ref_macs`` are the published figures (see ``source``),
    used to sanity-check the built models; ``None`` when there is none.
    """

    name: str
    display_name: str
    builder: Callable[..., "keras.Model"]
    source: str
    input_shape: tuple[int, int, int]
    ref_params: int | None = None
    ref_macs: int | None = None


ARCHITECTURES: dict[str, ArchSpec] = {
    spec.name: spec
    for spec in (
        ArchSpec(
            "alexnet",
            "AlexNet",
            build_alexnet,
            "Krizhevsky et al. 2012, single-tower variant as torchvision alexnet "
            "(61.1M params, 0.71 GFLOPS i.e. MACs, in the torchvision model table)",
            (224, 224, 3),
            ref_params=61_100_840,
            ref_macs=714_000_000,
        ),
        ArchSpec(
            "googlenet",
            "GoogLeNet",
            build_googlenet,
            "Szegedy et al. 2015, Inception v1 without auxiliary heads or LRN "
            "(~7M params; Table 1: 6.8M weights counted in units of 1024, "
            "ops column summing to 1,586M multiply-adds, '1.5 billion' in the text)",
            (224, 224, 3),
            ref_params=7_000_000,
            ref_macs=1_586_000_000,
        ),
        ArchSpec(
            "mobilenet_v1",
            "MobileNet v1",
            build_mobilenet_v1,
            "Howard et al. 2017, 1.0 MobileNet-224 via keras.applications.MobileNet "
            "(Table 8: 4.2M params, 569M mult-adds)",
            (224, 224, 3),
            ref_params=4_200_000,
            ref_macs=569_000_000,
        ),
        ArchSpec(
            "resnet50",
            "ResNet-50",
            build_resnet50,
            "He et al. 2016, ResNet-50 v1 via keras.applications.ResNet50 "
            "(25.6M params in the Keras docs; Table 1: 3.8e9 FLOPs i.e. multiply-adds)",
            (224, 224, 3),
            ref_params=25_636_712,
            ref_macs=3_800_000_000,
        ),
        ArchSpec(
            "squeezenet",
            "SqueezeNet 1.0",
            build_squeezenet,
            "Iandola et al. 2016, SqueezeNet 1.0 as torchvision squeezenet1_0 "
            "(1,248,424 params; 0.82 GFLOPS i.e. MACs in the torchvision model table)",
            (224, 224, 3),
            ref_params=1_248_424,
            ref_macs=820_000_000,
        ),
        ArchSpec(
            "tiny_cnn",
            "Tiny CNN",
            build_tiny_cnn,
            "test network: conv, depthwise conv, pointwise conv, pooling, dense 10 "
            "(618 params, 106,656 MACs)",
            (32, 32, 3),
            ref_params=618,
            ref_macs=106_656,
        ),
    )
}

STUDY: tuple[str, ...] = ("alexnet", "googlenet", "mobilenet_v1", "resnet50", "squeezenet")
TINY: tuple[str, ...] = ("tiny_cnn",)

"""Per-layer and total work and traffic of a .tflite model, for the roofline.

Definitions (one inference, batch as stored in the file)
--------------------------------------------------------
MACs
    As in :mod:`orchestrator.zoo.tflite_stats`: CONV_2D, DEPTHWISE_CONV_2D,
    FULLY_CONNECTED, TRANSPOSE_CONV (and CONV_3D); every other operator 0.
FLOPs
    ``2 x MACs`` for those operators; pooling (AVERAGE/MAX/L2_POOL_2D): output
    elements x filter height x filter width; MEAN (global average pool):
    input elements; elementwise ADD, SUB, MUL: output elements;
    CONCATENATION, reshapes, activations, SOFTMAX and every other operator: 0.
parameters
    The counting rule of ``tflite_stats`` (weights and biases, a shared
    tensor once).
weight bytes
    Bytes of the constant inputs an operator reads (weights, biases and small
    shape arguments), at their stored dtype (int8 = 1 byte, float32 = 4).
activation bytes
    Bytes of the non-constant input tensors plus the output tensors of an
    operator: each operator reads its inputs and writes its outputs once.
operational intensity
    FLOPs / (weight bytes + activation bytes): the no-cache traffic model of
    the roofline (every operator streams its tensors from and to memory).

The totals sum the layers, so a weight tensor read by two operators is moved
twice but counted once as parameters.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from orchestrator.zoo.tflite_stats import _PARAM_DTYPES, OpInfo, _op_macs, model_ops, ops_from_bytes

__all__ = ["LayerInfo", "ModelInfo", "analyze", "analyze_bytes", "analyze_ops", "FLOP_RULES"]

_MAC_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "CONV_3D"})
_POOL_OPS = frozenset({"AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D"})
_ELEMENTWISE_OPS = frozenset({"ADD", "SUB", "MUL"})

FLOP_RULES = {
    "conv/depthwise/fully connected": "2 x MACs",
    "pooling": "output elements x filter h x filter w",
    "MEAN": "input elements",
    "ADD/SUB/MUL": "output elements",
    "CONCATENATION and others": "0",
}


@dataclass(frozen=True)
class LayerInfo:
    index: int
    op: str
    output_shape: tuple[int, ...]
    macs: int
    flops: int
    params: int
    weight_bytes: int
    activation_bytes: int

    @property
    def bytes_moved(self) -> int:
        return self.weight_bytes + self.activation_bytes

    @property
    def intensity_flop_per_byte(self) -> float:
        return self.flops / self.bytes_moved if self.bytes_moved else 0.0


@dataclass(frozen=True)
class ModelInfo:
    source: str
    layers: tuple[LayerInfo, ...]
    params: int

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def flops(self) -> int:
        return sum(layer.flops for layer in self.layers)

    @property
    def weight_bytes(self) -> int:
        return sum(layer.weight_bytes for layer in self.layers)

    @property
    def activation_bytes(self) -> int:
        return sum(layer.activation_bytes for layer in self.layers)

    @property
    def bytes_moved(self) -> int:
        return self.weight_bytes + self.activation_bytes

    @property
    def intensity_flop_per_byte(self) -> float:
        return self.flops / self.bytes_moved if self.bytes_moved else 0.0

    def totals(self) -> dict[str, float]:
        return {
            "layers": len(self.layers),
            "macs": self.macs,
            "flops": self.flops,
            "params": self.params,
            "weight_bytes": self.weight_bytes,
            "activation_bytes": self.activation_bytes,
            "bytes_moved": self.bytes_moved,
            "intensity_flop_per_byte": self.intensity_flop_per_byte,
        }

    def to_dict(self, per_layer: bool = False) -> dict:
        data: dict = {"source": self.source, "totals": self.totals(), "flop_rules": FLOP_RULES}
        if per_layer:
            data["layers"] = [
                {**asdict(layer), "output_shape": list(layer.output_shape),
                 "intensity_flop_per_byte": layer.intensity_flop_per_byte}
                for layer in self.layers
            ]
        return data


def _flops(op: OpInfo, macs: int) -> int:
    if op.op in _MAC_OPS:
        return 2 * macs
    out = op.outputs[0] if op.outputs else None
    if op.op in _POOL_OPS and out is not None:
        return out.elements * op.options.get("filter_h", 1) * op.options.get("filter_w", 1)
    if op.op == "MEAN" and op.inputs:
        return op.inputs[0].elements
    if op.op in _ELEMENTWISE_OPS and out is not None:
        return out.elements
    return 0


def analyze_ops(ops: list[OpInfo], source: str = "<ops>") -> ModelInfo:
    layers = []
    counted: set[tuple[int, int]] = set()
    total_params = 0
    for op in ops:
        macs = _op_macs(op.op, [t.shape for t in op.inputs], [t.shape for t in op.outputs])
        params = 0
        for pos, t in enumerate(op.inputs):
            if t.constant and (t.dtype in _PARAM_DTYPES or pos in op.weight_slots):
                params += t.elements
                key = (op.subgraph, t.index)
                if key not in counted:
                    counted.add(key)
                    total_params += t.elements
        layers.append(LayerInfo(
            index=op.index,
            op=op.op,
            output_shape=op.outputs[0].shape if op.outputs else (),
            macs=macs,
            flops=_flops(op, macs),
            params=params,
            weight_bytes=sum(t.nbytes for t in op.inputs if t.constant),
            activation_bytes=sum(t.nbytes for t in op.inputs if not t.constant) + sum(t.nbytes for t in op.outputs),
        ))
    return ModelInfo(source=source, layers=tuple(layers), params=total_params)


def analyze(path: str | Path) -> ModelInfo:
    """Analyze a .tflite file (ZooError when it is missing or not a TFLite model)."""
    return analyze_ops(model_ops(path), source=str(path))


def analyze_bytes(data: bytes, source: str = "<bytes>") -> ModelInfo:
    """Analyze a TFLite flatbuffer held in memory (ZooError when it is not a TFLite model)."""
    return analyze_ops(ops_from_bytes(data, source=source), source=source)

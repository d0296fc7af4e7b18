"""Static statistics of a .tflite file, read from its flatbuffer schema.

Runs on the controller: it needs only the ``tflite`` schema package (and
numpy), never TensorFlow.

Definitions
-----------
parameters
    Number of elements of the constant tensors (tensors with a non-empty
    buffer) that operators read as weights or biases: every constant input
    of a floating-point or low-bit integer type (float32/16/64, int8, uint8,
    int16, int4), plus the bias input of weighted operators (int32/int64 in
    quantized models). Integer constants that are operator arguments
    (shapes, axes, paddings, permutations) are not parameters. A tensor read
    by several operators counts once.
MACs
    Multiply-accumulates of one inference, counted for ``CONV_2D``,
    ``DEPTHWISE_CONV_2D``, ``FULLY_CONNECTED`` and ``TRANSPOSE_CONV``
    (other operators count 0):

    - CONV_2D: output elements x kernel height x kernel width x input
      channels per group (the filter is ``[Cout, kh, kw, Cin/groups]``);
    - DEPTHWISE_CONV_2D: output elements x kh x kw (filter ``[1, kh, kw, Cout]``);
    - FULLY_CONNECTED: output elements x input features (weights ``[units, in]``);
    - TRANSPOSE_CONV: input elements x kh x kw x output channels
      (filter ``[Cout, kh, kw, Cin]``).

Shapes are the static shapes stored in the file; a dynamic (-1) dimension
is taken as 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import tflite

from orchestrator.errors import ZooError

__all__ = [
    "TensorInfo", "ModelStats", "model_stats", "stats_from_bytes", "builtin_op_name", "dtype_name",
    "OpTensor", "OpInfo", "model_ops", "ops_from_bytes",
]

_OP_NAMES: dict[int, str] = {
    value: name for name, value in vars(tflite.BuiltinOperator).items() if not name.startswith("_") and isinstance(value, int)
}
_DTYPE_NAMES: dict[int, str] = {
    value: name.lower() for name, value in vars(tflite.TensorType).items() if not name.startswith("_") and isinstance(value, int)
}
_PARAM_DTYPES = frozenset({"float32", "float16", "float64", "bfloat16", "int8", "uint8", "int16", "int4"})

# Operator -> (weights input index, bias input index) for operators with weights.
_WEIGHTED_OPS: dict[str, tuple[int, int]] = {
    "CONV_2D": (1, 2),
    "DEPTHWISE_CONV_2D": (1, 2),
    "FULLY_CONNECTED": (1, 2),
    "TRANSPOSE_CONV": (1, 3),
    "CONV_3D": (1, 2),
    "CONV_3D_TRANSPOSE": (1, 3),
}


def builtin_op_name(code: int) -> str:
    """Name of a builtin operator code (``CUSTOM`` and unknown codes get a readable fallback)."""
    return _OP_NAMES.get(code, f"BUILTIN_{code}")


def dtype_name(tensor_type: int) -> str:
    """``tflite.TensorType`` value -> lower-case numpy-like name (``"float32"``, ``"int8"``)."""
    return _DTYPE_NAMES.get(tensor_type, f"type{tensor_type}")


@dataclass(frozen=True)
class TensorInfo:
    """An input or output tensor of the main subgraph."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float | None = None  # per-tensor quantization, None when not quantized
    zero_point: int | None = None


@dataclass(frozen=True)
class ModelStats:
    """What the controller needs to know about a .tflite without running it.

    The mappings are plain dicts (so that ``dataclasses.asdict`` and pickle
    work); treat them as read-only.
    """

    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    params: int
    macs: int
    op_counts: Mapping[str, int] = field(hash=False)  # operator type -> number of operators
    macs_by_op: Mapping[str, int] = field(hash=False)  # operator type -> MACs
    param_dtypes: Mapping[str, int] = field(hash=False)  # dtype -> parameter elements
    tensor_dtypes: Mapping[str, int] = field(hash=False)  # dtype -> number of tensors
    subgraphs: int = 1

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.inputs[0].shape

    @property
    def input_dtype(self) -> str:
        return self.inputs[0].dtype

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.outputs[0].shape

    @property
    def output_dtype(self) -> str:
        return self.outputs[0].dtype

    @property
    def num_ops(self) -> int:
        return sum(self.op_counts.values())


def _shape(tensor) -> tuple[int, ...]:
    if tensor.ShapeLength() == 0:
        return ()
    return tuple(int(d) for d in tensor.ShapeAsNumpy())


def _elements(shape: tuple[int, ...]) -> int:
    return math.prod(max(d, 1) for d in shape)


def _has_data(model, buffer_index: int) -> bool:
    if buffer_index <= 0 or buffer_index >= model.BuffersLength():
        return False
    buf = model.Buffers(buffer_index)
    if buf is None:
        return False
    if buf.DataLength() > 0:
        return True
    # Files over 2 GB keep buffer data after the flatbuffer (offset/size).
    return bool(hasattr(buf, "Size") and buf.Size() > 0 and buf.Offset() > 1)


def _tensor_info(tensor) -> TensorInfo:
    scale = zero_point = None
    q = tensor.Quantization()
    if q is not None and q.ScaleLength() == 1:
        scale = float(q.Scale(0))
        zero_point = int(q.ZeroPoint(0)) if q.ZeroPointLength() else 0
    name = tensor.Name()
    return TensorInfo(
        name=name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name or ""),
        shape=_shape(tensor),
        dtype=dtype_name(tensor.Type()),
        scale=scale,
        zero_point=zero_point,
    )


def _op_macs(op_name: str, inputs: list[tuple[int, ...] | None], outputs: list[tuple[int, ...] | None]) -> int:
    out = outputs[0] if outputs else None
    if op_name in ("CONV_2D", "CONV_3D"):
        if out is None or len(inputs) < 2 or inputs[1] is None:
            return 0
        return _elements(out) * _elements(inputs[1][1:])  # [Cout, kh, kw, Cin/g] or [kd, kh, kw, Cin, Cout]
    if op_name == "DEPTHWISE_CONV_2D":
        if out is None or len(inputs) < 2 or inputs[1] is None or len(inputs[1]) != 4:
            return 0
        return _elements(out) * inputs[1][1] * inputs[1][2]
    if op_name == "FULLY_CONNECTED":
        if out is None or len(inputs) < 2 or inputs[1] is None or not inputs[1]:
            return 0
        return _elements(out) * max(inputs[1][-1], 1)
    if op_name == "TRANSPOSE_CONV":
        # inputs: output_shape, weights [Cout, kh, kw, Cin], input [N, H, W, Cin], (bias)
        if len(inputs) < 3 or inputs[1] is None or inputs[2] is None or len(inputs[1]) != 4:
            return 0
        cout, kh, kw, _ = inputs[1]
        return _elements(inputs[2]) * kh * kw * cout
    return 0


def stats_from_bytes(data: bytes, *, source: str = "<bytes>") -> ModelStats:
    """Compute the statistics of a TFLite flatbuffer held in memory."""
    try:
        if len(data) < 8 or data[4:8] != b"TFL3":
            raise ValueError("not a TFLite flatbuffer (no TFL3 identifier)")
        model = tflite.Model.GetRootAsModel(data, 0)
        if model.SubgraphsLength() < 1:
            raise ValueError("the model has no subgraph")
        return _stats(model)
    except ZooError:
        raise
    except Exception as exc:  # a corrupt flatbuffer raises assorted errors
        raise ZooError(f"{source}: cannot read TFLite model: {exc}") from exc


def model_stats(path: str | Path) -> ModelStats:
    """Compute the statistics of a .tflite file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ZooError(f"{path}: cannot read TFLite model: {exc}") from exc
    return stats_from_bytes(data, source=str(path))


def _stats(model) -> ModelStats:
    op_counts: dict[str, int] = {}
    macs_by_op: dict[str, int] = {}
    param_dtypes: dict[str, int] = {}
    tensor_dtypes: dict[str, int] = {}
    params = 0
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        tensors = [graph.Tensors(i) for i in range(graph.TensorsLength())]
        shapes = [_shape(t) for t in tensors]
        dtypes = [dtype_name(t.Type()) for t in tensors]
        constant = [_has_data(model, t.Buffer()) and not t.IsVariable() for t in tensors]
        for d in dtypes:
            tensor_dtypes[d] = tensor_dtypes.get(d, 0) + 1
        counted: set[int] = set()
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            code = model.OperatorCodes(op.OpcodeIndex())
            # Codes >= 127 live in BuiltinCode(), older ones in DeprecatedBuiltinCode().
            op_name = builtin_op_name(max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode())))
            if op_name == "CUSTOM":
                custom = code.CustomCode()
                op_name = "CUSTOM:" + (custom.decode() if isinstance(custom, bytes) else str(custom))
            op_counts[op_name] = op_counts.get(op_name, 0) + 1
            ins = [int(t) for t in op.InputsAsNumpy()] if op.InputsLength() else []
            outs = [int(t) for t in op.OutputsAsNumpy()] if op.OutputsLength() else []
            macs = _op_macs(op_name, [shapes[t] if t >= 0 else None for t in ins], [shapes[t] if t >= 0 else None for t in outs])
            if macs:
                macs_by_op[op_name] = macs_by_op.get(op_name, 0) + macs
            weight_slots = _WEIGHTED_OPS.get(op_name, ())
            for pos, t in enumerate(ins):
                if t < 0 or t in counted or not constant[t]:
                    continue
                if dtypes[t] in _PARAM_DTYPES or pos in weight_slots:
                    counted.add(t)
                    n = _elements(shapes[t])
                    params += n
                    param_dtypes[dtypes[t]] = param_dtypes.get(dtypes[t], 0) + n
    main = model.Subgraphs(0)
    inputs = tuple(_tensor_info(main.Tensors(int(t))) for t in (main.InputsAsNumpy() if main.InputsLength() else []))
    outputs = tuple(_tensor_info(main.Tensors(int(t))) for t in (main.OutputsAsNumpy() if main.OutputsLength() else []))
    if not inputs or not outputs:
        raise ValueError("the main subgraph has no input or no output")
    return ModelStats(
        inputs=inputs,
        outputs=outputs,
        params=params,
        macs=sum(macs_by_op.values()),
        op_counts=dict(sorted(op_counts.items())),
        macs_by_op=dict(sorted(macs_by_op.items())),
        param_dtypes=dict(sorted(param_dtypes.items())),
        tensor_dtypes=dict(sorted(tensor_dtypes.items())),
        subgraphs=model.SubgraphsLength(),
    )


# -- per-operator view (for the model analyzer in orchestrator/analysis/model_info.py) --------------

_DTYPE_BYTES: dict[str, float] = {
    "float32": 4, "float16": 2, "float64": 8, "bfloat16": 2, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2,
    "int32": 4, "uint32": 4, "int64": 8, "uint64": 8, "bool": 1, "int4": 0.5, "complex64": 8, "complex128": 16,
}


@dataclass(frozen=True)
class OpTensor:
    """One tensor as an operator sees it."""

    index: int
    shape: tuple[int, ...]
    dtype: str
    constant: bool  # has a buffer (weights, biases, shape arguments)

    @property
    def elements(self) -> int:
        return _elements(self.shape)

    @property
    def nbytes(self) -> int:
        return int(math.ceil(self.elements * _DTYPE_BYTES.get(self.dtype, 4)))


@dataclass(frozen=True)
class OpInfo:
    """One operator of a subgraph, in execution order, with its tensors and the options the analyzer needs."""

    subgraph: int
    index: int
    op: str
    inputs: tuple[OpTensor, ...]
    outputs: tuple[OpTensor, ...]
    options: Mapping[str, int] = field(hash=False, default_factory=dict)  # e.g. filter_h/filter_w of pools
    weight_slots: tuple[int, ...] = ()  # input positions that are weights or biases of a weighted op


_POOL_OPS = frozenset({"AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D"})


def _op_options(op, op_name: str) -> dict[str, int]:
    if op_name not in _POOL_OPS:
        return {}
    table = op.BuiltinOptions()
    if table is None:
        return {}
    opts = tflite.Pool2DOptions()
    opts.Init(table.Bytes, table.Pos)
    return {"filter_h": int(opts.FilterHeight()), "filter_w": int(opts.FilterWidth()),
            "stride_h": int(opts.StrideH()), "stride_w": int(opts.StrideW())}


def _ops(model) -> list[OpInfo]:
    out: list[OpInfo] = []
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        tensors = [graph.Tensors(i) for i in range(graph.TensorsLength())]
        infos = [OpTensor(i, _shape(t), dtype_name(t.Type()), _has_data(model, t.Buffer()) and not t.IsVariable())
                 for i, t in enumerate(tensors)]
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            code = model.OperatorCodes(op.OpcodeIndex())
            op_name = builtin_op_name(max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode())))
            if op_name == "CUSTOM":
                custom = code.CustomCode()
                op_name = "CUSTOM:" + (custom.decode() if isinstance(custom, bytes) else str(custom))
            ins = [int(t) for t in op.InputsAsNumpy()] if op.InputsLength() else []
            outs = [int(t) for t in op.OutputsAsNumpy()] if op.OutputsLength() else []
            out.append(OpInfo(
                subgraph=s,
                index=i,
                op=op_name,
                inputs=tuple(infos[t] for t in ins if t >= 0),
                outputs=tuple(infos[t] for t in outs if t >= 0),
                options=_op_options(op, op_name),
                weight_slots=tuple(p for p in _WEIGHTED_OPS.get(op_name, ()) if p < len(ins) and ins[p] >= 0),
            ))
    return out


def ops_from_bytes(data: bytes, *, source: str = "<bytes>") -> list[OpInfo]:
    """Every operator of a TFLite flatbuffer held in memory, in execution order."""
    try:
        if len(data) < 8 or data[4:8] != b"TFL3":
            raise ValueError("not a TFLite flatbuffer (no TFL3 identifier)")
        model = tflite.Model.GetRootAsModel(data, 0)
        if model.SubgraphsLength() < 1:
            raise ValueError("the model has no subgraph")
        return _ops(model)
    except Exception as exc:  # a corrupt flatbuffer raises assorted errors
        raise ZooError(f"{source}: cannot read TFLite model: {exc}") from exc


def model_ops(path: str | Path) -> list[OpInfo]:
    """Every operator of a .tflite file, in execution order."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ZooError(f"{path}: cannot read TFLite model: {exc}") from exc
    return ops_from_bytes(data, source=str(path))

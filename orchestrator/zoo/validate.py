"""Can the boards run this .tflite? Static checks of a model someone brings, before any board sees it.

A model is **refused** (every problem listed, each naming the file and the
operator or tensor) when:

- the file is not a TFLite flatbuffer (no ``TFL3`` identifier, schema version
  other than 3, or a flatbuffer that cannot be read);
- its main subgraph has no output, or not exactly one input (the agent feeds one
  input tensor; see docs/agent-protocol.md);
- the input's dtype is not float32, int8 or uint8 (the agent's input generator and
  the dtypes a series is measured in; e.g. a float16 input), or an output is not a
  numeric tensor (string, resource, variant);
- the input's shape is dynamic beyond the batch: a ``-1`` in ``shape_signature`` at
  any dimension but the first, or a stored dimension below 1. The runtime would
  run the stored placeholder shape (often 1x1) and measure a different network. A
  dynamic *batch* (``-1`` at dimension 0, the way Keras exports) is accepted and
  measured at the stored batch (1): the note says so;
- an operator is a custom op that LiteRT's builtin op resolver does not register
  (every custom op but ``TFLite_Detection_PostProcess``, ``Mfcc``,
  ``AudioSpectrogram``), including TensorFlow ops kept by the converter (``Flex``
  prefix). Some such ops run only where a delegate happens to implement them
  (XNNPACK takes MediaPipe's ``Convolution2DTransposeBias``), so whether a board
  can run the model would depend on its runtime build and delegate; and the
  MACs of a custom op are unknown.

Operator codes newer than the ``tflite`` schema package are only noted: the
controller's LiteRT check (:mod:`orchestrator.zoo.litert_check`) loads and
invokes the model and has the last word.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import tflite

from orchestrator.analysis.model_info import ModelInfo, analyze_bytes
from orchestrator.errors import ZooError
from orchestrator.zoo.tflite_stats import ModelStats, builtin_op_name, dtype_name, stats_from_bytes

__all__ = ["INPUT_DTYPES", "RESOLVER_CUSTOM_OPS", "Inspection", "ModelRefused", "inspect_bytes", "inspect_model"]

INPUT_DTYPES = ("float32", "int8", "uint8")
# Custom ops that LiteRT's BuiltinOpResolver registers (tensorflow/lite/core/kernels/register.cc).
RESOLVER_CUSTOM_OPS = frozenset({"TFLite_Detection_PostProcess", "Mfcc", "AudioSpectrogram"})
_NON_NUMERIC = frozenset({"string", "resource", "variant"})
SCHEMA_VERSION = 3


class ModelRefused(ZooError):
    """One or more models cannot be measured; ``problems`` has one line per problem, each naming its file."""

    def __init__(self, problems: list[str], message: str = "refused"):
        self.problems = list(problems)
        super().__init__(message + ":\n" + "\n".join(f"  {p}" for p in self.problems))


@dataclass(frozen=True)
class Inspection:
    """A model that passed the static checks, with what the zoo records about it."""

    source: str  # the file it was read from (for messages)
    sha256: str
    size_bytes: int
    stats: ModelStats
    info: ModelInfo
    notes: tuple[str, ...] = ()

    @property
    def dtype(self) -> str:
        """The model's dtype as the zoo labels it: its input's (float32, int8 or uint8)."""
        return self.stats.input_dtype


def _text(raw) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")


def _signature(tensor) -> tuple[int, ...] | None:
    if tensor.ShapeSignatureLength() == 0:
        return None
    return tuple(int(d) for d in tensor.ShapeSignatureAsNumpy())


def _shape(tensor) -> tuple[int, ...]:
    return tuple(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()


def _tensor_label(graph, index: int) -> str:
    return f"tensor {_text(graph.Tensors(index).Name())!r} (index {index})"


def _op_problems(model, source: str) -> tuple[list[str], list[str]]:
    """Custom and unknown operators of every subgraph."""
    custom: dict[str, list[tuple[int, int]]] = {}
    unknown: dict[str, int] = {}
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        for i in range(graph.OperatorsLength()):
            code = model.OperatorCodes(graph.Operators(i).OpcodeIndex())
            name = builtin_op_name(max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode())))
            if name == "CUSTOM":
                custom.setdefault(_text(code.CustomCode()), []).append((s, i))
            elif name.startswith("BUILTIN_"):
                unknown[name] = unknown.get(name, 0) + 1
    problems = []
    for op, where in sorted(custom.items()):
        if op in RESOLVER_CUSTOM_OPS:
            continue
        s, i = where[0]
        count = f"{len(where)} operators, the first" if len(where) > 1 else "operator"
        if op.startswith("Flex"):
            problems.append(
                f"{source}: TensorFlow op {op[4:]!r} (custom op {op!r}, {count} {i} of subgraph {s}) needs the Flex "
                "delegate, which the boards' runtimes do not have: convert the model with TFLite builtin ops only")
        else:
            problems.append(
                f"{source}: custom op {op!r} ({count} {i} of subgraph {s}) is not a LiteRT builtin op: a board "
                "could run it only if its runtime build or a delegate happens to implement it, and its MACs are "
                "unknown; replace it with builtin ops")
    notes = [f"operator code {name} ({n}x) is newer than the controller's TFLite schema package"
             for name, n in sorted(unknown.items())]
    return problems, notes


def _io_problems(model, source: str) -> tuple[list[str], list[str]]:
    graph = model.Subgraphs(0)
    inputs = [int(t) for t in graph.InputsAsNumpy()] if graph.InputsLength() else []
    outputs = [int(t) for t in graph.OutputsAsNumpy()] if graph.OutputsLength() else []
    problems: list[str] = []
    notes: list[str] = []
    if not outputs:
        problems.append(f"{source}: the main subgraph has no output tensor")
    if len(inputs) != 1:
        names = ", ".join(_tensor_label(graph, t) for t in inputs) or "none"
        problems.append(f"{source}: the model has {len(inputs)} input tensors ({names}); the agent feeds exactly one")
    for t in inputs:
        tensor = graph.Tensors(t)
        label = f"input {_tensor_label(graph, t)}"
        dtype = dtype_name(tensor.Type())
        if dtype not in INPUT_DTYPES:
            problems.append(f"{source}: {label} is {dtype}; the agent feeds {', '.join(INPUT_DTYPES)} inputs "
                            "(export the model with a float32 input, or fully quantized with int8/uint8 input)")
        shape, signature = _shape(tensor), _signature(tensor)
        if not shape:
            problems.append(f"{source}: {label} has no shape (a scalar); the agent feeds a tensor of fixed shape")
            continue
        if any(d < 1 for d in shape):
            problems.append(f"{source}: {label} has stored shape {list(shape)}: a dimension below 1 is unknown "
                            "until run time; export the model with a fixed input shape")
        elif signature is not None and len(signature) == len(shape):
            dynamic = [i for i, d in enumerate(signature) if d < 0]
            beyond_batch = [i for i in dynamic if i > 0]
            if beyond_batch:
                problems.append(
                    f"{source}: {label} has a dynamic shape: shape_signature {list(signature)} leaves dimension(s) "
                    f"{', '.join(map(str, beyond_batch))} open, so the runtime would measure its placeholder shape "
                    f"{list(shape)}; export the model with a fixed input size")
            elif dynamic:
                notes.append(f"{label} has a dynamic batch (shape_signature {list(signature)}): measured at batch "
                             f"{shape[0]}, the stored shape {list(shape)}")
    for t in outputs:
        dtype = dtype_name(graph.Tensors(t).Type())
        if dtype in _NON_NUMERIC or dtype.startswith("type"):
            problems.append(f"{source}: output {_tensor_label(graph, t)} is {dtype}, not a numeric tensor")
    return problems, notes


def inspect_bytes(data: bytes, source: str) -> Inspection:
    """Check a model held in memory; raise :class:`ModelRefused` listing every problem found."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        found = f"found {data[4:8].hex(' ')}" if len(data) >= 8 else "the file is shorter"
        raise ModelRefused([f"{source}: not a TFLite model: no TFL3 flatbuffer identifier at bytes 4-7 "
                            f"({found}; {len(data)} bytes in all)"])
    try:
        model = tflite.Model.GetRootAsModel(data, 0)
        version = int(model.Version())
        if version != SCHEMA_VERSION:
            raise ModelRefused([f"{source}: TFLite schema version {version}; LiteRT reads version {SCHEMA_VERSION}"])
        if model.SubgraphsLength() < 1:
            raise ModelRefused([f"{source}: the model has no subgraph"])
        problems, notes = _io_problems(model, source)
        op_problems, op_notes = _op_problems(model, source)
    except ModelRefused:
        raise
    except Exception as exc:  # a corrupt flatbuffer raises assorted errors
        raise ModelRefused([f"{source}: not a readable TFLite flatbuffer: {type(exc).__name__}: {exc}"]) from None
    problems += op_problems
    if problems:
        raise ModelRefused(problems)
    try:
        stats = stats_from_bytes(data, source=source)
        info = analyze_bytes(data, source=source)
    except ZooError as exc:
        raise ModelRefused([str(exc)]) from None
    return Inspection(source=source, sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data), stats=stats,
                      info=info, notes=tuple(notes + op_notes))


def inspect_model(path: str | Path) -> Inspection:
    """Check a .tflite file (see the module docstring); raise :class:`ModelRefused` listing every problem."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelRefused([f"{path}: file not found"]) from None
    except IsADirectoryError:
        raise ModelRefused([f"{path}: is a directory, not a .tflite file"]) from None
    except OSError as exc:
        raise ModelRefused([f"{path}: cannot read: {exc}"]) from None
    return inspect_bytes(data, str(path))

"""The ``gpu`` backend: the interpreter with a delegate library (``load_delegate``).

A library that does not load (missing file, not a delegate) is a
``SpecError`` naming ``delegate_path``. The default CPU delegate (XNNPACK)
is kept out (``BUILTIN_WITHOUT_DEFAULT_DELEGATES``), so every ``DELEGATE``
node of the graph belongs to the requested delegate. ``placement()`` counts
the model's ops that no delegate node took: those run on the CPU. When the
runtime cannot show op placement, a short timing against a CPU-only
interpreter decides: a delegate no faster than the CPU is reported as a
fallback (never CPU speed reported as GPU speed).
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from device_agent.backends.base import Backend
from device_agent.backends.tflite import prepare
from device_agent.errors import ModelError, SpecError
from device_agent.runtime import Runtime, abi_mismatch, numpy_abi_error
from device_agent.verdict import DelegateUse

DELEGATE_OP = "DELEGATE"
TIMING_RUNS = 5
SAME_SPEED_RATIO = 0.9  # delegate latency >= 0.9 x CPU latency: treated as running on the CPU


def load(runtime: Runtime, path: str, options: Dict[str, str], field: str) -> Any:
    loader = getattr(runtime.interpreter_module, "load_delegate", None)
    if loader is None:
        raise SpecError("%s: runtime %s has no load_delegate" % (field, runtime.module_name))
    try:
        return loader(path, options or None)
    except Exception as exc:  # OSError (no file), AttributeError (not a delegate), ValueError, RuntimeError
        raise SpecError("%s: cannot load delegate %s: %s: %s" % (field, path, type(exc).__name__, exc))


def placement(ops: Sequence[Dict[str, Any]]) -> Tuple[int, int]:
    """(model ops, ops left on the CPU) from ``_get_ops_details()``-style records."""
    model_ops = [op for op in ops if op["op_name"] != DELEGATE_OP]
    delegate_nodes = [op for op in ops if op["op_name"] == DELEGATE_OP]
    producer: Dict[int, int] = {}
    for i, op in enumerate(model_ops):
        for t in op["outputs"]:
            producer[int(t)] = i
    taken: Set[int] = set()
    for node in delegate_nodes:
        boundary = {int(t) for t in node["inputs"]}
        todo: List[int] = [int(t) for t in node["outputs"]]
        while todo:
            t = todo.pop()
            i = producer.get(t)
            if i is None or i in taken or t in boundary:
                continue
            taken.add(i)
            todo.extend(int(x) for x in model_ops[i]["inputs"] if int(x) >= 0)
    return len(model_ops), len(model_ops) - len(taken)


def open_gpu(runtime: Runtime, model_path: str, threads: int, seed: int, delegate_path: str,
             options: Dict[str, str], name: str, field: str,
             expected_shape: Optional[Tuple[int, ...]] = None) -> Backend:
    delegate = load(runtime, delegate_path, options, field + ".delegate_path")
    module = runtime.interpreter_module
    kwargs: Dict[str, Any] = {"model_path": model_path, "num_threads": threads, "experimental_delegates": [delegate]}
    resolver = getattr(getattr(module, "OpResolverType", None), "BUILTIN_WITHOUT_DEFAULT_DELEGATES", None)
    if resolver is not None:
        kwargs["experimental_op_resolver_type"] = resolver
    try:
        interpreter = module.Interpreter(**kwargs)
        interpreter.allocate_tensors()
    except Exception as exc:
        detail = abi_mismatch(exc)
        if detail is not None:
            raise numpy_abi_error(runtime, detail)
        raise ModelError("cannot load model %s with delegate %s: %s: %s"
                         % (model_path, delegate_path, type(exc).__name__, exc))
    model = prepare(interpreter, seed, expected_shape)
    use = check_use(interpreter, name, resolver is not None,
                    lambda: _cpu_latency_s(module, model_path, threads, seed))
    info = {"delegate": {"path": delegate_path, "loaded": True, "fully_delegated": use.fully_delegated,
                         "cpu_ops": use.cpu_ops, "total_ops": use.total_ops}}
    return Backend(invoke=interpreter.invoke, model=model, info=info, delegate=use)


def check_use(interpreter: Any, name: str, placement_known: bool, cpu_latency_s: Any) -> DelegateUse:
    """Op placement when the runtime shows it, else the timing comparison."""
    details = getattr(interpreter, "_get_ops_details", None)
    if placement_known and details is not None:
        total, cpu = placement(details())
        return DelegateUse(component=name, total_ops=total, cpu_ops=cpu)
    gpu_s = _latency_s(interpreter.invoke)
    cpu_s = cpu_latency_s()
    if gpu_s >= SAME_SPEED_RATIO * cpu_s:
        return DelegateUse(name, 0, 0, reason="op placement unknown and the delegate is no faster than the CPU "
                                              "(%.3f ms vs %.3f ms)" % (gpu_s * 1e3, cpu_s * 1e3))
    return DelegateUse(name, 0, 0)


def _latency_s(invoke: Any) -> float:
    invoke()
    best = float("inf")
    for _ in range(TIMING_RUNS):
        t0 = time.perf_counter()
        invoke()
        best = min(best, time.perf_counter() - t0)
    return best


def _cpu_latency_s(module: Any, model_path: str, threads: int, seed: int) -> float:
    interpreter = module.Interpreter(model_path=model_path, num_threads=threads)
    interpreter.allocate_tensors()
    prepare(interpreter, seed, None)
    return _latency_s(interpreter.invoke)

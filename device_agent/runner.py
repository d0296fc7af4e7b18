"""One job, start to end: spec -> checks -> pin -> interpreter -> measure -> trace -> summary."""

from __future__ import annotations

import gc
import os
import platform
import socket
import time
from typing import Any, Callable, Dict

from device_agent import AGENT_VERSION
from device_agent.affinity import pin
from device_agent.errors import AgentError, InferenceError, OutputError, SpecError
from device_agent.events import EventWriter
from device_agent.measure import Measurement, measure
from device_agent.modelfile import verify_model_file
from device_agent.runtime import import_runtime, load_interpreter, make_input, model_input, set_input
from device_agent.spec import JobSpec
from device_agent.stats import latency_ms, throughput_ips
from device_agent.trace import write_trace


def run_job(spec: JobSpec, events: EventWriter, clock_ns: Callable[[], int] = time.monotonic_ns) -> None:
    """Run one validated job; emits ``started``, ``progress``* and ``summary``.

    Errors are raised as ``AgentError`` subclasses; the caller turns them into
    the ``error`` event and the exit code.
    """
    events.job_id = spec.job_id
    model_sha256 = verify_model_file(spec.model.path, spec.model.sha256)
    _make_output_dir(spec.output_dir)
    cpus_effective = pin(spec.component.cpus)

    runtime = import_runtime()
    interpreter = load_interpreter(runtime, spec.model.path, spec.component.threads)
    model_in = model_input(interpreter)
    set_input(interpreter, model_in, make_input(model_in.shape, model_in.dtype, spec.input_seed))

    events.emit(
        "started",
        agent_version=AGENT_VERSION,
        runtime=runtime.describe(),
        python=platform.python_version(),
        hostname=socket.gethostname(),
        pid=os.getpid(),
        model={
            "path": spec.model.path,
            "sha256": model_sha256,
            "input_shape": list(model_in.shape),
            "input_dtype": model_in.dtype,
        },
        component={
            "name": spec.component.name,
            "kind": spec.component.kind,
            "cpus": list(spec.component.cpus),
            "threads": spec.component.threads,
        },
        cpus_effective=cpus_effective,
        threads=spec.component.threads,
    )

    def on_progress(phase: str, count: int, elapsed_s: float) -> None:
        events.emit("progress", phase=phase, count=count, elapsed_s=round(elapsed_s, 6))

    wall_offset_ns = _wall_offset_ns(clock_ns)
    # No garbage-collector pauses inside the window: collect now, then hold it off.
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        m = measure(interpreter.invoke, clock_ns, spec.rules, on_progress, spec.progress_interval_s)
    except AgentError:
        raise
    except Exception as exc:
        raise InferenceError("inference failed: %s: %s" % (type(exc).__name__, exc))
    finally:
        if gc_was_enabled:
            gc.enable()

    try:
        trace = write_trace(spec.output_dir, m.start_ns, m.end_ns)
    except OSError as exc:
        raise OutputError("cannot write trace in %s: %s" % (spec.output_dir, exc))

    events.emit("summary", **_summary_fields(m, wall_offset_ns, trace.path, trace.sha256, trace.rows))


def _summary_fields(m: Measurement, wall_offset_ns: int, trace_path: str, trace_sha256: str, rows: int) -> Dict[str, Any]:
    return {
        "count": m.count,
        "warmup_runs": m.warmup_runs,
        "window": {
            "start_mono_ns": m.window_start_ns,
            "end_mono_ns": m.window_end_ns,
            "start_wall_ns": m.window_start_ns + wall_offset_ns,
            "end_wall_ns": m.window_end_ns + wall_offset_ns,
        },
        "duration_s": m.duration_s,
        "throughput_ips": throughput_ips(m.count, m.duration_ns),
        "latency_ms": latency_ms(m.start_ns, m.end_ns),
        "verdict": m.verdict.verdict,
        "reasons": list(m.verdict.reasons),
        "trace": {"path": trace_path, "sha256": trace_sha256, "rows": rows},
    }


def _make_output_dir(path: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise SpecError("output_dir: cannot create %s: %s" % (path, exc))
    if not os.access(path, os.W_OK):
        raise SpecError("output_dir: %s is not writable" % path)


def _wall_offset_ns(clock_ns: Callable[[], int]) -> int:
    """time.time_ns() - clock_ns(), read between two clock reads (midpoint)."""
    before = clock_ns()
    wall = time.time_ns()
    after = clock_ns()
    return wall - (before + after) // 2

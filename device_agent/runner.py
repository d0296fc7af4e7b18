"""One job, start to end: spec -> checks -> pin -> power sensors -> interpreter -> measure -> trace -> summary.

With ``power`` in the spec, the sensors are prepared before the interpreter
loads, sampled by their own thread from right before the window opens to
right after it closes (never from the inference loop), and restored before
the summary, and also when anything fails.
"""

from __future__ import annotations

import gc
import os
import platform
import socket
import time
from contextlib import nullcontext
from typing import Any, Callable, Dict, List, Optional

from device_agent import AGENT_VERSION
from device_agent.affinity import pin
from device_agent.errors import AgentError, InferenceError, OutputError, SpecError
from device_agent.events import EventWriter
from device_agent.measure import Measurement, measure
from device_agent.modelfile import verify_model_file
from device_agent.power.base import Sample
from device_agent.power.energy import rail_stats
from device_agent.power.powerfile import write_power
from device_agent.power.session import PowerSession
from device_agent.runtime import import_runtime, load_interpreter, make_input, model_input, set_input
from device_agent.spec import JobSpec
from device_agent.stats import latency_ms, throughput_ips
from device_agent.trace import write_trace

_SAMPLER_SLACK_S = 60.0


def run_job(spec: JobSpec, events: EventWriter, clock_ns: Callable[[], int] = time.monotonic_ns) -> None:
    """Run one validated job; emits ``started``, ``progress``* and ``summary``.

    Errors are raised as ``AgentError`` subclasses; the caller turns them into
    the ``error`` event and the exit code.
    """
    events.job_id = spec.job_id
    model_sha256 = verify_model_file(spec.model.path, spec.model.sha256)
    _make_output_dir(spec.output_dir)
    cpus_effective = pin(spec.component.cpus)
    power = _open_power(spec, clock_ns)

    with power.active() if power is not None else nullcontext():
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
            m = measure(
                interpreter.invoke, clock_ns, spec.rules, on_progress, spec.progress_interval_s,
                on_window_open=power.window_open if power is not None else None,
                on_window_close=power.window_close if power is not None else None,
            )
        except AgentError:
            raise
        except Exception as exc:
            raise InferenceError("inference failed: %s: %s" % (type(exc).__name__, exc))
        finally:
            if gc_was_enabled:
                gc.enable()
        samples = power.finish() if power is not None else None

    try:
        trace = write_trace(spec.output_dir, m.start_ns, m.end_ns)
    except OSError as exc:
        raise OutputError("cannot write trace in %s: %s" % (spec.output_dir, exc))

    fields = _summary_fields(m, wall_offset_ns, trace.path, trace.sha256, trace.rows)
    if power is not None and samples is not None:
        fields["power"] = _power_fields(spec.output_dir, power.spec.kind, power.rails, samples, m)
    events.emit("summary", **fields)


def _open_power(spec: JobSpec, clock_ns: Callable[[], int]) -> Optional[PowerSession]:
    if spec.power is None:
        return None
    # Bound of the sampler thread: well past the longest window the rules allow.
    bound_s = 2 * spec.rules.max_duration_s + _SAMPLER_SLACK_S
    return PowerSession.open(spec.power, spec.sysfs_root, bound_s, clock_ns)


def _power_fields(
    output_dir: str, kind: str, rails: List[str], samples: List[Sample], m: Measurement
) -> Dict[str, Any]:
    """``power.csv`` written, and the summary's ``power`` block."""
    try:
        written = write_power(output_dir, samples)
    except OSError as exc:
        raise OutputError("cannot write power samples in %s: %s" % (output_dir, exc))
    stats = rail_stats(samples, rails, m.window_start_ns, m.window_end_ns)
    return {
        "kind": kind,
        "path": written.path,
        "sha256": written.sha256,
        "rows": written.rows,
        "rails": {rail: s.as_dict() for rail, s in stats.items()},
    }


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

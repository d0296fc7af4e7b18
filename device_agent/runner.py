"""One job, start to end: spec -> checks -> platform -> power sensors -> backend -> measure -> trace -> summary.

Everything the board is asked to change is checked first (model file, CPUs,
frequencies the domains offer, sensor folders), then held in ``with``
blocks: frequencies (``platform``) and power sensors are restored on every
exit, also on errors and on SIGTERM/SIGINT (raised as ``Interrupted``).
Their sampler threads run from right before the window opens to right after
it closes, never in the inference loop. With ``components`` the job is a
co-execution (``device_agent.coexec``); with ``component``, one component alone.
"""

from __future__ import annotations

import gc
import os
import platform
import socket
import time
from contextlib import ExitStack
from typing import Any, Callable, Dict, List

from device_agent import AGENT_VERSION
from device_agent.affinity import check_cpus, pin
from device_agent.backends.registry import open_backend
from device_agent.errors import AgentError, InferenceError, OutputError
from device_agent.events import EventWriter
from device_agent.measure import Measurement, measure
from device_agent.modelfile import verify_model_file
from device_agent.outputs import make_output_dir, power_fields, wall_offset, window_fields
from device_agent.platform.control import PlatformSession
from device_agent.power.session import PowerSession
from device_agent.spec import JobSpec
from device_agent.spec_components import NO_RUNTIME_KINDS
from device_agent.stats import latency_ms, throughput_ips
from device_agent.trace import write_trace
from device_agent.verdict import judge

_SAMPLER_SLACK_S = 60.0


def run_job(spec: JobSpec, events: EventWriter, clock_ns: Callable[[], int] = time.monotonic_ns) -> None:
    """Run one validated job; emits ``started``, ``platform``?, ``progress``* and ``summary``.

    Errors are raised as ``AgentError`` subclasses; the caller turns them into
    the ``error`` event and the exit code.
    """
    events.job_id = spec.job_id
    model_sha256 = verify_model_file(spec.model.path, spec.model.sha256)
    make_output_dir(spec.output_dir)
    for i, comp in enumerate(spec.components):
        check_cpus(comp.cpus, "components[%d].cpus" % i if spec.coexec else "component.cpus")
    cpus_effective = pin(spec.component.cpus) if not spec.coexec else None
    bound_s = 2 * spec.rules.max_duration_s + _SAMPLER_SLACK_S  # sampler threads: well past the longest window
    plat = PlatformSession.open(spec.platform, spec.sysfs_root, bound_s) if spec.platform is not None else None
    power = PowerSession.open(spec.power, spec.sysfs_root, bound_s, clock_ns) if spec.power is not None else None

    with ExitStack() as held:
        if plat is not None:
            held.enter_context(plat.active())
            events.emit("platform", **plat.describe())
        if power is not None:
            held.enter_context(power.active())
        opened = [x.window_open for x in (plat, power) if x is not None]
        closed = [x.window_close for x in (plat, power) if x is not None]
        if spec.coexec:
            from device_agent.coexec.run import run_coexec

            fields, facts = run_coexec(spec, events, model_sha256, _calls(opened), _calls(closed), clock_ns)
        else:
            fields, facts = _run_isolated(spec, events, model_sha256, cpus_effective or [],
                                          _calls(opened), _calls(closed), clock_ns)
        start_ns, end_ns = fields["window"]["start_mono_ns"], fields["window"]["end_mono_ns"]
        freqs: List[Any] = []
        if plat is not None:
            fields["platform"], freqs = plat.finish(spec.output_dir, start_ns, end_ns)
        if power is not None:
            samples = power.finish()
            fields["power"] = power_fields(spec.output_dir, power.spec.kind, power.rails, samples, start_ns, end_ns)
    verdict = judge(facts["count"], end_ns - start_ns, spec.rules, freqs=freqs, delegates=facts["delegates"])
    fields["verdict"] = verdict.verdict
    fields["reasons"] = list(verdict.reasons)
    events.emit("summary", **fields)


def _run_isolated(spec: JobSpec, events: EventWriter, model_sha256: str, cpus_effective: List[int],
                  on_open: Callable[[], None], on_close: Callable[[], None],
                  clock_ns: Callable[[], int]) -> Any:
    comp = spec.component
    if comp.kind in NO_RUNTIME_KINDS:
        runtime = None
    else:
        from device_agent.runtime import import_runtime  # numpy with it: not for a simulated component

        runtime = import_runtime()
    backend = open_backend(spec, comp, "component", runtime)
    events.emit(
        "started",
        agent_version=AGENT_VERSION,
        runtime=runtime.describe() if runtime is not None else None,
        python=platform.python_version(),
        hostname=socket.gethostname(),
        pid=os.getpid(),
        model=dict({"path": spec.model.path, "sha256": model_sha256}, **backend.model),
        component=dict({"name": comp.name, "kind": comp.kind, "cpus": list(comp.cpus), "threads": comp.threads},
                       **backend.info),
        cpus_effective=cpus_effective,
        threads=comp.threads,
    )

    def on_progress(phase: str, count: int, elapsed_s: float) -> None:
        events.emit("progress", phase=phase, count=count, elapsed_s=round(elapsed_s, 6))

    wall_offset_ns = wall_offset(clock_ns)
    # No garbage-collector pauses inside the window: collect now, then hold it off.
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        m = measure(backend.invoke, clock_ns, spec.rules, on_progress, spec.progress_interval_s,
                    on_window_open=on_open, on_window_close=on_close)
    except AgentError:
        raise
    except Exception as exc:
        raise InferenceError("inference failed: %s: %s" % (type(exc).__name__, exc))
    finally:
        if gc_was_enabled:
            gc.enable()
        backend.close()
    try:
        trace = write_trace(spec.output_dir, m.start_ns, m.end_ns)
    except OSError as exc:
        raise OutputError("cannot write trace in %s: %s" % (spec.output_dir, exc))
    fields = _summary_fields(m, wall_offset_ns, trace.path, trace.sha256, trace.rows)
    if backend.frames_per_call != 1:
        fields["frames"] = m.count * backend.frames_per_call
        fields["throughput_ips"] = throughput_ips(fields["frames"], m.duration_ns)
    if backend.info.get("delegate") is not None:
        fields["delegate"] = backend.info["delegate"]
    delegates = [backend.delegate] if backend.delegate is not None else []
    return fields, {"count": m.count, "delegates": delegates}


def _calls(fns: List[Callable[[], None]]) -> Callable[[], None]:
    def call_all() -> None:
        for fn in fns:
            fn()
    return call_all


def _summary_fields(m: Measurement, wall_offset_ns: int, trace_path: str, trace_sha256: str, rows: int) -> Dict[str, Any]:
    return {
        "count": m.count,
        "warmup_runs": m.warmup_runs,
        "window": window_fields(m.window_start_ns, m.window_end_ns, wall_offset_ns),
        "duration_s": m.duration_s,
        "throughput_ips": throughput_ips(m.count, m.duration_ns),
        "latency_ms": latency_ms(m.start_ns, m.end_ns),
        "trace": {"path": trace_path, "sha256": trace_sha256, "rows": rows},
    }

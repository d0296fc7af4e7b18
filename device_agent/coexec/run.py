"""A co-execution job inside the runner's held platform/power context: started, stream, trace, summary fields.

Every figure of the summary (``count``, ``window``, ``duration_s``, ``throughput_ips``, ``latency_ms``,
``components``, ``reorder_delay_ms``, ``coexec``) is over the frames in the window (``window``'s rule,
named in ``window_rule``); the trace has every frame, flagged, and ``tail`` counts those left out.
"""

from __future__ import annotations

import os
import platform
import socket
from typing import Any, Callable, Dict, List, Tuple

from device_agent import AGENT_VERSION
from device_agent.coexec.stream import run_stream
from device_agent.coexec.summary import gains, per_component, reorder_delay_ms
from device_agent.coexec.tracefile import write_coexec_trace
from device_agent.coexec.window import WINDOW_RULE, coexec_window
from device_agent.errors import OutputError
from device_agent.events import EventWriter
from device_agent.outputs import wall_offset, window_fields
from device_agent.spec import JobSpec
from device_agent.stats import latency_ms, throughput_ips
from device_agent.verdict import DelegateUse


def run_coexec(spec: JobSpec, events: EventWriter, model_sha256: str, on_open: Callable[[], None],
               on_close: Callable[[], None], clock_ns: Callable[[], int]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    names = [c.name for c in spec.components]

    def on_ready(ready: List[Dict[str, Any]]) -> None:
        first = next((r for r in ready if r["model"].get("input_shape") is not None), ready[0])
        events.emit(
            "started",
            agent_version=AGENT_VERSION,
            runtime=next((r["runtime"] for r in ready if r["runtime"] is not None), None),
            python=platform.python_version(),
            hostname=socket.gethostname(),
            pid=os.getpid(),
            model=dict({"path": spec.model.path, "sha256": model_sha256}, **first["model"]),
            components=[dict({"name": c.name, "kind": c.kind, "cpus": list(c.cpus), "threads": c.threads,
                              "pid": r["pid"], "cpus_effective": r["cpus_effective"]}, **r["info"])
                        for c, r in zip(spec.components, ready)],
        )

    def on_progress(phase: str, count: int, elapsed_s: float) -> None:
        events.emit("progress", phase=phase, count=count, elapsed_s=round(elapsed_s, 6))

    offset_ns = wall_offset(clock_ns)
    res = run_stream(spec, on_ready, on_open, on_close, on_progress, clock_ns)
    win = coexec_window(res.worker, res.start_ns, res.end_ns, res.closed_ns)
    start_ns, end_ns = win.start_ns, win.end_ns
    duration_ns = end_ns - start_ns
    inside = [i for i, x in enumerate(win.in_window) if x]
    tail = [i for i, x in enumerate(win.in_window) if not x]
    try:
        trace = write_coexec_trace(spec.output_dir, names, res.worker, res.start_ns, res.end_ns, res.delay_ns,
                                   win.in_window)
    except OSError as exc:
        raise OutputError("cannot write trace in %s: %s" % (spec.output_dir, exc))
    count = len(inside)
    total_ips = throughput_ips(count, duration_ns)
    fields: Dict[str, Any] = {
        "count": count,
        "warmup_runs": spec.rules.warmup_runs,
        "window": window_fields(start_ns, end_ns, offset_ns),
        "window_rule": WINDOW_RULE,
        "duration_s": duration_ns / 1e9,
        "throughput_ips": total_ips,
        "latency_ms": latency_ms([res.start_ns[i] for i in inside], [res.end_ns[i] for i in inside]),
        "trace": {"path": trace.path, "sha256": trace.sha256, "rows": trace.rows},
        "components": per_component(names, [res.worker[i] for i in inside], duration_ns,
                                    [res.worker[i] for i in tail]),
        "tail": {"frames": len(tail), "closed_mono_ns": win.closed_ns,
                 "last_end_mono_ns": max(res.end_ns[i] for i in tail) if tail else None},
        "reorder_delay_ms": reorder_delay_ms([res.delay_ns[i] for i in inside]),
        "reorder_max_waiting": res.max_waiting,
    }
    if spec.isolated_ips:
        fields["coexec"] = gains(total_ips, spec.isolated_ips)
    delegates = [DelegateUse(*r["delegate"]) for r in res.ready if r["delegate"] is not None]
    for c, r in zip(spec.components, res.ready):
        if "delegate" in r["info"]:
            fields["components"][c.name]["delegate"] = r["info"]["delegate"]
    return fields, {"count": count, "delegates": delegates}

"""``python3 -m device_agent serve``: many requests, one process (docs/agent-protocol.md, "Serving").

A sweep sends a board dozens of jobs. Run one by one, each pays for a login
shell, a Python start and the imports of numpy and the interpreter module;
on a busy board that is most of the time between two measurement windows.
Served, the agent starts once and reads one request per line on stdin:

    {"command": "run", "spec": {...job spec...}}
    {"command": "idle", "spec": {...idle spec...}}
    {"command": "clock"}

and answers each with exactly the events ``run``/``idle`` would write, ended
by the request's ``summary`` or ``error``; ``clock`` is answered at once with
one ``clock`` event (its ``t_mono_ns`` is the board's clock), so that the
controller can estimate the offset of the clocks around every job. Before the first request it imports
the TFLite runtime (``preload_runtime``: a controller that starts the server ahead of its first job has
that cost behind it; not with ``--no-preload``) and writes one ``ready`` event (its pid and version).
End of stdin ends it (exit 0); a SIGTERM or SIGINT ends the running request with an ``Interrupted`` error
event (frequencies and sensors restored, as in ``run``) and then the process.

Each request starts from the same state as a fresh process: the CPU
affinity the server started with, a collected heap. The spec is kept in the
request's ``output_dir`` as ``spec.json``, like the orchestrator does for ``run``.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
from typing import IO, Any, Dict, Optional, Set

from device_agent import AGENT_VERSION
from device_agent.errors import Interrupted, SpecError
from device_agent.events import EventWriter
from device_agent.outputs import make_output_dir
from device_agent.request import execute

COMMANDS = ("run", "idle", "clock")


class _Stop(Exception):
    """Raised by the signal handler while waiting for a request."""


def serve(requests: IO[str], out: IO[str], preload: bool = True) -> int:
    """Answer requests until end of input or a signal; the exit code of the last request that failed on a
    signal, else 0. ``preload``: import the TFLite runtime before the first request (``--no-preload``: a
    board whose components need none; a request that does need it imports it then)."""
    events = EventWriter(out)
    state = {"stopping": False, "busy": False}
    initial_cpus = _affinity()

    def on_signal(signum: int, frame: Any) -> None:
        state["stopping"] = True
        if state["busy"]:
            raise Interrupted("stopped by signal %d" % signum)
        raise _Stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        if preload:
            preload_runtime()
        events.emit("ready", agent_version=AGENT_VERSION, pid=os.getpid(), commands=list(COMMANDS))
        while not state["stopping"]:
            line = requests.readline()
            if not line:
                return 0
            if not line.strip():
                continue
            events.job_id = None
            raw = _decode(line)
            if isinstance(raw, dict) and raw.get("command") == "clock" and set(raw) <= {"command"}:
                events.emit("clock")  # nothing else: the reply must follow the request at once
                continue
            _restore_affinity(initial_cpus)
            gc.collect()
            state["busy"] = True
            try:
                idle = isinstance(raw, dict) and raw.get("command") == "idle"
                code = execute(lambda: _request(raw), events, idle=idle)
            finally:
                state["busy"] = False
            if state["stopping"]:
                return code
        return Interrupted().exit_code
    except (_Stop, Interrupted):  # a signal between two requests
        return Interrupted().exit_code
    except BrokenPipeError:
        return 0  # the controller went away: nobody is left to answer
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def preload_runtime() -> None:
    """Import the TFLite runtime now (its module stays imported for every request). A board without one, or
    with a broken one, is not this function's to report: the first request that needs it raises
    ``RuntimeMissing`` with the reasons, as it would without the preload."""
    try:
        from device_agent.runtime import import_runtime

        import_runtime()
    except Exception:  # noqa: BLE001 - reported by the request that needs the runtime
        pass


def _decode(line: str) -> Any:
    """The request line's JSON value, or the ``SpecError`` that says why it has none (raised by ``_request``
    inside the request, so that it becomes the request's ``error`` event)."""
    try:
        return json.loads(line)
    except ValueError as exc:
        return SpecError("request: invalid JSON: %s" % exc)


def _request(raw: Any) -> Any:
    """The request's spec, kept as ``spec.json`` in its output folder; a malformed request is a ``SpecError``."""
    if isinstance(raw, SpecError):
        raise raw
    if not isinstance(raw, dict):
        raise SpecError("request: expected an object {\"command\", \"spec\"}, got %s" % type(raw).__name__)
    unknown = sorted(set(raw) - {"command", "spec"})
    if unknown:
        raise SpecError("request: unknown key(s) %s" % ", ".join(unknown))
    if raw.get("command") not in COMMANDS:
        raise SpecError("request.command: expected one of %s, got %r" % (", ".join(COMMANDS), raw.get("command")))
    if raw.get("command") == "clock":
        raise SpecError("request: a clock request has no other key than 'command'")
    spec = raw.get("spec")
    if not isinstance(spec, dict):
        raise SpecError("request.spec: expected an object, got %s" % type(spec).__name__)
    _keep_spec(spec)
    return spec


def _keep_spec(spec: Dict[str, Any]) -> None:
    """Write the spec next to the outputs it asks for (the parser reports a bad ``output_dir`` by name)."""
    output_dir = spec.get("output_dir")
    if not isinstance(output_dir, str) or not output_dir:
        return
    try:
        make_output_dir(output_dir)
        with open(os.path.join(output_dir, "spec.json"), "w", encoding="utf-8") as f:
            json.dump(spec, f)
    except (SpecError, OSError) as exc:
        print("device_agent serve: spec not kept in %s: %s" % (output_dir, exc), file=sys.stderr)


def _affinity() -> Optional[Set[int]]:
    getaffinity = getattr(os, "sched_getaffinity", None)
    return set(getaffinity(0)) if getaffinity is not None else None


def _restore_affinity(cpus: Optional[Set[int]]) -> None:
    """Back to the CPUs the server started on: a co-execution's main process must not stay pinned
    to the cluster the previous isolated job used."""
    if cpus is not None:
        os.sched_setaffinity(0, cpus)

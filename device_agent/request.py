"""One request, from its spec to its last event: shared by ``run``/``idle`` and ``serve``."""

from __future__ import annotations

import sys
import traceback
from typing import Any, Callable

from device_agent.errors import AgentError, InternalError, Interrupted
from device_agent.events import EventWriter


def execute(load: Callable[[], Any], events: EventWriter, idle: bool = False) -> int:
    """Load one spec and run it (a job, or an idle acquisition); any failure becomes the ``error`` event.
    Returns the exit code the request deserves."""
    try:
        raw = load()
        if isinstance(raw, dict) and isinstance(raw.get("job_id"), str):
            events.job_id = raw["job_id"]
        if idle:
            from device_agent.idle import parse_idle_spec, run_idle

            run_idle(parse_idle_spec(raw), events)
        else:
            from device_agent.runner import run_job
            from device_agent.spec import parse_spec

            run_job(parse_spec(raw), events)
        return 0
    except AgentError as exc:
        return _report(events, exc)
    except KeyboardInterrupt:
        return _report(events, Interrupted("interrupted by SIGINT"))
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        return _report(events, InternalError("%s: %s" % (type(exc).__name__, exc)))


def _report(events: EventWriter, exc: AgentError) -> int:
    print("device_agent: %s: %s" % (type(exc).__name__, exc), file=sys.stderr)
    events.emit("error", error=type(exc).__name__, message=str(exc), retryable=exc.retryable)
    return exc.exit_code

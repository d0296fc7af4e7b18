"""Command line: ``python3 -m device_agent run SPEC.json|-``, ``idle``, ``serve``, ``membw``, ``version``.

Events go to the process's original stdout; file descriptor 1 is redirected to
stderr for the agent's lifetime so that nothing else (a stray print, a native
library's log line) can corrupt the event stream.
"""

from __future__ import annotations

import os

# Before numpy is imported: keep its BLAS from starting helper threads on the board.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from typing import IO, Any, Dict, List, Optional  # noqa: E402

from device_agent import AGENT_VERSION  # noqa: E402
from device_agent.errors import AgentError, Interrupted, RuntimeMissing, SpecError  # noqa: E402
from device_agent.events import EventWriter  # noqa: E402
from device_agent.request import execute  # noqa: E402


def main(argv: Optional[List[str]] = None, out: Optional[IO[str]] = None) -> int:
    args = _parser().parse_args(argv)
    if out is None:
        out = _claim_stdout()
    if args.command == "version":
        return _version(out)
    if args.command == "membw":
        return _membw(args, out)
    if args.command == "serve":
        from device_agent.serve import serve

        return serve(sys.stdin, out, preload=args.preload)
    return _run(args.spec, out, idle=args.command == "idle")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python3 -m device_agent", description="socfarm device agent")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    run = sub.add_parser("run", help="run one job; events as JSON lines on stdout")
    run.add_argument("spec", metavar="SPEC", help="job spec file (JSON), or - for stdin")
    idle = sub.add_parser("idle", help="sample the power sensors with nothing running; events as JSON lines")
    idle.add_argument("spec", metavar="SPEC", help="idle spec file (JSON), or - for stdin")
    srv = sub.add_parser("serve", help="run requests ({command, spec} JSON lines on stdin) one after another, "
                                       "in one process; events as JSON lines")
    srv.add_argument("--no-preload", dest="preload", action="store_false",
                     help="do not import the TFLite runtime before the first request (a board whose components "
                          "need none: simulated ones)")
    sub.add_parser("version", help="print agent and runtime versions as JSON")
    bw = sub.add_parser("membw", help="STREAM-like memory bandwidth (copy/scale/add/triad), JSON on stdout")
    bw.add_argument("--cpus", required=True, help="CPU ids, one pinned thread each, e.g. 0 or 4,5")
    bw.add_argument("--size-mb", type=float, default=None,
                    help="MiB per array, split between the threads (default 64)")
    bw.add_argument("--repeats", type=int, default=None, help="runs per kernel, the best is reported (default 10)")
    return p


def _claim_stdout() -> IO[str]:
    """Keep the real stdout for events only; point fd 1 and sys.stdout at stderr."""
    sys.stdout.flush()
    events_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return io.open(events_fd, "w", encoding="utf-8", newline="\n")


def _version(out: IO[str]) -> int:
    """Agent, runtime and numpy versions as one JSON line, after running the self-check model.

    A runtime that cannot run it (none importable, a numpy ABI mismatch) is a ``RuntimeMissing``: the
    line then has ``error`` and ``message``, the message goes to stderr too, and the exit code is 2.
    """
    info: Dict[str, Any] = {"agent_version": AGENT_VERSION, "runtime": None,
                            "python": "%d.%d.%d" % sys.version_info[:3]}
    try:
        try:
            import numpy

            from device_agent.runtime import import_runtime
            from device_agent.selfcheck import self_check
        except ImportError as exc:
            raise RuntimeMissing("numpy cannot be imported on Python %s: %s" % (info["python"], exc))
        info["numpy"] = numpy.__version__
        runtime = import_runtime()
        info["runtime"] = runtime.describe()
        info["self_check"] = self_check(runtime)
    except RuntimeMissing as exc:
        print(str(exc), file=sys.stderr)
        info.update(error=type(exc).__name__, message=str(exc))
        out.write(json.dumps(info) + "\n")
        out.flush()
        return exc.exit_code
    out.write(json.dumps(info) + "\n")
    out.flush()
    return 0


def _membw(args: argparse.Namespace, out: IO[str]) -> int:
    """One JSON object: GB/s per kernel, one thread per CPU; or ``{"error", "message"}`` and exit 2."""
    from device_agent.affinity import pin
    from device_agent.membw import DEFAULT_REPEATS, DEFAULT_SIZE_MB, run_membw

    size_mb = DEFAULT_SIZE_MB if args.size_mb is None else args.size_mb
    repeats = DEFAULT_REPEATS if args.repeats is None else args.repeats
    try:
        try:
            cpus = [int(x) for x in args.cpus.split(",") if x.strip()]
        except ValueError:
            raise SpecError("--cpus: expected comma-separated CPU ids, got %r" % args.cpus)
        if not cpus:
            raise SpecError("--cpus: no CPU id given")
        if size_mb <= 0 or repeats < 1:
            raise SpecError("--size-mb must be > 0 and --repeats >= 1")
        effective = pin(cpus)
        try:  # one thread per CPU, each pinned to its CPU
            result = run_membw(size_mb, repeats, cpus=effective)
        except OSError as exc:
            raise SpecError("--cpus: cannot pin a thread to its CPU: %s" % exc)
        except MemoryError:
            raise SpecError("--size-mb: 3 arrays of %g MiB do not fit in memory" % size_mb)
    except AgentError as exc:
        out.write(json.dumps({"error": type(exc).__name__, "message": str(exc).replace("component.cpus", "--cpus")})
                  + "\n")
        out.flush()
        return exc.exit_code
    result.update({"agent_version": AGENT_VERSION, "cpus_effective": effective, "size_mb": size_mb})
    out.write(json.dumps(result) + "\n")
    out.flush()
    return 0


def _run(source: str, out: IO[str], idle: bool = False) -> int:
    events = EventWriter(out)
    previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        return execute(lambda: _load_spec(source), events, idle)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise Interrupted("stopped by signal %d" % signum)


def _load_spec(source: str) -> Any:
    try:
        if source == "-":
            text = sys.stdin.read()
            where = "stdin"
        else:
            with open(source, encoding="utf-8") as f:
                text = f.read()
            where = source
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError("spec: cannot read %s: %s" % (source, exc))
    try:
        return json.loads(text)
    except ValueError as exc:
        raise SpecError("spec: invalid JSON on %s: %s" % (where, exc))


if __name__ == "__main__":
    exit_code = main()
    if sys.argv[1:2] == ["serve"]:
        # Every request's files are written and closed, every event flushed (EventWriter flushes each):
        # end without the interpreter's teardown of the runtime and numpy, tens of ms that the controller
        # waits for at the end of each board's share of a sweep.
        sys.stderr.flush()
        os._exit(exit_code)
    sys.exit(exit_code)

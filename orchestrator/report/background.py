"""A run's report written by a process of its own, after the sweep has printed its result.

``orchestrator sweep`` (``--report background``, the default) starts
``orchestrator report RUN --compact`` detached from the terminal and exits: the
shell prompt comes back while the run's parts move into the store's dataset
and the report's analysis, figures and tables (a second or two for a small run)
are made. The process logs into the run's folder
(``report.log``); a marker in the controller's state folder
(``<state>/reports-pending/<run>.json``) names its process. The writer is
pending for as long as that process runs: it has ended, its log complete,
only once the process is gone (a marker whose process is gone is removed by
the next look).

A report writer runs on the controller. When the controller is also a board
(the embedded default: ``ansible_connection: local``), its load would reach
that board's next measurement, so a sweep on a local board first waits for
the pending reports of its ``--state`` (``wait_for_pending``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

PENDING_DIR = "reports-pending"
LOG_NAME = "report.log"


@dataclass
class PendingReport:
    run_id: str
    pid: int
    index: Path  # reports/<run>/index.html, once written
    log: Path
    marker: Path


def pending_dir(state_dir: Path) -> Path:
    return Path(state_dir) / PENDING_DIR


def start_report(run_id: str, run_dir: Path, store_root: Path, reports_dir: Path,
                 state_dir: Path, power_cap_w: float | None = None) -> PendingReport:
    """Start the report writer of ``run_id``; it outlives this process."""
    marker = pending_dir(state_dir) / f"{run_id}.json"
    marker.parent.mkdir(parents=True, exist_ok=True)
    log = Path(run_dir) / LOG_NAME
    # --compact: the run's parts move into the store's dataset first (the sweep left that to this process)
    cmd = [sys.executable, "-m", "orchestrator", "report", run_id, "--compact", "--store",
           str(Path(store_root).resolve()), "--reports", str(Path(reports_dir).resolve())]
    if power_cap_w is not None:
        cmd += ["--power-cap-w", repr(float(power_cap_w))]
    with open(log, "ab") as log_file:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)  # Ctrl-C in the terminal: not ours
    index = Path(reports_dir) / run_id / "index.html"
    _write_json(marker, {"run_id": run_id, "pid": proc.pid, "index": str(index.resolve()), "log": str(log.resolve()),
                         "started_wall": time.time()})
    return PendingReport(run_id, proc.pid, index, log, marker)


def pending(state_dir: Path) -> list[PendingReport]:
    """Report writers of this state folder that are still running (stale markers are removed)."""
    found = []
    folder = pending_dir(state_dir)
    if not folder.is_dir():
        return []
    for marker in sorted(folder.glob("*.json")):
        try:
            entry = json.loads(marker.read_text())
            report = PendingReport(entry["run_id"], int(entry["pid"]), Path(entry["index"]), Path(entry["log"]), marker)
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being written, or not ours: never a reason to fail a sweep
        if _alive(report.pid, report.run_id):
            found.append(report)
        else:
            marker.unlink(missing_ok=True)
    return found


def wait_for_pending(state_dir: Path, timeout_s: float, note: Callable[[str], None] | None = None,
                     poll_s: float = 0.05) -> list[PendingReport]:
    """Wait until no report writer of ``state_dir`` runs (at most ``timeout_s``); returns those still running."""
    deadline = time.monotonic() + timeout_s
    left = pending(state_dir)
    if left and note is not None:
        names = ", ".join(r.run_id for r in left)
        note(f"waiting for the report of {names}, being written on this machine, which is also a board here "
             f"(at most {timeout_s:.0f} s)")
    while left and time.monotonic() < deadline:
        time.sleep(poll_s)
        left = pending(state_dir)
    return left


def _alive(pid: int, run_id: str) -> bool:
    """The process runs (not a zombie) and is the writer of ``run_id`` (a pid can be reused)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state != "Z" and run_id.encode() in cmdline


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)

"""A board's power meter driven around each job's measurement window.

The meter streams from before the agent starts (so it covers model load,
warm-up and the window) until it holds a point at or past the end of the
window the agent reports, read while it acquires by a poller thread (so a
window of any length is covered, and little is left to read when the job
ends). Its samples are cut to the window, converted from the controller's
clock to the board's with the offsets estimated around that job, and stored;
the job's energy is computed from the stored samples
(``orchestrator.analysis.energy``), as the report does.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from orchestrator.config.inventory import Board, MeterSpec
from orchestrator.errors import MeterError
from orchestrator.meters.b2900 import B2900Meter
from orchestrator.meters.b2900_stream import B2900Stream, StreamResult
from orchestrator.transport.clock import JobClock

# Samples kept around the window in the power table (for plots and audits).
MARGIN_S = 0.1
POLL_S = 0.05  # the poller reads the instrument this often while a job runs
#: Beyond the window's end, how long to wait for the meter's point that covers it.
COVER_GRACE_S = 2.0
#: The identity string the virtual instrument answers (``*IDN?``): its figures are modelled.
VIRTUAL_IDN_MARK = "socfarm-virtual"


@dataclass(frozen=True)
class Capture:
    """What the meter took around one job."""

    stream: StreamResult
    covered: bool  # a point at or past the time the capture had to reach was read


class MeterSession:
    def __init__(self, spec: MeterSpec, driver: B2900Meter, idn: str = ""):
        self.spec = spec
        self.driver = driver
        self.idn = idn
        self._stream: B2900Stream | None = None
        self._poller: threading.Thread | None = None
        self._stop_polling = threading.Event()
        self._poll_error: BaseException | None = None

    @property
    def simulated(self) -> bool:
        """The instrument is a model (a virtual B2900): its power figures are simulated."""
        return self.spec.kind == "virtual_b2900" or VIRTUAL_IDN_MARK in self.idn

    # -- one capture ------------------------------------------------------------
    def begin(self) -> None:
        """Start streaming, read in the background until :meth:`finish`."""
        if self._stream is not None:
            raise MeterError(f"{self.driver.resource}: begin() while a capture is running")
        stream = B2900Stream(self.driver)
        stream.start()
        self._stream = stream
        self._poll_error = None
        self._stop_polling.clear()
        self._poller = threading.Thread(target=self._poll_loop, args=(stream,), name="meter-poller", daemon=True)
        self._poller.start()

    def _poll_loop(self, stream: B2900Stream) -> None:
        try:
            while not self._stop_polling.wait(stream.next_poll_in_s(POLL_S)):
                stream.poll()
        except BaseException as exc:  # noqa: BLE001 - handed to finish()
            self._poll_error = exc

    def finish(self, until_s: float | None = None) -> Capture:
        """Read until a point at or past controller time ``until_s`` (bounded wait), stop, return everything."""
        stream = self._stream
        if stream is None:
            raise MeterError(f"{self.driver.resource}: finish() without begin()")
        self._stream = None
        self._stop_poller()
        try:
            if self._poll_error is not None:
                raise self._poll_error
            covered = True
            if until_s is not None:
                timeout = max(0.0, until_s - time.monotonic()) + 20 * self.spec.interval_s + COVER_GRACE_S
                covered = stream.wait_until(until_s, timeout)
            return Capture(stream.stop(), covered)
        except BaseException:
            stream.abandon()
            raise

    def abandon(self) -> None:
        """Stop a running capture after a failure elsewhere (never raises)."""
        stream, self._stream = self._stream, None
        self._stop_poller()
        if stream is not None:
            stream.abandon()

    def _stop_poller(self) -> None:
        self._stop_polling.set()
        if self._poller is not None:
            self._poller.join(timeout=30.0)
            self._poller = None

    # -- results ------------------------------------------------------------------
    def samples(self, capture: Capture, window_ns: tuple[int, int], clock: JobClock, run_id: str,
                job_id: str) -> tuple[pd.DataFrame, dict[str, Any]]:
        """The samples around the window on the board's clock (the power table's rows) and the meter's
        figures for the results row: its configured interval, the rate its timestamps show over the
        window and the largest gap between two of its points there."""
        trace = capture.stream.trace
        c = trace.t_mono_s
        ends = c[[0, -1]]
        board_ends = np.array([clock.to_board_ns(x * 1e9) / 1e9 for x in ends])
        # the offset is linear in time between the two estimates: interpolate it at every point
        t = c + np.interp(c, ends, board_ends - ends)
        t0, t1 = window_ns[0] / 1e9, window_ns[1] / 1e9
        near = (t >= t0 - MARGIN_S) & (t <= t1 + MARGIN_S)
        rows = pd.DataFrame({"run_id": run_id, "job_id": job_id, "source": "meter", "rail": "board",
                             "t_mono_s": t[near], "power_w": trace.power_w[near]})
        inside = t[(t >= t0) & (t <= t1)]
        figures = {"meter_interval_s": self.spec.interval_s, "meter_rate_hz": None, "meter_max_gap_s": None}
        if inside.size >= 2:
            figures["meter_rate_hz"] = (inside.size - 1) / (inside[-1] - inside[0])
            figures["meter_max_gap_s"] = float(np.diff(inside).max())
        return rows, figures


@contextlib.contextmanager
def open_meter(board: Board, ground_truth_dir: Path | None = None) -> Iterator[MeterSession | None]:
    """The board's meter for the duration of its jobs (a virtual one is started here)."""
    spec = board.meter
    if spec is None or spec.kind == "none":
        yield None
        return
    with contextlib.ExitStack() as stack:
        resource = spec.resource
        if spec.kind == "virtual_b2900":
            from orchestrator.meters.activity import CpuActivityPower
            from orchestrator.meters.virtual_b2900 import VirtualB2900

            cpus = sorted({c for comp in board.components for c in comp.cpus})
            activity = stack.enter_context(CpuActivityPower(spec.idle_w, spec.per_cpu_active_w, cpus=cpus))
            log = ground_truth_dir / f"{board.name}-meter-ground-truth.jsonl" if ground_truth_dir else None
            server = stack.enter_context(VirtualB2900(activity, ground_truth_log=log))
            resource = f"TCPIP::127.0.0.1::{server.port}::SOCKET"
        driver = stack.enter_context(
            B2900Meter(
                resource,
                voltage_v=spec.voltage_v,
                current_limit_a=spec.current_limit_a,
                aperture_s=spec.aperture_s,
                interval_s=spec.interval_s,
                # *RST switches the output off: when the SMU supplies the board, that powers it down.
                reset_on_configure=False,
            )
        )
        session = MeterSession(spec, driver, idn=driver.identify())
        stack.callback(session.abandon)
        yield session

"""Driver for Keysight B2900-series SMUs powering a board, through pyvisa.

The same code path serves a bench instrument and the virtual one of
``orchestrator.meters.virtual_b2900`` (e.g. ``TCPIP::127.0.0.1::5025::SOCKET``).

One measurement is: :meth:`B2900Meter.configure` (timer-triggered acquisition
of ``points`` current readings, binary float64 transfer of current and time
pairs), :meth:`B2900Meter.start` (``:INIT``, timestamped on the controller's
``time.monotonic()``), :meth:`B2900Meter.fetch` (``:FETCh:ARRay?``, blocking
on the instrument until the acquisition is complete) or
:meth:`B2900Meter.abort_and_fetch` (``:ABORt`` first, for an acquisition armed
longer than needed), giving a :class:`~orchestrator.meters.energy.PowerTrace`
on the controller's clock.

``:FETCh:ARRay?`` (not ``:FETCh:ARRay:CURRent?``, which on the instrument
returns the currents alone) is what returns the (current, time) pairs selected
by ``:FORMat:ELEMents:SENSe CURR,TIME``.

Every I/O has a timeout; every pyvisa, socket or protocol failure becomes a
:class:`~orchestrator.errors.MeterError` naming the resource and the step.
After an I/O failure the session is closed (its buffers may hold a late
answer) and reopened on the next call.

Hardware note: ``*RST`` switches the SMU output off. When the SMU is the
board's supply, construct the meter with ``reset_on_configure=False`` once the
board is up; ``configure`` then sends every setting explicitly without the
reset, so the resulting state is the same.
"""

from __future__ import annotations

import math
import socket
import time

import numpy as np
import pyvisa
import pyvisa.constants
import pyvisa.errors

from ..errors import MeterError
from .energy import PowerTrace

__all__ = ["B2900Meter"]

MAX_POINTS = 100_000
#: The instrument's "no data" marker (9.91E+37) and anything near it.
_NO_DATA_THRESHOLD = 9.9e37
#: Bound on ``:SYST:ERR?`` reads when draining the queue (10 entries + overflow).
_MAX_ERROR_READS = 32


def _no_nagle(inst, resource: str) -> bool:
    """VISA's default for TCP/IP sessions (VI_ATTR_TCPIP_NODELAY true: every write leaves at once). pyvisa-py
    does not apply it to SOCKET sessions, nor does its attribute setter reach the socket, so its socket is set
    directly. Without it, a query right behind a write waits for the delayed acknowledgement of the write
    (about 40 ms on Linux): a stream's start and stop are such pairs, twice per job. True when set."""
    if not resource.upper().startswith("TCPIP"):
        return False
    session = getattr(getattr(inst, "visalib", None), "sessions", {}).get(getattr(inst, "session", None))
    sock = getattr(session, "interface", None)
    if isinstance(sock, socket.socket):  # pyvisa-py
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return True
    try:  # other backends (NI-VISA sets it by default)
        inst.set_visa_attribute(pyvisa.constants.ResourceAttribute.tcpip_nodelay, pyvisa.constants.VisaBoolean.true)
        return True
    except Exception:  # noqa: BLE001 - a backend without the attribute: only slower
        return False


class B2900Meter:
    """A B2900 SMU sourcing ``voltage_v`` and measuring the board's current."""

    name = "b2900"

    def __init__(
        self,
        resource: str,
        *,
        voltage_v: float,
        current_limit_a: float,
        aperture_s: float,
        interval_s: float,
        timeout_ms: int = 5000,
        visa_library: str = "@py",
        reset_on_configure: bool = True,
    ):
        if not resource:
            raise ValueError("resource must be a VISA resource string")
        for label, value in (
            ("voltage_v", voltage_v),
            ("current_limit_a", current_limit_a),
            ("aperture_s", aperture_s),
            ("interval_s", interval_s),
        ):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{label} must be a positive number, got {value!r}")
        if aperture_s > interval_s:
            raise ValueError(
                f"aperture_s ({aperture_s}) must not exceed interval_s ({interval_s}): "
                "the instrument would ignore triggers"
            )
        if int(timeout_ms) <= 0:
            raise ValueError(f"timeout_ms must be positive, got {timeout_ms!r}")
        self.resource = resource
        self.voltage_v = float(voltage_v)
        self.current_limit_a = float(current_limit_a)
        self.aperture_s = float(aperture_s)
        self.interval_s = float(interval_s)
        self.timeout_ms = int(timeout_ms)
        self.visa_library = visa_library
        self.reset_on_configure = bool(reset_on_configure)

        self._rm: pyvisa.ResourceManager | None = None
        self._inst = None
        self._points: int | None = None
        self._start_mid: float | None = None
        self._start_half_width: float = 0.0
        self._expected_end: float | None = None

    # -- session ------------------------------------------------------------
    def __repr__(self) -> str:
        return f"B2900Meter({self.resource!r}, voltage_v={self.voltage_v}, interval_s={self.interval_s})"

    def _fail(self, doing: str, exc: BaseException | None = None, detail: str | None = None) -> MeterError:
        if detail is None:
            if isinstance(exc, pyvisa.errors.VisaIOError) and exc.error_code == pyvisa.constants.StatusCode.error_timeout:
                detail = "timed out (no answer within the timeout)"
            elif exc is not None:
                detail = f"{type(exc).__name__}: {exc}"
            else:
                detail = "failed"
        return MeterError(f"B2900 at {self.resource}: {doing}: {detail}")

    def open(self) -> "B2900Meter":
        """Open the VISA session (done implicitly by every operation)."""
        if self._inst is not None:
            return self
        try:
            if self._rm is None:
                self._rm = pyvisa.ResourceManager(self.visa_library)
            inst = self._rm.open_resource(self.resource, open_timeout=self.timeout_ms)
        except Exception as exc:  # backends raise bare Exception on connect failures
            raise self._fail("opening the VISA session", exc) from exc
        try:
            inst.timeout = self.timeout_ms
            if self.resource.upper().rstrip().endswith("::SOCKET"):
                inst.read_termination = "\n"
                inst.write_termination = "\n"
            else:
                inst.write_termination = "\n"
            _no_nagle(inst, self.resource)
        except Exception as exc:
            try:
                inst.close()
            except Exception:
                pass
            raise self._fail("setting up the VISA session", exc) from exc
        self._inst = inst
        return self

    def _discard_session(self) -> None:
        inst, self._inst = self._inst, None
        if inst is not None:
            try:
                inst.close()
            except Exception:
                pass

    def close(self) -> None:
        """Close this meter's session only. The ResourceManager is not closed: pyvisa shares one per VISA
        library in the process, and closing it would close every other board's meter session too."""
        self._discard_session()
        self._rm = None

    def __enter__(self) -> "B2900Meter":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def _io(self, doing: str, fn, *args, timeout_ms: int | None = None, **kwargs):
        """Run one pyvisa call; map every failure to MeterError."""
        inst = self.open()._inst
        try:
            if timeout_ms is not None:
                inst.timeout = int(timeout_ms)
            try:
                return fn(inst, *args, **kwargs)
            finally:
                if timeout_ms is not None and self._inst is inst:
                    inst.timeout = self.timeout_ms
        except (pyvisa.errors.Error, OSError, ValueError, UnicodeDecodeError) as exc:
            self._discard_session()
            raise self._fail(doing, exc) from exc

    def _write(self, command: str, doing: str | None = None) -> None:
        self._io(doing or f"writing {command!r}", lambda i: i.write(command))

    def _query(self, command: str, doing: str | None = None) -> str:
        return self._io(doing or f"querying {command!r}", lambda i: i.query(command)).strip()

    # -- operations ----------------------------------------------------------
    def identify(self) -> str:
        """``*IDN?`` of the instrument."""
        idn = self._query("*IDN?", "identifying (*IDN?)")
        if not idn:
            raise self._fail("identifying (*IDN?)", detail="empty answer")
        return idn

    def errors(self) -> list[str]:
        """Drain the instrument's error queue; ``[]`` when it is empty."""
        found: list[str] = []
        for _ in range(_MAX_ERROR_READS):
            entry = self._query(":SYST:ERR?", "reading the error queue (:SYST:ERR?)")
            code = entry.split(",", 1)[0].strip()
            try:
                if int(code) == 0:
                    return found
            except ValueError:
                raise self._fail("reading the error queue (:SYST:ERR?)", detail=f"garbled answer {entry!r}")
            found.append(entry)
        raise self._fail("reading the error queue (:SYST:ERR?)", detail=f"queue never emptied: {found}")

    def _check_errors(self, doing: str) -> None:
        found = self.errors()
        if found:
            raise MeterError(f"B2900 at {self.resource}: {doing}: instrument reported " + "; ".join(found))

    def points_for(self, duration_s: float) -> int:
        """Points whose span ``(points - 1) * interval_s`` covers ``duration_s``."""
        if not (math.isfinite(duration_s) and duration_s > 0):
            raise ValueError(f"duration_s must be positive, got {duration_s!r}")
        points = int(math.ceil(duration_s / self.interval_s - 1e-9)) + 1
        if points > MAX_POINTS:
            raise ValueError(
                f"{duration_s} s at {self.interval_s} s per point needs {points} points; "
                f"the instrument holds at most {MAX_POINTS} (raise interval_s)"
            )
        return points

    def setup_commands(self, points: int) -> list[str]:
        """Source, sense, trigger and data-format settings of a timer-triggered acquisition of ``points``
        (``*RST`` first when ``reset_on_configure``)."""
        commands = ["*RST"] if self.reset_on_configure else []
        return commands + [
            ":SOUR:FUNC:MODE VOLT",
            f":SOUR:VOLT {self.voltage_v:.9g}",
            ':SENS:FUNC "CURR"',
            f":SENS:CURR:PROT {self.current_limit_a:.9g}",
            f":SENS:CURR:APER {self.aperture_s:.9g}",
            ":TRIG:SOUR TIM",
            f":TRIG:TIM {self.interval_s:.9g}",
            f":TRIG:COUN {points}",
            ":FORM REAL,64",
            ":FORM:BORD NORM",
            ":FORM:ELEM:SENS CURR,TIME",
            ":OUTP ON",
        ]

    def send_setup(self, commands: list[str]) -> None:
        """Write setup commands one by one (waiting for ``*RST`` to complete)."""
        for cmd in commands:
            self._write(cmd, f"configuring ({cmd})")
            if cmd == "*RST":
                self._query("*OPC?", "waiting for *RST to complete (*OPC?)")

    def configure(self, points: int) -> None:
        """Program a timer-triggered acquisition of ``points`` current readings."""
        points = int(points)
        if not 1 <= points <= MAX_POINTS:
            raise ValueError(f"points must be in 1..{MAX_POINTS}, got {points}")
        self._points = None
        self._start_mid = None
        commands = self.setup_commands(points) + [
            ":TRAC:FEED:CONT NEV",
            ":TRAC:FEED SENS",
            f":TRAC:POIN {points}",
            ":TRAC:FEED:CONT NEXT",
        ]
        self.send_setup(commands)
        self._check_errors(f"configuring {points} points")
        self._points = points

    def start(self) -> float:
        """``:INIT``; returns the controller time of the acquisition start.

        That is the midpoint of the ``time.monotonic()`` readings taken right
        before and after the write; half their distance is kept as the
        uncertainty (``start_uncertainty_s``). The one-way network latency to
        the instrument is not included in it.
        """
        if self._points is None:
            raise MeterError(f"B2900 at {self.resource}: start: configure() first")
        self.open()
        t_before = time.monotonic()
        self._write(":INIT", "starting the acquisition (:INIT)")
        t_after = time.monotonic()
        self._start_mid = (t_before + t_after) / 2.0
        self._start_half_width = (t_after - t_before) / 2.0
        self._expected_end = self._start_mid + (self._points - 1) * self.interval_s + self.aperture_s
        return self._start_mid

    @property
    def start_uncertainty_s(self) -> float:
        return self._start_half_width

    def fetch(self) -> PowerTrace:
        """Wait for the acquisition to complete and return it on the controller's clock."""
        self._require_started("fetch")
        remaining_ms = max(0.0, (self._expected_end or 0.0) - time.monotonic()) * 1000.0
        return self._read_trace(
            f"fetching {self._points} points (:FETC:ARR?)",
            timeout_ms=int(self.timeout_ms + remaining_ms),
            partial=False,
        )

    def abort_and_fetch(self) -> PowerTrace:
        """Stop the running acquisition (``:ABOR``) and return the points it took.

        For acquisitions armed longer than needed (e.g. a job's timeout), cut
        short when the job ends. If it had already completed, this is ``fetch``.
        """
        self._require_started("abort_and_fetch")
        self._write(":ABOR", "aborting the acquisition (:ABOR)")
        return self._read_trace(
            f"fetching up to {self._points} points after :ABOR (:FETC:ARR?)",
            timeout_ms=self.timeout_ms,
            partial=True,
        )

    def _require_started(self, what: str) -> None:
        if self._start_mid is None or self._points is None:
            raise MeterError(f"B2900 at {self.resource}: {what}: start() first")

    def check_no_data(self, values: np.ndarray, doing: str) -> None:
        """``MeterError`` if the instrument flagged any fetched value as no data (NaN, 9.91E+37)."""
        bad = ~np.isfinite(values) | (np.abs(values) >= _NO_DATA_THRESHOLD)
        if bad.any():
            raise self._fail(doing, detail=f"{int(bad.sum())} value(s) flagged as no data by the instrument")

    def _read_trace(self, doing: str, *, timeout_ms: int, partial: bool) -> PowerTrace:
        values = self._io(
            doing,
            lambda i: i.query_binary_values(
                ":FETC:ARR?", datatype="d", is_big_endian=True, container=np.array
            ),
            timeout_ms=timeout_ms,
        )
        values = np.asarray(values, dtype=np.float64)
        expected = 2 * self._points
        if partial:
            if values.size % 2 or not 2 <= values.size <= expected:
                raise self._fail(
                    doing, detail=f"expected up to {expected} values (current, time pairs), got {values.size}"
                )
        elif values.size != expected:
            raise self._fail(doing, detail=f"expected {expected} values (current, time pairs), got {values.size}")
        self.check_no_data(values, doing)
        current = values[0::2]
        meter_t = values[1::2]
        if meter_t.size > 1 and not np.all(np.diff(meter_t) > 0):
            raise self._fail(doing, detail="timestamps are not increasing")
        self._check_errors(doing)
        # The meter's time element is the start of each aperture. It is taken
        # relative to the first point (whether the instrument's timestamp timer
        # is reset at :INIT or not, the first trigger follows :INIT at once),
        # and the reading, a mean over the aperture, belongs to its centre.
        t_mono = self._start_mid + (meter_t - meter_t[0]) + self.aperture_s / 2.0
        return PowerTrace.from_current(
            t_mono,
            current,
            self.voltage_v,
            aperture_s=self.aperture_s,
            interval_s=self.interval_s,
            t_uncertainty_s=self._start_half_width,
            resource=self.resource,
        )

    def measure_window(self, duration_s: float) -> PowerTrace:
        """Configure, start and fetch one acquisition spanning ``duration_s``."""
        self.configure(self.points_for(duration_s))
        self.start()
        return self.fetch()

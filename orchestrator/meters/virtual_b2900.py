"""A virtual Keysight B2900-series SMU: a real SCPI server on a TCP socket.

It speaks the raw-socket protocol of the instrument's LAN port 5025 (one
program message per line, ``\\n``-terminated, ``\\r\\n`` accepted) so that the
controller's driver, and drivers written by others against Keysight's B2900
Programming Guide (SCPI Command Reference), run the very same code path
against it as against a bench instrument (pyvisa, resource
``TCPIP::<host>::<port>::SOCKET``).

Models and channels: ``model`` is one of :data:`MODELS`. Channel 1 feeds the
board; a two-channel model (B2902A, B2912A, B2962A, ...) also answers for
channel 2, which sources into a constant resistive load (``channel2_load_ohm``,
default 100 ohm). A channel is named by the numeric suffix of ``SOURce[c]``,
``SENSe[c]`` and ``OUTPut[c]`` (none means 1) or by a channel-list parameter
``(@1)``, ``(@2)``, ``(@1,2)``, ``(@1:2)``. Channel 2 of a one-channel model is
the guide's ``-114,"Header suffix out of range"`` as a suffix and
``-224,"Illegal parameter value"`` in a channel list.

Physics: the SMU sources a voltage ``V`` into the board and measures the current
``I(t) = P(t) / V`` (clamped to the current protection level), ``P(t)`` coming
from an :class:`~orchestrator.meters.activity.ActivitySource` (as a current
source it measures ``V = P / I`` up to the voltage protection level,
:func:`~orchestrator.meters.virtual_acquisition.board_reading`). Each reading
is the mean over the aperture, as an integrating ADC would give;
:mod:`orchestrator.meters.virtual_acquisition` computes them in vectorized
batches (10 kHz and more). For every acquisition of channel 1 the server keeps
the supplied energy as ground truth (exact when the source can integrate
itself, else on a grid ten times finer than the trigger interval):
``.acquisitions`` and optionally one JSON line each in ``ground_truth_log``;
:meth:`VirtualB2900.true_energy_j` integrates any window.

Clock: the server's clock is ``time.monotonic()`` of this machine, the same
clock the controller uses, so ground-truth windows are directly comparable with
controller timestamps. Like an instrument's firmware, the server acts on a
command when it arrives, not when its thread gets to it: the timer reset
(``:SYST:TIME:TIM:COUN:RES``) and ``:INIT`` take the kernel's receive time of
the bytes that completed their line (``SO_TIMESTAMPNS``). On a loaded machine
the thread may run tens of ms later, and an acquisition started then would sit
that far from the time the driver took for its start (the send of ``:INIT``).

Supported SCPI subset (case-insensitive, short and long forms, optional nodes
in brackets, ``[c]`` the channel suffix; several commands per line separated by
``;`` with SCPI relative-path rules; queries marked ``[MIN|MAX|DEF]`` answer the
value assigned to that parameter when given one):

========================================================  ===========================
``*IDN?`` ``*RST`` ``*CLS`` ``*OPC`` ``*OPC?`` ``*WAI``    ``*TST?`` answers ``+0``
``*STB?`` ``*ESR?`` ``*ESE`` ``*ESE?`` ``*SRE`` ``*SRE?``  IEEE 488.2 status bytes
``[:SOURce[c]]:VOLTage[:LEVel][:IMMediate][:AMPLitude]``  ``<V>`` / ``? [MIN|MAX|DEF]``  (-210..210)
``[:SOURce[c]]:CURRent[:LEVel][:IMMediate][:AMPLitude]``  ``<A>`` / ``? [MIN|MAX|DEF]``  (-3.03..3.03)
``[:SOURce[c]]:FUNCtion:MODE``                            ``VOLTage|CURRent`` / ``?`` (``VOLT``/``CURR``)
``:OUTPut[c][:STATe]``                                    ``ON|OFF|1|0`` / ``?`` (``1``/``0``)
``:OUTPut[c]:ON:AUTO``                                    ``ON|OFF|1|0`` / ``?``: on at ``:INIT``/``:MEAS``
``:SENSe[c]:FUNCtion[:ON]`` ``:SENSe[c]:FUNCtion:OFF``    ``"CURR"[,"VOLT"][,"RES"]`` / ``?``
``:SENSe[c]:FUNCtion:ALL`` ``:SENSe[c]:FUNCtion:OFF:ALL``  every function on / off
``:SENSe[c]:FUNCtion[:ON]:COUNt?`` ``...:OFF:COUNt?``     how many are on / off
``:SENSe[c]:FUNCtion:STATe? "<function>"``                ``1`` / ``0``
``:SENSe[c]:CURRent[:DC]:PROTection[:LEVel]``             ``<A>`` / ``? [MIN|MAX|DEF]``  (1e-8..3.03)
``:SENSe[c]:VOLTage[:DC]:PROTection[:LEVel]``             ``<V>`` / ``? [MIN|MAX|DEF]``  (1e-6..210)
``:SENSe[c]:CURRent|VOLTage[:DC]:PROTection:TRIPped?``    ``1`` when in compliance now
``:SENSe[c]:CURRent|VOLTage[:DC]|RESistance:APERture``    ``<s>`` / ``? [MIN|MAX|DEF]``  (8e-6..2)
``:SENSe[c]:CURRent|VOLTage[:DC]|RESistance:NPLCycles``   ``<PLC>`` / ``? [MIN|MAX|DEF]``
``:SENSe[c]:REMote``                                      ``ON|OFF|1|0`` / ``?`` (kept, no effect)
``:SYSTem:LFRequency``                                    ``50|60`` / ``?``
``:TRIGger[:ALL]:SOURce``                                 ``AINT|TIMer[,(@..)]`` / ``?``
``:TRIGger[:ALL]:TIMer``                                  ``<s>[,(@..)]`` / ``?``  (2e-5..1e5)
``:TRIGger[:ALL]:COUNt``                                  ``<n>[,(@..)]`` / ``?``  (1..100000)
``:TRACe:FEED``                                           ``SENSe`` / ``?``  (control NEV only)
``:TRACe:POINts``                                         ``<n>`` / ``?``  (1..100000, NEV only)
``:TRACe:FEED:CONTrol``                                   ``NEXT|NEVer`` / ``?``
``:TRACe:CLEar``                                          (control NEV only)
``:TRACe:POINts:ACTual?``                                 points in the trace buffer
``:TRACe:FREE?``                                          ``available,total``
``:TRACe:DATA? [offset[,size]]``                          trace buffer, non-blocking
``:SENSe[c]:DATA? [offset[,size]]``                       result buffer so far, non-blocking
``:SENSe[c]:DATA:LATest?``                                the latest point
``:INITiate[:IMMediate][:ALL] [(@..)]``                   start acquisitions (default ``(@1)``)
``:ABORt[:ALL] [(@..)]``                                  abort them
``:FORMat[:DATA]``                                        ``ASCii|REAL,64|REAL,32`` / ``?``
``:FORMat:BORDer``                                        ``NORMal|SWAPped`` / ``?``
``:FORMat:ELEMents:SENSe``                                ``CURR[,VOLT][,TIME]`` / ``?``
``:FETCh:ARRay? [(@..)]``                                 all elements, blocks until done
``:FETCh:ARRay:CURRent|VOLTage|TIME? [(@..)]``            one element only
``:FETCh[:SCALar][:CURRent|VOLTage|RESistance|TIME]?``    the latest point ``[(@..)]``
``:READ[:SCALar][:<element>]? [(@..)]``                   ``:INIT`` then ``:FETCh[:SCALar]``
``:READ:ARRay[:<element>]? [(@..)]``                      ``:INIT`` then ``:FETCh:ARRay``
``:MEASure[:CURRent|VOLTage[:DC]|RESistance]? [(@..)]``   one spot reading
``:SYSTem:TIME:TIMer:COUNt?``                             seconds since the timer's reset
``:SYSTem:TIME:TIMer:COUNt:RESet``                        reset the timer now
``:SYSTem:TIME:TIMer:COUNt:RESet:AUTO``                   ``ON|OFF|1|0`` / ``?``
``:SYSTem:ERRor[:NEXT]?``                                 FIFO, 10 entries + -350
``:SYSTem:ERRor:ALL?``                                    every entry, comma separated
========================================================  ===========================

Channel lists: data of several channels come channel 1 first, comma separated
in ASCII (one block in the binary formats), whatever order the list gives, as
the guide's ``:MEASure?`` describes (``ch1curr,ch2curr``). The trigger and
trace settings are one set for the instrument here (a channel list on
``:TRIGger`` is checked, then applies to both channels); the trace buffer
records channel 1. ``RESistance`` is ``V / I`` when that function is on, else
"no data" (it is off after ``*RST``, as ``VOLT`` and ``CURR`` are on).

Aperture and NPLC are one setting per channel, common to its functions, linked
by ``nplc = aperture x line frequency`` (``:SYSTem:LFRequency``, 50 Hz unless
``line_frequency_hz`` says 60); outside 8 us..2 s (4e-4..100 PLC at 50 Hz,
4.8e-4..120 at 60 Hz) a value is set to the nearest limit, without error; the
default is 0.1 PLC. A new line frequency keeps the aperture (the guide does not
say which of the two it keeps).

As on the real instrument, the array queries return every element selected by
``:FORMat:ELEMents:SENSe`` interleaved per point (always in the fixed order
VOLT, CURR, TIME whatever order they were given in), while
``:FETCh:ARRay:CURRent?`` returns the currents only. Binary data
(``REAL,64``) is an IEEE 488.2 definite-length block ``#<n><len><bytes>``
followed by ``\\n``; ``NORMal`` byte order is big-endian. "No data" (a
function not measured, an empty buffer) is ``+9.910000E+37`` in ASCII and NaN
in binary.

Spot readings: ``:MEASure`` turns the output on (``:OUTPut:ON:AUTO``), waits one
aperture and reads the mean over it; its point becomes the channel's result
buffer (``:FETCh``, ``:SENSe:DATA``) until the next ``:INIT``/``:MEAS``/``:READ``.
While an acquisition of that channel runs it is -221 (settings conflict): the
guide does not say what the instrument does then.

Acquisitions: channel 1's voltage-source acquisitions are the board's, with
ground truth; channel 2's use its resistor (``I = V / R``, clamped like channel
1). A current-source acquisition is not modelled: ``:INIT`` on a channel in
``CURR`` mode is -221.

Time element: the start of each point's aperture, in seconds of the
instrument's timer. With ``:SYST:TIME:TIM:COUN:RES:AUTO ON`` (the default) the
timer restarts at 0 at each ``:INIT``; with ``OFF`` it counts from its last
reset (``:SYST:TIME:TIM:COUN:RES``, or the server's start), continuously across
acquisitions.

Buffers: the result buffer holds the current (or last) acquisition, read
blocking by ``:FETCh:ARRay?`` (waits for the end) and non-blocking by
``:SENSe:DATA?``. The trace buffer is appended every point while
``:TRACe:FEED:CONTrol`` is ``NEXT``, across acquisitions, until it holds
``:TRACe:POINts`` points; then the control changes to ``NEVer`` by itself (no
error). A smaller ``:TRACe:POINts`` drops the points beyond it. The
``[offset[,size]]`` of the buffer queries: :func:`~orchestrator.meters.scpi_syntax.data_window`.
``*RST`` restores every default: trace buffer cleared, control ``NEVer``,
100000 points, timer auto reset ``ON``; it keeps the line frequency, the error
queue and the status registers.

Status: an error sets the standard event status register's bit of its class
(command -1xx: 32, execution -2xx: 16, device -3xx: 8, query -4xx: 4);
``*OPC`` sets bit 0 once every acquisition has ended. ``*STB?`` has bit 2 while
the error queue holds an entry, bit 5 when ``*ESR`` & ``*ESE`` is not zero, and
bit 6 when another enabled bit (``*SRE``) is set. (These are the IEEE 488.2 and
SCPI conventions the guide refers to; the B2900 pages found did not show them.)

Fault injection: :meth:`VirtualB2900.stop` drops every client connection;
:meth:`VirtualB2900.inject_disconnect_after` drops them after a number of
points of the running (or next) acquisition of channel 1.

SCPI syntax (mnemonics, parameters, errors, data formats):
:mod:`orchestrator.meters.scpi_syntax`.

Every loop here is bounded: the accept loop by ``max_lifetime_s``, connection
loops by ``idle_timeout_s``, acquisitions by their point count.
"""

from __future__ import annotations

import re
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from orchestrator.meters.activity import ActivitySource, ConstantPower
from orchestrator.meters.scpi_syntax import (
    Node,
    ScpiError,
    boolean,
    channel_list,
    compile_pattern,
    data_window,
    fmt,
    format_values,
    header_parts,
    illegal,
    keyword,
    match,
    no_params,
    number,
    one_param,
    parse_command,
    parse_format,
    query_number,
    split_channel_list,
    split_commands,
    string_list,
    syntax,
    undefined,
)
from orchestrator.meters.virtual_acquisition import (
    ELEMENT_ORDER,
    MAX_POINTS,
    Acquisition,
    GroundTruth,
    Reading,
    TraceBuffer,
    board_reading,
    ground_truth,
    interleave,
    resistor_reading,
    run_acquisition,
    window_energy,
)

#: Linux's SO_TIMESTAMPNS (also its control message's type): the kernel stamps each received packet with
#: CLOCK_REALTIME (the socket module does not name it)
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


def _stamp_arrivals(sock: socket.socket) -> bool:
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        return True
    except OSError:
        return False


def _recv_stamped(sock: socket.socket, size: int) -> tuple[bytes, float]:
    """Bytes received and when they arrived, on ``time.monotonic()`` (now, without the kernel's stamp)."""
    data, ancdata, _flags, _addr = sock.recvmsg(size, socket.CMSG_SPACE(16))
    mono, real = time.monotonic(), time.time()
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= 16:
            sec, nsec = struct.unpack("qq", payload[:16])
            return data, min(mono, mono - (real - (sec + nsec * 1e-9)))
    return data, mono

__all__ = [
    "GroundTruth",
    "MODELS",
    "VirtualB2900",
]

ERROR_QUEUE_SIZE = 10
#: How long :ABOR waits for an aborted acquisition to publish its last points (bounded).
ABORT_SETTLE_S = 1.0

#: Models of the B2900 family and their channel counts.
MODELS = {
    "B2901A": 1, "B2902A": 2, "B2911A": 1, "B2912A": 2, "B2961A": 1, "B2962A": 2,
    "B2901B": 1, "B2902B": 2, "B2911B": 1, "B2912B": 2, "B2901BL": 1, "B2910BL": 1,
}

#: Header nodes whose numeric suffix names a channel (``SOUR2``, ``SENS2``, ``OUTP2``).
_CHANNEL_NODES = frozenset({"SOUR", "SOURCE", "SENS", "SENSE", "OUTP", "OUTPUT"})

VOLTAGE_MAX_V = 210.0
CURRENT_MAX_A = 3.03
CURRENT_LIMIT_MIN_A = 1e-8
#: The guide gives the range of a compliance as "the minimum to the maximum
#: measurement value of the channel"; this lower end is the simulator's choice.
VOLTAGE_LIMIT_MIN_V = 1e-6
CURRENT_LIMIT_DEFAULT_A = 1e-4
VOLTAGE_LIMIT_DEFAULT_V = 2.0
APERTURE_MIN_S = 8e-6
APERTURE_MAX_S = 2.0
NPLC_DEFAULT = 0.1
LINE_FREQUENCIES_HZ = (50, 60)
SENSE_FUNCTIONS = ("VOLT", "CURR", "RES")  # the order of the replies


# ---------------------------------------------------------------------------
# Instrument state
# ---------------------------------------------------------------------------

@dataclass
class _Channel:
    """Source and sense settings of one channel."""

    aperture_s: float  # common to the channel's functions (the guide: "common for all items")
    source_mode: str = "VOLT"  # VOLT | CURR
    voltage_v: float = 0.0
    current_a: float = 0.0
    output_on: bool = False
    auto_output_on: bool = True
    sense_functions: tuple[str, ...] = ("VOLT", "CURR")
    current_limit_a: float = CURRENT_LIMIT_DEFAULT_A
    voltage_limit_v: float = VOLTAGE_LIMIT_DEFAULT_V
    remote_sense: bool = False

    @property
    def level(self) -> float:
        return self.voltage_v if self.source_mode == "VOLT" else self.current_a

    @property
    def limit(self) -> float:
        """The compliance that applies: the current limit of a voltage source, the voltage limit of a current source."""
        return self.current_limit_a if self.source_mode == "VOLT" else self.voltage_limit_v


@dataclass
class _Settings:
    """Instrument-wide settings: trigger, trace buffer, data format, timer."""

    trigger_source: str = "AINT"
    trigger_timer_s: float = 1e-3
    trigger_count: int = 1
    trace_feed: str = "SENS"
    trace_points: int = MAX_POINTS
    trace_control: str = "NEV"
    data_format: str = "ASC"  # ASC | REAL64 | REAL32
    byte_order: str = "NORM"
    elements: tuple[str, ...] = ("VOLT", "CURR", "TIME")
    timer_auto_reset: bool = True


def _arrived(conn: "_Connection | None") -> float:
    """When the command being executed arrived (now, for one not read from a socket)."""
    return conn.arrived_s if conn is not None and conn.arrived_s is not None else time.monotonic()


class _Connection:
    def __init__(self, sock: socket.socket, peer):
        self.sock = sock
        self.peer = peer
        self.dropped = threading.Event()
        self.thread: threading.Thread | None = None
        self.arrived_s: float | None = None  # when the line being executed arrived (time.monotonic())

    def drop(self) -> None:
        self.dropped.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass


class _Abandon(Exception):
    """The connection went away while a query was waiting."""


# ---------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------


class VirtualB2900:
    """A virtual B2900 SMU serving SCPI on ``host:port`` (``port=0``: any free port)."""

    RECV_SIZE = 65536
    MAX_LINE = 1 << 20
    MAX_CONNECTIONS = 16

    def __init__(
        self,
        activity: ActivitySource,
        host: str = "127.0.0.1",
        port: int = 0,
        ground_truth_log: Path | None = None,
        *,
        model: str = "B2901A",
        serial: str = "VIRTUAL0001",
        channel2_load_ohm: float = 100.0,
        line_frequency_hz: int = 50,
        aperture_evals: int = 8,
        ground_truth_oversample: int = 10,
        idle_timeout_s: float = 600.0,
        max_lifetime_s: float = 24 * 3600.0,
        fetch_grace_s: float = 30.0,
    ):
        if not callable(getattr(activity, "power_w", None)):
            raise TypeError("activity must provide power_w(t_mono_s) -> float")
        if model not in MODELS:
            raise ValueError(f"unknown B2900 model {model!r}; one of {', '.join(MODELS)}")
        if not channel2_load_ohm > 0:
            raise ValueError("channel2_load_ohm must be positive")
        if line_frequency_hz not in LINE_FREQUENCIES_HZ:
            raise ValueError(f"line_frequency_hz must be 50 or 60, got {line_frequency_hz!r}")
        self.activity = activity
        self.host = host
        self._requested_port = int(port)
        self.ground_truth_log = Path(ground_truth_log) if ground_truth_log is not None else None
        self.model = model
        self.channels = MODELS[model]
        self.channel2_load_ohm = float(channel2_load_ohm)
        self.idn = f"Keysight Technologies,{model},{serial},socfarm-virtual"
        self.aperture_evals = max(1, int(aperture_evals))
        self.ground_truth_oversample = max(1, int(ground_truth_oversample))
        self.idle_timeout_s = float(idle_timeout_s)
        self.max_lifetime_s = float(max_lifetime_s)
        self.fetch_grace_s = float(fetch_grace_s)

        self._lock = threading.RLock()  # settings, acquisitions, connections, status
        self._line_frequency_hz = int(line_frequency_hz)
        self._settings = _Settings()
        self._channels = self._default_channels()
        self._errors: deque[tuple[int, str]] = deque()
        self._esr = 0  # standard event status register
        self._ese = 0  # its enable register
        self._sre = 0  # service request enable register
        self._opc_pending = False
        # Each channel's result buffer: its last acquisition (running or not) or spot reading.
        self._results: dict[int, Acquisition | Reading] = {}
        self._acq_seq = 0
        self._trace = TraceBuffer(MAX_POINTS)
        self._timer_zero = time.monotonic()  # the instrument timer's last reset
        self._acquisitions: deque[GroundTruth] = deque(maxlen=10_000)
        self._log_lock = threading.Lock()
        self._disconnect_after: int | None = None
        self._conns: list[_Connection] = []
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._port: int | None = None
        self.commands_received = 0

    def _default_channels(self) -> dict[int, _Channel]:
        return {c: _Channel(aperture_s=NPLC_DEFAULT / self._line_frequency_hz) for c in range(1, self.channels + 1)}

    # -- lifecycle --------------------------------------------------------
    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("VirtualB2900 is not started")
        return self._port

    @property
    def resource(self) -> str:
        """The VISA resource string of this server."""
        return f"TCPIP::{self.host}::{self.port}::SOCKET"

    def start(self) -> "VirtualB2900":
        if self._listener is not None:
            return self
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((self.host, self._requested_port))
        lsock.listen(8)
        lsock.settimeout(0.1)
        self._listener = lsock
        self._port = lsock.getsockname()[1]
        self._stopping.clear()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"vb2900-accept-{self._port}", daemon=True
        )
        self._accept_thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: abort every acquisition and drop every client connection."""
        self._stopping.set()
        lsock, self._listener = self._listener, None
        if lsock is not None:
            try:  # wakes the accept loop at once (a close alone leaves it in accept() until its 0.1 s timeout)
                lsock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                lsock.close()
            except OSError:
                pass
        with self._lock:
            results = list(self._results.values())
            conns = list(self._conns)
        for res in results:
            if isinstance(res, Acquisition):
                res.request_abort()
        for c in conns:
            c.drop()
        me = threading.current_thread()
        for th in [self._accept_thread] + [r.thread for r in results] + [c.thread for c in conns]:
            if th is not None and th is not me:
                th.join(timeout=2.0)

    def __enter__(self) -> "VirtualB2900":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- introspection / fault injection ------------------------------------
    @property
    def acquisitions(self) -> list[GroundTruth]:
        """Ground truth of every finished (or aborted) acquisition of channel 1, oldest first."""
        with self._lock:
            return list(self._acquisitions)

    @property
    def connection_count(self) -> int:
        with self._lock:
            return sum(1 for c in self._conns if not c.dropped.is_set())

    def error_queue(self) -> list[tuple[int, str]]:
        with self._lock:
            return list(self._errors)

    def true_energy_j(self, t0_mono_s: float, t1_mono_s: float, *, step_s: float | None = None) -> float:
        """Energy (J) the activity source draws over ``[t0_mono_s, t1_mono_s]``
        (monotonic clock of this machine): exact when the source has
        ``energy_j``, else a trapezoid on a grid of ``step_s`` (default 10 µs, or
        coarser to stay within a million points). The board's energy, whatever
        the SMU's output state and compliance."""
        return window_energy(self.activity, t0_mono_s, t1_mono_s, step_s)

    def inject_disconnect_after(self, n_points: int) -> None:
        """Drop every client connection once the running (or next) acquisition
        of channel 1 has taken ``n_points`` points. One-shot. The instrument
        itself keeps acquiring, as a real one would on a network glitch."""
        if n_points < 0:
            raise ValueError("n_points must be >= 0")
        with self._lock:
            self._disconnect_after = int(n_points)

    def drop_connections(self) -> None:
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            c.drop()

    # -- networking -------------------------------------------------------
    def _accept_loop(self) -> None:
        deadline = time.monotonic() + self.max_lifetime_s
        lsock = self._listener
        try:
            while not self._stopping.is_set() and time.monotonic() < deadline and lsock is not None:
                try:
                    sock, peer = lsock.accept()
                except socket.timeout:
                    continue
                except OSError:
                    break
                with self._lock:
                    self._conns = [c for c in self._conns if not c.dropped.is_set()]
                    if len(self._conns) >= self.MAX_CONNECTIONS or self._stopping.is_set():
                        sock.close()
                        continue
                    conn = _Connection(sock, peer)
                    self._conns.append(conn)
                conn.thread = threading.Thread(
                    target=self._serve, args=(conn,), name=f"vb2900-conn-{peer[1]}", daemon=True
                )
                conn.thread.start()
        finally:
            if not self._stopping.is_set():  # lifetime over: stop by ourselves
                threading.Thread(target=self.stop, daemon=True).start()

    def _send(self, conn: _Connection, data: bytes) -> bool:
        try:
            conn.sock.settimeout(10.0)
            conn.sock.sendall(data)
            conn.sock.settimeout(0.1)
            return True
        except OSError:
            return False

    def _serve(self, conn: _Connection) -> None:
        sock = conn.sock
        buf = bytearray()
        last = time.monotonic()
        try:
            sock.settimeout(0.1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            conn.drop()
            return
        stamped = _stamp_arrivals(sock)
        try:
            while not self._stopping.is_set() and not conn.dropped.is_set():
                if time.monotonic() - last > self.idle_timeout_s:
                    break
                try:
                    data, conn.arrived_s = (_recv_stamped(sock, self.RECV_SIZE) if stamped
                                            else (sock.recv(self.RECV_SIZE), time.monotonic()))
                except socket.timeout:
                    continue
                except OSError:
                    break
                if not data:
                    break
                last = time.monotonic()
                buf += data
                # Bounded: each pass consumes one line of the finite buffer.
                for _ in range(buf.count(b"\n")):
                    line, _, rest = bytes(buf).partition(b"\n")
                    buf = bytearray(rest)
                    reply = self._process_line(line.decode("latin-1"), conn)
                    if reply is not None and not self._send(conn, reply):
                        raise _Abandon()
                if len(buf) > self.MAX_LINE:
                    self._push_error(-223, "Too much data")
                    buf.clear()
        except _Abandon:
            pass
        finally:
            conn.drop()
            with self._lock:
                if conn in self._conns:
                    self._conns.remove(conn)

    # -- error queue and status ---------------------------------------------
    def _push_error(self, code: int, message: str) -> None:
        with self._lock:
            if len(self._errors) >= ERROR_QUEUE_SIZE:
                self._errors[-1] = (-350, "Queue overflow")
            else:
                self._errors.append((code, message))
            # the standard event status bit of the error's class
            if -199 <= code <= -100:
                self._esr |= 32  # command error
            elif -299 <= code <= -200:
                self._esr |= 16  # execution error
            elif -399 <= code <= -300:
                self._esr |= 8  # device-dependent error
            elif -499 <= code <= -400:
                self._esr |= 4  # query error

    def _running(self, channels=None) -> list[Acquisition]:
        """The acquisitions still running (of ``channels``, default all); caller holds the lock."""
        return [
            r for c, r in self._results.items()
            if isinstance(r, Acquisition) and not r.done.is_set() and (channels is None or c in channels)
        ]

    # -- parsing ----------------------------------------------------------
    def _process_line(self, line: str, conn: _Connection) -> bytes | None:
        line = line.strip("\r\n\0 \t")
        if not line:
            return None
        replies: list[bytes] = []
        path: list[tuple[str, int | None]] = []
        for i, raw in enumerate(split_commands(line)):
            cmd = raw.strip()
            if not cmd:
                if i == 0:
                    self._push_error(-102, "Syntax error")
                    break
                continue
            self.commands_received += 1
            try:
                reply, path = self._execute(cmd, path, first=(i == 0), conn=conn)
            except ScpiError as e:
                self._push_error(e.code, e.message)
                if -199 <= e.code <= -100:  # command errors: rest of the message is discarded
                    break
                continue
            except _Abandon:
                raise
            except Exception:  # a bug of the simulator must not take the server down
                self._push_error(-300, "Device-specific error")
                break
            if reply is not None:
                replies.append(reply)
        if not replies:
            return None
        return b";".join(replies) + b"\n"

    def _execute(self, cmd: str, path: list[tuple[str, int | None]], *, first: bool, conn: _Connection):
        header, is_query, params = parse_command(cmd)
        if header.startswith("*"):
            name = header[1:].upper()
            if not re.fullmatch(r"[A-Z]+", name):
                raise syntax()
            handler = self._COMMON.get((name, is_query))
            if handler is None:
                raise undefined()
            return handler(self, params, conn), path

        absolute = header.startswith(":") or first
        parts = header_parts(header[1:] if header.startswith(":") else header)
        if not absolute:
            parts = path + parts
        new_path = parts[:-1]
        names = [name for name, _ in parts]
        for nodes, setter, getter in self._TREE:
            if match(names, nodes):
                fn = getter if is_query else setter
                if fn is None:
                    raise undefined()
                return fn(self, params, conn, self._channel_of(parts)), new_path
        raise undefined()

    def _channel_of(self, parts: list[tuple[str, int | None]]) -> int:
        """The channel a header names: the suffix of its leading ``SOURce``,
        ``SENSe`` or ``OUTPut`` node (1 when none). Any other suffix but 1, or
        a channel the model lacks, is -114."""
        channel = 1
        for k, (name, suffix) in enumerate(parts):
            if suffix is None:
                continue
            if k == 0 and name in _CHANNEL_NODES:
                channel = suffix
            elif suffix != 1:
                raise ScpiError(-114, "Header suffix out of range")
        if not 1 <= channel <= self.channels:
            raise ScpiError(-114, "Header suffix out of range")
        return channel

    def _channel_list(self, params) -> tuple[int, ...]:
        """The channels of an optional channel-list parameter; ``(@1)`` when absent, as the guide says."""
        return channel_list(params, self.channels) or (1,)

    # -- helpers for handlers ------------------------------------------------
    @staticmethod
    def _reply(text: str) -> bytes:
        return text.encode("ascii")

    @staticmethod
    def _format_values(values: np.ndarray, s: _Settings) -> bytes:
        return format_values(values, s.data_format, s.byte_order)

    @staticmethod
    def _flag(on: bool) -> bytes:
        return b"1" if on else b"0"

    # -- common commands ----------------------------------------------------
    def _c_idn(self, params, conn):
        no_params(params)
        return self._reply(self.idn)

    def _c_rst(self, params, conn):
        no_params(params)
        with self._lock:
            self._abort_acquisitions()
            self._settings = _Settings()
            self._channels = self._default_channels()
            self._trace = TraceBuffer(MAX_POINTS)
        return None

    def _c_cls(self, params, conn):
        no_params(params)
        with self._lock:
            self._errors.clear()
            self._esr = 0
        return None

    def _c_opc(self, params, conn):
        no_params(params)
        with self._lock:
            if self._running():
                self._opc_pending = True  # bit 0 is set when the last acquisition ends
            else:
                self._esr |= 1
        return None

    def _c_opc_q(self, params, conn):
        no_params(params)
        self._wait_done(conn)
        return b"1"

    def _c_wai(self, params, conn):
        no_params(params)
        self._wait_done(conn)
        return None

    def _c_tst_q(self, params, conn):
        no_params(params)
        return b"+0"  # self-test passed

    def _c_esr_q(self, params, conn):
        no_params(params)
        with self._lock:
            value, self._esr = self._esr, 0  # reading clears it
        return self._reply(f"{value:+d}")

    def _c_ese(self, params, conn):
        value = int(round(number(one_param(params), 0, 255)))
        with self._lock:
            self._ese = value

    def _c_ese_q(self, params, conn):
        no_params(params)
        return self._reply(f"{self._ese:+d}")

    def _c_sre(self, params, conn):
        value = int(round(number(one_param(params), 0, 255)))
        with self._lock:
            self._sre = value & ~64  # bit 6 cannot be enabled

    def _c_sre_q(self, params, conn):
        no_params(params)
        return self._reply(f"{self._sre:+d}")

    def _c_stb_q(self, params, conn):
        no_params(params)
        with self._lock:
            stb = (4 if self._errors else 0) | (32 if self._esr & self._ese else 0)
            if stb & self._sre:
                stb |= 64  # master summary status
        return self._reply(f"{stb:+d}")

    _COMMON: dict[tuple[str, bool], Callable] = {
        ("IDN", True): _c_idn,
        ("RST", False): _c_rst,
        ("CLS", False): _c_cls,
        ("OPC", False): _c_opc,
        ("OPC", True): _c_opc_q,
        ("WAI", False): _c_wai,
        ("TST", True): _c_tst_q,
        ("ESR", True): _c_esr_q,
        ("ESE", False): _c_ese,
        ("ESE", True): _c_ese_q,
        ("SRE", False): _c_sre,
        ("SRE", True): _c_sre_q,
        ("STB", True): _c_stb_q,
    }

    # -- source and output ----------------------------------------------------
    def _set(self, **kw) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self._settings, k, v)

    def _chan_set(self, ch: int, **kw) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self._channels[ch], k, v)

    def _s_volt(self, params, conn, ch):
        self._chan_set(ch, voltage_v=number(one_param(params), -VOLTAGE_MAX_V, VOLTAGE_MAX_V, 0.0))

    def _q_volt(self, params, conn, ch):
        v = query_number(params, self._channels[ch].voltage_v, -VOLTAGE_MAX_V, VOLTAGE_MAX_V, 0.0)
        return self._reply(fmt(v))

    def _s_curr(self, params, conn, ch):
        self._chan_set(ch, current_a=number(one_param(params), -CURRENT_MAX_A, CURRENT_MAX_A, 0.0))

    def _q_curr(self, params, conn, ch):
        v = query_number(params, self._channels[ch].current_a, -CURRENT_MAX_A, CURRENT_MAX_A, 0.0)
        return self._reply(fmt(v))

    def _s_func_mode(self, params, conn, ch):
        self._chan_set(ch, source_mode=keyword(one_param(params), "VOLTage", "CURRent"))

    def _q_func_mode(self, params, conn, ch):
        no_params(params)
        return self._reply(self._channels[ch].source_mode)

    def _s_outp(self, params, conn, ch):
        self._chan_set(ch, output_on=boolean(one_param(params)))

    def _q_outp(self, params, conn, ch):
        no_params(params)
        return self._flag(self._channels[ch].output_on)

    def _s_outp_auto(self, params, conn, ch):
        self._chan_set(ch, auto_output_on=boolean(one_param(params)))

    def _q_outp_auto(self, params, conn, ch):
        no_params(params)
        return self._flag(self._channels[ch].auto_output_on)

    # -- sense functions, compliance, aperture ---------------------------------
    @staticmethod
    def _functions(params) -> list[str]:
        return string_list(params, "VOLTage", "CURRent", "RESistance", optional_dc=True)

    def _turn_functions(self, ch: int, names, on: bool) -> None:
        with self._lock:
            c = self._channels[ch]
            chosen = set(c.sense_functions) | set(names) if on else set(c.sense_functions) - set(names)
            c.sense_functions = tuple(f for f in SENSE_FUNCTIONS if f in chosen)

    def _quoted(self, functions) -> bytes:
        return self._reply(",".join(f'"{f}"' for f in functions))

    def _s_func_on(self, params, conn, ch):  # enables the given functions, leaving the others as they are
        self._turn_functions(ch, self._functions(params), True)

    def _q_func_on(self, params, conn, ch):
        no_params(params)
        return self._quoted(self._channels[ch].sense_functions)

    def _s_func_off(self, params, conn, ch):
        self._turn_functions(ch, self._functions(params), False)

    def _q_func_off(self, params, conn, ch):
        no_params(params)
        on = self._channels[ch].sense_functions
        return self._quoted(f for f in SENSE_FUNCTIONS if f not in on)

    def _s_func_all(self, params, conn, ch):
        no_params(params)
        self._turn_functions(ch, SENSE_FUNCTIONS, True)

    def _s_func_off_all(self, params, conn, ch):
        no_params(params)
        self._turn_functions(ch, SENSE_FUNCTIONS, False)

    def _q_func_on_count(self, params, conn, ch):
        no_params(params)
        return self._reply(f"{len(self._channels[ch].sense_functions):+d}")

    def _q_func_off_count(self, params, conn, ch):
        no_params(params)
        return self._reply(f"{len(SENSE_FUNCTIONS) - len(self._channels[ch].sense_functions):+d}")

    def _q_func_state(self, params, conn, ch):
        names = self._functions([one_param(params)])
        if len(names) != 1:
            raise ScpiError(-108, "Parameter not allowed")
        return self._flag(names[0] in self._channels[ch].sense_functions)

    def _s_curr_prot(self, params, conn, ch):
        value = number(one_param(params), CURRENT_LIMIT_MIN_A, CURRENT_MAX_A, CURRENT_LIMIT_DEFAULT_A)
        self._chan_set(ch, current_limit_a=value)

    def _q_curr_prot(self, params, conn, ch):
        v = query_number(
            params, self._channels[ch].current_limit_a, CURRENT_LIMIT_MIN_A, CURRENT_MAX_A, CURRENT_LIMIT_DEFAULT_A
        )
        return self._reply(fmt(v))

    def _s_volt_prot(self, params, conn, ch):
        value = number(one_param(params), VOLTAGE_LIMIT_MIN_V, VOLTAGE_MAX_V, VOLTAGE_LIMIT_DEFAULT_V)
        self._chan_set(ch, voltage_limit_v=value)

    def _q_volt_prot(self, params, conn, ch):
        v = query_number(
            params, self._channels[ch].voltage_limit_v, VOLTAGE_LIMIT_MIN_V, VOLTAGE_MAX_V, VOLTAGE_LIMIT_DEFAULT_V
        )
        return self._reply(fmt(v))

    def _tripped(self, ch: int, mode: str) -> bytes:
        """Whether channel ``ch`` is in compliance now (a reading at this instant)."""
        with self._lock:
            c = replace(self._channels[ch])
        if c.source_mode != mode:  # a voltage source has a current compliance, and vice versa
            return b"0"
        _, _, compliance = self._read_channel(ch, c, time.monotonic(), APERTURE_MIN_S, evals=1)
        return self._flag(compliance)

    def _q_curr_trip(self, params, conn, ch):
        no_params(params)
        return self._tripped(ch, "VOLT")

    def _q_volt_trip(self, params, conn, ch):
        no_params(params)
        return self._tripped(ch, "CURR")

    def _s_aper(self, params, conn, ch):
        default = NPLC_DEFAULT / self._line_frequency_hz
        value = number(one_param(params), APERTURE_MIN_S, APERTURE_MAX_S, default, clamp=True)
        self._chan_set(ch, aperture_s=value)

    def _q_aper(self, params, conn, ch):
        default = NPLC_DEFAULT / self._line_frequency_hz
        v = query_number(params, self._channels[ch].aperture_s, APERTURE_MIN_S, APERTURE_MAX_S, default)
        return self._reply(fmt(v))

    def _s_nplc(self, params, conn, ch):
        lfr = self._line_frequency_hz
        nplc = number(one_param(params), APERTURE_MIN_S * lfr, APERTURE_MAX_S * lfr, NPLC_DEFAULT, clamp=True)
        self._chan_set(ch, aperture_s=nplc / lfr)

    def _q_nplc(self, params, conn, ch):
        lfr = self._line_frequency_hz
        nplc = self._channels[ch].aperture_s * lfr
        return self._reply(fmt(query_number(params, nplc, APERTURE_MIN_S * lfr, APERTURE_MAX_S * lfr, NPLC_DEFAULT)))

    def _s_remote(self, params, conn, ch):
        self._chan_set(ch, remote_sense=boolean(one_param(params)))

    def _q_remote(self, params, conn, ch):
        no_params(params)
        return self._flag(self._channels[ch].remote_sense)

    def _s_lfr(self, params, conn, ch):
        value = number(one_param(params), 0.0, 1e6)
        if value not in LINE_FREQUENCIES_HZ:  # 50|60: anything else is not a choice
            raise illegal()
        with self._lock:
            self._line_frequency_hz = int(value)

    def _q_lfr(self, params, conn, ch):
        no_params(params)
        return self._reply(f"{self._line_frequency_hz:+d}")

    # -- trigger (one set for the instrument; a trailing channel list is checked) ----
    def _setting_param(self, params) -> str:
        rest, _ = split_channel_list(params, self.channels)
        return one_param(rest)

    def _s_trig_sour(self, params, conn, ch):
        self._set(trigger_source=keyword(self._setting_param(params), "AINT", "TIMer"))

    def _q_trig_sour(self, params, conn, ch):
        self._channel_list(params)
        return self._reply(self._settings.trigger_source)

    def _s_trig_tim(self, params, conn, ch):
        self._set(trigger_timer_s=number(self._setting_param(params), 2e-5, 1e5, 1e-3))

    def _q_trig_tim(self, params, conn, ch):
        self._channel_list(params)
        return self._reply(fmt(self._settings.trigger_timer_s))

    def _s_trig_coun(self, params, conn, ch):
        self._set(trigger_count=int(round(number(self._setting_param(params), 1, MAX_POINTS, 1))))

    def _q_trig_coun(self, params, conn, ch):
        self._channel_list(params)
        return self._reply(f"{self._settings.trigger_count:+d}")

    # -- trace buffer -----------------------------------------------------------
    def _require_trace_idle(self) -> None:
        # caller holds the lock; the manual allows these only with the control at NEVer
        if self._settings.trace_control != "NEV":
            raise ScpiError(-221, "Settings conflict")

    def _s_trac_feed(self, params, conn, ch):
        feed = keyword(one_param(params), "SENSe")
        with self._lock:
            self._require_trace_idle()
            self._settings.trace_feed = feed

    def _q_trac_feed(self, params, conn, ch):
        no_params(params)
        return self._reply(self._settings.trace_feed)

    def _s_trac_poin(self, params, conn, ch):
        points = int(round(number(one_param(params), 1, MAX_POINTS, MAX_POINTS)))
        with self._lock:
            self._require_trace_idle()
            self._settings.trace_points = points
            self._trace.resize(points)

    def _q_trac_poin(self, params, conn, ch):
        no_params(params)
        return self._reply(f"{self._settings.trace_points:+d}")

    def _s_trac_cont(self, params, conn, ch):
        self._set(trace_control=keyword(one_param(params), "NEXT", "NEVer"))

    def _q_trac_cont(self, params, conn, ch):
        no_params(params)
        return self._reply(self._settings.trace_control)

    def _s_trac_cle(self, params, conn, ch):
        no_params(params)
        with self._lock:
            self._require_trace_idle()
            self._trace.clear()

    def _q_trac_act(self, params, conn, ch):
        no_params(params)
        with self._lock:
            return self._reply(f"{self._trace.count:+d}")

    def _q_trac_free(self, params, conn, ch):
        no_params(params)
        with self._lock:
            total = self._trace.capacity
            return self._reply(f"{total - self._trace.count:+d},{total:+d}")

    def _q_trac_data(self, params, conn, ch):  # non-blocking: what is stored now
        with self._lock:
            s = self._settings
            window = data_window(params, self._trace.count, MAX_POINTS)
            columns = self._trace.columns(*window) if window else None
        return self._format_values(interleave(columns, s.elements), s)

    # -- result buffers ---------------------------------------------------------
    def _columns(self, ch: int, res: Acquisition | Reading, k0: int, k1: int) -> dict[str, np.ndarray]:
        """Elements of points ``[k0, k1)`` of channel ``ch``'s result ``res``,
        with ``RES`` = V / I when that function is on (else no data); caller holds the lock."""
        columns = dict(res.columns(k0, k1))
        volts, amps = columns["VOLT"], columns["CURR"]
        if "RES" in self._channels[ch].sense_functions:
            with np.errstate(divide="ignore", invalid="ignore"):
                columns["RES"] = np.where(amps != 0.0, volts / np.where(amps != 0.0, amps, 1.0), np.nan)
        else:
            columns["RES"] = np.full(k1 - k0, np.nan)
        return columns

    def _q_sens_data(self, params, conn, ch):  # non-blocking: the points acquired so far
        with self._lock:
            s, res = self._settings, self._results.get(ch)
            window = data_window(params, res.count if res else 0, MAX_POINTS)
            columns = self._columns(ch, res, *window) if window else None
        return self._format_values(interleave(columns, s.elements), s)

    def _q_sens_latest(self, params, conn, ch):
        no_params(params)
        with self._lock:
            s, res = self._settings, self._results.get(ch)
            n = res.count if res else 0
            columns = self._columns(ch, res, n - 1, n) if n else None
        return self._format_values(interleave(columns, s.elements), s)

    # -- timer, format --------------------------------------------------------
    def _q_timer(self, params, conn, ch):
        no_params(params)
        return self._reply(fmt(time.monotonic() - self._timer_zero))

    def _s_timer_reset(self, params, conn, ch):
        no_params(params)
        with self._lock:
            self._timer_zero = _arrived(conn)

    def _s_timer_auto(self, params, conn, ch):
        self._set(timer_auto_reset=boolean(one_param(params)))

    def _q_timer_auto(self, params, conn, ch):
        no_params(params)
        return self._flag(self._settings.timer_auto_reset)

    def _s_form(self, params, conn, ch):
        self._set(data_format=parse_format(params))

    def _q_form(self, params, conn, ch):
        no_params(params)
        f = self._settings.data_format
        return self._reply("ASC" if f == "ASC" else f"REAL,{f[4:]}")

    def _s_bord(self, params, conn, ch):
        self._set(byte_order=keyword(one_param(params), "NORMal", "SWAPped"))

    def _q_bord(self, params, conn, ch):
        no_params(params)
        return self._reply(self._settings.byte_order)

    def _s_elem(self, params, conn, ch):
        if not params:
            raise ScpiError(-109, "Missing parameter")
        chosen = {keyword(p, "VOLTage", "CURRent", "TIME") for p in params}
        self._set(elements=tuple(e for e in ELEMENT_ORDER if e in chosen))

    def _q_elem(self, params, conn, ch):
        no_params(params)
        return self._reply(",".join(self._settings.elements))

    # -- acquisitions ---------------------------------------------------------
    def _s_init(self, params, conn, ch):
        self._initiate(self._channel_list(params), _arrived(conn))
        return None

    def _initiate(self, channels: tuple[int, ...], t_start: float) -> None:
        with self._lock:
            s = self._settings
            for c in channels:
                chan = self._channels[c]
                if s.trigger_source == "TIM" and chan.aperture_s > s.trigger_timer_s:
                    raise ScpiError(-221, "Settings conflict")
                if chan.source_mode != "VOLT":  # not modelled: a current-source acquisition
                    raise ScpiError(-221, "Settings conflict")
            self._abort_acquisitions(channels)
            self._acq_seq += 1
            if s.timer_auto_reset:  # the timer restarts at the initiate action
                self._timer_zero = t_start
            for c in channels:
                chan = self._channels[c]
                if chan.auto_output_on:
                    chan.output_on = True  # output auto-on at :INIT, the instrument's default
                interval = s.trigger_timer_s if s.trigger_source == "TIM" else chan.aperture_s + 1e-4
                acq = Acquisition(
                    self._acq_seq, t_start, interval, aperture=chan.aperture_s, points=s.trigger_count,
                    voltage=chan.voltage_v, limit=chan.current_limit_a, output_on=chan.output_on,
                    measure_current="CURR" in chan.sense_functions, time_offset_s=t_start - self._timer_zero,
                )
                acq.thread = threading.Thread(
                    target=self._run_acquisition, args=(acq, c, self._load_of(c, chan)),
                    name=f"vb2900-acq-{acq.seq}-{c}", daemon=True,
                )
                self._results[c] = acq
                acq.thread.start()

    def _load_of(self, ch: int, chan: _Channel):
        """What channel ``ch`` feeds, as a power source: the board, or channel 2's resistor at its voltage."""
        if ch == 1:
            return self.activity
        return ConstantPower(chan.voltage_v ** 2 / self.channel2_load_ohm)

    def _s_abor(self, params, conn, ch):
        channels = self._channel_list(params)
        with self._lock:
            aborted = self._running(channels)
            self._abort_acquisitions(channels)
        # The instrument runs its commands in order: the next one finds the trigger system idle and every
        # point taken before the abort in the buffer (the acquisition thread publishes its last batch now).
        for acq in aborted:
            acq.done.wait(ABORT_SETTLE_S)
        return None

    def _result(self, conn: _Connection, ch: int, *, wait: bool) -> Acquisition | Reading:
        """Channel ``ch``'s result buffer (waiting for its acquisition to end when ``wait``); -230 when empty."""
        with self._lock:
            res = self._results.get(ch)
        if wait and isinstance(res, Acquisition):
            self._wait_for(conn, [res])
        if res is None or res.count == 0:
            raise ScpiError(-230, "Data corrupt or stale")
        return res

    def _fetch(self, params, conn, element: str | None, *, array: bool):
        """``:FETCh``: every point (``array``) or the latest of each listed channel, channel 1 first."""
        channels = self._channel_list(params)
        results = {c: self._result(conn, c, wait=True) for c in channels}
        values = []
        with self._lock:
            s = self._settings
            elements = (element,) if element else s.elements
            for c, res in results.items():
                k0 = 0 if array else res.count - 1
                values.append(interleave(self._columns(c, res, k0, res.count), elements))
        return self._format_values(np.concatenate(values), s)

    def _q_fetch_all(self, params, conn, ch):
        return self._fetch(params, conn, None, array=True)

    def _q_fetch_curr(self, params, conn, ch):
        return self._fetch(params, conn, "CURR", array=True)

    def _q_fetch_volt(self, params, conn, ch):
        return self._fetch(params, conn, "VOLT", array=True)

    def _q_fetch_time(self, params, conn, ch):
        return self._fetch(params, conn, "TIME", array=True)

    def _q_fetch_scalar(self, params, conn, ch):
        return self._fetch(params, conn, None, array=False)

    def _q_fetch_scalar_curr(self, params, conn, ch):
        return self._fetch(params, conn, "CURR", array=False)

    def _q_fetch_scalar_volt(self, params, conn, ch):
        return self._fetch(params, conn, "VOLT", array=False)

    def _q_fetch_scalar_res(self, params, conn, ch):
        return self._fetch(params, conn, "RES", array=False)

    def _q_fetch_scalar_time(self, params, conn, ch):
        return self._fetch(params, conn, "TIME", array=False)

    def _read(self, params, conn, element: str | None, *, array: bool):
        """``:READ``: ``:INITiate`` then ``:FETCh`` on the listed channels."""
        self._initiate(self._channel_list(params), _arrived(conn))
        return self._fetch(params, conn, element, array=array)

    def _q_read_scalar(self, params, conn, ch):
        return self._read(params, conn, None, array=False)

    def _q_read_scalar_curr(self, params, conn, ch):
        return self._read(params, conn, "CURR", array=False)

    def _q_read_scalar_volt(self, params, conn, ch):
        return self._read(params, conn, "VOLT", array=False)

    def _q_read_scalar_res(self, params, conn, ch):
        return self._read(params, conn, "RES", array=False)

    def _q_read_scalar_time(self, params, conn, ch):
        return self._read(params, conn, "TIME", array=False)

    def _q_read_all(self, params, conn, ch):
        return self._read(params, conn, None, array=True)

    def _q_read_curr(self, params, conn, ch):
        return self._read(params, conn, "CURR", array=True)

    def _q_read_volt(self, params, conn, ch):
        return self._read(params, conn, "VOLT", array=True)

    def _q_read_time(self, params, conn, ch):
        return self._read(params, conn, "TIME", array=True)

    # -- spot measurements ------------------------------------------------------
    def _read_channel(self, ch: int, chan: _Channel, t0: float, aperture: float, *, evals: int):
        """``(volts, amps, compliance)`` of channel ``ch`` with settings ``chan`` over ``[t0, t0 + aperture]``."""
        if ch == 1:
            return board_reading(
                self.activity, t0, aperture, chan.source_mode, chan.level, chan.limit, chan.output_on, evals
            )
        return resistor_reading(self.channel2_load_ohm, chan.source_mode, chan.level, chan.limit, chan.output_on)

    def _measure(self, params, conn, element: str | None):
        """``:MEASure``: one spot reading of each listed channel over its aperture."""
        channels = self._channel_list(params)
        with self._lock:
            if self._running(channels):  # the guide does not say; the simulator refuses
                raise ScpiError(-221, "Settings conflict")
            snaps = {}
            for c in channels:
                chan = self._channels[c]
                if chan.auto_output_on:
                    chan.output_on = True  # output auto-on, as at :INIT
                snaps[c] = replace(chan)
            timer_zero = self._timer_zero
        t0 = time.monotonic()
        time.sleep(min(max(chan.aperture_s for chan in snaps.values()), APERTURE_MAX_S))
        readings = {}
        for c, chan in snaps.items():  # outside the lock: a source may wait for its sampler
            volts, amps, compliance = self._read_channel(c, chan, t0, chan.aperture_s, evals=self.aperture_evals)
            readings[c] = Reading(
                volts if "VOLT" in chan.sense_functions else np.nan,
                amps if "CURR" in chan.sense_functions else np.nan,
                t0 - timer_zero, compliance,
            )
        values = []
        with self._lock:
            s = self._settings
            elements = (element,) if element else s.elements
            for c, reading in readings.items():
                self._results[c] = reading
                values.append(interleave(self._columns(c, reading, 0, 1), elements))
        return self._format_values(np.concatenate(values), s)

    def _q_meas_all(self, params, conn, ch):
        return self._measure(params, conn, None)

    def _q_meas_curr(self, params, conn, ch):
        return self._measure(params, conn, "CURR")

    def _q_meas_volt(self, params, conn, ch):
        return self._measure(params, conn, "VOLT")

    def _q_meas_res(self, params, conn, ch):
        return self._measure(params, conn, "RES")

    # -- error queue ------------------------------------------------------------
    @staticmethod
    def _entry(code: int, message: str) -> str:
        return f'{code:+d},"{message}"'

    def _q_syst_err(self, params, conn, ch):
        no_params(params)
        with self._lock:
            code, msg = self._errors.popleft() if self._errors else (0, "No error")
        return self._reply(self._entry(code, msg))

    def _q_syst_err_all(self, params, conn, ch):
        no_params(params)
        with self._lock:
            entries = list(self._errors) or [(0, "No error")]
            self._errors.clear()
        return self._reply(",".join(self._entry(code, msg) for code, msg in entries))

    _TREE: list[tuple[tuple[Node, ...], Callable | None, Callable | None]] = [
        (compile_pattern("[:SOURce]:VOLTage[:LEVel][:IMMediate][:AMPLitude]"), _s_volt, _q_volt),
        (compile_pattern("[:SOURce]:CURRent[:LEVel][:IMMediate][:AMPLitude]"), _s_curr, _q_curr),
        (compile_pattern("[:SOURce]:FUNCtion:MODE"), _s_func_mode, _q_func_mode),
        (compile_pattern(":OUTPut[:STATe]"), _s_outp, _q_outp),
        (compile_pattern(":OUTPut:ON:AUTO"), _s_outp_auto, _q_outp_auto),
        # The guide writes these :SENSe[c]:..., without brackets: the node is required.
        (compile_pattern(":SENSe:FUNCtion[:ON]"), _s_func_on, _q_func_on),
        (compile_pattern(":SENSe:FUNCtion:OFF"), _s_func_off, _q_func_off),
        (compile_pattern(":SENSe:FUNCtion:ALL"), _s_func_all, None),
        (compile_pattern(":SENSe:FUNCtion:OFF:ALL"), _s_func_off_all, None),
        (compile_pattern(":SENSe:FUNCtion[:ON]:COUNt"), None, _q_func_on_count),
        (compile_pattern(":SENSe:FUNCtion:OFF:COUNt"), None, _q_func_off_count),
        (compile_pattern(":SENSe:FUNCtion:STATe"), None, _q_func_state),
        (compile_pattern(":SENSe:CURRent[:DC]:PROTection[:LEVel]"), _s_curr_prot, _q_curr_prot),
        (compile_pattern(":SENSe:VOLTage[:DC]:PROTection[:LEVel]"), _s_volt_prot, _q_volt_prot),
        (compile_pattern(":SENSe:CURRent[:DC]:PROTection:TRIPped"), None, _q_curr_trip),
        (compile_pattern(":SENSe:VOLTage[:DC]:PROTection:TRIPped"), None, _q_volt_trip),
        (compile_pattern(":SENSe:CURRent[:DC]:APERture"), _s_aper, _q_aper),
        (compile_pattern(":SENSe:VOLTage[:DC]:APERture"), _s_aper, _q_aper),
        (compile_pattern(":SENSe:RESistance:APERture"), _s_aper, _q_aper),
        (compile_pattern(":SENSe:CURRent[:DC]:NPLCycles"), _s_nplc, _q_nplc),
        (compile_pattern(":SENSe:VOLTage[:DC]:NPLCycles"), _s_nplc, _q_nplc),
        (compile_pattern(":SENSe:RESistance:NPLCycles"), _s_nplc, _q_nplc),
        (compile_pattern(":SENSe:REMote"), _s_remote, _q_remote),
        (compile_pattern(":SENSe:DATA"), None, _q_sens_data),
        (compile_pattern(":SENSe:DATA:LATest"), None, _q_sens_latest),
        (compile_pattern(":SYSTem:LFRequency"), _s_lfr, _q_lfr),
        (compile_pattern(":TRIGger[:ALL]:SOURce"), _s_trig_sour, _q_trig_sour),
        (compile_pattern(":TRIGger[:ALL]:TIMer"), _s_trig_tim, _q_trig_tim),
        (compile_pattern(":TRIGger[:ALL]:COUNt"), _s_trig_coun, _q_trig_coun),
        (compile_pattern(":TRACe:FEED"), _s_trac_feed, _q_trac_feed),
        (compile_pattern(":TRACe:POINts"), _s_trac_poin, _q_trac_poin),
        (compile_pattern(":TRACe:FEED:CONTrol"), _s_trac_cont, _q_trac_cont),
        (compile_pattern(":TRACe:CLEar"), _s_trac_cle, None),
        (compile_pattern(":TRACe:POINts:ACTual"), None, _q_trac_act),
        (compile_pattern(":TRACe:FREE"), None, _q_trac_free),
        (compile_pattern(":TRACe:DATA"), None, _q_trac_data),
        (compile_pattern(":INITiate[:IMMediate][:ALL]"), _s_init, None),
        (compile_pattern(":ABORt[:ALL]"), _s_abor, None),
        (compile_pattern(":FORMat[:DATA]"), _s_form, _q_form),
        (compile_pattern(":FORMat:BORDer"), _s_bord, _q_bord),
        (compile_pattern(":FORMat:ELEMents:SENSe"), _s_elem, _q_elem),
        (compile_pattern(":FETCh:ARRay"), None, _q_fetch_all),
        (compile_pattern(":FETCh:ARRay:CURRent[:DC]"), None, _q_fetch_curr),
        (compile_pattern(":FETCh:ARRay:VOLTage[:DC]"), None, _q_fetch_volt),
        (compile_pattern(":FETCh:ARRay:TIME"), None, _q_fetch_time),
        (compile_pattern(":FETCh[:SCALar]"), None, _q_fetch_scalar),
        (compile_pattern(":FETCh[:SCALar]:CURRent[:DC]"), None, _q_fetch_scalar_curr),
        (compile_pattern(":FETCh[:SCALar]:VOLTage[:DC]"), None, _q_fetch_scalar_volt),
        (compile_pattern(":FETCh[:SCALar]:RESistance"), None, _q_fetch_scalar_res),
        (compile_pattern(":FETCh[:SCALar]:TIME"), None, _q_fetch_scalar_time),
        (compile_pattern(":READ[:SCALar]"), None, _q_read_scalar),
        (compile_pattern(":READ[:SCALar]:CURRent[:DC]"), None, _q_read_scalar_curr),
        (compile_pattern(":READ[:SCALar]:VOLTage[:DC]"), None, _q_read_scalar_volt),
        (compile_pattern(":READ[:SCALar]:RESistance"), None, _q_read_scalar_res),
        (compile_pattern(":READ[:SCALar]:TIME"), None, _q_read_scalar_time),
        (compile_pattern(":READ:ARRay"), None, _q_read_all),
        (compile_pattern(":READ:ARRay:CURRent[:DC]"), None, _q_read_curr),
        (compile_pattern(":READ:ARRay:VOLTage[:DC]"), None, _q_read_volt),
        (compile_pattern(":READ:ARRay:TIME"), None, _q_read_time),
        (compile_pattern(":MEASure"), None, _q_meas_all),
        (compile_pattern(":MEASure:CURRent[:DC]"), None, _q_meas_curr),
        (compile_pattern(":MEASure:VOLTage[:DC]"), None, _q_meas_volt),
        (compile_pattern(":MEASure:RESistance"), None, _q_meas_res),
        (compile_pattern(":SYSTem:TIME:TIMer:COUNt"), None, _q_timer),
        (compile_pattern(":SYSTem:TIME:TIMer:COUNt:RESet"), _s_timer_reset, None),
        (compile_pattern(":SYSTem:TIME:TIMer:COUNt:RESet:AUTO"), _s_timer_auto, _q_timer_auto),
        (compile_pattern(":SYSTem:ERRor[:NEXT]"), None, _q_syst_err),
        (compile_pattern(":SYSTem:ERRor:ALL"), None, _q_syst_err_all),
    ]

    # -- acquisition ------------------------------------------------------
    def _abort_acquisitions(self, channels=None) -> None:
        """Abort the running acquisitions of ``channels`` (default all); caller holds the lock."""
        for acq in self._running(channels):
            acq.request_abort()

    def _wait_done(self, conn: _Connection) -> None:
        """Block until every running acquisition is complete (bounded)."""
        with self._lock:
            running = self._running()
        self._wait_for(conn, running)

    def _wait_for(self, conn: _Connection, acquisitions: list[Acquisition]) -> None:
        for acq in acquisitions:
            deadline = max(time.monotonic(), acq.expected_end) + self.fetch_grace_s
            while not acq.done.wait(0.05):
                if self._stopping.is_set() or conn.dropped.is_set():
                    raise _Abandon()
                if time.monotonic() > deadline:
                    raise ScpiError(-230, "Data corrupt or stale")

    def _run_acquisition(self, acq: Acquisition, ch: int, load) -> None:
        try:
            publish = self._publish if ch == 1 else (lambda *_: None)
            run_acquisition(acq, load, aperture_evals=self.aperture_evals, publish=publish)
            if ch == 1:  # the board's ground truth
                self._record_ground_truth(acq)
        finally:
            acq.done.set()
            with self._lock:
                if self._opc_pending and not self._running():
                    self._opc_pending = False
                    self._esr |= 1  # operation complete

    def _publish(self, acq: Acquisition, k0: int, k1: int) -> None:
        """New points ``[k0, k1)`` of channel 1's ``acq``: feed the trace buffer, fire injected faults."""
        with self._lock:
            if self._results.get(1) is not acq:  # superseded by a new :INIT: its late points are not the buffer's
                return
            s = self._settings
            if s.trace_control == "NEXT" and s.trace_feed == "SENS":
                self._trace.append(acq.columns(k0, k1))
                if self._trace.full:  # buffer full: the control changes to NEVer, no error
                    s.trace_control = "NEV"
            n = self._disconnect_after
            fire = n is not None and acq.count >= n
            if fire:
                self._disconnect_after = None
        if fire:
            self.drop_connections()

    def _record_ground_truth(self, acq: Acquisition) -> None:
        gt = ground_truth(acq, self.activity, self.ground_truth_oversample)
        if gt is None:
            return
        with self._lock:
            self._acquisitions.append(gt)
        if self.ground_truth_log is not None:
            with self._log_lock:
                gt.append_to(self.ground_truth_log)

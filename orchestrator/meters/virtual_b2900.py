"""A virtual Keysight B2900-series SMU: a real SCPI server on a TCP socket.

It speaks the raw-socket protocol of the instrument's LAN port 5025 (one
program message per line, ``\\n``-terminated) so that the controller's driver
runs the very same code path against it as against a bench instrument
(pyvisa, resource ``TCPIP::<host>::<port>::SOCKET``).

Physics: the SMU sources a constant voltage ``V`` into the board and measures
the current ``I(t) = P(t) / V`` (clamped to the current protection level),
``P(t)`` coming from an :class:`~orchestrator.meters.activity.ActivitySource`.
Each reading is the mean of ``I`` over the aperture, as an integrating ADC
would give; :mod:`orchestrator.meters.virtual_acquisition` computes them in
vectorized batches (10 kHz and more). For every acquisition the server keeps
the supplied energy as ground truth (exact when the source can integrate
itself, else on a grid ten times finer than the trigger interval):
``.acquisitions`` and optionally one JSON line each in ``ground_truth_log``;
:meth:`VirtualB2900.true_energy_j` integrates any window.

Clock: the server's clock is ``time.monotonic()`` of this machine, the same
clock the controller uses, so ground-truth windows are directly comparable with
controller timestamps.

Supported SCPI subset (case-insensitive, short and long forms, optional nodes
in brackets, optional channel suffix ``1`` such as ``SOUR1``; several commands
per line separated by ``;`` with SCPI relative-path rules):

=====================================================  ===========================
``*IDN?`` ``*RST`` ``*CLS`` ``*OPC`` ``*OPC?`` ``*WAI``
``[:SOURce]:VOLTage[:LEVel][:IMMediate][:AMPLitude]``  ``<V>`` / ``?``  (-210..210)
``[:SOURce]:FUNCtion:MODE``                            ``VOLTage`` / ``?``
``:OUTPut[:STATe]``                                    ``ON|OFF|1|0`` / ``?``
``[:SENSe]:FUNCtion[:ON]``                             ``"CURR"[,"VOLT"]`` / ``?``
``[:SENSe]:CURRent[:DC]:PROTection[:LEVel]``           ``<A>`` / ``?``  (1e-8..3.03)
``[:SENSe]:CURRent[:DC]:APERture``                     ``<s>`` / ``?``  (8e-6..2)
``:TRIGger[:ALL]:SOURce``                              ``AINT|TIMer`` / ``?``
``:TRIGger[:ALL]:TIMer``                               ``<s>`` / ``?``  (2e-5..1e5)
``:TRIGger[:ALL]:COUNt``                               ``<n>`` / ``?``  (1..100000)
``:TRACe:FEED``                                        ``SENSe`` / ``?``  (control NEV only)
``:TRACe:POINts``                                      ``<n>`` / ``?``  (1..100000, NEV only)
``:TRACe:FEED:CONTrol``                                ``NEXT|NEVer`` / ``?``
``:TRACe:CLEar``                                       (control NEV only)
``:TRACe:POINts:ACTual?``                              points in the trace buffer
``:TRACe:FREE?``                                       ``available,total``
``:TRACe:DATA? [offset[,size]]``                       trace buffer, non-blocking
``:SENSe:DATA? [offset[,size]]``                       result buffer so far, non-blocking
``:SENSe:DATA:LATest?``                                the latest point
``:INITiate[:IMMediate][:ALL]`` ``:ABORt[:ALL]``       optional ``(@1)``
``:FORMat[:DATA]``                                     ``ASCii|REAL,64|REAL,32`` / ``?``
``:FORMat:BORDer``                                     ``NORMal|SWAPped`` / ``?``
``:FORMat:ELEMents:SENSe``                             ``CURR[,VOLT][,TIME]`` / ``?``
``:FETCh:ARRay?``                                      all elements, blocks until done
``:FETCh:ARRay:CURRent? | :VOLTage? | :TIME?``         one element only
``:MEASure:CURRent[:DC]?``                             one spot reading
``:SYSTem:TIME:TIMer:COUNt?``                          seconds since the timer's reset
``:SYSTem:TIME:TIMer:COUNt:RESet``                     reset the timer now
``:SYSTem:TIME:TIMer:COUNt:RESet:AUTO``                ``ON|OFF|1|0`` / ``?``
``:SYSTem:ERRor[:NEXT]?``                              FIFO, 10 entries + -350
=====================================================  ===========================

As on the real instrument, the array queries return every element selected by
``:FORMat:ELEMents:SENSe`` interleaved per point (always in the fixed order
VOLT, CURR, TIME whatever order they were given in), while
``:FETCh:ARRay:CURRent?`` returns the currents only. Binary data
(``REAL,64``) is an IEEE 488.2 definite-length block ``#<n><len><bytes>``
followed by ``\\n``; ``NORMal`` byte order is big-endian. "No data" (a
function not measured, an empty buffer) is ``+9.910000E+37`` in ASCII and NaN
in binary.

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
100000 points, timer auto reset ``ON``.

Fault injection: :meth:`VirtualB2900.stop` drops every client connection;
:meth:`VirtualB2900.inject_disconnect_after` drops them after a number of
points of the running (or next) acquisition.

SCPI syntax (mnemonics, parameters, errors, data formats):
:mod:`orchestrator.meters.scpi_syntax`.

Every loop here is bounded: the accept loop by ``max_lifetime_s``, connection
loops by ``idle_timeout_s``, acquisitions by their point count.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from orchestrator.meters.activity import ActivitySource
from orchestrator.meters.scpi_syntax import (
    Node,
    ScpiError,
    boolean,
    channel_list,
    compile_pattern,
    data_window,
    fmt,
    format_values,
    header_tokens,
    keyword,
    match,
    no_params,
    number,
    one_param,
    parse_command,
    parse_format,
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
    TraceBuffer,
    ground_truth,
    interleave,
    mean_currents,
    run_acquisition,
    window_energy,
)

__all__ = [
    "GroundTruth",
    "VirtualB2900",
]

ERROR_QUEUE_SIZE = 10


# ---------------------------------------------------------------------------
# Instrument state
# ---------------------------------------------------------------------------

@dataclass
class _Settings:
    voltage_v: float = 0.0
    source_mode: str = "VOLT"
    output_on: bool = False
    sense_functions: tuple[str, ...] = ("VOLT", "CURR")
    current_limit_a: float = 1e-4
    aperture_s: float = 0.02
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


class _Connection:
    def __init__(self, sock: socket.socket, peer):
        self.sock = sock
        self.peer = peer
        self.dropped = threading.Event()
        self.thread: threading.Thread | None = None

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
        aperture_evals: int = 8,
        ground_truth_oversample: int = 10,
        idle_timeout_s: float = 600.0,
        max_lifetime_s: float = 24 * 3600.0,
        fetch_grace_s: float = 30.0,
    ):
        if not callable(getattr(activity, "power_w", None)):
            raise TypeError("activity must provide power_w(t_mono_s) -> float")
        self.activity = activity
        self.host = host
        self._requested_port = int(port)
        self.ground_truth_log = Path(ground_truth_log) if ground_truth_log is not None else None
        self.idn = f"Keysight Technologies,{model},{serial},socfarm-virtual"
        self.aperture_evals = max(1, int(aperture_evals))
        self.ground_truth_oversample = max(1, int(ground_truth_oversample))
        self.idle_timeout_s = float(idle_timeout_s)
        self.max_lifetime_s = float(max_lifetime_s)
        self.fetch_grace_s = float(fetch_grace_s)

        self._lock = threading.RLock()  # settings, acquisition, connections
        self._settings = _Settings()
        self._errors: deque[tuple[int, str]] = deque()
        self._acq: Acquisition | None = None
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
        """Stop serving: abort any acquisition and drop every client connection."""
        self._stopping.set()
        lsock, self._listener = self._listener, None
        if lsock is not None:
            try:
                lsock.close()
            except OSError:
                pass
        with self._lock:
            acq = self._acq
            conns = list(self._conns)
        if acq is not None:
            acq.request_abort()
        for c in conns:
            c.drop()
        me = threading.current_thread()
        for th in [self._accept_thread, acq.thread if acq else None] + [c.thread for c in conns]:
            if th is not None and th is not me:
                th.join(timeout=2.0)

    def __enter__(self) -> "VirtualB2900":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- introspection / fault injection ------------------------------------
    @property
    def acquisitions(self) -> list[GroundTruth]:
        """Ground truth of every finished (or aborted) acquisition, oldest first."""
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
        has taken ``n_points`` points. One-shot. The instrument itself keeps
        acquiring, as a real one would on a network glitch."""
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
        try:
            while not self._stopping.is_set() and not conn.dropped.is_set():
                if time.monotonic() - last > self.idle_timeout_s:
                    break
                try:
                    data = sock.recv(self.RECV_SIZE)
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

    # -- error queue ------------------------------------------------------
    def _push_error(self, code: int, message: str) -> None:
        with self._lock:
            if len(self._errors) >= ERROR_QUEUE_SIZE:
                self._errors[-1] = (-350, "Queue overflow")
            else:
                self._errors.append((code, message))

    # -- parsing ----------------------------------------------------------
    def _process_line(self, line: str, conn: _Connection) -> bytes | None:
        line = line.strip("\r\n\0 \t")
        if not line:
            return None
        replies: list[bytes] = []
        path: list[str] = []
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

    def _execute(self, cmd: str, path: list[str], *, first: bool, conn: _Connection):
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
        tokens = header_tokens(header[1:] if header.startswith(":") else header)
        if not absolute:
            tokens = path + tokens
        new_path = tokens[:-1]
        for nodes, setter, getter in self._TREE:
            if match(tokens, nodes):
                fn = getter if is_query else setter
                if fn is None:
                    raise undefined()
                return fn(self, params, conn), new_path
        raise undefined()

    # -- helpers for handlers ------------------------------------------------
    @staticmethod
    def _reply(text: str) -> bytes:
        return text.encode("ascii")

    @staticmethod
    def _format_values(values: np.ndarray, s: _Settings) -> bytes:
        return format_values(values, s.data_format, s.byte_order)

    # -- common commands ----------------------------------------------------
    def _c_idn(self, params, conn):
        no_params(params)
        return self._reply(self.idn)

    def _c_rst(self, params, conn):
        no_params(params)
        with self._lock:
            self._abort_acquisition()
            self._settings = _Settings()
            self._trace = TraceBuffer(MAX_POINTS)
        return None

    def _c_cls(self, params, conn):
        no_params(params)
        with self._lock:
            self._errors.clear()
        return None

    def _c_opc(self, params, conn):
        no_params(params)
        return None

    def _c_opc_q(self, params, conn):
        no_params(params)
        self._wait_done(conn)
        return b"1"

    def _c_wai(self, params, conn):
        no_params(params)
        self._wait_done(conn)
        return None

    _COMMON: dict[tuple[str, bool], Callable] = {
        ("IDN", True): _c_idn,
        ("RST", False): _c_rst,
        ("CLS", False): _c_cls,
        ("OPC", False): _c_opc,
        ("OPC", True): _c_opc_q,
        ("WAI", False): _c_wai,
    }

    # -- subsystem commands -------------------------------------------------
    def _set(self, **kw) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self._settings, k, v)

    def _s_volt(self, params, conn):
        self._set(voltage_v=number(one_param(params), -210.0, 210.0, 0.0))

    def _q_volt(self, params, conn):
        no_params(params)
        return self._reply(fmt(self._settings.voltage_v))

    def _s_func_mode(self, params, conn):
        self._set(source_mode=keyword(one_param(params), "VOLTage"))

    def _q_func_mode(self, params, conn):
        no_params(params)
        return self._reply(self._settings.source_mode)

    def _s_outp(self, params, conn):
        self._set(output_on=boolean(one_param(params)))

    def _q_outp(self, params, conn):
        no_params(params)
        return b"1" if self._settings.output_on else b"0"

    def _s_sense_func(self, params, conn):
        funcs = string_list(params, "VOLTage", "CURRent")
        with self._lock:  # [:ON] enables the given functions, leaving the others on
            on = set(self._settings.sense_functions) | set(funcs)
            self._settings.sense_functions = tuple(f for f in ("VOLT", "CURR") if f in on)

    def _q_sense_func(self, params, conn):
        no_params(params)
        return self._reply(",".join(f'"{f}"' for f in self._settings.sense_functions))

    def _s_prot(self, params, conn):
        self._set(current_limit_a=number(one_param(params), 1e-8, 3.03, 1e-4))

    def _q_prot(self, params, conn):
        no_params(params)
        return self._reply(fmt(self._settings.current_limit_a))

    def _s_aper(self, params, conn):
        self._set(aperture_s=number(one_param(params), 8e-6, 2.0, 0.02))

    def _q_aper(self, params, conn):
        no_params(params)
        return self._reply(fmt(self._settings.aperture_s))

    def _s_trig_sour(self, params, conn):
        self._set(trigger_source=keyword(one_param(params), "AINT", "TIMer"))

    def _q_trig_sour(self, params, conn):
        no_params(params)
        return self._reply(self._settings.trigger_source)

    def _s_trig_tim(self, params, conn):
        self._set(trigger_timer_s=number(one_param(params), 2e-5, 1e5, 1e-3))

    def _q_trig_tim(self, params, conn):
        no_params(params)
        return self._reply(fmt(self._settings.trigger_timer_s))

    def _s_trig_coun(self, params, conn):
        self._set(trigger_count=int(round(number(one_param(params), 1, MAX_POINTS, 1))))

    def _q_trig_coun(self, params, conn):
        no_params(params)
        return self._reply(f"{self._settings.trigger_count:+d}")

    def _require_trace_idle(self) -> None:
        # caller holds the lock; the manual allows these only with the control at NEVer
        if self._settings.trace_control != "NEV":
            raise ScpiError(-221, "Settings conflict")

    def _s_trac_feed(self, params, conn):
        feed = keyword(one_param(params), "SENSe")
        with self._lock:
            self._require_trace_idle()
            self._settings.trace_feed = feed

    def _q_trac_feed(self, params, conn):
        no_params(params)
        return self._reply(self._settings.trace_feed)

    def _s_trac_poin(self, params, conn):
        points = int(round(number(one_param(params), 1, MAX_POINTS, MAX_POINTS)))
        with self._lock:
            self._require_trace_idle()
            self._settings.trace_points = points
            self._trace.resize(points)

    def _q_trac_poin(self, params, conn):
        no_params(params)
        return self._reply(f"{self._settings.trace_points:+d}")

    def _s_trac_cont(self, params, conn):
        self._set(trace_control=keyword(one_param(params), "NEXT", "NEVer"))

    def _q_trac_cont(self, params, conn):
        no_params(params)
        return self._reply(self._settings.trace_control)

    def _s_trac_cle(self, params, conn):
        no_params(params)
        with self._lock:
            self._require_trace_idle()
            self._trace.clear()

    def _q_trac_act(self, params, conn):
        no_params(params)
        with self._lock:
            return self._reply(f"{self._trace.count:+d}")

    def _q_trac_free(self, params, conn):
        no_params(params)
        with self._lock:
            total = self._trace.capacity
            return self._reply(f"{total - self._trace.count:+d},{total:+d}")

    def _q_trac_data(self, params, conn):  # non-blocking: what is stored now
        with self._lock:
            s = self._settings
            window = data_window(params, self._trace.count, MAX_POINTS)
            columns = self._trace.columns(*window) if window else None
        return self._format_values(interleave(columns, s.elements), s)

    def _q_sens_data(self, params, conn):  # non-blocking: the points acquired so far
        with self._lock:
            s, acq = self._settings, self._acq
            window = data_window(params, acq.count if acq else 0, MAX_POINTS)
            columns = acq.columns(*window) if window else None
        return self._format_values(interleave(columns, s.elements), s)

    def _q_sens_latest(self, params, conn):
        no_params(params)
        with self._lock:
            s, acq = self._settings, self._acq
            n = acq.count if acq else 0
            columns = acq.columns(n - 1, n) if n else None
        return self._format_values(interleave(columns, s.elements), s)

    def _q_timer(self, params, conn):
        no_params(params)
        return self._reply(fmt(time.monotonic() - self._timer_zero))

    def _s_timer_reset(self, params, conn):
        no_params(params)
        with self._lock:
            self._timer_zero = time.monotonic()

    def _s_timer_auto(self, params, conn):
        self._set(timer_auto_reset=boolean(one_param(params)))

    def _q_timer_auto(self, params, conn):
        no_params(params)
        return b"1" if self._settings.timer_auto_reset else b"0"

    def _s_form(self, params, conn):
        self._set(data_format=parse_format(params))

    def _q_form(self, params, conn):
        no_params(params)
        f = self._settings.data_format
        return self._reply("ASC" if f == "ASC" else f"REAL,{f[4:]}")

    def _s_bord(self, params, conn):
        self._set(byte_order=keyword(one_param(params), "NORMal", "SWAPped"))

    def _q_bord(self, params, conn):
        no_params(params)
        return self._reply(self._settings.byte_order)

    def _s_elem(self, params, conn):
        if not params:
            raise ScpiError(-109, "Missing parameter")
        chosen = {keyword(p, "VOLTage", "CURRent", "TIME") for p in params}
        self._set(elements=tuple(e for e in ELEMENT_ORDER if e in chosen))

    def _q_elem(self, params, conn):
        no_params(params)
        return self._reply(",".join(self._settings.elements))

    def _s_init(self, params, conn):
        channel_list(params)
        with self._lock:
            s = self._settings
            if s.trigger_source == "TIM" and s.aperture_s > s.trigger_timer_s:
                raise ScpiError(-221, "Settings conflict")
            self._abort_acquisition()
            s.output_on = True  # output auto-on at :INIT, as the instrument's default
            interval = s.trigger_timer_s if s.trigger_source == "TIM" else s.aperture_s + 1e-4
            self._acq_seq += 1
            t_start = time.monotonic()
            if s.timer_auto_reset:  # the timer restarts at the initiate action
                self._timer_zero = t_start
            acq = Acquisition(
                self._acq_seq, t_start, interval, aperture=s.aperture_s, points=s.trigger_count,
                voltage=s.voltage_v, limit=s.current_limit_a, output_on=s.output_on,
                measure_current="CURR" in s.sense_functions, time_offset_s=t_start - self._timer_zero,
            )
            acq.thread = threading.Thread(
                target=self._run_acquisition, args=(acq,), name=f"vb2900-acq-{acq.seq}", daemon=True
            )
            self._acq = acq
            acq.thread.start()
        return None

    def _s_abor(self, params, conn):
        channel_list(params)
        with self._lock:
            self._abort_acquisition()
        return None

    def _fetch(self, params, conn, element: str | None):
        channel_list(params)
        acq = self._wait_done(conn)
        if acq is None or acq.count == 0:
            raise ScpiError(-230, "Data corrupt or stale")
        with self._lock:
            s = self._settings
            columns = acq.columns(0, acq.count)
        elements = (element,) if element else s.elements
        return self._format_values(interleave(columns, elements), s)

    def _q_fetch_all(self, params, conn):
        return self._fetch(params, conn, None)

    def _q_fetch_curr(self, params, conn):
        return self._fetch(params, conn, "CURR")

    def _q_fetch_volt(self, params, conn):
        return self._fetch(params, conn, "VOLT")

    def _q_fetch_time(self, params, conn):
        return self._fetch(params, conn, "TIME")

    def _q_meas_curr(self, params, conn):
        channel_list(params)
        with self._lock:
            s = self._settings
            s.output_on = True
            snap = (s.aperture_s, s.voltage_v, s.current_limit_a, "CURR" in s.sense_functions)
        aperture, voltage, limit, measure = snap
        t0 = time.monotonic()
        time.sleep(min(aperture, 2.0))
        value = np.array([np.nan])  # no data
        if measure:
            value, _ = mean_currents(self.activity, np.array([t0]), aperture, voltage, limit, True, self.aperture_evals)
        with self._lock:
            return self._format_values(value, self._settings)

    def _q_syst_err(self, params, conn):
        no_params(params)
        with self._lock:
            code, msg = self._errors.popleft() if self._errors else (0, "No error")
        return self._reply(f'{code:+d},"{msg}"')

    _TREE: list[tuple[tuple[Node, ...], Callable | None, Callable | None]] = [
        (compile_pattern("[:SOURce]:VOLTage[:LEVel][:IMMediate][:AMPLitude]"), _s_volt, _q_volt),
        (compile_pattern("[:SOURce]:FUNCtion:MODE"), _s_func_mode, _q_func_mode),
        (compile_pattern(":OUTPut[:STATe]"), _s_outp, _q_outp),
        (compile_pattern("[:SENSe]:FUNCtion[:ON]"), _s_sense_func, _q_sense_func),
        (compile_pattern("[:SENSe]:CURRent[:DC]:PROTection[:LEVel]"), _s_prot, _q_prot),
        (compile_pattern("[:SENSe]:CURRent[:DC]:APERture"), _s_aper, _q_aper),
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
        (compile_pattern(":SENSe:DATA"), None, _q_sens_data),
        (compile_pattern(":SENSe:DATA:LATest"), None, _q_sens_latest),
        (compile_pattern(":INITiate[:IMMediate][:ALL]"), _s_init, None),
        (compile_pattern(":ABORt[:ALL]"), _s_abor, None),
        (compile_pattern(":FORMat[:DATA]"), _s_form, _q_form),
        (compile_pattern(":FORMat:BORDer"), _s_bord, _q_bord),
        (compile_pattern(":FORMat:ELEMents:SENSe"), _s_elem, _q_elem),
        (compile_pattern(":FETCh:ARRay"), None, _q_fetch_all),
        (compile_pattern(":FETCh:ARRay:CURRent[:DC]"), None, _q_fetch_curr),
        (compile_pattern(":FETCh:ARRay:VOLTage[:DC]"), None, _q_fetch_volt),
        (compile_pattern(":FETCh:ARRay:TIME"), None, _q_fetch_time),
        (compile_pattern(":MEASure:CURRent[:DC]"), None, _q_meas_curr),
        (compile_pattern(":SYSTem:TIME:TIMer:COUNt"), None, _q_timer),
        (compile_pattern(":SYSTem:TIME:TIMer:COUNt:RESet"), _s_timer_reset, None),
        (compile_pattern(":SYSTem:TIME:TIMer:COUNt:RESet:AUTO"), _s_timer_auto, _q_timer_auto),
        (compile_pattern(":SYSTem:ERRor[:NEXT]"), None, _q_syst_err),
    ]

    # -- acquisition ------------------------------------------------------
    def _abort_acquisition(self) -> None:
        acq = self._acq
        if acq is not None and not acq.done.is_set():
            acq.request_abort()

    def _wait_done(self, conn: _Connection) -> Acquisition | None:
        """Block until the current acquisition is complete (bounded)."""
        with self._lock:
            acq = self._acq
        if acq is None:
            return None
        deadline = max(time.monotonic(), acq.expected_end) + self.fetch_grace_s
        while not acq.done.wait(0.05):
            if self._stopping.is_set() or conn.dropped.is_set():
                raise _Abandon()
            if time.monotonic() > deadline:
                raise ScpiError(-230, "Data corrupt or stale")
        return acq

    def _run_acquisition(self, acq: Acquisition) -> None:
        try:
            run_acquisition(acq, self.activity, aperture_evals=self.aperture_evals, publish=self._publish)
            self._record_ground_truth(acq)
        finally:
            acq.done.set()

    def _publish(self, acq: Acquisition, k0: int, k1: int) -> None:
        """New points ``[k0, k1)`` of ``acq``: feed the trace buffer, fire injected faults."""
        with self._lock:
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

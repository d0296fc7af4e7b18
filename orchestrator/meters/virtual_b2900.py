"""A virtual Keysight B2900-series SMU: a real SCPI server on a TCP socket.

It speaks the raw-socket protocol of the instrument's LAN port 5025 (one
program message per line, ``\\n``-terminated) so that the controller's driver
runs the very same code path against it as against a bench instrument
(pyvisa, resource ``TCPIP::<host>::<port>::SOCKET``).

Physics: the SMU sources a constant voltage ``V`` into the board and measures
the current ``I(t) = P(t) / V`` (clamped to the current protection level),
where ``P(t)`` comes from an
:class:`~orchestrator.meters.activity.ActivitySource`. Each reading is the mean
of ``I`` over the aperture (several evaluations inside it), as an integrating
ADC would give. For every acquisition the server also integrates ``V * I(t)``
on a grid ten times finer than the trigger interval and keeps the result as
ground truth (``.acquisitions`` and optionally one JSON line per acquisition
in ``ground_truth_log``).

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
``:TRACe:FEED``                                        ``SENSe`` / ``?``
``:TRACe:POINts``                                      ``<n>`` / ``?``  (1..100000)
``:TRACe:FEED:CONTrol``                                ``NEXT|NEVer`` / ``?``
``:INITiate[:IMMediate][:ALL]`` ``:ABORt[:ALL]``       optional ``(@1)``
``:FORMat[:DATA]``                                     ``ASCii|REAL,64|REAL,32`` / ``?``
``:FORMat:BORDer``                                     ``NORMal|SWAPped`` / ``?``
``:FORMat:ELEMents:SENSe``                             ``CURR[,VOLT][,TIME]`` / ``?``
``:FETCh:ARRay?``                                      all elements, interleaved
``:FETCh:ARRay:CURRent? | :VOLTage? | :TIME?``         one element only
``:MEASure:CURRent[:DC]?``                             one spot reading
``:SYSTem:ERRor[:NEXT]?``                              FIFO, 10 entries + -350
=====================================================  ===========================

As on the real instrument, ``:FETCh:ARRay?`` returns every element selected by
``:FORMat:ELEMents:SENSe`` interleaved per point (always in the fixed order
VOLT, CURR, TIME whatever order they were given in), while
``:FETCh:ARRay:CURRent?`` returns the currents only. Binary data
(``REAL,64``) is an IEEE 488.2 definite-length block ``#<n><len><bytes>``
followed by ``\\n``; ``NORMal`` byte order is big-endian. The time element is
the start of each point's aperture, in seconds since the acquisition's trigger
timer started (the ``:INIT``).

Fault injection: :meth:`VirtualB2900.stop` drops every client connection;
:meth:`VirtualB2900.inject_disconnect_after` drops them after a number of
points of the running (or next) acquisition.

The SCPI syntax (mnemonics, parameters, error codes) is parsed by
:mod:`orchestrator.meters.scpi_syntax`.

Every loop here is bounded: the accept loop by ``max_lifetime_s``, connection
loops by ``idle_timeout_s``, acquisitions by their point count.
"""

from __future__ import annotations

import json
import math
import re
import socket
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from orchestrator.meters.activity import ActivitySource
from orchestrator.meters.scpi_syntax import (
    TOKEN_RE,
    Node,
    ScpiError,
    compile_pattern,
    fmt,
    illegal,
    keyword,
    match,
    number,
    out_of_range,
    split_commands,
    split_params,
    syntax,
    undefined,
)

__all__ = [
    "GroundTruth",
    "VirtualB2900",
]

MAX_POINTS = 100_000
ERROR_QUEUE_SIZE = 10
#: Value the instrument reports for a reading it could not take.
NO_DATA = 9.91e37


# ---------------------------------------------------------------------------
# Instrument state
# ---------------------------------------------------------------------------

_ELEMENT_ORDER = ("VOLT", "CURR", "TIME")


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


@dataclass(frozen=True)
class GroundTruth:
    """The server's own account of one acquisition (monotonic clock of this machine).

    ``window_start_mono_s``/``window_end_mono_s`` are the centres of the first
    and last points' apertures; ``energy_j`` is ``V * I(t)`` integrated over that
    window with a trapezoid on a grid ``fine_step_s`` (the trigger interval / 10)
    evaluated from the same activity source, independently of the samples.
    """

    acquisition: int
    start_mono_s: float
    interval_s: float
    aperture_s: float
    points: int
    points_acquired: int
    aborted: bool
    voltage_v: float
    window_start_mono_s: float
    window_end_mono_s: float
    energy_j: float
    mean_power_w: float
    fine_step_s: float
    clock: str = "time.monotonic"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


class _Acquisition:
    def __init__(self, seq: int, t_start: float, interval: float, s: _Settings):
        self.seq = seq
        self.t_start = t_start
        self.interval = interval
        self.aperture = s.aperture_s
        self.points = s.trigger_count
        self.voltage = s.voltage_v
        self.limit = s.current_limit_a
        self.output_on = s.output_on
        self.measure_current = "CURR" in s.sense_functions
        self.times = np.zeros(self.points)
        self.currents = np.zeros(self.points)
        self.count = 0
        self.done = threading.Event()
        self.abort = threading.Event()
        self.thread: threading.Thread | None = None

    @property
    def expected_end(self) -> float:
        return self.t_start + (self.points - 1) * self.interval + self.aperture


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
        self._acq: _Acquisition | None = None
        self._acq_seq = 0
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
            acq.abort.set()
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
        m = re.match(r"(\S+)(?:\s+(.*))?$", cmd, re.S)
        if not m:
            raise syntax()
        header, param_text = m.group(1), (m.group(2) or "")
        is_query = header.endswith("?")
        if is_query:
            header = header[:-1]
        if "?" in header:
            raise syntax()
        params = split_params(param_text)

        if header.startswith("*"):
            name = header[1:].upper()
            if not re.fullmatch(r"[A-Z]+", name):
                raise syntax()
            handler = self._COMMON.get((name, is_query))
            if handler is None:
                raise undefined()
            return handler(self, params, conn), path

        absolute = header.startswith(":") or first
        parts = header[1:].split(":") if header.startswith(":") else header.split(":")
        tokens: list[str] = []
        for part in parts:
            tm = TOKEN_RE.fullmatch(part)
            if not tm:
                raise syntax()
            name, suffix = tm.group(1).upper(), tm.group(2)
            if suffix and int(suffix) != 1:
                raise ScpiError(-114, "Header suffix out of range")
            tokens.append(name)
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
    def _one(params: list[str]) -> str:
        if not params:
            raise ScpiError(-109, "Missing parameter")
        if len(params) > 1:
            raise ScpiError(-108, "Parameter not allowed")
        return params[0]

    @staticmethod
    def _none(params: list[str]) -> None:
        if params:
            raise ScpiError(-108, "Parameter not allowed")

    @staticmethod
    def _channels(params: list[str]) -> None:
        if not params:
            return
        if len(params) > 1:
            raise ScpiError(-108, "Parameter not allowed")
        m = re.fullmatch(r"\(\s*@\s*(\d+)\s*\)", params[0])
        if not m:
            raise ScpiError(-104, "Data type error")
        if int(m.group(1)) != 1:
            raise illegal()

    @staticmethod
    def _reply(text: str) -> bytes:
        return text.encode("ascii")

    def _format_values(self, values: np.ndarray, s: _Settings) -> bytes:
        if s.data_format == "ASC":
            return ",".join(fmt(float(v)) for v in values).encode("ascii")
        dtype = "f8" if s.data_format == "REAL64" else "f4"
        order = ">" if s.byte_order == "NORM" else "<"
        payload = np.asarray(values, dtype=order + dtype).tobytes()
        length = str(len(payload))
        return b"#" + str(len(length)).encode() + length.encode() + payload

    # -- common commands ----------------------------------------------------
    def _c_idn(self, params, conn):
        self._none(params)
        return self._reply(self.idn)

    def _c_rst(self, params, conn):
        self._none(params)
        with self._lock:
            self._abort_acquisition()
            self._settings = _Settings()
        return None

    def _c_cls(self, params, conn):
        self._none(params)
        with self._lock:
            self._errors.clear()
        return None

    def _c_opc(self, params, conn):
        self._none(params)
        return None

    def _c_opc_q(self, params, conn):
        self._none(params)
        self._wait_done(conn)
        return b"1"

    def _c_wai(self, params, conn):
        self._none(params)
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
        self._set(voltage_v=number(self._one(params), -210.0, 210.0, 0.0))

    def _q_volt(self, params, conn):
        self._none(params)
        return self._reply(fmt(self._settings.voltage_v))

    def _s_func_mode(self, params, conn):
        self._set(source_mode=keyword(self._one(params), "VOLTage"))

    def _q_func_mode(self, params, conn):
        self._none(params)
        return self._reply(self._settings.source_mode)

    def _s_outp(self, params, conn):
        p = self._one(params).strip().upper()
        if p in ("1", "ON"):
            self._set(output_on=True)
        elif p in ("0", "OFF"):
            self._set(output_on=False)
        else:
            raise illegal()

    def _q_outp(self, params, conn):
        self._none(params)
        return b"1" if self._settings.output_on else b"0"

    def _s_sense_func(self, params, conn):
        if not params:
            raise ScpiError(-109, "Missing parameter")
        funcs = []
        for p in params:
            inner = p.strip()
            if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "\"'":
                inner = inner[1:-1]
            else:
                raise ScpiError(-104, "Data type error")
            for item in inner.split(","):
                funcs.append(keyword(item, "VOLTage", "CURRent"))
        with self._lock:  # [:ON] enables the given functions, leaving the others on
            on = set(self._settings.sense_functions) | set(funcs)
            self._settings.sense_functions = tuple(f for f in ("VOLT", "CURR") if f in on)

    def _q_sense_func(self, params, conn):
        self._none(params)
        return self._reply(",".join(f'"{f}"' for f in self._settings.sense_functions))

    def _s_prot(self, params, conn):
        self._set(current_limit_a=number(self._one(params), 1e-8, 3.03, 1e-4))

    def _q_prot(self, params, conn):
        self._none(params)
        return self._reply(fmt(self._settings.current_limit_a))

    def _s_aper(self, params, conn):
        self._set(aperture_s=number(self._one(params), 8e-6, 2.0, 0.02))

    def _q_aper(self, params, conn):
        self._none(params)
        return self._reply(fmt(self._settings.aperture_s))

    def _s_trig_sour(self, params, conn):
        self._set(trigger_source=keyword(self._one(params), "AINT", "TIMer"))

    def _q_trig_sour(self, params, conn):
        self._none(params)
        return self._reply(self._settings.trigger_source)

    def _s_trig_tim(self, params, conn):
        self._set(trigger_timer_s=number(self._one(params), 2e-5, 1e5, 1e-3))

    def _q_trig_tim(self, params, conn):
        self._none(params)
        return self._reply(fmt(self._settings.trigger_timer_s))

    def _s_trig_coun(self, params, conn):
        self._set(trigger_count=int(round(number(self._one(params), 1, MAX_POINTS, 1))))

    def _q_trig_coun(self, params, conn):
        self._none(params)
        return self._reply(f"{self._settings.trigger_count:+d}")

    def _s_trac_feed(self, params, conn):
        self._set(trace_feed=keyword(self._one(params), "SENSe"))

    def _q_trac_feed(self, params, conn):
        self._none(params)
        return self._reply(self._settings.trace_feed)

    def _s_trac_poin(self, params, conn):
        self._set(trace_points=int(round(number(self._one(params), 1, MAX_POINTS, MAX_POINTS))))

    def _q_trac_poin(self, params, conn):
        self._none(params)
        return self._reply(f"{self._settings.trace_points:+d}")

    def _s_trac_cont(self, params, conn):
        self._set(trace_control=keyword(self._one(params), "NEXT", "NEVer"))

    def _q_trac_cont(self, params, conn):
        self._none(params)
        return self._reply(self._settings.trace_control)

    def _s_form(self, params, conn):
        if not params:
            raise ScpiError(-109, "Missing parameter")
        if len(params) > 2:
            raise ScpiError(-108, "Parameter not allowed")
        kind = keyword(params[0], "ASCii", "REAL")
        if kind == "ASC":
            if len(params) != 1:
                raise ScpiError(-108, "Parameter not allowed")
            self._set(data_format="ASC")
            return
        bits = int(number(params[1], 32, 64)) if len(params) == 2 else 64
        if bits not in (32, 64):
            raise out_of_range()
        self._set(data_format=f"REAL{bits}")

    def _q_form(self, params, conn):
        self._none(params)
        f = self._settings.data_format
        return self._reply("ASC" if f == "ASC" else f"REAL,{f[4:]}")

    def _s_bord(self, params, conn):
        self._set(byte_order=keyword(self._one(params), "NORMal", "SWAPped"))

    def _q_bord(self, params, conn):
        self._none(params)
        return self._reply(self._settings.byte_order)

    def _s_elem(self, params, conn):
        if not params:
            raise ScpiError(-109, "Missing parameter")
        chosen = {keyword(p, "VOLTage", "CURRent", "TIME") for p in params}
        self._set(elements=tuple(e for e in _ELEMENT_ORDER if e in chosen))

    def _q_elem(self, params, conn):
        self._none(params)
        return self._reply(",".join(self._settings.elements))

    def _s_init(self, params, conn):
        self._channels(params)
        with self._lock:
            s = self._settings
            if s.trigger_source == "TIM" and s.aperture_s > s.trigger_timer_s:
                raise ScpiError(-221, "Settings conflict")
            self._abort_acquisition()
            s.output_on = True  # output auto-on at :INIT, as the instrument's default
            interval = s.trigger_timer_s if s.trigger_source == "TIM" else s.aperture_s + 1e-4
            self._acq_seq += 1
            acq = _Acquisition(self._acq_seq, time.monotonic(), interval, s)
            acq.thread = threading.Thread(
                target=self._run_acquisition, args=(acq,), name=f"vb2900-acq-{acq.seq}", daemon=True
            )
            self._acq = acq
            acq.thread.start()
        return None

    def _s_abor(self, params, conn):
        self._channels(params)
        with self._lock:
            self._abort_acquisition()
        return None

    def _fetch(self, params, conn, element: str | None):
        self._channels(params)
        acq = self._wait_done(conn)
        if acq is None or acq.count == 0:
            raise ScpiError(-230, "Data corrupt or stale")
        with self._lock:
            s = self._settings
            n = acq.count
            columns = {
                "VOLT": np.full(n, acq.voltage if acq.output_on else 0.0),
                "CURR": acq.currents[:n],
                "TIME": acq.times[:n],
            }
            elements = (element,) if element else s.elements
            if not elements:
                raise ScpiError(-221, "Settings conflict")
            data = np.column_stack([columns[e] for e in elements]).reshape(-1)
            return self._format_values(data, s)

    def _q_fetch_all(self, params, conn):
        return self._fetch(params, conn, None)

    def _q_fetch_curr(self, params, conn):
        return self._fetch(params, conn, "CURR")

    def _q_fetch_volt(self, params, conn):
        return self._fetch(params, conn, "VOLT")

    def _q_fetch_time(self, params, conn):
        return self._fetch(params, conn, "TIME")

    def _q_meas_curr(self, params, conn):
        self._channels(params)
        with self._lock:
            s = self._settings
            s.output_on = True
            snap = (s.aperture_s, s.voltage_v, s.current_limit_a, "CURR" in s.sense_functions)
        aperture, voltage, limit, measure = snap
        t0 = time.monotonic()
        time.sleep(min(aperture, 2.0))
        value = self._mean_current(t0, aperture, voltage, limit, True) if measure else NO_DATA
        with self._lock:
            return self._format_values(np.array([value]), self._settings)

    def _q_syst_err(self, params, conn):
        self._none(params)
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
        (compile_pattern(":SYSTem:ERRor[:NEXT]"), None, _q_syst_err),
    ]

    # -- acquisition ------------------------------------------------------
    def _abort_acquisition(self) -> None:
        acq = self._acq
        if acq is not None and not acq.done.is_set():
            acq.abort.set()

    def _wait_done(self, conn: _Connection) -> _Acquisition | None:
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

    def _current_at(self, t: float, voltage: float, limit: float, output_on: bool) -> float:
        if not output_on or voltage <= 0.0:
            return 0.0
        i = float(self.activity.power_w(t)) / voltage
        return min(max(i, -limit), limit)

    def _mean_current(self, t0: float, aperture: float, voltage: float, limit: float, output_on: bool) -> float:
        m = self.aperture_evals
        total = 0.0
        for j in range(m):
            total += self._current_at(t0 + aperture * (j + 0.5) / m, voltage, limit, output_on)
        return total / m

    def _run_acquisition(self, acq: _Acquisition) -> None:
        try:
            for k in range(acq.points):
                if acq.abort.is_set() or self._stopping.is_set():
                    break
                t_k = acq.t_start + k * acq.interval
                delay = t_k + acq.aperture - time.monotonic()
                if delay > 0 and acq.abort.wait(delay):
                    break
                if acq.measure_current:
                    value = self._mean_current(t_k, acq.aperture, acq.voltage, acq.limit, acq.output_on)
                else:
                    value = NO_DATA
                acq.currents[k] = value
                acq.times[k] = k * acq.interval
                acq.count = k + 1
                with self._lock:
                    n = self._disconnect_after
                    fire = n is not None and acq.count >= n
                    if fire:
                        self._disconnect_after = None
                if fire:
                    self.drop_connections()
            self._record_ground_truth(acq)
        finally:
            acq.done.set()

    def _record_ground_truth(self, acq: _Acquisition) -> None:
        n = acq.count
        if n == 0:
            return
        half = acq.aperture / 2.0
        c0 = acq.t_start + half
        c1 = acq.t_start + (n - 1) * acq.interval + half
        step = acq.interval / self.ground_truth_oversample
        energy = 0.0
        if n >= 2:
            # (c1 - c0) carries the rounding of two large monotonic times: allow a millionth of a step
            m = max(1, int(math.ceil((c1 - c0) / step - 1e-6)))
            grid = np.linspace(c0, c1, m + 1)
            p = np.array(
                [acq.voltage * self._current_at(float(t), acq.voltage, acq.limit, acq.output_on) for t in grid]
            )
            energy = float(np.sum((p[1:] + p[:-1]) * np.diff(grid)) / 2.0)
            step = (c1 - c0) / m
        duration = c1 - c0
        gt = GroundTruth(
            acquisition=acq.seq,
            start_mono_s=acq.t_start,
            interval_s=acq.interval,
            aperture_s=acq.aperture,
            points=acq.points,
            points_acquired=n,
            aborted=n < acq.points,
            voltage_v=acq.voltage,
            window_start_mono_s=c0,
            window_end_mono_s=c1,
            energy_j=energy,
            mean_power_w=energy / duration if duration > 0 else float("nan"),
            fine_step_s=step,
        )
        with self._lock:
            self._acquisitions.append(gt)
        if self.ground_truth_log is not None:
            with self._log_lock:
                try:
                    self.ground_truth_log.parent.mkdir(parents=True, exist_ok=True)
                    with open(self.ground_truth_log, "a", encoding="utf-8") as fh:
                        fh.write(gt.to_json() + "\n")
                except OSError:
                    pass  # the log is a convenience; never take the server down

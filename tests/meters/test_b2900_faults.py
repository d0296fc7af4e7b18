"""Faults: the driver raises MeterError within its timeout, never hangs."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from orchestrator.errors import MeterError


def test_server_stopped_mid_acquisition(make_server, make_meter):
    srv = make_server()
    meter = make_meter(srv.resource, timeout_ms=1000)
    meter.configure(meter.points_for(0.6))
    meter.start()
    threading.Timer(0.2, srv.stop).start()
    t0 = time.monotonic()
    with pytest.raises(MeterError) as info:
        meter.fetch()
    elapsed = time.monotonic() - t0
    # Bounded by the remaining acquisition time plus the timeout (plus slack).
    assert elapsed < 0.6 + 1.0 + 1.0
    assert srv.resource in str(info.value) and "fetching" in str(info.value)


def test_stopped_server_fails_the_next_command(make_server, make_meter):
    srv = make_server()
    meter = make_meter(srv.resource, timeout_ms=500)
    meter.identify()
    srv.stop()
    t0 = time.monotonic()
    with pytest.raises(MeterError):
        meter.identify()
    assert time.monotonic() - t0 < 3.0


def test_disconnect_mid_acquisition(make_server, make_meter):
    srv = make_server()
    meter = make_meter(srv.resource, timeout_ms=800)
    srv.inject_disconnect_after(50)
    meter.configure(meter.points_for(0.4))
    meter.start()
    t0 = time.monotonic()
    with pytest.raises(MeterError, match="fetching"):
        meter.fetch()
    assert time.monotonic() - t0 < 0.4 + 0.8 + 1.0
    # The instrument finished its acquisition anyway ...
    deadline = time.monotonic() + 2.0
    while not srv.acquisitions and time.monotonic() < deadline:
        time.sleep(0.01)
    assert srv.acquisitions and not srv.acquisitions[-1].aborted
    # ... and the driver reconnects on the next call (the session was discarded).
    trace = meter.measure_window(0.1)
    assert len(trace) == 51


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_connection_refused_names_the_resource(make_meter):
    resource = f"TCPIP::127.0.0.1::{_free_port()}::SOCKET"
    meter = make_meter(resource, timeout_ms=1000)
    t0 = time.monotonic()
    with pytest.raises(MeterError) as info:
        meter.identify()
    assert resource in str(info.value)
    assert time.monotonic() - t0 < 2.0


def test_garbled_fetch_is_reported(make_server, make_meter, open_visa):
    srv = make_server()
    meter = make_meter(srv.resource)
    meter.configure(20)
    meter.start()
    # Someone else changes the element list behind the driver's back: the
    # answer no longer holds (current, time) pairs.
    open_visa(srv.resource).write(":FORM:ELEM:SENS CURR")
    with pytest.raises(MeterError, match="expected 40 values"):
        meter.fetch()

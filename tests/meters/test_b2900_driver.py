"""The B2900 driver against the virtual instrument: same code path as the bench."""

from __future__ import annotations

import time

import numpy as np
import pytest

from orchestrator.errors import MeterError, TransientError
from orchestrator.meters import METERS, B2900Meter, PowerTrace, energy_j
from orchestrator.meters.activity import ConstantPower

INTERVAL_S = 2e-3
APERTURE_S = 1e-3


def test_registry():
    assert METERS["b2900"] is B2900Meter
    assert issubclass(MeterError, TransientError)


def test_identify(server, make_meter):
    meter = make_meter(server.resource)
    assert meter.identify() == "Keysight Technologies,B2901A,VIRTUAL0001,socfarm-virtual"


def test_configure_programs_the_instrument(server, make_meter, open_visa):
    meter = make_meter(server.resource, voltage_v=5.0, current_limit_a=0.75)
    meter.configure(123)
    inst = open_visa(server.resource)
    answers = inst.query(
        ":SOUR:VOLT?;:SENS:CURR:PROT?;:SENS:CURR:APER?;:TRIG:SOUR?;:TRIG:TIM?;:TRIG:COUN?;"
        ":TRAC:POIN?;:TRAC:FEED:CONT?;:FORM?;:FORM:BORD?;:FORM:ELEM:SENS?;:OUTP?"
    ).split(";")
    assert answers == [
        "+5.000000E+00", "+7.500000E-01", "+1.000000E-03", "TIM", "+2.000000E-03", "+123",
        "+123", "NEXT", "REAL,64", "NORM", "CURR,TIME", "1",
    ]


def test_configure_reports_instrument_errors(server, make_meter):
    meter = make_meter(server.resource, current_limit_a=5.0)  # above the 3.03 A maximum
    with pytest.raises(MeterError) as info:
        meter.configure(10)
    text = str(info.value)
    assert server.resource in text and '-222,"Data out of range"' in text
    # The queue was drained: the next configure with valid settings passes.
    meter.current_limit_a = 1.0
    meter.configure(10)


def test_measure_window_on_the_controller_clock(make_server, make_meter):
    srv = make_server(ConstantPower(7.2))
    meter = make_meter(srv.resource)
    t_call = time.monotonic()
    trace = meter.measure_window(0.5)
    assert isinstance(trace, PowerTrace)
    assert len(trace) == meter.points_for(0.5) == 251
    assert trace.voltage_v == 12.0 and trace.resource == srv.resource
    np.testing.assert_allclose(trace.current_a, 0.6)
    np.testing.assert_allclose(trace.power_w, 7.2)
    # (atol: differences of monotonic seconds lose ~1e-11 s to rounding after days of uptime)
    np.testing.assert_allclose(np.diff(trace.t_mono_s), INTERVAL_S, rtol=0, atol=1e-9)
    assert trace.duration_s == pytest.approx(0.5)
    assert trace.t_mono_s.flags.writeable is False
    # Times are on this machine's monotonic clock and agree with the server's view
    # of the same acquisition: the server cannot have started before the driver began
    # sending :INIT (no timing threshold: how late it started depends on the load).
    gt = srv.acquisitions[-1]
    assert t_call < trace.t_start_s < time.monotonic()
    assert trace.t_uncertainty_s >= 0
    assert gt.window_start_mono_s >= trace.t_start_s - trace.t_uncertainty_s - 1e-9
    assert gt.window_end_mono_s - gt.window_start_mono_s == pytest.approx(trace.t_end_s - trace.t_start_s)
    assert energy_j(trace, trace.t_start_s, trace.t_end_s) == pytest.approx(gt.energy_j, rel=1e-9)


def test_start_and_fetch_in_steps(server, make_meter):
    meter = make_meter(server.resource)
    meter.configure(50)
    t_start = meter.start()
    assert meter.start_uncertainty_s >= 0
    trace = meter.fetch()
    assert trace.t_start_s == pytest.approx(t_start + APERTURE_S / 2)
    # Fetching again returns the same acquisition.
    again = meter.fetch()
    np.testing.assert_array_equal(again.current_a, trace.current_a)


def test_abort_and_fetch_returns_the_points_taken(server, make_meter):
    meter = make_meter(server.resource)
    meter.configure(5000)  # armed for 10 s, as for a job's timeout
    meter.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    trace = meter.abort_and_fetch()
    assert time.monotonic() - t0 < 1.0
    assert 100 <= len(trace) < 5000
    gt = server.acquisitions[-1]
    assert gt.aborted and gt.points_acquired == len(trace)
    assert abs(trace.t_end_s - gt.window_end_mono_s) < 1e-3
    assert energy_j(trace, trace.t_start_s, trace.t_end_s) == pytest.approx(gt.energy_j, rel=1e-9)
    # On a completed acquisition it is a plain fetch.
    meter.configure(20)
    meter.start()
    time.sleep(0.1)
    assert len(meter.abort_and_fetch()) == 20


def test_sequence_of_windows_without_reset(server, make_meter):
    meter = make_meter(server.resource, reset_on_configure=False)
    first = meter.measure_window(0.1)
    second = meter.measure_window(0.2)
    assert len(first) == 51 and len(second) == 101
    assert second.t_start_s > first.t_end_s
    assert len(server.acquisitions) == 2


def test_usage_errors(server, make_meter):
    meter = make_meter(server.resource)
    with pytest.raises(MeterError, match="configure"):
        meter.start()
    meter.configure(5)
    with pytest.raises(MeterError, match="start"):
        meter.fetch()
    with pytest.raises(MeterError, match="start"):
        meter.abort_and_fetch()
    with pytest.raises(ValueError):
        meter.configure(0)
    with pytest.raises(ValueError):
        meter.points_for(1000.0)  # 500001 points at 2 ms
    with pytest.raises(ValueError):
        B2900Meter(server.resource, voltage_v=12, current_limit_a=1, aperture_s=0.01, interval_s=0.002)
    with pytest.raises(ValueError):
        B2900Meter(server.resource, voltage_v=-1, current_limit_a=1, aperture_s=1e-3, interval_s=2e-3)


def test_context_manager_closes(server):
    with B2900Meter(server.resource, voltage_v=12, current_limit_a=1, aperture_s=1e-3, interval_s=2e-3) as m:
        m.identify()
        assert server.connection_count == 1
    deadline = time.monotonic() + 2.0
    while server.connection_count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.connection_count == 0


def test_closing_one_meter_leaves_another_boards_meter_open(make_server, make_meter):
    """pyvisa shares one ResourceManager per VISA library in a process: a board that finishes first and
    closes its meter must not close the session of a board still measuring (it did, mid-job, as a
    TypeError from the socket's select)."""
    first, second = make_meter(make_server().resource), make_meter(make_server().resource)
    assert first.identify() and second.identify()
    first.close()
    assert second.identify() == "Keysight Technologies,B2901A,VIRTUAL0001,socfarm-virtual"
    assert first.identify()  # a closed meter opens again on its next use

"""Buffers and timer of the virtual B2900, read while it acquires (B2900 SCPI Command Reference).

No timing thresholds here: loops that wait for the instrument are bounded by a
generous guard only so that a bug fails instead of hanging.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from orchestrator.meters.activity import StepPower

APERTURE_S = 1e-3
INTERVAL_S = 2e-3
NO_ERROR = '+0,"No error"'
GUARD_S = 60.0


def _setup(inst, points, *, trace_points=None, elements="CURR,TIME", interval=INTERVAL_S, aperture=APERTURE_S):
    for cmd in (
        "*RST",
        ":SOUR:VOLT 12",
        ":SENS:CURR:PROT 2",
        f":SENS:CURR:APER {aperture}",
        ":TRIG:SOUR TIM",
        f":TRIG:TIM {interval}",
        f":TRIG:COUN {points}",
        ":TRAC:FEED SENS",
        f":TRAC:POIN {trace_points or points}",
        ":TRAC:FEED:CONT NEXT",
        f":FORM:ELEM:SENS {elements}",
        ":FORM REAL,64",
        ":OUTP ON",
    ):
        inst.write(cmd)
    assert inst.query(":SYST:ERR?") == NO_ERROR


def _binary(inst, query):
    return inst.query_binary_values(query, datatype="d", is_big_endian=True, container=np.array)


def _errors(inst):
    out = []
    for _ in range(12):
        e = inst.query(":SYST:ERR?")
        if e == NO_ERROR:
            return out
        out.append(e)
    return out


def test_trace_buffer_fills_then_turns_itself_off(server, open_visa):
    inst = open_visa(server.resource)
    _setup(inst, 30, trace_points=20)
    assert inst.query(":TRAC:POIN:ACT?") == "+0"
    assert inst.query(":TRAC:FREE?") == "+20,+20"
    assert inst.query(":INIT;*OPC?") == "1"
    # full: 20 of the 30 points, the control went back to NEVer by itself, without an error
    assert inst.query(":TRAC:POIN:ACT?") == "+20"
    assert inst.query(":TRAC:FEED:CONT?") == "NEV"
    assert inst.query(":TRAC:FREE?") == "+0,+20"
    assert _errors(inst) == []
    trace = _binary(inst, ":TRAC:DATA?")
    fetched = _binary(inst, ":FETC:ARR?")
    assert fetched.size == 2 * 30
    np.testing.assert_array_equal(trace, fetched[: 2 * 20])
    np.testing.assert_allclose(trace[1::2], np.arange(20) * INTERVAL_S, rtol=0, atol=1e-12)


def test_trace_buffer_settings_only_with_control_never(server, open_visa):
    inst = open_visa(server.resource)
    _setup(inst, 10, trace_points=50)
    assert inst.query(":INIT;*OPC?") == "1"
    assert inst.query(":TRAC:FEED:CONT?;:TRAC:POIN:ACT?") == "NEXT;+10"
    inst.write(":TRAC:CLE")
    inst.write(":TRAC:POIN 10")
    inst.write(":TRAC:FEED SENS")
    assert _errors(inst) == ['-221,"Settings conflict"'] * 3
    assert inst.query(":TRAC:POIN?;:TRAC:POIN:ACT?") == "+50;+10"  # nothing changed
    # a second acquisition appends (the buffer is not cleared by :INIT)
    assert inst.query(":INIT;*OPC?") == "1"
    assert inst.query(":TRAC:POIN:ACT?") == "+20"
    times = _binary(inst, ":TRAC:DATA?")[1::2]
    np.testing.assert_allclose(times, np.tile(np.arange(10) * INTERVAL_S, 2), rtol=0, atol=1e-12)
    inst.write(":TRAC:FEED:CONT NEV;:TRAC:CLE")
    assert inst.query(":TRAC:POIN:ACT?;:TRAC:FREE?") == "+0;+50,+50"
    inst.write(":TRAC:POIN 5;:TRAC:FEED SENS")
    assert inst.query(":TRAC:POIN?") == "+5"
    assert _errors(inst) == []


def test_trace_data_offsets_and_out_of_range(server, open_visa):
    inst = open_visa(server.resource)
    _setup(inst, 30)
    assert inst.query(":INIT;*OPC?") == "1"
    everything = _binary(inst, ":TRAC:DATA?").reshape(-1, 2)
    assert everything.shape == (30, 2)
    np.testing.assert_array_equal(_binary(inst, ":TRAC:DATA? 5,3").reshape(-1, 2), everything[5:8])
    np.testing.assert_array_equal(_binary(inst, ":TRAC:DATA? 28").reshape(-1, 2), everything[28:])
    np.testing.assert_array_equal(_binary(inst, ":TRAC:DATA? STAR,2").reshape(-1, 2), everything[:2])
    np.testing.assert_array_equal(_binary(inst, ":TRACE:DATA? START").reshape(-1, 2), everything)
    np.testing.assert_array_equal(_binary(inst, ":TRAC:DATA? CURR").reshape(-1, 2), everything[-1:])
    np.testing.assert_array_equal(_binary(inst, ":TRAC1:DATA? 29,1").reshape(-1, 2), everything[-1:])
    # beyond the stored points: -222 and no answer
    for bad in (":TRAC:DATA? 30", ":TRAC:DATA? 29,2", ":TRAC:DATA? 0,31", ":TRAC:DATA? 0,0", ":TRAC:DATA? -1"):
        inst.write(bad)
        assert _errors(inst) == ['-222,"Data out of range"'], bad
    # elements and format follow :FORMat, like :FETCh:ARRay?
    inst.write(":FORM ASC;:FORM:ELEM:SENS TIME")
    times = np.array(inst.query_ascii_values(":TRAC:DATA? 1,2"))
    np.testing.assert_allclose(times, everything[1:3, 1], rtol=1e-6, atol=1e-12)
    # an empty buffer answers "no data": 9.91E+37 in ASCII, NaN in binary
    inst.write(":TRAC:FEED:CONT NEV;:TRAC:CLE;:FORM:ELEM:SENS CURR,TIME")
    assert inst.query(":TRAC:DATA?") == "+9.910000E+37,+9.910000E+37"
    inst.write(":FORM REAL,64")
    assert np.isnan(_binary(inst, ":TRAC:DATA?")).all()
    inst.write(":TRAC:DATA? 0")
    assert _errors(inst) == ['-222,"Data out of range"']


def test_sense_data_reads_the_running_acquisition_in_pieces(make_server, open_visa):
    t0 = time.monotonic()
    srv = make_server(StepPower(3.0, [(t0 + 0.5, 9.0), (t0 + 1.2, 4.5)]))
    inst = open_visa(srv.resource)
    assert inst.query(":SENS:DATA?") == "+9.910000E+37,+9.910000E+37,+9.910000E+37"  # no acquisition yet
    points = 1000  # 2 s
    _setup(inst, points)
    inst.write(":INIT")
    pieces, got, sizes_seen = [], 0, []
    guard = time.monotonic() + GUARD_S
    while got < points and time.monotonic() < guard:
        time.sleep(0.01)  # pace the polling (no timing is asserted)
        latest = _binary(inst, ":SENS:DATA:LAT?")
        if np.isnan(latest).any():
            continue
        n = int(round(latest[1] / INTERVAL_S)) + 1  # TIME of the latest point -> how many are in
        if n > got:
            pieces.append(_binary(inst, f":SENS:DATA? {got},{n - got}"))
            sizes_seen.append(n)
            got = n
    assert got == points
    assert len(pieces) >= 2 and sizes_seen[0] < points  # read while it was running
    streamed = np.concatenate(pieces)
    assert inst.query("*OPC?") == "1"
    np.testing.assert_array_equal(streamed, _binary(inst, ":FETC:ARR?"))
    np.testing.assert_array_equal(streamed, _binary(inst, ":SENS:DATA?"))
    times = streamed[1::2]
    np.testing.assert_allclose(np.diff(times), INTERVAL_S, rtol=0, atol=1e-9)
    assert set(np.round(streamed[0::2] * 12.0, 9)) >= {3.0, 9.0, 4.5}
    np.testing.assert_array_equal(_binary(inst, ":SENS:DATA? CURR"), streamed[-2:])
    assert _errors(inst) == []


def test_timer_continues_across_inits_without_auto_reset(server, open_visa):
    inst = open_visa(server.resource)
    _setup(inst, 20, trace_points=100)
    assert inst.query(":SYST:TIME:TIM:COUN:RES:AUTO?") == "1"  # the default
    # AUTO ON: the TIME element restarts at 0 at each :INIT
    for _ in range(2):
        assert inst.query(":INIT;*OPC?") == "1"
        np.testing.assert_allclose(_binary(inst, ":FETC:ARR:TIME?"), np.arange(20) * INTERVAL_S, rtol=0, atol=1e-12)
    inst.write(":TRAC:FEED:CONT NEV;:TRAC:CLE;:TRAC:FEED:CONT NEXT")
    inst.write(":SYST:TIME:TIM:COUN:RES:AUTO OFF")
    assert inst.query(":SYST:TIME:TIM:COUN:RES:AUTO?") == "0"
    inst.write(":SYST:TIME:TIM:COUN:RES")
    first = second = None
    for i in range(2):
        assert inst.query(":INIT;*OPC?") == "1"
        times = _binary(inst, ":FETC:ARR:TIME?")
        np.testing.assert_allclose(np.diff(times), INTERVAL_S, rtol=0, atol=1e-9)
        first, second = (times, second) if i == 0 else (first, times)
    assert first[0] >= 0.0
    assert second[0] > first[-1]  # continues, not back to 0
    gt1, gt2 = server.acquisitions[-2:]
    assert second[0] - first[0] == pytest.approx(gt2.start_mono_s - gt1.start_mono_s, abs=1e-9)
    # the trace buffer holds both acquisitions on the one time base
    trace_times = _binary(inst, ":TRAC:DATA?")[1::2]
    assert trace_times.size == 40 and np.all(np.diff(trace_times) > 0)
    # the timer counts on; a reset brings it back near 0 (only orders are compared)
    before = float(inst.query(":SYST:TIME:TIM:COUN?"))
    assert before >= second[-1]
    inst.write(":SYST:TIME:TIM:COUN:RES")
    assert 0.0 <= float(inst.query(":SYST:TIME:TIM:COUN?")) < before
    inst.write(":SYST:TIME:TIM:COUN:RES:AUTO 1")
    assert inst.query(":SYST:TIME:TIM:COUN:RES:AUTO?") == "1"
    inst.write(":SYST:TIME:TIM:COUN:RES:AUTO MAYBE")
    assert _errors(inst) == ['-224,"Illegal parameter value"']


def test_rst_restores_buffer_and_timer_defaults(server, open_visa):
    inst = open_visa(server.resource)
    _setup(inst, 10, trace_points=40)
    inst.write(":SYST:TIME:TIM:COUN:RES:AUTO OFF")
    assert inst.query(":INIT;*OPC?") == "1"
    assert inst.query(":TRAC:POIN:ACT?;:TRAC:FEED:CONT?") == "+10;NEXT"
    inst.write("*RST")
    assert inst.query(":TRAC:POIN:ACT?;:TRAC:POIN?;:TRAC:FEED:CONT?;:TRAC:FEED?") == "+0;+100000;NEV;SENS"
    assert inst.query(":TRAC:FREE?") == "+100000,+100000"
    assert inst.query(":SYST:TIME:TIM:COUN:RES:AUTO?") == "1"
    assert _errors(inst) == []


def test_10_khz_read_in_pieces_while_acquiring(server, open_visa):
    """2 s at 10 kHz (interval 100 µs, aperture 80 µs), read from the trace
    buffer while it fills: every point, once, on an exact time grid."""
    interval, points = 1e-4, 20_000
    inst = open_visa(server.resource, timeout_ms=10_000)
    _setup(inst, points, interval=interval, aperture=8e-5)
    inst.write(":INIT")
    pieces, got, first_seen = [], 0, None
    guard = time.monotonic() + GUARD_S
    while got < points and time.monotonic() < guard:
        time.sleep(0.02)  # pace the polling (no timing is asserted)
        stored = int(inst.query(":TRAC:POIN:ACT?"))
        if stored > got:
            first_seen = stored if first_seen is None else first_seen
            pieces.append(_binary(inst, f":TRAC:DATA? {got},{stored - got}"))
            got = stored
    assert got == points
    assert first_seen < points and len(pieces) >= 2  # read while it was running
    data = np.concatenate(pieces).reshape(-1, 2)
    assert data.shape == (points, 2)
    times = data[:, 1]
    assert times[0] == 0.0
    assert np.all(np.diff(times) > 0)
    np.testing.assert_allclose(np.diff(times), interval, rtol=0, atol=1e-9)
    np.testing.assert_allclose(data[:, 0], 6.0 / 12.0)
    assert inst.query("*OPC?") == "1"
    np.testing.assert_array_equal(data.reshape(-1), _binary(inst, ":FETC:ARR?"))
    gt = server.acquisitions[-1]
    assert gt.points_acquired == points and not gt.aborted and gt.method == "exact"
    assert gt.energy_j == pytest.approx(6.0 * (points - 1) * interval, rel=1e-9)
    assert _errors(inst) == []

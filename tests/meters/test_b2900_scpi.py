"""The virtual B2900 through pyvisa (@py backend, raw SOCKET resource)."""

from __future__ import annotations

import json
import struct
import time

import numpy as np
import pytest

from orchestrator.meters.activity import ConstantPower, StepPower

APERTURE_S = 1e-3
INTERVAL_S = 2e-3

POINTS = 100


def _setup_acquisition(inst, points=POINTS, elements="CURR,TIME"):
    for cmd in (
        "*RST",
        ":SOUR:VOLT 12",
        ":SENS:CURR:PROT 2",
        f":SENS:CURR:APER {APERTURE_S}",
        ":TRIG:SOUR TIM",
        f":TRIG:TIM {INTERVAL_S}",
        f":TRIG:COUN {points}",
        ":TRAC:FEED SENS",
        f":TRAC:POIN {points}",
        ":TRAC:FEED:CONT NEXT",
        f":FORM:ELEM:SENS {elements}",
        ":OUTP ON",
    ):
        inst.write(cmd)
    assert inst.query(":SYST:ERR?") == '+0,"No error"'


def test_idn(server, open_visa):
    inst = open_visa(server.resource)
    idn = inst.query("*IDN?")
    assert idn == "Keysight Technologies,B2901A,VIRTUAL0001,socfarm-virtual"
    assert inst.query("*idn?") == idn  # case-insensitive


def test_settings_short_long_forms_and_relative_paths(server, open_visa):
    inst = open_visa(server.resource)
    inst.write(":SENSe:CURRent:APERture 0.0015")
    assert float(inst.query(":SENS:CURR:APER?")) == pytest.approx(0.0015)
    inst.write(":sens:curr:aper 1e-3")
    assert float(inst.query(":SENSE1:CURRENT:DC:APERTURE?")) == pytest.approx(1e-3)
    # Several commands on one line, the second relative to the first's path.
    inst.write(":SENS:CURR:PROT 0.5;APER 2e-3")
    assert inst.query(":SENS:CURR:PROT?;APER?") == "+5.000000E-01;+2.000000E-03"
    inst.write(":SOURce:VOLTage:LEVel:IMMediate:AMPLitude 12")
    assert float(inst.query(":SOUR:VOLT?")) == 12.0
    inst.write(":TRIG:SOUR TIMER;:TRIG:TIM 0.002;:TRIG:COUN 10")
    assert inst.query(":TRIG:SOUR?;:TRIG:TIM?;:TRIG:COUN?") == "TIM;+2.000000E-03;+10"
    inst.write(":FORM:DATA REAL,64;:FORM:BORD SWAP;:FORM:ELEM:SENS TIME,CURR")
    assert inst.query(":FORM?;:FORM:BORD?;:FORM:ELEM:SENS?") == "REAL,64;SWAP;CURR,TIME"
    assert inst.query(":SYST:ERR?") == '+0,"No error"'


def test_binary_fetch_is_big_endian_and_matches_ascii(make_server, open_visa):
    t0 = time.monotonic()
    srv = make_server(StepPower(3.0, [(t0 + 0.1, 9.0)]))
    inst = open_visa(srv.resource)
    _setup_acquisition(inst)
    inst.write(":FORM REAL,64")
    inst.write(":INIT")
    binary = inst.query_binary_values(":FETC:ARR?", datatype="d", is_big_endian=True, container=np.array)
    assert binary.size == 2 * POINTS
    current, times = binary[0::2], binary[1::2]
    np.testing.assert_allclose(times, np.arange(POINTS) * INTERVAL_S, rtol=0, atol=1e-12)
    assert set(np.round(current * 12.0, 9)) >= {3.0, 9.0}  # the step is in there

    # The same acquisition in ASCII (FETCh returns it again until the next :INIT).
    inst.write(":FORM ASCII")
    ascii_values = np.array(inst.query_ascii_values(":FETC:ARR?"))
    np.testing.assert_allclose(binary, ascii_values, rtol=2e-6, atol=1e-12)

    # Decoding the same NORMal (big-endian) bytes as little-endian gives garbage,
    # so the match above proves the byte order is really handled.
    inst.write(":FORM REAL,64")
    wrong = inst.query_binary_values(":FETC:ARR?", datatype="d", is_big_endian=False, container=np.array)
    assert not np.allclose(wrong, binary, equal_nan=False)
    raw = struct.pack(">d", binary[2])
    assert struct.unpack("<d", raw)[0] != binary[2]

    # SWAPped byte order is little-endian on the wire.
    inst.write(":FORM:BORD SWAP")
    swapped = inst.query_binary_values(":FETC:ARR?", datatype="d", is_big_endian=False, container=np.array)
    np.testing.assert_array_equal(swapped, binary)
    assert inst.query(":SYST:ERR?") == '+0,"No error"'


def test_fetch_array_current_returns_currents_only(server, open_visa):
    inst = open_visa(server.resource)
    _setup_acquisition(inst, points=20)
    inst.write(":FORM REAL,64;:INIT")
    pairs = inst.query_binary_values(":FETC:ARR?", datatype="d", is_big_endian=True, container=np.array)
    currents = inst.query_binary_values(":FETC:ARR:CURR?", datatype="d", is_big_endian=True, container=np.array)
    times = inst.query_binary_values(":FETC:ARR:TIME?", datatype="d", is_big_endian=True, container=np.array)
    np.testing.assert_array_equal(currents, pairs[0::2])
    np.testing.assert_array_equal(times, pairs[1::2])
    np.testing.assert_allclose(currents, 6.0 / 12.0)


def test_error_queue_fifo_and_cleared(server, open_visa):
    inst = open_visa(server.resource)
    inst.write(":NOT:A:COMMand 3")  # unknown header
    inst.write(":TRIG:COUN 100001")  # above the 100000 maximum
    inst.write(":SOUR:VOLT twelve")  # not a number
    inst.write(":TRAC:POIN 0")  # below the minimum
    assert inst.query(":SYST:ERR?") == '-113,"Undefined header"'
    assert inst.query(":SYST:ERR?") == '-222,"Data out of range"'
    assert inst.query(":SYST:ERROR:NEXT?") == '-104,"Data type error"'
    assert inst.query(":SYST:ERR?") == '-222,"Data out of range"'
    assert inst.query(":SYST:ERR?") == '+0,"No error"'
    assert inst.query(":SYST:ERR?") == '+0,"No error"'
    # The rejected values did not change the settings.
    assert inst.query(":TRIG:COUN?") == "+1"


def test_error_entries_for_bad_input(server, open_visa):
    inst = open_visa(server.resource)
    inst.write(":SOUR:VOLT 1.2.3")
    inst.write(":SOUR:VOLT")
    inst.write(":SOUR:VOLT 1,2")
    inst.write(":TRIG:SOUR BANANA")
    inst.write(":SOUR2:VOLT 1")
    inst.write("@@@")
    inst.write(":INIT?")
    expected = [
        '-121,"Invalid character in number"',
        '-109,"Missing parameter"',
        '-108,"Parameter not allowed"',
        '-224,"Illegal parameter value"',
        '-114,"Header suffix out of range"',
        '-102,"Syntax error"',
        '-113,"Undefined header"',
    ]
    assert [inst.query(":SYST:ERR?") for _ in expected] == expected
    assert inst.query(":SYST:ERR?") == '+0,"No error"'


def test_cls_clears_and_queue_overflows(server, open_visa):
    inst = open_visa(server.resource)
    for _ in range(15):
        inst.write(":BOGUS")
    entries = [inst.query(":SYST:ERR?") for _ in range(11)]
    assert entries[:9] == ['-113,"Undefined header"'] * 9
    assert entries[9] == '-350,"Queue overflow"'
    assert entries[10] == '+0,"No error"'
    inst.write(":BOGUS")
    inst.write("*CLS")
    assert inst.query(":SYST:ERR?") == '+0,"No error"'


def test_server_survives_garbage(server, open_visa):
    inst = open_visa(server.resource)
    inst.write_raw(b"\xff\xfe\x00\x01;;;:::\r\n")
    inst.write_raw(b"\n\n")
    inst.write(":FORM:ELEM:SENS")
    assert inst.query("*IDN?").startswith("Keysight Technologies,B2901A")
    errors = []
    for _ in range(12):
        e = inst.query(":SYST:ERR?")
        if e.startswith("+0"):
            break
        errors.append(e)
    assert errors and all(e.startswith("-") for e in errors)


def test_init_replaces_and_abort_keeps_partial(server, open_visa):
    inst = open_visa(server.resource)
    _setup_acquisition(inst, points=1000)  # 2 s if left alone
    inst.write(":FORM ASC;:INIT")
    time.sleep(0.1)
    inst.write(":TRIG:COUN 10;:INIT")  # a new :INIT aborts and replaces the running one
    values = inst.query_ascii_values(":FETC:ARR?")
    assert len(values) == 2 * 10
    inst.write(":TRIG:COUN 1000;:INIT")
    time.sleep(0.1)
    inst.write(":ABOR")
    values = inst.query_ascii_values(":FETC:ARR?")
    assert 2 <= len(values) < 2 * 1000
    gts = server.acquisitions
    assert [g.aborted for g in gts] == [True, False, True]
    assert gts[1].points_acquired == 10


def test_opc_waits_for_the_acquisition(server, open_visa):
    inst = open_visa(server.resource)
    _setup_acquisition(inst, points=100)
    t0 = time.monotonic()
    assert inst.query(":INIT;*OPC?") == "1"
    assert time.monotonic() - t0 >= 99 * INTERVAL_S


def test_measure_current_spot_reading(make_server, open_visa):
    srv = make_server(ConstantPower(4.8))
    inst = open_visa(srv.resource)
    inst.write(":SOUR:VOLT 12;:SENS:CURR:PROT 1;:SENS:CURR:APER 1e-3;:OUTP ON")
    assert float(inst.query(":MEAS:CURR?")) == pytest.approx(0.4)
    inst.write(":SENS:CURR:PROT 0.1")  # compliance clamps the current
    assert float(inst.query(":MEAS:CURR?")) == pytest.approx(0.1)
    inst.write(":OUTP OFF;:SOUR:VOLT 0")
    assert float(inst.query(":MEAS:CURR?")) == 0.0


def test_aperture_longer_than_interval_is_a_settings_conflict(server, open_visa):
    inst = open_visa(server.resource)
    inst.write(":SENS:CURR:APER 0.01;:TRIG:SOUR TIM;:TRIG:TIM 0.002;:INIT")
    assert inst.query(":SYST:ERR?") == '-221,"Settings conflict"'
    assert server.acquisitions == []


def test_ground_truth_log(make_server, open_visa, tmp_path):
    log = tmp_path / "gt.jsonl"
    srv = make_server(ConstantPower(6.0), ground_truth_log=log)
    inst = open_visa(srv.resource)
    _setup_acquisition(inst, points=51)
    for _ in range(2):
        inst.write(":INIT")
        assert inst.query("*OPC?") == "1"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(lines) == 2
    rec = lines[-1]
    assert rec["points"] == 51 and rec["points_acquired"] == 51 and not rec["aborted"]
    assert rec["interval_s"] == INTERVAL_S and rec["clock"] == "time.monotonic"
    assert rec["window_end_mono_s"] - rec["window_start_mono_s"] == pytest.approx(50 * INTERVAL_S)
    assert rec["energy_j"] == pytest.approx(6.0 * 50 * INTERVAL_S, rel=1e-9)
    # ConstantPower integrates exactly: no grid was needed
    assert rec["method"] == "exact" and rec["fine_step_s"] is None
    assert srv.acquisitions[-1].to_json() == json.dumps(rec, sort_keys=True)


def test_several_clients(server, open_visa):
    a = open_visa(server.resource)
    b = open_visa(server.resource)
    a.write(":SOUR:VOLT 5")
    assert a.query("*OPC?") == "1"  # A's command is done (its connection is served by its own thread)
    assert float(b.query(":SOUR:VOLT?")) == 5.0  # one instrument, shared state
    assert server.connection_count == 2


def test_stop_ends_every_thread(make_server, open_visa):
    import threading

    srv = make_server()
    inst = open_visa(srv.resource)
    inst.write(":TRIG:SOUR TIM;:TRIG:TIM 0.002;:SENS:CURR:APER 0.001;:TRIG:COUN 1000;:INIT")
    assert inst.query("*IDN?")
    tag = f"-{srv.port}"
    srv.stop()
    srv.stop()  # idempotent
    alive = [t.name for t in threading.enumerate() if t.name.startswith("vb2900-") and t.is_alive()]
    assert not [n for n in alive if n.endswith(tag) or n.startswith("vb2900-conn") or n.startswith("vb2900-acq")]

"""The virtual B2900 as Keysight's B2900 Programming Guide describes it, through raw pyvisa.

What drivers written by others against the guide send: channel lists on
:MEASure/:FETCh/:READ, NPLC and aperture, sense functions, compliance, outputs,
the source mode, IEEE 488.2 common commands, the full error queue, a second
channel on two-channel models (and the guide's error on one-channel models),
CR LF terminators.
"""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.meters.activity import ConstantPower
from orchestrator.meters.virtual_b2900 import MODELS, VirtualB2900

NO_DATA = 9.91e37
NO_ERROR = '+0,"No error"'


def _floats(text: str) -> list[float]:
    """The numbers of an answer: values of one query (``,``) or of several (``;``)."""
    return [float(v) for v in text.replace(";", ",").split(",")]


def _errors(inst) -> list[str]:
    """Every entry of the error queue, through the guide's :SYSTem:ERRor:ALL?."""
    answer = inst.query(":SYST:ERR:ALL?")
    return [] if answer == NO_ERROR else [f"{c},{m}" for c, m in zip(*[iter(answer.split(","))] * 2)]


@pytest.fixture
def board():
    """The board's power (W), changed by the tests while the instrument runs."""
    return ConstantPower(6.0)


def _smu(make_server, open_visa, board, **kwargs):
    srv = make_server(board, **kwargs)
    inst = open_visa(srv.resource)
    inst.write(":SOUR:VOLT 12;:SENS:CURR:PROT 2;:OUTP ON")
    return srv, inst


def test_measure_with_channel_lists_follows_the_board(make_server, open_visa, board):
    _, inst = _smu(make_server, open_visa, board)
    assert float(inst.query("MEAS:VOLT? (@1)")) == 12.0
    assert float(inst.query("MEAS:CURR? (@1)")) == pytest.approx(6.0 / 12.0)
    assert float(inst.query("MEAS:VOLT?")) == 12.0  # no list: channel 1, as the guide says
    board.watts = 9.6
    assert float(inst.query(":MEASure:CURRent:DC? (@1)")) == pytest.approx(9.6 / 12.0)
    # :MEASure? returns the :FORMat:ELEMents:SENSe elements (VOLT, CURR, TIME here)
    volts, amps, _ = _floats(inst.query(":MEAS? (@1)"))
    assert (volts, amps) == (12.0, pytest.approx(0.8))
    # :FETCh returns that spot reading again; :READ takes a new one
    assert float(inst.query(":FETC:CURR? (@1)")) == pytest.approx(0.8)
    board.watts = 3.0
    assert float(inst.query(":READ:CURR? (@1)")) == pytest.approx(0.25)
    assert float(inst.query(":FETCh:SCALar:CURRent?")) == pytest.approx(0.25)
    assert _errors(inst) == []


def test_nplc_and_aperture_are_one_setting_linked_by_the_line_frequency(make_server, open_visa):
    inst = open_visa(make_server().resource)
    # defaults: 0.1 PLC at 50 Hz
    assert inst.query(":SYST:LFR?") == "+50"
    assert float(inst.query(":SENS:CURR:NPLC?")) == pytest.approx(0.1)
    assert float(inst.query(":SENS:CURR:APER?")) == pytest.approx(0.1 / 50)
    inst.write(":SENS:CURR:NPLC 1")
    assert float(inst.query(":SENS:CURR:APER?")) == pytest.approx(0.02)
    assert float(inst.query(":SENS:VOLT:NPLC?")) == pytest.approx(1.0)  # common to the channel's functions
    inst.write(":SENSe:VOLTage:DC:APERture 0.01")
    assert float(inst.query(":SENS:CURR:NPLCycles?")) == pytest.approx(0.5)
    # beyond the limits a value is set to MIN or MAX, without error
    inst.write(":SENS:CURR:NPLC 1000")
    assert float(inst.query(":SENS:CURR:NPLC?")) == pytest.approx(100.0)
    inst.write(":SENS:CURR:APER 1e-9")
    assert float(inst.query(":SENS:CURR:APER?")) == pytest.approx(8e-6)
    assert _floats(inst.query(":SENS:CURR:NPLC? MIN;:SENS:CURR:NPLC? MAX;:SENS:CURR:NPLC? DEF")) == [
        pytest.approx(4e-4), pytest.approx(100.0), pytest.approx(0.1)]
    assert _errors(inst) == []
    # 60 Hz: the aperture stays, the NPLC follows
    inst.write(":SENS:CURR:APER 0.02;:SYST:LFR 60")
    assert inst.query(":SYST:LFR?") == "+60"
    assert float(inst.query(":SENS:CURR:NPLC?")) == pytest.approx(1.2)
    assert float(inst.query(":SENS:CURR:NPLC? MAX")) == pytest.approx(120.0)
    inst.write(":SYST:LFR 55")
    assert _errors(inst) == ['-224,"Illegal parameter value"']


def test_sense_functions_on_off_and_resistance(make_server, open_visa, board):
    _, inst = _smu(make_server, open_visa, board)
    assert inst.query(":SENS:FUNC?") == '"VOLT","CURR"'
    assert inst.query(":SENS:FUNC:OFF?") == '"RES"'
    inst.write(':SENS:FUNC:OFF "VOLT"')
    assert inst.query(":SENS:FUNC:ON?") == '"CURR"'
    assert float(inst.query("MEAS:VOLT?")) == NO_DATA  # a function not measured: "no data"
    assert float(inst.query("MEAS:CURR?")) == pytest.approx(0.5)
    inst.write(":SENS:FUNC:ON \"VOLT:DC\",'RES'")
    assert inst.query(":SENS:FUNC:ON:COUN?;:SENS:FUNC:OFF:COUN?") == "+3;+0"
    assert inst.query(':SENS:FUNC:STAT? "RES"') == "1"
    assert float(inst.query("MEAS:RES? (@1)")) == pytest.approx(12.0 / 0.5)
    inst.write(":SENS:FUNC:OFF:ALL")
    assert inst.query(':SENS:FUNC:STAT? "CURR"') == "0"
    assert float(inst.query("MEAS:CURR?")) == NO_DATA
    inst.write(":SENS:FUNC:ALL")
    assert inst.query(":SENS:FUNC?") == '"VOLT","CURR","RES"'
    inst.write(':SENS:FUNC "POWER"')
    inst.write(":CURR:PROT 1")  # the guide writes :SENSe[c]:... without brackets
    assert _errors(inst) == ['-224,"Illegal parameter value"', '-113,"Undefined header"']


def test_compliance_levels_and_trip_in_both_source_modes(make_server, open_visa, board):
    _, inst = _smu(make_server, open_visa, board)
    inst.write("*RST")
    assert _floats(inst.query(":SENS:CURR:PROT?;:SENS:VOLT:PROT?")) == [1e-4, 2.0]
    inst.write(":SOUR:VOLT 12;:SENS:CURR:PROT 0.25;:OUTP ON")
    # 6 W at 12 V asks for 0.5 A: the source holds 0.25 A and says so
    assert float(inst.query("MEAS:CURR?")) == pytest.approx(0.25)
    assert inst.query(":SENS:CURR:PROT:TRIP?") == "1"
    assert inst.query(":SENS:VOLT:PROT:TRIP?") == "0"  # a voltage source has no voltage compliance
    inst.write(":SENS1:CURR:DC:PROT:LEV 1")
    assert inst.query(":SENS:CURR:PROT:TRIP?") == "0"
    assert float(inst.query("MEAS:CURR?")) == pytest.approx(0.5)
    # current source: the board develops V = P / I, up to the voltage compliance
    inst.write(":SOUR:FUNC:MODE CURR;:SOUR:CURR 0.1")
    assert inst.query(":SOURce1:FUNCtion:MODE?") == "CURR"
    assert float(inst.query("MEAS:VOLT?")) == pytest.approx(2.0)
    assert inst.query(":SENS:VOLT:PROT:TRIP?") == "1"
    inst.write(":SENS:VOLT:PROT 100")
    assert float(inst.query("MEAS:VOLT?")) == pytest.approx(6.0 / 0.1)
    assert float(inst.query("MEAS:CURR?")) == pytest.approx(0.1)
    assert inst.query(":SENS:VOLT:PROT:TRIP?") == "0"
    inst.write(":SENS:CURR:PROT 5")  # above the 3.03 A maximum
    assert _errors(inst) == ['-222,"Data out of range"']


def test_outputs_on_off_and_automatic_output_on(make_server, open_visa, board):
    srv = make_server(board)
    inst = open_visa(srv.resource)
    inst.write(":SOUR:VOLT 12;:SENS:CURR:PROT 2")
    assert inst.query(":OUTP?") == "0"
    for setting, state in (("ON", "1"), ("OFF", "0"), ("1", "1"), ("0", "0")):
        inst.write(f":OUTP1 {setting}")
        assert inst.query(":OUTPut1:STATe?") == state
    inst.write(":OUTP:ON:AUTO OFF")
    assert inst.query(":OUTP:ON:AUTO?") == "0"
    assert float(inst.query("MEAS:CURR?")) == 0.0  # output off: nothing flows
    assert inst.query(":OUTP?") == "0"
    inst.write(":OUTP:ON:AUTO ON")
    assert float(inst.query("MEAS:CURR?")) == pytest.approx(0.5)  # the measurement turned it on
    assert inst.query(":OUTP?") == "1"
    inst.write(":OUTP MAYBE")
    assert _errors(inst) == ['-224,"Illegal parameter value"']


def test_error_queue_all_texts_and_status_bytes(make_server, open_visa):
    inst = open_visa(make_server().resource)
    assert inst.query(":SYST:ERR:ALL?") == NO_ERROR
    inst.write(":NOT:A:COMMand")
    inst.write(":SOUR:FUNC:MODE POWER")
    inst.write(":SOUR:VOLT 500")
    assert inst.query("*STB?") == "+4"  # error available
    assert inst.query("*ESR?") == "+48"  # command error (32) and execution errors (16)
    assert inst.query("*ESR?") == "+0"  # reading cleared it
    assert inst.query(":SYST:ERR:ALL?") == (
        '-113,"Undefined header",-224,"Illegal parameter value",-222,"Data out of range"'
    )
    assert inst.query(":SYST:ERR:ALL?") == NO_ERROR
    assert inst.query(":SYST:ERR?") == NO_ERROR
    assert inst.query("*STB?") == "+0"
    inst.write("*ESE 32;*SRE 32")
    inst.write(":BOGUS")
    assert inst.query("*STB?") == "+100"  # error available, event summary, master summary
    inst.write("*CLS")
    assert inst.query("*STB?;*ESR?;*TST?") == "+0;+0;+0"


def test_opc_and_reset(make_server, open_visa, board):
    srv, inst = _smu(make_server, open_visa, board)
    inst.write(":SENS:CURR:APER 1e-3;:TRIG:SOUR TIM;:TRIG:TIM 2e-3;:TRIG:COUN 20;:INIT;*OPC")
    assert inst.query("*OPC?") == "1"
    assert int(inst.query("*ESR?")) & 1  # operation complete
    inst.write(":INIT;*WAI")
    assert len(_floats(inst.query(":FETC:ARR:CURR? (@1)"))) == 20
    inst.write("*RST")
    assert inst.query(":SOUR:VOLT?;:OUTP?;:SOUR:FUNC:MODE?;:TRIG:COUN?") == "+0.000000E+00;0;VOLT;+1"
    assert float(inst.query(":SENS:CURR:NPLC?")) == pytest.approx(0.1)
    assert [g.points_acquired for g in srv.acquisitions] == [20, 20]


def test_two_channel_model_answers_for_channel_2(make_server, open_visa, board):
    srv, inst = _smu(make_server, open_visa, board, model="B2902A", channel2_load_ohm=100.0)
    assert inst.query("*IDN?").split(",")[1] == "B2902A"
    inst.write(":SOUR2:VOLT 5;:SENS2:CURR:PROT 0.1;:OUTP2 ON")
    assert inst.query(":SOUR1:VOLT?;:SOUR2:VOLT?") == "+1.200000E+01;+5.000000E+00"
    assert inst.query(":OUTP2?") == "1"
    assert float(inst.query("MEAS:CURR? (@2)")) == pytest.approx(5.0 / 100.0)
    for chanlist in ("(@1,2)", "(@2,1)", "(@1:2)", "(@2:1)"):  # channel 1 first, whatever the order
        assert _floats(inst.query(f"MEAS:CURR? {chanlist}")) == [pytest.approx(0.5), pytest.approx(0.05)]
    values = _floats(inst.query(":MEAS? (@1,2)"))  # VOLT, CURR, TIME of each channel
    assert values[:2] == [12.0, pytest.approx(0.5)] and values[3:5] == [5.0, pytest.approx(0.05)]
    # settings of channel 2 are its own; relative paths keep the channel
    inst.write(":SENS2:CURR:NPLC 2;:SENS2:CURR:PROT 0.01;NPLC 3")
    assert _floats(inst.query(":SENS1:CURR:NPLC?;:SENS2:CURR:NPLC?")) == [
        pytest.approx(0.1), pytest.approx(3.0)]
    # the resistor in compliance: the source holds 10 mA, the voltage falls to 1 V
    assert _floats(inst.query("MEAS:VOLT? (@2);:MEAS:CURR? (@2)")) == [
        pytest.approx(1.0), pytest.approx(0.01)]
    assert inst.query(":SENS2:CURR:PROT:TRIP?;:SENS1:CURR:PROT:TRIP?") == "1;0"
    inst.write(":SOUR2:FUNC:MODE CURR;:SOUR2:CURR 0.02;:SENS2:VOLT:PROT 10")
    assert _floats(inst.query("MEAS:VOLT? (@2)")) == [pytest.approx(2.0)]
    # acquisitions on both channels; the ground truth is the board's (channel 1) only
    inst.write(":SOUR2:FUNC:MODE VOLT;:SENS2:CURR:PROT 0.1;:SENS1:CURR:APER 1e-3;:SENS2:CURR:APER 1e-3")
    inst.write(":TRIG:SOUR TIM,(@1,2);:TRIG:TIM 2e-3;:TRIG:COUN 10;:INIT (@1,2)")
    currents = _floats(inst.query(":FETC:ARR:CURR? (@1,2)"))
    np.testing.assert_allclose(currents, [0.5] * 10 + [0.05] * 10)
    assert _floats(inst.query(":FETC:CURR? (@2)")) == [pytest.approx(0.05)]
    assert [g.points_acquired for g in srv.acquisitions] == [10]
    assert _errors(inst) == []


def test_one_channel_model_gives_the_guides_errors_for_channel_2(make_server, open_visa, board):
    _, inst = _smu(make_server, open_visa, board, model="B2901A")
    inst.write(":SOUR2:VOLT 1")
    inst.write(":OUTP2 ON")
    inst.write(":SENS2:CURR:NPLC 1")
    inst.write("MEAS:CURR? (@2)")  # an erroneous query has no answer; read the queue instead
    inst.write("MEAS:CURR? (@1,2)")
    assert _errors(inst) == ['-114,"Header suffix out of range"'] * 3 + ['-224,"Illegal parameter value"'] * 2
    assert inst.query(":SOUR:VOLT?;:OUTP?") == "+1.200000E+01;1"  # channel 1 untouched
    assert float(inst.query("MEAS:CURR? (@1)")) == pytest.approx(0.5)


def test_cr_lf_terminators_compound_commands_short_and_long_forms(make_server, open_visa):
    inst = open_visa(make_server(model="B2912A").resource)
    inst.write_termination = "\r\n"
    assert inst.query("*idn?").startswith("Keysight Technologies,B2912A,")
    inst.write(":source2:voltage:level:immediate:amplitude 7;:sour2:func:mode volt")
    assert inst.query(":SOUR2:VOLT?;:SOURCE2:FUNCTION:MODE?") == "+7.000000E+00;VOLT"
    inst.write(":SENSe2:CURRent:DC:NPLCycles 2;PROTection:LEVel 0.5;:outp2 on")  # relative to SENS2:CURR:DC
    assert inst.query(":sens2:curr:prot?;nplc?;:OUTPUT2?") == "+5.000000E-01;+2.000000E+00;1"
    assert inst.query(":SYSTEM:ERROR:ALL?") == NO_ERROR


def test_models(make_server):
    assert MODELS["B2962A"] == 2 and MODELS["B2901A"] == 1
    with pytest.raises(ValueError, match="B2999A"):
        VirtualB2900(ConstantPower(1.0), model="B2999A")
    assert make_server(model="B2962A").channels == 2

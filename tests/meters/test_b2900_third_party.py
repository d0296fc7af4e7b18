"""The virtual B2900 driven by B2900-family drivers this project did not write, unmodified.

- QCoDeS' ``KeysightB2962A`` (``qcodes.instrument_drivers.Keysight``): two
  channels, ``SOURce{c}:VOLT``/``CURR``, ``SENS{c}:CURR:PROT``/``VOLT:PROT``,
  ``OUTP{c}``, ``:SOUR{c}:FUNC:MODE``, ``:SENS{c}:REM``, ``MEAS:VOLT|CURR|RES? (@c)``.
- pylabinstruments' ``KeysightB2902A``: ``SENS{c}:CURR:NPLC``/``VOLT:NPLC``,
  ``OUTP{c} ON|OFF``/``OUTP{c}?``, ``SOUR{c}:FUNC:MODE``, ``MEAS:VOLT|CURR? (@c)``,
  ``*TST?``, ``*RST``/``*CLS``, ``SYST:ERR?``. It also sends
  ``SOUR{c}:CURR:LIMIT``/``VOLT:LIMIT`` for the compliance, which the guide
  does not have (its compliance is ``:SENSe[c]:<CURR|VOLT>:PROTection``): the
  instrument answers ``-113,"Undefined header"`` and keeps its compliance, as
  the tests below check.

Every value asserted is what the simulator holds: the board's simulated power
over the source voltage on channel 1, the resistor of channel 2, the settings
read back.
"""

from __future__ import annotations

import itertools

import pytest
from pylabinstruments import KeysightB2902A
from qcodes.instrument_drivers.Keysight import KeysightB2962A

from orchestrator.meters.activity import ConstantPower

LOAD_OHM = 100.0
_names = itertools.count()


@pytest.fixture
def qcodes_smu(make_server):
    """Factory: a QCoDeS KeysightB2962A on a virtual B2900 of ``model``; closed at teardown."""
    opened = []

    def _open(board, model="B2962A"):
        srv = make_server(board, model=model, channel2_load_ohm=LOAD_OHM)
        smu = KeysightB2962A(f"vb2900_{next(_names)}", srv.resource, visalib="@py", timeout=5)
        opened.append(smu)
        return srv, smu

    yield _open
    for smu in opened:
        smu.close()


@pytest.fixture
def pylab_smu(make_server):
    """Factory: a pylabinstruments KeysightB2902A on a virtual B2900; closed at teardown."""
    opened = []

    def _open(board, **kwargs):
        srv = make_server(board, model="B2902A", **kwargs)
        smu = KeysightB2902A(srv.resource, identify=False)
        # The driver leaves pyvisa's read termination unset, which suits the
        # instrument's VXI-11, USB and GPIB resources (their END message ends a
        # reply); a raw socket has no END, so a line feed must end it, as on a
        # bench B2900's port 5025. The driver's code is not touched.
        smu.connection.read_termination = "\n"
        opened.append(smu)
        return srv, smu

    yield _open
    for smu in opened:
        smu.close()


# -- QCoDeS -------------------------------------------------------------------

def test_qcodes_identifies_the_instrument(qcodes_smu):
    _, smu = qcodes_smu(ConstantPower(6.0))
    assert smu.get_idn() == {
        "vendor": "Keysight Technologies", "model": "B2962A", "serial": "VIRTUAL0001", "firmware": "socfarm-virtual",
    }
    assert [ch.channel for ch in (smu.ch1, smu.ch2)] == [1, 2]


def test_qcodes_channel_1_measures_the_boards_power(qcodes_smu):
    board = ConstantPower(6.0)
    srv, smu = qcodes_smu(board)
    ch1 = smu.ch1
    ch1.source_mode("voltage")
    ch1.source_voltage(12.0)
    ch1.current_limit(2.0)
    ch1.voltage_limit(20.0)
    ch1.enable(True)
    assert (ch1.source_mode(), ch1.source_voltage(), ch1.current_limit(), ch1.voltage_limit(), ch1.enable()) == (
        "voltage", 12.0, 2.0, 20.0, True)
    assert ch1.voltage() == 12.0
    assert ch1.current() == pytest.approx(6.0 / 12.0)  # the simulated power over the source voltage
    board.watts = 9.0
    assert ch1.current() == pytest.approx(9.0 / 12.0)
    # compliance: the board asks for 0.75 A, the source holds 0.25 A
    ch1.current_limit(0.25)
    assert ch1.current() == pytest.approx(0.25)
    assert smu.ask(":SENS1:CURR:PROT:TRIP?") == "1"
    # resistance is V / I once that function is on (it is off after *RST, as the guide says)
    ch1.current_limit(2.0)
    assert ch1.resistance() == 9.91e37
    smu.write(':SENS1:FUNC "RES"')
    assert ch1.resistance() == pytest.approx(12.0 / 0.75)
    ch1.remote_sensing(True)
    assert ch1.remote_sensing() is True
    ch1.enable(False)
    assert ch1.enable() is False
    assert srv.error_queue() == []


def test_qcodes_current_source_into_the_board(qcodes_smu):
    _, smu = qcodes_smu(ConstantPower(1.0))
    ch1 = smu.ch1
    ch1.source_mode("current")
    ch1.source_current(0.1)
    ch1.voltage_limit(20.0)
    assert ch1.source_mode() == "current"
    assert ch1.voltage() == pytest.approx(1.0 / 0.1)  # the board develops V = P / I
    assert ch1.current() == pytest.approx(0.1)
    ch1.voltage_limit(5.0)
    assert ch1.voltage() == pytest.approx(5.0)  # voltage compliance
    assert smu.ask(":SENS1:VOLT:PROT:TRIP?") == "1"
    assert smu.ask(":SYST:ERR:ALL?") == '+0,"No error"'


def test_qcodes_channel_2_sources_its_resistor_beside_channel_1(qcodes_smu):
    _, smu = qcodes_smu(ConstantPower(6.0))
    ch1, ch2 = smu.ch1, smu.ch2
    ch1.source_voltage(12.0)
    ch1.current_limit(2.0)
    ch2.source_mode("voltage")
    ch2.source_voltage(5.0)
    ch2.current_limit(0.1)
    ch2.enable(True)
    assert ch2.voltage() == 5.0
    assert ch2.current() == pytest.approx(5.0 / LOAD_OHM)
    assert ch1.current() == pytest.approx(0.5)  # channel 1 still feeds the board
    ch2.current_limit(0.01)
    assert ch2.current() == pytest.approx(0.01)
    assert ch2.voltage() == pytest.approx(0.01 * LOAD_OHM)
    ch2.source_mode("current")
    ch2.source_current(0.02)
    ch2.voltage_limit(10.0)
    assert ch2.voltage() == pytest.approx(0.02 * LOAD_OHM)
    assert (ch1.source_mode(), ch2.source_mode()) == ("voltage", "current")
    assert (ch1.source_voltage(), ch2.source_voltage()) == (12.0, 5.0)
    assert smu.ask(":SYST:ERR:ALL?") == '+0,"No error"'


def test_qcodes_on_a_one_channel_model_channel_2_is_the_guides_error(qcodes_smu):
    _, smu = qcodes_smu(ConstantPower(6.0), model="B2901A")
    smu.ch2.source_voltage(1.0)
    smu.ch2.enable(True)
    assert smu.ask(":SYST:ERR:ALL?") == '-114,"Header suffix out of range",-114,"Header suffix out of range"'
    smu.ch1.source_voltage(12.0)
    smu.ch1.current_limit(1.0)
    assert smu.ch1.current() == pytest.approx(0.5)
    assert smu.ask(":SYST:ERR?") == '+0,"No error"'


# -- pylabinstruments ---------------------------------------------------------

def test_pylabinstruments_sources_measures_and_reads_errors(pylab_smu):
    board = ConstantPower(0.6e-3)  # 50 uA at 12 V: inside the default 100 uA compliance
    srv, smu = pylab_smu(board, channel2_load_ohm=100e3)
    assert smu.identify() == srv.idn
    assert smu.self_test() == (True, "Self-test passed")
    smu.reset()
    smu.set_function("VOLT", 1)
    assert smu.get_function(1) == "VOLT"
    smu.set_voltage(12.0, current_limit=1.0, channel=1)
    # the driver's compliance command is not the guide's: refused, compliance unchanged
    assert smu.get_error() == '-113,"Undefined header"'
    assert float(smu.query(":SENS1:CURR:PROT?")) == 1e-4
    assert smu.get_voltage(1) == 12.0
    smu.enable_output(1)
    assert smu.get_output_state(1) is True
    assert smu.measure_voltage(1) == 12.0
    assert smu.measure_current(1) == pytest.approx(0.6e-3 / 12.0)
    assert smu.measure_power(1) == pytest.approx(0.6e-3)  # V * I: the board's simulated power
    board.watts = 6.0
    assert smu.measure_current(1) == pytest.approx(1e-4)  # the default compliance holds
    # NPLC, set for current and voltage by the driver
    smu.set_nplc(1, 2.0)
    assert float(smu.query(":SENS1:CURR:NPLC?")) == pytest.approx(2.0)
    assert float(smu.query(":SENS1:VOLT:APER?")) == pytest.approx(2.0 / 50)
    smu.disable_output(1)
    assert smu.get_output_state(1) is False
    assert smu.get_error() == '+0,"No error"'


def test_pylabinstruments_channel_2_and_current_mode(pylab_smu):
    board = ConstantPower(0.6e-3)
    _, smu = pylab_smu(board, channel2_load_ohm=100e3)
    smu.set_voltage(5.0, current_limit=0.1, channel=2)
    smu.enable_output(2)
    assert smu.get_output_state(2) is True
    assert smu.measure_voltage(2) == 5.0
    assert smu.measure_current(2) == pytest.approx(5.0 / 100e3)
    smu.set_nplc(2, 0.5)
    assert float(smu.query(":SENS2:CURR:NPLC?")) == pytest.approx(0.5)
    assert float(smu.query(":SENS1:CURR:NPLC?")) == pytest.approx(0.1)  # channel 1 keeps its own
    # current source into the board: V = P / I, within the default 2 V compliance
    smu.set_function("CURR", 1)
    smu.set_current(0.01, voltage_limit=20.0, channel=1)
    assert smu.get_function(1) == "CURR"
    assert smu.measure_voltage(1) == pytest.approx(0.6e-3 / 0.01)
    assert smu.measure_current(1) == pytest.approx(0.01)
    smu.four_wire_mode(1, True)
    assert smu.query(":SENS1:REM?") == "1"
    # the two refused compliance commands (LIMIT is not in the guide), in order
    assert [smu.get_error() for _ in range(3)] == ['-113,"Undefined header"'] * 2 + ['+0,"No error"']

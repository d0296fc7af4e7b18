"""Streaming acquisitions: read while acquiring, longer than the instrument's 100,000-point buffer."""

from __future__ import annotations

import time

import numpy as np
import pytest

from orchestrator.config.inventory import MeterSpec
from orchestrator.errors import MeterError
from orchestrator.meters import energy_j
from orchestrator.meters.activity import ConstantPower, StepPower
from orchestrator.meters.b2900 import MAX_POINTS
from orchestrator.meters.b2900_stream import B2900Stream
from orchestrator.meters.session import MeterSession


def _stepping(t0: float, period_s: float = 0.25, n: int = 400) -> StepPower:
    return StepPower(3.0, [(t0 + period_s * k, 8.0 if k % 2 else 3.0) for k in range(1, n)])


def test_a_window_longer_than_the_buffer_is_covered(make_server, make_meter):
    """20 kHz for 5.6 s is 112,000 points: more than the instrument holds. The stream reads while it
    acquires and starts a second segment; the energy of the whole window matches the ground truth."""
    srv = make_server(_stepping(time.monotonic()))
    meter = make_meter(srv.resource, aperture_s=4e-5, interval_s=5e-5, reset_on_configure=False)
    session = MeterSession(MeterSpec(kind="b2900", resource=srv.resource, aperture_s=4e-5, interval_s=5e-5), meter)
    session.begin()
    t0 = time.monotonic() + 0.05
    time.sleep(5.6)
    t1 = time.monotonic()
    capture = session.finish(until_s=t1)
    trace = capture.stream.trace
    assert capture.covered and trace.t_start_s <= t0 and trace.t_end_s >= t1
    assert capture.stream.segments == 2 and len(trace) > MAX_POINTS
    # the segments share one time base: strictly increasing, every step the interval but one re-arm gap
    steps = np.diff(trace.t_mono_s)
    assert (np.abs(steps - 5e-5) < 1e-9).sum() >= len(steps) - 1
    assert capture.stream.max_gap_s == pytest.approx(steps.max())
    truth = srv.true_energy_j(t0, t1)
    assert abs(energy_j(trace, t0, t1) - truth) / truth < 0.005


def test_segments_follow_each_other_on_one_time_base(make_server, make_meter):
    srv = make_server(ConstantPower(6.0))
    meter = make_meter(srv.resource, aperture_s=8e-5, interval_s=1e-4, reset_on_configure=False)
    stream = B2900Stream(meter, segment_points=1500)
    start = stream.start()
    deadline = time.monotonic() + 0.8
    while time.monotonic() < deadline:
        stream.poll()
        time.sleep(stream.next_poll_in_s(0.02))
    result = stream.stop()
    t = result.trace.t_mono_s
    assert result.segments >= 4
    assert t[0] == pytest.approx(start + 4e-5, abs=1e-9)  # first point: the start plus half the aperture
    assert np.all(np.diff(t) > 0) and result.max_gap_s < 0.05
    np.testing.assert_allclose(result.trace.power_w, 6.0)


def test_wait_until_reads_until_a_point_past_the_target(server, make_meter):
    meter = make_meter(server.resource, aperture_s=8e-5, interval_s=1e-4, reset_on_configure=False)
    stream = B2900Stream(meter)
    stream.start()
    target = time.monotonic() + 0.25
    assert stream.wait_until(target, timeout_s=5.0)
    assert stream.last_point_s >= target
    # bounded: a target the acquisition cannot reach in time is given up, not waited for forever
    assert not stream.wait_until(time.monotonic() + 60.0, timeout_s=0.1)
    assert stream.stop().trace.t_end_s >= target


def test_a_meter_lost_mid_stream_is_a_meter_error(make_server, make_meter):
    srv = make_server(ConstantPower(6.0))
    meter = make_meter(srv.resource, aperture_s=8e-5, interval_s=1e-4, reset_on_configure=False)
    session = MeterSession(MeterSpec(kind="b2900", resource=srv.resource), meter)
    session.begin()
    time.sleep(0.1)
    srv.stop()
    time.sleep(0.15)  # the poller meets the closed connection
    with pytest.raises(MeterError, match=srv.resource.split("::")[1]):
        session.finish(until_s=time.monotonic())


def test_only_a_model_is_labelled_simulated(server, make_meter):
    spec = MeterSpec(kind="b2900", resource=server.resource)
    meter = make_meter(server.resource)
    assert MeterSession(spec, meter, idn=meter.identify()).simulated  # the virtual instrument says what it is
    real = "Keysight Technologies,B2901A,MY12345678,3.4.2011.5100"
    assert not MeterSession(spec, meter, idn=real).simulated
    assert MeterSession(MeterSpec(kind="virtual_b2900"), meter, idn=real).simulated


def test_the_driver_disables_nagle_on_socket_sessions(make_server, make_meter):
    """VISA's default (VI_ATTR_TCPIP_NODELAY true), which pyvisa-py leaves off on SOCKET sessions: without it a
    query right behind a write waits for the delayed acknowledgement (about 40 ms per stream start and stop)."""
    import socket

    srv = make_server(ConstantPower(5.0))
    meter = make_meter(srv.resource, reset_on_configure=False)
    meter.identify()
    sock = meter._inst.visalib.sessions[meter._inst.session].interface
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


def test_streams_back_to_back_each_hold_only_their_own_points(make_server, make_meter):
    """Job after job: stop (:ABOR, read the rest) and start the next stream at once. An aborted acquisition's
    last batch must be in the buffer when :ABOR returns (the instrument runs its commands in order), never
    in the next stream's buffer (it once arrived there late, as points older than the new time base)."""
    srv = make_server(ConstantPower(4.0))
    meter = make_meter(srv.resource, aperture_s=8e-5, interval_s=1e-4, reset_on_configure=False)
    previous_end = None
    for _ in range(6):
        stream = B2900Stream(meter)
        start = stream.start()
        time.sleep(0.12)
        assert stream.wait_until(time.monotonic(), 2.0)
        result = stream.stop()
        t = result.trace.t_mono_s
        assert np.all(np.diff(t) > 0) and t[0] >= start
        if previous_end is not None:
            assert t[0] > previous_end
        after_stop = int(float(meter._query(":TRAC:POIN:ACT?")))
        time.sleep(0.03)
        assert int(float(meter._query(":TRAC:POIN:ACT?"))) == after_stop  # nothing arrives after :ABOR
        assert after_stop == len(t)
        previous_end = t[-1]


def test_an_instrument_whose_thread_runs_late_starts_when_the_command_arrived(make_server, make_meter, monkeypatch):
    """On a loaded machine the virtual instrument's thread may get to `:INIT` long after it arrived. A real
    instrument acts on arrival, and the driver takes the send of `:INIT` for the start: the simulator must
    start there too, or every window sits that far from its samples (here 0.2 s late, 8 of 16 steps)."""
    t0 = time.monotonic()
    srv = make_server(_stepping(t0, period_s=0.05))
    process = srv._process_line

    def late(line, conn):
        if ":INIT" in line:
            time.sleep(0.2)  # the thread was not scheduled
        return process(line, conn)

    monkeypatch.setattr(srv, "_process_line", late)
    meter = make_meter(srv.resource, aperture_s=8e-5, interval_s=1e-4, reset_on_configure=False)
    stream = B2900Stream(meter)
    start = stream.start()
    time.sleep(0.6)
    result = stream.stop()
    truth = srv.acquisitions[-1]
    assert abs(truth.start_mono_s - start) < 0.02, (truth.start_mono_s - start)
    w0, w1 = start + 0.3, start + 0.55
    assert abs(energy_j(result.trace, w0, w1) - srv.true_energy_j(w0, w1)) / srv.true_energy_j(w0, w1) < 0.005

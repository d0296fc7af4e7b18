"""Fixtures for the meter tests: a virtual B2900 on loopback and raw pyvisa sessions."""

from __future__ import annotations

import contextlib

import pytest
import pyvisa

from orchestrator.meters.activity import ConstantPower
from orchestrator.meters.virtual_b2900 import VirtualB2900

# Short settings keep every acquisition well under a second.
APERTURE_S = 1e-3
INTERVAL_S = 2e-3
VOLTAGE_V = 12.0


@pytest.fixture
def make_server(tmp_path):
    """Factory: start a VirtualB2900 on 127.0.0.1 (free port); all stopped at teardown."""
    servers: list[VirtualB2900] = []

    def _make(activity=None, **kwargs) -> VirtualB2900:
        kwargs.setdefault("ground_truth_log", tmp_path / f"ground_truth_{len(servers)}.jsonl")
        srv = VirtualB2900(activity if activity is not None else ConstantPower(6.0), **kwargs)
        srv.start()
        servers.append(srv)
        return srv

    yield _make
    for srv in servers:
        srv.stop()


@pytest.fixture
def server(make_server) -> VirtualB2900:
    return make_server()


@pytest.fixture
def open_visa():
    """Factory: a raw pyvisa (@py) session to a SOCKET resource, closed at teardown."""
    rm = pyvisa.ResourceManager("@py")
    sessions = []

    def _open(resource: str, timeout_ms: int = 3000):
        inst = rm.open_resource(resource, open_timeout=timeout_ms)
        inst.read_termination = "\n"
        inst.write_termination = "\n"
        inst.timeout = timeout_ms
        sessions.append(inst)
        return inst

    yield _open
    for inst in sessions:
        with contextlib.suppress(Exception):
            inst.close()
    rm.close()


@pytest.fixture
def make_meter():
    """Factory: a B2900Meter with the short test settings, closed at teardown."""
    from orchestrator.meters import B2900Meter

    meters = []

    def _make(resource: str, **kwargs) -> B2900Meter:
        kwargs.setdefault("voltage_v", VOLTAGE_V)
        kwargs.setdefault("current_limit_a", 2.0)
        kwargs.setdefault("aperture_s", APERTURE_S)
        kwargs.setdefault("interval_s", INTERVAL_S)
        kwargs.setdefault("timeout_ms", 2000)
        meter = B2900Meter(resource, **kwargs)
        meters.append(meter)
        return meter

    yield _make
    for m in meters:
        m.close()

"""``python -m orchestrator.virtual``: READY line, inventory variants, status, down (also after a crash)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.virtual import netns
from orchestrator.virtual.farm import leftovers_of, load_record, teardown
from tests.virtual_farm.helpers import REPO, require_netns, start_up

pytestmark = [pytest.mark.netns, pytest.mark.slow]

BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def _needs_netns():
    require_netns()


def cli(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator.virtual", *args], cwd=REPO,
                          check=False, capture_output=True, text=True, timeout=timeout_s)


def stop(proc: subprocess.Popen, state: Path) -> None:
    """Last line of defence for a failed test: the process and the farm both go."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(30)
    teardown(state)


def test_up_prints_ready_then_down_cleans(tmp_path):
    state = tmp_path / "state"
    proc, inventory = start_up(state, "--boards", "xu3:1,hikey970:1", "--sensors", "hwmon",
                               "--meter", "hikey-1=TCPIP::127.0.0.1::5025::SOCKET")
    try:
        assert inventory == str(state.resolve() / "inventory.yml")
        listed = subprocess.run([str(BIN / "ansible-inventory"), "-i", inventory, "--list"], cwd=REPO,
                                check=False, capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0, listed.stderr
        hostvars = json.loads(listed.stdout)["_meta"]["hostvars"]
        assert sorted(hostvars) == ["hikey-1", "xu3-1"]
        assert hostvars["xu3-1"]["socfarm_power_sensors"] == {"kind": "hwmon", "simulated": True, "rails": {
            "a15": "class/hwmon/hwmon0", "mem": "class/hwmon/hwmon1", "gpu": "class/hwmon/hwmon2",
            "a7": "class/hwmon/hwmon3"}}
        assert hostvars["hikey-1"]["socfarm_meter"] == {
            "kind": "b2900", "resource": "TCPIP::127.0.0.1::5025::SOCKET", "measures": "board_supply",
            "voltage_v": 12.0, "current_limit_a": 3.0, "aperture_s": 0.00008, "interval_s": 0.0001}  # 10 kHz
        assert "socfarm_meter" not in hostvars["xu3-1"]
        status = cli("status", "--state", str(state))
        report = json.loads(status.stdout)
        assert report["status"] == "up" and report["owner_alive"] is True
        assert {name: b["ssh"] for name, b in report["boards"].items()} == {"xu3-1": True, "hikey-1": True}
        down = cli("down", "--state", str(state))
        assert down.returncode == 0, down.stderr
        assert proc.wait(30) == 0  # the holding process was asked to stop and tore down
        assert "DOWN" in proc.stderr.read()
        assert leftovers_of(load_record(state)) == []
        assert load_record(state)["status"] == "down"
    finally:
        stop(proc, state)


def test_down_cleans_up_after_a_crash(tmp_path):
    state = tmp_path / "state"
    proc, _ = start_up(state, "--boards", "xu3:1")
    try:
        os.kill(proc.pid, signal.SIGKILL)  # no teardown of its own
        proc.wait(30)
        record = load_record(state)
        left = leftovers_of(record)
        assert any(item.startswith("netns ") for item in left) and any("sshd" in item or "pid" in item for item in left)
        down = cli("down", "--state", str(state))
        assert down.returncode == 0, down.stderr
        assert leftovers_of(record) == []
        assert not [n for n in (b["netns"] for b in record["boards"]) if n in netns.netns_list()]
        assert cli("down", "--state", str(state)).returncode == 0  # idempotent
    finally:
        stop(proc, state)


def test_bad_board_list_is_a_usage_error(tmp_path):
    r = cli("up", "--state", str(tmp_path), "--boards", "rpi:2")
    assert r.returncode == 2 and "unknown board kind" in r.stderr
    assert not (tmp_path / "farm.json").exists()

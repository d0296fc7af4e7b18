"""The virtual farm in network namespaces: SSH, ansible, fabric, sensors, faults, teardown.

Tests run in file order on one module-scoped farm; the last one tears it down.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import paramiko
import pytest
import yaml
from fabric import Connection

from orchestrator.virtual import netns
from orchestrator.virtual.farm import BoardSpec, FarmError, VirtualFarm
from orchestrator.virtual.inventory import write_inventory
from tests.virtual_farm.helpers import REPO, pids_matching, ssh, ssh_cmd

pytestmark = [pytest.mark.netns, pytest.mark.slow]

BIN = Path(sys.executable).parent
BOARDS = ("xu3-1", "xu3-2", "hikey-1")


def test_each_board_answers_ssh_with_its_name(farm3):
    for name in BOARDS:
        r = ssh(farm3, name, "hostname; ip -4 -o addr show dev eth0")
        assert r.returncode == 0, r.stderr
        hostname, addr = r.stdout.splitlines()[:2]
        assert hostname == name
        assert f"{farm3.board(name).address}/24" in addr
    assert all(b.address.startswith("10.231.") for b in farm3.boards.values())


def test_login_shells_on_boards_do_not_run_this_machines_dotfiles(farm3):
    """A board's login shell must not run the controller's ~/.bashrc (a profile that waits on a
    stale lock once hung every session on every board): the files read empty inside the boards."""
    for name in BOARDS:
        r = ssh(farm3, name, "echo $HOME; for f in .bashrc .profile; do [ -e ~/$f ] && wc -c < ~/$f; done; true")
        assert r.returncode == 0, r.stderr
        home, *sizes = r.stdout.split()
        assert home == "/root" and all(size == "0" for size in sizes), r.stdout
    assert not netns.is_mountpoint(Path("/root/.bashrc"))  # the masks stay inside the boards


def test_host_keys_are_checked_strictly(farm3, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    cmd = ssh_cmd(farm3, "xu3-1", "true")
    cmd[cmd.index(f"UserKnownHostsFile={farm3.known_hosts}")] = f"UserKnownHostsFile={empty}"
    r = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=20)
    assert r.returncode != 0 and "Host key verification failed" in r.stderr


def test_boards_reach_nothing_beyond_the_farm(farm3):
    """The guard makes other destinations unreachable (route lookup only: no packet is sent)."""
    b = farm3.board("xu3-1")
    r = subprocess.run(["ip", "route", "get", "192.0.2.1", "from", b.address, "iif", farm3.bridge],
                       check=False, capture_output=True, text=True, timeout=10)
    assert r.returncode != 0 or "unreachable" in r.stdout, r.stdout
    r = subprocess.run(["ip", "route", "get", farm3.bridge_address, "from", b.address, "iif", farm3.bridge],
                       check=False, capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and r.stdout.startswith("local"), r.stdout + r.stderr


def test_fabric_connects_with_strict_host_keys(farm3):
    b = farm3.board("hikey-1")
    conn = Connection(b.address, user="root", connect_timeout=5,
                      connect_kwargs={"key_filename": [str(farm3.key_file)], "look_for_keys": False,
                                      "allow_agent": False})
    conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    conn.client.load_host_keys(str(farm3.known_hosts))
    try:
        result = conn.run("hostname", hide=True, timeout=10, in_stream=False)
        assert result.stdout.strip() == "hikey-1"
        conn.put(str(farm3.known_hosts), str(b.work_dir / "copied"))  # sftp subsystem
    finally:
        conn.close()
    assert (b.work_dir / "copied").read_text() == farm3.known_hosts.read_text()


def test_generated_inventory_drives_ansible(farm3, tmp_path):
    inventory = write_inventory(farm3, tmp_path / "inventory.yml")
    listed = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(inventory), "--list"], cwd=REPO,
                            check=False, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    hostvars = data["_meta"]["hostvars"]
    assert sorted(data["odroid_xu3"]["hosts"]) == ["xu3-1", "xu3-2"] and data["hikey970"]["hosts"] == ["hikey-1"]
    xu3 = hostvars["xu3-1"]
    assert xu3["ansible_host"] == farm3.board("xu3-1").address
    assert xu3["ansible_user"] == "root"
    assert xu3["ansible_ssh_private_key_file"] == str(farm3.key_file)
    assert xu3["ansible_ssh_common_args"] == (f"-o UserKnownHostsFile={farm3.known_hosts} "
                                              "-o StrictHostKeyChecking=yes")
    assert xu3["socfarm_known_hosts"] == str(farm3.known_hosts)
    assert xu3["socfarm_soc"] == "exynos5422"
    assert xu3["socfarm_components"] == [
        {"name": "a7", "class": "little", "cpus": [0], "cpufreq_policy": "policy0"},
        {"name": "a15", "class": "big", "cpus": [1], "cpufreq_policy": "policy4"}]
    assert xu3["socfarm_gpu"] == {"devfreq": "11800000.gpu", "name": "Mali-T628 MP6"}
    # the board simulator's modelled power: every figure from these sensors is labelled simulated
    assert xu3["socfarm_power_sensors"] == {"kind": "ina231", "simulated": True, "rails": {
        "a15": "bus/i2c/drivers/INA231/3-0040", "mem": "bus/i2c/drivers/INA231/3-0041",
        "gpu": "bus/i2c/drivers/INA231/3-0044", "a7": "bus/i2c/drivers/INA231/3-0045"}}
    assert xu3["socfarm_work_dir"] == str(farm3.board("xu3-1").work_dir)
    assert xu3["socfarm_sysfs_root"] == str(farm3.board("xu3-1").sys_root)
    hikey = hostvars["hikey-1"]
    assert hikey["socfarm_soc"] == "kirin970" and "socfarm_power_sensors" not in hikey
    assert [c["name"] for c in hikey["socfarm_components"]] == ["a53", "a73"]
    assert hikey["socfarm_gpu"]["devfreq"] == "e82c0000.mali"
    assert "socfarm_meter" not in hikey
    # the inventory is also plain YAML
    assert yaml.safe_load(inventory.read_text())["all"]["vars"]["ansible_user"] == "root"
    # and ansible reaches every board through it, templating the board's own sysfs root
    r = subprocess.run([str(BIN / "ansible"), "all", "-i", str(inventory), "-o", "-m", "ansible.builtin.command",
                        "-a", "cat {{ socfarm_sysfs_root }}/devices/system/cpu/cpufreq/policy4/cpuinfo_max_freq"],
                       cwd=REPO, check=False, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = {line.split()[0]: line for line in r.stdout.splitlines() if "|" in line}
    assert "(stdout) 2000000" in lines["xu3-1"] and "(stdout) 2000000" in lines["xu3-2"]
    assert "(stdout) 2362000" in lines["hikey-1"]


def a15_watts(farm, board: str) -> float:
    path = farm.board(board).sys_root / farm.board(board).layout.rail("a15").path / "sensor_W"
    return float(path.read_text())


def mean_readings(farm, board: str, duration_s: float) -> float:
    values, last = [], None
    end = time.monotonic() + duration_s
    while time.monotonic() < end:
        v = a15_watts(farm, board)
        if v != last:
            values.append(v)
            last = v
        time.sleep(0.01)
    return sum(values[1:] or values) / len(values[1:] or values)


def test_busy_loop_over_ssh_raises_only_that_boards_a15_power(farm3):
    period_us = 100000
    for name in ("xu3-1", "xu3-2"):
        rail = farm3.board(name).sys_root / farm3.board(name).layout.rail("a15").path
        r = ssh(farm3, name, f"echo {period_us} > {rail}/update_period && echo 1 > {rail}/enable")
        assert r.returncode == 0, r.stderr
    time.sleep(0.5)
    idle = {name: mean_readings(farm3, name, 0.6) for name in ("xu3-1", "xu3-2")}
    big_cpu = farm3.board("xu3-1").cpu_map["a15"][0]
    busy = subprocess.Popen(ssh_cmd(farm3, "xu3-1", f"timeout 2 taskset -c {big_cpu} python3 -c 'while True: pass'"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        util = {}
        deadline = time.monotonic() + 1.5  # ssh and python start-up, on a loaded machine too
        while time.monotonic() < deadline and util.get("a15", 0.0) < 0.4:
            time.sleep(0.05)
            util = farm3.simulator("xu3-1").utilisation()
        time.sleep(0.3)  # let the sensors' averaging window fill with the busy loop
        loaded = {name: mean_readings(farm3, name, 0.6) for name in ("xu3-1", "xu3-2")}
    finally:
        busy.wait(15)
    print(f"a15 rail idle {idle}, loaded {loaded}, xu3-1 utilisation {util}")
    assert loaded["xu3-1"] > idle["xu3-1"] + 0.3
    assert loaded["xu3-2"] < idle["xu3-2"] + 0.1
    assert util["a15"] > 0.2  # the real CPU may be shared with other work
    assert farm3.simulator_errors() == {}


def settled(path: str, expected: str) -> str:
    """Remote shell: wait (at most 3 s) until ``path`` reads ``expected``, then print it, as an agent's
    read-back after a settle time would."""
    return (f'for i in $(seq 60); do [ "$(cat {path})" = "{expected}" ] && break; sleep 0.05; done; '
            f"cat {path}")


def test_sysfs_writes_over_ssh_and_throttle(farm3):
    policy = farm3.board("xu3-2").sys_root / "devices/system/cpu/cpufreq/policy4"
    cur = f"{policy}/scaling_cur_freq"
    r = ssh(farm3, "xu3-2", f"echo userspace > {policy}/scaling_governor && echo 1000000 > {policy}/scaling_setspeed "
                            f"&& {settled(cur, '1000000')}")
    assert r.returncode == 0 and r.stdout.strip() == "1000000", r.stdout + r.stderr
    farm3.throttle("xu3-2", "policy4", 800000)
    r = ssh(farm3, "xu3-2", f"{settled(cur, '800000')} && cat {policy}/scaling_setspeed")
    assert r.stdout.split() == ["800000", "1000000"]
    farm3.throttle("xu3-2", "policy4", None)
    r = ssh(farm3, "xu3-2", f"echo ondemand > {policy}/scaling_governor && {settled(cur, '2000000')}")
    assert r.stdout.strip() == "2000000"
    r = ssh(farm3, "xu3-2", f"echo 1234 > {policy}/scaling_max_freq; {settled(policy / 'scaling_max_freq', '2000000')}")
    assert r.stdout.strip() == "2000000"  # not an OPP: refused


def test_a_second_farm_coexists_and_a_clashing_id_is_refused(farm3, tmp_path):
    with VirtualFarm(tmp_path / "other", [BoardSpec("xu3-1", "odroid_xu3")], max_lifetime_s=60) as other:
        other.wait_ready(10)
        assert other.k != farm3.k and other.board("xu3-1").address != farm3.board("xu3-1").address
        assert ssh(other, "xu3-1", "hostname").stdout.strip() == "xu3-1"
    assert other.leftovers() == []
    clash = VirtualFarm(tmp_path / "clash", [BoardSpec("xu3-1", "odroid_xu3")], farm_id=farm3.farm_id,
                        max_lifetime_s=60)
    with pytest.raises(FarmError, match="in use by another farm"):
        clash.up()
    assert clash.leftovers() == []
    # the farm whose names were wanted is untouched
    assert ssh(farm3, "xu3-1", "hostname").stdout.strip() == "xu3-1"


def connect_result(address: str, timeout_s: float = 0.5) -> str:
    try:
        with socket.create_connection((address, 22), timeout=timeout_s):
            return "open"
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return "timeout"


def test_link_down_and_up(farm3):
    address = farm3.board("xu3-2").address
    farm3.link_down("xu3-2")
    try:
        assert connect_result(address) == "timeout"
        assert connect_result(farm3.board("xu3-1").address) == "open"
    finally:
        farm3.link_up("xu3-2")
    deadline = time.monotonic() + 5
    while connect_result(address) != "open" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ssh(farm3, "xu3-2", "hostname").stdout.strip() == "xu3-2"


def test_kill_sshd_refuses_port_22_and_restart(farm3):
    farm3.kill_sshd("hikey-1")
    assert connect_result(farm3.board("hikey-1").address) == "refused"
    assert connect_result(farm3.board("xu3-1").address) == "open"
    farm3.start_sshd("hikey-1")
    assert ssh(farm3, "hikey-1", "hostname").stdout.strip() == "hikey-1"


def test_down_leaves_nothing(farm3):
    state = str(farm3.state_dir)
    # a process that outlives its SSH session, and a ControlPersist master of a client
    r = ssh(farm3, "xu3-1", "nohup sleep 60 >/dev/null 2>&1 & echo $!")
    assert r.returncode == 0
    orphan = int(r.stdout.strip())
    assert netns.alive(orphan)
    short = tempfile.mkdtemp(prefix="sfcm")  # a socket path must stay under 108 bytes
    control = f"{short}/%C"
    r = ssh(farm3, "hikey-1", "true", control_path=control)
    assert r.returncode == 0, r.stderr
    masters = pids_matching(f"{short}/")  # the master titles itself "ssh: <socket> [mux]"
    assert masters, "no ControlPersist master"
    names = [b.netns for b in farm3.boards.values()]
    links = [farm3.bridge] + [b.veth_host for b in farm3.boards.values()]
    assert farm3.leftovers()
    assert farm3.simulator_errors() == {}
    t0 = time.monotonic()
    farm3.down()
    took = time.monotonic() - t0
    print(f"down took {took:.2f} s")
    try:
        assert farm3.leftovers() == []
        netns_list = subprocess.run(["ip", "netns", "list"], check=False, capture_output=True, text=True).stdout
        assert not [n for n in names if n in netns_list]
        ip_link = subprocess.run(["ip", "-o", "link"], check=False, capture_output=True, text=True).stdout
        assert not [link for link in links if f" {link}:" in ip_link or f" {link}@" in ip_link]
        sshd = subprocess.run(["pgrep", "-af", "sshd"], check=False, capture_output=True, text=True).stdout
        assert not [line for line in sshd.splitlines() if state in line and "pgrep" not in line]
        assert not netns.alive(orphan)
        # the client's master saw its server go away and ended by itself
        deadline = time.monotonic() + 5
        while [p for p in masters if netns.alive(p)] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in masters if netns.alive(p)], "the ControlPersist master outlived the farm"
        assert took < 10
    finally:
        for pid in masters:
            if netns.alive(pid):
                os.kill(pid, signal.SIGTERM)
        shutil.rmtree(short, ignore_errors=True)

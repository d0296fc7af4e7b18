"""inventory check (with and without facts) and farm status, through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys

from orchestrator.scheduler.leases import LeaseTable
from tests.conftest import REPO


def cli(*args: str, cwd=REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_farm_example_inventory_is_complete():
    proc = cli("inventory", "check", "-i", "inventory/farm.yml", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout) == {b: [] for b in ("xu3-01", "xu3-02", "hikey970-01", "hikey970-02")}


def test_missing_descriptions_are_listed(write):
    inv = write("inv.yml", """
        all:
          children:
            odroid_xu3:
              hosts: {x1: {}}
              vars:
                socfarm_soc: exynos5422
                socfarm_work_dir: /w
                socfarm_components: [{name: a15, class: big, cpus: [4]}]
        """)
    proc = cli("inventory", "check", "-i", str(inv), "--state", str(inv.parent / "st"))
    assert proc.returncode == 2
    for needle in ("component a15: no cpufreq_policy", "no peak_gflops", "no socfarm_gpu",
                   "neither socfarm_meter nor socfarm_power_sensors"):
        assert needle in proc.stdout


def test_facts_mismatches_are_listed(tmp_path):
    state = tmp_path / "st"
    state.mkdir()
    (state / "facts.json").write_text(json.dumps({
        "xu3-01": {"usable_cpus": [0, 1, 2, 3],
                   "topology": {"cpufreq_policies": {"policy0": {}}, "devfreq": [], "usable_cpus": [0, 1, 2, 3]}},
    }))
    proc = cli("inventory", "check", "-i", "inventory/farm.yml", "--facts", "--state", str(state), "--json")
    assert proc.returncode == 2
    report = json.loads(proc.stdout)
    xu3 = " | ".join(report["xu3-01"])
    assert "component a15: cpus [4, 5, 6, 7] not usable" in xu3
    assert "cpufreq policy policy4 not on the board" in xu3
    assert "devfreq node 11800000.gpu not on the board" in xu3
    assert report["xu3-02"] == ["xu3-02: no facts yet (run `orchestrator provision`)"]


def test_farm_status_shows_lease_holders(tmp_path):
    state = tmp_path / "st"
    LeaseTable(state / "leases", ttl_s=600).acquire("xu3-02", "run-42")
    proc = cli("farm", "status", "-i", "inventory/farm.yml", "--state", str(state), "--store", str(tmp_path / "r"),
               "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["board"]: r for r in json.loads(proc.stdout)}
    assert rows["xu3-02"]["lease"].startswith("run-42 (pid")
    assert rows["xu3-01"]["lease"] is None and rows["xu3-01"]["runtime"] is None

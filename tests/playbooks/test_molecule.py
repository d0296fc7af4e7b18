"""`molecule test --all`: every role against a virtual farm (one Odroid XU3, one HiKey 970).

molecule/default starts the farm (network namespaces with a real sshd and a
fake sysfs each) and tears it down; each role scenario runs syntax, converge,
idempotence and verify on both boards. Takes about four minutes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.virtual_farm.helpers import require_netns

FARM = yaml.safe_load((REPO / "molecule" / "default" / "vars" / "farm.yml").read_text())
NETNS_PREFIX = f"sf{FARM['farm_id']}-"  # the farm names its namespaces sf<farm id>-<board>


def farm_namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(NETNS_PREFIX)]


def venv_bin() -> Path:
    """The project's venv (where molecule is installed), else this interpreter's bin/."""
    local = REPO / ".venv" / "bin"
    return local if (local / "molecule").exists() else Path(sys.executable).parent


@pytest.mark.slow
@pytest.mark.netns
def test_molecule_test_all_passes_and_leaves_no_namespaces(tmp_path):
    require_netns()
    bin_dir = venv_bin()
    if not (bin_dir / "molecule").exists():
        pytest.fail(f"molecule not found in {bin_dir}: pip install -e '.[dev]'")
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    # fresh molecule state: a stale "created" flag from an interrupted run would skip create
    env["MOLECULE_EPHEMERAL_DIRECTORY"] = str(tmp_path / "molecule")
    env["ANSIBLE_NOCOLOR"] = "1"
    env.pop("ANSIBLE_CONFIG", None)
    try:
        proc = subprocess.run([str(bin_dir / "molecule"), "test", "--all"], cwd=REPO, env=env, check=False,
                              capture_output=True, text=True, timeout=1800)
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-6000:]
        assert farm_namespaces() == [], "molecule destroy left namespaces behind"
    finally:
        if farm_namespaces():  # second line of defence, also after a failure or a timeout
            subprocess.run([str(bin_dir / "python"), "-m", "orchestrator.virtual", "down",
                            "--state", FARM["farm_state"]], cwd=REPO, env=env, check=False, timeout=120)

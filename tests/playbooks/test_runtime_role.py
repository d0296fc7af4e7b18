"""The runtime role's wheel table, refusals and a lab's wheelhouse, through the real playbooks
(ansible-runner on this machine as a local board, as tests/playbooks/test_provision.py does).

The board's Python is /usr/bin/python3, which has neither numpy nor a runtime, so the role always reaches
its install branch. armv7l rows are exercised on this x86_64 machine by setting runtime_arch (and the
glibc fact): the refusals happen before anything is downloaded, which is what is checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.provision.runner import provision, save_facts
from tests.conftest import REPO
from tests.playbooks.runtime_wheels import wheelhouse

INVENTORY = """
all:
  hosts:
    localhost:
      ansible_connection: local
      ansible_python_interpreter: /usr/bin/python3
      socfarm_soc: host_cpu
      socfarm_work_dir: {work_dir}
      socfarm_components: [{{name: cpu0, cpus: [0]}}]
"""
TFLITE_311 = "tflite_runtime-2.14.0-cp311-cp311-manylinux2014_x86_64.whl"
NUMPY_1_26 = "numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
NUMPY_2 = "numpy-2.2.6-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
TFLITE_38 = "tflite_runtime-2.14.0-cp38-cp38-manylinux2014_x86_64.whl"  # another Python: must not be copied
# this machine refused by the table, so that only a wheelhouse can provision it
NO_PYPI_PATH = [{"name": "lab-no-x86_64", "arch": "x86_64", "refuse": "no binary path (test table)"}]


def host_python_version() -> str:
    return subprocess.run(["/usr/bin/python3", "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                          capture_output=True, text=True, check=True).stdout.strip()


def host_glibc() -> str:
    return subprocess.run(["getconf", "GNU_LIBC_VERSION"], capture_output=True, text=True,
                          check=True).stdout.split()[1]


@pytest.fixture
def board(tmp_path: Path):
    """(inventory, state folder, extravars) of a local board whose Python has no runtime."""
    inv = tmp_path / "inv.yml"
    inv.write_text(INVENTORY.format(work_dir=tmp_path / "board"))
    xv = {"models_files": [], "models_src_dir": str(tmp_path), "socfarm_controller_cache": str(tmp_path / "cache")}
    return inv, tmp_path / "state", xv


def nothing_installed(tmp_path: Path) -> None:
    assert not (tmp_path / "cache" / "wheelhouse").exists(), "downloaded before refusing"
    assert not (tmp_path / "board" / "venv").exists() and not (tmp_path / "board" / "wheelhouse").exists()
    assert not (tmp_path / "board" / "agent").exists()


@pytest.mark.slow
def test_armv7l_on_glibc_2_31_is_refused_before_any_download(tmp_path, board):
    inv, state, xv = board
    result = provision(inv, state, extravars={**xv, "runtime_arch": "armv7l", "board_base_glibc_version": "2.31"})
    assert result.status == "failed" and "localhost" not in result.facts
    message = result.failed["localhost"]
    assert message.startswith("task 'Refuse a board that has no binary path to a runtime': localhost: "
                              f"armv7l, Python {host_python_version()}, glibc 2.31: no binary path: "
                              "PyPI has no armv7l numpy wheel")
    assert "needs numpy >= 1.21.2" in message
    assert "a wheelhouse folder on the controller (socfarm_wheelhouse)" in message
    assert "a newer OS image (Debian 12 / glibc >= 2.34)" in message
    nothing_installed(tmp_path)


@pytest.mark.slow
def test_armv7l_on_glibc_2_36_needs_the_distributions_numpy(tmp_path, board):
    """The armhf row uses the distro's numpy through --system-site-packages; /usr/bin/python3 has none."""
    inv, state, xv = board
    result = provision(inv, state, extravars={**xv, "runtime_arch": "armv7l"})
    assert result.status == "failed"
    message = result.failed["localhost"]
    assert message.startswith("task 'Check the distribution's numpy, which the venv sees': localhost "
                              f"(armv7l, Python {host_python_version()}, glibc {host_glibc()}): "
                              "tflite-runtime==2.14.0 uses the distribution's numpy")
    assert "/usr/bin/python3 cannot import numpy; it needs numpy >=1.23.2,<2: `apt install python3-numpy`" in message
    assert "socfarm_wheelhouse" in message and "\n" not in message
    nothing_installed(tmp_path)


@pytest.mark.slow
def test_a_labs_wheelhouse_provisions_a_board_the_table_refuses(tmp_path, board):
    inv, state, xv = board
    lab = wheelhouse(tmp_path / "lab", TFLITE_311, NUMPY_1_26, TFLITE_38)
    xv = {**xv, "runtime_wheel_table": NO_PYPI_PATH, "socfarm_wheelhouse": str(lab)}

    refused = provision(inv, state, extravars={**xv, "socfarm_wheelhouse": ""})
    assert "no binary path (test table)" in refused.failed["localhost"]  # the table alone refuses it

    first = provision(inv, state, extravars=xv)
    assert first.status == "successful", first.failed
    facts = first.facts["localhost"]
    assert (facts.runtime_module, facts.runtime_version) == ("tflite_runtime", "2.14.0")
    assert facts.python == str(tmp_path / "board" / "venv" / "bin" / "python")
    assert facts.glibc == host_glibc()  # board_base's fact, recorded with the board
    copied = sorted(p.name for p in (tmp_path / "board" / "wheelhouse").iterdir())
    assert copied == sorted([TFLITE_311, NUMPY_1_26])  # only the wheels that fit the board
    assert not (tmp_path / "cache" / "wheelhouse").exists()  # nothing downloaded from PyPI

    again = provision(inv, state, extravars=xv)
    assert again.status == "successful" and again.changed.get("localhost", 0) == 0

    save_facts(state, first.facts)  # as `orchestrator provision` does; `farm status` shows the userland
    proc = subprocess.run([sys.executable, "-m", "orchestrator", "farm", "status", "-i", str(inv), "--state",
                           str(state), "--store", str(tmp_path / "runs"), "--json"], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout)[0]
    assert (row["runtime"], row["arch"], row["glibc"]) == ("tflite_runtime 2.14.0", "x86_64", host_glibc())


@pytest.mark.slow
def test_a_runtime_that_does_not_work_with_its_numpy_fails_provisioning_naming_both(tmp_path, board):
    """tflite-runtime 2.14.0 (built against numpy 1.x) installed with numpy 2.2.6: it imports, and the
    probe's model shows the ABI mismatch at provisioning, as a RuntimeMissing, not on the first job."""
    inv, state, xv = board
    lab = wheelhouse(tmp_path / "lab", TFLITE_311, NUMPY_2)
    result = provision(inv, state, extravars={**xv, "runtime_wheel_table": NO_PYPI_PATH,
                                              "socfarm_wheelhouse": str(lab)})
    assert result.status == "failed"
    message = result.failed["localhost"]
    assert message.startswith("task 'Check that the runtime runs a model with the board's numpy': localhost: "
                              "RuntimeMissing: the TFLite runtime tflite-runtime 2.14.0 with numpy 2.2.6")
    assert "numpy ABI mismatch" in message and "_ARRAY_API not found" in message
    assert not (tmp_path / "board" / "agent").exists()  # stopped before the agent

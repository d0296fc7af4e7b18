"""Boards on their own instruction sets: an XU3 with an armhf Debian 12 userland and HiKey 970s with arm64
Debian 12 and Debian 11 userlands, run through qemu-user inside their network namespaces. From bare (Python
and, on armhf, the distribution's numpy) the real playbooks provision them over SSH, then a sweep runs an
isolated and a co-execution job on each; the agent's own unit tests then run on the armhf board's 32-bit
Python and numpy. Emulated timings are not performance figures: only verdicts and provenance are checked.

The root file systems are built once per recipe into ~/.cache/socfarm-rootfs (SOCFARM_ROOTFS_CACHE): a few
minutes each under emulation the first time."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.virtual import userland
from orchestrator.virtual.farm import BoardSpec, FarmError
from orchestrator.virtual.inventory import write_inventory
from tests.conftest import FIXTURE_ZOO, REPO
from tests.store_helpers import only_run, run_table
from tests.virtual_farm.helpers import running_farm, ssh

pytestmark = [pytest.mark.netns, pytest.mark.slow, pytest.mark.emulated]

BOARDS = [BoardSpec("xu3-1", "odroid_xu3", userland="bookworm"),
          BoardSpec("hikey-1", "hikey970", userland="bookworm"),
          BoardSpec("hikey-2", "hikey970", userland="bullseye")]
# what each board's userland is, as its own programs report it
EXPECTED = {"xu3-1": ("armv7l", "3.11", "glibc 2.36"), "hikey-1": ("aarch64", "3.11", "glibc 2.36"),
            "hikey-2": ("aarch64", "3.9", "glibc 2.31")}
# the runtime the role's wheel table picks for each
RUNTIME = {"xu3-1": ("tflite_runtime", "2.14.0"), "hikey-1": ("ai_edge_litert", "2.3.0"),
           "hikey-2": ("ai_edge_litert", "2.1.0")}

EXPERIMENTS = f"""
version: 1
zoo: {FIXTURE_ZOO}
idle_s: 0
membw_mb: 0
rules: {{warmup_runs: 1, min_count: 20, min_duration_s: 0.5, max_duration_s: 60}}
experiments:
  - name: isolated
    models: [tiny_cnn]
    dtypes: [float32]
    components: [big]
  - name: coexec
    models: [tiny_cnn]
    dtypes: [float32]
    components: [big+little]
"""


def _emulation_or_skip() -> None:
    """Skip only where the kernel cannot run foreign binaries; a missing package is a failure."""
    for arch in ("armhf", "arm64"):
        try:
            userland.check_emulation(arch)
        except FarmError as exc:
            if str(exc).startswith("kernel:"):
                pytest.skip(str(exc))
            raise


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    _emulation_or_skip()
    with running_farm(tmp_path_factory.mktemp("emulated"), BOARDS, max_lifetime_s=3000) as farm:
        yield farm


def test_each_board_runs_its_own_instruction_set_python_and_libc(farm):
    probe = "uname -m; python3 -c 'import platform, sys; print(\"%d.%d\" % sys.version_info[:2]); " \
            "print(\" \".join(platform.libc_ver()))'; hostname"
    for name, (machine, python, libc) in EXPECTED.items():
        out = ssh(farm, name, probe, timeout_s=60).stdout.split("\n")
        assert out[:4] == [machine, python, libc, name], out


def test_provision_and_sweep_from_bare_userlands(farm, tmp_path):
    inv = write_inventory(farm, tmp_path / "inventory.yml")
    assert inv.read_text().count("socfarm_emulated: ") == 3
    exp = tmp_path / "exp.yaml"
    exp.write_text(EXPERIMENTS)
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", "sweep", str(exp), "-i", str(inv), "--store", str(tmp_path / "runs"),
         "--reports", str(tmp_path / "reports"), "--state", str(tmp_path / "state")],
        capture_output=True, text=True, timeout=2400)
    assert proc.returncode == 0, proc.stderr[-6000:] + proc.stdout[-2000:]
    run_dir = only_run(tmp_path / "runs")
    results = run_table(run_dir, "results")
    assert sorted(zip(results.board, results.component)) == sorted(
        (b, c) for b, big, little in (("xu3-1", "a15", "a7"), ("hikey-1", "a73", "a53"), ("hikey-2", "a73", "a53"))
        for c in (big, f"{little}+{big}"))
    assert (results.verdict == "VALID").all(), results[["board", "component", "verdict", "invalid_reasons"]]
    assert list(results.hostname) == list(results.board)  # each job ran on its board
    for name, (module, version) in RUNTIME.items():
        rows = results[results.board == name]
        assert set(rows.runtime_module) == {module} and set(rows.runtime_version) == {version}, rows
    co = results[results.component.str.contains(r"\+")]
    assert (co.coexec_members.map(len) == 2).all()
    # installed on the board from the controller's wheelhouse, by the board's own Python
    for name in EXPECTED:
        venv_python = Path(farm.board(name).work_dir) / "venv" / "bin" / "python"
        assert venv_python.exists(), name
    assert "emulated" in proc.stdout + proc.stderr


def test_agent_unit_tests_on_the_armhf_boards_32_bit_numpy(farm, tmp_path):
    """The agent's own tests, run by the XU3's provisioned Python (armhf, the distribution's numpy)."""
    work = Path(farm.board("xu3-1").work_dir)
    python = work / "venv" / "bin" / "python"
    if not python.exists():
        pytest.fail("xu3-1 is not provisioned: test_provision_and_sweep_from_bare_userlands runs first")
    suite = work / "agent-tests"
    shutil.rmtree(suite, ignore_errors=True)
    shutil.copytree(REPO / "device_agent", suite / "device_agent")
    shutil.copytree(REPO / "tests" / "agent", suite / "tests" / "agent")
    shutil.copytree(REPO / "tests" / "fixtures" / "models", suite / "tests" / "fixtures" / "models")
    (suite / "tests" / "__init__.py").write_text("")
    # pytest and its pure-Python dependencies from the controller's venv
    import _pytest
    import iniconfig
    import packaging
    import pluggy
    import py
    import pygments
    import pytest as pytest_pkg

    for mod in (_pytest, pytest_pkg, pluggy, iniconfig, packaging, pygments):
        src = Path(mod.__file__).parent
        shutil.copytree(src, suite / "pydeps" / src.name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(py.__file__, suite / "pydeps")  # a one-file module of pytest's
    (suite / "pytest.ini").write_text("[pytest]\nmarkers =\n    slow: slow\n")
    # the in-process tests (numpy, spec, measurement, windows, sensors): those that start agent processes or
    # drive the controller's board simulator stay on the controller (each Python start costs seconds here)
    chosen = sorted(f"tests/agent/{p.name}" for p in (REPO / "tests" / "agent").glob("test_*.py")
                    if not any(word in p.read_text() for word in ("agent_proc", "subprocess", "virtual_board")))
    assert "tests/agent/test_coexec_window.py" in chosen and len(chosen) >= 10
    cmd = (f"cd {suite} && PYTHONPATH={suite}:{suite}/pydeps PYTHONDONTWRITEBYTECODE=1 "
           f"{python} -m pytest -q -p no:cacheprovider --noconftest {' '.join(chosen)} "
           f"&& {python} -c 'import numpy, struct; print(numpy.__version__, struct.calcsize(\"P\") * 8)'")
    proc = ssh(farm, "xu3-1", cmd, timeout_s=1800)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert " passed" in out and " failed" not in out
    numpy_version, bits = out.strip().splitlines()[-1].split()
    assert bits == "32" and numpy_version.startswith("1.")

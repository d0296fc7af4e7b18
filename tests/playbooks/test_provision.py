"""The real playbooks through ansible-runner on this machine as a local board."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from orchestrator.config.load import tool_path
from orchestrator.provision.runner import provision
from tests.conftest import FIXTURE_ZOO, REPO

INVENTORY = """
all:
  hosts:
    localhost:
      ansible_connection: local
      ansible_python_interpreter: "{{{{ ansible_playbook_python }}}}"
      socfarm_soc: host_cpu
      socfarm_work_dir: {work_dir}
      socfarm_components: [{{name: cpu0, cpus: [0]}}]
"""


def models_vars(names=("tiny_cnn_float32.tflite",)) -> dict:
    manifest = json.loads((FIXTURE_ZOO / "manifest.json").read_text())
    files = [{"file": m["file"], "sha256": m["sha256"]} for m in manifest["models"] if m["file"] in names]
    return {"models_files": files, "models_src_dir": str(FIXTURE_ZOO)}


@pytest.fixture
def local_inventory(tmp_path: Path) -> Path:
    inv = tmp_path / "inv.yml"
    inv.write_text(INVENTORY.format(work_dir=tmp_path / "board"))
    return inv


@pytest.mark.slow
def test_provision_installs_and_is_idempotent(tmp_path, local_inventory):
    first = provision(local_inventory, tmp_path / "state", extravars=models_vars())
    assert first.status == "successful", first.failed
    facts = first.facts["localhost"]
    assert facts.runtime_module in ("ai_edge_litert", "tflite_runtime")
    assert facts.agent_dir == str(tmp_path / "board" / "agent")
    assert (tmp_path / "board" / "agent" / "device_agent" / "runner.py").exists()
    assert (tmp_path / "board" / "models" / "tiny_cnn_float32.tflite").read_bytes() == (
        FIXTURE_ZOO / "tiny_cnn_float32.tflite").read_bytes()
    assert set(facts.usable_cpus) >= {0}
    assert first.changed["localhost"] > 0

    second = provision(local_inventory, tmp_path / "state", extravars=models_vars())
    assert second.status == "successful"
    assert second.changed.get("localhost", 0) == 0, "a provisioned board must not change"


@pytest.mark.slow
def test_tampered_model_on_board_is_replaced(tmp_path, local_inventory):
    provision(local_inventory, tmp_path / "state", extravars=models_vars())
    installed = tmp_path / "board" / "models" / "tiny_cnn_float32.tflite"
    installed.write_bytes(b"tampered")
    again = provision(local_inventory, tmp_path / "state", extravars=models_vars())
    assert again.status == "successful"
    assert installed.read_bytes() == (FIXTURE_ZOO / "tiny_cnn_float32.tflite").read_bytes()


@pytest.mark.slow
def test_wrong_manifest_checksum_fails_the_board(tmp_path, local_inventory):
    xv = models_vars()
    xv["models_files"][0]["sha256"] = "0" * 64
    result = provision(local_inventory, tmp_path / "state", extravars=xv)
    assert result.status == "failed"
    assert "localhost" in result.failed and "the manifest says" in result.failed["localhost"]
    assert "localhost" not in result.facts


@pytest.mark.slow
def test_playbooks_pass_ansible_lint_production():
    proc = subprocess.run([tool_path("ansible-lint"), "playbooks/"], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Profile 'production' was required, and it passed" in proc.stderr + proc.stdout


@pytest.mark.slow
def test_runtime_is_installed_from_a_wheelhouse_when_the_board_python_lacks_it(tmp_path):
    """/usr/bin/python3 has no numpy/LiteRT: the role downloads wheels on the controller and installs offline.

    Two such boards of one kind: the index is asked once, not once per board (the second finds the wheels
    the first fetched in the controller's download folder), and a second provisioning asks it not at all."""
    def bare(name: str) -> str:
        return INVENTORY.format(work_dir=tmp_path / name).replace(
            "{{{{ ansible_playbook_python }}}}".format(), "/usr/bin/python3").split("hosts:\n", 1)[1].replace(
            "localhost:", f"{name}:", 1)

    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  hosts:\n" + bare("localhost") + bare("board2"))
    xv = {**models_vars(), "socfarm_controller_cache": str(tmp_path / "cache")}
    first_events: list[dict] = []
    result = provision(inv, tmp_path / "state", extravars=xv, on_event=first_events.append)
    assert result.status == "successful", result.failed
    for name in ("localhost", "board2"):
        facts = result.facts[name]
        assert facts.python == str(tmp_path / name / "venv" / "bin" / "python")
        assert facts.runtime_module == "ai_edge_litert"
        assert any((tmp_path / name / "wheelhouse").glob("ai_edge_litert-*.whl"))
    downloads = [e["event_data"]["res"] for e in first_events
                 if e.get("event") == "runner_on_ok" and e["event_data"].get("task") == DOWNLOAD_ONLINE]
    assert len(downloads) == 2 and sorted(d["changed"] for d in downloads) == [False, True], downloads

    # again: the first board is left as it is; the second lost its venv, and finds its wheels without the index
    shutil.rmtree(tmp_path / "board2" / "venv")
    again_events: list[dict] = []
    again = provision(inv, tmp_path / "state", extravars=xv, on_event=again_events.append)
    assert again.status == "successful", again.failed
    assert again.changed.get("localhost", 0) == 0
    assert again.facts["board2"].runtime_module == "ai_edge_litert"
    done = task_outcomes(again_events, "board2")
    assert done[DOWNLOAD_OFFLINE] == "runner_on_ok" and done[DOWNLOAD_ONLINE] == "runner_on_skipped", done


DOWNLOAD_OFFLINE = "Find the wheels the table chose in the controller's download folder"
DOWNLOAD_ONLINE = "Download on the controller the wheels the table chose"


def task_outcomes(events: list[dict], host: str) -> dict[str, str]:
    """Task name -> the runner event that ended it on ``host``."""
    return {e["event_data"].get("task"): e["event"] for e in events
            if e.get("event") in ("runner_on_ok", "runner_on_skipped", "runner_on_failed")
            and e["event_data"].get("host") == host}


def test_provision_leaves_a_board_another_sweep_holds(tmp_path, local_inventory):
    """`orchestrator provision` takes each board's lock first: a locked board is reported, not touched."""
    import sys

    from orchestrator.config.load import load_inventory
    from orchestrator.scheduler.board_lock import BoardLock

    lock = BoardLock(load_inventory(local_inventory).board("localhost"), "nightly-run").acquire()
    try:
        proc = subprocess.run([sys.executable, "-m", "orchestrator", "provision", "-i", str(local_inventory),
                               "--state", str(tmp_path / "state"), "--zoo", str(FIXTURE_ZOO), "--json"],
                              capture_output=True, text=True, cwd=REPO, timeout=300)
    finally:
        lock.release()
    assert proc.returncode == 3, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["status"] == "failed" and summary["boards"] == []
    assert "locked on the board by nightly-run" in summary["failed"]["localhost"]
    assert not (tmp_path / "board" / "agent").exists()  # nothing installed under the holder

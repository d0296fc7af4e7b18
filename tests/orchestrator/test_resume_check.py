"""--resume refuses a run whose job-shaping inputs changed, and names what changed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from orchestrator.errors import ConfigError
from orchestrator.progress import SweepProgress
from orchestrator.results.store import Store
from orchestrator.sweep import SweepRunner, prepare, prepare_resume
from tests.conftest import FIXTURE_ZOO
from tests.integration.test_sweep_local import EXPERIMENTS, INVENTORY, METER


@pytest.fixture
def started(tmp_path: Path):
    """A run created from files in tmp_path (nothing measured), the store, and the files."""
    zoo = tmp_path / "zoo"
    shutil.copytree(FIXTURE_ZOO, zoo)
    inv, exp = tmp_path / "inv.yml", tmp_path / "exp.yaml"
    inv.write_text(INVENTORY.format(work_dir=tmp_path / "board", meter=METER))
    exp.write_text(EXPERIMENTS.format(zoo=zoo))
    store = Store(tmp_path / "runs")
    runner = SweepRunner(prepare(exp, inv), store, tmp_path / "state", tmp_path / "reports",
                         SweepProgress(enabled=False), run_id="r1")
    runner._create_run()
    return store, inv, zoo


def _refusal(store: Store) -> str:
    with pytest.raises(ConfigError) as err:
        prepare_resume(store, "r1")
    return str(err.value)


def test_unchanged_inputs_resume(started):
    store, _, _ = started
    run, plan = prepare_resume(store, "r1")
    assert [j.job_id for j in plan.jobs] == run.meta["jobs"]
    assert (run.path / "inputs" / "jobs.json").exists()


def test_cpus_or_threads_changed_in_the_inventory(started):
    store, inv, _ = started
    inv.write_text(inv.read_text().replace("{name: cpu1, class: cpu, cpus: [1]}",
                                           "{name: cpu1, class: cpu, cpus: [1], threads: 2}"))
    msg = _refusal(store)  # before: accepted (the job ids do not encode threads)
    assert "inventory, board localhost: components[1].threads: null -> 2" in msg
    assert "threads: 1 -> 2 in 2 job(s)" in msg


def test_meter_settings_changed(started):
    store, inv, _ = started
    inv.write_text(inv.read_text().replace("interval_s: 0.0001", "interval_s: 0.001"))
    assert "meter.interval_s: 0.0001 -> 0.001" in _refusal(store)


def test_model_file_rebuilt_with_another_checksum(started):
    store, _, zoo = started
    manifest = json.loads((zoo / "manifest.json").read_text())
    entry = next(m for m in manifest["models"] if m["dtype"] == "int8")
    path = zoo / entry["file"]
    path.write_bytes(path.read_bytes() + b"\0")  # still a model as far as the manifest check goes
    import hashlib

    entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    entry["bytes"] = path.stat().st_size
    (zoo / "manifest.json").write_text(json.dumps(manifest))
    msg = _refusal(store)
    assert "model file (zoo checksum) model_sha256:" in msg and "in 2 job(s)" in msg

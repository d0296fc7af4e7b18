"""Import of external figures; regression verdicts of stored nightly runs (store, CLI, JUnit); bad input.

The statistics of the verdicts on many synthetic runs: test_regress_stats.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from orchestrator.analysis.import_csv import import_csv
from orchestrator.analysis.regress import (
    change_point,
    last_good,
    regress,
    save_verdicts,
)
from orchestrator.errors import ConfigError, StoreError
from orchestrator.results.store import Store
from tests.analysis.synthetic import LITTLE, make_run, noisy_run, result_row
from tests.conftest import REPO

GOOD = """soc,board,component,model,dtype,throughput,power_w,component_class
kirin970,hikey970,a73,mobilenet_v1,float32,21.5,4.2,big
kirin970,hikey970,a53,mobilenet_v1,float32,9.1,,little
"""


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=cwd, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


def snapshot(root: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(root)), p.stat().st_size) for p in root.rglob("*")) if root.exists() else []


def test_import_stores_a_run(tmp_path):
    f = tmp_path / "r.csv"
    f.write_text(GOOD)
    run = import_csv(Store(tmp_path / "runs"), f, source="paper table 2")
    res = run.read_table("results")
    assert list(res["throughput_ips"]) == [21.5, 9.1]
    assert set(res["git_revision"]) == {"import"} and set(res["experiment"]) == {"import"}
    assert res["mean_power_w"].iloc[0] == 4.2 and np.isnan(res["mean_power_w"].iloc[1])
    assert list(res["component_class"]) == ["big", "little"]
    meta = run.meta
    assert meta["import_source"] == "paper table 2" and len(meta["import_sha256"]) == 64
    assert meta["boards"]["hikey970"]["soc"] == "kirin970"


@pytest.mark.parametrize("text,needle", [
    ("soc,board,component,model,throughput\nk,h,a73,m,1\n", "r.csv:1: missing column(s) dtype"),
    (GOOD + "kirin970,hikey970,a73,resnet50,int8,-3,,big\n", "r.csv:4: throughput: must be > 0"),
    (GOOD + "kirin970,hikey970,a73,resnet50,int8,fast,,big\n", "r.csv:4: throughput: not a number"),
    (GOOD + "kirin970,,a73,resnet50,int8,3,,big\n", "r.csv:4: board: empty"),
    (GOOD.replace("4.2", "-1"), "r.csv:2: power_w"),
])
def test_bad_import_writes_nothing(tmp_path, text, needle):
    f = tmp_path / "r.csv"
    f.write_text(text)
    with pytest.raises(ConfigError) as exc:
        import_csv(Store(tmp_path / "runs"), f)
    assert needle in str(exc.value)
    assert not (tmp_path / "runs").exists()


def test_import_cli_exit_codes(tmp_path):
    f = tmp_path / "r.csv"
    f.write_text(GOOD + "kirin970,hikey970,a73,resnet50,int8,-3,,big\n")
    proc = cli("import", str(f), "--store", str(tmp_path / "runs"), cwd=tmp_path)
    assert proc.returncode == 2 and "must be > 0" in proc.stderr
    assert not (tmp_path / "runs").exists()
    f.write_text(GOOD)
    proc = cli("import", str(f), "--store", str(tmp_path / "runs"), "--source", "lab", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run_id = proc.stdout.split(" as run ")[1].split()[0]
    proc = cli("report", run_id, "--store", str(tmp_path / "runs"), "--reports", str(tmp_path / "rep"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    html = (tmp_path / "rep" / run_id / "index.html").read_text()
    assert "Imported run" in html and "21.5" in html


# -- regression verdicts of stored runs ------------------------------------------

RUNS = [f"r{i}" for i in range(1, 9)]


def _nightlies(store: Store, count: int, seed: int = 0, **kw) -> list:
    """``count`` nightly runs r1.. of two series (big, little), 3 repeats each, run-to-run noise only."""
    rng = np.random.default_rng(seed)
    return [noisy_run(store, rid, rng, series=[{}, LITTLE], **kw) for rid in RUNS[:count]]


def test_change_point():
    cp = change_point([10.0, 10.1, 9.9, 10.0, 11.0, 11.1, 10.9])
    assert cp["index"] == 4 and cp["shift"] == pytest.approx(0.1, abs=0.01)
    assert cp["before"] == pytest.approx(10.0) and cp["after"] == pytest.approx(11.0)
    assert change_point([10.0, 10.1, 9.9, 10.0]) is None


def test_regress_runs_junit_and_last_good(tmp_path):
    store = Store(tmp_path / "runs")
    _nightlies(store, 5)
    rng = np.random.default_rng(6)
    r6 = noisy_run(store, "r6", rng, series=[{}, LITTLE], factors=[0.95, 1.0])  # big 5 % slower
    assert last_good(store, "r6") == "r5"
    verdicts = {v.key["component"]: v for v in regress(store, r6, store.open_run("r5"))}
    big, little = verdicts["big"], verdicts["little"]
    assert big.verdict == "regressed" and little.verdict == "unchanged"
    # the baseline: r5 and the four good runs before it; the verdict says what it rests on
    assert big.baseline_runs == ["r5", "r4", "r3", "r2", "r1"]
    assert (big.n, big.n_baseline) == (3, 15) and "3 vs 15 jobs (5 baseline runs)" in big.reason
    assert big.throughput_ratio == pytest.approx(0.95, abs=0.02) and big.throughput_p < 0.05
    assert big.latency_ratio == pytest.approx(1 / 0.95, abs=0.02)
    assert big.name == "b1/big/Tiny CNN/float32" and big.key["cpus_key"] == "4,5"
    save_verdicts(r6, "r5", list(verdicts.values()))
    noisy_run(store, "r7", rng, series=[{}, LITTLE], factors=[0.95, 1.0])
    assert last_good(store, "r7") == "r5"  # r6 recorded a regression
    # one baseline run: 3 vs 3 jobs cannot reach p < 0.05, whatever the figures
    one = {v.key["component"]: v for v in regress(store, r6, store.open_run("r5"), baseline_runs=1)}
    assert one["big"].verdict == "not enough repeats" and "smallest p 0.05" in one["big"].reason

    # CLI: exit 1, JUnit with a failure for the regressed series, the counts in the table
    junit = tmp_path / "j.xml"
    proc = cli("regress", "r7", "--store", str(store.root), "--junit", str(junit), cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr + proc.stdout
    assert "3 vs 15" in proc.stdout and "regressed" in proc.stdout
    suite = ET.parse(junit).getroot()
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    failed = [(tc.get("classname"), tc.get("name")) for tc in suite if tc.find("failure") is not None]
    assert failed == [("b1.big", "Tiny CNN-float32")]
    assert "3 vs 15 jobs" in suite.find("testcase/failure").get("message")
    data = json.loads((store.root / "r7" / "regress.json").read_text())
    assert data["baseline"] == "r5" and data["regressed"] == 1
    assert data["settings"] == {"alpha": 0.05, "min_effect": 0.03, "min_repeats": 3, "baseline_runs": 5}
    # history of per-run figures: the change point at r6, where big became 5 % slower
    big = next(s for s in data["series"] if s["key"]["component"] == "big")
    assert big["change_point"]["run_id"] == "r6" and big["change_point"]["metric"] == "throughput_ips"
    assert big["change_point"]["shift"] == pytest.approx(-0.05, abs=0.015)
    assert big["baseline_runs"] == ["r5", "r4", "r3", "r2", "r1"]


def test_version_change_is_compared_and_named(tmp_path):
    store = Store(tmp_path / "runs")
    _nightlies(store, 5)
    rng = np.random.default_rng(9)
    upgrade = {"runtime_version": "2.4.0"}
    r6 = noisy_run(store, "r6", rng, series=[upgrade, {**LITTLE, **upgrade}], factors=[0.95, 1.0])
    vs = {v.key["component"]: v for v in regress(store, r6, store.open_run("r5"))}
    assert vs["big"].verdict == "regressed" and "runtime 2.3.0 -> 2.4.0" in vs["big"].reason
    assert vs["little"].verdict == "unchanged" and vs["little"].version_change == "runtime 2.3.0 -> 2.4.0"
    assert vs["big"].name == "b1/big/Tiny CNN/float32"  # names stay the same across the upgrade
    # the baseline pools only runs with the baseline run's versions
    r7 = noisy_run(store, "r7", rng, series=[upgrade, {**LITTLE, **upgrade}])
    vs = {v.key["component"]: v for v in regress(store, r7, r6)}
    assert vs["little"].baseline_runs == ["r6"] and vs["little"].verdict == "not enough repeats"
    assert vs["little"].version_change is None


def test_not_comparable_and_not_enough_repeats(tmp_path):
    store = Store(tmp_path / "runs")
    _nightlies(store, 3)
    invalid = make_run(store, "r4", [result_row("r4", f"j{i}", verdict="INVALID") for i in range(3)])
    vs = {v.key["component"]: v for v in regress(store, invalid, store.open_run("r3"))}
    assert vs["big"].verdict == "not comparable" and "no valid job in this run" in vs["big"].reason
    assert vs["little"].verdict == "not comparable" and "missing in this run" in vs["little"].reason
    two = make_run(store, "r5", [result_row("r5", f"j{i}", throughput_ips=100.0) for i in range(2)])
    v = next(v for v in regress(store, two, store.open_run("r3")) if v.key["component"] == "big")
    assert v.verdict == "not enough repeats" and v.reason.startswith("2 vs 9 jobs (3 baseline runs)")
    assert (v.n, v.n_baseline) == (2, 9)
    proc = cli("regress", "r4", "--baseline", "r3", "--store", str(store.root), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    imported = tmp_path / "i.csv"
    imported.write_text(GOOD)
    import_csv(store, imported, run_id="r8")  # imported figures are never last-good
    noisy_run(store, "r9", np.random.default_rng(3), series=[{}, LITTLE])
    assert last_good(store, "r9") == "r5"


def test_bad_run_ids_and_corrupt_files(tmp_path):
    store = Store(tmp_path / "runs")
    _nightlies(store, 1)
    (store.root / "r1" / "results" / "s0-r1.parquet").write_bytes(b"PAR1 not really")
    proc = cli("regress", "nope", "--baseline", "r1", "--store", str(store.root), cwd=tmp_path)
    assert proc.returncode == 2 and "no run 'nope'" in proc.stderr
    proc = cli("regress", "r1", "--baseline", "last-good", "--store", str(store.root), cwd=tmp_path)
    assert proc.returncode == 2 and "no earlier run" in proc.stderr
    noisy_run(store, "r2", np.random.default_rng(2))
    before = snapshot(store.root)
    proc = cli("regress", "r2", "--baseline", "r1", "--store", str(store.root), cwd=tmp_path)
    assert proc.returncode == 2 and "s0-r1.parquet: corrupt Parquet file" in proc.stderr
    assert snapshot(store.root) == before
    with pytest.raises(StoreError):
        regress(store, store.open_run("r2"), store.open_run("r1"))

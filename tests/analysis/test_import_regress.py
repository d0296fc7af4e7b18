"""Import of external figures; regression verdicts on planted and equal samples; bad input."""

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
    compare_samples,
    last_good,
    regress,
    save_verdicts,
)
from orchestrator.errors import ConfigError, StoreError
from orchestrator.results.store import Store
from tests.analysis.synthetic import make_run, result_row
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


# -- statistics ----------------------------------------------------------------

def _samples(median: float, n: int = 400, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return median * (1 + 0.02 * rng.standard_normal(n))


def test_planted_regression_is_found():
    v = compare_samples(_samples(10.5, seed=1), _samples(10.0, seed=2))
    assert v["verdict"] == "regressed"
    assert v["ratio"] == pytest.approx(1.05, abs=0.01)
    assert v["ci_low"] > 1.03 and v["p_value"] < 1e-6


def test_planted_improvement_is_found():
    assert compare_samples(_samples(9.5, seed=1), _samples(10.0, seed=2))["verdict"] == "improved"


def test_equal_samples_are_unchanged():
    v = compare_samples(_samples(10.0, seed=1), _samples(10.0, seed=2))
    assert v["verdict"] == "unchanged" and v["ratio"] == pytest.approx(1.0, abs=0.01)


def test_significant_but_small_shift_is_unchanged():
    v = compare_samples(_samples(10.1, n=5000, seed=1), _samples(10.0, n=5000, seed=2), min_effect=0.03)
    assert v["p_value"] < 0.01 and v["verdict"] == "unchanged"


def test_change_point():
    cp = change_point([10.0, 10.1, 9.9, 10.0, 11.0, 11.1, 10.9])
    assert cp["index"] == 4 and cp["shift"] == pytest.approx(0.1, abs=0.01)
    assert change_point([10.0, 10.1, 9.9, 10.0]) is None


def _nightly(store: Store, run_id: str, median: float, seed: int, runtime: str = "2.3.0", verdict: str = "VALID"):
    rows = [result_row(run_id, "j1", runtime_version=runtime, verdict=verdict),
            result_row(run_id, "j2", component="little", component_class="little", runtime_version=runtime)]
    return make_run(store, run_id, rows, latencies={"j1": _samples(median, seed=seed),
                                                     "j2": _samples(5.0, seed=seed + 100)})


def test_regress_runs_junit_and_last_good(tmp_path):
    store = Store(tmp_path / "runs")
    _nightly(store, "r1", 10.0, 1)
    _nightly(store, "r2", 10.0, 2)
    r3 = _nightly(store, "r3", 10.5, 3)
    assert last_good(store, "r3") == "r2"
    verdicts = {v.component: v for v in regress(store, r3, store.open_run("r2"))}
    assert verdicts["big"].verdict == "regressed" and verdicts["little"].verdict == "unchanged"
    save_verdicts(r3, "r2", list(verdicts.values()), 0.03)
    _nightly(store, "r4", 10.5, 4)
    assert last_good(store, "r4") == "r2"  # r3 recorded a regression

    # CLI: exit 1, JUnit with a failure for the regressed series
    junit = tmp_path / "j.xml"
    proc = cli("regress", "r4", "--baseline", "r1", "--store", str(store.root), "--junit", str(junit), cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr + proc.stdout
    suite = ET.parse(junit).getroot()
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    failed = [tc.get("classname") for tc in suite if tc.find("failure") is not None]
    assert failed == ["b1.big"]
    data = json.loads((store.root / "r4" / "regress.json").read_text())
    assert data["baseline"] == "r1" and data["regressed"] == 1
    # history: the change point between r2 and r3 is reported
    big = next(s for s in data["series"] if s["component"] == "big")
    assert big["change_point"]["run_id"] == "r3"


def test_not_comparable(tmp_path):
    store = Store(tmp_path / "runs")
    _nightly(store, "r1", 10.0, 1)
    r2 = _nightly(store, "r2", 10.0, 2, runtime="2.4.0")
    assert {v.verdict for v in regress(store, r2, store.open_run("r1"))} == {"not comparable"}
    r3 = make_run(store, "r3", [result_row("r3", "j1", verdict="INVALID")], latencies={"j1": _samples(10.0)})
    vs = {v.component: v for v in regress(store, r3, store.open_run("r1"))}
    assert vs["big"].verdict == "not comparable" and "no valid job" in vs["big"].reason
    assert vs["little"].verdict == "not comparable" and "missing" in vs["little"].reason
    proc = cli("regress", "r3", "--baseline", "r1", "--store", str(store.root), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_bad_run_ids_and_corrupt_files(tmp_path):
    store = Store(tmp_path / "runs")
    _nightly(store, "r1", 10.0, 1)
    (store.root / "r1" / "latencies" / "j1.parquet").write_bytes(b"PAR1 not really")
    before = snapshot(store.root)
    proc = cli("regress", "nope", "--baseline", "r1", "--store", str(store.root), cwd=tmp_path)
    assert proc.returncode == 2 and "no run 'nope'" in proc.stderr
    proc = cli("regress", "r1", "--baseline", "last-good", "--store", str(store.root), cwd=tmp_path)
    assert proc.returncode == 2 and "no earlier run" in proc.stderr
    _nightly(store, "r2", 10.0, 2)
    before = snapshot(store.root)
    proc = cli("regress", "r2", "--baseline", "r1", "--store", str(store.root), cwd=tmp_path)
    assert proc.returncode == 2 and "j1.parquet: corrupt Parquet file" in proc.stderr
    assert snapshot(store.root) == before
    with pytest.raises(StoreError):
        regress(store, store.open_run("r2"), store.open_run("r1"))

"""Import of a table whose components are core names (A7, A15, T628, A53, A73, G72, NPU): classes inferred from
the names, an ambiguous SoC refused with its rows named, the user's class column winning, and cross-SoC ratios
that say which way they are taken, with per-model ratios and both means.

``tests/fixtures/import_core_names_illustrative.csv`` has the layout of the study's published table (five CNNs,
float32, Odroid XU3 and HiKey 970 components) but ILLUSTRATIVE figures: plausible images/s, not the published
ones and not measurements. The expected ratios below are computed from that file with the csv module alone.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.analysis.compare import cross_soc, cross_soc_summary, order_socs, soc_pairs
from orchestrator.analysis.component_names import core_key, infer_class, soc_year
from orchestrator.analysis.import_csv import import_csv, read_import_csv
from orchestrator.analysis.metrics import throughput_table
from orchestrator.errors import ConfigError
from orchestrator.report.html import write_report
from orchestrator.results.store import Store
from tests.conftest import REPO

FIXTURE = REPO / "tests" / "fixtures" / "import_core_names_illustrative.csv"
HEADER = "soc,board,component,model,dtype,throughput\n"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=cwd, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "COLUMNS": "300"})


def fixture_rows() -> dict[tuple[str, str, str], float]:
    """(soc, component, model) -> images/s, read with the csv module only."""
    with FIXTURE.open(newline="") as f:
        return {(r["soc"], r["component"], r["model"]): float(r["throughput"]) for r in csv.DictReader(f)}


def expected(component_k: str, component_e: str) -> dict[str, float]:
    """kirin970 component / exynos5422 component, per model both have."""
    rows = fixture_rows()
    models = sorted({m for (_, _, m) in rows})
    return {m: rows["kirin970", component_k, m] / rows["exynos5422", component_e, m] for m in models
            if ("kirin970", component_k, m) in rows and ("exynos5422", component_e, m) in rows}


def summary_of(run, soc_order=None) -> pd.DataFrame:
    results = run.read_table("results")
    table = throughput_table(results, pd.DataFrame({"job_id": pd.Series(dtype=str),
                                                    "latency_ms": pd.Series(dtype=float)}))
    return cross_soc_summary(cross_soc(table, soc_order)).set_index("component_class")


# -- class inference from names ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name,cls", [
    ("A7", "little"), ("a53", "little"), ("Cortex-A55", "little"), ("ARM Cortex-A510", "little"), ("A5", "little"),
    ("A15", "big"), ("cortex-a17", "big"), ("A57", "big"), ("A72", "big"), ("A73", "big"), ("Cortex-A78", "big"),
    ("A9", "big"), ("X1", "big"), ("Cortex-X4", "big"),
    ("T628", "gpu"), ("G72", "gpu"), ("g76", "gpu"), ("Mali-T628 MP6", "gpu"), ("Mali-G72 MP12", "gpu"),
    ("Adreno 630", "gpu"), ("PowerVR GE8320", "gpu"), ("Immortalis-G715", "gpu"), ("GPU", "gpu"),
    ("NPU", "npu"), ("HiAI", "npu"), ("Hexagon DSP", "npu"), ("APU", "npu"),
    ("Cortex-A15 big", "big"),  # words that agree
    ("A15 A7", None), ("4xA15", None), ("A15+A7", None), ("cpu0", None), ("cluster1", None), ("", None),
])
def test_infer_class(name, cls):
    assert infer_class(name) == cls


def test_core_key_and_soc_years():
    assert core_key("Cortex-A15") == core_key("a15") == core_key("ARM Cortex-A15") == "a15"
    assert soc_year("exynos5422") == 2014 and soc_year("Kirin 970") == 2017 and soc_year("Exynos-5422") == 2014
    assert soc_year("socA") is None


# -- the published-table layout with core names only ------------------------------------------------------------


def test_core_names_give_per_class_ratios(tmp_path):
    run = import_csv(Store(tmp_path / "runs"), FIXTURE, source="illustrative figures")
    res = run.read_table("results")
    got = dict(zip(res["component"], res["component_class"]))
    assert got == {"A7": "little", "A15": "big", "T628": "gpu", "A53": "little", "A73": "big", "G72": "gpu",
                   "NPU": "npu"}  # before: every one of them 'cpu'
    assert any("inferred from the name 'A15'" in r for r in res.loc[res["component"] == "A15", "reasons"].iloc[0])
    s = summary_of(run)
    # npu: the NPU exists on kirin970 only, so it has no ratio
    assert list(s.index) == ["little", "big", "gpu"]
    assert set(s["direction"]) == {"kirin970 / exynos5422"} and set(s["basis"]) == {"newer / older: 2017 / 2014"}
    for cls, (k, e) in {"little": ("A53", "A7"), "big": ("A73", "A15"), "gpu": ("G72", "T628")}.items():
        want = expected(k, e)
        per_model = {m["model"]: m["ratio"] for m in s.loc[cls, "per_model"]}
        assert per_model == pytest.approx(want)
        assert s.loc[cls, "models"] == 5
        assert s.loc[cls, "geomean_ratio"] == pytest.approx(math.prod(want.values()) ** (1 / len(want)))
        assert s.loc[cls, "mean_ratio"] == pytest.approx(sum(want.values()) / len(want))
    # one figure from the file, by hand: the A73 runs alexnet 10.2 img/s, the A15 7.4
    assert {m["model"]: m["ratio"] for m in s.loc["big", "per_model"]}["alexnet"] == pytest.approx(10.2 / 7.4)


def test_import_cli_prints_direction_ratios_and_both_means(tmp_path):
    proc = cli("import", str(FIXTURE), "--store", str(tmp_path / "runs"), "--source", "illustrative", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "cross-SoC throughput ratio kirin970 / exynos5422 (newer / older: 2017 / 2014):" in lines
    big = next(line for line in lines if line.strip().startswith("big"))
    want = expected("A73", "A15")
    g, a = math.prod(want.values()) ** (1 / 5), sum(want.values()) / 5
    assert f"alexnet {want['alexnet']:.2f}" in big and f"squeezenet {want['squeezenet']:.2f}" in big
    assert f"geometric mean {g:.2f}, arithmetic mean {a:.2f} (5 models)" in big
    assert not any(line.strip().startswith(("npu", "cpu")) for line in lines)


# -- refusals ---------------------------------------------------------------------------------------------------


AMBIGUOUS = HEADER + """\
exynos5422,xu3,A7,alexnet,float32,2.1
exynos5422,xu3,A15,alexnet,float32,7.4
exynos5422,xu3,A17,alexnet,float32,8.0
exynos5422,xu3,A15,googlenet,float32,5.9
exynos5422,xu3,A17,googlenet,float32,6.3
kirin970,hikey970,A73,alexnet,float32,10.2
"""


def test_ambiguous_soc_is_refused_with_its_rows(tmp_path):
    f = tmp_path / "r.csv"
    f.write_text(AMBIGUOUS)
    with pytest.raises(ConfigError) as exc:
        import_csv(Store(tmp_path / "runs"), f)
    (problem,) = exc.value.problems
    assert problem.startswith(f"{f}:3: component_class: SoC exynos5422 would have 2 components of class 'big'")
    assert "'A15' (lines 3, 5, inferred from its name)" in problem
    assert "'A17' (lines 4, 6, inferred from its name)" in problem
    assert "add a component_class column" in problem
    assert not (tmp_path / "runs").exists()


def test_ambiguous_soc_exits_2_through_the_cli_and_writes_nothing(tmp_path):
    f = tmp_path / "r.csv"
    f.write_text(AMBIGUOUS)
    proc = cli("import", str(f), "--store", str(tmp_path / "runs"), cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"{f}:3: component_class: SoC exynos5422" in proc.stderr and "'A17' (lines 4, 6" in proc.stderr
    assert proc.stdout == "" and not (tmp_path / "runs").exists()


def test_unknown_name_without_a_class_is_named_with_the_fix(tmp_path):
    f = tmp_path / "r.csv"
    f.write_text(HEADER + "socX,b,cluster1,m,float32,3\nsocX,b,A53,m,float32,2\nsocX,b,cluster1,n,float32,4\n")
    with pytest.raises(ConfigError) as exc:
        read_import_csv(f)
    (problem,) = exc.value.problems
    assert problem.startswith(f"{f}:2: component: 'cluster1' (socX, lines 2, 4) is not a core")
    assert problem.endswith("add a component_class column (big, little, cpu, gpu, npu)")
    # with the column but an empty cell, the fix is to fill it in
    f.write_text(HEADER.strip() + ",component_class\nsocX,b,cluster1,m,float32,3,\n")
    with pytest.raises(ConfigError, match=r"r.csv:2: component: 'cluster1' .* fill in its component_class"):
        read_import_csv(f)


def test_every_problem_is_listed_at_once(tmp_path):
    f = tmp_path / "r.csv"
    f.write_text(AMBIGUOUS + "kirin970,hikey970,npu2000,alexnet,float32,-1\n")
    with pytest.raises(ConfigError) as exc:
        read_import_csv(f)
    text = "\n".join(exc.value.problems)
    assert "r.csv:8: throughput: must be > 0" in text and "r.csv:8: component: 'npu2000'" in text
    assert "r.csv:3: component_class: SoC exynos5422" in text


def test_one_component_with_two_classes_is_refused(tmp_path):
    f = tmp_path / "r.csv"
    f.write_text(HEADER.strip() + ",component_class\nk,b,A73,m,float32,3,big\nk,b,A73,n,float32,3,little\n"
                 "k,b,A53,n,float32,1,\n")
    with pytest.raises(ConfigError) as exc:
        read_import_csv(f)
    assert exc.value.problems == [f"{f}:2: component_class: 'A73' of k has two classes: 'big' on line 2; "
                                  "'little' on line 3"]


# -- the user's class column ------------------------------------------------------------------------------------


def test_the_users_class_column_wins(tmp_path):
    f = tmp_path / "r.csv"
    f.write_text(HEADER.strip() + ",component_class\n"
                 "exynos5422,xu3,A15,alexnet,float32,7.4,big\n"
                 "exynos5422,xu3,A17,alexnet,float32,8.0,cpu\n"  # inference says big: the column says cpu
                 "exynos5422,xu3,cluster0,alexnet,float32,2.0,little\n"  # unknown name, class given
                 "exynos5422,xu3,T628,alexnet,float32,8.8,\n"  # empty cell: inferred
                 "kirin970,hikey970,A73,alexnet,float32,10.2,big\n"
                 "kirin970,hikey970,A53,alexnet,float32,4.0,cpu\n"
                 "kirin970,hikey970,A55,alexnet,float32,5.0,little\n"
                 "kirin970,hikey970,G72,alexnet,float32,31.5,gpu\n")
    run = import_csv(Store(tmp_path / "runs"), f)
    res = run.read_table("results")
    assert list(res["component_class"]) == ["big", "cpu", "little", "gpu", "big", "cpu", "little", "gpu"]
    assert [c["class"] for c in run.meta["boards"]["xu3"]["components"]] == ["big", "cpu", "little", "gpu"]
    s = summary_of(run)
    assert s.loc["big", "geomean_ratio"] == pytest.approx(10.2 / 7.4)
    assert s.loc["cpu", "geomean_ratio"] == pytest.approx(4.0 / 8.0)
    assert s.loc["little", "geomean_ratio"] == pytest.approx(5.0 / 2.0)


def test_the_same_class_given_on_purpose_is_accepted(tmp_path):
    f = tmp_path / "r.csv"
    f.write_text(HEADER.strip() + ",component_class\n"
                 "exynos5422,xu3,A15,alexnet,float32,7.4,big\n"
                 "exynos5422,xu3,A17,alexnet,float32,8.0,big\n"
                 "kirin970,hikey970,A73,alexnet,float32,10.2,\n")
    run = import_csv(Store(tmp_path / "runs"), f)
    s = summary_of(run)
    # the fastest big component of exynos5422 (A17, 8.0) stands for the class
    assert s.loc["big", "per_model"] == [{"model": "alexnet", "ratio": pytest.approx(10.2 / 8.0)}]
    # one of the two left to inference: refused
    f.write_text(f.read_text().replace("8.0,big", "8.0,"))
    with pytest.raises(ConfigError, match=r"r.csv:2: .*'A15' \(line 2\), 'A17' \(line 3, inferred from its name\)"):
        read_import_csv(f)


# -- direction, --soc-order, means ------------------------------------------------------------------------------


def test_soc_order_reverses_the_ratio_and_is_kept_for_the_report(tmp_path):
    store = Store(tmp_path / "runs")
    run = import_csv(store, FIXTURE, soc_order=["exynos5422", "kirin970"])
    assert run.meta["soc_order"] == ["exynos5422", "kirin970"]
    s = summary_of(run, run.meta["soc_order"])
    assert set(s["direction"]) == {"exynos5422 / kirin970"} and set(s["basis"]) == {"as ordered by --soc-order"}
    want = {m: 1 / r for m, r in expected("A73", "A15").items()}
    assert {m["model"]: m["ratio"] for m in s.loc["big", "per_model"]} == pytest.approx(want)
    default = summary_of(run)
    # the geometric mean of the other direction is the reciprocal; the arithmetic mean is not
    assert s.loc["big", "geomean_ratio"] == pytest.approx(1 / default.loc["big", "geomean_ratio"])
    assert s.loc["big", "mean_ratio"] == pytest.approx(sum(want.values()) / 5)
    assert s.loc["big", "mean_ratio"] != pytest.approx(1 / default.loc["big", "mean_ratio"], rel=1e-4)
    # the report of that run takes them the same way, in the page and in summary.md
    index = write_report(run, tmp_path / "rep" / run.run_id)
    html = index.read_text()
    assert "exynos5422 / kirin970" in html and "kirin970 / exynos5422" not in html
    assert "geometric mean</th><th>arithmetic mean" in html
    md = (index.parent / "summary.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| exynos5422 / kirin970 |") and "| big |" in line)
    assert f"| {s.loc['big', 'geomean_ratio']:.2f} | {s.loc['big', 'mean_ratio']:.2f} |" in row


def test_soc_order_on_report_and_compare_cli(tmp_path):
    proc = cli("import", str(FIXTURE), "--store", str(tmp_path / "runs"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run_id = proc.stdout.split(" as run ")[1].split()[0]
    base = ["--store", str(tmp_path / "runs")]
    proc = cli("report", run_id, *base, "--reports", str(tmp_path / "rep"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    html = (tmp_path / "rep" / run_id / "index.html").read_text()
    assert "kirin970 / exynos5422" in html and "newer / older: 2017 / 2014" in html
    proc = cli("report", run_id, *base, "--reports", str(tmp_path / "rep"), "--soc-order", "Exynos5422,kirin970",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    html = (tmp_path / "rep" / run_id / "index.html").read_text()
    assert "exynos5422 / kirin970" in html and "kirin970 / exynos5422" not in html
    proc = cli("compare", run_id, *base, "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = {r["component_class"]: r for r in json.loads(proc.stdout)["cross_soc"]}
    assert set(rows) == {"little", "big", "gpu"} and rows["gpu"]["direction"] == "kirin970 / exynos5422"
    want = expected("G72", "T628")
    assert rows["gpu"]["mean_ratio"] == pytest.approx(sum(want.values()) / 5)
    proc = cli("compare", run_id, *base, "--soc-order", "exynos5422,kirin970", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "cross-SoC throughput ratio exynos5422 / kirin970 (as ordered by --soc-order):" in proc.stdout
    proc = cli("compare", run_id, *base, "--soc-order", "exynos5422,kirin960", cwd=tmp_path)
    assert proc.returncode == 2 and "'kirin960' is not a SoC of these results" in proc.stderr
    proc = cli("import", str(FIXTURE), *base, "--soc-order", "kirin960", cwd=tmp_path)
    assert proc.returncode == 2 and "'kirin960' is not a SoC" in proc.stderr
    assert len(list((tmp_path / "runs").iterdir())) == 1  # nothing written by the refused import


def test_geometric_and_arithmetic_means():
    rows = [{"job_id": f"j{i}", "board": b, "soc": soc, "component": c, "component_class": "big", "model": m,
             "dtype": "float32", "verdict": "VALID", "throughput_ips": ips}
            for i, (b, soc, c, m, ips) in enumerate([
                ("xu3", "exynos5422", "A15", "m1", 10.0), ("xu3", "exynos5422", "A15", "m2", 10.0),
                ("hk", "kirin970", "A73", "m1", 20.0), ("hk", "kirin970", "A73", "m2", 5.0)])]
    table = throughput_table(pd.DataFrame(rows), pd.DataFrame({"job_id": [], "latency_ms": []}))
    s = cross_soc_summary(cross_soc(table)).iloc[0]
    assert s["direction"] == "kirin970 / exynos5422"
    assert s["geomean_ratio"] == pytest.approx(1.0) and s["mean_ratio"] == pytest.approx(1.25)  # 2 and 0.5
    r = cross_soc_summary(cross_soc(table, ["exynos5422", "kirin970"])).iloc[0]
    assert r["geomean_ratio"] == pytest.approx(1.0) and r["mean_ratio"] == pytest.approx(1.25)  # 0.5 and 2


def test_order_of_socs_without_years_and_mixed():
    assert order_socs(["exynos5422", "kirin970", "rk3399"]) == ["kirin970", "rk3399", "exynos5422"]
    assert order_socs(["socB", "kirin970", "socA"]) == ["kirin970", "socA", "socB"]  # unknown years after, by name
    pairs = {(a, b): basis for a, b, basis in soc_pairs(["socB", "socA", "kirin970"])}
    assert pairs["socA", "socB"] == "by name (release year of socA and socB not known; order them with --soc-order)"
    assert pairs["kirin970", "socA"].startswith("by name (release year of socA not known")
    assert soc_pairs(["kirin970", "exynos5422"], ["exynos5422"]) == [
        ("exynos5422", "kirin970", "as ordered by --soc-order")]
    with pytest.raises(ConfigError, match="named twice"):
        order_socs(["kirin970", "exynos5422"], ["kirin970", "Kirin970"])

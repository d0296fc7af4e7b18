"""Planner: matrix expansion and up-front rejection of what cannot run."""

from __future__ import annotations

import pytest

from orchestrator.config.load import load_experiments
from orchestrator.errors import ConfigError
from orchestrator.planner import plan
from tests.orchestrator.helpers import lab, manifest

EXP = """
version: 1
rules: {warmup_runs: 1, min_count: 5, min_duration_s: 0.5, max_duration_s: 3}
experiments:
  - name: iso
    boards: [all]
    models: [mobilenet_v1, squeezenet]
    dtypes: [float32, int8]
    components: [all]
    repeats: 3
  - name: one
    boards: [b1]
    models: [squeezenet]
    dtypes: [int8]
    components: [cpu1]
    rules: {warmup_runs: 0, min_count: 1, min_duration_s: 0.1, max_duration_s: 1}
"""


def planned(write, text=EXP, boards=2):
    spec, doc = load_experiments(write("exp.yaml", text))
    return plan(spec, lab(boards), manifest(), doc.where)


def test_matrix_expands_fully_in_order(write):
    jobs = planned(write)
    assert len(jobs) == 2 * 2 * 2 * 2 * 3 + 1
    assert len({j.job_id for j in jobs}) == len(jobs)
    first = jobs[0]
    assert (first.board, first.component, first.model, first.dtype, first.repeat) == (
        "b0", "cpu0", "mobilenet_v1", "float32", 1)
    assert first.rules.min_count == 5
    last = jobs[-1]
    assert (last.experiment, last.board, last.component, last.dtype) == ("one", "b1", "cpu1", "int8")
    assert last.rules.min_count == 1 and last.cpus == (1,) and last.threads == 1


def test_group_selector(write):
    jobs = planned(write, EXP.replace("boards: [all]", "boards: [g_odd]"), boards=3)
    assert {j.board for j in jobs} == {"b1"}


def test_unknown_component_names_line(write):
    with pytest.raises(ConfigError) as info:
        planned(write, EXP.replace("components: [cpu1]", "components: [gpu]"))
    assert "exp.yaml:14: experiments.1.components.0: unknown component 'gpu' on board(s) b1" in str(info.value)


def test_unknown_model_and_board_are_all_reported(write):
    text = EXP.replace("models: [squeezenet]", "models: [vgg16]").replace("boards: [b1]", "boards: [b9]")
    with pytest.raises(ConfigError) as info:
        planned(write, text)
    msg = str(info.value)
    assert "exp.yaml:11: experiments.1.boards.0: no board or group 'b9'" in msg
    assert "exp.yaml:12: experiments.1.models.0: model 'vgg16' (int8) is not in the zoo" in msg


def test_dtype_missing_from_zoo(write):
    from orchestrator.zoo.manifest import Manifest

    m = manifest()
    only_float = Manifest(**{**m.model_dump(), "models": [e for e in m.model_dump()["models"] if e["dtype"] == "float32"]})
    spec, doc = load_experiments(write("exp.yaml", EXP))
    with pytest.raises(ConfigError, match=r"model 'squeezenet' \(int8\) is not in the zoo"):
        plan(spec, lab(2), only_float, doc.where)


def test_components_by_class(write):
    from orchestrator.config.inventory import Board, Component, Lab

    lab2 = Lab(source="inv.yml", boards=[
        Board(name="x", soc="exynos5422", work_dir="/w", components=[
            Component(name="a7", **{"class": "little"}, cpus=[0]), Component(name="a15", **{"class": "big"}, cpus=[1])]),
        Board(name="h", soc="kirin970", work_dir="/w", components=[
            Component(name="a53", **{"class": "little"}, cpus=[0]), Component(name="a73", **{"class": "big"}, cpus=[1])]),
    ])
    text = EXP.split("  - name: one")[0].replace("components: [all]", "components: [big]").replace("repeats: 3", "")
    spec, doc = load_experiments(write("exp.yaml", text))
    jobs = plan(spec, lab2, manifest(), doc.where)
    assert {(j.board, j.component) for j in jobs} == {("x", "a15"), ("h", "a73")}


def test_coexecution_sets(write):
    text = EXP.split("  - name: one")[0].replace("components: [all]", "components: [cpu0, cpu0+cpu1]").replace(
        "repeats: 3", "repeats: 1")
    spec, doc = load_experiments(write("exp.yaml", text))
    jobs = plan(spec, lab(1), manifest(), doc.where)
    comps = {j.component for j in jobs}
    assert comps == {"cpu0", "cpu0+cpu1"}
    co = next(j for j in jobs if j.is_coexec)
    assert [m.name for m in co.members] == ["cpu0", "cpu1"] and co.cpus == (0, 1) and co.threads == 2
    agent = co.agent_spec("/m.tflite", "/out")
    assert "component" not in agent and [c["cpus"] for c in agent["components"]] == [[0], [1]]
    # the zoo's input shape goes with the model: the agent refuses a file whose input differs
    entry = manifest().find(co.model, co.dtype)
    assert agent["model"]["input_shape"] == list(entry.input_shape)


def test_coexecution_needs_two_disjoint_components(write):
    text = EXP.split("  - name: one")[0].replace("components: [all]", "components: [cpu0+cpu0]")
    with pytest.raises(ConfigError, match=r"co-execution 'cpu0\+cpu0' on b0: selects fewer than two components"):
        planned(write, text, boards=1)


def test_frequencies_multiply_jobs_and_need_a_cpufreq_policy(write):
    from orchestrator.config.inventory import Board, Component, Lab

    text = EXP.split("  - name: one")[0].replace("repeats: 3", "repeats: 1\n    frequencies: [max, 1800000]")
    spec, doc = load_experiments(write("exp.yaml", text))
    with pytest.raises(ConfigError, match=r"exp.yaml:10: experiments.0.frequencies: component cpu0 of b0 has no "
                                          r"cpufreq_policy"):
        plan(spec, lab(1), manifest(), doc.where)
    pinned = Lab(source="inv.yml", boards=[Board(name="x", soc="s", work_dir="/w", components=[
        Component(name="a15", cpus=[1], cpufreq_policy="policy4")])])
    jobs = plan(spec, pinned, manifest(), doc.where)
    assert len(jobs) == 2 * 2 * 2 and {j.frequency for j in jobs} == {"max", "1800000"}
    by_freq = {j.frequency: j.agent_spec("/m", "/o")["platform"] for j in jobs}
    assert by_freq["max"] == {"cpufreq": {"policy4": {"governor": "performance"}}}
    assert by_freq["1800000"] == {"cpufreq": {"policy4": {"pin_khz": 1800000}}}
    assert all(("-fmax-" in j.job_id) == (j.frequency == "max") for j in jobs)


def test_gpu_and_external_members_get_their_own_specs_and_frequency_domains(write):
    from orchestrator.config.inventory import Board, Component, Lab

    text = EXP.split("  - name: one")[0].replace("repeats: 3", "repeats: 1\n    frequencies: [max]").replace(
        "components: [all]", "components: [big, gpu, big+gpu+npu]")
    spec, doc = load_experiments(write("exp.yaml", text))
    soc = Lab(source="inv.yml", boards=[Board(name="x", soc="s", work_dir="/w", components=[
        Component(name="big", cpus=[0], cpufreq_policy="policy4", **{"class": "big"}),
        Component(name="mali", kind="gpu", cpus=[1], delegate_path="/lib/d.so", devfreq="gpu0", **{"class": "gpu"}),
        Component(name="npu", kind="external", cpus=[2], command=["run", "{model}"], **{"class": "npu"})])])
    jobs = plan(spec, soc, manifest(), doc.where)
    gpu = next(j for j in jobs if j.component == "mali").agent_spec("/m", "/o")
    assert gpu["component"] == {"name": "mali", "kind": "gpu", "cpus": [1], "threads": 1, "delegate_path": "/lib/d.so"}
    assert gpu["platform"] == {"devfreq": {"gpu0": {"governor": "performance"}}}
    trio = next(j for j in jobs if j.is_coexec).agent_spec("/m", "/o")
    assert [c["kind"] for c in trio["components"]] == ["cpu", "gpu", "external"]
    assert trio["components"][2]["command"] == ["run", "{model}"]
    # the NPU has no frequency domain on the board: the others are held, it is left alone
    assert trio["platform"] == {"cpufreq": {"policy4": {"governor": "performance"}},
                                "devfreq": {"gpu0": {"governor": "performance"}}}
    nodevfreq = Lab(source="inv.yml", boards=[Board(name="x", soc="s", work_dir="/w", components=[
        Component(name="mali", kind="gpu", cpus=[1], delegate_path="/lib/d.so", **{"class": "gpu"})])])
    spec, doc = load_experiments(write("exp2.yaml", text.replace("[big, gpu, big+gpu+npu]", "[gpu]")))
    with pytest.raises(ConfigError, match="component mali of x has no devfreq in the inventory"):
        plan(spec, nodevfreq, manifest(), doc.where)


def test_include_and_exclude_rules(write):
    text = EXP.split("  - name: one")[0].replace("repeats: 3", "repeats: 1") + (
        "    exclude: [{models: [squeezenet], dtypes: [int8]}]\n"
        "    include: [{components: [cpu1]}, {boards: [g_even], models: [mobilenet_v1]}]\n")
    jobs = planned(write, text, boards=2)
    keys = {(j.board, j.component, j.model, j.dtype) for j in jobs}
    assert all(not (m == "squeezenet" and d == "int8") for _, _, m, d in keys)
    assert all(c == "cpu1" or (b == "b0" and m == "mobilenet_v1") for b, c, m, _ in keys)
    assert ("b0", "cpu0", "mobilenet_v1", "int8") in keys and ("b1", "cpu1", "squeezenet", "float32") in keys
    assert len({j.job_id for j in jobs}) == len(jobs)


def test_rules_that_exclude_everything_are_an_error(write):
    text = EXP.split("  - name: one")[0] + "    exclude: [{dtypes: [float32, int8]}]\n"
    with pytest.raises(ConfigError, match="expand to zero jobs"):
        planned(write, text)


def test_unknown_key_in_a_rule(write):
    text = EXP.split("  - name: one")[0] + "    exclude: [{model: [x]}]\n"
    with pytest.raises(ConfigError, match=r"exp.yaml:10: experiments.0.exclude.0.model: unknown key"):
        planned(write, text)


def test_estimate_adds_each_boards_setup_to_its_jobs(write, tmp_path):
    from orchestrator.estimate import BOARD_START_S, JOB_OVERHEAD_S, MEMBW_S_PER_32MB, estimate
    from orchestrator.results.store import Store

    jobs = planned(write)
    est = estimate(jobs, Store(tmp_path / "empty"), idle_s=3.0, membw_mb=64.0, idle_settle_s=1.0).set_index("board")
    # b0 runs 24 jobs of "iso" on both CPU components; b1 also the one job of "one"; idle power is measured
    # before the first job and after the last, each after 1 s of settling
    setup = BOARD_START_S + 2 * (1.0 + 3.0) + 2 * MEMBW_S_PER_32MB * 2
    assert est.loc["b0", "setup_s"] == pytest.approx(setup)
    assert est.loc["b0", "estimate_s"] == pytest.approx(setup + 24 * (0.5 + JOB_OVERHEAD_S))
    assert est.loc["b1", "estimate_s"] == pytest.approx(setup + 24 * (0.5 + JOB_OVERHEAD_S) + 0.1 + JOB_OVERHEAD_S)
    assert est["from_history"].sum() == 0
    bare = estimate(jobs, Store(tmp_path / "empty")).set_index("board")  # no idle, no bandwidth
    assert bare.loc["b0", "setup_s"] == pytest.approx(BOARD_START_S)

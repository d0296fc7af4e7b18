"""Thermal zones from the inventory, and the spec's platform block: every job watches its members' frequency
domains (held when a frequency is requested) and the SoC's zones."""

from __future__ import annotations

import pytest

from orchestrator.config.experiment import ExperimentsFile
from orchestrator.config.inventory import Board, Component, Lab, ThermalSpec
from orchestrator.config.load import load_inventory
from orchestrator.errors import ConfigError
from orchestrator.planner import plan
from tests.conftest import REPO
from tests.orchestrator.helpers import manifest

ZONES = ["thermal_zone0", "thermal_zone4"]
SOC = [Component(name="a15", cpus=[4, 5], cpufreq_policy="policy4", **{"class": "big"}),
       Component(name="mali", kind="gpu", cpus=[7], delegate_path="/lib/d.so", devfreq="gpu0", **{"class": "gpu"}),
       Component(name="npu", kind="external", cpus=[3], command=["run", "{model}"], **{"class": "npu"})]


def board(thermal: ThermalSpec | None = ThermalSpec(zones=ZONES), **kw) -> Board:
    return Board(name="x", soc="exynos5422", work_dir="/w", components=SOC, thermal=thermal, **kw)


def jobs_for(components: list[str], frequencies=None, b: Board | None = None):
    spec = ExperimentsFile.model_validate({"experiments": [{
        "name": "e", "models": ["mobilenet_v1"], "dtypes": ["float32"], "components": components,
        **({"frequencies": frequencies} if frequencies else {})}]})
    return plan(spec, Lab(source="inv.yml", boards=[b or board()]), manifest())


# --- inventory -----------------------------------------------------------------------------------------


def test_thermal_block_of_the_inventory(write):
    inv = write("inv.yml", """
        all:
          hosts:
            b1: {ansible_host: 10.0.0.1}
          vars:
            socfarm_soc: exynos5422
            socfarm_work_dir: /w
            socfarm_components: [{name: a15, cpus: [4]}]
            socfarm_thermal: {zones: [thermal_zone0, thermal_zone1], cooldown_c: null}
        """)
    thermal = load_inventory(inv).board("b1").thermal
    assert thermal == ThermalSpec(zones=["thermal_zone0", "thermal_zone1"], cooldown_c=None)
    assert thermal.cooldown_timeout_s == 300.0 and not thermal.simulated
    assert ThermalSpec(zones=["thermal_zone0"]).cooldown_c == 55.0


def test_bad_thermal_blocks_are_named(write):
    text = """
        all:
          hosts:
            b1: {ansible_host: 10.0.0.1}
          vars:
            socfarm_soc: exynos5422
            socfarm_work_dir: /w
            socfarm_components: [{name: a15, cpus: [4]}]
            socfarm_thermal: THERMAL
        """
    for thermal, message in (("{zones: [tz0]}", "socfarm_thermal.zones: Value error, not a thermal_zoneN name: 'tz0'"),
                             ("{zones: [thermal_zone0], cooldown_c: -3}", "socfarm_thermal.cooldown_c: Input should "
                                                                          "be greater than 0"),
                             ("{zones: [thermal_zone0], fan: on}", "socfarm_thermal.fan: unknown key")):
        with pytest.raises(ConfigError) as err:
            load_inventory(write("inv.yml", text.replace("THERMAL", thermal)))
        assert message in str(err.value)


def test_every_shipped_farm_board_lists_its_zones_and_cools_down():
    for b in load_inventory(REPO / "inventory" / "farm.yml").boards:
        assert b.thermal is not None and b.thermal.zones and b.thermal.cooldown_c == 55.0, b.name
    assert load_inventory(REPO / "inventory" / "local.yml").boards[0].thermal is None  # this VM has no zones


# --- the spec's platform block ---------------------------------------------------------------------------


def test_unpinned_jobs_watch_their_domains_and_the_socs_zones():
    jobs = {j.component: j.agent_spec("/m", "/o") for j in jobs_for(["big", "gpu", "npu", "big+gpu+npu"])}
    assert jobs["a15"]["platform"] == {"cpufreq": {"policy4": {"watch": True, "loaded": True}}, "thermal_zones": ZONES}
    assert jobs["mali"]["platform"] == {"devfreq": {"gpu0": {"watch": True}}, "thermal_zones": ZONES}
    assert jobs["npu"]["platform"] == {"thermal_zones": ZONES}  # no domain the board controls
    assert jobs["a15+mali+npu"]["platform"] == {"cpufreq": {"policy4": {"watch": True, "loaded": True}},
                                                "devfreq": {"gpu0": {"watch": True}}, "thermal_zones": ZONES}


def test_pinned_jobs_hold_their_domains_and_watch_the_zones():
    (job,) = jobs_for(["big"], frequencies=[1800000])
    assert job.agent_spec("/m", "/o")["platform"] == {"cpufreq": {"policy4": {"pin_khz": 1800000}},
                                                      "thermal_zones": ZONES}


def test_a_board_without_domains_or_zones_gets_no_platform_block():
    bare = Board(name="x", soc="host_cpu", work_dir="/w", components=[Component(name="cpu0", cpus=[0])])
    (job,) = jobs_for(["cpu0"], b=bare)
    assert "platform" not in job.agent_spec("/m", "/o")

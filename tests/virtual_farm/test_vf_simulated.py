"""Virtual boards with simulated components, without starting a farm: their names and inventory entries."""

from __future__ import annotations

import yaml

from orchestrator.config.inventory import Component
from orchestrator.virtual.__main__ import parse_boards
from orchestrator.virtual.inventory import SIMULATED_LATENCY, _component_line
from orchestrator.virtual.sysfs import layout_for


def test_simulated_boards_say_so_in_their_names():
    assert [s.name for s in parse_boards("xu3:2,hikey970:1", simulated=True)] == [
        "xu3-sim-1", "xu3-sim-2", "hikey-sim-1"]


def test_every_cluster_becomes_a_valid_simulated_component_of_its_socs_latency():
    for group in ("odroid_xu3", "hikey970"):
        for cluster in layout_for(group, "vendor" if group == "odroid_xu3" else "hwmon").clusters:
            (entry,) = yaml.safe_load(_component_line(group, cluster, [0], simulated=True).strip())
            comp = Component.model_validate(entry)
            assert comp.kind == "simulated" and comp.name == cluster.name and comp.component_class == cluster.cls
            assert (comp.ms_per_inference, comp.ms_per_mib) == SIMULATED_LATENCY[group][cluster.cls]
            (real,) = yaml.safe_load(_component_line(group, cluster, [0], simulated=False).strip())
            assert Component.model_validate(real).kind == "cpu"

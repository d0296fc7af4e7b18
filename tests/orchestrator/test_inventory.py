"""Inventory: read through ansible-inventory, validated per host."""

from __future__ import annotations

import pytest

from orchestrator.config.load import load_inventory
from orchestrator.errors import ConfigError
from tests.conftest import REPO

GOOD = """
all:
  children:
    odroid_xu3:
      hosts:
        xu3-a: {ansible_host: 10.0.0.11}
        xu3-b: {ansible_host: 10.0.0.12}
      vars:
        socfarm_soc: exynos5422
        socfarm_work_dir: /var/tmp/socfarm
        socfarm_components:
          - {name: little, class: little, cpus: [0, 1, 2, 3]}
          - {name: big, class: big, cpus: [4, 5, 6, 7], threads: 4}
"""


def test_embedded_default_inventory():
    lab = load_inventory(REPO / "inventory" / "local.yml")
    assert [b.name for b in lab.boards] == ["localhost"]
    board = lab.boards[0]
    assert board.connection == "local"
    assert [c.name for c in board.components] == ["cpu0", "cpu1"]
    assert board.meter is not None and board.meter.kind == "virtual_b2900"
    assert board.groups == ("local_host",)


def test_shipped_meters_sample_at_10_khz_or_more():
    """P3: buffered sampling of at least 10 kHz in the embedded default and the farm example."""
    meters = [b.meter for name in ("local.yml", "farm.yml") for b in load_inventory(REPO / "inventory" / name).boards
              if b.meter is not None]
    assert len(meters) >= 3
    for meter in meters:
        assert 1.0 / meter.interval_s >= 10_000 and meter.aperture_s < meter.interval_s


def test_groups_and_vars(write):
    lab = load_inventory(write("inv.yml", GOOD))
    assert [b.name for b in lab.boards] == ["xu3-a", "xu3-b"]
    a = lab.board("xu3-a")
    assert a.address == "10.0.0.11" and a.connection == "ssh" and a.groups == ("odroid_xu3",)
    assert a.component("big").effective_threads == 4
    assert a.component("little").component_class == "little"
    assert lab.select(["odroid_xu3"]) == lab.boards


@pytest.mark.parametrize(
    "change, expected",
    [
        (("socfarm_work_dir: /var/tmp/socfarm", ""), "host xu3-a: socfarm_work_dir: Field required"),
        (("threads: 4}", "threads: 4, freq: 3}"), "host xu3-a: socfarm_components.1.freq: unknown key"),
        (("cpus: [0, 1, 2, 3]", "cpus: []"), "socfarm_components.0.cpus: List should have at least 1 item"),
        (("name: big", "name: little"), "component names must be unique, repeated: little"),
    ],
)
def test_bad_inventories_name_host_and_field(write, change, expected):
    with pytest.raises(ConfigError) as info:
        load_inventory(write("inv.yml", GOOD.replace(*change)))
    assert expected in str(info.value)


def test_unparsable_inventory(write):
    with pytest.raises(ConfigError, match="ansible-inventory cannot read it"):
        load_inventory(write("inv.yml", "all:\n  hosts: [unclosed\n"))


def test_missing_inventory(tmp_path):
    with pytest.raises(ConfigError, match="inventory not found"):
        load_inventory(tmp_path / "none.yml")


def test_duplicate_board_names_are_refused(write):
    inv = write("inv.yml", GOOD.replace("        xu3-b: {ansible_host: 10.0.0.12}",
                                        "        xu3-b: {ansible_host: 10.0.0.12}\n        xu3-a: {ansible_host: 10.0.0.13}"))
    with pytest.raises(ConfigError) as info:
        load_inventory(inv)
    assert "duplicate names" in str(info.value) and "inv.yml:7:9: 'xu3-a' defined twice" in str(info.value)


def test_board_in_two_socs_is_refused(write):
    inv = write("inv.yml", GOOD + """
    hikey970:
      hosts:
        xu3-b: {}
      vars:
        socfarm_soc: kirin970
""")
    with pytest.raises(ConfigError) as info:
        load_inventory(inv)
    assert "host xu3-b is in groups with different socfarm_soc (hikey970: kirin970, odroid_xu3: exynos5422)" in str(
        info.value)


SOC_PARTS = """
          - {name: mali, class: gpu, kind: gpu, cpus: [7], devfreq: 11800000.gpu,
             delegate_path: /usr/lib/libarmnnDelegate.so, delegate_options: {backends: GpuAcc}}
          - {name: npu, class: npu, kind: external, cpus: [6], frames_per_batch: 8,
             command: [/opt/npu/run, --model, "{model}", --frames, "{frames}"]}
"""


def test_gpu_and_external_components_and_their_agent_specs(write):
    lab = load_inventory(write("inv.yml", GOOD.rstrip("\n") + SOC_PARTS))
    board = lab.board("xu3-a")
    gpu, npu = board.component("mali"), board.component("npu")
    assert gpu.agent_spec() == {"name": "mali", "kind": "gpu", "cpus": [7], "threads": 1,
                                "delegate_path": "/usr/lib/libarmnnDelegate.so",
                                "delegate_options": {"backends": "GpuAcc"}}
    assert npu.agent_spec() == {"name": "npu", "kind": "external", "cpus": [6], "frames_per_batch": 8,
                                "timeout_s": 60.0,
                                "command": ["/opt/npu/run", "--model", "{model}", "--frames", "{frames}"]}
    assert board.component("big").agent_spec() == {"name": "big", "kind": "cpu", "cpus": [4, 5, 6, 7], "threads": 4}
    assert gpu.frequency_domain == "11800000.gpu" and npu.frequency_domain is None


@pytest.mark.parametrize(
    "change, expected",
    [
        (("delegate_path: /usr/lib/libarmnnDelegate.so, ", ""), "socfarm_components.2: Value error, a gpu component "
                                                                "needs 'delegate_path'"),
        (('command: [/opt/npu/run, --model, "{model}", --frames, "{frames}"]', "timeout_s: 5"),
         "an external component needs 'command'"),
        (("kind: gpu, cpus: [7]", "kind: gpu, cpus: [7], command: [x]"), "command: not a field of a gpu component"),
        (("name: big, class: big, cpus: [4, 5, 6, 7], threads: 4",
          "name: big, class: big, cpus: [4, 5, 6, 7], devfreq: x"), "devfreq: not a field of a cpu component"),
        (("kind: external, cpus: [6]", "kind: npu, cpus: [6]"), "socfarm_components.3.kind: Input should be"),
    ],
)
def test_bad_gpu_and_external_components(write, change, expected):
    text = GOOD.rstrip("\n") + SOC_PARTS
    assert change[0] in text
    with pytest.raises(ConfigError) as info:
        load_inventory(write("inv.yml", text.replace(*change)))
    assert expected in str(info.value)

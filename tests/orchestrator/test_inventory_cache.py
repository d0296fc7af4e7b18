"""Inventory cache: an unchanged static inventory is read by Ansible once, then from the cache; whatever
ansible-inventory reads changes the key, and errors are never kept. Every load here runs the real
ansible-inventory (on a miss)."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from orchestrator.config import inventory_cache, load
from orchestrator.config.load import inventory_listing, load_inventory
from orchestrator.errors import ConfigError

INVENTORY = """
all:
  children:
    odroid_xu3:
      hosts:
        xu3-a: {ansible_host: 10.0.0.11}
        xu3-b: {ansible_host: 10.0.0.12}
      vars:
        socfarm_soc: exynos5422
        socfarm_work_dir: /var/tmp/from-inventory
        socfarm_components:
          - {name: little, class: little, cpus: [0, 1, 2, 3]}
"""


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """The cache in tmp_path, the current directory an empty folder of tmp_path; returns the entries' folder."""
    monkeypatch.setenv("SOCFARM_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    return tmp_path / "cache" / "inventory"


@pytest.fixture
def runs(monkeypatch) -> list[list[str]]:
    """The ansible-inventory commands load.py runs from now on."""
    seen: list[list[str]] = []
    real = subprocess.run

    def counting(cmd, *args, **kwargs):
        seen.append(list(cmd))
        return real(cmd, *args, **kwargs)

    monkeypatch.setattr(load.subprocess, "run", counting)
    return seen


def put(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def work_dir(inv: Path) -> str:
    return str(load_inventory(inv).board("xu3-a").work_dir)


def test_second_load_of_an_unchanged_inventory_runs_no_ansible(tmp_path, cache, runs):
    inv = put(tmp_path / "inv.yml", INVENTORY)
    first = load_inventory(inv)
    assert len(runs) == 2 and sorted("--export" in cmd for cmd in runs) == [False, True]
    assert len(entries(cache)) == 1
    second = load_inventory(inv)
    assert len(runs) == 2
    assert second == first and second.board("xu3-a").work_dir == first.board("xu3-a").work_dir
    # what the cache holds is exactly Ansible's own two listings
    stored = json.loads(entries(cache)[0].read_text())
    assert stored["list"] == inventory_listing(inv) and stored["export"] == inventory_listing(inv, export=True)


def test_the_same_inventory_by_another_path_is_another_entry(tmp_path, cache, runs):
    inv = put(tmp_path / "inv.yml", INVENTORY)
    load_inventory(inv)
    load_inventory(Path(os.path.relpath(inv)))  # same file, same key: the key uses the absolute path
    assert len(runs) == 2
    load_inventory(put(tmp_path / "other" / "inv.yml", INVENTORY))
    assert len(runs) == 4 and len(entries(cache)) == 2


PRECEDENCE_INVENTORY_WINS = ("all_plugins_inventory,all_plugins_play,all_inventory,"
                             "groups_plugins_inventory,groups_plugins_play,groups_inventory")


def _edit_inventory(tmp_path, monkeypatch):
    # a host's own variable in the inventory file wins over the group's group_vars file
    put(tmp_path / "inv.yml", INVENTORY.replace("{ansible_host: 10.0.0.11}",
                                                "{ansible_host: 10.0.0.11, socfarm_work_dir: /var/tmp/edited}"))
    return "/var/tmp/edited"


def _edit_group_vars(tmp_path, monkeypatch):
    put(tmp_path / "group_vars" / "odroid_xu3.yml", "socfarm_work_dir: /var/tmp/group-vars-edited\n")
    return "/var/tmp/group-vars-edited"


def _add_host_vars(tmp_path, monkeypatch):
    put(tmp_path / "host_vars" / "xu3-a" / "more.yml", "socfarm_work_dir: /var/tmp/host-vars\n")
    return "/var/tmp/host-vars"


def _change_ansible_env(tmp_path, monkeypatch):
    # inventory-file variables above group_vars files: the inventory's own value comes back
    monkeypatch.setenv("ANSIBLE_PRECEDENCE", PRECEDENCE_INVENTORY_WINS)
    return "/var/tmp/from-inventory"


def _add_ansible_cfg(tmp_path, monkeypatch):
    put(Path.cwd() / "ansible.cfg", f"[defaults]\nprecedence = {PRECEDENCE_INVENTORY_WINS}\n")
    return "/var/tmp/from-inventory"


def _add_cwd_host_vars(tmp_path, monkeypatch):
    # ansible-inventory also reads group_vars/host_vars of the current directory (its default playbook folder)
    put(Path.cwd() / "host_vars" / "xu3-a.yml", "socfarm_work_dir: /var/tmp/cwd-host-vars\n")
    return "/var/tmp/cwd-host-vars"


@pytest.mark.parametrize("change", [_edit_inventory, _edit_group_vars, _add_host_vars, _change_ansible_env,
                                    _add_ansible_cfg, _add_cwd_host_vars])
def test_what_ansible_reads_changes_the_key(tmp_path, monkeypatch, cache, runs, change):
    inv = put(tmp_path / "inv.yml", INVENTORY)
    put(tmp_path / "group_vars" / "odroid_xu3.yml", "socfarm_work_dir: /var/tmp/group-vars\n")
    assert work_dir(inv) == "/var/tmp/group-vars"
    assert work_dir(inv) == "/var/tmp/group-vars" and len(runs) == 2
    expected = change(tmp_path, monkeypatch)  # at once: the key is the content, not a modification time
    assert work_dir(inv) == expected and len(runs) == 4
    assert work_dir(inv) == expected and len(runs) == 4  # the new listing is kept in turn
    assert len(entries(cache)) == 2


DUPLICATE = INVENTORY.replace("        xu3-b: {ansible_host: 10.0.0.12}",
                              "        xu3-b: {ansible_host: 10.0.0.12}\n        xu3-a: {ansible_host: 10.0.0.13}")


@pytest.mark.parametrize("text, expected", [
    (DUPLICATE, "inv.yml:7:9: 'xu3-a' defined twice"),
    ("all:\n  hosts: [unclosed\n", "ansible-inventory cannot read it"),
])
def test_ansible_errors_are_never_kept(tmp_path, cache, runs, text, expected):
    inv = put(tmp_path / "inv.yml", text)
    with pytest.raises(ConfigError) as first:
        load_inventory(inv)
    with pytest.raises(ConfigError) as second:
        load_inventory(inv)
    assert expected in str(first.value) and str(second.value) == str(first.value)
    assert len(runs) == 4 and entries(cache) == []


def test_errors_of_a_clean_listing_stay_errors_when_it_is_cached(tmp_path, cache, runs):
    """A board in two SoCs, or a missing variable, is found in the cached listings again."""
    two_socs = put(tmp_path / "two_socs.yml", INVENTORY + """
    hikey970:
      hosts:
        xu3-b: {}
      vars:
        socfarm_soc: kirin970
""")
    missing = put(tmp_path / "missing.yml", INVENTORY.replace("        socfarm_work_dir: /var/tmp/from-inventory\n", ""))
    for inv, expected in ((two_socs, "host xu3-b is in groups with different socfarm_soc"),
                          (missing, "host xu3-a: socfarm_work_dir: Field required")):
        messages = []
        for _ in range(2):
            with pytest.raises(ConfigError) as info:
                load_inventory(inv)
            messages.append(str(info.value))
        assert expected in messages[0] and messages[1] == messages[0]
    assert len(runs) == 4 and len(entries(cache)) == 2


VAULT_VALUE = """
  secret: !vault |
    $ANSIBLE_VAULT;1.1;AES256
    62313365396662343061393464336163383764373764613633653634306231386433626436623361
    6134333665353966363534333632666535333761666131620a663537646436643839616531643561
    63396265333966386166373632626539326166353965363262633030333630313338646335303630
    3438626666666137650a353638643435666633633964366338633066623234616432373231333331
    6564
"""

GENERATOR = """
plugin: ansible.builtin.generator
hosts:
  name: "xu3-{{ n }}"
  parents:
    - name: odroid_xu3
      vars:
        socfarm_soc: exynos5422
        socfarm_work_dir: /var/tmp/generated
        socfarm_components: [{name: little, class: little, cpus: [0]}]
layers:
  n: [a, b]
"""


def _vault_in_group_vars(tmp_path):
    put(tmp_path / "group_vars" / "all.yml", VAULT_VALUE)
    return put(tmp_path / "inv.yml", INVENTORY)


def _vault_in_inventory(tmp_path):
    return put(tmp_path / "inv.yml", INVENTORY + "  vars:" + textwrap.indent(VAULT_VALUE, "  "))


def _plugin_config(tmp_path):
    return put(tmp_path / "inv.yml", GENERATOR)


def _script(tmp_path):
    listing = {"odroid_xu3": {"hosts": ["xu3-a"], "vars": {"socfarm_soc": "exynos5422",
                                                           "socfarm_work_dir": "/var/tmp/script",
                                                           "socfarm_components": [{"name": "c", "cpus": [0]}]}},
               "_meta": {"hostvars": {}}}
    script = put(tmp_path / "inv.py", f"#!/bin/sh\necho '{json.dumps(listing)}'\n")
    script.chmod(0o755)
    return script


@pytest.mark.parametrize("make", [_vault_in_group_vars, _vault_in_inventory, _plugin_config, _script])
def test_vaults_plugin_configs_and_scripts_are_never_cached(tmp_path, cache, runs, make):
    inv = make(tmp_path)
    labs = [load_inventory(inv), load_inventory(inv)]
    assert labs[1] == labs[0] and labs[0].boards
    assert len(runs) == 4 and entries(cache) == []


@pytest.mark.parametrize("text", [GENERATOR, "{plugin: constructed, strict: true}\n",
                                  '{"plugin": "constructed"}', "---\nkeyed_groups: []\n'plugin': constructed\n",
                                  "base: &b {plugin: constructed}\n<<: *b\n"])
def test_plugin_configs_are_recognised(text):
    assert inventory_cache.is_plugin_config(text.encode())


@pytest.mark.parametrize("text", [INVENTORY, "[odroid_xu3]\nxu3-a plugin=1\n", "all: {vars: {plugin: x}}\n",
                                  "all:\n  vars:\n    x: !unsafe '{{ y }}'\n"])
def test_inventories_are_not_plugin_configs(text):
    assert not inventory_cache.is_plugin_config(text.encode())


def test_a_corrupt_entry_is_ignored_and_replaced(tmp_path, cache, runs):
    inv = put(tmp_path / "inv.yml", INVENTORY)
    lab = load_inventory(inv)
    [entry] = entries(cache)
    for garbage in (b"\xff\xfe\x00not json", b'{"format": 1, "key": "x"}', b""):
        entry.write_bytes(garbage)
        before = len(runs)
        assert load_inventory(inv) == lab and len(runs) == before + 2
        assert json.loads(entry.read_text())["list"]["_meta"]["hostvars"]["xu3-a"]["ansible_host"] == "10.0.0.11"
        assert load_inventory(inv) == lab and len(runs) == before + 2


def test_an_unwritable_cache_does_not_break_loading(tmp_path, monkeypatch, runs):
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("SOCFARM_CACHE_DIR", str(tmp_path / "not-a-folder" / "cache"))
    inv = put(tmp_path / "inv.yml", INVENTORY)
    labs = [load_inventory(inv), load_inventory(inv)]
    assert labs[0] == labs[1] and len(runs) == 4


def test_nothing_is_kept_when_the_inventory_changes_while_ansible_reads_it(tmp_path, cache, monkeypatch):
    inv = put(tmp_path / "inv.yml", INVENTORY)
    real = load.inventory_listing

    def editing(path, export=False):
        listing = real(path, export)
        if export:
            inv.write_text(inv.read_text().replace("from-inventory", "edited"))
        return listing

    monkeypatch.setattr(load, "inventory_listing", editing)
    load_inventory(inv)
    assert entries(cache) == []


def test_entries_are_bounded(tmp_path, monkeypatch):
    folder = tmp_path / "inventory"
    folder.mkdir()
    now = time.time()
    for i in range(inventory_cache.MAX_ENTRIES + 6):
        entry = folder / f"{i:064x}.json"
        entry.write_text("{}")
        os.utime(entry, (now - i, now - i))  # entry 0 the most recently used
    old = folder / f"{'f' * 64}.json"
    old.write_text("{}")
    os.utime(old, (now - inventory_cache.MAX_AGE_S - 1,) * 2)
    left_over = folder / ".tmpx.tmp"
    left_over.write_text("")
    os.utime(left_over, (now - inventory_cache.STALE_TMP_S - 1,) * 2)
    inventory_cache.prune(folder, now=now)
    assert sorted(p.name for p in folder.iterdir()) == [f"{i:064x}.json" for i in range(inventory_cache.MAX_ENTRIES)]


def test_where_the_cache_lives(tmp_path, monkeypatch):
    monkeypatch.delenv("SOCFARM_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert inventory_cache.entries_dir() == tmp_path / "home" / ".cache" / "socfarm" / "inventory"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert inventory_cache.entries_dir() == tmp_path / "xdg" / "socfarm" / "inventory"
    monkeypatch.setenv("SOCFARM_CACHE_DIR", str(tmp_path / "mine"))
    assert inventory_cache.entries_dir() == tmp_path / "mine" / "inventory"

"""Emulated userlands without building one: recipes, their cache key, the mirror, the CLI's board syntax."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.virtual import sshd, userland
from orchestrator.virtual.__main__ import parse_boards
from orchestrator.virtual.farm import BoardSpec


def test_recipes_follow_the_socs_architecture_and_armhf_gets_the_distributions_numpy():
    xu3 = userland.recipe_for("odroid_xu3", "bookworm", mirror="http://m/debian")
    hikey = userland.recipe_for("hikey970", "bullseye", mirror="http://m/debian")
    assert (xu3.arch, hikey.arch) == ("armhf", "arm64")
    assert "python3-numpy" in xu3.packages and "python3-numpy" not in hikey.packages
    assert {"python3", "python3-venv"} <= set(hikey.packages)
    assert xu3.name.startswith("armhf-bookworm-") and hikey.name.startswith("arm64-bullseye-")


def test_the_cache_key_changes_with_the_recipe_and_only_then():
    a = userland.recipe_for("hikey970", "bookworm", mirror="http://m/debian")
    assert a.key == userland.recipe_for("hikey970", "bookworm", mirror="http://m/debian").key
    assert a.key != userland.recipe_for("hikey970", "bookworm", mirror="http://other/debian").key
    assert a.key != userland.recipe_for("hikey970", "bullseye", mirror="http://m/debian").key
    assert a.key != userland.Recipe(a.arch, a.suite, a.mirror, a.packages + ("less",)).key
    # the package order does not matter
    assert a.key == userland.Recipe(a.arch, a.suite, a.mirror, tuple(reversed(a.packages))).key


def test_unknown_suite_or_soc_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="unknown Debian suite 'buster'.*bookworm.*bullseye"):
        userland.recipe_for("hikey970", "buster", mirror="-")
    with pytest.raises(ValueError, match="unknown Debian suite"):
        BoardSpec("xu3-1", "odroid_xu3", userland="sid")


def test_the_mirror_is_the_one_apt_is_configured_with(tmp_path, monkeypatch):
    monkeypatch.delenv("SOCFARM_DEBIAN_MIRROR", raising=False)
    deb822 = tmp_path / "debian.sources"
    deb822.write_text("Types: deb\n# http://snapshot.debian.org/archive/debian/20250520T000000Z\n"
                      "URIs: http://mirror.example/debian\nSuites: bookworm\n\n"
                      "Types: deb\nURIs: http://mirror.example/debian-security\n")
    assert userland.debian_mirror((deb822,)) == "http://mirror.example/debian"
    one_line = tmp_path / "sources.list"
    one_line.write_text("deb http://security.debian.org/debian-security bookworm-security main\n"
                        "deb [arch=amd64] http://ftp.example/debian bookworm main\n")
    assert userland.debian_mirror((tmp_path / "absent", one_line)) == "http://ftp.example/debian"
    assert userland.debian_mirror((tmp_path / "absent",)) == "http://deb.debian.org/debian"
    monkeypatch.setenv("SOCFARM_DEBIAN_MIRROR", "http://local/debian")
    assert userland.debian_mirror((deb822,)) == "http://local/debian"


def test_cli_board_kinds_take_a_suite_with_emulated_userlands_only():
    specs = parse_boards("xu3:1,hikey970:1,hikey970@bullseye:1", userland="emulated")
    assert [(s.name, s.soc, s.userland) for s in specs] == [
        ("xu3-1", "odroid_xu3", "bookworm"), ("hikey-1", "hikey970", "bookworm"), ("hikey-2", "hikey970", "bullseye")]
    assert all(s.userland is None for s in parse_boards("xu3:2,hikey970:1"))
    with pytest.raises(ValueError, match="needs --userland emulated"):
        parse_boards("hikey970@bullseye:1")
    with pytest.raises(ValueError, match="unknown Debian suite 'jessie'"):
        parse_boards("xu3@jessie:1", userland="emulated")


def test_the_inventory_says_what_is_emulated():
    spec = BoardSpec("hikey-2", "hikey970", userland="bullseye")
    assert userland.emulation(spec) == "qemu-user arm64 (aarch64), Debian 11, Python 3.9, glibc 2.31"


def test_an_emulated_boards_sshd_chroots_every_session():
    common = dict(address="10.0.0.2", host_key=Path("/k"), pid_file=Path("/p"), authorized_keys=Path("/a"))
    assert "ChrootDirectory /run/socfarm-vfarm/ab12/xu3-1" in sshd.render_config(
        **common, chroot=userland.root_mountpoint("ab12", "xu3-1"))
    assert "ChrootDirectory" not in sshd.render_config(**common)

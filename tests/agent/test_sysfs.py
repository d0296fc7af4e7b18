"""``device_agent.sysfs``: reads, verified writes, errors naming the file."""

from __future__ import annotations

import os

import pytest

from device_agent.errors import SysfsError, SysfsWriteError
from device_agent.sysfs import Sysfs


@pytest.fixture
def sysfs(tmp_path):
    d = tmp_path / "dev"
    d.mkdir()
    (d / "enable").write_text("0\n")
    (d / "sensor_W").write_text("1.234567\n")
    (d / "name").write_text("ina231\n")
    (d / "bad").write_text("n/a\n")
    (d / "nan").write_text("nan\n")
    return Sysfs(str(tmp_path))


def test_reads_are_stripped_and_parsed(sysfs):
    assert sysfs.read("dev/name") == "ina231"
    assert sysfs.read_int("dev/enable") == 0
    assert sysfs.read_float("dev/sensor_W") == 1.234567
    assert sysfs.is_dir("dev") and sysfs.is_file("dev/enable") and sysfs.exists("dev/name")
    assert not sysfs.exists("dev/absent") and not sysfs.is_dir("dev/enable")
    assert sysfs.listdir("dev")[:2] == ["bad", "enable"]


def test_read_errors_name_the_file(sysfs, tmp_path):
    with pytest.raises(SysfsError, match="cannot read %s" % (tmp_path / "dev" / "absent")):
        sysfs.read("dev/absent")
    with pytest.raises(SysfsError, match=r"dev/bad: expected an integer, read 'n/a'"):
        sysfs.read_int("dev/bad")
    with pytest.raises(SysfsError, match=r"dev/nan: expected a finite number"):
        sysfs.read_float("dev/nan")
    with pytest.raises(SysfsError, match="cannot list"):
        sysfs.listdir("dev/absent")
    assert not SysfsError("x").retryable and SysfsError("x").exit_code == 2


def test_write_is_verified_by_reading_back(sysfs, tmp_path):
    sysfs.write("dev/enable", 1)
    assert (tmp_path / "dev" / "enable").read_text() == "1\n"
    sysfs.write("dev/name", "ina226")
    assert sysfs.read("dev/name") == "ina226"


def test_write_mismatch_names_path_requested_and_read_back(sysfs, tmp_path):
    # a file that swallows writes (like an attribute the driver ignores): reads back ""
    os.symlink(os.devnull, str(tmp_path / "dev" / "update_period"))
    with pytest.raises(SysfsWriteError) as info:
        sysfs.write("dev/update_period", 50000)
    message = str(info.value)
    assert str(tmp_path / "dev" / "update_period") in message
    assert "'50000'" in message and "read back ''" in message
    assert isinstance(info.value, SysfsError) and info.value.exit_code == 2
    sysfs.write("dev/update_period", 50000, verify=False)  # no read-back: no error


def test_write_never_creates_a_file(sysfs, tmp_path):
    with pytest.raises(SysfsWriteError, match="cannot write '1' to .*dev/absent"):
        sysfs.write("dev/absent", 1)
    assert not (tmp_path / "dev" / "absent").exists()


def test_write_to_a_folder_is_a_write_error(sysfs):
    with pytest.raises(SysfsWriteError, match="cannot write"):
        sysfs.write("dev", 1)


@pytest.mark.parametrize("rel", ["/dev/enable", "dev/../../etc/passwd", ".."])
def test_paths_must_stay_below_the_root(sysfs, rel):
    with pytest.raises(ValueError):
        sysfs.path(rel)

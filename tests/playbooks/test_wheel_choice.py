"""The runtime role's wheel choice (filter_plugins/wheel_choice.py): every row of the default table, the
platform tags, a lab's wheelhouse, a lab's extra rows and malformed rows; and, marked slow, the rows'
requirements resolved against PyPI for the boards they are meant for."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

ROLE = REPO / "playbooks" / "roles" / "runtime"
_spec = importlib.util.spec_from_file_location("wheel_choice", ROLE / "filter_plugins" / "wheel_choice.py")
wc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(wc)

DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
TABLE = DEFAULTS["runtime_wheel_table"]

# (arch, Python, glibc) -> (row, requirements, system_site_packages): one board per row of the table
BOARDS = {
    ("armv7l", "3.11.2", "2.36"): ("armv7l-distro-numpy", ["tflite-runtime==2.14.0"], True),  # XU3, Debian 12
    ("armv7l", "3.10.12", "2.35"): ("armv7l-distro-numpy", ["tflite-runtime==2.14.0"], True),  # Ubuntu 22.04
    ("aarch64", "3.9.2", "2.31"): ("litert-py39", ["ai-edge-litert==2.1.0", "numpy>=1.23.2,<2.1"], False),
    ("aarch64", "3.11.2", "2.36"): ("litert", ["ai-edge-litert==2.3.0", "numpy>=1.26,<3"], False),
    ("aarch64", "3.8.10", "2.31"): ("tflite-py38", ["tflite-runtime==2.13.0", "numpy>=1.23.2,<1.25"], False),
    ("x86_64", "3.12.3", "2.39"): ("litert", ["ai-edge-litert==2.3.0", "numpy>=1.26,<3"], False),
    ("x86_64", "3.9.18", "2.36"): ("litert-py39", ["ai-edge-litert==2.1.0", "numpy>=1.23.2,<2.1"], False),
}


@pytest.mark.parametrize("board", list(BOARDS), ids=lambda b: "-".join(b))
def test_each_board_gets_its_row(board):
    row, reqs, system = BOARDS[board]
    plan = wc.wheel_choice(TABLE, *board)
    assert not plan["refused"], plan["message"]
    assert (plan["row"], plan["requirements"], plan["system_site_packages"], plan["source"]) == (
        row, reqs, system, "pypi")
    arch, python, glibc = board
    minor = python.split(".")[1]
    args = plan["download_args"]
    assert args[:7] == ["--only-binary=:all:", "--python-version", f"3.{minor}", "--implementation", "cp",
                        "--abi", f"cp3{minor}"]
    assert args[-len(reqs):] == reqs
    platforms = [args[i + 1] for i, a in enumerate(args) if a == "--platform"]
    assert platforms == wc.platform_tags(arch, glibc) == plan["platforms"]
    assert plan["install_args"][0] == "--no-index"
    # the distro's numpy (no armv7l numpy wheel on PyPI): not downloaded, not installed by pip
    assert ("--no-deps" in args) is system and ("--no-deps" in plan["install_args"]) is system
    assert plan["distro_numpy"] == (">=1.23.2,<2" if system else "")


def test_armv7l_on_glibc_2_31_is_refused_naming_the_ways_out():
    plan = wc.wheel_choice(TABLE, "armv7l", "3.9.2", "2.31")
    assert plan["refused"] and plan["row"] == "armv7l-old-glibc"
    message = plan["message"]
    assert message.startswith("armv7l, Python 3.9.2, glibc 2.31: no binary path: PyPI has no armv7l numpy wheel")
    assert "numpy >= 1.21.2" in message and "Debian 11: 1.19.5" in message
    assert "socfarm_wheelhouse" in message and "Debian 12 / glibc >= 2.34" in message
    assert plan["download_args"] == [] and plan["requirements"] == []
    assert "\n" not in message and "  " not in message


def test_armv7l_with_a_python_that_has_no_wheel_is_refused():
    plan = wc.wheel_choice(TABLE, "armv7l", "3.12.3", "2.39")
    assert plan["refused"] and plan["row"] == "armv7l-python" and "Python 3.8-3.11 only" in plan["message"]


def test_a_board_no_row_matches_is_refused_naming_the_table():
    for board in [("riscv64", "3.11.2", "2.36"), ("aarch64", "3.11.2", "2.24")]:
        plan = wc.wheel_choice(TABLE, *board)
        assert plan["refused"] and "no row of the runtime wheel table matches" in plan["message"]
        assert "runtime_wheel_table_extra" in plan["message"] and "socfarm_wheelhouse" in plan["message"]


def test_platform_tags_go_from_the_boards_glibc_down_to_manylinux2014():
    tags = wc.platform_tags("armv7l", "2.36")
    assert tags[0] == "manylinux_2_36_armv7l" and tags[-2:] == ["manylinux_2_17_armv7l", "manylinux2014_armv7l"]
    assert "manylinux_2_34_armv7l" in tags and len(tags) == 36 - 17 + 2
    old = wc.platform_tags("armv7l", "2.31")
    assert "manylinux_2_34_armv7l" not in old and "manylinux2014_armv7l" in old and old[0] == "manylinux_2_31_armv7l"
    assert not any(t.startswith("linux_") for t in tags)  # PyPI has no linux_* wheels
    assert "manylinux_2_27_aarch64" in wc.platform_tags("aarch64", "2.31")


def test_version_ranges():
    assert wc.version_in("3.11", ">=3.8,<3.12") and not wc.version_in("3.12", ">=3.8,<3.12")
    assert wc.version_in("2.34", ">=2.34") and not wc.version_in("2.31", ">=2.34")
    assert wc.version_in("1.24.2", ">=1.23.2,<2") and not wc.version_in("1.19.5", ">=1.23.2,<2")
    assert not wc.version_in("2.0.0", ">=1.23.2,<2") and wc.version_in("1.0", "") and wc.version_in("1.0", None)
    assert wc.version_in("3.9", "==3.9") and wc.version_in("3.9", "!=3.10")
    with pytest.raises(ValueError, match="clause '~3.9'"):
        wc.version_in("3.9", ">=3.8,~3.9")


def test_python_ranges_compare_major_minor():
    plan = wc.wheel_choice([{"name": "exact", "arch": "aarch64", "python": "==3.9", "requirements": ["x==1"]}],
                           "aarch64", "3.9.18", "2.31")
    assert plan["row"] == "exact"


def test_a_labs_extra_rows_come_first():
    extra = [{"name": "lab-armhf-bullseye", "arch": "armv7l", "glibc": "<2.34", "python": ">=3.9,<3.10",
              "requirements": ["tflite-runtime==2.13.0"], "system_site_packages": True, "distro_numpy": ">=1.19"}]
    plan = wc.wheel_choice(extra + TABLE, "armv7l", "3.9.2", "2.31")
    assert not plan["refused"] and plan["row"] == "lab-armhf-bullseye"
    assert plan["requirements"] == ["tflite-runtime==2.13.0"] and plan["distro_numpy"] == ">=1.19"
    assert wc.wheel_choice(extra + TABLE, "armv7l", "3.11.2", "2.36")["row"] == "armv7l-distro-numpy"


@pytest.mark.parametrize("row, error", [
    ({"arch": "armv7l", "requirements": ["a"], "refuse": "no"}, "either requirements or refuse"),
    ({"arch": "armv7l"}, "either requirements or refuse"),
    ({"requirements": ["a"]}, "no arch"),
    ({"arch": "armv7l", "requirements": ["numpy<2; python_version < '3.9'"]}, "environment marker"),
    ({"arch": "armv7l", "requirements": "tflite-runtime"}, "list of strings"),
    ({"arch": "armv7l", "requirements": ["a"], "glibc": "2.34+"}, "glibc: bad version range"),
    ({"arch": "armv7l", "requirements": ["a"], "pyton": ">=3.8"}, "unknown field"),
])
def test_malformed_rows_are_named(row, error):
    with pytest.raises(wc.TableError, match=error) as err:
        wc.wheel_choice([row], "x86_64", "3.11.2", "2.36")
    assert "row 1" in str(err.value)


# -- a lab's wheelhouse ----------------------------------------------------------------------------------------

ARMHF_BULLSEYE = ["/lab/wheels/tflite_runtime-2.13.0-cp39-cp39-linux_armv7l.whl",
                  "/lab/wheels/numpy-1.21.6-cp39-cp39-linux_armv7l.whl",
                  "/lab/wheels/tflite_runtime-2.13.0-cp311-cp311-manylinux_2_34_armv7l.whl",  # other Python
                  "/lab/wheels/numpy-1.26.4-cp39-cp39-manylinux_2_34_armv7l.whl",  # newer glibc than the board
                  "/lab/wheels/flatbuffers-25.12.19-py2.py3-none-any.whl",
                  "/lab/wheels/ai_edge_litert-2.1.0-cp39-cp39-manylinux_2_27_aarch64.whl",  # other arch
                  "/lab/wheels/README.txt"]


def test_a_wheelhouse_provisions_a_board_the_table_refuses():
    plan = wc.wheel_choice(TABLE, "armv7l", "3.9.2", "2.31", "/lab/wheels", ARMHF_BULLSEYE)
    assert not plan["refused"], plan["message"]
    assert plan["source"] == "wheelhouse" and plan["row"] == "socfarm_wheelhouse"
    assert plan["requirements"] == ["tflite-runtime==2.13.0"]
    assert plan["files"] == ["flatbuffers-25.12.19-py2.py3-none-any.whl", "numpy-1.21.6-cp39-cp39-linux_armv7l.whl",
                             "tflite_runtime-2.13.0-cp39-cp39-linux_armv7l.whl"]
    assert not plan["system_site_packages"]  # it has a numpy wheel for the board
    assert plan["install_args"] == ["--no-index"] and plan["download_args"] == []


def test_a_wheelhouse_without_numpy_uses_the_distros():
    plan = wc.wheel_choice(TABLE, "armv7l", "3.9.2", "2.31", "/lab/wheels", ARMHF_BULLSEYE[:1])
    assert plan["source"] == "wheelhouse" and plan["system_site_packages"] and plan["distro_numpy"] == ""


def test_a_wheelhouse_is_used_before_the_table_and_prefers_litert():
    files = ["/w/ai_edge_litert-2.1.0-cp39-cp39-manylinux_2_27_aarch64.whl",
             "/w/ai_edge_litert-2.0.0-cp39-cp39-manylinux_2_27_aarch64.whl",
             "/w/tflite_runtime-2.13.0-cp39-cp39-manylinux2014_aarch64.whl",
             "/w/numpy-1.26.4-cp39-cp39-manylinux_2_17_aarch64.manylinux2014_aarch64.whl",
             "/w/protobuf-6.33.6-cp39-abi3-manylinux2014_aarch64.whl"]
    plan = wc.wheel_choice(TABLE, "aarch64", "3.9.2", "2.31", "/w", files)
    assert plan["requirements"] == ["ai-edge-litert==2.1.0"] and not plan["system_site_packages"]
    assert "protobuf-6.33.6-cp39-abi3-manylinux2014_aarch64.whl" in plan["files"]


def test_a_wheelhouse_with_nothing_for_the_board_falls_back_to_the_table():
    plan = wc.wheel_choice(TABLE, "aarch64", "3.11.2", "2.36", "/lab/wheels", ARMHF_BULLSEYE)
    assert plan["source"] == "pypi" and plan["row"] == "litert"
    refused = wc.wheel_choice(TABLE, "armv7l", "3.10.6", "2.31", "/lab/wheels", ARMHF_BULLSEYE)
    assert refused["refused"] and "no binary path" in refused["message"]
    assert "socfarm_wheelhouse /lab/wheels has no ai-edge-litert or tflite-runtime wheel for cp310" in refused["message"]


def test_an_empty_or_missing_wheelhouse_is_an_error():
    plan = wc.wheel_choice(TABLE, "aarch64", "3.11.2", "2.36", "/lab/whels", [])
    assert plan["refused"] and "socfarm_wheelhouse /lab/whels holds no .whl file" in plan["message"]


@pytest.mark.parametrize("name, fits", [
    ("numpy-1.24.2-cp311-cp311-manylinux_2_34_armv7l.whl", True),
    ("numpy-1.24.2-cp311-cp311-manylinux_2_37_armv7l.whl", False),  # newer glibc than the board
    ("numpy-1.24.2-cp310-cp310-manylinux_2_34_armv7l.whl", False),
    ("numpy-1.24.2-cp311-cp311-linux_armv7l.whl", True),  # built on such a board (piwheels' tag)
    ("protobuf-6.33.6-cp39-abi3-manylinux2014_armv7l.whl", True),
    ("tqdm-4.70.1-py3-none-any.whl", True),
    ("numpy-1.24.2-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl", False),
    ("thing-1.0-1-cp311-cp311-manylinux2014_armv7l.whl", True),  # a build tag
    ("numpy-1.19.5-cp311-cp311-manylinux2010_x86_64.whl", False),
])
def test_which_wheels_fit_an_armhf_debian_12_board(name, fits):
    assert wc.wheel_fits(wc.parse_wheel(name), "armv7l", "3.11.2", "2.36") is fits


def test_older_manylinux_aliases_fit_x86_64():
    for name in ("numpy-1.19.5-cp38-cp38-manylinux2010_x86_64.whl", "numpy-1.19.5-cp38-cp38-manylinux1_x86_64.whl"):
        assert wc.wheel_fits(wc.parse_wheel(name), "x86_64", "3.8.18", "2.31")
    assert not wc.wheel_fits(wc.parse_wheel("a-1-cp38-cp38-manylinux_2_34_x86_64.whl"), "x86_64", "3.8.18", "2.31")


def test_the_role_reads_the_default_table_through_its_filters():
    filters = wc.FilterModule().filters()
    assert filters["runtime_wheel_choice"] is wc.wheel_choice and filters["runtime_version_in"] is wc.version_in
    assert DEFAULTS["runtime_wheel_table_extra"] == []


# -- against PyPI ----------------------------------------------------------------------------------------------

def _pip(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args, "--disable-pip-version-check"], capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.slow
@pytest.mark.parametrize("board", [b for b in BOARDS if b[0] != "armv7l"], ids=lambda b: "-".join(b))
def test_each_rows_requirements_resolve_on_pypi_for_its_board(board, tmp_path):
    """The row's exact download arguments, resolved by pip (`install --dry-run --report` with the same
    --platform/--python-version/--abi: PyPI serves the wheels' metadata, so nothing large is fetched);
    every file pip picks is a wheel that fits the board."""
    plan = wc.wheel_choice(TABLE, *board)
    proc = _pip("install", "--dry-run", "--ignore-installed", "--target", str(tmp_path / "t"), "--report",
                str(tmp_path / "report.json"), "--quiet", *plan["download_args"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    picked = [item["download_info"]["url"].rsplit("/", 1)[1]
              for item in json.loads((tmp_path / "report.json").read_text())["install"]]
    names = {wc.parse_wheel(f)["name"] for f in picked}
    assert {r.split("=")[0].split(">")[0].split("<")[0] for r in plan["requirements"]} <= names
    assert all(wc.wheel_fits(wc.parse_wheel(f), *board) for f in picked), picked


@pytest.mark.slow
def test_the_armv7l_wheel_downloads_for_glibc_2_36_and_not_for_2_31(tmp_path):
    """`pip download --only-binary=:all:` as the role runs it: the armhf runtime wheel is manylinux_2_34,
    so the board's glibc decides (1.8 MB)."""
    plan = wc.wheel_choice(TABLE, "armv7l", "3.11.2", "2.36")
    proc = _pip("download", "--dest", str(tmp_path / "ok"), *plan["download_args"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [p.name for p in (tmp_path / "ok").iterdir()] == ["tflite_runtime-2.14.0-cp311-cp311-manylinux_2_34_armv7l.whl"]
    # the same requirement with a glibc 2.31 board's platform tags (a row without a glibc range)
    row = {"arch": "armv7l", "requirements": ["tflite-runtime==2.14.0"], "system_site_packages": True}
    old = wc.wheel_choice([row], "armv7l", "3.11.2", "2.31")
    assert "--platform" in old["download_args"] and "manylinux_2_34_armv7l" not in old["download_args"]
    proc = _pip("download", "--dest", str(tmp_path / "old"), *old["download_args"])
    assert proc.returncode != 0 and "No matching distribution found for tflite-runtime==2.14.0" in proc.stderr
